"""Status changes a person or a rule makes to an event, as named services.

Machine processing records itself in Attempts; these record themselves too: each writes an
EventHistory row and an audit entry in the same transaction as the change, goes through the
declared state machines, and returns False when the event moved on since it was read.
"""

from django.db import transaction
from django.http import HttpRequest

from console.audit import record_action
from integrations.eventlog.triage import change_triage_state
from integrations.models import Event, EventHistory, Job

Status = Event.Status
AUTO_RESOLVE = "auto-resolve"


def resolve_superseded_failures(outcomes) -> int:
    """A failed event for a record is resolved once the same record was synced by a newer (or the
    same) version that ran every job that failed there: the failure no longer matters for the data.

    One query for the whole batch finds candidates (usually none). Each resolve is conditional on
    the triage state read here, so a person's change made since wins over the rule.
    """
    newest: dict[tuple[int, str], tuple] = {}
    for outcome in outcomes:
        event, resource = outcome.event, outcome.resource
        done = {run.job.name for run in outcome.runs if run.job.status == Job.Status.SUCCEEDED}
        key = (event.shop_id, resource.gid)
        current = newest.get(key)
        if current is None or (resource.updated_at and (current[1] is None or resource.updated_at > current[1])):
            newest[key] = (event, resource.updated_at, done)
    batch_ids = [outcome.event.pk for outcome in outcomes]
    candidates = list(
        Event.objects.filter(
            status=Status.FAILED,
            triage_state__in=[Event.Triage.OPEN, Event.Triage.ACKNOWLEDGED],
            resource_gid__in=sorted({gid for _shop, gid in newest}),
        )
        .exclude(pk__in=batch_ids)
        .values("id", "shop_id", "resource_gid", "resource_updated_at", "triage_state")[:500]
    )
    if not candidates:
        return 0
    failed_jobs: dict[int, set[str]] = {}
    for event_id, name in Job.objects.filter(
        event_id__in=[c["id"] for c in candidates], status=Job.Status.FAILED
    ).values_list("event_id", "name"):
        failed_jobs.setdefault(event_id, set()).add(name)
    resolved = 0
    for candidate in candidates:
        match = newest.get((candidate["shop_id"], candidate["resource_gid"]))
        if match is None:
            continue
        newer, updated_at, done = match
        if (
            updated_at is not None
            and candidate["resource_updated_at"]
            and candidate["resource_updated_at"] > updated_at
        ):
            continue  # the failure is about a newer version than the one synced now
        # Only failures this event made good: a newer orders/updated re-syncs the order but never
        # tells the warehouse, so a failed notify_fulfillment stays open.
        if not failed_jobs.get(candidate["id"]) or not failed_jobs[candidate["id"]] <= done:
            continue
        failed = Event(pk=candidate["id"], triage_state=candidate["triage_state"])
        resolved += change_triage_state(
            event=failed,
            action="resolve",
            by=None,
            rule=AUTO_RESOLVE,
            expected=candidate["triage_state"],
            note=f"Event {newer.pk} ({newer.topic}) for the same record was processed successfully.",
        )
    return resolved


def mark_event_failed(*, event: Event, by, reason: str, request: HttpRequest | None = None) -> bool:
    """queued or waiting to retry -> failed, by a person giving up on it (with the reason)."""
    return _set_status(event, Status.FAILED, by=by, reason=reason, request=request, action="mark-failed")


def mark_event_ignored(*, event: Event, by, reason: str, request: HttpRequest | None = None) -> bool:
    """queued, waiting to retry or failed -> ignored: nothing needs doing for it (with the reason)."""
    return _set_status(event, Status.IGNORED, by=by, reason=reason, request=request, action="mark-ignored")


TARGETS = {"mark_failed": Status.FAILED, "mark_ignored": Status.IGNORED}


def sources_for(action: str) -> tuple[str, ...]:
    """The states a person may move an event out of with `action` (never one a pump holds)."""
    return tuple(s for s in Event.STATES.sources_of(TARGETS[action]) if s != Status.CLAIMED)


def _set_status(event: Event, target: str, *, by, reason: str, request, action: str) -> bool:
    if not reason.strip():
        raise ValueError("Say why (kept on the event and in the audit trail).")
    sources = sources_for(action.replace("-", "_"))
    with transaction.atomic():
        before = Event.objects.filter(pk=event.pk).values_list("status", flat=True).first()
        if before not in sources:
            return False
        changed = Event.STATES.move(
            Event.objects.filter(pk=event.pk),
            source=before,
            target=target,
            next_attempt_at=None,
            status_reason=f"{action.replace('-', ' ')} by {by.get_username() if by else 'a rule'}: {reason}"[:5000],
        )
        if changed:
            EventHistory.objects.create(event=event, author=by, action=action, before=before, after=target, note=reason)
            record_action(
                actor=by,
                verb=f"event.{action}",
                target=event,
                before={"status": before},
                after={"status": target},
                reason=reason,
                request=request,
            )
    if changed:
        event.status = target
    return bool(changed)
