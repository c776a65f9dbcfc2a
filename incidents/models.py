from django.conf import settings
from django.db import models
from django.utils import timezone

# What each severity means for merchants and shoppers, in words customer service can repeat.
SEVERITY_FOR_CUSTOMERS = {
    "sev1": "Orders cannot be completed or shipped right now. Customers are affected; tell them we are on it "
    "and that their order is safe, and do not promise a time.",
    "sev2": "Something customers can notice is slow or wrong (for example stock levels or order updates). "
    "Orders still go through.",
    "sev3": "Something behind the scenes is slow or failing. Customers should not notice yet.",
    "sev4": "A small or internal problem. Nothing for customers to notice.",
}


class Incident(models.Model):
    """An operational event affecting the business, from detection to resolution."""

    class Severity(models.TextChoices):
        SEV1 = "sev1", "SEV1 — orders or fulfillment blocked"
        SEV2 = "sev2", "SEV2 — degraded, customers affected"
        SEV3 = "sev3", "SEV3 — degraded, no customer impact yet"
        SEV4 = "sev4", "SEV4 — cosmetic or internal only"

    class Status(models.TextChoices):
        INVESTIGATING = "investigating", "Investigating"
        IDENTIFIED = "identified", "Identified"
        CONTAINED = "contained", "Contained"
        MONITORING = "monitoring", "Monitoring"
        RESOLVED = "resolved", "Resolved"

    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INVESTIGATING)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    opened_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("view_status_board", "Can read the customer-service status board")]
        indexes = [models.Index(fields=["status", "-opened_at"], name="incidents_open_idx")]

    def __str__(self) -> str:
        return f"{self.get_severity_display().split(' ')[0]}: {self.title}"

    @property
    def severity_label(self) -> str:
        return self.get_severity_display().split(" ")[0]

    @property
    def severity_for_customers(self) -> str:
        return SEVERITY_FOR_CUSTOMERS[self.severity]


class IncidentUpdate(models.Model):
    """A status update. Customer service only ever sees confirmed updates meant for them."""

    class Audience(models.TextChoices):
        INTERNAL = "internal", "Engineering and support only"
        CUSTOMER_SERVICE = "customer_service", "Customer service"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="updates")
    body = models.TextField()
    audience = models.CharField(max_length=24, choices=Audience.choices, default=Audience.INTERNAL)
    confirmed = models.BooleanField(
        default=False, help_text="Confirmed enough to share: facts, not guesses or promises."
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
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
