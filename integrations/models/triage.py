"""What support does with events: triage history and saved event-log filters."""

from django.db import models

from integrations.models.inbound import Event


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
