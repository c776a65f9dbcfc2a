"""Event-log health for the dashboard: aggregate queries only, each bounded by time or served by
a partial index, so the cost does not grow with the size of the log."""

import functools
import operator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Max, Min, Q
from django.db.models.functions import TruncHour
from django.utils import timezone

from integrations.eventlog.filters import REJECTED
from integrations.models import Delivery, Event, OutboundCall, OwnershipDrift, PrivacyRequest, Shop, WorkerHeartbeat

WORKER_ALIVE_WITHIN = timedelta(seconds=90)
CHART_HOURS = 24
# Bottom to top in each bar; "rejected" are Deliveries that never became an Event.
CHART_STATUSES = ["processed", "ignored", "queued", "claimed", "retry_wait", "failed", REJECTED]
_BAR_PITCH, _BAR_WIDTH, _CHART_HEIGHT = 40, 32, 100
# Paused shops named on the dashboard (the rest are counted).
PAUSED_SHOPS_SHOWN = 10
# See rejected_spike.
REJECTED_SPIKE_MIN = 20
REJECTED_SPIKE_FACTOR = 5


@dataclass
class ChartSegment:
    status: str
    count: int
    y: float
    height: float


@dataclass
class ChartBar:
    hour: datetime
    x: int
    total: int
    segments: list[ChartSegment]

    @property
    def label(self) -> str:
        parts = ", ".join(f"{s.status} {s.count}" for s in self.segments) or "nothing"
        return f"{self.hour:%H:00}: {parts}"


# Events not yet finished. An OR, not status__in: PostgreSQL combines the partial indexes
# (queued; not queued) for an OR, while `status = ANY(...)` is implied by neither and would scan
# the whole log.
IN_FLIGHT = Q(status=Event.Status.QUEUED) | Q(status=Event.Status.CLAIMED) | Q(status=Event.Status.RETRY_WAIT)
CallStatus = OutboundCall.Status
_OUTBOUND_COUNTED = [status.value for status in (*OutboundCall.ACTIVE, CallStatus.FAILED)]


def dashboard_stats(now: datetime | None = None) -> dict[str, Any]:
    """Event-log health for the dashboard: aggregate queries only, each bounded by time or served
    by a partial index, so the cost does not grow with the size of the log."""
    now = now or timezone.now()
    current_hour = timezone.localtime(now).replace(minute=0, second=0, microsecond=0)
    since = current_hour - timedelta(hours=CHART_HOURS - 1)
    day_ago = now - timedelta(hours=24)

    counts: dict[tuple[datetime, str], int] = {}
    per_status = (
        Event.objects.filter(received_at__gte=since)
        .annotate(hour=TruncHour("received_at"))
        .values_list("hour", "status")
        .annotate(n=Count("id"))
        .order_by()
    )
    for hour, status, n in per_status:
        counts[(hour, status)] = n
    rejected_per_hour = (
        Delivery.objects.filter(event__isnull=True, received_at__gte=since)
        .annotate(hour=TruncHour("received_at"))
        .values_list("hour")
        .annotate(n=Count("id"))
        .order_by()
    )
    for hour, n in rejected_per_hour:
        counts[(hour, REJECTED)] = n

    backlog = Event.objects.filter(IN_FLIGHT).aggregate(
        queued=Count("id", filter=Q(status=Event.Status.QUEUED)),
        claimed=Count("id", filter=Q(status=Event.Status.CLAIMED)),
        retry_wait=Count("id", filter=Q(status=Event.Status.RETRY_WAIT)),
        oldest_at=Min("received_at"),
    )
    oldest = None
    if backlog["oldest_at"] is not None:
        oldest = (
            Event.objects.select_related("shop")
            .filter(IN_FLIGHT, received_at=backlog["oldest_at"])
            .order_by("id")
            .first()
        )
    beats = WorkerHeartbeat.objects.aggregate(
        latest=Max("beat_at"), alive=Count("id", filter=Q(beat_at__gte=now - WORKER_ALIVE_WITHIN))
    )
    latest_beat = beats["latest"]
    failed_today = Event.objects.filter(received_at__gte=day_ago, status=Event.Status.FAILED)
    rejected_last_hour = Delivery.objects.filter(event__isnull=True, received_at__gte=now - timedelta(hours=1)).count()
    rejected_day = sum(n for (_, status), n in counts.items() if status == REJECTED)
    return {
        "chart": _chart(counts, since),
        "totals": {s: sum(n for (_, status), n in counts.items() if status == s) for s in CHART_STATUSES},
        # Where the figures' links start their lists (the event log filters to the minute).
        "window_start": since,
        "hour_ago": (now - timedelta(hours=1)).replace(second=0, microsecond=0),
        "queued": backlog["queued"],
        "claimed": backlog["claimed"],
        "retry_wait": backlog["retry_wait"],
        "oldest_unprocessed": oldest,
        "oldest_age": (now - oldest.received_at) if oldest else None,
        "worker": {
            "beat_at": latest_beat,
            "alive": latest_beat is not None and latest_beat >= now - WORKER_ALIVE_WITHIN,
            "pumps": beats["alive"],
        },
        "failing_topics": list(failed_today.values_list("topic").annotate(n=Count("id")).order_by("-n", "topic")[:5]),
        "failing_shops": list(
            failed_today.values_list("shop__domain").annotate(n=Count("id")).order_by("-n", "shop__domain")[:5]
        ),
        "rejected_last_hour": rejected_last_hour,
        "rejected_spike": rejected_spike(rejected_last_hour, rejected_day),
        "overdue_privacy": list(
            PrivacyRequest.objects.filter(state=PrivacyRequest.State.PENDING, due_at__lt=now)
            .select_related("shop")
            .order_by("due_at")[:10]
        ),
        "outbound": outbound_stats(since),
    }


def outbound_counted(since: datetime) -> Q:
    """Calls the dashboard (and a shop's page) counts: failed since `since`, and every unfinished
    one. An OR of equalities, as IN_FLIGHT, so each branch is an index range: the failures a range
    of int_call_failed_idx (failed calls by created_at), each unfinished status one of
    int_call_status_idx. Never the whole history of calls."""
    return Q(status=CallStatus.FAILED, created_at__gte=since) | functools.reduce(
        operator.or_, (Q(status=status) for status in OutboundCall.ACTIVE)
    )


DRIFT_COUNTED = 1000


def outbound_stats(since: datetime) -> dict[str, Any]:
    """Calls to Shopify, counted apart from inbound webhooks, in two queries: failed since `since`
    and the unfinished ones by status (`outbound_counted`: the figure costs the size of the backlog
    and of the window's failures, not of the history), and the shops whose queue is paused."""
    counts = OutboundCall.objects.filter(outbound_counted(since)).aggregate(
        **{status: Count("id", filter=Q(status=status)) for status in _OUTBOUND_COUNTED}
    )
    paused = list(
        Shop.objects.filter(queue_paused=True)
        .order_by("domain")
        .values_list("domain", flat=True)[: PAUSED_SHOPS_SHOWN + 1]
    )
    # Changes to platform-owned data that came from elsewhere (ownership drift), last 7 days:
    # rare by nature, counted up to DRIFT_COUNTED.
    drift = (
        OwnershipDrift.objects.filter(observed_at__gte=since - timedelta(days=6))
        .order_by()
        .values("id")[:DRIFT_COUNTED]
        .count()
    )
    return {
        **counts,
        "paused_shops": paused[:PAUSED_SHOPS_SHOWN],
        "more_paused_shops": len(paused) > PAUSED_SHOPS_SHOWN,
        "drift": drift,
        "drift_more": drift >= DRIFT_COUNTED,
    }


def rejected_spike(last_hour: int, last_day: int) -> bool:
    """Rejections in the last hour are a spike: at least REJECTED_SPIKE_MIN, and more than
    REJECTED_SPIKE_FACTOR times the hourly rate of the rest of the last 24 hours (a flood of
    unauthenticated posts, or a shop whose secret no longer matches)."""
    usual_per_hour = max(last_day - last_hour, 0) / (CHART_HOURS - 1)
    return last_hour >= REJECTED_SPIKE_MIN and last_hour > REJECTED_SPIKE_FACTOR * usual_per_hour


def _chart(counts: dict[tuple[datetime, str], int], since: datetime) -> dict[str, Any]:
    hours = [since + timedelta(hours=i) for i in range(CHART_HOURS)]
    totals = [sum(counts.get((hour, status), 0) for status in CHART_STATUSES) for hour in hours]
    scale = _CHART_HEIGHT / max(max(totals), 1)
    bars = []
    for i, (hour, total) in enumerate(zip(hours, totals, strict=True)):
        segments, top = [], float(_CHART_HEIGHT)
        for status in CHART_STATUSES:
            n = counts.get((hour, status), 0)
            if n:
                height = max(n * scale, 1.0)
                top = max(top - height, 0.0)
                segments.append(ChartSegment(status, n, round(top, 2), round(height, 2)))
        bars.append(ChartBar(hour, i * _BAR_PITCH + 4, total, segments))
    return {
        "bars": bars,
        "width": CHART_HOURS * _BAR_PITCH,
        "height": _CHART_HEIGHT,
        "bar_width": _BAR_WIDTH,
        "max": max(totals),
        "ticks": [bar for i, bar in enumerate(bars) if i % 6 == 0],
    }
