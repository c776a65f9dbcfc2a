"""An alert is one rule breaching for one subject (a shop, a shop's topic, the event backlog, an
incident), from the evaluation that first saw it until the one that no longer does. While it fires
it is the only firing row for its (rule, subject): a partial unique constraint, so evaluators
running at once cannot open it twice. A resolved alert stays as history; the next breach opens a
new one."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from integrations.models.states import StateMachine


class Alert(models.Model):
    class Status(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    rule = models.CharField(max_length=64)
    subject = models.CharField(max_length=255, help_text="What it is about: a shop, a shop's topic, the backlog.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FIRING)
    severity = models.CharField(max_length=8, help_text="sev1..sev4: whose notification list hears of it.")
    audience = models.CharField(max_length=24, help_text="The incidents audience whose list is e-mailed.")
    summary = models.TextField(help_text="What is wrong, in plain words (as last seen).")
    details = models.JSONField(default=dict, help_text="The figures behind it (as last seen).")
    first_fired_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True, help_text="When its firing notice went out.")
    resolved_notified_at = models.DateTimeField(null=True, blank=True, help_text="When its resolution notice went out.")
    notice_error = models.TextField(blank=True, help_text="Why the last notice (e-mail or Slack) failed, if it did.")

    class Meta:
        ordering = ["-id"]
        permissions = [("silence_alert", "Can silence alerts for a time, and lift a silence")]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"], condition=models.Q(status="firing"), name="alerts_one_firing"
            ),
            models.CheckConstraint(condition=models.Q(status__in=["firing", "resolved"]), name="alerts_status_valid"),
            models.CheckConstraint(
                condition=~models.Q(status="resolved") | models.Q(resolved_at__isnull=False),
                name="alerts_resolved_has_time",
            ),
        ]
        indexes = [
            # "Recently resolved" on the page, and the resolution notices still to send.
            models.Index(fields=["-resolved_at"], name="alerts_resolved_idx", condition=models.Q(status="resolved")),
        ]

    def __str__(self) -> str:
        return f"{self.rule} · {self.subject} ({self.status})"

    @property
    def title(self) -> str:
        from console.alerts.rules import RULES

        rule = RULES.get(self.rule)
        return rule.title if rule else self.rule


# A resolved alert never fires again: the next breach of its rule and subject is a new alert.
Alert.STATES = StateMachine("status", {Alert.Status.FIRING: {Alert.Status.RESOLVED}})


class AlertNotice(models.Model):
    """One notice about one alert on one channel: who it went to, and whether it got there."""

    class Kind(models.TextChoices):
        FIRING = "firing", "Firing"
        RESOLVED = "resolved", "Resolved"

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        SLACK = "slack", "Slack webhook"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="notices")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    recipients = models.JSONField(default=list, blank=True)
    sent_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} notice of alert {self.alert_id} by {self.channel}: {'sent' if self.ok else 'failed'}"


class AlertSilence(models.Model):
    """Until `until` (or until lifted), a rule's alerts for `subject` (empty: every subject) still
    open and resolve but notify nobody. Setting and lifting one are in the audit trail."""

    rule = models.CharField(max_length=64)
    subject = models.CharField(max_length=255, blank=True, help_text="Empty: every subject of the rule.")
    until = models.DateTimeField()
    reason = models.TextField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    created_by_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now)
    lifted_at = models.DateTimeField(null=True, blank=True)
    lifted_by_label = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["until"], name="alerts_silence_idx", condition=models.Q(lifted_at__isnull=True))
        ]

    def __str__(self) -> str:
        return f"{self.rule} · {self.subject or 'every subject'} silenced until {self.until:%Y-%m-%d %H:%M}"

    def active(self, now=None) -> bool:
        return self.lifted_at is None and self.until > (now or timezone.now())

    def covers(self, rule: str, subject: str) -> bool:
        return self.rule == rule and (not self.subject or self.subject == subject)
