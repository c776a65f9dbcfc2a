"""Running replays: the replay lane of the event pumps.

A pump runs `replay_pass` only after its live pass found the queue drained, and takes a small
batch (REPLAY_BATCH_SIZE items), so live events keep priority: one arriving meanwhile waits at
most one small batch. For each item it:
1. with a refetch, reads the record as Shopify has it now through the outbound client (a record
   gone is skipped; a rate limit or outage puts the item back until Shopify's Retry-After);
2. claims the event (a conditional UPDATE from a settled status): an event a pump or another
   replay holds is put back to wait, so one event is never run by two at once;
3. re-checks each planned job's decision on the state now: one that became unsafe or pointless
   since the dry run (another replay ran it, a newer event arrived, its handler was disabled) is
   skipped with the reason; nothing outside the plan ever runs;
4. runs what is left through the pump's own batch machinery (trigger "replay", linked to the
   replay), and settles the item. The jobs' database keys make each effect happen once even if
   two runs race.
Items of a paused shop wait until it is resumed.
"""

import logging
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from console import metrics
from console.audit import record_action
from console.logcontext import bind
from integrations.models import Event, Job, ReplayItem, ReplayRequest, WorkerHeartbeat
from integrations.replay import planner
from integrations.replay.priority import runs_behind_live
from integrations.replay.selection import REPLAYABLE

logger = logging.getLogger(__name__)

Item = ReplayItem.Status
BUSY_WAIT = timedelta(seconds=2)
LIVE_FLOWING = timedelta(seconds=2)
HEAVY_FIELDS = ("plan", "summary", "approval_reasons", "selection")


@dataclass
class ReplayWork:
    """What the pump's batch runs for replay items: per event, the jobs and the replay."""

    jobs: dict[int, frozenset[str]] = field(default_factory=dict)
    replays: dict[int, int] = field(default_factory=dict)
    payloads: dict[int, dict] = field(default_factory=dict)
    items: dict[int, ReplayItem] = field(default_factory=dict)  # event id -> its item

    def settle(self, outcomes) -> None:
        """Called by the pump inside the transaction that wrote `outcomes`: the items settle
        with their events' runs, or not at all."""
        _settle_ran([(self.items[o.event.pk], o) for o in outcomes if o.event.pk in self.items], self)

    def jobs_for(self, event_id: int) -> frozenset[str]:
        return self.jobs.get(event_id, frozenset())

    def replay_of(self, event_id: int) -> int | None:
        return self.replays.get(event_id)


def _todo(now):
    return (
        ReplayItem.objects.filter(status=Item.PENDING, replay__status__in=[ReplayRequest.Status.QUEUED,
                                                                            ReplayRequest.Status.RUNNING])
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .exclude(shop__queue_paused=True)
    )  # fmt: skip


def claim_items(pump: str, limit: int) -> list[ReplayItem]:
    """Claim up to `limit` due items of one running replay, in plan order. With several replays
    running, each pass picks one at random, so they all progress at once."""
    now = timezone.now()
    active = list(
        ReplayRequest.objects.filter(status__in=[ReplayRequest.Status.QUEUED, ReplayRequest.Status.RUNNING])
        .order_by("id")
        .values_list("id", flat=True)[:100]
    )
    random.shuffle(active)
    for replay_id in active:
        if items := _claim_from(pump, replay_id, limit, now):
            return items
    return []


def _claim_from(pump: str, replay_id: int, limit: int, now) -> list[ReplayItem]:
    candidates = _todo(now).filter(replay_id=replay_id).order_by("id")
    if not candidates.exists():
        return []  # an idle pump must not take SQLite's write lock to find nothing
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True, of=("self",))
        rows = list(candidates.values_list("id", "replay_id")[:limit])
        if not rows:
            return []
        ids = [pk for pk, _replay in rows]
        ReplayItem.STATES.move(
            ReplayItem.objects.filter(pk__in=ids), source=Item.PENDING, target=Item.CLAIMED, claimed_by=pump,
            claimed_at=now,
        )  # fmt: skip
        started = ReplayRequest.STATES.move(
            ReplayRequest.objects.filter(pk__in={replay for _pk, replay in rows}), source=ReplayRequest.Status.QUEUED,
            target=ReplayRequest.Status.RUNNING, started_at=now,
        )  # fmt: skip
        metrics.replay_stage("started", started)
    # The replay's plan can be megabytes of JSON: never loaded here, once per item.
    return list(
        ReplayItem.objects.filter(pk__in=ids, claimed_by=pump, status=Item.CLAIMED)
        .select_related("replay")
        .defer(*(f"replay__{name}" for name in HEAVY_FIELDS))
    )


def live_leaves_room(now, *, shared: bool = True) -> bool:
    """Whether live traffic leaves room for a replay batch now: no live event has waited longer
    than REPLAY_YIELD_MS (else the live pumps are behind). A pump that also runs live events
    (`shared`) then also holds back while live webhooks are arriving (one in the last
    LIVE_FLOWING) and another replay batch is running: one batch at a time, so most pumps and
    cores stay free for live events. A replay-only pump (`manage.py replay_lane`) runs at a lower
    CPU priority instead, and every one of them replays; when it and its database server process
    run at SCHED_IDLE (integrations.replay.priority) it does not look at live events at all: the
    kernel runs them first, and a replay that stopped whenever a live event waited 50 ms would
    leave idle cores unused on a busy machine."""
    from integrations.processing.claims import newest_received_at, oldest_queued_at

    if not shared and runs_behind_live(connection):
        return True
    oldest = oldest_queued_at()
    if oldest is not None and (now - oldest).total_seconds() * 1000 > settings.REPLAY_YIELD_MS:
        return False
    if not shared:
        return True
    newest = newest_received_at()
    if newest is not None and now - newest < LIVE_FLOWING:
        return not ReplayItem.objects.filter(status=Item.CLAIMED).exists()
    return True


def replay_pass(pump, limit: int | None = None, *, shared: bool = True) -> int:
    """One replay batch for `pump` (an event pump), if there is replay work and live traffic
    leaves room. Returns the items settled."""
    now = timezone.now()
    if not _todo(now).exists() or not live_leaves_room(now, shared=shared):
        return 0
    items = claim_items(pump.name, limit or settings.REPLAY_BATCH_SIZE)
    if not items:
        return 0
    try:
        return _run_items(pump, items)
    except BaseException:
        # Give the items back (the event claims go back with the pump's own release).
        ReplayItem.STATES.move(
            ReplayItem.objects.filter(pk__in=[i.pk for i in items], claimed_by=pump.name),
            source=Item.CLAIMED, target=Item.PENDING, claimed_by="", claimed_at=None,
        )  # fmt: skip
        raise


def _put_back(items: list[ReplayItem], why: str, *, until=None) -> None:
    if not items:
        return
    ReplayItem.STATES.move(
        ReplayItem.objects.filter(pk__in=[item.pk for item in items]),
        source=Item.CLAIMED,
        target=Item.PENDING,
        claimed_by="",
        claimed_at=None,
        not_before=until or timezone.now() + BUSY_WAIT,
        waiting_for=why[:255],
    )


def _run_items(pump, items: list[ReplayItem]) -> int:
    work = ReplayWork()
    settled = 0
    if any(item.replay.mode == ReplayRequest.Mode.REFETCH for item in items):
        items, gone = _refetch(items, work)
        settled += _settle_skipped(gone)
    # Claim the events: only from a settled status, so a pump or another replay holding one wins.
    previous = dict(Event.objects.filter(pk__in=[item.event_id for item in items]).values_list("id", "status"))
    now = timezone.now()
    Event.STATES.move(
        Event.objects.filter(pk__in=[item.event_id for item in items]),
        source=REPLAYABLE,
        target=Event.Status.CLAIMED,
        claimed_by=pump.name,
        claimed_at=now,
    )
    held = set(Event.objects.filter(pk__in=list(previous), claimed_by=pump.name).values_list("id", flat=True))
    busy = [item for item in items if item.event_id not in held]
    _put_back(busy, "the event is being processed elsewhere (a pump or another replay): waiting for it")
    items = [item for item in items if item.event_id in held]
    if not items:
        return settled
    runs, skipped = _recheck(items, work)
    # Nothing left to run for an event: give it back as it was (one UPDATE per status).
    back: dict[str, list[int]] = defaultdict(list)
    for item in skipped:
        back[previous[item.event_id]].append(item.event_id)
    for status, event_ids in back.items():
        Event.STATES.move(
            Event.objects.filter(pk__in=event_ids, claimed_by=pump.name), source=Event.Status.CLAIMED,
            target=status, claimed_by="", claimed_at=None,
        )  # fmt: skip
    settled += _settle_skipped(skipped)
    if not runs:
        return settled
    work.items = {item.event_id: item for item in runs}
    # The outcomes it returns are the committed ones; an event without one was not run.
    outcomes = pump.run_batch([item.event_id for item in runs], replay=True, work=work)
    settled_events = {outcome.event.pk for outcome in outcomes}
    lost = [item for item in runs if item.event_id not in settled_events]
    _put_back(lost, "the run was interrupted: it runs again")
    _finish_done({item.replay_id for item in items})
    return settled + len(runs) - len(lost)


def _recheck(items: list[ReplayItem], work: ReplayWork) -> tuple[list[ReplayItem], list[ReplayItem]]:
    """Each planned job's decision on the state now; fills `work` and says which items run."""
    events = {e.pk: e for e in Event.objects.filter(pk__in=[i.event_id for i in items]).select_related("shop")}
    jobs: dict[int, dict[str, Job]] = {}
    for job in Job.objects.filter(event_id__in=list(events)):
        jobs.setdefault(job.event_id, {})[job.name] = job
    runs, skipped = [], []
    contexts = {}
    for mode in {item.replay.mode for item in items}:
        mine = [events[i.event_id] for i in items if i.replay.mode == mode]
        contexts[mode] = planner.run_time_context(mine, mode)
    for item in items:
        event = events[item.event_id]
        context = contexts[item.replay.mode]
        to_run, reasons = [], []
        for name in item.jobs:
            verdict = planner.job_decision(event, name, jobs.get(event.pk, {}).get(name), context)
            if verdict.run:
                to_run.append(name)
            else:
                reasons.append(f"{name}: skipped, changed since the dry run: {verdict.reason}")
        item.skip_notes = reasons
        if to_run:
            work.jobs[event.pk] = frozenset(to_run)
            work.replays[event.pk] = item.replay_id
            runs.append(item)
        else:
            skipped.append(item)
    return runs, skipped


def _settle(rows: list[tuple[ReplayItem, str, str]], counts: dict[int, Counter]) -> None:
    """Settle claimed items, each (item, status, result), in one executemany, and add `counts`
    to each replay's progress in one UPDATE per replay."""
    now = timezone.now()
    ReplayItem.STATES.move_each(
        ReplayItem,
        [
            (item.pk, Item.CLAIMED, status, {"finished_at": now, "result": result[:5000], "claimed_by": "",
                                             "waiting_for": ""})
            for item, status, result in rows
        ],
    )  # fmt: skip
    metrics.replay_items_settled(status for _item, status, _result in rows)
    if logger.isEnabledFor(logging.INFO):
        for item, status, result in rows:
            with bind(replay_id=item.replay_id, event_id=item.event_id):
                logger.info("replay %s, event %s: %s: %s", item.replay_id, item.event_id, status, result[:300])
    for replay_id, counter in counts.items():
        ReplayRequest.objects.filter(pk=replay_id).update(**{name: F(name) + n for name, n in counter.items()})


def _settle_skipped(items: list[ReplayItem]) -> int:
    rows, counts = [], defaultdict(Counter)
    for item in items:
        notes = getattr(item, "skip_notes", None) or [item.waiting_for or "skipped"]
        rows.append((item, Item.SKIPPED, "; ".join(notes)))
        counts[item.replay_id].update(items_done=1, jobs_skipped=max(1, len(item.jobs)))
    _settle(rows, counts)
    _finish_done({item.replay_id for item in items})
    return len(items)


def _settle_ran(ran: list, work: ReplayWork) -> None:
    rows, counts = [], defaultdict(Counter)
    for item, outcome in ran:
        planned = work.jobs_for(item.event_id)
        results, failed = [], 0
        for run in outcome.runs:
            if run.job.name not in planned:
                continue
            if run.attempt is None:
                results.append(f"{run.job.name}: did not run")
                failed += 1
                continue
            results.append(f"{run.job.name}: {run.attempt.outcome} ({run.attempt.message[:300]})")
            failed += run.attempt.outcome != "succeeded"
        if not outcome.runs:
            results.append(f"the event failed: {outcome.reason}")
            failed = max(1, len(planned))
        notes = getattr(item, "skip_notes", [])
        rows.append((item, Item.FAILED if failed else Item.DONE, "; ".join(results + notes)))
        counts[item.replay_id].update(
            items_done=1, jobs_ran=len(planned) - failed, jobs_failed=failed, jobs_skipped=len(notes)
        )
    _settle(rows, counts)


def _finish_done(replay_ids: set[int]) -> None:
    """A running replay with no item left to run is done, with its counts in words."""
    for replay_id in replay_ids:
        if ReplayItem.objects.filter(replay_id=replay_id, status__in=[Item.PENDING, Item.CLAIMED]).exists():
            continue
        replay = ReplayRequest.objects.filter(pk=replay_id).defer(*HEAVY_FIELDS).first()
        if replay is None or replay.status != ReplayRequest.Status.RUNNING:
            continue
        outcome = (
            f"{_count(replay.items_done, 'event')}: {_count(replay.jobs_ran, 'job')} ran, {replay.jobs_failed} failed, "
            f"{replay.jobs_skipped} skipped because the state changed since the dry run"
        )
        moved = ReplayRequest.STATES.move(
            ReplayRequest.objects.filter(pk=replay_id), source=ReplayRequest.Status.RUNNING,
            target=ReplayRequest.Status.DONE, finished_at=timezone.now(), outcome=outcome,
        )  # fmt: skip
        if moved:
            record_action(actor=None, verb="replay.done", target=replay, after={"outcome": outcome})
            metrics.replay_stage("finished")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _refetch(items: list[ReplayItem], work: ReplayWork) -> tuple[list[ReplayItem], list[ReplayItem]]:
    """Read each refetch item's record from Shopify. Returns (items to run, items to skip)."""
    from integrations.replay.refetch import fetch_current

    keep, gone = [], []
    events = {e.pk: e for e in Event.objects.filter(pk__in=[i.event_id for i in items]).select_related("shop")}
    for item in items:
        if item.replay.mode != ReplayRequest.Mode.REFETCH:
            keep.append(item)
            continue
        with bind(replay_id=item.replay_id, event_id=item.event_id):
            fetched = fetch_current(events[item.event_id])
        if fetched.payload is not None:
            work.payloads[item.event_id] = fetched.payload
            keep.append(item)
        elif fetched.retry_at is not None:
            _put_back([item], f"refetch: {fetched.problem}", until=fetched.retry_at)
        else:
            item.skip_notes = [f"refetch: {fetched.problem}"]
            gone.append(item)
    return keep, gone


def recover_lost_items(now=None) -> int:
    """Give back the items of pumps whose heartbeat stopped (the next pass re-checks them)."""
    from integrations.processing.claims import lease

    now = now or timezone.now()
    live = list(WorkerHeartbeat.objects.filter(beat_at__gte=now - lease()).values_list("name", flat=True))
    return ReplayItem.STATES.move(
        ReplayItem.objects.filter(status=Item.CLAIMED, claimed_at__lt=now - lease()).exclude(claimed_by__in=live),
        source=Item.CLAIMED,
        target=Item.PENDING,
        claimed_by="",
        claimed_at=None,
    )


def waiting_counts(replay: ReplayRequest) -> dict:
    """Items by status, and how many wait for a paused shop: for the progress panel."""
    from django.db.models import Count

    counts = dict(replay.items.values_list("status").annotate(n=Count("id")).order_by())
    paused = (
        replay.items.filter(status=Item.PENDING, shop__queue_paused=True).count() if counts.get(Item.PENDING) else 0
    )
    return {**counts, "paused_shop": paused}
