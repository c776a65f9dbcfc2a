"""Reconciliation worksheets: a controlled list of records, compared field by field between
Shopify and the platform, reviewed, approved by an admin who did not prepare it, then applied
without overwriting anything that changed since the snapshot.

State machine (every change through `Worksheet.STATES.move`, one conditional UPDATE, with a
`WorksheetStep` row for the person or rule that acted):

    draft ─compare─▶ compared ─submit─▶ submitted ─approve─▶ approved ─apply─▶ applying ─▶ applied
      ▲                │  ▲               │    │                │                   └──▶ partially_applied
      └──compare again─┘  └──── edit / withdraw / reopen ───────┘                          │ retry failed rows
                                          └─reject─▶ rejected                              └──▶ applying
"""

from django.conf import settings
from django.db import models

from integrations.models import OutboundCall, Shop
from integrations.models.states import StateMachine


class Worksheet(models.Model):
    class Resource(models.TextChoices):
        PRODUCTS = "products", "Products"
        VARIANTS = "variants", "Variants"
        INVENTORY_LEVELS = "inventory_levels", "Inventory levels"
        ORDERS = "orders", "Orders"
        CUSTOMERS = "customers", "Customers"

    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        COMPARED = "compared", "Compared (in review)"
        SUBMITTED = "submitted", "Submitted for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        APPLYING = "applying", "Applying"
        APPLIED = "applied", "Applied"
        PARTIALLY_APPLIED = "partially_applied", "Partially applied"

    class Source(models.TextChoices):
        IDS = "ids", "Pasted or uploaded ids"
        EVENTS = "events", "Records touched by selected events"
        INCIDENT = "incident", "An incident's affected records"
        ROLLBACK = "rollback", "Rollback of another worksheet"

    S = State
    STATES = StateMachine(
        "state",
        {
            S.DRAFT: {S.COMPARED},
            S.COMPARED: {S.DRAFT, S.SUBMITTED},
            S.SUBMITTED: {S.APPROVED, S.REJECTED, S.COMPARED},
            S.APPROVED: {S.APPLYING, S.COMPARED},
            S.REJECTED: {S.COMPARED, S.DRAFT},
            S.APPLYING: {S.APPLIED, S.PARTIALLY_APPLIED},
            S.PARTIALLY_APPLIED: {S.APPLYING},
        },
    )
    EDITABLE = (S.COMPARED, S.SUBMITTED, S.APPROVED, S.REJECTED)  # a row edit sends it back to review
    FINISHED = (S.APPLIED,)

    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="worksheets")
    resource = models.CharField(max_length=24, choices=Resource.choices)
    fields = models.JSONField(default=list, help_text="The fields compared, in order.")
    source = models.CharField(max_length=16, choices=Source.choices)
    source_detail = models.TextField(blank=True, help_text="The event filter, incident or worksheet it came from.")
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.SET_NULL, null=True, blank=True, related_name="worksheets"
    )
    rollback_of = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="rollbacks")
    title = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=20, choices=State.choices, default=State.DRAFT)

    prepared_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_hash = models.CharField(max_length=64, blank=True, help_text="The plan hash the approval covers.")
    review_comment = models.TextField(blank=True, help_text="The approver's or rejecter's comment.")
    plan_hash = models.CharField(max_length=64, blank=True)

    # Progress of the running step (compare or apply), for the progress bar.
    progress_step = models.CharField(max_length=16, blank=True)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    progress_note = models.CharField(max_length=300, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True, help_text="When the running step last moved.")
    compared_at = models.DateTimeField(null=True, blank=True)
    apply_started_at = models.DateTimeField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["state", "-created_at"], name="ws_state_idx"),
            models.Index(fields=["shop", "-created_at"], name="ws_shop_idx"),
            models.Index(fields=["incident", "-created_at"], name="ws_incident_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True) | ~models.Q(approved_by=models.F("prepared_by")),
                name="ws_approver_not_preparer",
            ),
        ]
        permissions = [
            ("prepare_worksheet", "Can prepare, compare, review and submit worksheets"),
            ("approve_worksheet", "Can approve or reject worksheets prepared by someone else"),
            ("apply_worksheet", "Can apply approved worksheets"),
        ]

    def __str__(self) -> str:
        return f"Worksheet #{self.pk}: {self.get_resource_display().lower()} of {self.shop.domain}"

    @property
    def progress_percent(self) -> int:
        return int(100 * self.progress_done / self.progress_total) if self.progress_total else 0


class WorksheetRow(models.Model):
    """One record of the controlled list (created with the worksheet, in the order given): after
    compare both sides' values (the snapshot), the proposal and why; the reviewer's decision; after
    apply the result with the before and after values."""

    class Kind(models.TextChoices):
        PENDING = "pending", "Not compared yet"
        SAME = "same", "Same on both sides"
        DIFFERS = "differs", "Differs"
        MISSING_IN_SHOPIFY = "missing_in_shopify", "Missing in Shopify"
        MISSING_IN_PLATFORM = "missing_in_platform", "Missing in the platform"
        IN_FLIGHT = "in_flight", "Changed moments ago (in flight)"
        UNREADABLE = "unreadable", "Could not be read"

    class Proposal(models.TextChoices):
        WRITE_SHOPIFY = "write_shopify", "Write Shopify"
        WRITE_PLATFORM = "write_platform", "Write the platform"
        NO_CHANGE = "no_change", "No change"
        NEEDS_PERSON = "needs_person", "Needs a person"

    class Decision(models.TextChoices):
        ACCEPT = "accept", "Accept the proposal"
        SKIP = "skip", "Skip"
        OVERRIDE = "override", "Override the value"

    class Result(models.TextChoices):
        NONE = "", "Not applied"
        APPLIED = "applied", "Applied"
        STALE = "stale", "Stale: changed since the snapshot"
        SKIPPED = "skipped", "Skipped"
        FAILED = "failed", "Failed"
        SENDING = "sending", "Queued to Shopify"

    worksheet = models.ForeignKey(Worksheet, on_delete=models.CASCADE, related_name="rows")
    position = models.PositiveIntegerField()
    key = models.CharField(max_length=255, help_text="The record's Shopify gid.")
    label = models.CharField(max_length=255, blank=True, help_text="A name a person recognises.")
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.PENDING)
    proposal = models.CharField(max_length=16, choices=Proposal.choices, blank=True)
    reason = models.TextField(blank=True)
    # [{name, shopify, platform, owner, differs, write}] with values normalised for comparison.
    fields = models.JSONField(default=list)
    # Both sides' raw values as read (the snapshot the stale guard compares against).
    shopify_values = models.JSONField(null=True, blank=True)
    platform_values = models.JSONField(null=True, blank=True)
    shopify_updated_at = models.DateTimeField(null=True, blank=True)
    platform_synced_at = models.DateTimeField(null=True, blank=True)
    money = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)

    decision = models.CharField(max_length=12, choices=Decision.choices, default=Decision.ACCEPT)
    override_side = models.CharField(max_length=16, blank=True, help_text="write_shopify or write_platform.")
    override_values = models.JSONField(null=True, blank=True)
    note = models.TextField(blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    result = models.CharField(max_length=12, choices=Result.choices, blank=True, default="")
    result_detail = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    call = models.ForeignKey(OutboundCall, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Apply tries: a retry of a failed row is a new one."
    )
    applied_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["worksheet", "position"]
        constraints = [
            models.UniqueConstraint(fields=["worksheet", "position"], name="ws_row_position_unique"),
            models.UniqueConstraint(fields=["worksheet", "key"], name="ws_row_key_unique"),
        ]
        indexes = [models.Index(fields=["worksheet", "result"], name="ws_row_result_idx")]

    def __str__(self) -> str:
        return f"{self.key} ({self.get_proposal_display()})"

    @property
    def side(self) -> str:
        """Which side apply writes: write_shopify, write_platform, or "" (nothing)."""
        if self.decision == self.Decision.SKIP:
            return ""
        if self.decision == self.Decision.OVERRIDE:
            return self.override_side
        if self.proposal in (self.Proposal.WRITE_SHOPIFY, self.Proposal.WRITE_PLATFORM):
            return self.proposal
        return ""

    def values_to_write(self) -> dict:
        """field -> the value apply writes on `side` (the owner's value, or the override)."""
        side = self.side
        if not side:
            return {}
        if self.decision == self.Decision.OVERRIDE:
            return dict(self.override_values or {})
        source = "platform" if side == self.Proposal.WRITE_SHOPIFY else "shopify"
        return {f["name"]: f[source] for f in self.fields if f.get("write")}


class WorksheetStep(models.Model):
    """The worksheet's history: every state change, with who (or which rule) made it and why."""

    worksheet = models.ForeignKey(Worksheet, on_delete=models.CASCADE, related_name="steps")
    source = models.CharField(max_length=20)
    target = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    comment = models.TextField(blank=True)
    plan_hash = models.CharField(max_length=64, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["worksheet", "at", "id"]

    def __str__(self) -> str:
        return f"{self.source} → {self.target} by {self.actor_label}"
