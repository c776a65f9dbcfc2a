"""Incidents: an operational event affecting the business, from detection to resolution.

An incident links what it is about (shops, events, outbound calls, replays, worksheets) and keeps
what support decided: the severity from the business-impact rubric (`incidents.rubric`), the
response strategy, containment and remediation actions, status updates for each audience, the
notifications sent, and the orders and customers it affects with their repair state.

State machine (every change through `Incident.STATES.move`, one conditional UPDATE, with an
`IncidentStep` row on the timeline for the person or rule that acted):

    investigating ─▶ identified ─▶ contained ─▶ monitoring ─▶ resolved
         │  ▲            │  ▲          │  ▲         │            │
         │  └────────────┘  └──────────┘  └─────────┘            │ reopen
         └──────────── (any open state) ─▶ resolved ◀────────────┘─▶ investigating

Resolving is refused while a containment action is open, and needs an override with a reason
while the data is not repaired (a linked worksheet has unapplied rows, or a linked failed event
was neither replayed nor resolved); see `incidents.services.resolve`.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models import Event, OutboundCall, Shop
from integrations.models.states import StateMachine

# What each severity means for merchants and shoppers, in words customer service can repeat.
SEVERITY_FOR_CUSTOMERS = {
    "sev1": "Orders cannot be completed or shipped right now. Customers are affected; tell them we are on it "
    "and that their order is safe, and do not promise a time.",
    "sev2": "Something customers can notice is slow or wrong (for example stock levels or order updates). "
    "Orders still go through.",
    "sev3": "Something behind the scenes is slow or failing. Customers should not notice yet.",
    "sev4": "A small or internal problem. Nothing for customers to notice.",
}


class Direction(models.TextChoices):
    INBOUND = "inbound", "Inbound (Shopify → us)"
    OUTBOUND = "outbound", "Outbound (us → Shopify)"
    BOTH = "both", "Both directions"


class Audience(models.TextChoices):
    ENGINEERING = "engineering", "Engineering and support"
    CUSTOMER_SERVICE = "customer_service", "Customer service"
    FULFILMENT = "fulfilment", "Fulfilment"
    OPERATIONS = "operations", "Operations"


class Incident(models.Model):
    class Severity(models.TextChoices):
        SEV1 = "sev1", "SEV1 — orders or fulfilment blocked"
        SEV2 = "sev2", "SEV2 — degraded, customers affected"
        SEV3 = "sev3", "SEV3 — degraded, no customer impact yet"
        SEV4 = "sev4", "SEV4 — cosmetic or internal only"

    class Status(models.TextChoices):
        INVESTIGATING = "investigating", "Investigating"
        IDENTIFIED = "identified", "Identified"
        CONTAINED = "contained", "Contained"
        MONITORING = "monitoring", "Monitoring"
        RESOLVED = "resolved", "Resolved"

    class Strategy(models.TextChoices):
        ROLLBACK = "rollback", "Immediate rollback"
        CONTROLLED_REPLAY = "controlled_replay", "Controlled replay"
        QUEUE_PAUSE = "queue_pause", "Temporary queue pause"
        MANUAL_CORRECTION = "manual_correction", "Manual correction"
        MONITORED_WAIT = "monitored_wait", "Monitored wait"

    S = Status
    STATES = StateMachine(
        "status",
        {
            S.INVESTIGATING: {S.IDENTIFIED, S.CONTAINED, S.MONITORING, S.RESOLVED},
            S.IDENTIFIED: {S.INVESTIGATING, S.CONTAINED, S.MONITORING, S.RESOLVED},
            S.CONTAINED: {S.IDENTIFIED, S.MONITORING, S.RESOLVED},
            S.MONITORING: {S.IDENTIFIED, S.CONTAINED, S.RESOLVED},
            S.RESOLVED: {S.INVESTIGATING},  # reopened: it came back
        },
    )
    OPEN = (S.INVESTIGATING, S.IDENTIFIED, S.CONTAINED, S.MONITORING)
    # The time field each status stamps when an incident enters it (kept on a reopen's way back).
    STAMPS = {S.IDENTIFIED: "identified_at", S.CONTAINED: "contained_at", S.MONITORING: "monitoring_at"}

    title = models.CharField(max_length=200, help_text="Internal: engineering's name for it.")
    summary = models.TextField(blank=True, help_text="Internal: what is known, for engineering and support.")
    direction = models.CharField(max_length=8, choices=Direction.choices, default=Direction.INBOUND)
    # What customer service may read (the status board and the lookup show only these and
    # confirmed customer-service updates).
    public_title = models.CharField(
        max_length=200, blank=True, help_text="For customer service: a plain-language name, no internal detail."
    )
    customer_impact = models.TextField(blank=True, help_text="What merchants or shoppers may notice.")
    customer_advice = models.TextField(blank=True, help_text="What customer service should tell them.")
    workaround = models.TextField(blank=True, help_text="What customers or staff can do meanwhile, if anything.")

    severity = models.CharField(max_length=8, choices=Severity.choices)
    severity_reasoning = models.TextField(blank=True, help_text="Why this severity, in words (the rubric's).")
    rubric = models.JSONField(default=dict, blank=True, help_text="The rubric's answers the severity came from.")
    severity_overridden = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INVESTIGATING)

    strategy = models.CharField(max_length=20, choices=Strategy.choices, blank=True)
    strategy_reason = models.TextField(blank=True)
    # Monitored wait: the failing topic (or outbound operation) to watch and when to look again.
    watch_topic = models.CharField(max_length=100, blank=True)
    watch_shop = models.ForeignKey(Shop, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    watch_minutes = models.PositiveIntegerField(default=15, help_text="The window the watch counts failures in.")
    watch_remind_at = models.DateTimeField(null=True, blank=True)
    watch_reminded_at = models.DateTimeField(null=True, blank=True)

    shops = models.ManyToManyField(Shop, blank=True, related_name="incidents")
    events = models.ManyToManyField(Event, blank=True, related_name="incidents")
    outbound_calls = models.ManyToManyField(OutboundCall, blank=True, related_name="incidents")
    lead = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(default=timezone.now)
    detected_at = models.DateTimeField(default=timezone.now, help_text="When someone or something noticed.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When the problem began (first failure).")
    identified_at = models.DateTimeField(null=True, blank=True)
    contained_at = models.DateTimeField(null=True, blank=True)
    monitoring_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolve_override_reason = models.TextField(blank=True)
    next_update_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next status update is due (by severity, from the last one)."
    )

    class Meta:
        permissions = [
            ("view_status_board", "Can read the customer-service status board and look up affected orders"),
            ("manage_notification_lists", "Can edit who is notified of incidents"),
        ]
        indexes = [models.Index(fields=["status", "-opened_at"], name="incidents_open_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["investigating", "identified", "contained", "monitoring", "resolved"]),
                name="incidents_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status="resolved", resolved_at__isnull=False) | ~models.Q(status="resolved"),
                name="incidents_resolved_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.severity_label}: {self.title}"

    @property
    def severity_label(self) -> str:
        return self.severity.upper()

    @property
    def severity_for_customers(self) -> str:
        return SEVERITY_FOR_CUSTOMERS[self.severity]

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.RESOLVED

    @property
    def board_title(self) -> str:
        """What customer service reads as its name: never the internal title."""
        return self.public_title or "Integration issue under investigation"

    @property
    def update_overdue(self) -> bool:
        return self.is_open and self.next_update_due_at is not None and self.next_update_due_at < timezone.now()


class IncidentStep(models.Model):
    """The incident's timeline: each change, who or what made it, and when. Append-only."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Opened"
        STATUS = "status", "Status"
        SEVERITY = "severity", "Severity"
        STRATEGY = "strategy", "Response strategy"
        LINK = "link", "Linked"
        ACTION = "action", "Action"
        UPDATE = "update", "Status update"
        NOTIFICATION = "notification", "Notification"
        EDIT = "edit", "Edited"
        REMINDER = "reminder", "Reminder"
        RESPONSE = "response", "Response carried out"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="steps")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    actor_label = models.CharField(max_length=150)
    source = models.CharField(max_length=16, blank=True, help_text="The status before, for a status step.")
    target = models.CharField(max_length=16, blank=True, help_text="The status after, for a status step.")
    text = models.TextField()

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["incident", "at"], name="incidents_step_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.text[:60]}"


class SeverityChange(models.Model):
    """Every severity an incident had: the rubric's answers and reasoning, or an override's reason."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="severity_changes")
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    by_label = models.CharField(max_length=150)
    source = models.CharField(max_length=8, blank=True)
    target = models.CharField(max_length=8)
    rubric_severity = models.CharField(max_length=8, help_text="What the rubric gave.")
    reasoning = models.TextField()
    overridden = models.BooleanField(default=False)
    override_reason = models.TextField(blank=True)
    answers = models.JSONField(default=dict)

    class Meta:
        ordering = ["at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(overridden=False) | ~models.Q(override_reason=""), name="incidents_override_reason"
            )
        ]

    def __str__(self) -> str:
        return f"{self.source or 'new'} -> {self.target}"


class IncidentAction(models.Model):
    """A thing to do: containment (restore stability now) or remediation (make it less likely to
    recur). Open containment blocks resolving; open remediation stays as a follow-up."""

    class Kind(models.TextChoices):
        CONTAINMENT = "containment", "Containment"
        REMEDIATION = "remediation", "Remediation"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="actions")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    title = models.CharField(max_length=200)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    due_at = models.DateTimeField(null=True, blank=True)
    done = models.BooleanField(default=False)
    done_at = models.DateTimeField(null=True, blank=True)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["done", "due_at", "id"]
        indexes = [
            models.Index(fields=["incident", "kind"], name="incidents_action_idx"),
            # The follow-ups page: open remediation across incidents.
            models.Index(
                fields=["due_at", "id"],
                name="incidents_followup_idx",
                condition=models.Q(kind="remediation", done=False),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["containment", "remediation"]), name="incidents_action_kind"
            ),
            models.CheckConstraint(
                condition=models.Q(done=False) | models.Q(done_at__isnull=False), name="incidents_action_done_time"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.title}"

    @property
    def overdue(self) -> bool:
        return not self.done and self.due_at is not None and self.due_at < timezone.now()


class IncidentUpdate(models.Model):
    """A status update for one audience. Customer service only ever sees confirmed updates meant
    for them; an update still being established is kept for the team until someone confirms it."""

    Audience = Audience

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    body = models.TextField()
    audience = models.CharField(max_length=24, choices=Audience.choices, default=Audience.ENGINEERING)
    confirmed = models.BooleanField(
        default=False, help_text="Confirmed enough to share: facts, not guesses or promises."
    )
    confirmed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    confirmed_at = models.DateTimeField(null=True, blank=True)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    next_update_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next update was promised by; the board flags it once it passes."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The status board: confirmed customer-service updates, newest first.
            models.Index(
                fields=["incident", "-created_at"],
                name="incidents_shared_update_idx",
                condition=models.Q(confirmed=True, audience="customer_service"),
            )
        ]

    def __str__(self) -> str:
        return self.body[:60]

    @property
    def next_update_overdue(self) -> bool:
        return self.next_update_at is not None and self.next_update_at < timezone.now()


class NotificationList(models.Model):
    """Who hears about incidents of one severity, for one audience: users and plain addresses."""

    audience = models.CharField(max_length=24, choices=Audience.choices)
    severity = models.CharField(max_length=8, choices=Incident.Severity.choices)
    users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    emails = models.TextField(blank=True, help_text="Plain e-mail addresses, one per line or comma-separated.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["audience", "severity"]
        constraints = [models.UniqueConstraint(fields=["audience", "severity"], name="incidents_one_list")]

    def __str__(self) -> str:
        return f"{self.get_audience_display()} · {self.severity.upper()}"

    def addresses(self) -> list[str]:
        from incidents.notifications import parse_addresses

        people = [user.email for user in self.users.all() if user.email and user.is_active]
        return sorted({*map(str.lower, people), *parse_addresses(self.emails)})


class Notification(models.Model):
    """One e-mail about an incident to one audience: its recipients when it was made, and what
    happened when the worker sent it. A failure is kept and shown, never swallowed."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Incident opened"
        SEVERITY = "severity", "Severity changed"
        UPDATE = "update", "Confirmed update"
        RESOLVED = "resolved", "Resolved"
        REMINDER = "reminder", "Reminder"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed to send"
        NO_RECIPIENTS = "no_recipients", "Nobody on the list"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notifications")
    update = models.ForeignKey(IncidentUpdate, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    audience = models.CharField(max_length=24, choices=Audience.choices)
    recipients = models.JSONField(default=list)
    subject = models.CharField(max_length=255)
    body = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["incident", "-created_at"], name="incidents_notice_idx"),
            models.Index(
                fields=["-created_at"], name="incidents_notice_failed_idx", condition=models.Q(status="failed")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.get_audience_display()}"


class AffectedRecord(models.Model):
    """An order or customer an incident affects, found in its linked events, worksheets and
    replays, with how far its repair has got (refreshed from those sources; a person may set it)."""

    class Kind(models.TextChoices):
        ORDER = "order", "Order"
        CUSTOMER = "customer", "Customer"

    class RepairState(models.TextChoices):
        WAITING = "waiting", "Waiting for repair"
        REPLAYED = "replayed", "Replayed, result pending"
        REPAIRED = "repaired", "Repaired"
        NEEDS_MANUAL = "needs_manual", "Needs manual action"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="affected")
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    key = models.CharField(max_length=255, help_text="The order name (#1001) or the customer's e-mail, lower case.")
    shopify_id = models.CharField(max_length=40, blank=True)
    email = models.CharField(max_length=255, blank=True, help_text="An order's customer e-mail, lower case.")
    total = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    currency = models.CharField(max_length=8, blank=True)
    unfulfilled = models.BooleanField(default=False)
    event = models.ForeignKey(Event, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    worksheet_row = models.ForeignKey(
        "worksheets.WorksheetRow", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    repair_state = models.CharField(max_length=16, choices=RepairState.choices, default=RepairState.WAITING)
    repair_note = models.CharField(max_length=255, blank=True)
    set_by_person = models.BooleanField(default=False, help_text="A person set the state; refreshes keep it.")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["kind", "key"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "shop", "kind", "key"], name="incidents_affected_once"),
            models.CheckConstraint(condition=models.Q(kind__in=["order", "customer"]), name="incidents_affected_kind"),
        ]
        indexes = [
            models.Index(fields=["key"], name="incidents_affected_key_idx"),
            # Refreshing an incident's repair states joins its records to their events in event order.
            models.Index(fields=["incident", "event"], name="incidents_affected_event_idx"),
            models.Index(fields=["email"], name="incidents_affected_email_idx", condition=~models.Q(email="")),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.key}: {self.get_repair_state_display()}"
