"""Prometheus metrics: every figure the console exposes at /metrics is defined here.

Two kinds of figure:
- Counts of things processes do (webhooks received, events settled, outbound tries, throttle
  waits, replays, worksheet rows), kept by the official client. Under gunicorn and qcluster the
  console runs as many processes, so with PROMETHEUS_MULTIPROC_DIR set (which must be in the
  environment before anything imports prometheus_client: settings.py puts a value from .env there)
  each process writes its counts to files in that directory and a scrape adds them up
  (`scrape_registry`). Without it (tests, a single `runserver`) they live in this process.
- Figures that are database state (queue depths, oldest ages, paused shops, alerts firing) are
  read from the database at scrape time by `DatabaseCollector`, so every process reports the same
  truth and nothing has to be kept in step.

The functions instrumented code calls (`webhook_received`, `settled`, `outbound_try`, ...) never raise:
metrics must not make the action they count fail. Labels are kept to small, known sets: a topic
is one the console knows (else "other"), a shop is a registered shop's domain (or "unknown").
"""

import functools
import logging
import os
import time
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

logger = logging.getLogger(__name__)

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR" in os.environ
if MULTIPROCESS and not values.ValueClass._multiprocess:
    logger.error(
        "PROMETHEUS_MULTIPROC_DIR is set but prometheus_client was imported before it was: this process's "
        "counts stay in its memory and /metrics will not include them"
    )

UNKNOWN = "unknown"
OTHER = "other"
# Seconds from a webhook's arrival to its event being processed: a healthy pump takes well under a
# second, a retried job minutes to an hour (BACKOFF_CAP_SECONDS), a stopped worker as long as it lasts.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600)
# Seconds the throttle asks a caller to wait: a bucket restores 100 points/s, a Retry-After is seconds.
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

webhooks = Counter(
    "console_webhooks",
    "Webhook requests the receiver answered, by outcome (accepted, duplicate, rejected), topic and shop.",
    ["outcome", "topic", "shop"],
)
webhooks_unavailable = Counter(
    "console_webhooks_unavailable",
    "Webhook requests answered 503 because the database could not store them in time (Shopify retries).",
)
events_settled = Counter(
    "console_events_settled",
    "Events a pump settled, by topic, new status and lane (live, or replay).",
    ["topic", "status", "lane"],
)
event_latency = Histogram(
    "console_event_processing_latency_seconds",
    "Seconds from receiving a webhook to its event being processed (live lane, processed events).",
    ["topic"],
    buckets=LATENCY_BUCKETS,
)
outbound_calls = Counter(
    "console_outbound_calls",
    "Tries of outbound calls to Shopify the senders settled, by operation and class "
    "(succeeded, retryable, non_retryable).",
    ["operation", "class"],
)
throttle_wait = Histogram(
    "console_outbound_throttle_wait_seconds",
    "Each time a shop's rate-limit bucket made a caller wait (no room, or a Retry-After block): the "
    "wait it announced, by lane (live, bulk). A caller that looks again sooner is counted again.",
    ["lane"],
    buckets=WAIT_BUCKETS,
)
replays = Counter(
    "console_replays",
    "Replays by stage reached: requested (run by a person), started (a pump took its first items), finished.",
    ["stage"],
)
replay_items = Counter("console_replay_items_settled", "Replay items settled, by status.", ["status"])
worksheet_rows = Counter("console_worksheet_rows_applied", "Worksheet rows settled by an apply, by result.", ["result"])


# --- never raising ----------------------------------------------------------------------------

_failed: set[str] = set()


def _guarded(func: Callable) -> Callable:
    """A metric that cannot be counted is logged (once per process and function) and forgotten."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs) -> None:
        try:
            func(*args, **kwargs)
        except Exception:
            if func.__name__ not in _failed:
                _failed.add(func.__name__)
                logger.exception("metrics: %s could not count (further failures of it are not logged)", func.__name__)

    return wrapper


def _after_commit(count: Callable[[], None]) -> None:
    """Count once the current transaction commits (at once outside one): work rolled back and run
    again is counted once."""
    transaction.on_commit(_guarded(count))


@functools.cache
def _known_topics() -> frozenset[str]:
    from integrations.eventlog.filters import COMMON_TOPICS
    from integrations.jobs.registry import TOPIC_JOBS

    return frozenset(COMMON_TOPICS) | frozenset(TOPIC_JOBS)


def topic_label(topic: str) -> str:
    return topic if topic in _known_topics() else OTHER


def shop_label(domain: str | None) -> str:
    if not settings.METRICS_SHOP_LABEL:
        return "all"
    return domain or UNKNOWN


# --- what instrumented code calls -------------------------------------------------------------


@_guarded
def webhook_received(outcome: str, topic: str, shop_domain: str | None) -> None:
    """`shop_domain`: only for a shop the console knows (anyone can post any domain)."""
    webhooks.labels(outcome, topic_label(topic), shop_label(shop_domain)).inc()


@_guarded
def webhook_unavailable() -> None:
    webhooks_unavailable.inc()


@_guarded
def settled(outcomes: Iterable, *, replay: bool) -> None:
    """Committed outcomes of a pump batch (`integrations.processing.runner.Outcome`)."""
    now = timezone.now()
    lane = "replay" if replay else "live"
    for outcome in outcomes:
        topic = topic_label(outcome.event.topic)
        events_settled.labels(topic, outcome.status, lane).inc()
        if not replay and outcome.status == "processed":
            event_latency.labels(topic).observe(max((now - outcome.event.received_at).total_seconds(), 0.0))


@_guarded
def outbound_try(operation: str, verdict) -> None:
    """A settled try of an outbound call (`integrations.outbound.classify.Verdict`)."""
    kind = "succeeded" if verdict.succeeded else (verdict.classification or "non_retryable")
    outbound_calls.labels(operation, kind).inc()


@_guarded
def throttle_waited(seconds: float, *, bulk: bool) -> None:
    if seconds > 0:
        throttle_wait.labels("bulk" if bulk else "live").observe(seconds)


@_guarded
def replay_stage(stage: str, count: int = 1) -> None:
    if count:
        _after_commit(lambda: replays.labels(stage).inc(count))


@_guarded
def replay_items_settled(statuses: Iterable[str]) -> None:
    statuses = list(statuses)

    def count() -> None:
        for status in statuses:
            replay_items.labels(status).inc()

    _after_commit(count)


@_guarded
def worksheet_row_settled(result: str) -> None:
    _after_commit(lambda: worksheet_rows.labels(result).inc())


# --- database state, read at scrape time ------------------------------------------------------

SCRAPE_DB_SECONDS = 2.0


class DatabaseCollector:
    """Gauges read from the database on each scrape: a few aggregate queries, each served by a
    (partial) index, so a scrape costs the size of the backlog, never of the history. If the
    database does not answer, console_metrics_database_ok is 0 and the rest is left out."""

    def describe(self):
        return []  # nothing is read at registration

    def collect(self):
        ok = GaugeMetricFamily(
            "console_metrics_database_ok",
            "1 when this scrape read every database figure; 0 when the database did not answer (or a figure "
            "failed: logged), and they are left out.",
        )
        try:
            families = list(self._read())
        except DatabaseError:
            logger.warning("metrics: the database did not answer a scrape", exc_info=True)
            families = None
        except Exception:
            logger.exception("metrics: reading the database figures failed")
            families = None
        ok.add_metric([], 0 if families is None else 1)
        yield ok
        yield from families or []

    def _read(self):
        from integrations.inbound.storage import receiver_time_limit

        with receiver_time_limit(time.perf_counter() + SCRAPE_DB_SECONDS):
            yield from _event_queue()
            yield from _outbound_queue()
            yield from _replay_and_shops()
            yield from _alerts_firing()
        yield from _task_queue()


def _age(now, since) -> float:
    return max((now - since).total_seconds(), 0.0) if since is not None else 0.0


def _event_queue():
    from django.db.models import Count, Q

    from integrations.eventlog.dashboard import IN_FLIGHT
    from integrations.models import Event
    from integrations.processing.claims import oldest_queued_at

    Status = Event.Status
    statuses = (Status.QUEUED, Status.CLAIMED, Status.RETRY_WAIT)
    counts = Event.objects.filter(IN_FLIGHT).aggregate(
        **{status.value: Count("id", filter=Q(status=status)) for status in statuses}
    )
    depth = GaugeMetricFamily(
        "console_event_queue_depth",
        "Events not finished, by status (queued: waiting for a pump; claimed: being run; retry_wait).",
        labels=["status"],
    )
    for status in statuses:
        depth.add_metric([status.value], counts[status.value])
    oldest = GaugeMetricFamily(
        "console_event_queue_oldest_age_seconds", "Age of the oldest queued event (0 when none is queued)."
    )
    now = timezone.now()
    oldest.add_metric([], _age(now, oldest_queued_at()))
    return [depth, oldest]


def _outbound_queue():
    from django.db.models import Count, Min, Q
    from django.db.models.functions import Coalesce

    from integrations.models import OutboundCall

    Status = OutboundCall.Status
    now = timezone.now()
    due = Q(status__in=[Status.QUEUED, Status.WAITING]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    figures = OutboundCall.objects.filter(status__in=OutboundCall.ACTIVE).aggregate(
        **{status.value: Count("id", filter=Q(status=status)) for status in OutboundCall.ACTIVE},
        due=Count("id", filter=due),
        due_since=Min(Coalesce("next_attempt_at", "created_at"), filter=due),
    )
    depth = GaugeMetricFamily(
        "console_outbound_queue_depth", "Outbound calls not finished, by status.", labels=["status"]
    )
    for status in OutboundCall.ACTIVE:
        depth.add_metric([status.value], figures[status.value])
    due_calls = GaugeMetricFamily(
        "console_outbound_due_calls", "Outbound calls due to be sent now (queued, or waiting whose retry is due)."
    )
    due_calls.add_metric([], figures["due"])
    oldest = GaugeMetricFamily(
        "console_outbound_oldest_due_age_seconds",
        "How long the longest-due outbound call has been due (0 when none is due).",
    )
    oldest.add_metric([], _age(now, figures["due_since"]))
    return [depth, due_calls, oldest]


def _replay_and_shops():
    from django.db.models import Count, Max, Q

    from integrations.eventlog.dashboard import WORKER_ALIVE_WITHIN
    from integrations.models import ReplayItem, Shop, WorkerHeartbeat

    now = timezone.now()
    pending = GaugeMetricFamily("console_replay_items_pending", "Replay items waiting to be run.")
    pending.add_metric([], ReplayItem.objects.filter(status=ReplayItem.Status.PENDING).count())
    paused = GaugeMetricFamily("console_shops_paused", "Shops whose outbound queue is paused.")
    paused.add_metric([], Shop.objects.filter(queue_paused=True).count())
    beats = WorkerHeartbeat.objects.aggregate(
        latest=Max("beat_at"), alive=Count("id", filter=Q(beat_at__gte=now - WORKER_ALIVE_WITHIN))
    )
    alive = GaugeMetricFamily(
        "console_event_pumps_alive",
        f"Event pumps whose heartbeat is younger than {WORKER_ALIVE_WITHIN.total_seconds():.0f} s.",
    )
    alive.add_metric([], beats["alive"])
    families = [pending, paused, alive]
    if beats["latest"] is not None:
        age = GaugeMetricFamily(
            "console_event_pump_heartbeat_age_seconds", "Seconds since the most recent event pump heartbeat."
        )
        age.add_metric([], _age(now, beats["latest"]))
        families.append(age)
    return families


def _task_queue():
    from django_q.brokers import get_broker

    try:
        size = get_broker().queue_size()
    except Exception:  # a broker outage leaves the figure out, never fails the scrape
        logger.warning("metrics: the task queue broker did not answer", exc_info=True)
        return []
    depth = GaugeMetricFamily("console_task_queue_depth", "Tasks waiting in django-q2's broker.")
    depth.add_metric([], size or 0)
    return [depth]


def _alerts_firing():
    """Alerts firing now, by rule: served by the one-firing-per-(rule, subject) partial unique
    index. Left out while the alerts app (console.alerts) is not installed."""
    from django.apps import apps
    from django.db.models import Count

    if not apps.is_installed("console.alerts"):
        return []
    Alert = apps.get_model("alerts", "Alert")
    counts = Alert.objects.filter(status=Alert.Status.FIRING).values_list("rule").annotate(n=Count("id")).order_by()
    firing = GaugeMetricFamily("console_alerts_firing", "Alerts firing now, by rule.", labels=["rule"])
    for rule, n in sorted(counts):
        firing.add_metric([rule], n)
    return [firing]


database_collector = DatabaseCollector()


def scrape_registry() -> CollectorRegistry:
    """What one scrape exposes: every process's counts (from PROMETHEUS_MULTIPROC_DIR's files in
    multiprocess mode, else this process's own registry) and the database figures."""
    registry = CollectorRegistry()
    if MULTIPROCESS:
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(database_collector)
    return registry
