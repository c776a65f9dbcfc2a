"""The event pump: claim a batch, run it, write it, repeat. Any number run at once.

Every qcluster worker process runs one pump in a thread (`integrations.tasks.start_worker_pump`),
so more workers, processes or machines mean more pumps; each claims its own disjoint batch, so no
singleton is needed. A batch runs in one transaction: side effects, jobs, attempts and statuses of
all its events commit together, in a few statements per event. If any job raises, or the database
refuses something, the batch is rolled back and run again one event per transaction with a
savepoint per job, so one bad event can only fail itself. Retries that come due are claimed
separately and in small numbers, so they never hold up new events.
"""

import logging
import random
import threading
import time
from collections import defaultdict

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from console import metrics
from integrations.jobs.resources import describe_resource
from integrations.models import Delivery, Event, Job, WorkerHeartbeat
from integrations.outbound.echo import assign_echo_sources
from integrations.processing import claims
from integrations.processing.interventions import resolve_superseded_failures
from integrations.processing.runner import (
    LostClaim,
    NeedsCare,
    Outcome,
    failed_outcome,
    is_deadlock,
    parse_payload,
    run_event,
    worker_name,
    write_outcomes,
)

logger = logging.getLogger(__name__)

Status = Event.Status
IDLE_SLEEP = 0.2  # an event reaching an idle pump waits at most this long to be claimed
BEAT_EVERY = 1.0
RECOVER_EVERY = 5.0
RETRIES_PER_PASS = 20
DEADLOCK_RETRIES = 3


class Pump:
    """`live`: claims new events and due retries. `replay`: runs replay items when live leaves
    room. A worker's pump does both unless REPLAY_LANE is "process", where `manage.py
    replay_lane` runs replay-only pumps at a lower CPU priority."""

    def __init__(self, tag: str = "pump", batch_size: int | None = None, *, live: bool = True, replay: bool = True):
        self.name = worker_name(tag)
        self.batch_size = batch_size or settings.EVENT_BATCH_SIZE
        self.live, self.replay = live, replay
        self._beaten = 0.0
        self._recovered = 0.0
        self._pending_total = 0
        self._dirty = False  # an exception left claims of ours behind

    # --- one pass ---------------------------------------------------------------------------

    def run_once(self) -> int:
        """One pass: heartbeat, recovery when due, a batch of new events, then due retries."""
        now = time.monotonic()
        if self._dirty:
            claims.release(self.name)
            self._dirty = False
        if now - self._beaten >= BEAT_EVERY:
            self.beat()
        if now - self._recovered >= RECOVER_EVERY:
            self._recovered = now
            claims.recover_lost_claims()
            from integrations.replay.runner import recover_lost_items

            recover_lost_items()
        try:
            live = handled = 0
            if self.live:
                live = self.process(claims.claim_new(self.name, self.batch_size))
                handled = live + self.process(claims.claim_due_retries(self.name, RETRIES_PER_PASS))
            if self.replay and live < self.batch_size:
                # The live queue is drained: the replay lane may use this pass, if live traffic
                # leaves room (see replay_pass), in a small batch.
                from integrations.replay.runner import replay_pass

                handled += replay_pass(self, shared=self.live)
        except BaseException:
            self._dirty = True
            raise
        self._pending_total += handled
        return handled

    def run_forever(self, stop: threading.Event) -> None:
        """Pass after pass until `stop` is set; idle passes sleep briefly, a database outage backs off."""
        logger.info("event pump %s started", self.name)
        backoff = 1.0
        while not stop.is_set():
            try:
                handled = self.run_once()
                backoff = 1.0
            except DatabaseError:
                logger.exception("event pump %s: database unavailable, backing off %.0f s", self.name, backoff)
                close_old_connections()
                stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            except Exception:
                logger.exception("event pump %s: unexpected error", self.name)
                stop.wait(1.0)
                continue
            if not handled:
                stop.wait(IDLE_SLEEP)
        try:
            claims.release(self.name)
            self.beat()
        except DatabaseError:
            logger.warning("event pump %s could not give back its claims; recovery will", self.name)

    def beat(self) -> None:
        now = timezone.now()
        done, self._pending_total = self._pending_total, 0
        updated = WorkerHeartbeat.objects.filter(name=self.name).update(
            beat_at=now, processed_total=F("processed_total") + done
        )
        if not updated:
            WorkerHeartbeat.objects.create(name=self.name, started_at=now, beat_at=now, processed_total=done)
        self._beaten = time.monotonic()

    # --- a batch ----------------------------------------------------------------------------

    def process(self, event_ids: list[int], *, replay: bool = False) -> int:
        """Run and settle the claimed events; returns how many were settled by this pump."""
        return len(self.run_batch(event_ids, replay=replay))

    def run_batch(self, event_ids: list[int], *, replay: bool = False, work=None) -> list[Outcome]:
        """Run and settle the claimed events; returns the outcomes this pump settled. A replay's
        `work` (`integrations.replay.runner.ReplayWork`) says which jobs run per event, the
        payloads refetched from Shopify, and the replay the attempts belong to."""
        if not event_ids:
            return []
        for round_ in range(DEADLOCK_RETRIES + 1):
            # Loaded afresh each round: a rolled-back run changed the jobs and events in memory.
            batch = self._load(event_ids, work)
            options = self._options(batch, replay, work)
            try:
                with transaction.atomic():
                    outcomes = [
                        run_event(
                            event, payload, jobs, worker=self.name, careful=False, replay=replay, **options[event.pk]
                        )
                        for event, payload, jobs in batch
                    ]
                    write_outcomes(outcomes, pump=self.name)
                    if work is not None:
                        work.settle(outcomes)
                break
            except Exception as exc:  # noqa: BLE001 - any failure: run the batch again, one event at a time
                cause = exc.error if isinstance(exc, NeedsCare) else exc
                if is_deadlock(cause) and round_ < DEADLOCK_RETRIES:
                    # Another pump's batch locked the same rows in another order: the database
                    # chose us; run the whole batch again rather than record a failure.
                    logger.info("batch of %d hit a deadlock; running it again", len(batch))
                    time.sleep(random.uniform(0.01, 0.1))
                    continue
                logger.debug("batch of %d run again event by event: %r", len(batch), exc)
                known = (
                    {exc.key: (exc.error, exc.trace)} if isinstance(exc, NeedsCare) and not is_deadlock(cause) else {}
                )
                batch = self._load(event_ids, work)
                options = self._options(batch, replay, work)
                outcomes = self._one_by_one(batch, replay=replay, known_failures=known, options=options, work=work)
                break
        metrics.settled(outcomes, replay=replay)
        self._after(outcomes)
        return outcomes

    def _options(self, batch, replay: bool, work) -> dict[int, dict]:
        """Per event: the jobs a replay runs, the replay's id, and (outside a replay) the jobs
        whose handler is disabled for the shop: one query per batch on the few switches."""
        from integrations.replay.switches import disabled_by_shop

        disabled = {} if replay else disabled_by_shop()
        options = {}
        for event, _payload, _jobs in batch:
            if work is not None:
                options[event.pk] = {"only": work.jobs_for(event.pk), "replay_id": work.replay_of(event.pk)}
            else:
                # Its own switch wins over one for every shop, as in switches.disabled_reason.
                held = {**disabled.get(None, {}), **disabled.get(event.shop_id, {})}
                options[event.pk] = {"disabled": held} if held else {}
        return options

    def _load(self, event_ids: list[int], work=None) -> list[tuple[Event, dict | Exception, dict[str, Job]]]:
        events = list(
            Event.objects.filter(pk__in=event_ids, claimed_by=self.name).select_related("shop").order_by("pk")
        )
        bodies = dict(
            Delivery.objects.filter(event_id__in=event_ids, outcome=Delivery.Outcome.ACCEPTED).values_list(
                "event_id", "body"
            )
        )
        # One query per batch: retries, replays and recovered events already have jobs.
        jobs: dict[int, dict[str, Job]] = defaultdict(dict)
        for job in Job.objects.filter(event_id__in=event_ids):
            jobs[job.event_id][job.name] = job
        batch = []
        refetched = work.payloads if work is not None else {}
        for event in events:
            try:
                payload: dict | Exception = refetched.get(event.pk) or parse_payload(bodies.get(event.pk))
            except ValueError as exc:
                payload = exc
            batch.append((event, payload, jobs[event.pk]))
        assign_echo_sources([(event, payload) for event, payload, _jobs in batch], describe_resource)
        # The same lock order in every pump: two pumps writing the same records never deadlock.
        batch.sort(key=_lock_order)
        return batch

    def _one_by_one(self, batch, *, replay: bool, known_failures: dict, options: dict, work=None) -> list[Outcome]:
        outcomes = []
        for event, payload, jobs in batch:
            try:
                outcome = self._run_one(event, payload, jobs, replay=replay, known_failures=known_failures,
                                        options=options[event.pk], work=work)  # fmt: skip
            except LostClaim:
                logger.warning("pump %s lost its claim on event %s; its run was rolled back", self.name, event.pk)
                continue
            except Exception as exc:
                logger.exception("event %s could not be processed", event.pk)
                outcome = self._fail(event, f"processing raised {exc.__class__.__name__}: {exc}", work=work)
                if outcome is None:
                    continue
            outcomes.append(outcome)
        return outcomes

    def _run_one(self, event: Event, payload, jobs: dict, *, replay: bool, known_failures: dict, options: dict,
                 work=None):  # fmt: skip
        """One event in its own transaction, a savepoint per job. A job that lost a deadlock
        (another pump locked the same rows in another order) runs the event again, with its jobs
        as stored (the rolled-back run changed them in memory)."""
        for round_ in range(DEADLOCK_RETRIES + 1):
            try:
                with transaction.atomic():
                    outcome = run_event(
                        event, payload, jobs, worker=self.name, careful=True, replay=replay,
                        known_failures=known_failures, **options,
                    )  # fmt: skip
                    write_outcomes([outcome], pump=self.name)
                    if work is not None:
                        work.settle([outcome])
                return outcome
            except DatabaseError as exc:
                if not is_deadlock(exc) or round_ == DEADLOCK_RETRIES:
                    raise
                time.sleep(random.uniform(0.01, 0.1))
                jobs = {job.name: job for job in Job.objects.filter(event_id=event.pk)}
        raise AssertionError("unreachable")

    def _fail(self, event: Event, reason: str, work=None) -> Outcome | None:
        outcome = failed_outcome(event, reason)
        try:
            with transaction.atomic():
                write_outcomes([outcome], pump=self.name)
                if work is not None:
                    work.settle([outcome])
        except LostClaim:
            logger.exception("could not mark event %s failed: another pump holds it now", event.pk)
            return None
        except Exception:
            logger.exception("could not mark event %s failed as read; failing it without its resource", event.pk)
        else:
            return outcome
        # The resource fields this run read from the payload may be what the database refused:
        # fail the event without them rather than leave it claimed by a live pump.
        for name in ("resource_gid", "resource_id", "resource_label", "resource_updated_at"):
            setattr(event, name, Event._meta.get_field(name).get_default())
        outcome = failed_outcome(event, reason)
        try:
            with transaction.atomic():
                write_outcomes([outcome], pump=self.name)
                if work is not None:
                    work.settle([outcome])
        except (LostClaim, DatabaseError):
            logger.exception("could not even mark event %s failed; its claim will be recovered", event.pk)
            return None
        return outcome

    def _after(self, outcomes: list[Outcome]) -> None:
        processed = [o for o in outcomes if o.status == Status.PROCESSED and o.resource and o.resource.gid]
        if processed:
            try:
                resolve_superseded_failures(processed)
            except DatabaseError:
                logger.exception("auto-resolve after a batch failed; the failures stay open")


def _lock_order(item) -> tuple:
    """By record, then by arrival: the same row-lock order in every pump, and two events for one
    record run in the order they arrived (the later one is the one support sees as stale)."""
    event, payload, _jobs = item
    if isinstance(payload, dict):
        record = str(payload.get("id") or payload.get("inventory_item_id"))
        return (0, event.shop_id, event.topic.split("/")[0], record, event.pk)
    return (1, event.shop_id, "", "", event.pk)


def process_pending(limit: int | None = None) -> int:
    """One pass of a pump in this process (the command line, tests and benchmarks use it)."""
    pump = Pump(tag="inline", batch_size=limit)
    return pump.run_once()


def process_event(event: Event, *, replay: bool = False) -> str:
    """Process one event now, in this process: a queued or waiting event, or with `replay` a
    finished one (every job runs again; the jobs' own guards keep that safe). Returns its status."""
    pump = Pump(tag="inline")
    sources = Event.STATES.sources_of(Status.CLAIMED)
    if not replay:
        sources = (Status.QUEUED, Status.RETRY_WAIT)
    if not claims.claim_for_rerun(pump.name, event.pk, sources):
        event.refresh_from_db()
        return event.status
    pump.process([event.pk], replay=replay)
    event.refresh_from_db()
    return event.status
