from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import models


class AuditEntryQuerySet(models.QuerySet):
    """Reads only: bulk updates and deletes are refused so no code path can rewrite history."""

    def update(self, **kwargs):
        raise PermissionDenied("The audit trail is append-only.")

    def delete(self):
        raise PermissionDenied("The audit trail is append-only.")

    def for_object(self, obj: models.Model) -> "AuditEntryQuerySet":
        return self.filter(target_type=ContentType.objects.get_for_model(obj), target_id=str(obj.pk))


class AuditEntry(models.Model):
    """One operator action: who did what to which object, with before/after values and a reason.

    Append-only. The model refuses updates and deletes, the admin is read-only, and the database
    itself refuses UPDATE, DELETE and (PostgreSQL) TRUNCATE on the table, whatever the caller:
    triggers from migrations 0003 and 0004; only `manage.py flush` may empty it (console/append_only.py).
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No database constraint and DO_NOTHING: deleting a user must neither fail nor rewrite the
    # rows that name them; actor_label keeps the name as it was.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150)
    verb = models.CharField(max_length=64, db_index=True)
    target_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, null=True, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    target_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [
            # Per-object history page.
            models.Index(fields=["target_type", "target_id", "-id"], name="console_audit_target_idx"),
            # Filter by actor, newest first.
            models.Index(fields=["actor", "-id"], name="console_audit_actor_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.verb} {self.target_repr}".strip()

    def save(self, *args, **kwargs):
        if self.pk is not None and not self._state.adding:
            raise PermissionDenied("The audit trail is append-only.")
        super().save(*args, **kwargs)

    save.alters_data = True

    def delete(self, *args, **kwargs):
        raise PermissionDenied("The audit trail is append-only.")

    delete.alters_data = True


class ReadinessProbe(models.Model):
    """One row, rewritten by every readiness check (console.readiness.database): proof that the
    database takes a write and commits it, without touching anything that matters."""

    beat_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"readiness probe at {self.beat_at:%H:%M:%S}"
