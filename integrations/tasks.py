"""django-q2 entry points (their dotted paths are stored in the schedule table; keep them).

Event processing does not run as queued tasks: every qcluster worker process starts one event
pump in a thread when it spawns (`start_worker_pump`, connected to django-q2's post_spawn), so
pumps scale with worker processes, clusters and machines, and the receiver never enqueues
anything per webhook. The once-a-minute `ensure_pump` schedule restarts a pump thread that died,
gives back the claims of pumps that stopped (on any machine), forgets long-dead pumps, and
deletes rejected deliveries past WEBHOOK_REJECTED_RETENTION_DAYS. The 15-minute
`check_shops_health` schedule refreshes expiring access tokens and checks each shop's scopes and
API version.
"""

import logging
import threading
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from integrations.inbound.retention import purge_rejected_deliveries
from integrations.models import WorkerHeartbeat
from integrations.processing.claims import recover_lost_claims
from integrations.processing.pump import Pump

logger = logging.getLogger(__name__)

FORGET_PUMPS_AFTER = timedelta(days=1)
_pump_lock = threading.Lock()
_pump_threads: list[threading.Thread] = []
_stop = threading.Event()


def start_worker_pump() -> int:
    """Start this process's event pump threads (EVENT_PUMP_THREADS, default 1) and outbound sender
    threads (OUTBOUND_SENDER_THREADS, default 1) if they are not running. Returns how many were
    started."""
    with _pump_lock:
        _pump_threads[:] = [thread for thread in _pump_threads if thread.is_alive()]
        started = 0
        for kind, wanted, run in (
            ("pump", settings.EVENT_PUMP_THREADS, _run_pump),
            ("sender", settings.OUTBOUND_SENDER_THREADS, _run_sender),
        ):
            alive = sum(1 for thread in _pump_threads if thread.name.startswith(f"{kind}-"))
            for number in range(alive + 1, wanted + 1):
                tag = f"{kind}{number}"
                # A daemon: when django-q2 stops or recycles the worker process, the thread goes
                # with it; uncommitted work rolls back and recovery gives claims back after the lease.
                thread = threading.Thread(target=run, args=(tag,), name=f"{kind}-{tag}", daemon=True)
                thread.start()
                _pump_threads.append(thread)
                started += 1
    return started


def _run_sender(tag: str) -> None:
    from django.db import connection

    from integrations.outbound.sender import Sender

    try:
        Sender(tag=tag).run_forever(_stop)
    finally:
        connection.close()


def _run_pump(tag: str) -> None:
    from django.db import connection

    try:
        # With REPLAY_LANE "process", replays run in `manage.py replay_lane` processes instead.
        Pump(tag=tag, replay=settings.REPLAY_LANE == "pumps").run_forever(_stop)
    finally:
        connection.close()


def ensure_pump() -> None:
    """Scheduled every minute: this worker's pump is alive, lost claims are recovered anywhere,
    old rejected deliveries are deleted (a few batches a minute)."""
    start_worker_pump()
    recover_lost_claims()
    WorkerHeartbeat.objects.filter(beat_at__lt=timezone.now() - FORGET_PUMPS_AFTER).delete()
    purge_rejected_deliveries()


def check_shops_health() -> dict:
    """Scheduled every 15 minutes: refresh the access tokens about to expire, then check every
    installed shop that has a token: its granted scopes (opening and clearing scope holds), its
    API version and its webhook subscriptions (opening and closing gaps). Each check is recorded as a HealthCheck row; a shop whose check fails is logged
    and skipped, never stopping the others. Returns {"refreshed", "refresh_failed", "checked",
    "with_problems", "errors"} (counts)."""
    from integrations.models import Shop
    from integrations.shops.scopes import check_scopes
    from integrations.shops.subscriptions import check_subscriptions
    from integrations.shops.tokens import refresh_expiring_tokens
    from integrations.shops.versions import check_version

    refreshed = refresh_expiring_tokens()
    summary = {
        "refreshed": sum(1 for item in refreshed if item["ok"]),
        "refresh_failed": sum(1 for item in refreshed if not item["ok"]),
        "checked": 0,
        "with_problems": 0,
        "errors": 0,
    }
    for shop in Shop.objects.filter(state=Shop.State.INSTALLED).exclude(access_token="").order_by("pk"):
        try:
            scopes = check_scopes(shop, triggered_by="schedule")
            version = check_version(shop, triggered_by="schedule")
            subscriptions = check_subscriptions(shop, triggered_by="schedule")
        except Exception:
            logger.exception("health check of %s failed", shop.domain)
            summary["errors"] += 1
            continue
        summary["checked"] += 1
        if not scopes["ok"] or version["warnings"] or not subscriptions["ok"]:
            summary["with_problems"] += 1
    return summary


def pump_events(run_seconds: float | None = None, hand_over: bool = False) -> int:
    """Run a pump inside this task for `run_seconds` (kept for tasks queued before pumps became
    threads, and for running one by hand). Returns events handled."""
    import time

    deadline = time.monotonic() + (settings.EVENT_PUMP_RUN_SECONDS if run_seconds is None else run_seconds)
    pump = Pump(tag="task")
    handled = 0
    try:
        while time.monotonic() < deadline:
            done = pump.run_once()
            handled += done
            if not done:
                time.sleep(0.2)
    finally:
        from integrations.processing import claims

        claims.release(pump.name)
        pump.beat()
    return handled


def run_retention() -> dict:
    """Scheduled every 5 minutes (migration 0016): purge payloads past PAYLOAD_RETENTION_DAYS, thin
    the attempts of jobs and calls that succeeded before ATTEMPT_RETENTION_DAYS, delete old rejected
    deliveries, a few small batches each (`integrations.inbound.retention`). Returns what each step
    did, as recorded on its RetentionRun."""
    from integrations.inbound.retention import run_retention as run

    return run().steps
