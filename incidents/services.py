"""Incident services: what views, commands and tasks call. Each change lands on the incident's
timeline (IncidentStep) and in the audit trail; status changes go through `Incident.STATES`."""

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from console.audit import acting_user, actor_label, record_action
from incidents import affected, notifications, rubric
from incidents.models import (
    AffectedRecord,
    Audience,
    Direction,
    Incident,
    IncidentAction,
    IncidentStep,
    IncidentUpdate,
    Notification,
    SeverityChange,
)
from integrations.models import Event, OutboundCall, Shop

Status = Incident.Status
Kind = IncidentStep.Kind
CHANGE = "incidents.change_incident"
MAX_LINKED = 10_000


class IncidentError(ValueError):
    """A change that cannot be made, with a message saying why."""


class ResolveRefused(IncidentError):
    """Resolving was refused: `needs_override` when an override with a reason would allow it."""

    def __init__(self, message: str, *, needs_override: bool) -> None:
        super().__init__(message)
        self.needs_override = needs_override


def _require(by, perm: str = CHANGE, what: str = "change incidents") -> None:
    user = acting_user(by)
    if user is not None and not user.has_perm(perm):
        raise PermissionDenied(f"You may not {what}.")


def _step(incident: Incident, kind: str, by, text: str, *, source: str = "", target: str = "", at=None) -> IncidentStep:
    return IncidentStep.objects.create(
        incident=incident, kind=kind, actor=acting_user(by), actor_label=actor_label(by, nobody="command line"),
        text=text[:4000], source=source, target=target, at=at or timezone.now(),
    )  # fmt: skip


def update_interval(severity: str) -> timedelta:
    return timedelta(minutes=settings.INCIDENT_UPDATE_MINUTES[severity])


# --- what an incident links -------------------------------------------------------------------


def events_for_filter(text: str) -> list[int]:
    """The ids of the events a filter (the replay filter syntax: shop=S&topic=T&status=failed&since=ISO)
    matches, oldest first; IncidentError if it cannot be read or matches too many."""
    from integrations.replay.selection import SelectionError, parse_filter

    try:
        query = parse_filter(text)
    except SelectionError as error:
        raise IncidentError(f"The event filter cannot be used: {error}") from error
    ids = list(Event.objects.filter(query).order_by("id").values_list("id", flat=True)[: MAX_LINKED + 1])
    if len(ids) > MAX_LINKED:
        raise IncidentError(
            f"The filter matches more than {MAX_LINKED} events: narrow it (a shorter window, one shop)."
        )
    return ids


def _link(incident: Incident, *, event_ids=(), call_ids=(), shops=()) -> dict:
    """Add links (idempotent); the shops of linked events and calls are linked too."""
    event_ids, call_ids = sorted({int(pk) for pk in event_ids}), sorted({int(pk) for pk in call_ids})
    found_events = list(Event.objects.filter(pk__in=event_ids).values_list("id", flat=True)) if event_ids else []
    found_calls = list(OutboundCall.objects.filter(pk__in=call_ids).values_list("id", flat=True)) if call_ids else []
    missing = (set(event_ids) - set(found_events)) | {f"call {pk}" for pk in set(call_ids) - set(found_calls)}
    if missing:
        raise IncidentError(f"Not found: {', '.join(str(m) for m in sorted(missing, key=str)[:10])}.")
    through_e, through_c = Incident.events.through, Incident.outbound_calls.through
    through_e.objects.bulk_create(
        [through_e(incident_id=incident.pk, event_id=pk) for pk in found_events], batch_size=1000, ignore_conflicts=True
    )
    through_c.objects.bulk_create(
        [through_c(incident_id=incident.pk, outboundcall_id=pk) for pk in found_calls], ignore_conflicts=True
    )
    shop_ids = {shop.pk if isinstance(shop, Shop) else int(shop) for shop in shops}
    shop_ids |= set(Event.objects.filter(pk__in=found_events).values_list("shop_id", flat=True).distinct())
    shop_ids |= set(OutboundCall.objects.filter(pk__in=found_calls).values_list("shop_id", flat=True).distinct())
    incident.shops.add(*shop_ids)
    return {"events": len(found_events), "calls": len(found_calls), "shops": len(shop_ids)}


def link(incident: Incident, *, by, event_ids=(), events_filter: str = "", call_ids=(), shops=(), replay=None,
         worksheet=None, request=None) -> dict:  # fmt: skip
    """Link more to an incident: events (ids or a filter), outbound calls, shops, a replay, a worksheet."""
    _require(by)
    event_ids = list(event_ids) + (events_for_filter(events_filter) if events_filter else [])
    with transaction.atomic():
        counts = _link(incident, event_ids=event_ids, call_ids=call_ids, shops=shops)
        parts = [
            f"{counts['events']} events" if counts["events"] else "",
            f"{counts['calls']} outbound calls" if counts["calls"] else "",
        ]
        if replay is not None:
            replay.__class__.objects.filter(pk=replay.pk).update(incident=incident)
            incident.shops.add(*set(replay.items.values_list("shop_id", flat=True).distinct()))
            parts.append(f"replay {replay.pk}")
        if worksheet is not None:
            worksheet.__class__.objects.filter(pk=worksheet.pk).update(incident=incident)
            incident.shops.add(worksheet.shop_id)
            parts.append(f"worksheet {worksheet.pk}")
        text = ", ".join(p for p in parts if p) or "shops"
        _step(incident, Kind.LINK, by, f"Linked {text}" + (f" (filter {events_filter})" if events_filter else "") + ".")
        record_action(
            actor=by, verb="incident.link", target=incident, after={**counts, "filter": events_filter}, request=request
        )
    affected.collect(incident)
    return counts


# --- measuring and the rubric -----------------------------------------------------------------


def measure(incident: Incident) -> rubric.Measured:
    """What the linked data says about business impact (the rubric's prefill), repair states fresh."""
    records = AffectedRecord.objects.filter(incident=incident)
    affected.refresh(records)
    open_orders = records.filter(kind=AffectedRecord.Kind.ORDER).exclude(
        repair_state=AffectedRecord.RepairState.REPAIRED
    )
    totals = open_orders.filter(total__isnull=False).values("currency").annotate(sum=Sum("total")).order_by()
    money = {row["currency"] or "": Decimal(row["sum"]).quantize(Decimal("0.01")) for row in totals}
    customers = records.filter(kind=AffectedRecord.Kind.CUSTOMER)
    buyers_not_listed = (
        records.filter(kind=AffectedRecord.Kind.ORDER).exclude(email="").exclude(email__in=customers.values("key"))
    )
    emails = customers.values("key").distinct().count() + buyers_not_listed.values("email").distinct().count()
    failed = (Event.Status.FAILED, Event.Status.HELD, Event.Status.RETRY_WAIT)
    return rubric.Measured(
        orders_unsynced=open_orders.count(),
        orders_unfulfilled=open_orders.filter(unfulfilled=True).count(),
        money_at_risk=money,
        customers=emails,
        shops=incident.shops.count(),
        records=_record_count(records) or incident.events.count() + incident.outbound_calls.count(),
        failed_events=incident.events.filter(status__in=failed).count(),
        failed_calls=incident.outbound_calls.filter(status=OutboundCall.Status.FAILED).count(),
    )


def _record_count(records) -> int:
    """Orders, plus customers who are not already counted as an order's buyer."""
    orders = records.filter(kind=AffectedRecord.Kind.ORDER)
    buyers = orders.exclude(email="").values("email")
    return orders.count() + records.filter(kind=AffectedRecord.Kind.CUSTOMER).exclude(key__in=buyers).count()


def measure_links(event_ids, call_ids) -> rubric.Measured:
    """The prefill before an incident exists: the same measures over the candidate links."""
    event_ids, call_ids = list(event_ids), list(call_ids)
    found = affected.from_events(event_ids)
    unprocessed = set(
        Event.objects.filter(pk__in=event_ids).exclude(status=Event.Status.PROCESSED).values_list("id", flat=True)
    ) if event_ids else set()  # fmt: skip
    orders = [
        d for (_s, kind, _k), d in found.items() if kind == AffectedRecord.Kind.ORDER and d["event_id"] in unprocessed
    ]
    money: dict[str, Decimal] = defaultdict(Decimal)
    for order in orders:
        if order.get("total") is not None:
            money[order.get("currency") or ""] += order["total"]
    emails = {key for (_s, kind, key) in found if kind == AffectedRecord.Kind.CUSTOMER}
    orders_all = [d for (_s, kind, _k), d in found.items() if kind == AffectedRecord.Kind.ORDER]
    shops = (
        set(Event.objects.filter(pk__in=event_ids).values_list("shop_id", flat=True).distinct()) if event_ids else set()
    )
    if call_ids:
        shops |= set(OutboundCall.objects.filter(pk__in=call_ids).values_list("shop_id", flat=True).distinct())
    failed = (Event.Status.FAILED, Event.Status.HELD, Event.Status.RETRY_WAIT)
    return rubric.Measured(
        orders_unsynced=len(orders),
        orders_unfulfilled=sum(1 for order in orders if order.get("unfulfilled")),
        money_at_risk=dict(money),
        customers=len(emails),
        shops=len(shops),
        records=len(orders_all) + len(emails - {d.get("email") for d in orders_all}) or len(event_ids) + len(call_ids),
        failed_events=Event.objects.filter(pk__in=event_ids, status__in=failed).count() if event_ids else 0,
        failed_calls=OutboundCall.objects.filter(pk__in=call_ids, status="failed").count() if call_ids else 0,
    )


def _severity_change(incident, by, *, source: str, assessment: rubric.Assessment, answers: rubric.Answers,
                     override: str = "", reason: str = "") -> SeverityChange:  # fmt: skip
    overridden = bool(override) and override != assessment.severity
    return SeverityChange.objects.create(
        incident=incident, by=acting_user(by), by_label=actor_label(by, nobody="command line"), source=source,
        target=override or assessment.severity, rubric_severity=assessment.severity, reasoning=assessment.reasoning,
        overridden=overridden, override_reason=reason.strip() if overridden else "", answers=answers.as_dict(),
    )  # fmt: skip


def _check_override(assessment: rubric.Assessment, override: str, reason: str) -> str:
    if not override or override == assessment.severity:
        return assessment.severity
    if override not in Incident.Severity.values:
        raise IncidentError(f"severity must be one of {', '.join(Incident.Severity.values)}")
    if not reason.strip():
        raise IncidentError(
            f"The rubric gives {assessment.severity.upper()}; choosing {override.upper()} instead needs a reason."
        )
    return override


def set_severity(
    incident: Incident, *, by, answers: dict, override: str = "", reason: str = "", request=None
) -> Incident:
    """Answer the rubric again (and optionally override its severity with a reason). Kept whole."""
    _require(by)
    try:
        parsed = rubric.Answers.from_dict(answers)
    except (TypeError, ValueError) as error:
        raise IncidentError(f"The rubric's answers cannot be read: {error}") from error
    assessment = rubric.assess(parsed)
    target = _check_override(assessment, override, reason)
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        source = incident.severity
        overridden = target != assessment.severity
        reasoning = assessment.reasoning + (f" Overridden to {target.upper()}: {reason.strip()}" if overridden else "")
        Incident.objects.filter(pk=incident.pk).update(
            severity=target, severity_reasoning=reasoning, rubric=parsed.as_dict(), severity_overridden=overridden,
            next_update_due_at=_next_due(incident, target),
        )  # fmt: skip
        _severity_change(
            incident, by, source=source, assessment=assessment, answers=parsed, override=target, reason=reason
        )
        words = (
            f"Severity {source.upper()} → {target.upper()}" if source != target else f"Severity stays {target.upper()}"
        )
        _step(incident, Kind.SEVERITY, by, f"{words}. {reasoning}", source=source, target=target)
        record_action(
            actor=by, verb="incident.severity", target=incident, before={"severity": source},
            after={"severity": target, "rubric": assessment.severity, "answers": parsed.as_dict()}, reason=reason, request=request,
        )  # fmt: skip
        incident.refresh_from_db()
        if source != target and incident.is_open:
            notifications.notify(incident, Notification.Kind.SEVERITY)
    return incident


def _next_due(incident: Incident, severity: str) -> datetime:
    last = incident.updates.aggregate(at=Max("created_at"))["at"] or incident.opened_at
    due = last + update_interval(severity)
    promised = (
        incident.updates.filter(next_update_at__isnull=False)
        .order_by("-created_at", "-id")
        .values_list("next_update_at", flat=True)
        .first()
    )
    return min(due, promised) if promised and promised >= last else due


# --- opening ----------------------------------------------------------------------------------


def open_incident(*, title: str, by, direction: str = "", shops=(), event_ids=(), events_filter: str = "", call_ids=(),
                  summary: str = "", answers: dict | None = None, severity: str = "", severity_reason: str = "",
                  public_title: str = "", customer_impact: str = "", customer_advice: str = "", workaround: str = "",
                  lead=None, detected_at=None, request=None) -> Incident:  # fmt: skip
    """Open an incident: its links, its severity from the rubric (the answers given, else what the
    linked data suggests), the timeline's first step, its affected records, and the notifications."""
    _require(by, "incidents.add_incident", "open incidents")
    title = (title or "").strip()
    if not title:
        raise IncidentError("Give the incident a title.")
    if direction and direction not in Direction.values:
        raise IncidentError(f"direction must be one of {', '.join(Direction.values)}")
    event_ids = list(event_ids) + (events_for_filter(events_filter) if events_filter else [])
    if len(event_ids) > MAX_LINKED:
        raise IncidentError(f"At most {MAX_LINKED} events can be linked at once.")
    if not direction:
        direction = Direction.BOTH if event_ids and call_ids else Direction.OUTBOUND if call_ids else Direction.INBOUND
    now = timezone.now()
    with transaction.atomic():
        incident = Incident.objects.create(
            title=title[:200], summary=summary, direction=direction, public_title=public_title.strip()[:200],
            customer_impact=customer_impact, customer_advice=customer_advice, workaround=workaround,
            severity="sev4", opened_by=acting_user(by) or _named(by), lead=lead or acting_user(by),
            opened_at=now, detected_at=detected_at or now,
        )  # fmt: skip
        counts = _link(incident, event_ids=event_ids, call_ids=call_ids, shops=shops)
        started = [
            Event.objects.filter(pk__in=event_ids).aggregate(at=Min("received_at"))["at"] if event_ids else None,
            OutboundCall.objects.filter(pk__in=call_ids).aggregate(at=Min("created_at"))["at"] if call_ids else None,
        ]
        started = min((at for at in started if at), default=None)
        affected.collect(incident)
        measured = measure(incident)
        try:
            parsed = rubric.Answers.from_dict(answers) if answers is not None else measured.suggested_answers()
        except (TypeError, ValueError) as error:
            raise IncidentError(f"The rubric's answers cannot be read: {error}") from error
        assessment = rubric.assess(parsed)
        target = _check_override(assessment, severity, severity_reason)
        overridden = target != assessment.severity
        reasoning = assessment.reasoning + (
            f" Overridden to {target.upper()}: {severity_reason.strip()}" if overridden else ""
        )
        Incident.objects.filter(pk=incident.pk).update(
            severity=target, severity_reasoning=reasoning, rubric=parsed.as_dict(), severity_overridden=overridden,
            started_at=started, next_update_due_at=now + update_interval(target),
        )  # fmt: skip
        incident.refresh_from_db()
        _severity_change(
            incident, by, source="", assessment=assessment, answers=parsed, override=target, reason=severity_reason
        )
        linked = ", ".join(f"{n} {what}" for what, n in counts.items() if n) or "nothing linked yet"
        _step(
            incident,
            Kind.OPENED,
            by,
            f"Opened as {target.upper()} ({direction}); {linked}. {reasoning}",
            target=Status.INVESTIGATING,
        )
        record_action(
            actor=by, verb="incident.open", target=incident, request=request,
            after={"title": incident.title, "severity": target, "direction": direction, **counts,
                   "measured": measured.as_dict()},
        )  # fmt: skip
        notifications.notify(incident, Notification.Kind.OPENED)
    return incident


def _named(by):
    raise IncidentError("Say who opens the incident (--user): every change is recorded for a person.")


def edit(incident: Incident, *, by, request=None, **fields) -> Incident:
    """Change the words: title, summary, direction, lead, and what customer service may read."""
    _require(by)
    allowed = {
        "title",
        "summary",
        "direction",
        "public_title",
        "customer_impact",
        "customer_advice",
        "workaround",
        "lead",
    }
    unknown = set(fields) - allowed
    if unknown:
        raise IncidentError(f"Cannot edit {', '.join(sorted(unknown))}.")
    if "title" in fields and not str(fields["title"]).strip():
        raise IncidentError("The title cannot be empty.")
    before = {name: str(getattr(incident, name)) for name in fields}
    changed = {name: value for name, value in fields.items() if str(getattr(incident, name)) != str(value)}
    if not changed:
        return incident
    with transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(**changed)
        _step(incident, Kind.EDIT, by, f"Edited {', '.join(sorted(changed))}.")
        record_action(actor=by, verb="incident.edit", target=incident, before={k: before[k] for k in changed},
                      after={k: str(v) for k, v in changed.items()}, request=request)  # fmt: skip
    incident.refresh_from_db()
    return incident


# --- status ------------------------------------------------------------------------------------


def _move(incident: Incident, target: str, *, by, text: str, **changes) -> Incident:
    """One status change: a conditional UPDATE from the current status, a timeline step, the audit."""
    source = incident.status
    if not Incident.STATES.allows(source, target):
        allowed = ", ".join(sorted(Incident.STATES.transitions.get(source, ()))) or "nothing"
        raise IncidentError(f"An incident that is {source} cannot become {target} (it can become: {allowed}).")
    now = timezone.now()
    stamp = Incident.STAMPS.get(target)
    if stamp:
        changes.setdefault(stamp, now)
    if source == Status.RESOLVED:
        changes.update(resolved_at=None, resolve_override_reason="")
    moved = Incident.STATES.move(Incident.objects.filter(pk=incident.pk), source=source, target=target, **changes)
    if not moved:
        raise IncidentError("Someone else changed this incident's status meanwhile: reload and look again.")
    _step(incident, Kind.STATUS, by, text, source=source, target=target, at=now)
    record_action(
        actor=by, verb="incident.status", target=incident, before={"status": source}, after={"status": target}
    )
    incident.refresh_from_db()
    return incident


def change_status(incident: Incident, target: str, *, by, note: str = "", override_reason: str = "") -> Incident:
    _require(by)
    if target not in Status.values:
        raise IncidentError(f"status must be one of {', '.join(Status.values)}")
    if target == Status.RESOLVED:
        return resolve(incident, by=by, override_reason=override_reason)
    with transaction.atomic():
        text = f"{incident.get_status_display()} → {Status(target).label}" + (
            f": {note.strip()}" if note.strip() else "."
        )
        return _move(incident, target, by=by, text=text)


def resolve_blockers(incident: Incident) -> dict:
    """What stands between the incident and resolved: open containment (always refuses), and data
    not yet repaired (refuses unless overridden with a reason)."""
    from incidents.worksheets.models import Worksheet, WorksheetRow
    from integrations.models import ReplayItem

    containment = list(incident.actions.filter(kind=IncidentAction.Kind.CONTAINMENT, done=False).order_by("id"))
    unapplied = (
        WorksheetRow.objects.filter(
            worksheet__incident=incident, result__in=["", WorksheetRow.Result.FAILED, WorksheetRow.Result.SENDING]
        )
        .exclude(worksheet__state=Worksheet.State.APPLIED)
        .filter(Q(decision=WorksheetRow.Decision.OVERRIDE) | Q(proposal__in=["write_shopify", "write_platform"]))
        .exclude(decision=WorksheetRow.Decision.SKIP)
    )
    unapplied_by_ws = dict(unapplied.values_list("worksheet_id").annotate(n=Count("id")).order_by())
    replayed_ok = ReplayItem.objects.filter(status=ReplayItem.Status.DONE).values("event_id")
    unrepaired = (
        incident.events.filter(status__in=[Event.Status.FAILED, Event.Status.HELD])
        .exclude(triage_state__in=[Event.Triage.RESOLVED, Event.Triage.IGNORED])
        .exclude(pk__in=replayed_ok)
    )
    return {
        "open_containment": containment,
        "unapplied_rows": sum(unapplied_by_ws.values()),
        "worksheets": sorted(unapplied_by_ws),
        "unrepaired_events": unrepaired.count(),
        "unrepaired_event_ids": list(unrepaired.order_by("id").values_list("id", flat=True)[:20]),
    }


def data_gate_text(blockers: dict) -> str:
    parts = []
    if blockers["unapplied_rows"]:
        ws = ", ".join(f"#{pk}" for pk in blockers["worksheets"])
        parts.append(f"{blockers['unapplied_rows']} worksheet rows are not applied (worksheet {ws})")
    if blockers["unrepaired_events"]:
        parts.append(f"{blockers['unrepaired_events']} linked failed events were neither replayed nor resolved")
    return "; ".join(parts)


def resolve(incident: Incident, *, by, override_reason: str = "", request=None) -> Incident:
    """Resolve: refused while a containment action is open; while the data is not repaired, only
    with an override and its reason (kept on the incident, the timeline and the audit)."""
    _require(by)
    blockers = resolve_blockers(incident)
    if blockers["open_containment"]:
        titles = "; ".join(action.title for action in blockers["open_containment"][:5])
        raise ResolveRefused(
            f"Cannot resolve: {len(blockers['open_containment'])} containment action(s) still open ({titles}). "
            "Finish them first; remediation may stay open as follow-ups.",
            needs_override=False,
        )
    gate = data_gate_text(blockers)
    if gate and not override_reason.strip():
        raise ResolveRefused(
            f"The data is not repaired yet: {gate}. Resolve with an override and a reason, or repair it first.",
            needs_override=True,
        )
    with transaction.atomic():
        now = timezone.now()
        text = "Resolved." + (f" Override ({gate}): {override_reason.strip()}" if gate else "")
        incident = _move(
            incident, Status.RESOLVED, by=by, text=text, resolved_at=now,
            resolve_override_reason=override_reason.strip() if gate else "",
        )  # fmt: skip
        if gate:
            record_action(
                actor=by,
                verb="incident.resolve_override",
                target=incident,
                reason=override_reason,
                after={"gate": gate},
                request=request,
            )
        notifications.notify(incident, Notification.Kind.RESOLVED)
    return incident


# --- response strategy ------------------------------------------------------------------------


def choose_strategy(incident: Incident, strategy: str, *, by, reason: str = "", request=None) -> Incident:
    _require(by)
    if strategy not in Incident.Strategy.values:
        raise IncidentError(f"strategy must be one of {', '.join(Incident.Strategy.values)}")
    with transaction.atomic():
        before = incident.strategy
        Incident.objects.filter(pk=incident.pk).update(strategy=strategy, strategy_reason=reason.strip())
        label = Incident.Strategy(strategy).label
        _step(incident, Kind.STRATEGY, by, f"Response: {label}" + (f" — {reason.strip()}" if reason.strip() else "."))
        record_action(actor=by, verb="incident.strategy", target=incident, before={"strategy": before},
                      after={"strategy": strategy}, reason=reason, request=request)  # fmt: skip
    incident.refresh_from_db()
    return incident


def replayable_event_ids(incident: Incident) -> list[int]:
    """The linked events a controlled replay covers: the failed and held ones, else all of them."""
    failing = incident.events.filter(status__in=[Event.Status.FAILED, Event.Status.HELD]).order_by("id")
    ids = list(failing.values_list("id", flat=True)[: settings.REPLAY_MAX_EVENTS])
    return ids or list(incident.events.order_by("id").values_list("id", flat=True)[: settings.REPLAY_MAX_EVENTS])


def start_controlled_replay(incident: Incident, *, by, mode: str = "stored", request=None):
    """A dry run (nothing runs) of the linked failing events, linked to the incident."""
    from integrations.replay import services as replays
    from integrations.replay.selection import SelectionError, for_events

    _require(by, "integrations.request_replay", "dry-run replays")
    ids = replayable_event_ids(incident)
    if not ids:
        raise IncidentError("No events are linked to this incident: link the failing events first.")
    try:
        replay = replays.check_replay(selection=for_events(ids), mode=mode, by=by, incident=incident)
    except (SelectionError, replays.ReplayError) as error:
        raise IncidentError(f"No dry run: {error}") from error
    _step(
        incident,
        Kind.RESPONSE,
        by,
        f"Controlled replay: dry run {replay.pk} of {len(ids)} events (nothing has run yet).",
    )
    return replay


def pause_queues(incident: Incident, *, by, reason: str, request=None) -> list[tuple[Shop, int]]:
    """Pause every linked shop's outbound queue (a containment action, recorded done)."""
    from integrations.outbound.queue import QueueError, pause_shop

    _require(by, "integrations.send_outbound", "pause outbound queues")
    shops = list(incident.shops.filter(queue_paused=False).order_by("domain"))
    if not shops:
        raise IncidentError("No linked shop has a running outbound queue to pause.")
    paused = []
    for shop in shops:
        try:
            paused.append((shop, pause_shop(shop, by=by, reason=reason or f"incident #{incident.pk}", request=request)))
        except QueueError as error:
            raise IncidentError(str(error)) from error
    names = ", ".join(f"{shop.domain} ({held} calls held)" for shop, held in paused)
    _record_done_containment(incident, by=by, title=f"Paused the outbound queue: {names}")
    return paused


def disable_handler(incident: Incident, *, job: str, shop: Shop | None, by, reason: str, request=None):
    """Immediate rollback of behaviour: disable a misbehaving handler (its events are held for replay)."""
    from integrations.replay.switches import SwitchError, set_handler

    _require(by, "integrations.request_replay", "disable handlers")
    try:
        switch = set_handler(
            job=job, shop=shop, disabled=True, by=by, reason=reason or f"incident #{incident.pk}", request=request
        )
    except SwitchError as error:
        raise IncidentError(str(error)) from error
    where = shop.domain if shop else "every shop"
    _record_done_containment(incident, by=by, title=f"Disabled handler {job} for {where}")
    return switch


def start_manual_correction(
    incident: Incident, *, by, resource: str = "orders", shop: Shop | None = None, request=None
):
    """A draft worksheet of the incident's affected records (one shop), linked to it."""
    from incidents.worksheets import services as worksheets

    _require(by, "worksheets.prepare_worksheet", "prepare worksheets")
    shops = [shop] if shop else list(incident.shops.order_by("domain"))
    if len(shops) != 1:
        raise IncidentError("A worksheet covers one shop: choose which.")
    try:
        worksheet = worksheets.create_worksheet(
            shop=shops[0], resource=resource, by=by, incident=incident, title=f"Incident #{incident.pk}: {incident.title}"[:200],
            request=request,
        )  # fmt: skip
    except worksheets.WorksheetError as error:
        raise IncidentError(str(error)) from error
    _step(
        incident,
        Kind.RESPONSE,
        by,
        f"Manual correction: worksheet {worksheet.pk} of {worksheet.progress_total} {resource}.",
    )
    return worksheet


def rollback_worksheet(incident: Incident, worksheet, *, by, request=None):
    """Immediate rollback of data: a worksheet writing back what a linked worksheet changed."""
    from incidents.worksheets import services as worksheets

    if worksheet.incident_id != incident.pk:
        raise IncidentError("That worksheet is not linked to this incident.")
    try:
        back = worksheets.rollback(worksheet, by=by, request=request)
    except worksheets.WorksheetError as error:
        raise IncidentError(str(error)) from error
    worksheet.__class__.objects.filter(pk=back.pk).update(incident=incident)
    _step(
        incident, Kind.RESPONSE, by, f"Rollback: worksheet {back.pk} writes back what worksheet {worksheet.pk} changed."
    )
    return back


def start_watch(incident: Incident, *, by, topic: str, shop: Shop | None = None, minutes: int = 15,
                remind_at: datetime | None = None, request=None) -> Incident:  # fmt: skip
    """Monitored wait: watch the failing topic's (or operation's) failure rate, with a reminder."""
    _require(by)
    topic = (topic or "").strip()
    if not topic:
        raise IncidentError("Name the topic (or outbound operation) to watch.")
    if not 1 <= int(minutes) <= 24 * 60:
        raise IncidentError("The watch window is 1 to 1440 minutes.")
    remind_at = remind_at or timezone.now() + update_interval(incident.severity)
    with transaction.atomic():
        Incident.objects.filter(pk=incident.pk).update(
            watch_topic=topic[:100],
            watch_shop=shop,
            watch_minutes=int(minutes),
            watch_remind_at=remind_at,
            watch_reminded_at=None,
        )
        where = f" on {shop.domain}" if shop else ""
        _step(incident, Kind.RESPONSE, by, f"Monitored wait: watching {topic}{where} failures per {minutes} min; "
                                           f"reminder at {remind_at:%Y-%m-%d %H:%M} UTC.")  # fmt: skip
        record_action(actor=by, verb="incident.watch", target=incident, after={"topic": topic, "minutes": minutes,
                                                                               "remind_at": remind_at.isoformat()}, request=request)  # fmt: skip
    incident.refresh_from_db()
    return incident


def watch_status(incident: Incident, now: datetime | None = None) -> dict | None:
    """The watched topic's failures in the last window and the one before (is it getting better?)."""
    if not incident.watch_topic:
        return None
    now = now or timezone.now()
    window = timedelta(minutes=incident.watch_minutes)
    if "/" in incident.watch_topic:
        rows = Event.objects.filter(topic=incident.watch_topic, status=Event.Status.FAILED)
        stamp = "received_at"
    else:
        rows = OutboundCall.objects.filter(operation=incident.watch_topic, status=OutboundCall.Status.FAILED)
        stamp = "created_at"
    if incident.watch_shop_id:
        rows = rows.filter(shop_id=incident.watch_shop_id)
    rows = rows.filter(**{f"{stamp}__gte": now - 2 * window})
    counts = rows.aggregate(
        now=Count("id", filter=Q(**{f"{stamp}__gte": now - window})),
        before=Count("id", filter=Q(**{f"{stamp}__lt": now - window})),
    )
    trend = (
        "falling" if counts["now"] < counts["before"] else "rising" if counts["now"] > counts["before"] else "steady"
    )
    return {
        "topic": incident.watch_topic, "shop": incident.watch_shop, "minutes": incident.watch_minutes,
        "failures": counts["now"], "before": counts["before"], "trend": trend,
        "remind_at": incident.watch_remind_at, "due": bool(incident.watch_remind_at and incident.watch_remind_at <= now),
    }  # fmt: skip


def remind_due_watches(now: datetime | None = None) -> int:
    """The worker's minute sweep: a monitored wait whose reminder is due tells engineering, once."""
    now = now or timezone.now()
    due = Incident.objects.filter(
        status__in=Incident.OPEN, watch_remind_at__lte=now, watch_reminded_at__isnull=True
    ).exclude(watch_topic="")
    sent = 0
    for incident in due:
        if not Incident.objects.filter(pk=incident.pk, watch_reminded_at__isnull=True).update(watch_reminded_at=now):
            continue
        status = watch_status(incident, now)
        _step(incident, Kind.REMINDER, None, f"Monitored wait due: {status['failures']} {incident.watch_topic} failures in the last "
                                             f"{incident.watch_minutes} min ({status['trend']}). Decide: keep waiting, or act.")  # fmt: skip
        notifications.notify(incident, Notification.Kind.REMINDER, audiences=(Audience.ENGINEERING,))
        sent += 1
    return sent


# --- actions ----------------------------------------------------------------------------------


def add_action(
    incident: Incident, *, kind: str, title: str, by, owner=None, due_at=None, request=None
) -> IncidentAction:
    _require(by)
    if kind not in IncidentAction.Kind.values:
        raise IncidentError("kind must be containment or remediation")
    title = (title or "").strip()
    if not title:
        raise IncidentError("Say what the action is.")
    with transaction.atomic():
        action = IncidentAction.objects.create(
            incident=incident, kind=kind, title=title[:200], owner=owner, due_at=due_at, created_by=acting_user(by)
        )
        who = f", owner {owner.get_username()}" if owner else ""
        due = f", due {due_at:%Y-%m-%d %H:%M} UTC" if due_at else ""
        _step(incident, Kind.ACTION, by, f"Added {kind} action “{action.title}”{who}{due}.")
        record_action(actor=by, verb="incident.action_add", target=incident, request=request,
                      after={"action": action.pk, "kind": kind, "title": action.title})  # fmt: skip
    return action


def _record_done_containment(incident: Incident, *, by, title: str) -> IncidentAction:
    now = timezone.now()
    action = IncidentAction.objects.create(
        incident=incident, kind=IncidentAction.Kind.CONTAINMENT, title=title[:200], done=True, done_at=now,
        done_by=acting_user(by), created_by=acting_user(by), owner=acting_user(by),
    )  # fmt: skip
    _step(incident, Kind.ACTION, by, f"Containment done: {action.title}.")
    return action


def complete_action(action: IncidentAction, *, by, done: bool = True, request=None) -> IncidentAction:
    """Mark an action done (or open again): a conditional UPDATE, so two people never both do it."""
    _require(by)
    changes = {"done": done, "done_at": timezone.now() if done else None, "done_by": acting_user(by) if done else None}
    with transaction.atomic():
        moved = IncidentAction.objects.filter(pk=action.pk, done=not done).update(**changes)
        if not moved:
            raise IncidentError(f"That action is already {'done' if done else 'open'}.")
        _step(
            action.incident,
            Kind.ACTION,
            by,
            f"{action.get_kind_display()} action “{action.title}” {'done' if done else 'reopened'}.",
        )
        record_action(actor=by, verb="incident.action_done" if done else "incident.action_reopen", target=action.incident,
                      after={"action": action.pk, "done": done}, request=request)  # fmt: skip
    action.refresh_from_db()
    return action


def follow_ups():
    """Open remediation across incidents, resolved ones included: the follow-ups page."""
    return (
        IncidentAction.objects.filter(kind=IncidentAction.Kind.REMEDIATION, done=False)
        .select_related("incident", "owner")
        .order_by("due_at", "id")
    )


# --- communication ----------------------------------------------------------------------------


def post_update(incident: Incident, *, body: str, audience: str, by, confirmed: bool = False,
                next_update_at: datetime | None = None, request=None) -> IncidentUpdate:  # fmt: skip
    """A status update for one audience; confirmed ones (stable enough to share) are sent to that
    audience's list. The next update falls due by severity, or at the time promised."""
    _require(by, "incidents.add_incidentupdate", "post updates")
    body = (body or "").strip()
    if not body:
        raise IncidentError("The update has no text.")
    if audience not in Audience.values:
        raise IncidentError(f"audience must be one of {', '.join(Audience.values)}")
    now = timezone.now()
    if next_update_at is not None and next_update_at <= now:
        raise IncidentError("The next update must be promised for a time in the future.")
    user = acting_user(by) or _named(by)
    with transaction.atomic():
        update = IncidentUpdate.objects.create(
            incident=incident, body=body, audience=audience, confirmed=confirmed, author=user, created_at=now,
            confirmed_by=user if confirmed else None, confirmed_at=now if confirmed else None,
            next_update_at=next_update_at,
        )  # fmt: skip
        due = next_update_at or now + update_interval(incident.severity)
        Incident.objects.filter(pk=incident.pk).update(next_update_due_at=due)
        state = "confirmed" if confirmed else "still being established"
        _step(incident, Kind.UPDATE, by, f"Update for {update.get_audience_display()} ({state}); next update due "
                                         f"{due:%Y-%m-%d %H:%M} UTC.")  # fmt: skip
        record_action(actor=by, verb="incident.update", target=incident, request=request,
                      after={"update": update.pk, "audience": audience, "confirmed": confirmed})  # fmt: skip
        incident.refresh_from_db()
        if confirmed:
            notifications.notify(incident, Notification.Kind.UPDATE, audiences=(audience,), update=update)
    return update


def confirm_update(update: IncidentUpdate, *, by, request=None) -> IncidentUpdate:
    """Confirm an update that was still being established: now it may be shared, and is sent."""
    _require(by, "incidents.add_incidentupdate", "confirm updates")
    user = acting_user(by) or _named(by)
    with transaction.atomic():
        moved = IncidentUpdate.objects.filter(pk=update.pk, confirmed=False).update(
            confirmed=True, confirmed_by=user, confirmed_at=timezone.now()
        )
        if not moved:
            raise IncidentError("That update is already confirmed.")
        update.refresh_from_db()
        _step(
            update.incident,
            Kind.UPDATE,
            by,
            f"Confirmed the update for {update.get_audience_display()}: it may be shared now.",
        )
        record_action(
            actor=by,
            verb="incident.update_confirm",
            target=update.incident,
            after={"update": update.pk},
            request=request,
        )
        notifications.notify(update.incident, Notification.Kind.UPDATE, audiences=(update.audience,), update=update)
    return update


def set_repair_state(record: AffectedRecord, state: str, *, by, note: str = "", request=None) -> AffectedRecord:
    """A person says how far a record's repair has got (kept by later refreshes)."""
    _require(by)
    if state not in AffectedRecord.RepairState.values:
        raise IncidentError(f"repair state must be one of {', '.join(AffectedRecord.RepairState.values)}")
    before = record.repair_state
    note = (note or f"set by {actor_label(by)}").strip()[:255]
    AffectedRecord.objects.filter(pk=record.pk).update(
        repair_state=state, repair_note=note, set_by_person=True, updated_at=timezone.now()
    )
    _step(record.incident, Kind.EDIT, by, f"{record.get_kind_display()} {record.key}: {before} → {state}. {note}")
    record_action(actor=by, verb="incident.repair_state", target=record.incident, before={"key": record.key, "state": before},
                  after={"state": state}, reason=note, request=request)  # fmt: skip
    record.refresh_from_db()
    return record


# --- reading ----------------------------------------------------------------------------------


def overdue_incidents():
    return Incident.objects.filter(status__in=Incident.OPEN, next_update_due_at__lt=timezone.now()).order_by(
        "next_update_due_at"
    )


def spike_suggestions(now: datetime | None = None, limit: int = 10) -> list[dict]:
    """A shop's topic (inbound) or operation (outbound) failing more than INCIDENT_SPIKE_FAILURES
    times in INCIDENT_SPIKE_MINUTES, not already covered by an open incident: open one?"""
    now = now or timezone.now()
    since = now - timedelta(minutes=settings.INCIDENT_SPIKE_MINUTES)
    threshold = settings.INCIDENT_SPIKE_FAILURES
    inbound = (
        Event.objects.filter(status=Event.Status.FAILED, received_at__gte=since)
        .values("shop_id", "topic").annotate(n=Count("id"), first=Min("received_at")).filter(n__gt=threshold).order_by("-n")[:limit]
    )  # fmt: skip
    outbound = (
        OutboundCall.objects.filter(status=OutboundCall.Status.FAILED, created_at__gte=since)
        .values("shop_id", "operation").annotate(n=Count("id"), first=Min("created_at")).filter(n__gt=threshold).order_by("-n")[:limit]
    )  # fmt: skip
    rows = [("inbound", r["shop_id"], r["topic"], r["n"], r["first"]) for r in inbound]
    rows += [("outbound", r["shop_id"], r["operation"], r["n"], r["first"]) for r in outbound]
    if not rows:
        return []
    shops = Shop.objects.in_bulk({row[1] for row in rows})
    covered = set(
        Incident.objects.filter(status__in=Incident.OPEN, shops__in=shops.keys()).values_list(
            "shops", "events__topic", "outbound_calls__operation", "watch_topic"
        )
    )
    covered_pairs = {
        (shop, what) for shop, topic, operation, watch in covered for what in (topic, operation, watch) if what
    }
    suggestions = []
    for direction, shop_id, what, n, first in sorted(rows, key=lambda r: -r[3])[:limit]:
        if (shop_id, what) in covered_pairs:
            continue
        shop = shops[shop_id]
        if direction == "inbound":
            filter_text = f"shop={shop.domain}&topic={what}&status=failed&since={since.isoformat()}"
        else:
            filter_text = f"shop={shop.domain}&operation={what}&status=failed&since={since.isoformat()}"
        suggestions.append({
            "direction": direction, "shop": shop, "what": what, "failures": n, "since": since, "first": first,
            "minutes": settings.INCIDENT_SPIKE_MINUTES, "filter": filter_text,
            "title": f"{what} failing for {shop.domain}",
        })  # fmt: skip
    return suggestions


def calls_for_filter(text: str) -> list[int]:
    """Outbound calls by a filter: shop=S&operation=O&status=failed&since=ISO&until=ISO."""
    from integrations.replay.selection import SelectionError, _pairs, _time

    query = Q()
    for key, value in _pairs(text):
        try:
            if key == "shop":
                query &= Q(shop__domain=value) | Q(shop_id=int(value) if value.isdigit() else None)
            elif key == "operation":
                query &= Q(operation=value)
            elif key == "status":
                if value not in OutboundCall.Status.values:
                    raise IncidentError(f"status {value!r} is not one of {', '.join(OutboundCall.Status.values)}")
                query &= Q(status=value)
            elif key == "since":
                query &= Q(created_at__gte=_time(key, value))
            elif key == "until":
                query &= Q(created_at__lt=_time(key, value))
            else:
                raise IncidentError(f"unknown outbound filter key {key!r}: use shop, operation, status, since, until")
        except SelectionError as error:
            raise IncidentError(str(error)) from error
    if not query:
        raise IncidentError("The outbound filter is empty.")
    ids = list(OutboundCall.objects.filter(query).order_by("id").values_list("id", flat=True)[: MAX_LINKED + 1])
    if len(ids) > MAX_LINKED:
        raise IncidentError(f"The filter matches more than {MAX_LINKED} calls: narrow it.")
    return ids


def incident_json(incident: Incident) -> dict:
    """The incident as the command prints it (and scripts read), repair states fresh."""
    affected.refresh(incident.affected.all())
    actions = incident.actions.select_related("owner").order_by("id")
    updates = incident.updates.order_by("created_at", "id")
    records = incident.affected.select_related("shop").order_by("kind", "key")
    blockers = resolve_blockers(incident) if incident.is_open else None
    return {
        "id": incident.pk,
        "title": incident.title,
        "summary": incident.summary,
        "status": incident.status,
        "severity": incident.severity,
        "severity_reasoning": incident.severity_reasoning,
        "severity_overridden": incident.severity_overridden,
        "rubric": incident.rubric,
        "direction": incident.direction,
        "strategy": incident.strategy,
        "lead": incident.lead.get_username() if incident.lead else None,
        "shops": sorted(incident.shops.values_list("domain", flat=True)),
        "linked_events": incident.events.count(),
        "linked_calls": incident.outbound_calls.count(),
        "replays": sorted(incident.replays.values_list("id", flat=True)),
        "worksheets": sorted(incident.worksheets.values_list("id", flat=True)),
        "opened_at": incident.opened_at.isoformat(),
        "detected_at": incident.detected_at.isoformat(),
        "started_at": incident.started_at.isoformat() if incident.started_at else None,
        "resolved_at": incident.resolved_at.isoformat() if incident.resolved_at else None,
        "next_update_due_at": incident.next_update_due_at.isoformat() if incident.next_update_due_at else None,
        "update_overdue": incident.update_overdue,
        "actions": [
            {
                "id": a.pk,
                "kind": a.kind,
                "title": a.title,
                "done": a.done,
                "owner": a.owner.get_username() if a.owner else None,
                "due_at": a.due_at.isoformat() if a.due_at else None,
            }
            for a in actions
        ],
        "updates": [
            {
                "id": u.pk,
                "audience": u.audience,
                "confirmed": u.confirmed,
                "body": u.body,
                "created_at": u.created_at.isoformat(),
            }
            for u in updates
        ],
        "affected": [
            {"kind": r.kind, "key": r.key, "shop": r.shop.domain, "repair_state": r.repair_state, "note": r.repair_note}
            for r in records
        ],
        "resolve_blockers": None
        if blockers is None
        else {
            "open_containment": [a.pk for a in blockers["open_containment"]],
            "unapplied_rows": blockers["unapplied_rows"],
            "unrepaired_events": blockers["unrepaired_events"],
        },
    }


def summary_markdown(incident: Incident) -> str:
    """The post-incident summary: timeline, impact, response, containment, remediation, communications."""
    measured = measure(incident)

    def when(at):
        return f"{at:%Y-%m-%d %H:%M} UTC" if at else "—"

    lines = [
        f"# Incident #{incident.pk}: {incident.title}",
        "",
        f"- Severity: **{incident.severity_label}**{' (overridden)' if incident.severity_overridden else ''}",
        f"- Status: {incident.get_status_display()}",
        f"- Direction: {incident.get_direction_display()}",
        f"- Shops: {', '.join(sorted(incident.shops.values_list('domain', flat=True))) or '—'}",
        f"- Lead: {incident.lead.get_username() if incident.lead else '—'}",
        f"- Started {when(incident.started_at)} · detected {when(incident.detected_at)} · opened {when(incident.opened_at)}"
        f" · identified {when(incident.identified_at)} · contained {when(incident.contained_at)}"
        f" · resolved {when(incident.resolved_at)}",
        "",
        "## Summary",
        "",
        incident.summary or "_No summary written._",
        "",
        "## Impact",
        "",
        f"- Why {incident.severity_label}: {incident.severity_reasoning}",
        f"- Orders not yet repaired: {measured.orders_unsynced} ({measured.orders_unfulfilled} unfulfilled); "
        f"money at risk: {measured.money_text()}",
        f"- Customers affected: {measured.customers}; linked events: {incident.events.count()} "
        f"({measured.failed_events} failing); outbound calls: {incident.outbound_calls.count()} ({measured.failed_calls} failed)",
    ]
    states = dict(incident.affected.values_list("repair_state").annotate(n=Count("id")).order_by())
    if states:
        lines.append("- Affected records by repair state: " + ", ".join(
            f"{AffectedRecord.RepairState(k).label.lower()} {v}" for k, v in sorted(states.items())))  # fmt: skip
    if incident.customer_impact:
        lines.append(f"- What customers noticed: {incident.customer_impact}")
    lines += ["", "## Response", ""]
    if incident.strategy:
        lines.append(
            f"**{incident.get_strategy_display()}**"
            + (f": {incident.strategy_reason}" if incident.strategy_reason else "")
        )
    else:
        lines.append("_No response strategy recorded._")
    replays = list(incident.replays.order_by("id").values_list("id", "status", "items_total"))
    worksheets = list(incident.worksheets.order_by("id").values_list("id", "state", "resource"))
    for pk, status, items in replays:
        lines.append(f"- Replay {pk}: {status}, {items} events")
    for pk, state, resource in worksheets:
        lines.append(f"- Worksheet {pk} ({resource}): {state}")
    for kind, heading in (
        (IncidentAction.Kind.CONTAINMENT, "Containment"),
        (IncidentAction.Kind.REMEDIATION, "Remediation"),
    ):
        lines += ["", f"## {heading}", ""]
        actions = list(incident.actions.filter(kind=kind).select_related("owner").order_by("id"))
        lines += [
            f"- [{'x' if a.done else ' '}] {a.title}"
            + (f" — {a.owner.get_username()}" if a.owner else "")
            + (f", due {when(a.due_at)}" if a.due_at else "")
            + (f", done {when(a.done_at)}" if a.done else "")
            for a in actions
        ] or ["_None._"]
    lines += ["", "## Communications", ""]
    for update in incident.updates.order_by("created_at", "id"):
        state = "confirmed" if update.confirmed else "unconfirmed"
        lines.append(f"- {when(update.created_at)} · {update.get_audience_display()} · {state}: {update.body}")
    sent = incident.notifications.order_by("created_at", "id")
    for notice in sent:
        lines.append(
            f"- {when(notice.created_at)} · e-mail “{notice.get_kind_display()}” to {notice.get_audience_display()}"
            f" ({len(notice.recipients)} recipients): {notice.get_status_display().lower()}"
            + (f" — {notice.error}" if notice.error and notice.status == Notification.Status.FAILED else "")
        )
    if not incident.updates.exists() and not sent.exists():
        lines.append("_Nothing was sent._")
    lines += ["", "## Timeline", ""]
    lines += [
        f"- {when(step.at)} · {step.actor_label} · {step.get_kind_display()}: {step.text}"
        for step in incident.steps.order_by("at", "id")
    ]
    if incident.resolve_override_reason:
        lines += ["", f"Resolved with an override: {incident.resolve_override_reason}"]
    return "\n".join(lines) + "\n"
