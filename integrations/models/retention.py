"""One run of the retention purge (RetentionRun): when, the settings in force, what each step did,
and what went wrong. `integrations.inbound.retention` writes it; the dashboard and
`manage.py retention status` read the latest ones."""

from django.db import models
from django.utils import timezone


class RetentionRun(models.Model):
    """What one run of `integrations.inbound.retention.run_retention` did.

    `steps` holds one entry per step, e.g. `{"payloads": {"done": 1000, "batches": 2, "more": true}}`
    (`done`: events purged, or rows deleted; `more`: the run stopped at its batch limit and a backlog
    remains for the next run). The attempt-thinning steps walk the attempt tables in primary-key
    order; `cursors` keeps where each stopped, so the next run resumes there.
    """

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Worker schedule"
        COMMAND = "command", "Command line"

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    settings = models.JSONField(default=dict, help_text="The retention settings in force for this run.")
    steps = models.JSONField(default=dict, help_text="What each step did: counts, batches, backlog left.")
    cursors = models.JSONField(default=dict, help_text="Highest attempt id examined, per attempt table.")
    errors = models.TextField(blank=True)

    class Meta:
        indexes = [models.Index(fields=["started_at"], name="int_retention_started_idx")]

    def __str__(self) -> str:
        return f"retention run {self.pk} at {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def purged_anything(self) -> bool:
        return any(step.get("done") for step in self.steps.values())
