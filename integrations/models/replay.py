"""Replaying events: the request (ReplayRequest: who, why, what, the dry-run plan and its hash,
approval, progress, outcome), one ReplayItem per event the plan runs jobs for, and the
containment switches that disable a handler (HandlerSwitch)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models.inbound import Event
from integrations.models.shops import Shop
from integrations.models.states import StateMachine


class ReplayRequest(models.Model):
    """One replay: a selection of events (one webhook, a list, or a filter), a mode (the stored
    payload, or the record refetched from Shopify), and the dry-run plan computed from them.

    The plan is kept whole (`plan`), with its hash (`plan_hash`) over the entries and the state
    they were computed from; running, and approving, check that a new dry run gives the same hash,
    so what runs is exactly what was shown. Every status change goes through
    `ReplayRequest.STATES` (below the class) and is audited.
    """

    class Status(models.TextChoices):
        PLANNED = "planned", "Dry run shown"
        AWAITING_APPROVAL = "awaiting_approval", "Waiting for an admin's approval"
        QUEUED = "queued", "Queued for the worker"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    class Mode(models.TextChoices):
        STORED = "stored", "Replay the stored payload"
        REFETCH = "refetch", "Refetch the record from Shopify first"

    class Kind(models.TextChoices):
        ONE = "one", "One webhook"
        SELECTION = "selection", "Selected events"
        FILTER = "filter", "Everything matching a filter"

    FINISHED = (Status.DONE, Status.CANCELLED)

    created_at = models.DateTimeField(default=timezone.now)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    requested_label = models.CharField(max_length=150, help_text="Who asked (a username, or 'command line').")
    reason = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    selection = models.JSONField(help_text='{"event_ids": [...]} or {"filter": "shop=...&topic=..."}')
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.STORED)
    status = models.CharField(max_length=24, choices=Status.choices, default=Status.PLANNED)
    # The dry run: the whole plan, its summary and its hash.
    plan = models.JSONField(default=list)
    summary = models.JSONField(default=dict)
    plan_hash = models.CharField(max_length=64)
    planned_at = models.DateTimeField(default=timezone.now)
    needs_approval = models.BooleanField(default=False)
    approval_reasons = models.JSONField(default=list)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_hash = models.CharField(max_length=64, blank=True)
    # Progress: the items the run settles, counted as they settle.
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    jobs_ran = models.PositiveIntegerField(default=0)
    jobs_failed = models.PositiveIntegerField(default=0)
    jobs_skipped = models.PositiveIntegerField(default=0, help_text="Skipped at run time: the state changed.")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.TextField(blank=True)
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.SET_NULL, null=True, blank=True, related_name="replays"
    )

    class Meta:
        permissions = [
            ("request_replay", "Can dry-run and run replays, and disable or enable a handler"),
            ("approve_replay", "Can approve a replay someone else requested"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["planned", "awaiting_approval", "queued", "running", "done", "cancelled"]
                ),
                name="int_replay_status_valid",
            ),
            models.CheckConstraint(condition=models.Q(mode__in=["stored", "refetch"]), name="int_replay_mode_valid"),
            # Nothing runs without a reason; an approval is never the requester's own.
            models.CheckConstraint(
                condition=models.Q(status__in=["planned", "cancelled"]) | ~models.Q(reason=""),
                name="int_replay_run_has_reason",
            ),
            models.CheckConstraint(
                condition=models.Q(approved_by__isnull=True)
                | models.Q(requested_by__isnull=True)
                | ~models.Q(approved_by=models.F("requested_by")),
                name="int_replay_approver_not_requester",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-id"], name="int_replay_status_idx"),
        ]

    def __str__(self) -> str:
        return f"replay {self.pk}"

    @property
    def progress_percent(self) -> int:
        if not self.items_total:
            return 100 if self.status == self.Status.DONE else 0
        return int(100 * self.items_done / self.items_total)


RS = ReplayRequest.Status
ReplayRequest.STATES = StateMachine(
    "status",
    {
        # A request to run: queued, or waiting for an admin; a new dry run replaces the plan.
        RS.PLANNED: {RS.AWAITING_APPROVAL, RS.QUEUED, RS.CANCELLED, RS.PLANNED},
        # Approved (queued), refused or withdrawn (cancelled), or voided: the plan changed (planned).
        RS.AWAITING_APPROVAL: {RS.QUEUED, RS.CANCELLED, RS.PLANNED},
        RS.QUEUED: {RS.RUNNING, RS.CANCELLED, RS.DONE},
        RS.RUNNING: {RS.DONE, RS.CANCELLED},
    },
)


class ReplayItem(models.Model):
    """One event a replay runs jobs for, with the jobs the plan runs. A pump claims items in the
    replay lane (only when no live event is waiting), re-checks each job's decision on the state
    at that moment, runs what is still safe and records what happened."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting to run"
        CLAIMED = "claimed", "Being replayed"
        DONE = "done", "Done"
        FAILED = "failed", "A replayed job failed"
        SKIPPED = "skipped", "Skipped: the state changed since the dry run"
        CANCELLED = "cancelled", "Cancelled"

    SETTLED = (Status.DONE, Status.FAILED, Status.SKIPPED, Status.CANCELLED)

    replay = models.ForeignKey(ReplayRequest, on_delete=models.CASCADE, related_name="items")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+", db_index=False)
    jobs = models.JSONField(help_text="The jobs the plan runs for this event.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Waits until then (Shopify asked us to).")
    waiting_for = models.CharField(max_length=255, blank=True, help_text="Why it has not run yet, in words.")
    result = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["replay", "event"], name="int_replay_item_once"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "claimed", "done", "failed", "skipped", "cancelled"]),
                name="int_replay_item_status_valid",
            ),
        ]
        indexes = [
            # The pumps' claim: pending items, replay by replay, in plan order.
            models.Index(
                fields=["replay", "id"], name="int_replay_item_todo_idx", condition=models.Q(status="pending")
            ),
            # Recovery of a dead pump's items, every few seconds: only the few claimed ones.
            models.Index(
                fields=["claimed_at"], name="int_replay_item_claimed_idx", condition=models.Q(status="claimed")
            ),
        ]

    def __str__(self) -> str:
        return f"replay {self.replay_id} event {self.event_id}: {self.status}"


RI = ReplayItem.Status
ReplayItem.STATES = StateMachine(
    "status",
    {
        RI.PENDING: {RI.CLAIMED, RI.CANCELLED},
        # Settled, or given back (to wait for a paused shop, a busy event or Shopify's Retry-After).
        RI.CLAIMED: {RI.DONE, RI.FAILED, RI.SKIPPED, RI.PENDING, RI.CANCELLED},
    },
)


class HandlerSwitch(models.Model):
    """A handler (a job type) disabled for one shop, or for every shop (`shop` empty): a
    containment step. While it is disabled, events that would run it are stored and the job is
    held (Job status "held", the event "held"); once it is enabled again, they are listed for a
    replay. One row per (shop, job); enabling keeps the row (with who and when) for the record."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    job = models.CharField(max_length=64)
    disabled = models.BooleanField(default=True)
    reason = models.TextField()
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    changed_by_label = models.CharField(max_length=150)
    changed_at = models.DateTimeField(default=timezone.now)
    disabled_at = models.DateTimeField(null=True, blank=True, help_text="When it was last disabled.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "job"], name="int_switch_once_per_shop"),
            models.UniqueConstraint(
                fields=["job"], condition=models.Q(shop__isnull=True), name="int_switch_once_for_all"
            ),
        ]

    def __str__(self) -> str:
        where = self.shop.domain if self.shop_id else "all shops"
        return f"{self.job} {'disabled' if self.disabled else 'enabled'} for {where}"
