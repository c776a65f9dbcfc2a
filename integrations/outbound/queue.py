"""The outbound queue: putting calls in, holding and releasing a shop's calls, sending a failed
call again, and the JSON a call is described by. Views, jobs and commands call these.

Order: calls run in lane order (live, replay, reconcile), oldest first, and a call never overtakes
an earlier unfinished call for the same record (`due_calls`), so pausing, retries and several
senders never reorder writes to one record.
"""

import hashlib
import json
import operator
import uuid
from functools import reduce

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from console.audit import acting_user, record_action
from integrations.models import Event, OutboundCall, Shop
from integrations.outbound.classify import NEXT_STEPS, NON_RETRYABLE
from integrations.outbound.operations import InvalidInput, get_operation

Status = OutboundCall.Status
Lane = OutboundCall.Lane
MAX_INPUT_BYTES = 64 * 1024
KEY_NAMESPACE = uuid.UUID("8f1b4f8e-52a1-4d8e-9a43-6c1f3b2d7e10")


class QueueError(ValueError):
    """A request the queue refuses, with a message for the person who made it."""


def latest_seen_event(shop: Shop, target_gid: str) -> int | None:
    """The newest webhook about the record that is not an echo of our own call: what we knew of
    the record's state in Shopify (int_event_gid_idx: one index probe)."""
    if not target_gid:
        return None
    return (
        Event.objects.filter(shop=shop, resource_gid=target_gid, echo_of__isnull=True)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )


def default_key(shop: Shop, operation: str, variables: dict, target_gid: str, seen_event_id: int | None) -> str:
    """The key of "make this change, on top of the record's latest call, knowing what we knew":
    the same request made twice in a row (a double click, a script run again) finds the first
    call; the same change asked for again after another call to the record, or after Shopify told
    us the record changed (a webhook that is not our echo), is a new intent and a new call."""
    latest = (
        OutboundCall.objects.filter(shop=shop, target_gid=target_gid)
        .order_by("-id")
        .values("idempotency_key", "operation", "input", "seen_event_id")
        .first()
        if target_gid
        else None
    )
    if (
        latest
        and latest["operation"] == operation
        and latest["input"] == variables
        and latest["seen_event_id"] == seen_event_id
    ):
        return latest["idempotency_key"]
    digest = hashlib.sha256(json.dumps([operation, variables], sort_keys=True).encode()).hexdigest()[:32]
    after = hashlib.sha256(latest["idempotency_key"].encode()).hexdigest()[:12] if latest else "first"
    return f"{operation}:{digest}:after-{after}:seen-{seen_event_id or 0}"


def shopify_idempotency_key(call: OutboundCall) -> str:
    """The `@idempotent(key:)` Shopify sees: derived from the call, the same on every try."""
    return str(uuid.uuid5(KEY_NAMESPACE, f"{call.shop_id}/{call.idempotency_key}"))


def enqueue(
    shop: Shop,
    operation: str,
    variables: dict,
    *,
    origin: str,
    origin_ref: str = "",
    lane: str = Lane.LIVE,
    key: str | None = None,
    why: str = "",
    label: str = "",
    by=None,
    origin_event=None,
    override_reason: str | None = None,
) -> tuple[OutboundCall, bool]:
    """The call for this origin and intent: created (True), or the one already there (False).

    A key already used for other input is refused (QueueError). A call for an uninstalled shop
    is recorded as failed with the reason, so the intent is not lost and nothing is sent."""
    op = get_operation(operation)
    op.check(variables)
    # A write to data the platform does not own is refused unless an admin overrides it (audited).
    from integrations.shops.ownership import check_write  # imports this module

    check_write(shop, operation, variables, override_reason=override_reason, by=by)
    if len(json.dumps(variables)) > MAX_INPUT_BYTES:
        raise QueueError(f"the input is over {MAX_INPUT_BYTES // 1024} KB: split the change into several calls")
    if lane not in Lane.values:
        raise QueueError(f"lane must be one of {', '.join(Lane.values)}")
    target_gid = op.target(variables)[:255]
    seen_event_id = latest_seen_event(shop, target_gid)
    key = (key or default_key(shop, operation, variables, target_gid, seen_event_id)).strip()
    if not key or len(key) > 200:
        raise QueueError("the idempotency key must be 1 to 200 characters")
    now = timezone.now()
    call = OutboundCall(
        shop=shop,
        operation=operation,
        input=variables,
        target_gid=target_gid,
        target_label=label[:100],
        lane=lane,
        priority=OutboundCall.LANE_ORDER[lane],
        origin=origin,
        origin_ref=origin_ref[:200],
        origin_event=origin_event,
        requested_by=acting_user(by),
        why=why[:300],
        idempotency_key=key,
        seen_event_id=seen_event_id,
        expected_cost=op.expected_cost,
        created_at=now,
    )
    # The caller's Shop may be stale (a job's was loaded with its batch): ask the database.
    state, paused = Shop.objects.filter(pk=shop.pk).values_list("state", "queue_paused").get()
    _set_initial_status(call, shop.domain, uninstalled=state == Shop.State.UNINSTALLED, paused=paused)
    try:
        with transaction.atomic():
            call.save()
    except IntegrityError:
        existing = OutboundCall.objects.filter(shop=shop, idempotency_key=key).first()
        if existing is None:
            raise
        if existing.operation != operation or existing.input != variables:
            raise QueueError(
                f"idempotency key {key!r} is already used by call {existing.pk} with other input; "
                "use another key for another intent"
            ) from None
        return existing, False
    return call, True


def _set_initial_status(call: OutboundCall, domain: str, *, uninstalled: bool, paused: bool) -> None:
    """A new call for an uninstalled shop is recorded failed with the reason (the intent is not
    lost, nothing is sent); for a paused shop it is held; else it is queued."""
    if uninstalled:
        kind = "uninstalled"
        call.status, call.finished_at, call.classification = Status.FAILED, call.created_at, NON_RETRYABLE
        call.failure_kind, call.next_step = kind, NEXT_STEPS[kind][1]
        call.reason = f"not sent: the app was uninstalled from {domain}"
    elif paused:
        call.status, call.reason = Status.PAUSED, "held: the shop's queue is paused"


def enqueue_for_event(
    event: Event, operation: str, variables: dict, *, key: str, origin_ref: str, why: str, label: str = ""
) -> tuple[int, bool]:
    """`enqueue` for a job, inside a pump's batch: one INSERT … ON CONFLICT DO NOTHING (no
    savepoint, no lookups), the shop's state as the batch loaded it (a pause or uninstall that
    commits meanwhile is put right by the senders' sweep), and the event itself as what we had seen.
    Returns (call id, created)."""
    op = get_operation(operation)
    op.check(variables)
    # Jobs push only what the platform owns; the shop's rules are cached per shop version (no query).
    from integrations.shops.ownership import cached_rules, check_write  # imports this module

    check_write(event.shop, operation, variables, rules=cached_rules(event.shop))
    shop = event.shop
    now = timezone.now()
    # A job a replay runs pushes in the replay lane, behind live calls, and says which replay.
    from integrations.processing.runner import current_replay  # imports this module's callers

    replay_id = current_replay()
    lane = Lane.REPLAY if replay_id else Lane.LIVE
    call = OutboundCall(
        shop_id=event.shop_id,
        operation=operation,
        input=variables,
        target_gid=op.target(variables)[:255],
        target_label=label[:100],
        lane=lane,
        priority=OutboundCall.LANE_ORDER[lane],
        origin=OutboundCall.Origin.REPLAY if replay_id else OutboundCall.Origin.JOB,
        origin_ref=(f"replay {replay_id}: {origin_ref}" if replay_id else origin_ref)[:200],
        origin_event_id=event.pk,
        why=why[:300],
        idempotency_key=key[:200],
        seen_event_id=event.pk,
        expected_cost=op.expected_cost,
        created_at=now,
    )
    _set_initial_status(call, shop.domain, uninstalled=shop.state == Shop.State.UNINSTALLED, paused=shop.queue_paused)
    created = _insert_unless_key_exists(call)
    if created is not None:
        return created, True
    existing = OutboundCall.objects.filter(shop_id=event.shop_id, idempotency_key=call.idempotency_key)
    return existing.values_list("pk", flat=True).get(), False


def _insert_sql() -> tuple[str, list]:
    fields = [f for f in OutboundCall._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    marks = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {quote(OutboundCall._meta.db_table)} ({columns}) VALUES ({marks}) "  # noqa: S608
        "ON CONFLICT (shop_id, idempotency_key) DO NOTHING RETURNING id"
    )
    return sql, fields


def _insert_unless_key_exists(call: OutboundCall) -> int | None:
    sql, fields = _insert_sql()
    values = [f.get_db_prep_save(f.pre_save(call, add=True), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    return row[0] if row else None


def held_by_holds() -> Q | None:
    """The calls an open OutboundHold keeps back, as a filter (None when nothing is held): every
    call of a shop whose token cannot be refreshed, and the calls whose operation needs a scope
    the shop is missing. One query on the few open holds (int_hold_open_idx)."""
    from integrations.models import OutboundHold
    from integrations.outbound.operations import OPERATIONS

    token_shops: set[int] = set()
    scope_ops: dict[int, set[str]] = {}
    holds = OutboundHold.objects.filter(cleared_at__isnull=True).values_list("shop_id", "kind", "scope")
    for shop_id, kind, scope in holds:
        if kind == OutboundHold.Kind.TOKEN:
            token_shops.add(shop_id)
        elif operations := [name for name, op in OPERATIONS.items() if scope in op.scopes]:
            scope_ops.setdefault(shop_id, set()).update(operations)
    held = [Q(shop_id__in=sorted(token_shops))] if token_shops else []
    held += [
        Q(shop_id=shop_id, operation__in=sorted(operations))
        for shop_id, operations in sorted(scope_ops.items())
        if shop_id not in token_shops
    ]
    return reduce(operator.or_, held) if held else None


def due_calls(now=None, limit: int = 20, exclude_shops: set[int] | frozenset = frozenset()):
    """Calls a sender may take now, best first (leaving out `exclude_shops`, and the calls an
    open hold keeps back: a missing scope or a token that cannot be refreshed)."""
    now = now or timezone.now()
    earlier_unfinished = OutboundCall.objects.filter(
        shop=OuterRef("shop"), target_gid=OuterRef("target_gid"), id__lt=OuterRef("id"), status__in=OutboundCall.ACTIVE
    )
    calls = (
        OutboundCall.objects.filter(status__in=[Status.QUEUED, Status.WAITING])
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .filter(shop__queue_paused=False)
        .filter(Q(target_gid="") | ~Exists(earlier_unfinished))
        .exclude(shop_id__in=list(exclude_shops))
    )
    held = held_by_holds()
    if held is not None:
        calls = calls.exclude(held)
    return calls.order_by("priority", "id").select_related("shop")[:limit]


def _counts(shop: Shop) -> dict:
    from django.db.models import Count

    rows = OutboundCall.objects.filter(shop=shop, status__in=OutboundCall.ACTIVE).values("status")
    return {row["status"]: row["n"] for row in rows.annotate(n=Count("id")).order_by()}


def pause_shop(shop: Shop, *, by, reason: str, request=None) -> int:
    """Hold the shop's queued and waiting calls (in place: nothing lost or reordered) and any new
    ones until resumed. A call already being sent finishes. Returns the calls held."""
    if not reason.strip():
        raise QueueError("Pausing a shop's outbound queue needs a reason (kept in the audit trail).")
    with transaction.atomic():
        shop = Shop.objects.select_for_update().get(pk=shop.pk)
        before = {"queue_paused": shop.queue_paused, "calls": _counts(shop)}
        Shop.objects.filter(pk=shop.pk).update(queue_paused=True, updated_at=timezone.now())
        held = OutboundCall.STATES.move(
            OutboundCall.objects.filter(shop=shop),
            source=[Status.QUEUED, Status.WAITING],
            target=Status.PAUSED,
            reason="held: the shop's queue is paused",
        )
        record_action(
            actor=by,
            verb="outbound.pause",
            target=shop,
            before=before,
            after={"queue_paused": True, "held": held},
            reason=reason,
            request=request,
        )
    return held


def resume_shop(shop: Shop, *, by, reason: str, request=None) -> int:
    """Release the shop's held calls; they drain in their original order under the throttle."""
    if not reason.strip():
        raise QueueError("Resuming a shop's outbound queue needs a reason (kept in the audit trail).")
    now = timezone.now()
    with transaction.atomic():
        shop = Shop.objects.select_for_update().get(pk=shop.pk)
        before = {"queue_paused": shop.queue_paused, "calls": _counts(shop)}
        Shop.objects.filter(pk=shop.pk).update(queue_paused=False, updated_at=now)
        held = OutboundCall.objects.filter(shop=shop)
        released = OutboundCall.STATES.move(
            held.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)),
            source=Status.PAUSED,
            target=Status.QUEUED,
            reason="released: the shop's queue was resumed",
        )
        released += OutboundCall.STATES.move(
            held.filter(next_attempt_at__gt=now),
            source=Status.PAUSED,
            target=Status.WAITING,
            reason="released: waits for its next try",
        )
        record_action(
            actor=by,
            verb="outbound.resume",
            target=shop,
            before=before,
            after={"queue_paused": False, "released": released},
            reason=reason,
            request=request,
        )
    return released


def stop_calls_of_uninstalled_shop(shop: Shop) -> int:
    """The app was uninstalled: fail the shop's unsent calls with the reason (its token is revoked)."""
    kind = "uninstalled"
    return OutboundCall.STATES.move(
        OutboundCall.objects.filter(shop=shop),
        source=[Status.QUEUED, Status.PAUSED, Status.WAITING],
        target=Status.FAILED,
        classification=NON_RETRYABLE,
        failure_kind=kind,
        reason=f"stopped: the app was uninstalled from {shop.domain}, so its token is revoked",
        next_step=NEXT_STEPS[kind][1],
        finished_at=timezone.now(),
        next_attempt_at=None,
    )


# Failures whose next step says not to send the same call again.
NOT_RESENDABLE = {
    "stale": "the record changed in Shopify since we read it: reconcile it instead of sending the old write",
    "key_mismatch": "its idempotency key was used with other input: a bug to report, not a call to resend",
    "uninstalled": "the app is uninstalled from this shop",
}


def send_again(call: OutboundCall, *, by, reason: str, request=None) -> bool:
    """A person sends a failed call again once its cause is fixed: the same idempotency key (so it
    cannot apply twice) and a fresh retry budget. Refused when resending could do harm: a stale
    compare guard, a misused key, or a later call for the same record that already applied (the
    old write would overwrite it). False when the call is not failed (any more)."""
    if not reason.strip():
        raise QueueError("Say why the call is sent again (kept in the audit trail).")
    if call.failure_kind in NOT_RESENDABLE:
        raise QueueError(f"Not sent again: {NOT_RESENDABLE[call.failure_kind]}.")
    shop = Shop.objects.get(pk=call.shop_id)
    if shop.state == Shop.State.UNINSTALLED:
        raise QueueError("The app is uninstalled from this shop: nothing can be sent until it is reinstalled.")
    later = (
        OutboundCall.objects.filter(
            shop_id=call.shop_id, target_gid=call.target_gid, id__gt=call.pk, status=Status.SUCCEEDED
        )
        .values_list("pk", flat=True)
        .first()
        if call.target_gid
        else None
    )
    if later is not None:
        raise QueueError(
            f"Not sent again: call {later} changed the same record since, and this older write would undo it. "
            "Queue a new call with what the record should hold now."
        )
    with transaction.atomic():
        moved = OutboundCall.STATES.move(
            OutboundCall.objects.filter(pk=call.pk),
            source=Status.FAILED,
            target=Status.PAUSED if shop.queue_paused else Status.QUEUED,
            next_attempt_at=None,
            finished_at=None,
            classification=None,
            failure_kind="",
            next_step="",
            retry_base=F("attempt_count"),
            reason=f"sent again by {by.get_username() if by else 'system'}: {reason}"[:2000],
        )
        if moved:
            record_action(
                actor=by,
                verb="outbound.send_again",
                target=call,
                before={"status": call.status, "reason": call.reason},
                reason=reason,
                request=request,
            )
    return bool(moved)


def release_held_calls() -> int:
    """Calls held for a shop that is no longer paused go back to the queue (and the other way
    round): a job that read "paused" just before a resume committed must not leave its call held
    for good. Senders run this every few seconds; unfinished calls are few (status index)."""
    unpaused = Exists(Shop.objects.filter(pk=OuterRef("shop_id"), queue_paused=False))
    paused = Exists(Shop.objects.filter(pk=OuterRef("shop_id"), queue_paused=True))
    released = OutboundCall.STATES.move(
        OutboundCall.objects.filter(unpaused, Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())),
        source=Status.PAUSED,
        target=Status.QUEUED,
        reason="released: the shop's queue is not paused",
    )
    released += OutboundCall.STATES.move(
        OutboundCall.objects.filter(unpaused, next_attempt_at__gt=timezone.now()),
        source=Status.PAUSED,
        target=Status.WAITING,
        reason="released: waits for its next try",
    )
    held = OutboundCall.STATES.move(
        OutboundCall.objects.filter(paused),
        source=[Status.QUEUED, Status.WAITING],
        target=Status.PAUSED,
        reason="held: the shop's queue is paused",
    )
    return released + held


def call_json(call: OutboundCall, attempts=None) -> dict:
    """A call as scripts read it (`outbound show/list --json`)."""
    attempts = list(call.attempts.all()) if attempts is None else attempts
    return {
        "id": call.pk,
        "shop": call.shop.domain,
        "operation": call.operation,
        "lane": call.lane,
        "origin": call.origin,
        "origin_ref": call.origin_ref,
        "idempotency_key": call.idempotency_key,
        "target": call.target_gid,
        "label": call.target_label,
        "status": call.status,
        "classification": call.classification,
        "failure_kind": call.failure_kind,
        "reason": call.reason,
        "next_step": call.next_step,
        "input": call.input,
        "created_at": call.created_at.isoformat(),
        "next_attempt_at": call.next_attempt_at.isoformat() if call.next_attempt_at else None,
        "finished_at": call.finished_at.isoformat() if call.finished_at else None,
        "attempts": [
            {
                "number": attempt.number,
                "http_status": attempt.http_status,
                "error_codes": attempt.error_codes,
                "user_errors": attempt.user_errors,
                "throttled": attempt.throttled,
                "cost": {"requested": attempt.requested_cost, "actual": attempt.actual_cost},
                "bucket": {"available": attempt.bucket_available, "maximum": attempt.bucket_maximum},
                "retry_after": attempt.retry_after,
                "duration_ms": attempt.duration_ms,
                "outcome": attempt.outcome,
                "message": attempt.message,
                "started_at": attempt.started_at.isoformat(),
                "worker": attempt.worker,
            }
            for attempt in attempts
        ],
        "echoes": [event.pk for event in call.echoes.all()] if call.pk else [],
    }


__all__ = [
    "InvalidInput",
    "QueueError",
    "call_json",
    "due_calls",
    "enqueue",
    "enqueue_for_event",
    "pause_shop",
    "release_held_calls",
    "resume_shop",
    "send_again",
    "shopify_idempotency_key",
    "stop_calls_of_uninstalled_shop",
]
