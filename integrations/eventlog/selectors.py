"""What the event log lists and shows: the queryset for a set of filters, search, the live poll,
and the event page's timeline, payload and related events.

Every filter and search maps to an equality or range lookup that one of the Event/Delivery indexes
serves (see their Meta.indexes), and pages are keyset ranges on the primary key, so the log stays
fast at millions of rows: no COUNT(*) of the table, no OFFSET, no substring search.

Rows come in kinds. Today there are inbound Events and rejected inbound Deliveries (requests that
never became an Event); outbound calls to Shopify will be a third kind with their own queryset and
row template, told apart by `LogQuery.kind` and the direction badge.
"""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from integrations.eventlog.filters import (
    _NUMERIC,
    KIND_EVENTS,
    KIND_OUTBOUND,
    KIND_REJECTED,
    OUTBOUND,
    POLL_MAX_ROWS,
    REJECTED,
)
from integrations.eventlog.trace import traced_events
from integrations.models import Delivery, Event, Job, webhook_id_match


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
