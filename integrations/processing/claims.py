"""Claiming events for a pump, giving claims back, and recovering the claims of a dead pump.

A claim is `status = claimed` plus the pump's name in `claimed_by`. Pumps claim disjoint batches:
on PostgreSQL with `SELECT … FOR UPDATE SKIP LOCKED`, on SQLite because its IMMEDIATE
transactions serialise the claim. A pump settles only events it still holds (the settle UPDATE
names it), and recovery takes back only the claims of a pump whose heartbeat stopped, so no pump
ever takes or finishes work another live pump holds.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from integrations.jobs.registry import TOPIC_JOBS
from integrations.models import Attempt, Event, Job, WorkerHeartbeat

logger = logging.getLogger(__name__)

Status = Event.Status
MAX_ATTEMPTS = 5


def lease() -> timedelta:
    """How long a pump may go without a heartbeat before its claims are given back."""
    return timedelta(seconds=settings.EVENT_CLAIM_LEASE_SECONDS)


def claim_new(pump: str, limit: int) -> list[int]:
    """Claim up to `limit` queued events, oldest first."""
    return _claim(pump, Event.objects.filter(status=Status.QUEUED).order_by("id"), Status.QUEUED, limit)


def oldest_queued_at() -> datetime | None:
    """When the oldest live event still queued was received (one probe of int_event_queued_idx)."""
    return Event.objects.filter(status=Status.QUEUED).order_by("id").values_list("received_at", flat=True).first()


def newest_received_at() -> datetime | None:
    """When the newest event was received (the primary key's last entry)."""
    return Event.objects.order_by("-id").values_list("received_at", flat=True).first()


def claim_due_retries(pump: str, limit: int, now: datetime | None = None) -> list[int]:
    """Claim up to `limit` events whose retry is due, most overdue first."""
    now = now or timezone.now()
    due = Event.objects.filter(status=Status.RETRY_WAIT, next_attempt_at__lte=now).order_by("next_attempt_at")
    return _claim(pump, due, Status.RETRY_WAIT, limit)


def claim_for_rerun(pump: str, event_id: int, sources: tuple[str, ...]) -> bool:
    """Claim one event in one of `sources` (a person or a test running it now). False if it is not
    in one of them (another pump holds it, or it moved on)."""
    return bool(
        Event.STATES.move(
            Event.objects.filter(pk=event_id),
            source=sources,
            target=Status.CLAIMED,
            claimed_by=pump,
            claimed_at=timezone.now(),
        )
    )


def _claim(pump: str, candidates, source: str, limit: int) -> list[int]:
    if connection.vendor == "sqlite" and not candidates.exists():
        # An idle pump must not take SQLite's write lock (IMMEDIATE) just to find nothing.
        return []
    now = timezone.now()
    with transaction.atomic():
        if connection.features.has_select_for_update_skip_locked:
            candidates = candidates.select_for_update(skip_locked=True)
        ids = list(candidates.values_list("id", flat=True)[:limit])
        if ids:
            Event.STATES.move(
                Event.objects.filter(id__in=ids), source=source, target=Status.CLAIMED, claimed_by=pump, claimed_at=now
            )
    return ids


def release(pump: str, event_ids: list[int] | None = None) -> int:
    """Give this pump's claims (all of them, or `event_ids`) straight back to the queue."""
    held = Event.objects.filter(claimed_by=pump)
    if event_ids is not None:
        held = held.filter(pk__in=event_ids)
    return Event.STATES.move(held, source=Status.CLAIMED, target=Status.QUEUED, claimed_by="", claimed_at=None)


def recover_lost_claims(now: datetime | None = None, limit: int = 100) -> int:
    """Give back the claims of pumps whose heartbeat stopped, recording a "worker lost" attempt on
    each job that was running; a job lost MAX_ATTEMPTS times fails (a poison pill must not kill
    pump after pump forever). Returns how many events were recovered."""
    now = now or timezone.now()
    cutoff = now - lease()
    live = list(WorkerHeartbeat.objects.filter(beat_at__gte=cutoff).values_list("name", flat=True))
    lost = list(
        Event.objects.filter(status=Status.CLAIMED, claimed_at__lt=cutoff)
        .exclude(claimed_by__in=live)
        .order_by("claimed_at")
        .values_list("id", "claimed_by")[:limit]
    )
    recovered = 0
    for event_id, dead_pump in lost:
        try:
            recovered += _recover(event_id, dead_pump, now)
        except Exception:  # one bad row must not stop recovery of the others
            logger.exception("could not recover event %s from pump %s", event_id, dead_pump)
    return recovered


def _recover(event_id: int, dead_pump: str, now: datetime) -> int:
    with transaction.atomic():
        event = Event.objects.filter(pk=event_id, status=Status.CLAIMED, claimed_by=dead_pump).first()
        if event is None:
            return 0  # someone else recovered it first
        jobs = {job.name: job for job in Job.objects.filter(event=event)}
        for name in TOPIC_JOBS.get(event.topic, ()):
            if name not in jobs:
                jobs[name] = Job.objects.create(event=event, name=name)
        gave_up = []
        for job in jobs.values():
            if job.status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
                continue
            if job.status == Job.Status.RETRY_WAIT and job.next_attempt_at and job.next_attempt_at > event.claimed_at:
                continue  # it was not due, so that pump was not running it
            number = job.attempt_count + 1
            Attempt.objects.create(
                job=job,
                number=number,
                started_at=event.claimed_at,
                finished_at=now,
                outcome=Attempt.Outcome.FAILED,
                error_class="WorkerLost",
                message=f"pump {dead_pump} stopped while running this job; its changes were rolled back",
                retryable=True,
                trigger=Attempt.Trigger.RECOVERY,
                worker=dead_pump,
            )
            lost_runs = Attempt.objects.filter(job=job, error_class="WorkerLost").count()
            changes = {"attempt_count": number, "last_error": "the pump running it stopped", "retryable": True}
            if lost_runs >= MAX_ATTEMPTS:
                reason = f"the pump stopped during each of {lost_runs} attempts; not trying again"
                changes.update(last_error=reason, retryable=False, finished_at=now, next_attempt_at=None)
                Job.STATES.move(Job.objects.filter(pk=job.pk), source=job.status, target=Job.Status.FAILED, **changes)
                gave_up.append(f"job {job.name} failed (not retryable): {reason}")
            else:
                Job.objects.filter(pk=job.pk).update(**changes)
        held = Event.objects.filter(pk=event.pk, claimed_by=dead_pump)
        if gave_up:
            moved = Event.STATES.move(
                held, source=Status.CLAIMED, target=Status.FAILED, claimed_by="", claimed_at=None,
                next_attempt_at=None, status_reason="; ".join(gave_up)[:5000],
            )  # fmt: skip
        else:
            moved = Event.STATES.move(held, source=Status.CLAIMED, target=Status.QUEUED, claimed_by="", claimed_at=None)
    return moved
