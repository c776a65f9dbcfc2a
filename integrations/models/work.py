"""Downstream work an event causes: Jobs, one Attempt per run, and the pumps' heartbeats."""

from django.db import models
from django.utils import timezone

from integrations.models.inbound import Event
from integrations.models.states import StateMachine


class Job(models.Model):
    """A unit of downstream work an event caused, e.g. "sync order" or "notify fulfillment".

    Unique per (event, name): a replay or a second run of the same event finds the job rather
    than making another. Each run is an Attempt. A job is written with the outcome of its run in
    the same transaction as the run's side effects, so "running" is never stored: a run cut off by
    a dying pump leaves no trace but the "worker lost" attempt recovery adds.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RETRY_WAIT = "retry_wait", "Waiting to retry"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        HELD = "held", "Held: handler disabled"  # not run; a replay runs it once it is enabled

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
        constraints = [
            models.UniqueConstraint(fields=["event", "name"], name="int_job_unique_per_event"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "retry_wait", "succeeded", "failed", "held"]),
                name="int_job_status_valid",
            ),
            models.CheckConstraint(
                condition=~models.Q(status="retry_wait") | models.Q(next_attempt_at__isnull=False),
                name="int_job_retry_has_time",
            ),
            models.CheckConstraint(
                condition=~models.Q(status__in=["succeeded", "failed"]) | models.Q(finished_at__isnull=False),
                name="int_job_finished_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} for event {self.event_id}"


JobStatus = Job.Status
Job.STATES = StateMachine(
    "status",
    {
        JobStatus.PENDING: {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RETRY_WAIT, JobStatus.HELD},
        # A retry that fails again and may still pass waits again; one due while its handler is
        # disabled is held.
        JobStatus.RETRY_WAIT: {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RETRY_WAIT, JobStatus.HELD},
        # A replay runs a finished or held job again.
        JobStatus.SUCCEEDED: {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RETRY_WAIT},
        JobStatus.FAILED: {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RETRY_WAIT},
        JobStatus.HELD: {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.RETRY_WAIT},
    },
)


class Attempt(models.Model):
    """One run of a Job: when, what started it, where it ran, how it ended, and if it failed, why
    and whether a retry can help."""

    class Outcome(models.TextChoices):
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Trigger(models.TextChoices):
        FIRST = "first", "First run"
        RETRY = "retry", "Retry"
        REPLAY = "replay", "Replay"
        RECOVERY = "recovery", "Recovery (worker lost)"

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    error_class = models.CharField(max_length=200, blank=True)
    message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    retryable = models.BooleanField(null=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.FIRST)
    worker = models.CharField(max_length=100, blank=True, help_text="Host and process of the pump that ran it.")
    # The replay that ran it (trigger "replay"); its audit entry says who asked and why.
    replay = models.ForeignKey(
        "integrations.ReplayRequest", on_delete=models.SET_NULL, null=True, blank=True, related_name="attempts"
    )

    class Meta:
        ordering = ["job_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["job", "number"], name="int_attempt_unique_number"),
            models.CheckConstraint(
                condition=models.Q(outcome__in=["succeeded", "failed"]), name="int_attempt_outcome_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} attempt {self.number}: {self.outcome}"


class WorkerHeartbeat(models.Model):
    """Last sign of life of one event pump (named host:pid:tag). Recovery gives back the claims of
    a pump whose heartbeat stopped; the dashboard says whether any pump is alive."""

    name = models.CharField(max_length=100, unique=True)
    started_at = models.DateTimeField(default=timezone.now)
    beat_at = models.DateTimeField()
    processed_total = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} at {self.beat_at:%H:%M:%S}"
