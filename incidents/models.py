from django.conf import settings
from django.db import models


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
