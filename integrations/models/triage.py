"""What support does with events: the history of changes people and rules made, and saved event-log filters."""

from django.db import models

from integrations.models.inbound import Event


class EventHistory(models.Model):
    """A change to an event that a person or a rule made: triage (assign, tag, acknowledge, resolve,
    ignore, reopen), auto-resolve, a status set by hand. Machine processing keeps its record in
    Attempts instead. `author` is empty when a rule acted; `rule` then names it."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="history")
    author = models.ForeignKey("auth.User", on_delete=models.SET_NULL, null=True, related_name="+")
    rule = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=32)
    before = models.CharField(max_length=255, blank=True)
    after = models.CharField(max_length=255, blank=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.action} on event {self.event_id}"


class SavedView(models.Model):
    """A named event-log filter a user keeps (the query string of the filter form)."""

    user = models.ForeignKey("auth.User", on_delete=models.CASCADE, related_name="saved_views")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="int_savedview_unique_name")]

    def __str__(self) -> str:
        return self.name
