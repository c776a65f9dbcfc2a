"""What the event log lists: the filter form, the queryset it builds, CSV rows and saved views.

Every filter and search maps to an equality or range lookup that one of the Event/Delivery indexes
serves (see their Meta.indexes), and pages are keyset ranges on the primary key, so the log stays
fast at millions of rows: no COUNT(*) of the table, no OFFSET, no substring search.

Rows come in kinds. Today there are inbound Events and rejected inbound Deliveries (requests that
never became an Event); outbound calls to Shopify will be a third kind with their own queryset and
row template, told apart by `LogQuery.kind` and the direction badge.
"""

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.db import IntegrityError, transaction
from django.db.models import Count, Min, Prefetch, Q, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from integrations.models import (
    Delivery,
    Event,
    Job,
    PrivacyRequest,
    SavedView,
    Shop,
    WorkerHeartbeat,
    webhook_id_match,
)
from integrations.tasks import PUMP
from integrations.trace import traced_events

INBOUND = "inbound"
OUTBOUND = "outbound"
REJECTED = "rejected"
# Row kinds, each with its own template: "_<kind>_row.html".
KIND_EVENTS = "events"
KIND_REJECTED = "rejected"
KIND_OUTBOUND = "outbound"

EXPORT_MAX_ROWS = 100_000
POLL_MAX_ROWS = 100

# Suggestions for the topic box; any topic can be typed. A DISTINCT over the table would be slow.
COMMON_TOPICS = [
    "app/uninstalled",
    "customers/create",
    "customers/data_request",
    "customers/redact",
    "customers/update",
    "fulfillments/create",
    "inventory_levels/update",
    "orders/cancelled",
    "orders/create",
    "orders/fulfilled",
    "orders/paid",
    "orders/updated",
    "products/create",
    "products/delete",
    "products/update",
    "refunds/create",
    "shop/redact",
]

_NUMERIC = re.compile(r"^#?(\d{1,20})$")


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class EventFilterForm(forms.Form):
    """The event log's filters. All optional; invalid values are reported and the rest still apply."""

    q = forms.CharField(
        required=False,
        max_length=255,
        label="Search",
        widget=forms.TextInput(
            attrs={"placeholder": "webhook id, event id, #1042, resource id or gid", "type": "search"}
        ),
    )
    shop = forms.ModelChoiceField(
        queryset=Shop.objects.order_by("domain"), required=False, empty_label="All shops", to_field_name="domain"
    )
    direction = forms.ChoiceField(
        required=False,
        choices=[("", "All directions"), (INBOUND, "Inbound"), (OUTBOUND, "Outbound (none recorded yet)")],
    )
    topic = forms.CharField(
        required=False, max_length=100, widget=forms.TextInput(attrs={"list": "topic-list", "placeholder": "any"})
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), *Event.Status.choices, (REJECTED, "Rejected (never became an event)")],
    )
    received_from = forms.DateTimeField(required=False, label="Received from", widget=DateTimeLocalInput())
    received_to = forms.DateTimeField(required=False, label="Received before", widget=DateTimeLocalInput())

    def clean_topic(self) -> str:
        return self.cleaned_data["topic"].strip()

    def clean_q(self) -> str:
        return self.cleaned_data["q"].strip()

    def filters(self) -> dict[str, Any]:
        """Cleaned values of the fields that validated; an invalid field is simply not applied."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}

    def query_string(self) -> str:
        """The applied filters as a query string: for links, the live poll and saved views."""
        params = {}
        for name, value in self.filters().items():
            if isinstance(value, Shop):
                value = value.domain
            elif isinstance(value, datetime):
                value = self.fields[name].widget.format_value(value)
            params[name] = value
        return urlencode(params)


@dataclass
class LogQuery:
    """What the log shows for a set of filters: which kind of row, and the queryset (newest first by id)."""

    kind: str
    queryset: QuerySet

    @property
    def row_template(self) -> str:
        return f"integrations/events/_{self.kind}_row.html"


def build_log_query(filters: dict[str, Any]) -> LogQuery:
    """The queryset for the event log's filters (as returned by `EventFilterForm.filters`)."""
    if filters.get("direction") == OUTBOUND:
        # Outbound calls are not recorded yet; when they are, their queryset goes here.
        return LogQuery(KIND_OUTBOUND, Event.objects.none())
    if filters.get("status") == REJECTED:
        return LogQuery(KIND_REJECTED, _rejected_deliveries(filters))
    return LogQuery(KIND_EVENTS, _events(filters))


def _events(filters: dict[str, Any]) -> QuerySet[Event]:
    events = Event.objects.select_related("shop", "assignee")
    if shop := filters.get("shop"):
        events = events.filter(shop=shop)
    if status := filters.get("status"):
        events = events.filter(status=status)
    if q := filters.get("q"):
        events = events.filter(event_search(q))
    return _topic_and_time(events, filters)


def _topic_and_time(queryset: QuerySet, filters: dict[str, Any]) -> QuerySet:
    """The filters events and rejected deliveries share: the same columns on both."""
    if topic := filters.get("topic"):
        queryset = queryset.filter(topic=topic)
    if start := filters.get("received_from"):
        queryset = queryset.filter(received_at__gte=start)
    if end := filters.get("received_to"):
        queryset = queryset.filter(received_at__lt=end)
    return queryset


def event_search(q: str) -> Q:
    """One search box, several identifiers; each branch is an indexed equality, never a scan.

    "#1042" is an order name; a bare number may be an order number, a resource id or our event
    id; "gid://…" is a resource gid; anything else is a webhook id, Shopify event id or a
    resource label such as a custom order name.
    """
    if q.startswith("gid://"):
        return Q(resource_gid=q)
    number = _NUMERIC.match(q)
    if number and q.startswith("#"):
        return Q(resource_label=q)
    if number:
        digits = number.group(1)
        match = Q(resource_id=digits) | Q(resource_label=f"#{digits}") | Q(event_id=digits)
        if int(digits) < 2**63:
            match |= Q(pk=int(digits))
        return match
    return webhook_id_match(q) | Q(event_id=q) | Q(resource_label=q)


def _rejected_deliveries(filters: dict[str, Any]) -> QuerySet[Delivery]:
    # The body can be megabytes and is never shown in the list; the headers are for the detail page.
    deliveries = Delivery.objects.filter(event__isnull=True).defer("body", "headers")
    if shop := filters.get("shop"):
        deliveries = deliveries.filter(shop_domain=shop.domain)
    if q := filters.get("q"):
        match = Q(webhook_id=q)
        if q.isdigit() and int(q) < 2**63:
            match |= Q(pk=int(q))
        deliveries = deliveries.filter(match)
    return _topic_and_time(deliveries, filters)


def newer_rows(log: LogQuery, after: int) -> list:
    """Rows added since id `after`, newest first, for the live poll.

    Takes the oldest POLL_MAX_ROWS above `after`, so a burst is delivered over several polls
    rather than leaving a gap between what was shown and what comes next.
    """
    rows = list(log.queryset.filter(pk__gt=after).order_by("pk")[:POLL_MAX_ROWS])
    rows.reverse()
    return rows


# --- CSV export -----------------------------------------------------------------------------

EVENT_COLUMNS = [
    ("id", "id"),
    ("direction", None),
    ("received_at", "received_at"),
    ("shop", "shop__domain"),
    ("topic", "topic"),
    ("webhook_id", "webhook_id"),
    ("shopify_event_id", "event_id"),
    ("resource", "resource_label"),
    ("resource_id", "resource_id"),
    ("resource_gid", "resource_gid"),
    ("status", "status"),
    ("status_reason", "status_reason"),
    ("deliveries", "delivery_count"),
    ("processed", "processed_count"),
    ("triage", "triage_state"),
    ("assignee", "assignee__username"),
    ("tags", "tags"),
]
REJECTED_COLUMNS = [
    ("id", "id"),
    ("direction", None),
    ("received_at", "received_at"),
    ("shop", "shop_domain"),
    ("topic", "topic"),
    ("webhook_id", "webhook_id"),
    ("status", None),
    ("outcome", "outcome"),
    ("response_status", "response_status"),
    ("signature_valid", "signature_valid"),
    ("reason", "reason"),
    ("source_ip", "source_ip"),
]


def export_rows(log: LogQuery, *, limit: int | None = None) -> Iterator[list]:
    """Header, then up to `limit` (default EXPORT_MAX_ROWS) rows streamed from the database, then a
    comment line if capped."""
    limit = EXPORT_MAX_ROWS if limit is None else limit
    columns = REJECTED_COLUMNS if log.kind == KIND_REJECTED else EVENT_COLUMNS
    yield [name for name, _ in columns]
    fields = [field for _, field in columns if field]
    values = log.queryset.order_by("-pk").values_list(*fields)[: limit + 1]
    for n, row in enumerate(values.iterator(chunk_size=2000)):
        if n == limit:
            yield [f"# capped at {limit} rows: narrow the filters to export the rest"]
            return
        by_field = dict(zip(fields, row, strict=True))
        out = []
        for name, field in columns:
            if field is None:
                out.append(INBOUND if name == "direction" else REJECTED)
            else:
                out.append(_csv_cell(by_field[field]))
        yield out


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    # Topic, shop and reason of a rejected request come from whoever sent it: keep spreadsheets
    # from running them as formulas.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


# --- Saved views ----------------------------------------------------------------------------


def save_view(*, user, name: str, query: str) -> SavedView:
    """Keep the filter `query` under `name` for `user`; saving an existing name replaces its filter."""
    name = name.strip()[:80]
    try:
        with transaction.atomic():
            view, _ = SavedView.objects.update_or_create(user=user, name=name, defaults={"query": query[:1000]})
    except IntegrityError:
        # The same user saved the same name twice at once: the other request's row stands.
        view = SavedView.objects.get(user=user, name=name)
    return view


def delete_view(*, user, view_id: int) -> bool:
    """Delete one of `user`'s saved views. False when it is not theirs or already gone."""
    deleted, _ = SavedView.objects.filter(pk=view_id, user=user).delete()
    return bool(deleted)


# --- Event detail ---------------------------------------------------------------------------

PAYLOAD_DISPLAY_LIMIT = 256 * 1024


def events_for_detail() -> QuerySet[Event]:
    """Events with everything the detail page and `trace_event` read, in a fixed number of queries."""
    return (
        traced_events()
        .select_related("assignee")
        .prefetch_related(
            Prefetch(
                "deliveries", queryset=Delivery.objects.defer("body").order_by("id"), to_attr="timeline_deliveries"
            )
        )
    )


@dataclass
class TimelineEntry:
    at: datetime
    kind: str  # delivery | rejected | attempt | processed
    item: Any = None
    job: Job | None = None
    number: int = 0  # deliveries: 1 for the first request, 2 for the first retry...


def timeline(event: Event) -> list[TimelineEntry]:
    """Deliveries (including requests with this webhook id that were rejected), job attempts and the
    last successful processing, oldest first. `event` must come from `events_for_detail()`."""
    rejected = Delivery.objects.filter(
        webhook_id=event.webhook_id, event__isnull=True, shop_domain=event.shop.domain
    ).defer("body")[:20]
    entries = [
        TimelineEntry(d.received_at, "delivery", d, number=n) for n, d in enumerate(event.timeline_deliveries, start=1)
    ]
    entries += [TimelineEntry(d.received_at, "rejected", d) for d in rejected]
    for job in event.traced_jobs:
        entries += [TimelineEntry(a.started_at, "attempt", a, job) for a in job.attempts.all()]
    if event.processed_at:
        entries.append(TimelineEntry(event.processed_at, "processed", event))
    order = {"rejected": 0, "delivery": 1, "attempt": 2, "processed": 3}
    return sorted(entries, key=lambda e: (e.at, order[e.kind], getattr(e.item, "pk", 0)))


@dataclass
class Payload:
    kind: str  # json | text | none
    text: str = ""
    size: int = 0
    truncated: bool = False


def payload_of(event: Event) -> Payload:
    """The body Shopify sent for the event (every delivery of one webhook carries the same body)."""
    body = (
        Delivery.objects.filter(event=event, body__isnull=False).order_by("id").values_list("body", flat=True).first()
    )
    return render_payload(body)


def render_payload(body: bytes | memoryview | None) -> Payload:
    """Pretty JSON when the body parses, else the text as received. Escaped by the template, always."""
    if body is None:
        return Payload("none")
    raw = bytes(body)
    try:
        text = json.dumps(json.loads(raw), indent=2, sort_keys=True, ensure_ascii=False)
        kind = "json"
    except (ValueError, RecursionError):
        text, kind = raw.decode("utf-8", errors="replace"), "text"
    truncated = len(text) > PAYLOAD_DISPLAY_LIMIT
    return Payload(kind, text[:PAYLOAD_DISPLAY_LIMIT], len(raw), truncated)


def related_events(event: Event, limit: int = 20) -> list[Event]:
    """Other events about the same resource (same shop and gid), newest first."""
    if not event.resource_gid:
        return []
    return list(
        Event.objects.filter(shop_id=event.shop_id, resource_gid=event.resource_gid)
        .exclude(pk=event.pk)
        .order_by("-id")[:limit]
    )


# --- Dashboard ------------------------------------------------------------------------------

WORKER_ALIVE_WITHIN = timedelta(seconds=90)
CHART_HOURS = 24
# Bottom to top in each bar; "rejected" are Deliveries that never became an Event.
CHART_STATUSES = ["processed", "ignored", "queued", "processing", "failed", REJECTED]
_BAR_PITCH, _BAR_WIDTH, _CHART_HEIGHT = 40, 32, 100


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


# Events not yet processed. An OR, not status__in: PostgreSQL combines the two partial indexes
# (queued; not queued) for an OR, while `status = ANY(...)` is implied by neither and would scan
# the whole log.
IN_FLIGHT = Q(status=Event.Status.QUEUED) | Q(status=Event.Status.PROCESSING)


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
        processing=Count("id", filter=Q(status=Event.Status.PROCESSING)),
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
    heartbeat = WorkerHeartbeat.objects.filter(name=PUMP).first()
    failed_today = Event.objects.filter(received_at__gte=day_ago, status=Event.Status.FAILED)
    return {
        "chart": _chart(counts, since),
        "totals": {s: sum(n for (_, status), n in counts.items() if status == s) for s in CHART_STATUSES},
        "queued": backlog["queued"],
        "processing": backlog["processing"],
        "oldest_unprocessed": oldest,
        "oldest_age": (now - oldest.received_at) if oldest else None,
        "worker": {
            "beat_at": heartbeat.beat_at if heartbeat else None,
            "alive": heartbeat is not None and heartbeat.beat_at >= now - WORKER_ALIVE_WITHIN,
        },
        "failing_topics": list(failed_today.values_list("topic").annotate(n=Count("id")).order_by("-n", "topic")[:5]),
        "failing_shops": list(
            failed_today.values_list("shop__domain").annotate(n=Count("id")).order_by("-n", "shop__domain")[:5]
        ),
        "rejected_last_hour": Delivery.objects.filter(
            event__isnull=True, received_at__gte=now - timedelta(hours=1)
        ).count(),
        "overdue_privacy": list(
            PrivacyRequest.objects.filter(state=PrivacyRequest.State.PENDING, due_at__lt=now)
            .select_related("shop")
            .order_by("due_at")[:10]
        ),
    }


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
