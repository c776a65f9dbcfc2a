from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from console.secrets import mask_secret

DEFAULT_API_VERSION = "2026-10"

shop_domain_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$",
    "Enter the shop's permanent domain, like example-store.myshopify.com.",
)
api_version_validator = RegexValidator(
    r"^(\d{4}-(01|04|07|10)|unstable)$",
    "API versions look like 2026-10 (a quarter: -01, -04, -07 or -10) or 'unstable'.",
)


class Shop(models.Model):
    """A Shopify store the console supports, with the credentials our integration uses for it.

    Secrets are stored as given and shown masked everywhere. During a webhook-secret rotation the
    previous secret keeps verifying until `previous_secret_retire_at`.
    """

    class State(models.TextChoices):
        INSTALLED = "installed", "Installed"
        UNINSTALLED = "uninstalled", "Uninstalled"

    domain = models.CharField(max_length=255, unique=True, validators=[shop_domain_validator])
    name = models.CharField(max_length=200, blank=True)
    api_url = models.URLField(
        blank=True,
        help_text="Leave empty for the real Shopify host; set it to point the shop at the simulator.",
    )
    api_version = models.CharField(max_length=16, default=DEFAULT_API_VERSION, validators=[api_version_validator])
    webhook_secret = models.CharField(max_length=255)
    previous_webhook_secret = models.CharField(max_length=255, blank=True)
    previous_secret_retire_at = models.DateTimeField(null=True, blank=True)
    access_token = models.CharField(max_length=255, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.INSTALLED)
    queue_paused = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["domain"]
        permissions = [("manage_shop_secrets", "Can set and rotate a shop's secrets and tokens")]

    def __str__(self) -> str:
        return self.domain

    @property
    def admin_base_url(self) -> str:
        return (self.api_url or f"https://{self.domain}").rstrip("/")

    def verifying_secrets(self, now=None) -> list[str]:
        """Secrets a webhook signature may be made with right now: current first."""
        now = now or timezone.now()
        secrets = [self.webhook_secret]
        if self.previous_webhook_secret and (
            self.previous_secret_retire_at is None or now < self.previous_secret_retire_at
        ):
            secrets.append(self.previous_webhook_secret)
        return secrets

    @property
    def webhook_secret_masked(self) -> str:
        return mask_secret(self.webhook_secret)

    @property
    def previous_webhook_secret_masked(self) -> str:
        return mask_secret(self.previous_webhook_secret)

    @property
    def access_token_masked(self) -> str:
        return mask_secret(self.access_token)


class Event(models.Model):
    """One Shopify webhook event for one shop, however many times Shopify delivered it.

    Unique per (shop, X-Shopify-Webhook-Id) by a database constraint, so concurrent duplicate
    deliveries still make one Event; each delivery raises `delivery_count`. The worker claims
    queued events, runs the topic's handler (which creates Jobs) and settles the status.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        FAILED = "failed", "Failed"
        IGNORED = "ignored", "Ignored"

    class Triage(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"
        IGNORED = "ignored", "Ignored"

    # Not indexed on its own: the unique (shop, webhook_id) and (shop, -id) indexes lead with it.
    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="events", db_index=False)
    webhook_id = models.CharField(max_length=100)
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
    processed_at = models.DateTimeField(null=True, blank=True)
    # Filled by the worker from the payload, so the receiver never parses JSON.
    resource_gid = models.CharField(max_length=255, blank=True)
    resource_id = models.CharField(max_length=40, blank=True)
    resource_label = models.CharField(max_length=100, blank=True)
    resource_updated_at = models.DateTimeField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)
    redaction_note = models.CharField(max_length=255, blank=True)
    # Triage of failures by support.
    triage_state = models.CharField(max_length=16, choices=Triage.choices, default=Triage.OPEN)
    # Indexed only where set (below): most events are never assigned.
    assignee = models.ForeignKey(
        "auth.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="assigned_events", db_index=False
    )
    tags = models.CharField(max_length=255, blank=True)

    class Meta:
        permissions = [("triage_event", "Can assign, tag, acknowledge, resolve or ignore failed events")]
        constraints = [
            models.UniqueConstraint(fields=["shop", "webhook_id"], name="int_event_unique_webhook"),
        ]
        indexes = [
            # The worker's claim query: oldest queued first.
            models.Index(fields=["id"], name="int_event_queued_idx", condition=models.Q(status="queued")),
            # Leases that expired (a worker died mid-batch).
            models.Index(fields=["claimed_at"], name="int_event_claimed_idx", condition=models.Q(status="processing")),
            # Event log filters, newest first (keyset on id).
            models.Index(fields=["shop", "-id"], name="int_event_shop_idx"),
            models.Index(fields=["topic", "-id"], name="int_event_topic_idx"),
            # Queued events are found through int_event_queued_idx, so a new event skips this one.
            models.Index(fields=["status", "-id"], name="int_event_status_idx", condition=~models.Q(status="queued")),
            models.Index(fields=["received_at"], name="int_event_received_idx"),
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


def webhook_id_match(webhook_id: str) -> models.Q:
    """Events with this X-Shopify-Webhook-Id in any shop, found through the unique
    (shop, webhook_id) index: one probe per shop, and shops are few."""
    return models.Q(shop_id__in=list(Shop.objects.values_list("id", flat=True)), webhook_id=webhook_id)


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
    webhook_id = models.CharField(max_length=100, blank=True)
    # Indexed by (event, id) below, which also serves the foreign key.
    event = models.ForeignKey(
        Event, on_delete=models.PROTECT, null=True, blank=True, related_name="deliveries", db_index=False
    )
    headers = models.JSONField(default=dict)
    body = models.BinaryField(null=True, blank=True)
    body_size = models.PositiveIntegerField(default=0)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    signature_valid = models.BooleanField(null=True, help_text="None when never checked (unknown shop, no header).")
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    response_status = models.PositiveSmallIntegerField()
    reason = models.CharField(max_length=255, blank=True)
    duration_ms = models.FloatField(default=0)

    class Meta:
        verbose_name_plural = "deliveries"
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


class Job(models.Model):
    """A unit of downstream work an event caused, e.g. "sync order" or "notify fulfillment".

    Unique per (event, name): a replay or a second run of the same event finds the job rather
    than making another. Each run is an Attempt.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        RETRY_WAIT = "retry_wait", "Waiting to retry"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempt_count = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    retryable = models.BooleanField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "name"], name="integrations_job_unique_per_event")]
        indexes = [
            # Retries that are due.
            models.Index(fields=["next_attempt_at"], name="int_job_retry_idx", condition=models.Q(status="retry_wait")),
        ]

    def __str__(self) -> str:
        return f"{self.name} for event {self.event_id}"


class Attempt(models.Model):
    """One run of a Job: when, how it ended, and if it failed, why and whether a retry can help."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    error_class = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    retryable = models.BooleanField(null=True)
    replay = models.BooleanField(default=False)

    class Meta:
        ordering = ["job_id", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="integrations_attempt_unique_number")]

    def __str__(self) -> str:
        return f"{self.job} attempt {self.number}: {self.outcome}"


# --- The demo platform: the system that integrates with Shopify -----------------------------
# Handlers keep these in sync. Every record carries Shopify's `updated_at` so an older event
# never overwrites newer state, whatever order deliveries arrive in.


class PlatformRecord(models.Model):
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    shopify_updated_at = models.DateTimeField()
    synced_at = models.DateTimeField(auto_now=True)
    last_event = models.ForeignKey(Event, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        abstract = True


class PlatformCustomer(PlatformRecord):
    shopify_id = models.BigIntegerField()
    gid = models.CharField(max_length=255)
    email = models.CharField(max_length=255, blank=True)
    first_name = models.CharField(max_length=255, blank=True)
    last_name = models.CharField(max_length=255, blank=True)
    phone = models.CharField(max_length=64, blank=True)
    tags = models.TextField(blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="integrations_customer_unique")]

    def __str__(self) -> str:
        return self.gid


class PlatformOrder(PlatformRecord):
    shopify_id = models.BigIntegerField()
    gid = models.CharField(max_length=255)
    name = models.CharField(max_length=64, blank=True)
    order_number = models.BigIntegerField(null=True, blank=True)
    email = models.CharField(max_length=255, blank=True)
    customer_shopify_id = models.BigIntegerField(null=True, blank=True)
    financial_status = models.CharField(max_length=32, blank=True)
    fulfillment_status = models.CharField(max_length=32, blank=True)
    total_price = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=8, blank=True)
    tags = models.TextField(blank=True)
    line_items = models.JSONField(default=list)
    shipping_address = models.JSONField(null=True, blank=True)
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="integrations_order_unique")]

    def __str__(self) -> str:
        return self.name or self.gid


class PlatformProduct(PlatformRecord):
    shopify_id = models.BigIntegerField()
    gid = models.CharField(max_length=255)
    title = models.CharField(max_length=255, blank=True)
    handle = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=32, blank=True)
    vendor = models.CharField(max_length=255, blank=True)
    tags = models.TextField(blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="integrations_product_unique")]

    def __str__(self) -> str:
        return self.title or self.gid


class PlatformVariant(PlatformRecord):
    shopify_id = models.BigIntegerField()
    gid = models.CharField(max_length=255)
    product_shopify_id = models.BigIntegerField()
    title = models.CharField(max_length=255, blank=True)
    sku = models.CharField(max_length=255, blank=True)
    price = models.CharField(max_length=32, blank=True)
    inventory_item_id = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "shopify_id"], name="integrations_variant_unique")]

    def __str__(self) -> str:
        return self.sku or self.gid


class PlatformInventoryLevel(PlatformRecord):
    inventory_item_id = models.BigIntegerField()
    location_id = models.BigIntegerField()
    available = models.IntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "inventory_item_id", "location_id"], name="integrations_level_unique"
            )
        ]

    def __str__(self) -> str:
        return f"item {self.inventory_item_id} @ {self.location_id}: {self.available}"


class FulfillmentNotification(models.Model):
    """The fulfillment queue was told about a paid order. At most one per order, ever: the
    unique constraint is what makes replays and worker crashes safe here."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="+")
    order_shopify_id = models.BigIntegerField()
    order_name = models.CharField(max_length=64, blank=True)
    event = models.ForeignKey(Event, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["shop", "order_shopify_id"], name="integrations_fulfillment_once")
        ]

    def __str__(self) -> str:
        return f"fulfill {self.order_name or self.order_shopify_id}"


class PrivacyRequest(models.Model):
    """A mandatory privacy webhook we must act on within Shopify's deadline (30 days)."""

    class Kind(models.TextChoices):
        DATA_REQUEST = "customers/data_request", "Customer data request"
        CUSTOMER_REDACT = "customers/redact", "Customer redaction"
        SHOP_REDACT = "shop/redact", "Shop redaction"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        COMPLETED = "completed", "Completed"

    shop = models.ForeignKey(Shop, on_delete=models.PROTECT, related_name="privacy_requests")
    event = models.OneToOneField(Event, on_delete=models.PROTECT, related_name="privacy_request")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    customer_shopify_id = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    completed_at = models.DateTimeField(null=True, blank=True)
    proof = models.JSONField(null=True, blank=True, help_text="What was exported or scrubbed, with counts.")
    export = models.JSONField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["due_at"], name="int_privacy_open_idx", condition=models.Q(state="pending"))]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.shop}"

    @property
    def overdue(self) -> bool:
        return self.state == self.State.PENDING and timezone.now() > self.due_at


class WorkerHeartbeat(models.Model):
    """Last sign of life of the event pump, so the dashboard can say whether the worker is alive."""

    name = models.CharField(max_length=64, unique=True)
    owner = models.CharField(max_length=64, blank=True, help_text="The pump holding the lease.")
    beat_at = models.DateTimeField()
    processed_total = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%H:%M:%S}"


class TriageNote(models.Model):
    """A triage action on an event (assign, tag, acknowledge, resolve, ignore, reopen) with its note."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="triage_notes")
    author = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, related_name="+")
    action = models.CharField(max_length=32)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.action} on {self.event_id}"


class SavedView(models.Model):
    """A named event-log filter a user keeps (the query string of the filter form)."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="integrations_savedview_unique_name")]

    def __str__(self) -> str:
        return self.name
