"""Replays as named steps, called by the pages, the commands and tests alike.

- `check_replay`: the dry run. Resolves the selection, plans every job of every event and keeps
  the plan on a new ReplayRequest ("planned"). Nothing runs.
- `do_replay`: the real run of exactly that plan. It needs a reason and the plan's hash as shown;
  a new dry run must give the same hash (else the request gets the new plan and the caller is
  told to look again). A plan over the approval limits waits for an admin; any other is queued.
- `approve_replay`: an admin who did not request it approves exactly the plan shown (its hash),
  after the same fresh dry run; a changed selection or state voids the request back to "planned".
- `cancel_replay`: stop it; items not yet run are cancelled, one being run finishes.

Each change goes through `ReplayRequest.STATES` (a conditional UPDATE) and is audited.
"""

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from console import metrics
from console.audit import acting_user, actor_label, record_action
from integrations.models import Event, ReplayItem, ReplayRequest
from integrations.replay import planner
from integrations.replay.selection import Selection, SelectionError, resolve

Status = ReplayRequest.Status


class ReplayError(ValueError):
    """A replay step the console refuses, with a message for the person who asked."""


class PlanChanged(ReplayError):
    """The selection or the state changed since the dry run: the request holds the new plan."""


def _label(by) -> str:
    return actor_label(by, nobody="command line")


def selection_of(replay: ReplayRequest) -> Selection:
    return Selection.from_json(replay.kind, replay.selection)


def compute_plan(selection: Selection, mode: str) -> planner.Plan:
    if mode not in ReplayRequest.Mode.values:
        raise ReplayError(f"mode must be one of {', '.join(ReplayRequest.Mode.values)}")
    return planner.build_plan(resolve(selection), mode, selection.as_json())


def _plan_fields(plan: planner.Plan) -> dict:
    reasons = planner.approval_reasons(plan)
    return {
        "plan": [entry.as_json() for entry in plan.entries],
        "summary": plan.summary(),
        "plan_hash": plan.hash,
        "planned_at": timezone.now(),
        "needs_approval": bool(reasons),
        "approval_reasons": reasons,
    }


def check_replay(*, selection: Selection, mode: str = "stored", by=None, incident=None) -> ReplayRequest:
    """The dry run: a new "planned" ReplayRequest holding the plan. Nothing runs."""
    plan = compute_plan(selection, mode)
    if not plan.event_ids:
        raise SelectionError(f"{selection.describe()}: no such events")
    return ReplayRequest.objects.create(
        requested_by=acting_user(by),
        requested_label=_label(by),
        kind=selection.kind,
        selection=selection.as_json(),
        mode=mode,
        incident=incident,
        **_plan_fields(plan),
    )


def _replan(replay: ReplayRequest) -> planner.Plan:
    return compute_plan(selection_of(replay), replay.mode)


def _void(replay: ReplayRequest, plan: planner.Plan, *, source: str, by, request, why: str) -> None:
    """Back to "planned" with the new plan: nothing runs on a plan nobody saw."""
    fields = _plan_fields(plan)
    moved = ReplayRequest.STATES.move(
        ReplayRequest.objects.filter(pk=replay.pk, plan_hash=replay.plan_hash),
        source=source,
        target=Status.PLANNED,
        approved_by=None,
        approved_at=None,
        approved_hash="",
        **fields,
    )
    if moved:
        record_action(
            actor=by,
            verb="replay.voided",
            target=replay,
            before={"status": source, "plan_hash": replay.plan_hash},
            after={"status": Status.PLANNED, "plan_hash": plan.hash},
            reason=why,
            request=request,
        )
    for name, value in fields.items():
        setattr(replay, name, value)
    replay.status = Status.PLANNED


def _same_plan_or_void(replay: ReplayRequest, *, by, request, why: str, message: str) -> planner.Plan:
    """A fresh dry run of the request; if it differs from the plan shown, the request gets the new
    plan, back in "planned" (committed, and audited), and PlanChanged says so."""
    plan = _replan(replay)
    if plan.hash != replay.plan_hash:
        with transaction.atomic():
            _void(replay, plan, source=replay.status, by=by, request=request, why=why)
        raise PlanChanged(message)
    return plan


def do_replay(replay: ReplayRequest, *, by, reason: str, plan_hash: str, request=None) -> ReplayRequest:
    """Run the plan that was shown (`plan_hash`), for `reason`. Returns the request, queued or
    waiting for approval. PlanChanged if a fresh dry run differs (the request has the new plan)."""
    if not reason.strip():
        raise ReplayError("A replay needs a reason (kept on the replay and in the audit trail).")
    if replay.status != Status.PLANNED:
        raise ReplayError(f"replay {replay.pk} is {replay.get_status_display().lower()}: only a dry run can be run")
    if plan_hash != replay.plan_hash:
        raise PlanChanged(f"replay {replay.pk} has another plan than the one shown: look at it again")
    plan = _same_plan_or_void(
        replay, by=by, request=request, why="the selection or the state changed since the dry run",
        message=f"the events changed since the dry run of replay {replay.pk}: here is the new plan; check it and run "
        "it again",
    )  # fmt: skip
    with transaction.atomic():
        target = Status.AWAITING_APPROVAL if replay.needs_approval else Status.QUEUED
        moved = ReplayRequest.STATES.move(
            ReplayRequest.objects.filter(pk=replay.pk, plan_hash=plan_hash),
            source=Status.PLANNED,
            target=target,
            reason=reason.strip(),
            requested_by=acting_user(by),
            requested_label=_label(by),
        )
        if not moved:
            raise ReplayError(f"replay {replay.pk} changed meanwhile (someone else ran or cancelled it)")
        replay.status, replay.reason = target, reason.strip()
        replay.requested_by, replay.requested_label = acting_user(by), _label(by)
        record_action(
            actor=by,
            verb="replay.request",
            target=replay,
            before={"status": Status.PLANNED},
            after={"status": target, "plan_hash": plan_hash, "summary": replay.summary},
            reason=reason,
            request=request,
        )
        if target == Status.QUEUED:
            _start(replay, plan)
    metrics.replay_stage("requested")
    return replay


def approve_replay(replay: ReplayRequest, *, by, plan_hash: str | None = None, request=None) -> ReplayRequest:
    """An admin other than the requester approves exactly the plan shown; it starts at once."""
    if by is None or not by.has_perm("integrations.approve_replay"):
        raise ReplayError("Only an admin can approve a replay.")
    if replay.status != Status.AWAITING_APPROVAL:
        raise ReplayError(f"replay {replay.pk} is {replay.get_status_display().lower()}: nothing to approve")
    if replay.requested_by_id is not None and replay.requested_by_id == by.pk:
        raise ReplayError("You requested this replay: another admin must approve it.")
    if plan_hash is not None and plan_hash != replay.plan_hash:
        raise PlanChanged(f"replay {replay.pk} has another plan than the one you saw: look at it again")
    plan = _same_plan_or_void(
        replay, by=by, request=request, why="approval voided: the selection or the state changed since the dry run",
        message=f"the events changed since replay {replay.pk} was planned, so the approval would not cover what "
        "would run: it is back to a dry run with the new plan, to be requested and approved again",
    )  # fmt: skip
    with transaction.atomic():
        now = timezone.now()
        moved = ReplayRequest.STATES.move(
            ReplayRequest.objects.filter(pk=replay.pk, plan_hash=replay.plan_hash),
            source=Status.AWAITING_APPROVAL,
            target=Status.QUEUED,
            approved_by=by,
            approved_at=now,
            approved_hash=replay.plan_hash,
        )
        if not moved:
            raise ReplayError(f"replay {replay.pk} changed meanwhile (approved or cancelled by someone else)")
        replay.status, replay.approved_by, replay.approved_at, replay.approved_hash = (
            Status.QUEUED, by, now, replay.plan_hash,
        )  # fmt: skip
        record_action(
            actor=by,
            verb="replay.approve",
            target=replay,
            before={"status": Status.AWAITING_APPROVAL},
            after={"status": Status.QUEUED, "approved_hash": replay.plan_hash},
            reason=f"approved the plan {replay.plan_hash[:12]} requested by {replay.requested_label}",
            request=request,
        )
        _start(replay, plan)
    return replay


def _start(replay: ReplayRequest, plan: planner.Plan) -> None:
    """One item per event the plan runs jobs for; the pumps take them in the replay lane."""
    shops = dict(Event.objects.filter(pk__in=list(plan.runs)).values_list("id", "shop_id"))
    items = [
        ReplayItem(replay=replay, event_id=event_id, shop_id=shops[event_id], jobs=jobs)
        for event_id, jobs in plan.runs.items()
    ]
    ReplayItem.objects.bulk_create(items, batch_size=500)
    if items:
        ReplayRequest.objects.filter(pk=replay.pk).update(items_total=len(items))
        replay.items_total = len(items)
        return
    now = timezone.now()
    outcome = "nothing to run: every job was skipped in the plan"
    ReplayRequest.STATES.move(
        ReplayRequest.objects.filter(pk=replay.pk),
        source=Status.QUEUED,
        target=Status.DONE,
        started_at=now,
        finished_at=now,
        outcome=outcome,
    )
    replay.status, replay.started_at, replay.finished_at, replay.outcome = Status.DONE, now, now, outcome
    record_action(actor=None, verb="replay.done", target=replay, after={"outcome": outcome})
    metrics.replay_stage("finished")


def cancel_replay(replay: ReplayRequest, *, by, reason: str, request=None) -> bool:
    """Stop a replay: items not yet run are cancelled; one a pump is running finishes."""
    if not reason.strip():
        raise ReplayError("Say why you cancel it (kept in the audit trail).")
    source = replay.status
    if source in ReplayRequest.FINISHED:
        raise ReplayError(f"replay {replay.pk} is already {replay.get_status_display().lower()}")
    now = timezone.now()
    with transaction.atomic():
        moved = ReplayRequest.STATES.move(
            ReplayRequest.objects.filter(pk=replay.pk),
            source=source,
            target=Status.CANCELLED,
            finished_at=now,
            outcome=f"cancelled by {_label(by)}: {reason.strip()}",
        )
        if not moved:
            return False
        cancelled = ReplayItem.STATES.move(
            ReplayItem.objects.filter(replay=replay),
            source=ReplayItem.Status.PENDING,
            target=ReplayItem.Status.CANCELLED,
            finished_at=now,
            result="cancelled before it ran",
        )
        if cancelled:
            from django.db.models import F

            ReplayRequest.objects.filter(pk=replay.pk).update(items_done=F("items_done") + cancelled)
        record_action(
            actor=by,
            verb="replay.cancel",
            target=replay,
            before={"status": source},
            after={"status": Status.CANCELLED, "items_cancelled": cancelled},
            reason=reason,
            request=request,
        )
    replay.refresh_from_db()
    return True


def link_incident(replay: ReplayRequest, incident, *, by, request=None) -> None:
    """Link a replay to the incident it belongs to (or unlink it with None); audited."""
    before = replay.incident_id
    with transaction.atomic():
        ReplayRequest.objects.filter(pk=replay.pk).update(incident=incident)
        record_action(
            actor=by,
            verb="replay.link_incident",
            target=replay,
            before={"incident": before},
            after={"incident": incident.pk if incident else None},
            request=request,
        )
    replay.incident = incident


def replay_json(replay: ReplayRequest, *, with_plan: bool = True) -> dict:
    """A replay as the command line prints it (--json): the dry run's keys first."""
    summary = replay.summary or {}
    data = {
        "id": replay.pk,
        "status": replay.status,
        "mode": replay.mode,
        "kind": replay.kind,
        "selection": replay.selection,
        "events": summary.get("events", 0),
        "outbound_calls": summary.get("outbound_calls", 0),
        "outbound_lane": "replay",
        "needs_approval": replay.needs_approval,
        "approval_reasons": replay.approval_reasons,
        "plan_hash": replay.plan_hash,
        "summary": summary,
        "requested_by": replay.requested_label,
        "reason": replay.reason,
        "approved_by": replay.approved_by.get_username() if replay.approved_by_id else None,
        "progress": {
            "items_total": replay.items_total,
            "items_done": replay.items_done,
            "percent": replay.progress_percent,
            "jobs_ran": replay.jobs_ran,
            "jobs_failed": replay.jobs_failed,
            "jobs_skipped": replay.jobs_skipped,
        },
        "created_at": replay.created_at.isoformat(),
        "started_at": replay.started_at.isoformat() if replay.started_at else None,
        "finished_at": replay.finished_at.isoformat() if replay.finished_at else None,
        "outcome": replay.outcome,
        "incident_id": replay.incident_id,
    }
    if with_plan:
        data["plan"] = [
            {k: entry[k] for k in ("webhook_id", "event_id", "shop", "topic", "job", "decision", "reason")}
            for entry in replay.plan
        ]
    return data


def approval_limits() -> dict:
    return {
        "events": settings.REPLAY_APPROVAL_EVENTS,
        "records": settings.REPLAY_APPROVAL_RECORDS,
        "shops": settings.REPLAY_APPROVAL_SHOPS,
        "money": settings.REPLAY_APPROVAL_MONEY,
    }
