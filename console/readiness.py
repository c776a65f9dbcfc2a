"""Readiness: whether this console can do its work now, check by check (GET /readyz, `manage.py
readiness`). Liveness is /healthz, which touches nothing.

Each check is a plain function returning {"ok": bool, ...details}: ages in seconds and the
thresholds they are held to, never a secret. Each is cheap (an index probe or one small write) and
bounded: its statements run under READY_DB_TIMEOUT_SECONDS (PostgreSQL's statement and lock
timeouts, set for its own transaction only; SQLite's busy timeout, put back afterwards), so a
database that hangs costs a "no answer" rather than a hung probe. When the database check fails the
others are not run: they report "skipped".
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Max, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

logger = logging.getLogger(__name__)

_LOCAL_TIMEOUTS = "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)"
READ_ONLY_STATE = "25006"  # read_only_sql_transaction
TIMEOUT_STATES = ("57014", "55P03")  # query_canceled (statement_timeout), lock_not_available (lock_timeout)


@contextmanager
def bounded(seconds: float, *, write: bool = False) -> Iterator[None]:
    """Statements in the block wait on the database no longer than `seconds`, then raise
    DatabaseError. PostgreSQL: a transaction of its own with SET LOCAL timeouts (they end with
    it). SQLite: the connection's busy timeout, put back afterwards; a transaction only for a
    write (SQLite's IMMEDIATE transactions take the write lock at BEGIN, which a read must not)."""
    db = connections[DEFAULT_DB_ALIAS]
    ms = max(int(seconds * 1000), 1)
    if db.vendor == "postgresql":
        with transaction.atomic(using=db.alias), db.cursor() as cursor:
            cursor.execute(_LOCAL_TIMEOUTS, [str(ms), str(ms)])
            yield
        return
    if db.vendor != "sqlite":
        with transaction.atomic(using=db.alias) if write else nullcontext():
            yield
        return
    db.ensure_connection()
    raw = db.connection
    previous = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
    raw.execute(f"PRAGMA busy_timeout = {min(ms, previous) if previous else ms}")
    try:
        with transaction.atomic(using=db.alias) if write else nullcontext():
            yield
    finally:
        raw.execute(f"PRAGMA busy_timeout = {previous}")


def _sqlstate(exc: BaseException | None) -> str | None:
    while exc is not None:
        if state := getattr(exc, "sqlstate", None):
            return state
        exc = exc.__cause__
    return None


def describe(exc: DatabaseError, seconds: float) -> str:
    """What went wrong, in words safe to show anyone (no host, user or statement)."""
    state, text = _sqlstate(exc), str(exc).lower()
    if state == READ_ONLY_STATE or "readonly" in text or "read-only" in text:
        return "the database refuses writes (read-only)"
    if state in TIMEOUT_STATES or "locked" in text or "timeout" in text:
        return f"no answer within {seconds:g} s"
    return f"{type(exc).__name__}: see the log"


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max((now - then).total_seconds(), 0.0), 1)


# --- the checks ---------------------------------------------------------------------------------


def database() -> dict:
    """The database answers and commits a write (the one-row probe table) within the timeout."""
    from console.models import ReadinessProbe

    limit = settings.READY_DB_TIMEOUT_SECONDS
    started = time.perf_counter()
    try:
        with bounded(limit, write=True):
            now = timezone.now()
            if not ReadinessProbe.objects.filter(pk=1).update(beat_at=now):
                ReadinessProbe.objects.update_or_create(pk=1, defaults={"beat_at": now})
    except DatabaseError as exc:
        logger.warning("readiness: the database check failed", exc_info=True)
        return {"ok": False, "error": describe(exc, limit), "timeout_seconds": limit}
    return {"ok": True, "took_ms": round((time.perf_counter() - started) * 1000, 1), "timeout_seconds": limit}


_migrations_lock = threading.Lock()
_migrations_cached: tuple[float, dict] | None = None


def migrations() -> dict:
    """No migration is unapplied. Loading the migration graph reads every migration file, so the
    answer is kept for READY_MIGRATIONS_CACHE_SECONDS in this process."""
    global _migrations_cached
    with _migrations_lock:
        cached = _migrations_cached
    if cached is not None and time.monotonic() - cached[0] < settings.READY_MIGRATIONS_CACHE_SECONDS:
        return {**cached[1], "cached": True}
    with bounded(settings.READY_DB_TIMEOUT_SECONDS):
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    result = {"ok": not plan, "unapplied": len(plan)}
    if plan:
        migration, _backwards = plan[0]
        result["first_unapplied"] = f"{migration.app_label}.{migration.name}"
    with _migrations_lock:
        _migrations_cached = (time.monotonic(), result)
    return {**result, "cached": False}


def forget_migrations() -> None:
    """Drop the cached migrations answer (after `migrate`, and in tests)."""
    global _migrations_cached
    with _migrations_lock:
        _migrations_cached = None


def worker() -> dict:
    """An event pump beat its heartbeat within READY_WORKER_HEARTBEAT_SECONDS."""
    from integrations.models import WorkerHeartbeat

    limit = settings.READY_WORKER_HEARTBEAT_SECONDS
    now = timezone.now()
    with bounded(settings.READY_DB_TIMEOUT_SECONDS):
        newest = WorkerHeartbeat.objects.aggregate(newest=Max("beat_at"))["newest"]
        alive = WorkerHeartbeat.objects.filter(beat_at__gt=now - timedelta(seconds=limit)).count() if newest else 0
    age = _age(now, newest)
    details = {"ok": age is not None and age < limit, "newest_beat_age_seconds": age, "threshold_seconds": limit}
    details["pumps_alive"] = alive
    if newest is None:
        details["error"] = "no event pump has ever beaten: is a qcluster worker running?"
    return details


def event_backlog() -> dict:
    """The oldest queued event, and the most overdue retry, waited less than
    READY_MAX_EVENT_AGE_SECONDS (two index probes: int_event_queued_idx, int_event_retry_idx)."""
    from integrations.models import Event

    limit = settings.READY_MAX_EVENT_AGE_SECONDS
    now = timezone.now()
    with bounded(settings.READY_DB_TIMEOUT_SECONDS):
        oldest = (
            Event.objects.filter(status=Event.Status.QUEUED)
            .order_by("id")
            .values_list("id", "received_at", "shop__domain")
            .first()
        )
        overdue = (
            Event.objects.filter(status=Event.Status.RETRY_WAIT, next_attempt_at__lte=now)
            .order_by("next_attempt_at")
            .values_list("id", "next_attempt_at", "shop__domain")
            .first()
        )
    queued_age = _age(now, oldest[1]) if oldest else None
    overdue_age = _age(now, overdue[1]) if overdue else None
    details = {
        "ok": all(age is None or age < limit for age in (queued_age, overdue_age)),
        "oldest_queued_age_seconds": queued_age,
        "oldest_retry_overdue_seconds": overdue_age,
        "threshold_seconds": limit,
    }
    if oldest:
        details["oldest_queued_event"] = {"id": oldest[0], "shop": oldest[2]}
    if overdue:
        details["most_overdue_retry_event"] = {"id": overdue[0], "shop": overdue[2]}
    return details


def outbound_backlog() -> dict:
    """The oldest due outbound call (what a sender may take now: `queue.due_calls` without the
    per-record ordering) has been due less than READY_MAX_CALL_AGE_SECONDS: a queued call since
    it was made, a waiting one since its next try came due. Paused shops' calls and calls an open
    hold keeps back (a missing scope, an unusable token) wait for a person, not for a sender."""
    from integrations.models import OutboundCall
    from integrations.outbound.queue import held_by_holds

    limit = settings.READY_MAX_CALL_AGE_SECONDS
    now = timezone.now()
    Status = OutboundCall.Status
    with bounded(settings.READY_DB_TIMEOUT_SECONDS):
        due = OutboundCall.objects.filter(status__in=[Status.QUEUED, Status.WAITING], shop__queue_paused=False).filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        )
        held = held_by_holds()
        if held is not None:
            due = due.exclude(held)
        oldest = (
            due.annotate(due_since=Coalesce("next_attempt_at", "created_at"))
            .order_by("due_since", "id")
            .values_list("id", "due_since", "shop__domain", "operation")
            .first()
        )
    age = _age(now, oldest[1]) if oldest else None
    details = {"ok": age is None or age < limit, "oldest_due_age_seconds": age, "threshold_seconds": limit}
    if oldest:
        details["oldest_due_call"] = {"id": oldest[0], "shop": oldest[2], "operation": oldest[3]}
    return details


CHECKS: dict[str, Callable[[], dict]] = {
    "database": database,
    "migrations": migrations,
    "worker": worker,
    "event_backlog": event_backlog,
    "outbound_backlog": outbound_backlog,
}


def _run(name: str, check: Callable[[], dict]) -> dict:
    try:
        return check()
    except DatabaseError as exc:
        logger.warning("readiness: the %s check failed", name, exc_info=True)
        return {"ok": False, "error": describe(exc, settings.READY_DB_TIMEOUT_SECONDS)}
    except Exception as exc:  # a readiness answer must come back whatever broke
        logger.exception("readiness: the %s check raised", name)
        return {"ok": False, "error": f"{type(exc).__name__}: see the log"}


def report() -> dict:
    """Every check: {"status": "ok" | "unavailable", "checks": {name: details}, "failing": [names]}.
    `failing` names the checks that failed; those skipped for it are not ok but not named."""
    checks = {"database": _run("database", database)}
    for name, check in CHECKS.items():
        if name == "database":
            continue
        if checks["database"]["ok"]:
            checks[name] = _run(name, check)
        else:
            checks[name] = {"ok": False, "skipped": "the database check failed"}
    return {
        "status": "ok" if all(c["ok"] for c in checks.values()) else "unavailable",
        "checks": checks,
        "failing": [name for name, c in checks.items() if not c["ok"] and "skipped" not in c],
    }
