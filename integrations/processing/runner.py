"""Running one claimed event's jobs and writing what happened.

`run_event` runs the jobs that are due and decides the event's new status, keeping jobs and
attempts in memory; `write_outcomes` then stores jobs, attempts and every event's new status for a
whole batch in a handful of statements. Both run inside the caller's transaction, so an event's
side effects, jobs, attempts and status commit together or not at all. The settle is conditional on
the pump still holding the claim: if it lost it (it stalled past its lease and another pump took
over), `LostClaim` rolls the work back.
"""

import json
import logging
import random
import socket
import traceback
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import InterfaceError, OperationalError, transaction
from django.utils import timezone

from console.logcontext import bind
from integrations.inbound.values import storable_text
from integrations.jobs.registry import JOB_TYPES, TOPIC_JOBS, RetryableJobError
from integrations.jobs.resources import Resource, describe_resource
from integrations.models import Attempt, Event, Job
from integrations.outbound.echo import find_echo_source

Status = Event.Status
MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600
DEADLOCK_STATES = ("40P01", "40001")  # deadlock_detected, serialization_failure
HOST = socket.gethostname()
logger = logging.getLogger(__name__)


_replay_lane: ContextVar[int | None] = ContextVar("replay_lane", default=None)


@contextmanager
def replay_lane(replay_id: int | None):
    """While a replay runs a job, the outbound calls the job enqueues go in the replay lane and
    say which replay asked for them (`integrations.outbound.queue.enqueue_for_event`)."""
    token = _replay_lane.set(replay_id)
    try:
        yield
    finally:
        _replay_lane.reset(token)


def current_replay() -> int | None:
    return _replay_lane.get()


class LostClaim(Exception):
    """The pump no longer holds an event it was settling; its work on it is rolled back."""


class NeedsCare(Exception):
    """A job raised in a batch run without savepoints: run the batch again, one event at a time.

    It carries the failure, so the careful run records it as that job's attempt instead of running
    the job a second time (one run, one attempt)."""

    def __init__(self, event_id: int, job_name: str, error: Exception, trace: str) -> None:
        super().__init__(f"job {job_name} of event {event_id} raised {error!r}")
        self.key, self.error, self.trace = (event_id, job_name), error, trace


def is_deadlock(exc: BaseException | None) -> bool:
    """PostgreSQL chose this transaction as a deadlock's victim (or it failed to serialise): not
    the job's fault, and running it again succeeds."""
    while exc is not None:
        if getattr(exc, "sqlstate", None) in DEADLOCK_STATES:
            return True
        exc = exc.__cause__
    return False


def retry_delay(attempt_number: int) -> timedelta:
    """Exponential backoff with full jitter: 30 s, 60 s, 120 s ... capped at an hour."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt_number - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def is_retryable(exc: BaseException) -> bool:
    """Our own transient errors and a database that is briefly unreachable or locked may pass;
    anything else (a payload we can't read, a value the database refuses, a bug) fails the same way
    every time, so retrying only hides it."""
    return isinstance(exc, RetryableJobError | OperationalError | InterfaceError)


@dataclass
class JobRun:
    job: Job
    source: str | None  # the job's stored status before this run; None for a job created now
    attempt: Attempt | None = None
    held: bool = False  # not run: its handler is disabled for the shop


@dataclass
class Outcome:
    event: Event
    status: str
    reason: str = ""
    next_attempt_at: datetime | None = None
    resource: Resource | None = None
    runs: list[JobRun] = field(default_factory=list)


def parse_payload(body: bytes | memoryview | None) -> dict:
    if body is None:
        raise ValueError("no stored body for this event")
    try:
        payload = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise ValueError(f"payload is JSON but not an object (got {type(payload).__name__})")
    return payload


def run_event(
    event: Event,
    payload: dict | Exception,
    jobs: dict[str, Job],
    *,
    worker: str,
    careful: bool,
    replay: bool = False,
    now: datetime | None = None,
    known_failures: dict | None = None,
    only: set[str] | frozenset | None = None,
    disabled: dict[str, str] | None = None,
    replay_id: int | None = None,
) -> Outcome:
    """Run the event's due jobs. `payload` is the parsed body, or the error that parsing raised.

    With `careful`, each job runs in its own savepoint, so a job that raises loses only its own
    writes; without, a job that raises aborts with NeedsCare (the caller retries carefully).
    A replay (`replay`) runs the jobs in `only` (every job when None), whatever their status,
    and leaves the others as they are. `disabled` maps the jobs whose handler is disabled for the
    shop to why: outside a replay they are held instead of run.
    """
    now = now or timezone.now()
    if isinstance(payload, Exception):
        return Outcome(event, Status.FAILED, str(payload))
    try:
        resource = describe_resource(event.topic, payload)
    except Exception as exc:  # noqa: BLE001 - a payload we cannot read fails the event, with the reason
        return Outcome(event, Status.FAILED, f"payload could not be read: {exc!r}")
    names = TOPIC_JOBS.get(event.topic)
    if names is None:
        reason = f"no handler for topic {event.topic!r}: stored, nothing to do"
        return Outcome(event, Status.IGNORED, reason, resource=resource)
    # The jobs read the resource fields (e.g. a replay decision reads resource_id).
    event.resource_gid, event.resource_id = storable_text(resource.gid[:255]), storable_text(resource.id[:40])
    event.resource_label, event.resource_updated_at = storable_text(resource.label[:100]), resource.updated_at
    if not getattr(event, "echo_checked", False):  # a pump's batch looks them all up at once
        event.echo_of_id = find_echo_source(event)
    outcome = Outcome(event, Status.PROCESSED, resource=resource)
    for name in names:
        job = jobs.get(name)
        due = (only is None or name in only) if replay else None
        if due is False and job is None:
            continue  # a replay creates only the jobs it runs
        run = JobRun(job or Job(event=event, name=name, created_at=now), job.status if job else None)
        outcome.runs.append(run)
        if not (due if replay else _due(run, now)):
            continue
        if not replay and disabled and name in disabled:
            _hold(run, disabled[name])
            continue
        known = (known_failures or {}).get((event.pk, name))
        _run_job(run, event, payload, worker=worker, careful=careful, replay=replay, known=known, replay_id=replay_id)
    return _settle(outcome)


def _hold(run: JobRun, reason: str) -> None:
    job = run.job
    job.status, job.next_attempt_at, job.last_error, job.retryable = Job.Status.HELD, None, reason[:2000], None
    run.held = True


def _due(run: JobRun, now: datetime) -> bool:
    job = run.job
    if job.status == Job.Status.PENDING:
        return True
    if job.status == Job.Status.RETRY_WAIT:
        return job.next_attempt_at is None or job.next_attempt_at <= now
    return False  # succeeded, failed or held: only a replay runs it again


def _run_job(run: JobRun, event: Event, payload: dict, *, replay_id: int | None = None, **options) -> None:
    """Run one job with its event, job, shop and replay on every line it logs, and one line for
    its outcome (a success at DEBUG: a worker runs thousands a minute)."""
    shop = event.shop.domain if Event.shop.is_cached(event) else None
    with bind(event_id=event.pk, job=run.job.name, shop=shop, replay_id=replay_id):
        _run_one_job(run, event, payload, replay_id=replay_id, **options)
        job = run.job
        if job.status == Job.Status.SUCCEEDED:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("job %s of event %s succeeded on attempt %d", job.name, event.pk, job.attempt_count)
        else:
            logger.warning(
                "job %s of event %s %s on attempt %d: %s",
                job.name, event.pk, "will retry" if job.status == Job.Status.RETRY_WAIT else "failed",
                job.attempt_count, job.last_error[:500],
            )  # fmt: skip


def _run_one_job(
    run: JobRun,
    event: Event,
    payload: dict,
    *,
    worker: str,
    careful: bool,
    replay: bool,
    known=None,
    replay_id: int | None = None,
) -> None:
    job = run.job
    number = job.attempt_count + 1
    trigger = Attempt.Trigger.REPLAY if replay else Attempt.Trigger.FIRST if number == 1 else Attempt.Trigger.RETRY
    started = timezone.now()
    if known is not None:  # it already ran and raised in the batch run: record that, don't run again
        error, trace = known
        _record_failure(run, error, number=number, trigger=trigger, started=started, worker=worker, trace=trace)
        run.attempt.replay_id = replay_id
        return
    job_type = JOB_TYPES.get(job.name)
    try:
        if job_type is None:
            raise LookupError(f"no job type named {job.name!r} is registered")
        with replay_lane(replay_id):
            if careful:
                with transaction.atomic():
                    result = job_type.run(event, payload)
            else:
                result = job_type.run(event, payload)
    except Exception as exc:
        if not careful:
            raise NeedsCare(event.pk, job.name, exc, traceback.format_exc()) from exc
        if is_deadlock(exc):
            raise  # not the job's failure: the caller runs the event again
        _record_failure(run, exc, number=number, trigger=trigger, started=started, worker=worker)
        run.attempt.replay_id = replay_id
        return
    finished = timezone.now()
    job.status, job.finished_at, job.last_error, job.retryable = Job.Status.SUCCEEDED, finished, "", None
    job.attempt_count, job.next_attempt_at = number, None
    run.attempt = Attempt(
        job=job,
        number=number,
        started_at=started,
        finished_at=finished,
        outcome=Attempt.Outcome.SUCCEEDED,
        message=str(result)[:2000],
        trigger=trigger,
        worker=worker,
        replay_id=replay_id,
    )


def _record_failure(
    run: JobRun, exc: Exception, *, number: int, trigger: str, started: datetime, worker: str, trace: str = ""
) -> None:
    job = run.job
    retryable = is_retryable(exc)
    now = timezone.now()
    # Messages quote payload values, which may hold what PostgreSQL text cannot (NUL).
    message = storable_text(str(exc)[:2000]) or exc.__class__.__name__
    run.attempt = Attempt(
        job=job,
        number=number,
        started_at=started,
        finished_at=now,
        outcome=Attempt.Outcome.FAILED,
        error_class=f"{exc.__class__.__module__}.{exc.__class__.__qualname__}"[:200],
        message=message,
        traceback=storable_text((trace or traceback.format_exc())[-20000:]),
        retryable=retryable,
        trigger=trigger,
        worker=worker,
    )
    job.attempt_count, job.retryable = number, retryable
    if retryable and number < MAX_ATTEMPTS:
        job.status, job.next_attempt_at, job.last_error = Job.Status.RETRY_WAIT, now + retry_delay(number), message
    else:
        job.status, job.next_attempt_at, job.finished_at = Job.Status.FAILED, None, now
        job.last_error = message if not retryable else f"{message} (gave up after {number} attempts)"


def _settle(outcome: Outcome) -> Outcome:
    jobs = [run.job for run in outcome.runs]
    failed = [job for job in jobs if job.status == Job.Status.FAILED]
    waiting = [job for job in jobs if job.status in (Job.Status.RETRY_WAIT, Job.Status.PENDING)]
    held = [job for job in jobs if job.status == Job.Status.HELD]
    if failed:
        job = failed[0]
        kind = "retryable" if job.retryable else "not retryable"
        outcome.status, outcome.reason = Status.FAILED, f"job {job.name} failed ({kind}): {job.last_error}"
    elif held:
        # Held before waiting: a job waiting on a held one (the tag waits for the notification)
        # would retry for nothing; the replay after enabling runs them all, in topic order.
        names = ", ".join(job.name for job in held)
        outcome.status = Status.HELD
        outcome.reason = f"held: {held[0].last_error}. {names} did not run; replay the event once it is enabled"
        if waiting:
            outcome.reason += f" (it also runs {', '.join(job.name for job in waiting)}, waiting on it)"
    elif waiting:
        due = min((job.next_attempt_at for job in waiting if job.next_attempt_at), default=timezone.now())
        job = waiting[0]
        outcome.status, outcome.next_attempt_at = Status.RETRY_WAIT, due
        outcome.reason = f"job {job.name} failed and retries at {due:%H:%M:%S} UTC: {job.last_error}"
    return outcome


def failed_outcome(event: Event, reason: str) -> Outcome:
    return Outcome(event, Status.FAILED, reason)


# --- Writing a batch ---------------------------------------------------------------------------

EVENT_SETTLE_FIELDS = (
    "status_reason",
    "claimed_by",
    "claimed_at",
    "next_attempt_at",
    "processed_count",
    "processed_at",
    "resource_gid",
    "resource_id",
    "resource_label",
    "resource_updated_at",
    "echo_of",
)
JOB_FIELDS = ("attempt_count", "next_attempt_at", "last_error", "retryable", "finished_at")


def write_outcomes(outcomes: list[Outcome], *, pump: str) -> None:
    """Store the batch's new jobs, changed jobs, attempts and event statuses. Raises LostClaim if
    the pump no longer holds every event (the caller's transaction then rolls it all back)."""
    # The settle first: a pump that lost a claim finds out before writing anything else.
    now = timezone.now()
    rows = [(o.event.pk, Status.CLAIMED, o.status, _settle_values(o, now)) for o in outcomes]
    settled = Event.STATES.move_each(Event, rows, where={"claimed_by": pump})
    if settled != len(rows):
        raise LostClaim(f"pump {pump} settled {settled} of {len(rows)} events: the others were taken from it")
    runs = [run for outcome in outcomes for run in outcome.runs]
    # A job seen for the first time always runs (it is due), so it is stored with its outcome.
    new_jobs = [run.job for run in runs if run.source is None]
    if new_jobs:
        Job.objects.bulk_create(new_jobs)
    changed = [
        (run.job.pk, run.source, run.job.status, {name: getattr(run.job, name) for name in JOB_FIELDS})
        for run in runs
        if run.source is not None and (run.attempt is not None or run.held)
    ]
    if changed and Job.STATES.move_each(Job, changed) != len(changed):
        raise LostClaim("a job changed under a claimed event")
    attempts = [run.attempt for run in runs if run.attempt is not None]
    for attempt in attempts:
        attempt.job_id = attempt.job.pk
    if attempts:
        Attempt.objects.bulk_create(attempts)
    for outcome in outcomes:
        outcome.event.status = outcome.status


def _settle_values(outcome: Outcome, now: datetime) -> dict:
    event = outcome.event
    processed = outcome.status == Status.PROCESSED
    resource = outcome.resource
    return {
        "status_reason": storable_text(outcome.reason[:5000]),
        "claimed_by": "",
        "claimed_at": None,
        "next_attempt_at": outcome.next_attempt_at,
        "processed_count": event.processed_count + 1 if processed else event.processed_count,
        "processed_at": now if processed else event.processed_at,
        "resource_gid": storable_text(resource.gid[:255]) if resource else event.resource_gid,
        "resource_id": storable_text(resource.id[:40]) if resource else event.resource_id,
        "resource_label": storable_text(resource.label[:100]) if resource else event.resource_label,
        "resource_updated_at": resource.updated_at if resource else event.resource_updated_at,
        "echo_of": event.echo_of_id,
    }


def worker_name(tag: str) -> str:
    """host:pid:tag — where an attempt ran, as support reads it."""
    import os

    return f"{HOST}:{os.getpid()}:{tag}"[:100]
