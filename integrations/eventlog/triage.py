"""Triage of events by support: assign, tag, acknowledge, resolve, ignore, reopen.

Each service makes a conditional update (it only applies if the event is still as the caller saw
it), and when it applies writes an EventHistory row and an audit entry in the same transaction. It
returns False when someone else got there first, so the caller can say so instead of overwriting.
The triage states and their transitions are declared beside the model (`Event.TRIAGE`).
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from console.audit import record_action
from console.roles import ADMIN, SUPPORT
from integrations.models import Event, EventHistory

Triage = Event.Triage

# action -> (states it may start from, state it leads to); every pair is declared in Event.TRIAGE.
TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "acknowledge": ((Triage.OPEN,), Triage.ACKNOWLEDGED),
    "resolve": ((Triage.OPEN, Triage.ACKNOWLEDGED), Triage.RESOLVED),
    "ignore": ((Triage.OPEN, Triage.ACKNOWLEDGED), Triage.IGNORED),
    "reopen": ((Triage.ACKNOWLEDGED, Triage.RESOLVED, Triage.IGNORED), Triage.OPEN),
}
for _sources, _target in TRANSITIONS.values():
    Event.TRIAGE.check(_sources, _target)
PAST_TENSE = {"acknowledge": "acknowledged", "resolve": "resolved", "ignore": "ignored", "reopen": "reopened"}
MAX_TAGS_LENGTH = Event._meta.get_field("tags").max_length
# Where triage means something: processing went wrong, or a person set the event aside.
TRIAGE_STATUSES = (Event.Status.FAILED, Event.Status.RETRY_WAIT, Event.Status.IGNORED)


def is_triageable(event: Event) -> bool:
    """Whether support can triage the event: it failed, waits to retry or was ignored, or triage
    already started on it (a state other than open, an assignee or tags), which must stay possible
    to finish or undo after the event recovers. A processed or queued event nobody triaged has
    nothing to triage."""
    return (
        event.status in TRIAGE_STATUSES
        or event.triage_state != Triage.OPEN
        or event.assignee_id is not None
        or bool(event.tags)
    )


def assignable_users() -> QuerySet:
    """Who an event can be assigned to: active members of the support and admin roles."""
    return (
        get_user_model()
        .objects.filter(is_active=True, groups__name__in=[SUPPORT, ADMIN])
        .distinct()
        .order_by("username")
    )


def change_triage_state(
    *,
    event: Event,
    action: str,
    by,
    note: str = "",
    request: HttpRequest | None = None,
    expected: str | None = None,
    rule: str = "",
) -> bool:
    """Move the event's triage state along TRANSITIONS[action] (e.g. open -> acknowledged).

    With `expected`, only from that state (a rule that read it earlier must not overwrite a change
    a person made since). False, and nothing written, if the event is no longer in a state the
    action starts from. `by` is None when a rule acts; `rule` then names it.
    """
    from_states, to_state = TRANSITIONS[action]
    with transaction.atomic():
        before = expected or Event.objects.filter(pk=event.pk).values_list("triage_state", flat=True).first()
        if before not in from_states:
            return False
        # Conditional on the state just read: of two concurrent actions, only one applies.
        changed = Event.TRIAGE.move(Event.objects.filter(pk=event.pk), source=before, target=to_state)
        if changed:
            _record(event, action, by, note, {"triage_state": before}, {"triage_state": to_state}, request, rule=rule)
    if changed:
        event.triage_state = to_state
    return bool(changed)


def acknowledge_event(*, event: Event, by, note: str = "", request: HttpRequest | None = None) -> bool:
    """open -> acknowledged: someone is looking at it."""
    return change_triage_state(event=event, action="acknowledge", by=by, note=note, request=request)


def resolve_event(*, event: Event, by, note: str = "", request: HttpRequest | None = None) -> bool:
    """open/acknowledged -> resolved: the cause is fixed (or the event replayed fine)."""
    return change_triage_state(event=event, action="resolve", by=by, note=note, request=request)


def ignore_event(*, event: Event, by, note: str = "", request: HttpRequest | None = None) -> bool:
    """open/acknowledged -> ignored: a known, harmless failure nobody needs to act on."""
    return change_triage_state(event=event, action="ignore", by=by, note=note, request=request)


def reopen_event(*, event: Event, by, note: str = "", request: HttpRequest | None = None) -> bool:
    """acknowledged/resolved/ignored -> open."""
    return change_triage_state(event=event, action="reopen", by=by, note=note, request=request)


def assign_event(*, event: Event, assignee, by, note: str = "", request: HttpRequest | None = None) -> bool:
    """Set (or clear, with None) who owns the event's triage.

    Applies only if the assignee is still the one `event` holds, so two people assigning at once
    cannot silently overwrite each other. False, and nothing written, otherwise or if unchanged.
    """
    expected_id = event.assignee_id
    new_id = assignee.pk if assignee is not None else None
    if new_id == expected_id:
        return False
    with transaction.atomic():
        changed = Event.objects.filter(pk=event.pk, assignee_id=expected_id).update(assignee_id=new_id)
        if changed:
            before_name = event.assignee.get_username() if expected_id is not None else None
            after_name = assignee.get_username() if assignee is not None else None
            _record(event, "assign", by, note, {"assignee": before_name}, {"assignee": after_name}, request)
    if changed:
        event.assignee = assignee
    return bool(changed)


def tag_event(*, event: Event, tags: list[str], by, note: str = "", request: HttpRequest | None = None) -> bool:
    """Replace the event's tags (normalised: trimmed, lower case, de-duplicated, order kept).

    Conditional on the tags `event` holds, like `assign_event`. False if unchanged or raced.
    """
    new_tags = normalise_tags(tags)
    if len(new_tags) > MAX_TAGS_LENGTH:
        raise ValueError(f"Tags are limited to {MAX_TAGS_LENGTH} characters in all.")
    expected = event.tags
    if new_tags == expected:
        return False
    with transaction.atomic():
        changed = Event.objects.filter(pk=event.pk, tags=expected).update(tags=new_tags)
        if changed:
            _record(event, "tag", by, note, {"tags": expected}, {"tags": new_tags}, request)
    if changed:
        event.tags = new_tags
    return bool(changed)


def normalise_tags(tags: list[str]) -> str:
    seen: list[str] = []
    for raw in tags:
        for tag in raw.split(","):
            tag = tag.strip().lower()
            if tag and tag not in seen:
                seen.append(tag)
    return ",".join(seen)


def _record(event: Event, action: str, by, note: str, before: dict, after: dict, request, rule: str = "") -> None:
    EventHistory.objects.create(
        event=event,
        author=by,
        rule=rule,
        action=rule or action,
        before=_plain(before),
        after=_plain(after),
        note=note,
    )
    verb = f"event.{rule or action}"
    record_action(actor=by, verb=verb, target=event, before=before, after=after, reason=note, request=request)


def _plain(values: dict) -> str:
    return ", ".join(f"{value}" for value in values.values() if value is not None)[:255]
