"""Retention: how long the console keeps what it received, and the worker's purge.

- Rejected deliveries (requests that never became an Event: anyone can post to the receiver) are
  deleted after WEBHOOK_REJECTED_RETENTION_DAYS (`purge_rejected_deliveries`, also called by the
  worker's once-a-minute `ensure_pump`).
- Raw payloads: the bodies and headers of the deliveries of events received more than
  PAYLOAD_RETENTION_DAYS ago are emptied (`purge_payloads`): body NULL, headers {}. What the trace
  reads stays: the event (topic, shop, times, status, resource), each delivery's size, SHA-256
  (computed from the body before it goes), signature check, outcome, answer and reason, the jobs
  and their attempts. The event is marked (`Event.payload_purged_at`); its page says so, and a
  replay of the stored payload is refused.
  Events still in flight, held for a disabled handler, or waiting in a replay keep their payload
  until they settle: the worker and the replay still need it.
- Successful attempts: a job that succeeded more than ATTEMPT_RETENTION_DAYS ago keeps its first
  and its last attempt, and the first successful run that was not a replay (what the trace's
  "out of order" reads); the others are deleted (`thin_attempts`). A job that did not succeed keeps
  every attempt. Outbound calls that succeeded keep their first and last try likewise.
- Never purged here: audit entries, incidents, worksheets, privacy requests, and the events
  themselves.

Every step works in batches of `batch_size` rows, each batch its own short transaction (a bounded
SELECT, then UPDATE or DELETE of those ids), oldest first, at most `max_batches` per run: a backlog
is worked off over several runs, and SQLite's write lock or PostgreSQL's row locks are held for one
batch at a time. `run_retention` runs the steps and records a RetentionRun (the worker's schedule
calls it through `integrations.tasks.run_retention` every few minutes).
"""

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, JSONField, OuterRef, Subquery
from django.utils import timezone

from integrations.models import (
    Attempt,
    Delivery,
    Event,
    Job,
    OutboundAttempt,
    OutboundCall,
    ReplayItem,
    RetentionRun,
)

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
MAX_BATCHES = 20  # per call: a backlog is worked off over several minutes, never in one long task
# The django-q2 schedule that runs `integrations.tasks.run_retention` (migration 0016).
SCHEDULE_NAME = "retention"
SCHEDULE_MINUTES = 5
# RetentionRun rows are themselves kept this long (the latest is always kept: it holds the cursors).
RUNS_KEPT = timedelta(days=30)
# Events whose payload is still needed: the worker runs them, a held one waits for its handler.
UNSETTLED = (*Event.IN_FLIGHT_STATUSES, Event.Status.HELD)


@dataclass
class Step:
    """What one step did (or, in a dry run, would do)."""

    done: int = 0  # events purged, or rows deleted
    batches: int = 0  # batches run, each its own transaction
    more: bool = False  # stopped at max_batches with work left for the next run
    skipped: str = ""  # why the step did nothing (its setting is 0)
    extra: dict = field(default_factory=dict)  # deliveries cleared, jobs thinned, the backlog...
    cursor: int | None = None  # attempt steps: the highest id examined

    def as_json(self) -> dict:
        data = {"done": self.done, "batches": self.batches, "more": self.more, **self.extra}
        if self.skipped:
            data["skipped"] = self.skipped
        return data


def current_settings(batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES) -> dict:
    return {
        "PAYLOAD_RETENTION_DAYS": settings.PAYLOAD_RETENTION_DAYS,
        "ATTEMPT_RETENTION_DAYS": settings.ATTEMPT_RETENTION_DAYS,
        "WEBHOOK_REJECTED_RETENTION_DAYS": settings.WEBHOOK_REJECTED_RETENTION_DAYS,
        "batch_size": batch_size,
        "max_batches": max_batches,
    }


def purge_note(event: Event) -> str:
    """How a purged event's pages and its replay say it: "payload purged on 2026-05-04 after 30
    days (PAYLOAD_RETENTION_DAYS)". The days are the setting now (or, when it is 0 now, how old the
    payload was when it was purged)."""
    purged_at = event.payload_purged_at
    days = settings.PAYLOAD_RETENTION_DAYS
    if days <= 0:
        days = max((purged_at - event.received_at).days, 0)
    return (
        f"payload purged on {timezone.localtime(purged_at):%Y-%m-%d} after {days} day{'s' if days != 1 else ''} "
        "(PAYLOAD_RETENTION_DAYS)"
    )


# --- Rejected deliveries -------------------------------------------------------------------------


def purge_rejected_deliveries(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> int:
    """Delete rejected deliveries older than the retention, oldest first, `batch_size` rows per
    statement (each its own short transaction, so SQLite's write lock is never held for long).
    Returns how many were deleted."""
    return _purge_rejected(Step(), now=now, batch_size=batch_size, max_batches=max_batches).done


def _purge_rejected(step: Step, *, now, batch_size: int, max_batches: int, dry_run: bool = False) -> Step:
    days = settings.WEBHOOK_REJECTED_RETENTION_DAYS
    if days <= 0:
        step.skipped = "WEBHOOK_REJECTED_RETENTION_DAYS is 0: rejected deliveries are kept"
        return step
    cutoff = (now or timezone.now()) - timedelta(days=days)
    # Served by the partial index on received_at where event is null (int_delivery_rejected_idx).
    old = Delivery.objects.filter(event__isnull=True, received_at__lt=cutoff)
    if dry_run:
        return _would(step, old.count(), batch_size, max_batches)
    for _ in range(max_batches):
        ids = list(old.order_by("received_at").values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        step.done += Delivery.objects.filter(pk__in=ids, event__isnull=True).delete()[0]
        step.batches += 1
        if len(ids) < batch_size:
            break
    else:
        step.more = old.exists()
    if step.done:
        logger.info("deleted %d rejected deliveries older than %d days", step.done, days)
    return step


def _would(step: Step, total: int, batch_size: int, max_batches: int) -> Step:
    """A dry run's step: what one run would do now, and the whole backlog."""
    limit = batch_size * max_batches
    step.done = min(total, limit)
    step.batches = -(-step.done // batch_size)
    step.more = total > limit
    step.extra["backlog"] = total
    return step


# --- Payloads ------------------------------------------------------------------------------------


def payloads_due(now: datetime | None = None):
    """Events whose payload is past PAYLOAD_RETENTION_DAYS and may be purged now (None: kept)."""
    days = settings.PAYLOAD_RETENTION_DAYS
    if days <= 0:
        return None
    cutoff = (now or timezone.now()) - timedelta(days=days)
    waiting_replay = ReplayItem.objects.filter(event=OuterRef("pk")).exclude(status__in=ReplayItem.SETTLED)
    # Served by int_event_unpurged_idx: purged events are not in it, so the oldest left is found at once.
    return (
        Event.objects.filter(payload_purged_at__isnull=True, received_at__lt=cutoff)
        .exclude(status__in=UNSETTLED)
        .exclude(Exists(waiting_replay))
    )


def purge_payloads(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES, dry_run: bool = False
) -> Step:
    """Empty the bodies and headers of old events' deliveries and mark the events purged, oldest
    first, `batch_size` events per transaction, at most `max_batches` transactions."""
    return _purge_payloads(Step(), now=now or timezone.now(), batch_size=batch_size, max_batches=max_batches,
                           dry_run=dry_run)  # fmt: skip


def _purge_payloads(step: Step, *, now: datetime, batch_size: int, max_batches: int, dry_run: bool = False) -> Step:
    due = payloads_due(now)
    if due is None:
        step.skipped = "PAYLOAD_RETENTION_DAYS is 0: payloads are kept"
        return step
    if dry_run:
        return _would(step, due.count(), batch_size, max_batches)
    step.extra["deliveries"] = 0
    for _ in range(max_batches):
        with transaction.atomic():
            # PostgreSQL: rows a pump or replay holds are left for the next run, never waited for.
            ids = list(
                due.select_for_update(skip_locked=True)
                .order_by("received_at")
                .values_list("id", flat=True)[:batch_size]
            )
            if not ids:
                break
            Event.objects.filter(pk__in=ids).update(payload_purged_at=now)
            _keep_hashes(ids)
            step.extra["deliveries"] += Delivery.objects.filter(event_id__in=ids).update(body=None, headers={})
        step.done += len(ids)
        step.batches += 1
        if len(ids) < batch_size:
            break
    else:
        step.more = due.exists()
    if step.done:
        logger.info("purged the payloads of %d events older than %d days", step.done, settings.PAYLOAD_RETENTION_DAYS)
    return step


def _keep_hashes(event_ids: list[int]) -> None:
    """A verified delivery stores its body without a hash (the body is there); before the body
    goes, its SHA-256 is kept, so what Shopify sent can still be matched against a copy. Not for a
    redacted event: its body was rewritten, and the hash would not be of what was received."""
    hashed = [
        Delivery(pk=pk, body_sha256=hashlib.sha256(bytes(body)).hexdigest())
        for pk, body in Delivery.objects.filter(
            event_id__in=event_ids, body_sha256="", body__isnull=False, event__redacted_at__isnull=True
        ).values_list("pk", "body")
    ]
    Delivery.objects.bulk_update(hashed, ["body_sha256"], batch_size=100)


# --- Attempts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Thinning:
    key: str  # the step's name, and its cursor's
    model: type  # Attempt or OutboundAttempt
    parent: str  # the foreign key to the job or call
    parent_model: type
    succeeded: str
    keep_first_success: bool  # keep the first successful run that was not a replay (the trace reads it)


ATTEMPTS = _Thinning("attempts", Attempt, "job", Job, Job.Status.SUCCEEDED, keep_first_success=True)
OUTBOUND_ATTEMPTS = _Thinning(
    "outbound_attempts", OutboundAttempt, "call", OutboundCall, OutboundCall.Status.SUCCEEDED, keep_first_success=False
)


def last_cursor(key: str) -> int:
    """Where the last run's walk of an attempt table stopped (0: from the start)."""
    cursors = RetentionRun.objects.filter(cursors__has_key=key).order_by("-id").values_list("cursors", flat=True)
    latest = cursors.first()
    return int(latest[key]) if latest else 0


def thin_attempts(
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    dry_run: bool = False,
    cursor: int | None = None,
) -> Step:
    """Delete the attempts of jobs that succeeded before the cutoff, but their first, their last and
    the first successful non-replay one, walking Attempt in primary-key ranges of `batch_size` from
    `cursor` (default: where the last RetentionRun stopped). `Step.cursor` says where it stopped."""
    return _thin(ATTEMPTS, Step(), now=now or timezone.now(), batch_size=batch_size, max_batches=max_batches,
                 dry_run=dry_run, cursor=cursor)  # fmt: skip


def thin_outbound_attempts(
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    dry_run: bool = False,
    cursor: int | None = None,
) -> Step:
    """The same for the tries of outbound calls that succeeded before the cutoff: first and last kept."""
    return _thin(OUTBOUND_ATTEMPTS, Step(), now=now or timezone.now(), batch_size=batch_size,
                 max_batches=max_batches, dry_run=dry_run, cursor=cursor)  # fmt: skip


def _thin(
    spec: _Thinning, step: Step, *, now: datetime, batch_size: int, max_batches: int, dry_run: bool, cursor: int | None
) -> Step:
    """Attempt ids grow with time, so the walk goes up from the cursor, batch_size attempts at a time
    (gaps in the ids cost nothing), and stops at the first attempt started after the cutoff
    (everything above it is as recent); a job that gets another attempt later (a replay) is met
    again when the walk reaches that attempt."""
    days = settings.ATTEMPT_RETENTION_DAYS
    if days <= 0:
        step.skipped = "ATTEMPT_RETENTION_DAYS is 0: every attempt is kept"
        return step
    cutoff = now - timedelta(days=days)
    model, parent_id = spec.model, f"{spec.parent}_id"
    step.cursor = last_cursor(spec.key) if cursor is None else cursor
    step.extra["parents"] = 0
    while True:
        if step.batches >= max_batches:
            step.more = model.objects.filter(pk__gt=step.cursor).exists()
            break
        with transaction.atomic():
            # The next batch_size attempts up the primary key: a bounded range of its index.
            rows = list(
                model.objects.filter(pk__gt=step.cursor)
                .order_by("pk")
                .values_list("pk", parent_id, "started_at")[:batch_size]
            )
            if not rows:
                break
            recent = next((pk for pk, _parent, started in rows if started >= cutoff), None)
            parents = {parent for pk, parent, _started in rows if recent is None or pk < recent}
            finished = list(
                spec.parent_model.objects.filter(
                    pk__in=parents, status=spec.succeeded, finished_at__lt=cutoff
                ).values_list("pk", flat=True)
            )
            doomed = _thinned_away(spec, finished)
            if doomed and not dry_run:
                model.objects.filter(pk__in=doomed).delete()
        step.batches += 1
        step.done += len(doomed)
        step.extra["parents"] += len(finished)
        if recent is not None:
            step.cursor = recent - 1
            break
        step.cursor = rows[-1][0]
        if len(rows) < batch_size:
            break
    if step.done and not dry_run:
        logger.info("deleted %d %s of %ss that succeeded more than %d days ago", step.done, spec.key, spec.parent, days)
    return step


def _thinned_away(spec: _Thinning, parents: list[int]) -> list[int]:
    """The attempts of these jobs (or calls) that thinning deletes: all but the first, the last and,
    for jobs, the first successful run that was not a replay."""
    if not parents:
        return []
    fields = ["pk", f"{spec.parent}_id", "number", "outcome"] + (["trigger"] if spec.keep_first_success else [])
    by_parent: dict[int, list[tuple]] = {}
    for row in spec.model.objects.filter(**{f"{spec.parent}_id__in": parents}).order_by("number").values_list(*fields):
        by_parent.setdefault(row[1], []).append(row)
    doomed = []
    for attempts in by_parent.values():
        if len(attempts) <= 2:
            continue
        keep = {attempts[0][0], attempts[-1][0]}
        if spec.keep_first_success:
            first = next(
                (a for a in attempts if a[3] == Attempt.Outcome.SUCCEEDED and a[4] != Attempt.Trigger.REPLAY), None
            )
            if first is not None:
                keep.add(first[0])
        doomed += [a[0] for a in attempts if a[0] not in keep]
    return doomed


# --- One run -------------------------------------------------------------------------------------


def run_retention(
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    max_batches: int = MAX_BATCHES,
    trigger: str = RetentionRun.Trigger.SCHEDULE,
    dry_run: bool = False,
) -> RetentionRun:
    """Run every step and record what each did in a RetentionRun (a dry run changes nothing and
    returns an unsaved one). A step that fails is logged and recorded; the others still run."""
    now = now or timezone.now()
    run = RetentionRun(started_at=now, trigger=trigger, settings=current_settings(batch_size, max_batches))
    if not dry_run:
        run.save()
    errors = []
    limits = {"batch_size": batch_size, "max_batches": max_batches, "dry_run": dry_run}
    steps = (
        ("rejected_deliveries", lambda step: _purge_rejected(step, now=now, **limits)),
        ("payloads", lambda step: _purge_payloads(step, now=now, **limits)),
        ("attempts", lambda step: _thin(ATTEMPTS, step, now=now, cursor=None, **limits)),
        ("outbound_attempts", lambda step: _thin(OUTBOUND_ATTEMPTS, step, now=now, cursor=None, **limits)),
    )
    for name, work in steps:
        step = Step()
        try:
            work(step)
        except Exception as exc:  # recorded on the run; the other steps still run
            logger.exception("retention step %s failed", name)
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            step.extra["error"] = f"{type(exc).__name__}: {exc}"
        run.steps[name] = step.as_json()
        if step.cursor is not None:
            run.cursors[name] = step.cursor
        elif name in ("attempts", "outbound_attempts") and (kept := last_cursor(name)):
            # Skipped (its setting is 0): the walk resumes where it was when it is turned on again,
            # even after the runs that hold the position are deleted.
            run.cursors[name] = kept
    run.errors = "\n".join(errors)
    run.finished_at = timezone.now()
    if not dry_run:
        run.save(update_fields=["steps", "cursors", "errors", "finished_at"])
        RetentionRun.objects.filter(started_at__lt=now - RUNS_KEPT).exclude(pk=run.pk).delete()
    return run


def run_json(run: RetentionRun) -> dict:
    return {
        "id": run.pk,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "trigger": run.trigger,
        "settings": run.settings,
        "steps": run.steps,
        "errors": run.errors.splitlines() if run.errors else [],
    }


def next_due() -> datetime | None:
    """When the worker's schedule runs retention next (None: not scheduled)."""
    from django_q.models import Schedule

    return Schedule.objects.filter(name=SCHEDULE_NAME).values_list("next_run", flat=True).first()


def status(*, now: datetime | None = None, runs: int = 5) -> dict:
    """What a run would purge now (a dry run), the latest runs and when the next is due."""
    would = run_retention(now=now, dry_run=True)
    return {
        "settings": current_settings(),
        "would": would.steps,
        "next_due": next_due(),
        "runs": [run_json(run) for run in RetentionRun.objects.order_by("-id")[:runs]],
    }


def dashboard_block() -> dict:
    """The dashboard's retention block: the settings, the last run and when the next is due (no
    counting of the tables: the last run says whether a backlog is left)."""
    from django_q.models import Schedule

    # One query: the schedule's row (migration 0016 makes it) with the last finished run's fields.
    runs = RetentionRun.objects.filter(finished_at__isnull=False).order_by("-id")
    fields = {"id": None, "started_at": None, "finished_at": None, "steps": JSONField(), "errors": None}
    row = (
        Schedule.objects.filter(name=SCHEDULE_NAME)
        .annotate(**{f"run_{name}": Subquery(runs.values(name)[:1], output_field=out) for name, out in fields.items()})
        .values("next_run", *(f"run_{name}" for name in fields))
        .first()
    )
    if row is None:  # not scheduled
        last, due = runs.first(), None
    else:
        last = RetentionRun(**{name: row[f"run_{name}"] for name in fields}) if row["run_id"] else None
        due = row["next_run"]
    return {
        "settings": current_settings(),
        "last": last,
        "backlog": bool(last and any(step.get("more") for step in last.steps.values())),
        "next_due": due,
    }
