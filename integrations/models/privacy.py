"""Mandatory privacy webhooks and what we did about each."""

from django.db import models
from django.utils import timezone

from integrations.models.inbound import Event
from integrations.models.shops import Shop


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
