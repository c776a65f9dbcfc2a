"""Processing stored events on the worker.

The pump claims queued events (on PostgreSQL with SELECT ... FOR UPDATE SKIP LOCKED, so several
workers never take the same one), runs the topic's handler, and settles each event from its jobs.
A job's side effects and the record of its success commit in one transaction, so a worker that
dies mid-job leaves nothing half-done: the lease expires, the event is queued again, and the job
runs again from the start.
"""

import json
import logging
import random
import traceback
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from integrations.jobs.registry import JOB_TYPES, TOPIC_JOBS, RetryableJobError
from integrations.jobs.resources import describe_resource
from integrations.models import Attempt, Delivery, Event, Job, TriageNote

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
BACKOFF_BASE_SECONDS = 30
BACKOFF_CAP_SECONDS = 3600


class PayloadError(Exception):
    pass


def retry_delay(attempt_number: int) -> timedelta:
    """Exponential backoff with full jitter: 30 s, 60 s, 120 s ... capped at an hour."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt_number - 1))
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def is_retryable(exc: BaseException) -> bool:
    """Our own transient errors and a database that is briefly unreachable or locked may pass;
    anything else (a payload we can't read or store, a bug) fails the same way every time, so
    retrying only hides it."""
    return isinstance(exc, RetryableJobError | OperationalError | InterfaceError)


# --- Claiming ---------------------------------------------------------------------------------


def requeue_expired_claims(now=None) -> int:
    """Events a dead worker claimed go back to the queue once their lease runs out."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.EVENT_CLAIM_LEASE_SECONDS)
    # A retry cut off mid-run: its event is not claimed, so put the job itself back in line.
    Job.objects.filter(status=Job.Status.RUNNING, event__claimed_at=None, attempts__started_at__lt=cutoff).exclude(
        attempts__started_at__gte=cutoff
    ).update(status=Job.Status.RETRY_WAIT, next_attempt_at=now)
    return Event.objects.filter(status=Event.Status.PROCESSING, claimed_at__lt=cutoff).update(
        status=Event.Status.QUEUED, claimed_at=None
    )


def claim_events(limit: int = 50) -> list[Event]:
    now = timezone.now()
    with transaction.atomic():
        queued = Event.objects.filter(status=Event.Status.QUEUED).order_by("id")
        if connection.features.has_select_for_update_skip_locked:
            queued = queued.select_for_update(skip_locked=True)
        ids = list(queued.values_list("id", flat=True)[:limit])
        if not ids:
            return []
        # SQLite has no row locks, but its IMMEDIATE transactions serialise this whole block.
        Event.objects.filter(id__in=ids, status=Event.Status.QUEUED).update(
            status=Event.Status.PROCESSING, claimed_at=now
        )
    return list(Event.objects.filter(id__in=ids, claimed_at=now).select_related("shop").order_by("id"))


# --- Processing one event ---------------------------------------------------------------------


def load_payload(event: Event) -> dict:
    body = (
        Delivery.objects.filter(event=event, outcome=Delivery.Outcome.ACCEPTED)
        .order_by("id")
        .values_list("body", flat=True)
        .first()
    )
    if body is None:
        body = Delivery.objects.filter(event=event).order_by("id").values_list("body", flat=True).first()
    if body is None:
        raise PayloadError("no stored body for this event")
    try:
        payload = json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise PayloadError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise PayloadError(f"payload is JSON but not an object (got {type(payload).__name__})")
    return payload


def process_event(event: Event, *, replay: bool = False) -> Event.Status:
    """Run the event's jobs and settle its status. Safe to call again for the same event."""
    try:
        payload = load_payload(event)
    except PayloadError as exc:
        return _settle(event, Event.Status.FAILED, str(exc))
    try:
        resource = describe_resource(event.topic, payload)
    except Exception as exc:  # noqa: BLE001 - a payload we cannot read fails the event, with the reason
        return _settle(event, Event.Status.FAILED, f"payload could not be read: {exc!r}")
    Event.objects.filter(pk=event.pk).update(
        resource_gid=resource.gid[:255],
        resource_id=resource.id[:40],
        resource_label=resource.label[:100],
        resource_updated_at=resource.updated_at,
    )
    event.resource_gid, event.resource_updated_at = resource.gid[:255], resource.updated_at
    names = TOPIC_JOBS.get(event.topic)
    if names is None:
        return _settle(event, Event.Status.IGNORED, f"no handler for topic {event.topic!r}: stored, nothing to do")
    jobs = _ensure_jobs(event, names)
    for job in jobs:
        if replay or job.status in (Job.Status.PENDING, Job.Status.RUNNING):
            run_job(job, event, payload, replay=replay)
    return settle_from_jobs(event)


def _ensure_jobs(event: Event, names: tuple[str, ...]) -> list[Job]:
    existing = {job.name: job for job in Job.objects.filter(event=event)}
    for name in names:
        if name not in existing:
            try:
                with transaction.atomic():
                    existing[name] = Job.objects.create(event=event, name=name)
            except IntegrityError:
                existing[name] = Job.objects.get(event=event, name=name)
    return [existing[name] for name in names]


def run_job(job: Job, event: Event, payload: dict, *, replay: bool = False) -> Job.Status:
    """One attempt. Side effects and the success record commit together or not at all."""
    # An attempt left "running" was cut off by a worker that died; say so before starting anew.
    lost = Attempt.objects.filter(job=job, outcome=Attempt.Outcome.RUNNING).update(
        outcome=Attempt.Outcome.FAILED,
        finished_at=timezone.now(),
        error_class="WorkerLost",
        message="the worker stopped during this attempt; its changes were rolled back",
        retryable=True,
    )
    last_number = Attempt.objects.filter(job=job).order_by("-number").values_list("number", flat=True).first()
    if lost and (last_number or 0) >= MAX_ATTEMPTS:
        # A job that keeps killing its worker must not be run forever (a poison pill).
        reason = f"the worker stopped during each of {last_number} attempts; not trying again"
        Job.objects.filter(pk=job.pk).update(
            status=Job.Status.FAILED, finished_at=timezone.now(), last_error=reason, retryable=False
        )
        job.status = Job.Status.FAILED
        return job.status
    number = max(job.attempt_count, last_number or 0) + 1
    attempt = Attempt.objects.create(job=job, number=number, replay=replay)
    Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, attempt_count=number, next_attempt_at=None)
    job_type = JOB_TYPES.get(job.name)
    try:
        if job_type is None:
            raise LookupError(f"no job type named {job.name!r} is registered")
        with transaction.atomic():
            result = job_type.run(event, payload)
            now = timezone.now()
            Attempt.objects.filter(pk=attempt.pk).update(
                outcome=Attempt.Outcome.SUCCEEDED, finished_at=now, message=str(result)[:2000]
            )
            Job.objects.filter(pk=job.pk).update(
                status=Job.Status.SUCCEEDED, finished_at=now, last_error="", retryable=None
            )
        job.status = Job.Status.SUCCEEDED
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the attempt
        retryable = is_retryable(exc)
        now = timezone.now()
        message = str(exc)[:2000] or exc.__class__.__name__
        Attempt.objects.filter(pk=attempt.pk).update(
            outcome=Attempt.Outcome.FAILED,
            finished_at=now,
            error_class=f"{exc.__class__.__module__}.{exc.__class__.__qualname__}"[:200],
            message=message,
            traceback=traceback.format_exc()[-20000:],
            retryable=retryable,
        )
        if retryable and number < MAX_ATTEMPTS:
            job.status = Job.Status.RETRY_WAIT
            Job.objects.filter(pk=job.pk).update(
                status=job.status, next_attempt_at=now + retry_delay(number), last_error=message, retryable=True
            )
        else:
            job.status = Job.Status.FAILED
            reason = message if not retryable else f"{message} (gave up after {number} attempts)"
            Job.objects.filter(pk=job.pk).update(
                status=job.status, finished_at=now, last_error=reason, retryable=retryable
            )
    job.attempt_count = number
    return job.status


def settle_from_jobs(event: Event) -> Event.Status:
    jobs = list(Job.objects.filter(event=event).order_by("id"))
    failed = [job for job in jobs if job.status == Job.Status.FAILED]
    waiting = [job for job in jobs if job.status in (Job.Status.RETRY_WAIT, Job.Status.PENDING, Job.Status.RUNNING)]
    if failed:
        job = failed[0]
        kind = "retryable" if job.retryable else "not retryable"
        return _settle(event, Event.Status.FAILED, f"job {job.name} failed ({kind}): {job.last_error}")
    if waiting:
        job = waiting[0]
        when = timezone.localtime(job.next_attempt_at).strftime("%H:%M:%S") if job.next_attempt_at else "soon"
        return _settle(event, Event.Status.PROCESSING, f"job {job.name} failed and retries at {when}: {job.last_error}")
    return _settle(event, Event.Status.PROCESSED, "")


def _settle(event: Event, status: Event.Status, reason: str) -> Event.Status:
    now = timezone.now()
    changes = {"status": status, "status_reason": reason[:5000], "claimed_at": None}
    if status == Event.Status.PROCESSED:
        changes.update(processed_count=F("processed_count") + 1, processed_at=now)
    Event.objects.filter(pk=event.pk).update(**changes)
    if status == Event.Status.PROCESSED:
        resolve_superseded_failures(event)
    event.status = status
    return status


def resolve_superseded_failures(event: Event) -> int:
    """A failed event for a record is resolved once the same record is synced by this event or a
    newer one: the failure no longer matters for the data."""
    if not event.resource_gid:
        return 0
    older = Event.objects.filter(
        shop_id=event.shop_id,
        resource_gid=event.resource_gid,
        status=Event.Status.FAILED,
        triage_state__in=[Event.Triage.OPEN, Event.Triage.ACKNOWLEDGED],
    ).exclude(pk=event.pk)
    if event.resource_updated_at is not None:
        older = older.filter(Q(resource_updated_at__lte=event.resource_updated_at) | Q(resource_updated_at=None))
    # Only failures this event made good: each failed job must have succeeded here too. A newer
    # orders/updated re-syncs the order but never tells the warehouse, so a failed
    # notify_fulfillment stays open.
    done_here = set(Job.objects.filter(event=event, status=Job.Status.SUCCEEDED).values_list("name", flat=True))
    candidates = list(older.values_list("id", flat=True)[:500])
    failed_jobs: dict[int, set[str]] = {}
    for event_id, name in Job.objects.filter(event_id__in=candidates, status=Job.Status.FAILED).values_list(
        "event_id", "name"
    ):
        failed_jobs.setdefault(event_id, set()).add(name)
    ids = [pk for pk in candidates if pk in failed_jobs and failed_jobs[pk] <= done_here]
    if not ids:
        return 0
    Event.objects.filter(id__in=ids).update(triage_state=Event.Triage.RESOLVED)
    TriageNote.objects.bulk_create(
        [
            TriageNote(
                event_id=pk,
                action="auto-resolved",
                note=f"Event {event.pk} ({event.topic}) for the same record was processed successfully.",
            )
            for pk in ids
        ]
    )
    return len(ids)


# --- Retries ----------------------------------------------------------------------------------


def run_due_retries(limit: int = 50) -> int:
    """Run jobs whose retry time has come. Each is claimed by a conditional update first."""
    due = list(
        Job.objects.filter(status=Job.Status.RETRY_WAIT, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
    ran = 0
    for job_id in due:
        if not Job.objects.filter(pk=job_id, status=Job.Status.RETRY_WAIT).update(status=Job.Status.RUNNING):
            continue  # another worker took it
        job = Job.objects.select_related("event__shop").get(pk=job_id)
        event = job.event
        try:
            payload = load_payload(event)
        except PayloadError as exc:
            Job.objects.filter(pk=job_id).update(status=Job.Status.FAILED, last_error=str(exc), retryable=False)
        else:
            run_job(job, event, payload)
        settle_from_jobs(event)
        ran += 1
    return ran


def process_pending(limit: int = 50, keep_going: Callable[[], bool] | None = None) -> int:
    """One pass of the pump: requeue lost claims, process a batch, run due retries.

    `keep_going` is asked between events; when it says stop (the pump's time is up or it lost its
    lease), the claims not yet processed go straight back to the queue instead of waiting out
    their lease."""
    requeue_expired_claims()
    events = claim_events(limit)
    handled = 0
    for event in events:
        if keep_going is not None and not keep_going():
            release_claims(events[handled:])
            return handled
        try:
            process_event(event)
        except Exception:
            # Unexpected (e.g. the database went away): leave the claim to expire and retry.
            logger.exception("processing event %s failed unexpectedly", event.pk)
        handled += 1
    if keep_going is not None and not keep_going():
        return handled
    return handled + run_due_retries(limit)


def release_claims(events: list[Event]) -> int:
    return Event.objects.filter(
        pk__in=[event.pk for event in events], status=Event.Status.PROCESSING, claimed_at__isnull=False
    ).update(status=Event.Status.QUEUED, claimed_at=None)
