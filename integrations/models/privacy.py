"""Mandatory privacy webhooks and what we did about each."""

from django.core.exceptions import PermissionDenied
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
    export = models.JSONField(null=True, blank=True)

    class Meta:
        permissions = [("export_privacy_data", "Can download a customer data-request export")]
        indexes = [models.Index(fields=["due_at"], name="int_privacy_open_idx", condition=models.Q(state="pending"))]
        constraints = [
            models.CheckConstraint(
                condition=~models.Q(state="completed") | models.Q(completed_at__isnull=False),
                name="int_privacy_completed_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for {self.shop}"

    @property
    def overdue(self) -> bool:
        return self.state == self.State.PENDING and timezone.now() > self.due_at


class PrivacyProofQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise PermissionDenied("Privacy proof is append-only.")

    def delete(self):
        raise PermissionDenied("Privacy proof is append-only.")


class PrivacyProof(models.Model):
    """What one run of a privacy job exported or scrubbed, with counts. Append-only: a second run
    adds a row, so the proof of the first is never lost."""

    request = models.ForeignKey(PrivacyRequest, on_delete=models.PROTECT, related_name="proofs")
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)
    counts = models.JSONField()

    objects = PrivacyProofQuerySet.as_manager()

    class Meta:
        ordering = ["recorded_at", "id"]

    def __str__(self) -> str:
        return f"proof for {self.request} at {self.recorded_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise PermissionDenied("Privacy proof is append-only.")
        super().save(*args, **kwargs)

    save.alters_data = True

    def delete(self, *args, **kwargs):
        raise PermissionDenied("Privacy proof is append-only.")

    delete.alters_data = True
