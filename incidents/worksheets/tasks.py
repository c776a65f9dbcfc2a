"""django-q2 entry points for worksheets (their dotted paths are stored in the task queue; keep them).

A compare or an apply of thousands of rows outlasts one task's Q_TIMEOUT, so each task works for
WORKSHEET_TASK_SECONDS and then queues its own continuation; progress lives in the database, so a
worker that dies loses at most the batch it was on (those rows are simply done again). Calls an
apply queued to Shopify finish on the outbound senders; `settle_applying` (every minute, and each
time the page or `worksheets apply --wait` polls) gives their rows their outcome.
"""

import logging
import time

from django.conf import settings

from incidents.worksheets import services
from incidents.worksheets.models import Worksheet

logger = logging.getLogger(__name__)


def _deadline() -> float:
    return time.monotonic() + settings.WORKSHEET_TASK_SECONDS


def compare_task(worksheet_id: int) -> bool:
    done = services.run_compare(worksheet_id, deadline=_deadline())
    if not done:
        services._queue("incidents.worksheets.tasks.compare_task", worksheet_id)
    return done


def apply_task(worksheet_id: int) -> bool:
    deadline = _deadline()
    done = services.run_apply(worksheet_id, deadline=deadline)
    if done:
        return True
    worksheet = Worksheet.objects.get(pk=worksheet_id)
    if worksheet.rows.filter(result="").exists():  # rows left to write: hand on
        services._queue("incidents.worksheets.tasks.apply_task", worksheet_id)
        return False
    # Only calls in Shopify's queue left: wait for them a while; the minute sweep does the rest.
    # (A "sync" queue runs this in the caller's process, where no sender runs meanwhile.)
    while time.monotonic() < deadline and not settings.Q_CLUSTER.get("sync"):
        if services.settle(worksheet):
            return True
        time.sleep(0.5)
    return False


def settle_applying() -> int:
    """Every applying worksheet whose rows all went out: settle it. Returns how many finished."""
    finished = 0
    for worksheet in Worksheet.objects.filter(state=Worksheet.State.APPLYING, progress_step="apply"):
        if not worksheet.rows.filter(result="").exists() and services.settle(worksheet):
            finished += 1
    return finished
