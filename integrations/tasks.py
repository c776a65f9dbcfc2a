"""django-q2 entry points. Thin: each calls into integrations.processing.

The event pump is one long-running task at a time (a lease in WorkerHeartbeat makes a second one
wait or leave), which polls for new events; it hands over to a fresh task before the cluster's
timeout. A schedule every minute and every worker spawn enqueue a pump, so a killed worker is
replaced within a minute at most, and the receiver never has to enqueue anything per webhook.
"""

import logging
import os
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import F, Q
from django.utils import timezone
from django_q.tasks import async_task

from integrations.models import WorkerHeartbeat
from integrations.processing.engine import process_pending

logger = logging.getLogger(__name__)

PUMP = "event-pump"
LEASE = timedelta(seconds=10)
RENEW_EVERY = 2.0
IDLE_SLEEP = 0.25


def pump_events(run_seconds: float | None = None, hand_over: bool = True) -> int:
    """Process events for about `run_seconds`, then enqueue a successor. Returns events handled."""
    run_seconds = settings.EVENT_PUMP_RUN_SECONDS if run_seconds is None else run_seconds
    owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    if not _wait_for_lease(owner):
        return 0  # another pump is alive and well
    deadline = time.monotonic() + run_seconds
    renewed = time.monotonic()
    handled = 0
    alive = True

    def keep_going() -> bool:
        # Asked between events too, so one long pass can neither outlive the task's time nor
        # keep running after another pump took over the lease. Renew every couple of seconds,
        # not every event: an idle pump should not keep taking SQLite's write lock.
        nonlocal renewed, alive
        if time.monotonic() - renewed > RENEW_EVERY:
            alive = _renew_lease(owner)
            renewed = time.monotonic()
            if not alive:
                logger.warning("event pump %s lost its lease; stopping", owner)
        return alive and time.monotonic() < deadline

    try:
        while keep_going():
            try:
                done = process_pending(keep_going=keep_going)
            except DatabaseError:
                logger.exception("event pump: database unavailable, backing off")
                time.sleep(2)
                continue
            handled += done
            if done:
                WorkerHeartbeat.objects.filter(name=PUMP).update(processed_total=F("processed_total") + done)
            else:
                time.sleep(IDLE_SLEEP)
    finally:
        WorkerHeartbeat.objects.filter(name=PUMP, owner=owner).update(owner="")
        if hand_over:
            start_pump()
    return handled


def start_pump() -> None:
    """Enqueue a pump; if one is already running the new one simply leaves."""
    async_task("integrations.tasks.pump_events", task_name="event-pump", q_options={"group": "event-pump"})


def ensure_pump() -> None:
    """Scheduled every minute: restart the pump if its heartbeat has gone quiet."""
    stale = timezone.now() - LEASE * 2
    if not WorkerHeartbeat.objects.filter(name=PUMP, beat_at__gte=stale).exists():
        start_pump()


def _wait_for_lease(owner: str) -> bool:
    give_up = time.monotonic() + LEASE.total_seconds() + 2
    WorkerHeartbeat.objects.get_or_create(name=PUMP, defaults={"beat_at": timezone.now() - LEASE * 2})
    while time.monotonic() < give_up:
        if _renew_lease(owner):
            return True
        time.sleep(1)
    return False


def _renew_lease(owner: str) -> bool:
    now = timezone.now()
    return bool(
        WorkerHeartbeat.objects.filter(name=PUMP)
        .filter(Q(owner=owner) | Q(owner="") | Q(beat_at__lt=now - LEASE))
        .update(owner=owner, beat_at=now)
    )
