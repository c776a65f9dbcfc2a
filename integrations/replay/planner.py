"""The dry run: for each job of each selected event, run or skip, and why, from the job type's
declared decision evaluated on the state right now.

The checks, in the order a reason is given (the first that applies):
1. the event is still in flight (queued, being processed, waiting for a retry): the worker has it;
2. the shop is uninstalled: its token is revoked and nothing should happen for it;
3. (stored payload) the payload was purged by retention (PAYLOAD_RETENTION_DAYS), or cannot be
   read: replaying it fails the same way. A refetch reads the record from Shopify by the event's
   resource id, which retention keeps, so it still plans, except for inventory levels (their
   location is only in the payload);
4. the handler is disabled for the shop (a containment switch);
5. the job is never safe to replay (its declaration says why);
6. the job already succeeded: replaying adds nothing (with a refetch, a sync job still runs: the
   current record may be newer than what we hold);
7. a newer event for the same record was processed and ran this job (stored payload only; for a
   job that failed: a held one never ran, and running it settles its event);
8. the job's own condition, evaluated now (e.g. the order is already fulfilled).
Otherwise it runs, with the declaration's reason.

Everything is loaded in a few queries per 500 events, except the conditional predicates, which
read one row each. The plan's hash covers the entries and the state they came from (each event's
status and each job's status and attempt count), so any change gives another hash.
"""

import contextlib
import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings

from integrations.jobs.registry import JOB_TYPES, TOPIC_JOBS, Decision
from integrations.models import Delivery, Event, Job, OutboundCall, Shop
from integrations.processing.runner import parse_payload
from integrations.replay.refetch import can_refetch
from integrations.replay.switches import disabled_by_shop, disabled_reason

CHUNK = 500
RUN, SKIP = "run", "skip"


@dataclass
class Entry:
    event_id: int
    webhook_id: str
    shop: str
    topic: str
    job: str | None
    decision: str
    reason: str
    kind: str  # the check that decided (KINDS), to count and filter by

    def as_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    run: bool
    reason: str
    kind: str


# What decided an entry, in the order the checks run, with a short label for counts.
KINDS = {
    "in_flight": "still in flight",
    "uninstalled": "shop uninstalled",
    "purged": "payload purged",
    "unreadable": "payload unreadable",
    "not_refetchable": "nothing to refetch",
    "no_handler": "no handler for the topic",
    "disabled": "handler disabled",
    "never": "never safe to replay",
    "succeeded": "already succeeded",
    "newer": "a newer event was processed",
    "condition": "condition false now",
    "unknown_job": "job no longer registered",
    "run": "runs",
}


@dataclass
class Plan:
    mode: str
    entries: list[Entry] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)
    runs: dict[int, list[str]] = field(default_factory=dict)  # event id -> jobs to run, in topic order
    records: set = field(default_factory=set)
    shops: set = field(default_factory=set)
    outbound_calls: int = 0
    refetch_reads: int = 0
    money: Decimal = Decimal(0)
    state: list = field(default_factory=list)
    hash: str = ""
    intended_keys: dict = field(default_factory=lambda: defaultdict(set))  # shop id -> call keys
    unknown_calls: int = 0

    def summary(self) -> dict:
        skips: dict[str, int] = defaultdict(int)
        for entry in self.entries:
            if entry.decision == SKIP:
                skips[KINDS[entry.kind]] += 1
        return {
            "events": len(self.event_ids),
            "events_to_run": len(self.runs),
            "jobs_to_run": sum(len(jobs) for jobs in self.runs.values()),
            "jobs_to_skip": sum(1 for entry in self.entries if entry.decision == SKIP),
            "skips_by_reason": dict(sorted(skips.items(), key=lambda item: -item[1])),
            "records": len(self.records),
            "shops": len(self.shops),
            "outbound_calls": self.outbound_calls,
            "outbound_lane": "replay",
            "refetch_reads": self.refetch_reads,
            "money_at_risk": str(self.money),
        }


@dataclass
class _Context:
    mode: str
    disabled: dict  # switches.disabled_by_shop()
    payloads: dict = field(default_factory=dict)
    jobs: dict = field(default_factory=dict)  # event id -> {name: Job}
    newer: dict = field(default_factory=dict)  # (shop, gid, job) -> [(updated_at, event_id, webhook_id)]


def build_plan(event_ids: list[int], mode: str, selection_json: dict) -> Plan:
    plan = Plan(mode=mode, event_ids=list(event_ids))
    disabled = disabled_by_shop()
    for start in range(0, len(event_ids), CHUNK):
        chunk = event_ids[start : start + CHUNK]
        events = list(Event.objects.filter(pk__in=chunk).select_related("shop").order_by("id"))
        context = _load(events, mode, disabled)
        for event in events:
            _plan_event(plan, event, context)
    _count_calls(plan)
    plan.hash = plan_hash(plan, selection_json)
    return plan


def _load(events: list[Event], mode: str, disabled: dict) -> _Context:
    context = _Context(mode=mode, disabled=disabled)
    ids = [event.pk for event in events]
    for job in Job.objects.filter(event_id__in=ids):
        context.jobs.setdefault(job.event_id, {})[job.name] = job
    bodies = Delivery.objects.filter(event_id__in=ids, outcome=Delivery.Outcome.ACCEPTED).values_list(
        "event_id", "body"
    )
    for event_id, body in bodies:
        try:
            context.payloads[event_id] = parse_payload(body)
        except ValueError as exc:
            context.payloads[event_id] = exc
    if mode == "stored":
        context.newer = _processed_versions(events)
    return context


def run_time_context(events: list[Event], mode: str) -> _Context:
    """What `job_decision` needs to re-check jobs at run time: the switches and, for a stored
    payload, the processed versions of the events' records."""
    context = _Context(mode=mode, disabled=disabled_by_shop())
    if mode == "stored":
        context.newer = _processed_versions(events)
    return context


def _processed_versions(events: list[Event]) -> dict:
    """Per (shop, record, job): the events that ran the job to success, with their version."""
    gids = sorted({event.resource_gid for event in events if event.resource_gid})
    shops = sorted({event.shop_id for event in events})
    found: dict = defaultdict(list)
    if not gids:
        return found
    rows = Job.objects.filter(
        status=Job.Status.SUCCEEDED, event__shop_id__in=shops, event__resource_gid__in=gids
    ).values_list("name", "event_id", "event__shop_id", "event__resource_gid", "event__resource_updated_at",
                  "event__webhook_id")  # fmt: skip
    for name, event_id, shop_id, gid, updated_at, webhook_id in rows:
        found[(shop_id, gid, name)].append((updated_at, event_id, webhook_id))
    return found


def _newer_run(event: Event, name: str, context: _Context) -> tuple | None:
    """A processed event for the same record, at least as new as this one, that ran this job."""
    if not event.resource_gid:
        return None
    newest = None
    for updated_at, event_id, webhook_id in context.newer.get((event.shop_id, event.resource_gid, name), ()):
        if event_id == event.pk:
            continue
        if event.resource_updated_at and updated_at:
            newer = updated_at >= event.resource_updated_at
        else:
            newer = event_id > event.pk
        if newer and (newest is None or event_id > newest[1]):
            newest = (updated_at, event_id, webhook_id)
    return newest


def _plan_event(plan: Plan, event: Event, context: _Context) -> None:
    names = TOPIC_JOBS.get(event.topic)

    def add(job: str | None, decision: str, reason: str, kind: str) -> None:
        plan.entries.append(
            Entry(event.pk, event.webhook_id, event.shop.domain, event.topic, job, decision, reason, kind)
        )

    jobs = context.jobs.get(event.pk, {})
    plan.state.append([event.pk, event.status, event.processed_count,
                       sorted([name, job.status, job.attempt_count] for name, job in jobs.items())])  # fmt: skip
    if not names:
        add(None, SKIP, f"no handler for topic {event.topic}: nothing to replay", "no_handler")
        return
    payload = context.payloads.get(event.pk)
    event_reason = None
    if event.status in Event.IN_FLIGHT_STATUSES:
        event_reason = (
            "in_flight",
            (f"still in flight ({event.get_status_display().lower()}): the worker runs it; replay it once it settles"),
        )
    elif event.shop.state == Shop.State.UNINSTALLED:
        event_reason = "uninstalled", "the shop is uninstalled: its token is revoked, so nothing is replayed for it"
    elif event.payload_purged_at is not None and (
        context.mode == "stored" or event.topic.startswith("inventory_levels/")
    ):
        event_reason = "purged", _purged_reason(event, context.mode)
    elif context.mode == "stored" and not isinstance(payload, dict):
        problem = payload if isinstance(payload, Exception) else "no stored body"
        event_reason = (
            "unreadable",
            f"the stored payload cannot be read ({problem}): replaying it would fail the same way",
        )
    elif context.mode == "refetch" and not can_refetch(event.topic):
        event_reason = (
            "not_refetchable",
            (f"{event.topic} has no record Shopify can be asked for: replay the stored payload instead"),
        )
    elif context.mode == "refetch" and not event.resource_id:
        event_reason = "not_refetchable", "the record cannot be refetched: we never learnt which record it is about"
    if event_reason:
        kind, reason = event_reason
        for name in names:
            add(name, SKIP, reason, kind)
        return
    to_run = []
    for name in names:
        verdict = job_decision(event, name, jobs.get(name), context)
        add(name, RUN if verdict.run else SKIP, verdict.reason, verdict.kind)
        if verdict.run:
            to_run.append(name)
    if not to_run:
        return
    plan.runs[event.pk] = to_run
    plan.shops.add(event.shop_id)
    plan.records.add((event.shop_id, event.resource_gid or f"event:{event.pk}"))
    if context.mode == "refetch":
        plan.refetch_reads += 1
    if isinstance(payload, dict) and event.topic.startswith("orders/"):
        with contextlib.suppress(InvalidOperation):
            plan.money += Decimal(str(payload.get("total_price") or 0))
    for name in to_run:
        intended = JOB_TYPES[name].intended_calls
        if intended is None:
            continue
        if context.mode == "refetch" or not isinstance(payload, dict):
            plan.unknown_calls += 1  # the payload is only known once refetched: counts as one
            continue
        try:
            plan.intended_keys[event.shop_id].update(intended(event, payload))
        except Exception:  # noqa: BLE001, S112 - a payload the job would fail on makes no call
            continue


def _purged_reason(event: Event, mode: str) -> str:
    from integrations.inbound.retention import purge_note

    if mode == "stored":
        return (
            f"{purge_note(event)}: not replayable from storage; a refetch replay reads the record from Shopify instead"
        )
    return f"{purge_note(event)}: the level's location was only in the payload, so it cannot be refetched"


def job_decision(event: Event, name: str, job: Job | None, context: _Context) -> Verdict:
    """Run or skip one job of one (settled) event, and why: checks 4 to 8 of the module doc (and,
    at run time, check 3's purge: a payload purged since the dry run)."""
    job_type = JOB_TYPES.get(name)
    if job_type is None:
        return Verdict(False, f"no job type named {name} is registered any more", "unknown_job")
    if context.mode == "stored" and event.payload_purged_at is not None:
        return Verdict(False, _purged_reason(event, context.mode), "purged")
    if reason := disabled_reason(context.disabled, event.shop_id, name):
        return Verdict(False, reason, "disabled")
    if job_type.replay == "never":
        return Verdict(False, f"never safe to replay: {job_type.replay_reason}", "never")
    refetching = context.mode == "refetch" and job_type.refetchable
    if job is not None and job.status == Job.Status.SUCCEEDED and not refetching:
        finished = f" at {job.finished_at:%Y-%m-%d %H:%M:%S} UTC" if job.finished_at else ""
        return Verdict(False, f"already succeeded{finished}: replaying adds nothing", "succeeded")
    # Only a run that failed is superseded: a held or pending job never ran, and running it (its
    # writes are guarded by version and key, so it finds nothing to do) is what settles its event.
    superseding = job is not None and job.status in (Job.Status.FAILED, Job.Status.RETRY_WAIT)
    if (
        context.mode == "stored"
        and job_type.supersedable
        and superseding
        and (newer := _newer_run(event, name, context))
    ):
        updated_at, event_id, webhook_id = newer
        version = f", Shopify's updated_at {updated_at:%Y-%m-%d %H:%M:%S} UTC" if updated_at else ""
        return Verdict(
            False,
            f"a newer event for the same record was processed: event {event_id} (webhook {webhook_id}{version}) "
            f"ran {name}, so replaying this older one changes nothing",
            "newer",
        )
    decision: Decision = job_type.decision(event, job)
    if not decision.run:
        return Verdict(False, f"condition false now: {decision.reason}", "condition")
    return Verdict(True, f"{_history(job)}; {decision.reason}", "run")


def _history(job: Job | None) -> str:
    if job is None or job.status == Job.Status.PENDING:
        return "never ran"
    if job.status == Job.Status.HELD:
        return "held while its handler was disabled"
    if job.status == Job.Status.SUCCEEDED:
        return "succeeded before; runs on the record as Shopify has it now"
    error = (job.last_error or "").splitlines()[0][:200] if job.last_error else "no message"
    return f"failed after {job.attempt_count} attempt{'s' if job.attempt_count != 1 else ''} ({error})"


def _count_calls(plan: Plan) -> None:
    """The outbound calls the run would enqueue: the pushing jobs' intended keys that no call
    holds yet (plus one per pushing job whose payload is only known once refetched)."""
    existing = 0
    for shop_id, keys in plan.intended_keys.items():
        keys = sorted(keys)
        for start in range(0, len(keys), CHUNK):
            batch = keys[start : start + CHUNK]
            existing += OutboundCall.objects.filter(shop_id=shop_id, idempotency_key__in=batch).count()
    plan.outbound_calls = sum(len(k) for k in plan.intended_keys.values()) - existing + plan.unknown_calls


def plan_hash(plan: Plan, selection_json: dict) -> str:
    canonical = json.dumps(
        {
            "mode": plan.mode,
            "selection": selection_json,
            "entries": [[e.event_id, e.job, e.decision, e.reason] for e in plan.entries],
            "state": plan.state,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def approval_reasons(plan: Plan) -> list[str]:
    """Why this plan needs an admin's approval (empty: it does not)."""
    limits = (
        (len(plan.runs), settings.REPLAY_APPROVAL_EVENTS, "events to replay"),
        (len(plan.records), settings.REPLAY_APPROVAL_RECORDS, "records touched"),
        (len(plan.shops), settings.REPLAY_APPROVAL_SHOPS, "shops"),
    )
    reasons = [f"{value:,} {what} (more than {limit:,})" for value, limit, what in limits if value > limit]
    if plan.money > Decimal(settings.REPLAY_APPROVAL_MONEY):
        reasons.append(f"{plan.money:,.2f} in order totals at stake (more than {settings.REPLAY_APPROVAL_MONEY:,})")
    return reasons
