"""Deleting old rejected deliveries: anyone can post to the receiver, so what never became an Event
is kept only WEBHOOK_REJECTED_RETENTION_DAYS days (the worker's once-a-minute schedule calls
`purge_rejected_deliveries`). Verified deliveries belong to their Event and are never purged here.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from integrations.models import Delivery

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
MAX_BATCHES = 20  # per call: a backlog is worked off over several minutes, never in one long task


def purge_rejected_deliveries(
    *, now: datetime | None = None, batch_size: int = BATCH_SIZE, max_batches: int = MAX_BATCHES
) -> int:
    """Delete rejected deliveries older than the retention, oldest first, `batch_size` rows per
    statement (each its own short transaction, so SQLite's write lock is never held for long).
    Returns how many were deleted."""
    days = settings.WEBHOOK_REJECTED_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    # Served by the partial index on received_at where event is null (int_delivery_rejected_idx).
    old = Delivery.objects.filter(event__isnull=True, received_at__lt=cutoff)
    deleted = 0
    for _ in range(max_batches):
        ids = list(old.order_by("received_at").values_list("id", flat=True)[:batch_size])
        if not ids:
            break
        deleted += Delivery.objects.filter(pk__in=ids, event__isnull=True).delete()[0]
        if len(ids) < batch_size:
            break
    if deleted:
        logger.info("deleted %d rejected deliveries older than %d days", deleted, days)
    return deleted
