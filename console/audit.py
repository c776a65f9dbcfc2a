"""Writing to the audit trail. Every operator action calls `record_action` in the same transaction
as the change it describes, so the trail never claims a change that was rolled back."""

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.http import HttpRequest

from console.clientip import client_ip
from console.models import AuditEntry


def acting_user(actor):
    """`actor` when it is a signed-in user, else None (a command run without --user, a rule)."""
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None


def actor_label(actor, *, nobody: str = "system") -> str:
    """Who acted, as a name: the user's, else `nobody`."""
    user = acting_user(actor)
    return user.get_username() if user is not None else nobody


def record_action(
    *,
    actor,
    verb: str,
    target: models.Model | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    request: HttpRequest | None = None,
) -> AuditEntry:
    """Append one entry. `actor` may be None for system actions (commands, the worker)."""
    return AuditEntry.objects.create(
        actor=acting_user(actor),
        actor_label=actor_label(actor),
        verb=verb,
        target_type=ContentType.objects.get_for_model(target) if target is not None else None,
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        before=before,
        after=after,
        reason=reason,
        source_ip=client_ip(request) if request is not None else None,
    )


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict, dict]:
    """Only the keys whose values differ, so an entry shows what actually changed."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}
