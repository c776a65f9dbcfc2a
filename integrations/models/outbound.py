"""What we sent to Shopify: every Admin API call we make (OutboundCall), one OutboundAttempt per
try, and each shop's rate-limit bucket as we last saw it (ShopThrottle)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models.shops import Shop
from integrations.models.states import StateMachine


class OutboundCall(models.Model):
    """One intent to change something in Shopify: an operation (`inventory.set`, ...) with Shopify's
    own variables for its mutation, asked for by a job, a replay, a worksheet or a person.

    Unique per (shop, idempotency_key), so the same origin and intent never make two calls; the
    key (hashed) is also the `@idempotent(key:)` Shopify sees, so a retried try cannot apply twice.
    Calls run in lane order (live, then replay, then reconcile), oldest first, and never overtake
    an earlier unfinished call for the same record. Every status change goes through
    `OutboundCall.STATES` (below the class).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PAUSED = "paused", "Held: shop paused"
        WAITING = "waiting", "Waiting to retry"
        RUNNING = "running", "Being sent"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Lane(models.TextChoices):
        LIVE = "live", "Live"
        REPLAY = "replay", "Replay"
        RECONCILE = "reconcile", "Reconcile / backfill"

    class Origin(models.TextChoices):
        JOB = "job", "Job"
        REPLAY = "replay", "Replay"
        WORKSHEET = "worksheet", "Worksheet"
        PERSON = "person", "Person"

    class Classification(models.TextChoices):
        RETRYABLE = "retryable", "Retryable"
        NON_RETRYABLE = "non_retryable", "Not retryable"

    ACTIVE = (Status.QUEUED, Status.PAUSED, Status.WAITING, Status.RUNNING)
    LANE_ORDER = {Lane.LIVE: 0, Lane.REPLAY: 1, Lane.RECONCILE: 2}

    # Not indexed alone: the unique (shop, key) and (shop, -id) indexes lead with it.
    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="outbound_calls", db_index=False)
    operation = models.CharField(max_length=64)
    input = models.JSONField(help_text="Shopify's variables for the operation's mutation.")
    target_gid = models.CharField(max_length=255, blank=True, help_text="The Shopify record the call changes.")
    target_label = models.CharField(max_length=100, blank=True, help_text="Order name, SKU, title: how people find it.")
    lane = models.CharField(max_length=16, choices=Lane.choices, default=Lane.LIVE)
    priority = models.PositiveSmallIntegerField(default=0, help_text="0 live, 1 replay, 2 reconcile.")
    origin = models.CharField(max_length=16, choices=Origin.choices)
    origin_ref = models.CharField(max_length=200, blank=True, help_text="Which job, replay, worksheet or person.")
    origin_event = models.ForeignKey(
        "integrations.Event", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    why = models.CharField(max_length=300, blank=True, help_text="Why the call was made, in plain words.")
    idempotency_key = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    classification = models.CharField(max_length=16, choices=Classification.choices, null=True, blank=True)
    failure_kind = models.CharField(max_length=32, blank=True)
    reason = models.TextField(blank=True, help_text="What happened last, in plain words.")
    next_step = models.TextField(blank=True, help_text="What a person should do now.")
    attempt_count = models.PositiveIntegerField(default=0)
    retry_base = models.PositiveIntegerField(
        default=0, help_text="Tries before the last 'send again': the retry budget counts from here."
    )
    seen_event_id = models.BigIntegerField(
        null=True, blank=True, help_text="The newest webhook about the record we had seen when the call was asked for."
    )
    expected_cost = models.PositiveIntegerField(default=10, help_text="Points the throttle reserves per try.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    first_sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the first try started: no echo of the call can arrive before it."
    )
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    result = models.JSONField(null=True, blank=True, help_text="What Shopify returned on success (the changed record).")
    result_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="The record's updatedAt after our write: its echo webhook carries it."
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("send_outbound", "Can enqueue, pause and resume calls to Shopify")]
        constraints = [
            models.UniqueConstraint(fields=["shop", "idempotency_key"], name="int_call_unique_key"),
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "paused", "waiting", "running", "succeeded", "failed"]),
                name="int_call_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(lane__in=["live", "replay", "reconcile"]), name="int_call_lane_valid"
            ),
            models.CheckConstraint(
                condition=~models.Q(status="running") | (models.Q(claimed_at__isnull=False) & ~models.Q(claimed_by="")),
                name="int_call_running_has_owner",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="waiting") | models.Q(next_attempt_at__isnull=False),
                name="int_call_waiting_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(status__in=["succeeded", "failed"]) | models.Q(finished_at__isnull=False),
                name="int_call_finished_has_time",
            ),
        ]
        indexes = [
            # The senders' queue: unfinished calls in lane order, oldest first.
            models.Index(
                fields=["priority", "id"],
                name="int_call_due_idx",
                condition=models.Q(status__in=["queued", "waiting"]),
            ),
            # "Is an earlier call for this record still unfinished?" and the record's history.
            models.Index(fields=["shop", "target_gid", "id"], name="int_call_target_idx"),
            models.Index(fields=["shop", "-id"], name="int_call_shop_idx"),
            models.Index(fields=["status", "-id"], name="int_call_status_idx"),
            models.Index(fields=["operation", "-id"], name="int_call_operation_idx"),
            models.Index(
                fields=["target_label", "-id"], name="int_call_label_idx", condition=~models.Q(target_label="")
            ),
            models.Index(fields=["claimed_at"], name="int_call_running_idx", condition=models.Q(status="running")),
            models.Index(fields=["created_at"], name="int_call_created_idx"),
            # "Failed in the last 24 h" on the dashboard, shop and outbound pages.
            models.Index(fields=["created_at"], name="int_call_failed_idx", condition=models.Q(status="failed")),
        ]

    def __str__(self) -> str:
        return f"call {self.pk}: {self.operation} {self.target_label or self.target_gid}"

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.SUCCEEDED, self.Status.FAILED)


CallStatus = OutboundCall.Status
OutboundCall.STATES = StateMachine(
    "status",
    {
        CallStatus.QUEUED: {CallStatus.RUNNING, CallStatus.PAUSED, CallStatus.FAILED},
        CallStatus.PAUSED: {CallStatus.QUEUED, CallStatus.WAITING, CallStatus.FAILED},
        CallStatus.WAITING: {CallStatus.RUNNING, CallStatus.PAUSED, CallStatus.FAILED},
        # A try ends in success, a wait for the next try, or failure; a sender lost mid-try puts
        # the call back in the queue (recovery), where the same idempotency key keeps it single.
        # A sender that claimed a call but found no room gives it back (held, if the shop was
        # paused meanwhile).
        CallStatus.RUNNING: {
            CallStatus.SUCCEEDED,
            CallStatus.WAITING,
            CallStatus.FAILED,
            CallStatus.QUEUED,
            CallStatus.PAUSED,
        },
        # A person may send a failed call again once the cause is fixed (same key, so never twice).
        CallStatus.FAILED: {CallStatus.QUEUED, CallStatus.PAUSED},
        CallStatus.SUCCEEDED: set(),
    },
)


class OutboundAttempt(models.Model):
    """One try of an OutboundCall: what we sent, what Shopify said, the bucket after it."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        RETRY = "retry", "Will retry"
        FAILED = "failed", "Failed"

    call = models.ForeignKey(OutboundCall, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    worker = models.CharField(max_length=100, blank=True)
    request_summary = models.TextField(blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_codes = models.JSONField(default=list, blank=True)
    user_errors = models.JSONField(default=list, blank=True)
    throttled = models.BooleanField(default=False)
    requested_cost = models.IntegerField(null=True, blank=True)
    actual_cost = models.IntegerField(null=True, blank=True)
    bucket_available = models.FloatField(null=True, blank=True)
    bucket_maximum = models.FloatField(null=True, blank=True)
    restore_rate = models.FloatField(null=True, blank=True)
    call_limit = models.CharField(max_length=20, blank=True, help_text="REST X-Shopify-Shop-Api-Call-Limit.")
    retry_after = models.FloatField(null=True, blank=True)
    deprecation = models.TextField(blank=True)
    request_id = models.CharField(max_length=100, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    classification = models.CharField(max_length=16, blank=True)
    failure_kind = models.CharField(max_length=32, blank=True)
    message = models.TextField(blank=True)
    response_excerpt = models.TextField(blank=True)

    class Meta:
        ordering = ["call_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["call", "number"], name="int_call_attempt_unique_number"),
            models.CheckConstraint(
                condition=models.Q(outcome__in=["succeeded", "retry", "failed"]), name="int_call_attempt_outcome_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.call_id} try {self.number}: {self.outcome}"


class ShopThrottle(models.Model):
    """A shop's GraphQL cost bucket as we model it from Shopify's last report, shared by every
    sender (the database backend of `outbound.throttle`). Times are Unix seconds so one UPDATE can
    compute the restored level on SQLite and PostgreSQL alike; `blocked_until` holds all of the
    shop's calls after a Retry-After or a throttled answer."""

    shop = models.OneToOneField(Shop, on_delete=models.CASCADE, primary_key=True, related_name="throttle")
    maximum = models.FloatField(default=2000.0)
    restore_rate = models.FloatField(default=100.0)
    available = models.FloatField(default=2000.0)
    as_of = models.FloatField(default=0.0, help_text="Unix time `available` was computed for.")
    blocked_until = models.FloatField(default=0.0, help_text="Unix time; no call is sent before it.")
    reported_at = models.DateTimeField(null=True, blank=True, help_text="When Shopify last told us its state.")
    reported_request_at = models.FloatField(
        default=0.0, help_text="Unix time the request behind the last report started: older reports only lower."
    )
    throttled_total = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.shop_id}: {self.available:.0f}/{self.maximum:.0f}"
