"""Downstream work an event causes: Jobs, one Attempt per run, and the pumps' heartbeats."""

from django.db import models
from django.utils import timezone

from integrations.models.inbound import Event


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


class WorkerHeartbeat(models.Model):
    """Last sign of life of the event pump, so the dashboard can say whether the worker is alive."""

    name = models.CharField(max_length=64, unique=True)
    owner = models.CharField(max_length=64, blank=True, help_text="The pump holding the lease.")
    beat_at = models.DateTimeField()
    processed_total = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%H:%M:%S}"
