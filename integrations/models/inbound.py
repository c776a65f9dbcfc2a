"""What arrived from Shopify: every HTTP request (Delivery) and the webhook event it carries (Event)."""

import hashlib

from django.db import models
from django.utils import timezone

from integrations.models.shops import Shop
from integrations.models.states import StateMachine

WEBHOOK_ID_LENGTH = 100  # Event.webhook_id and Delivery.webhook_id


class Event(models.Model):
    """One Shopify webhook event for one shop, however many times Shopify delivered it.

    Unique per (shop, X-Shopify-Webhook-Id) by a database constraint, so concurrent duplicate
    deliveries still make one Event; each delivery raises `delivery_count`. A pump claims queued
    events (status claimed, with its name in `claimed_by`), runs the topic's jobs and settles the
    status in one transaction per event; an event whose jobs wait for a retry is `retry_wait` until
    `next_attempt_at`. Every status change goes through `Event.STATES` (below the class).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        CLAIMED = "claimed", "Being processed"  # a pump holds it right now
        RETRY_WAIT = "retry_wait", "Waiting to retry"  # a job failed and retries at next_attempt_at
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"
        HELD = "held", "Held: a handler is disabled"  # stored; listed for replay once it is enabled

    class Triage(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"
        IGNORED = "ignored", "Ignored"

    # Not indexed on its own: the unique (shop, webhook_id) and (shop, -id) indexes lead with it.
    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="events", db_index=False)
    webhook_id = models.CharField(max_length=WEBHOOK_ID_LENGTH)  # see storable_webhook_id
    event_id = models.CharField(max_length=100, blank=True)
    topic = models.CharField(max_length=100)
    api_version = models.CharField(max_length=16, blank=True)
    triggered_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    last_delivery_at = models.DateTimeField(default=timezone.now)
    delivery_count = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    status_reason = models.TextField(blank=True)
    processed_count = models.PositiveIntegerField(default=0, help_text="Times processing ran to success.")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=100, blank=True, help_text="The pump holding the claim.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When a waiting retry is due.")
    processed_at = models.DateTimeField(null=True, blank=True)
    # Filled by the worker from the payload, so the receiver never parses JSON.
    resource_gid = models.CharField(max_length=255, blank=True)
    resource_id = models.CharField(max_length=40, blank=True)
    resource_label = models.CharField(max_length=100, blank=True)
    resource_updated_at = models.DateTimeField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)
    redaction_note = models.CharField(max_length=255, blank=True)
    # Set when retention (integrations.inbound.retention) emptied its deliveries' bodies and headers;
    # the event itself, its deliveries' sizes, hashes and signatures, jobs and attempts stay.
    payload_purged_at = models.DateTimeField(null=True, blank=True)
    # Triage of failures by support.
    triage_state = models.CharField(max_length=16, choices=Triage.choices, default=Triage.OPEN)
    # Indexed only where set (below): most events are never assigned.
    assignee = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="assigned_events", db_index=False
    )
    tags = models.CharField(max_length=255, blank=True)
    # Set by the pump when the webhook reports a change our own call made (see outbound.echo):
    # handlers never write an echo back to Shopify, so sync loops cannot start.
    echo_of = models.ForeignKey(
        "integrations.OutboundCall",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="echoes",
        db_index=False,
    )

    class Meta:
        permissions = [("triage_event", "Can assign, tag, acknowledge, resolve or ignore failed events")]
        constraints = [
            models.UniqueConstraint(fields=["shop", "webhook_id"], name="int_event_unique_webhook"),
            models.CheckConstraint(
                condition=models.Q(
                    status__in=["queued", "claimed", "retry_wait", "processed", "failed", "ignored", "held"]
                ),
                name="int_event_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="claimed") | (models.Q(claimed_at__isnull=False) & ~models.Q(claimed_by="")),
                name="int_event_claim_has_owner",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="retry_wait") | models.Q(next_attempt_at__isnull=False),
                name="int_event_retry_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="processed") | models.Q(processed_at__isnull=False, processed_count__gte=1),
                name="int_event_processed_has_time",
            ),
            models.CheckConstraint(
                condition=models.Q(triage_state__in=["open", "acknowledged", "resolved", "ignored"]),
                name="int_event_triage_valid",
            ),
        ]
        indexes = [
            # The worker's claim query: oldest queued first.
            models.Index(fields=["id"], name="int_event_queued_idx", condition=models.Q(status="queued")),
            # Claims of a pump that died (recovery).
            models.Index(fields=["claimed_at"], name="int_event_claimed_idx", condition=models.Q(status="claimed")),
            # Retries that are due: the pump's second claim query.
            models.Index(
                fields=["next_attempt_at"], name="int_event_retry_idx", condition=models.Q(status="retry_wait")
            ),
            # Event log filters, newest first (keyset on id).
            models.Index(fields=["shop", "-id"], name="int_event_shop_idx"),
            models.Index(fields=["echo_of"], name="int_event_echo_idx", condition=models.Q(echo_of__isnull=False)),
            models.Index(fields=["topic", "-id"], name="int_event_topic_idx"),
            # Shop + status (e.g. one shop's failures): without it, a shop with no such event made
            # PostgreSQL walk the whole log backwards. Queued events are left out, as in the
            # status index, so the receiver's insert does not touch it.
            models.Index(
                fields=["shop", "status", "-id"], name="int_event_shop_status_idx", condition=~models.Q(status="queued")
            ),
            # Queued events are found through int_event_queued_idx, so a new event skips this one.
            models.Index(fields=["status", "-id"], name="int_event_status_idx", condition=~models.Q(status="queued")),
            models.Index(fields=["received_at"], name="int_event_received_idx"),
            # Retention's queue: the payloads not purged yet, oldest first. Purged events leave it,
            # so each run starts at the oldest payload left instead of walking purged events.
            models.Index(
                fields=["received_at"],
                name="int_event_unpurged_idx",
                condition=models.Q(payload_purged_at__isnull=True),
            ),
            # No index on webhook_id alone: searches go through the unique (shop, webhook_id) index
            # (see webhook_id_match), which saves the receiver one random-order index insert.
            # Partial: filled later by the worker, so the receiver's insert does not touch them.
            models.Index(fields=["event_id"], name="int_event_eventid_idx", condition=~models.Q(event_id="")),
            models.Index(
                fields=["resource_id", "-id"], name="int_event_resource_idx", condition=~models.Q(resource_id="")
            ),
            models.Index(
                fields=["resource_label", "-id"], name="int_event_label_idx", condition=~models.Q(resource_label="")
            ),
            models.Index(
                fields=["resource_gid", "-id"], name="int_event_gid_idx", condition=~models.Q(resource_gid="")
            ),
            models.Index(
                fields=["assignee"], name="int_event_assignee_idx", condition=models.Q(assignee__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic} {self.webhook_id}"


Status = Event.Status
# Who moves an event where: pumps claim and settle it; recovery gives back a dead pump's claims
# (or fails a job that keeps killing its pump); people may give up on or ignore an event by hand;
# a replay claims a finished or held event again (`integrations.replay` enforces each job's
# decision); an event whose handler is disabled is held until a replay runs it.
Event.STATES = StateMachine(
    "status",
    {
        Status.QUEUED: {Status.CLAIMED, Status.FAILED, Status.IGNORED},
        Status.CLAIMED: {
            Status.PROCESSED, Status.FAILED, Status.IGNORED, Status.RETRY_WAIT, Status.QUEUED, Status.HELD,
        },
        Status.RETRY_WAIT: {Status.CLAIMED, Status.FAILED, Status.IGNORED},
        Status.FAILED: {Status.IGNORED, Status.CLAIMED},
        Status.PROCESSED: {Status.CLAIMED},
        Status.IGNORED: {Status.CLAIMED},
        Status.HELD: {Status.CLAIMED, Status.IGNORED},
    },
)  # fmt: skip
Triage = Event.Triage
Event.TRIAGE = StateMachine(
    "triage_state",
    {
        Triage.OPEN: {Triage.ACKNOWLEDGED, Triage.RESOLVED, Triage.IGNORED},
        Triage.ACKNOWLEDGED: {Triage.OPEN, Triage.RESOLVED, Triage.IGNORED},
        Triage.RESOLVED: {Triage.OPEN},
        Triage.IGNORED: {Triage.OPEN},
    },
)
# Statuses an event has not finished in.
Event.IN_FLIGHT_STATUSES = (Status.QUEUED, Status.CLAIMED, Status.RETRY_WAIT)


def storable_webhook_id(webhook_id: str) -> str:
    """The webhook id as Event and Delivery store it: itself when it fits the column, else its
    start and the SHA-256 of the whole id. Two different ids never become one Event (cutting
    them to the column would merge ids that share a start), and a retry of the same long id still
    finds its Event. The whole id stays in Delivery.headers."""
    if len(webhook_id) <= WEBHOOK_ID_LENGTH and "\x00" not in webhook_id:
        return webhook_id
    digest = hashlib.sha256(webhook_id.encode("utf-8", "surrogatepass")).hexdigest()
    start = webhook_id[: WEBHOOK_ID_LENGTH - len(digest) - 1].replace("\x00", "\ufffd")
    return f"{start}~{digest}"


def webhook_id_match(webhook_id: str) -> models.Q:
    """Events with this X-Shopify-Webhook-Id in any shop, found through the unique
    (shop, webhook_id) index: one probe per shop, and shops are few."""
    return models.Q(
        shop_id__in=list(Shop.objects.values_list("id", flat=True)), webhook_id=storable_webhook_id(webhook_id)
    )


class Delivery(models.Model):
    """One HTTP request to the webhook receiver, whatever became of it.

    Written before we answer: a rejected or oversize request is kept with its reason, and a
    verified one points at its Event. Secret-bearing headers are redacted.
    """

    class Outcome(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        DUPLICATE = "duplicate", "Duplicate (already received)"
        REJECTED = "rejected", "Rejected"
        TOO_LARGE = "too_large", "Refused: too large"

    received_at = models.DateTimeField(default=timezone.now)
    # Not indexed: deliveries are found through their event, webhook id or time; an index here
    # would only serve deleting a shop, which the console never does.
    shop = models.ForeignKey(
        Shop, on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries", db_index=False
    )
    shop_domain = models.CharField(max_length=255, blank=True)
    topic = models.CharField(max_length=100, blank=True)
    webhook_id = models.CharField(max_length=WEBHOOK_ID_LENGTH, blank=True)  # see storable_webhook_id
    # Indexed by (event, id) below, which also serves the foreign key.
    event = models.ForeignKey(
        Event, on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries", db_index=False
    )
    headers = models.JSONField(default=dict)
    # A request that did not verify keeps only the first WEBHOOK_REJECTED_BODY_PREFIX_BYTES of
    # its body (anyone can send one), with the whole body's size and SHA-256; a verified one keeps
    # its body whole (its hash is left empty: the body itself is there).
    body = models.BinaryField(null=True, blank=True)
    body_size = models.PositiveIntegerField(default=0)  # of the whole body as received (or declared)
    body_sha256 = models.CharField(max_length=64, blank=True, default="", help_text="Of the whole body, hex.")
    body_truncated = models.BooleanField(default=False, help_text="Only the start of the body is stored.")
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    signature_valid = models.BooleanField(null=True, help_text="None when never checked (unknown shop, no header).")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    response_status = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=255, blank=True)
    duration_ms = models.FloatField(default=0)

    class Meta:
        verbose_name_plural = "deliveries"
        constraints = [
            # A stored (accepted or duplicate) delivery always has its event; a refused one never does.
            models.CheckConstraint(
                condition=(models.Q(outcome__in=["accepted", "duplicate"]) & models.Q(event__isnull=False))
                | (models.Q(outcome__in=["rejected", "too_large"]) & models.Q(event__isnull=True)),
                name="int_delivery_event_iff_stored",
            ),
        ]
        indexes = [
            models.Index(fields=["event", "id"], name="int_delivery_event_idx"),
            # Rejected requests by webhook id; accepted ones are found through their Event.
            models.Index(
                fields=["webhook_id"], name="int_delivery_webhook_idx", condition=models.Q(event__isnull=True)
            ),
            # "Webhooks rejected in the last hour" on the dashboard.
            models.Index(
                fields=["received_at"], name="int_delivery_rejected_idx", condition=models.Q(event__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.topic or '?'} from {self.shop_domain or '?'}: {self.outcome}"
