"""A shop's API health: the checks run against it (scopes, token, API version, webhook
subscriptions), what holds its outbound calls, the subscriptions Shopify dropped and the gaps they
left, the deprecations Shopify reported, and who owns which data (with the drift from that)."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models.shops import Shop


class HealthCheck(models.Model):
    """One run of a check against a shop, kept as history (append-only by use)."""

    class Kind(models.TextChoices):
        ALL = "all", "Every check"
        SCOPES = "scopes", "Access scopes"
        TOKEN = "token", "Access token"
        VERSION = "version", "API version"
        SUBSCRIPTIONS = "subscriptions", "Webhook subscriptions"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="health_checks", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    checked_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    problems = models.JSONField(default=list, help_text="What is wrong, one sentence each.")
    details = models.JSONField(default=dict)
    triggered_by = models.CharField(max_length=100, blank=True, help_text="schedule, a person, a command.")

    class Meta:
        indexes = [models.Index(fields=["shop", "kind", "-id"], name="int_health_shop_idx")]

    def __str__(self) -> str:
        return f"{self.kind} check of {self.shop_id}: {'ok' if self.ok else 'problems'}"


class OutboundHold(models.Model):
    """Holds some of a shop's outbound calls until the cause clears: a missing scope holds the
    operations that need it (not the whole shop); a token that cannot be refreshed holds all."""

    class Kind(models.TextChoices):
        SCOPE = "scope", "Missing scope"
        TOKEN = "token", "Token cannot be refreshed"

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="outbound_holds", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    scope = models.CharField(max_length=100, blank=True)
    reason = models.TextField()
    since = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)
    cleared_reason = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "kind", "scope"],
                condition=models.Q(cleared_at__isnull=True),
                name="int_hold_one_open",
            ),
            models.CheckConstraint(condition=models.Q(kind__in=["scope", "token"]), name="int_hold_kind_valid"),
        ]
        indexes = [models.Index(fields=["shop"], name="int_hold_open_idx", condition=models.Q(cleared_at__isnull=True))]

    def __str__(self) -> str:
        return f"{self.kind} hold on {self.shop_id}: {self.scope or self.reason[:40]}"


class SubscriptionGap(models.Model):
    """A webhook subscription the shop should have and does not (Shopify deletes an API-created
    subscription whose deliveries keep failing). From `gap_from` (the last delivery of the topic we
    received) until it is re-subscribed, changes to that topic's records never reached us: the
    window a reconciliation must cover."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="subscription_gaps", db_index=False)
    topic = models.CharField(max_length=100)
    detected_at = models.DateTimeField(default=timezone.now)
    gap_from = models.DateTimeField(null=True, blank=True, help_text="The last webhook of this topic we received.")
    resubscribed_at = models.DateTimeField(null=True, blank=True)
    resubscribed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When a check found the subscription again.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["shop", "topic"], condition=models.Q(closed_at__isnull=True), name="int_gap_one_open"
            )
        ]
        indexes = [models.Index(fields=["shop", "-id"], name="int_gap_shop_idx")]

    def __str__(self) -> str:
        return f"{self.topic} missing on {self.shop_id} since {self.gap_from or self.detected_at}"


class ApiNotice(models.Model):
    """A deprecation Shopify reported (`X-Shopify-API-Deprecated-Reason`) on one of our calls."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="api_notices", db_index=False)
    notice = models.CharField(max_length=500)
    api_version = models.CharField(max_length=16, blank=True)
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    times = models.PositiveIntegerField(default=1)
    last_call = models.ForeignKey(
        "integrations.OutboundCall", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["shop", "notice"], name="int_notice_unique")]

    def __str__(self) -> str:
        return self.notice


class OwnershipRule(models.Model):
    """Who owns the truth of a resource (or one field of it) for one shop, overriding the default
    declared in code (`integrations.jobs.fields`). `field` empty: the whole resource."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="ownership_rules", db_index=False)
    resource = models.CharField(max_length=32)
    field = models.CharField(max_length=64, blank=True)
    owner = models.CharField(max_length=64, help_text='"shopify", "platform", or another named system.')
    changed_at = models.DateTimeField(default=timezone.now)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )

    class Meta:
        permissions = [("manage_ownership", "Can change who owns which data, and override a non-owner write")]
        constraints = [models.UniqueConstraint(fields=["shop", "resource", "field"], name="int_owner_unique")]

    def __str__(self) -> str:
        return f"{self.resource}{'.' + self.field if self.field else ''}: {self.owner}"


class OwnershipDrift(models.Model):
    """A webhook that is not an echo of our own call changed a field the platform owns: something
    else wrote it in Shopify."""

    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="ownership_drifts", db_index=False)
    resource = models.CharField(max_length=32)
    field = models.CharField(max_length=64)
    record_gid = models.CharField(max_length=255)
    event = models.ForeignKey("integrations.Event", on_delete=models.CASCADE, related_name="+", db_index=False)
    before = models.TextField(blank=True, help_text="The platform's value.")
    after = models.TextField(blank=True, help_text="The value the webhook carried.")
    observed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["event", "field"], name="int_drift_once_per_event")]
        indexes = [models.Index(fields=["shop", "-observed_at"], name="int_drift_shop_idx")]

    def __str__(self) -> str:
        return f"{self.resource}.{self.field} drift on {self.record_gid}"
