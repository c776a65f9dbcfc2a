"""What the event log lists and shows: the queryset for a set of filters, search, the live poll,
and the event page's timeline, payload and related events.

Every filter and search maps to an equality or range lookup that one of the Event/Delivery indexes
serves (see their Meta.indexes), and pages are keyset ranges on the primary key, so the log stays
fast at millions of rows: no COUNT(*) of the table, no OFFSET, no substring search. A prefix (of a
webhook id or a topic) is a range on the column's index too (`prefix_match`).

Rows come in kinds: inbound Events, rejected inbound Deliveries (requests that never became an
Event) and outbound calls to Shopify (OutboundCall), each with its own queryset and row template,
told apart by `LogQuery.kind` and the direction badge. Calls are searched and filtered the same
way, on their own indexes: (shop, target_gid, id), (target_label, -id), (operation, -id),
(status, -id), (shop, -id) and the unique (shop, idempotency_key).

"All directions" (KIND_MIXED) lists events and calls together, newest first by time
(Event.received_at, OutboundCall.created_at). Each kind is its own stream, paged by a keyset on
(time, id) that int_event_received_idx and int_call_created_idx serve: a page reads at most
page size + 1 rows of each and merges them in Python (`mixed_page`), and its cursor holds the
position reached in each stream (`MixedCursor`). No UNION: each stream keeps its own indexes.

The call page and the pages that mention calls (an event's echo, a shop's queue) read calls here too.
"""

import heapq
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import BadRequest
from django.db.models import Count, Prefetch, Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from integrations.eventlog.dashboard import outbound_counted
from integrations.eventlog.filters import (
    _NUMERIC,
    INBOUND,
    KIND_EVENTS,
    KIND_MIXED,
    KIND_OUTBOUND,
    KIND_REJECTED,
    MAX_ID,
    MIN_WEBHOOK_PREFIX,
    OUTBOUND,
    POLL_MAX_ROWS,
    REJECTED,
    implied_kind,
)
from integrations.eventlog.trace import STALE_PREFIX, JobResult, describe_result, traced_events
from integrations.models import (
    Attempt,
    Delivery,
    Event,
    Job,
    OutboundAttempt,
    OutboundCall,
    Shop,
    webhook_id_match,
)

# Above any character a webhook id or topic holds: `p <= value < p + TOP` is "starts with p".
TOP = "\U0010ffff"
# Rows shown per kind in "also with this webhook id"; a link lists the rest.
ALSO_MAX_ROWS = 20
# A bare number may be a call id or the id in the gid of the record a call changes: one exact
# probe per resource type our operations write (inventory levels have compound gids: search those by gid).
CALL_GID_TYPES = ("Order", "Product", "Customer")
# Calls for the same record listed on an event's page.
CALLS_FOR_RECORD = 5
# Echoes listed on a call's page (a call normally has one).
ECHOES_SHOWN = 20
_WEBHOOK_ID_COLUMN = Event._meta.get_field("webhook_id").max_length


# The time each kind of row is listed by in the list of both directions (each column indexed).
TIME_FIELD = {KIND_EVENTS: "received_at", KIND_OUTBOUND: "created_at"}
# Row template of each kind in the list of both directions: the events' columns (a call's own
# list has more).
MIXED_ROW_TEMPLATE = {
    KIND_EVENTS: "integrations/events/_events_row.html",
    KIND_OUTBOUND: "integrations/events/_outbound_mixed_row.html",
}
PAGE_SIZE = 50


@dataclass
class LogQuery:
    """What the log shows for a set of filters: which kind of row, and the queryset (newest first
    by id). For both directions (KIND_MIXED), `queryset` holds the events and `calls` the calls,
    each listed newest first by time."""

    kind: str
    queryset: QuerySet
    # Rows with the searched webhook id that the status filter leaves out (rejected requests
    # under "Any", events in another status): a webhook id finds its deliveries whatever the
    # status filter. Shown above the main rows, ALSO_MAX_ROWS of each.
    also: list["LogQuery"] = field(default_factory=list)
    calls: QuerySet | None = None

    @property
    def row_template(self) -> str:
        return f"integrations/events/_{self.kind}_row.html"

    @property
    def columns(self) -> int:
        """Columns of the kind's table (for cells that span a row)."""
        return {KIND_OUTBOUND: 11, KIND_REJECTED: 8}.get(self.kind, 9)

    @property
    def streams(self) -> list[tuple[str, QuerySet]]:
        """(kind, queryset) of each kind of row the list shows."""
        if self.kind == KIND_MIXED:
            return [(KIND_EVENTS, self.queryset), (KIND_OUTBOUND, self.calls)]
        return [(self.kind, self.queryset)]


def build_log_query(filters: dict[str, Any], *, with_calls: bool = True) -> LogQuery:
    """The queryset for the event log's filters (as returned by `EventFilterForm.filters`).

    With no direction chosen, events and calls are listed together unless a filter only one kind
    has picks that kind (`filters.implied_kind`). Without `with_calls` (the user may not see
    calls) "All directions" lists the inbound rows only; a filter only calls have still lists
    calls, for the view to refuse.
    """
    direction = filters.get("direction", "")
    kind = {OUTBOUND: KIND_OUTBOUND, INBOUND: KIND_EVENTS}.get(direction) or implied_kind(filters)
    if kind != KIND_OUTBOUND and filters.get("status") == REJECTED:
        kind = KIND_REJECTED
    elif kind is None:
        kind = KIND_MIXED if with_calls else KIND_EVENTS
    if kind == KIND_OUTBOUND:
        return LogQuery(KIND_OUTBOUND, _calls(filters))
    q = filters.get("q", "")
    shop_ids = _shop_ids() if q and may_be_webhook_id(q) else None
    if kind == KIND_REJECTED:
        log = LogQuery(KIND_REJECTED, _rejected_deliveries(filters))
    elif kind == KIND_MIXED:
        log = LogQuery(KIND_MIXED, _events(filters, shop_ids), calls=_calls(filters, shop_ids))
    else:
        log = LogQuery(KIND_EVENTS, _events(filters, shop_ids))
    if shop_ids is not None:
        log.also = _same_webhook_elsewhere(filters, shop_ids)
    return log


def _events(filters: dict[str, Any], shop_ids: list[int] | None = None) -> QuerySet[Event]:
    events = Event.objects.select_related("shop", "assignee")
    if shop := filters.get("shop"):
        events = events.filter(shop=shop)
    if status := filters.get("status"):
        events = events.filter(status=status)
    if q := filters.get("q"):
        events = events.filter(event_search(q, shop_ids))
    return _topic_and_time(events, filters)


def _calls(filters: dict[str, Any], shop_ids: list[int] | None = None) -> QuerySet[OutboundCall]:
    """Outbound calls for the log's filters: the shop and its paused flag joined, the (possibly
    large) input and result left for the call page. `shop_ids`: every shop's id, when the caller
    has them already (a search probes the per-shop indexes)."""
    calls = OutboundCall.objects.select_related("shop").defer("input", "result")
    shop = filters.get("shop")
    if shop:
        calls = calls.filter(shop=shop)
    if status := filters.get("status"):
        calls = calls.filter(status=status)
    if operation := filters.get("topic"):
        # An operation or its beginning: "order" lists every order.… operation.
        calls = calls.filter(prefix_match("operation", operation))
    if start := filters.get("received_from"):
        calls = calls.filter(created_at__gte=start)
    if end := filters.get("received_to"):
        calls = calls.filter(created_at__lt=end)
    if q := filters.get("q"):
        calls = calls.filter(call_search(q, [shop.pk] if shop else shop_ids))
    return calls


def call_search(q: str, shop_ids: list[int] | None = None) -> Q:
    """One search box for calls; each branch an exact match on an indexed column, never a scan.

    "gid://…" is the record's gid; "#1001" its order name (label); a bare number a call id, an
    order name without "#", or the id in an Order/Product/Customer gid; anything else an operation
    name, a label (SKU, title) or an idempotency key. Gids and keys are probed per shop, as their
    indexes lead with the shop.
    """
    number = _NUMERIC.match(q)
    if number and q.startswith("#"):
        return Q(target_label=q)
    ids = _shop_ids() if shop_ids is None else shop_ids
    if q.startswith("gid://"):
        return Q(shop_id__in=ids, target_gid=q)
    if number:
        digits = number.group(1)
        gids = [f"gid://shopify/{kind}/{digits}" for kind in CALL_GID_TYPES]
        match = Q(target_label=f"#{digits}") | Q(target_label=digits) | Q(shop_id__in=ids, target_gid__in=gids)
        if int(digits) <= MAX_ID:
            match |= Q(pk=int(digits))
        return match
    return Q(operation=q) | Q(target_label=q) | Q(shop_id__in=ids, idempotency_key=q)


def _same_webhook_elsewhere(filters: dict[str, Any], shop_ids: list[int]) -> list[LogQuery]:
    """What the status filter hides that has the searched webhook id (the other filters still apply)."""
    q, status = filters["q"], filters.get("status")
    unfiltered = {name: value for name, value in filters.items() if name != "status"}
    also = []
    if status != REJECTED:
        also.append(LogQuery(KIND_REJECTED, _rejected_deliveries(unfiltered, webhook_only=True)))
    if status:
        events = Event.objects.select_related("shop", "assignee").filter(webhook_search(q, shop_ids))
        if shop := filters.get("shop"):
            events = events.filter(shop=shop)
        if status != REJECTED:
            events = events.exclude(status=status)
        also.append(LogQuery(KIND_EVENTS, _topic_and_time(events, filters)))
    return also


def prefix_match(field_name: str, prefix: str) -> Q:
    """`field_name` starts with `prefix`, as a range the column's ordinary btree index serves.

    `startswith` alone is LIKE 'p%', which PostgreSQL takes to a btree index only in the "C"
    collation or with a *_pattern_ops operator class, and SQLite only under case_sensitive_like;
    `>= p AND < p || U+10FFFF` is served by the existing indexes wherever strings sort by code
    point (PostgreSQL's C and C.UTF-8, SQLite's BINARY). The startswith stays as a filter on the
    rows in that range, so a collation that sorts otherwise can never show a row that does not
    start with `prefix`.
    """
    return Q(**{f"{field_name}__gte": prefix, f"{field_name}__lt": prefix + TOP, f"{field_name}__startswith": prefix})


def may_be_webhook_id(q: str) -> bool:
    """Whether the search text could be (the start of) an X-Shopify-Webhook-Id."""
    return not q.startswith(("#", "gid://"))


def webhook_search(q: str, shop_ids: list[int] | None = None) -> Q:
    """Events whose webhook id is `q`, or starts with it when `q` has MIN_WEBHOOK_PREFIX characters
    or more, in any shop: one probe (or range) per shop in the unique (shop, webhook_id) index."""
    if len(q) > _WEBHOOK_ID_COLUMN:
        # Longer than the column: stored in a form of its own, which webhook_id_match knows.
        return webhook_id_match(q)
    ids = _shop_ids() if shop_ids is None else shop_ids
    if len(q) >= MIN_WEBHOOK_PREFIX:
        return Q(shop_id__in=ids) & prefix_match("webhook_id", q)
    return Q(shop_id__in=ids, webhook_id=q)


def _shop_ids() -> list[int]:
    # Shops are few; naming them all lets the unique (shop, webhook_id) index serve a search
    # without an index on webhook_id alone, which would cost the receiver an insert per webhook.
    return list(Shop.objects.values_list("id", flat=True))


def _topic_and_time(queryset: QuerySet, filters: dict[str, Any]) -> QuerySet:
    """The filters events and rejected deliveries share: the same columns on both."""
    if topic := filters.get("topic"):
        # A topic or its beginning: "orders" lists every orders/... topic.
        queryset = queryset.filter(prefix_match("topic", topic))
    if start := filters.get("received_from"):
        queryset = queryset.filter(received_at__gte=start)
    if end := filters.get("received_to"):
        queryset = queryset.filter(received_at__lt=end)
    return queryset


def event_search(q: str, shop_ids: list[int] | None = None) -> Q:
    """One search box, several identifiers; each branch is an indexed equality or prefix range,
    never a scan.

    "#1042" is an order name; a bare number may be an order number, a resource id, our event id
    or (the start of) a webhook id; "gid://…" is a resource gid; anything else is a webhook id (or
    its first MIN_WEBHOOK_PREFIX characters or more), Shopify event id or a resource label such as
    a custom order name. Only ASCII digits make a number.
    """
    if q.startswith("gid://"):
        return Q(resource_gid=q)
    number = _NUMERIC.match(q)
    if number and q.startswith("#"):
        return Q(resource_label=q)
    if number:
        digits = number.group(1)
        match = Q(resource_id=digits) | Q(resource_label=f"#{digits}") | Q(event_id=digits)
        match |= webhook_search(q, shop_ids)
        if int(digits) <= MAX_ID:
            match |= Q(pk=int(digits))
        return match
    return webhook_search(q, shop_ids) | Q(event_id=q) | Q(resource_label=q)


def _rejected_deliveries(filters: dict[str, Any], *, webhook_only: bool = False) -> QuerySet[Delivery]:
    # The body can be megabytes and is never shown in the list; the headers are for the detail page.
    deliveries = Delivery.objects.filter(event__isnull=True).defer("body", "headers")
    if shop := filters.get("shop"):
        deliveries = deliveries.filter(shop_domain=shop.domain)
    if q := filters.get("q"):
        # Served by int_delivery_webhook_idx (rejected requests by webhook id).
        match = prefix_match("webhook_id", q) if len(q) >= MIN_WEBHOOK_PREFIX else Q(webhook_id=q)
        if not webhook_only and q.isascii() and q.isdigit() and int(q) <= MAX_ID:
            match |= Q(pk=int(q))
        deliveries = deliveries.filter(match)
    return _topic_and_time(deliveries, filters)


def also_rows(log: LogQuery) -> list[tuple[LogQuery, list, bool]]:
    """(query, up to ALSO_MAX_ROWS rows newest first, whether there are more) for each of `log.also`
    that has rows."""
    blocks = []
    for extra in log.also:
        rows = list(extra.queryset.order_by("-pk")[: ALSO_MAX_ROWS + 1])
        if rows:
            blocks.append((extra, rows[:ALSO_MAX_ROWS], len(rows) > ALSO_MAX_ROWS))
    return blocks


def mark_out_of_order(events: list[Event]) -> None:
    """Set `out_of_order` on each event whose first processing found a newer version of its record
    already held (a job's "stale" outcome, newer than this event's): one query for the lot."""
    by_id = {event.pk: event for event in events if isinstance(event, Event)}
    for event in by_id.values():
        event.out_of_order = False
    if not by_id:
        return
    stale = (
        Attempt.objects.filter(
            job__event_id__in=list(by_id), outcome=Attempt.Outcome.SUCCEEDED, message__startswith=STALE_PREFIX
        )
        # A replay's finding says nothing about the order things arrived in.
        .exclude(trigger=Attempt.Trigger.REPLAY)
        .values_list("job__event_id", "message")
    )
    for event_id, message in stale:
        if describe_result(message).out_of_order:
            by_id[event_id].out_of_order = True


def newer_rows(log: LogQuery, after: int, after_call: int = 0) -> list:
    """Rows added since id `after` (for both directions: events since `after`, calls since
    `after_call`), newest first, for the live poll.

    Takes the oldest POLL_MAX_ROWS above `after` (of each kind), so a burst is delivered over
    several polls rather than leaving a gap between what was shown and what comes next.
    """
    if log.kind != KIND_MIXED:
        rows = list(log.queryset.filter(pk__gt=after).order_by("pk")[:POLL_MAX_ROWS])
        rows.reverse()
        return rows
    streams = []
    for (kind, queryset), since in zip(log.streams, (after, after_call), strict=True):
        rows = _tagged(list(queryset.filter(pk__gt=since).order_by("pk")[:POLL_MAX_ROWS]), kind)
        streams.append(sorted(rows, key=_merge_key, reverse=True))
    return list(heapq.merge(*streams, key=_merge_key, reverse=True))


def newest_ids(rows: list, log: LogQuery, since: dict[str, int] | None = None) -> dict[str, int]:
    """The highest id of each kind in `rows`, else in `since` (else 0): where the live poll goes on."""
    newest = {kind: (since or {}).get(kind, 0) for kind, _ in log.streams}
    for row in rows:
        kind = getattr(row, "log_kind", log.kind)
        newest[kind] = max(newest[kind], row.pk)
    return newest


# --- Both directions: a page of events and calls by time ---------------------------------------


@dataclass(frozen=True)
class StreamPosition:
    """The last row a page took from one kind's stream: its time and id."""

    at: datetime
    pk: int


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CURSOR_PART = re.compile(r"([io])(-?[0-9]{1,18})\.([1-9][0-9]{0,18})")
_CURSOR_KIND = {"i": KIND_EVENTS, "o": KIND_OUTBOUND}


@dataclass(frozen=True)
class MixedCursor:
    """Where the list of both directions stands: the position reached in each stream, or None for a
    stream none of whose rows has been listed yet (it starts from its newest).

    Written `i<µs>.<id>_o<µs>.<id>` (the time in microseconds since 1970 UTC, as exact as the
    columns keep it), a part left out when None.
    """

    events: StreamPosition | None = None
    calls: StreamPosition | None = None

    def of(self, kind: str) -> StreamPosition | None:
        return self.events if kind == KIND_EVENTS else self.calls

    def encode(self) -> str:
        parts = []
        for letter, position in (("i", self.events), ("o", self.calls)):
            if position is not None:
                micros = (position.at - _EPOCH) // timedelta(microseconds=1)
                parts.append(f"{letter}{micros}.{position.pk}")
        return "_".join(parts)

    @classmethod
    def parse(cls, raw: str | None) -> "MixedCursor | None":
        """None for the first page; BadRequest (400) for anything that is not a cursor we could have sent."""
        if not raw:
            return None
        positions: dict[str, StreamPosition] = {}
        for part in raw.split("_", 2):
            match = _CURSOR_PART.fullmatch(part)
            kind = _CURSOR_KIND[match.group(1)] if match else None
            if kind is None or kind in positions or int(match.group(3)) > MAX_ID:
                raise BadRequest("Invalid page cursor.")
            try:
                at = _EPOCH + timedelta(microseconds=int(match.group(2)))
            except OverflowError:
                raise BadRequest("Invalid page cursor.") from None
            positions[kind] = StreamPosition(at, int(match.group(3)))
        return cls(positions.get(KIND_EVENTS), positions.get(KIND_OUTBOUND))


@dataclass
class MixedPage:
    rows: list
    next_cursor: str | None
    first_page: bool
    # The highest id of each kind read for the page: where the live poll starts.
    newest: dict[str, int]


def older_than(queryset: QuerySet, time_field: str, position: StreamPosition | None) -> QuerySet:
    """The stream's rows after `position`, newest first by (time, id): a keyset on the time column.

    The redundant `time <= t` is the index condition (a range of the time index, so a deep page
    costs what the first one does); the OR settles rows of the same time by id.
    """
    ordered = queryset.order_by(f"-{time_field}", "-pk")
    if position is None:
        return ordered
    at = position.at
    return ordered.filter(**{f"{time_field}__lte": at}).filter(
        Q(**{f"{time_field}__lt": at}) | Q(**{time_field: at, "pk__lt": position.pk})
    )


def mixed_page(log: LogQuery, cursor: str | None, per_page: int = PAGE_SIZE) -> MixedPage:
    """A page of events and calls, newest first by time: at most `per_page` + 1 rows read from each
    stream after its position in `cursor`, merged; the next cursor holds where each stream got to.
    BadRequest (400) for a cursor we could not have sent."""
    position = MixedCursor.parse(cursor) or MixedCursor()
    streams, newest = [], {}
    for kind, queryset in log.streams:
        rows = list(older_than(queryset, TIME_FIELD[kind], position.of(kind))[: per_page + 1])
        newest[kind] = max((row.pk for row in rows), default=0)
        streams.append(_tagged(rows, kind))
    merged = list(heapq.merge(*streams, key=_merge_key, reverse=True))
    rows = merged[:per_page]
    next_cursor = None
    if len(merged) > per_page:
        reached = {KIND_EVENTS: position.events, KIND_OUTBOUND: position.calls}
        for row in rows:  # newest first: the last row of each kind is where its stream got to
            reached[row.log_kind] = StreamPosition(getattr(row, TIME_FIELD[row.log_kind]), row.pk)
        next_cursor = MixedCursor(reached[KIND_EVENTS], reached[KIND_OUTBOUND]).encode()
    return MixedPage(rows=rows, next_cursor=next_cursor, first_page=not cursor, newest=newest)


def _merge_key(row) -> tuple:
    # Newest first by time; at the same microsecond calls before events, then by id.
    return (getattr(row, TIME_FIELD[row.log_kind]), row.log_kind == KIND_OUTBOUND, row.pk)


def _tagged(rows: list, kind: str) -> list:
    """Mark each row with its kind and template, for the merge and the rows partial."""
    for row in rows:
        row.log_kind = kind
        row.log_template = MIXED_ROW_TEMPLATE[kind]
    return rows


PAYLOAD_DISPLAY_LIMIT = 256 * 1024


def events_for_detail() -> QuerySet[Event]:
    """Events with everything the detail page and `trace_event` read, in a fixed number of queries
    (an echo's call comes in the same row)."""
    return (
        traced_events()
        .select_related("assignee", "echo_of")
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
    result: JobResult | None = None  # succeeded attempts: what the job did, in words
    # deliveries: since Shopify triggered the webhook; attempts: since we first received it.
    since: timedelta | None = None


def timeline(event: Event) -> list[TimelineEntry]:
    """Deliveries (including requests with this webhook id that were rejected), job attempts and the
    last successful processing, oldest first. `event` must come from `events_for_detail()`."""
    rejected = Delivery.objects.filter(
        webhook_id=event.webhook_id, event__isnull=True, shop_domain=event.shop.domain
    ).defer("body")[:20]
    triggered = event.triggered_at
    entries = [
        TimelineEntry(d.received_at, "delivery", d, number=n, since=_since(triggered, d.received_at))
        for n, d in enumerate(event.timeline_deliveries, start=1)
    ]
    entries += [TimelineEntry(d.received_at, "rejected", d, since=_since(triggered, d.received_at)) for d in rejected]
    for job in event.traced_jobs:
        entries += [
            TimelineEntry(
                a.started_at,
                "attempt",
                a,
                job,
                result=describe_result(a.message) if a.outcome == Attempt.Outcome.SUCCEEDED else None,
                since=a.started_at - event.received_at,
            )
            for a in job.attempts.all()
        ]
    if event.processed_at:
        entries.append(TimelineEntry(event.processed_at, "processed", event))
    order = {"rejected": 0, "delivery": 1, "attempt": 2, "processed": 3}
    return sorted(entries, key=lambda e: (e.at, order[e.kind], getattr(e.item, "pk", 0)))


def _since(start: datetime | None, end: datetime) -> timedelta | None:
    return end - start if start is not None else None


def delivery_triggered_at(delivery: Delivery) -> datetime | None:
    """When Shopify says it triggered the webhook (X-Shopify-Triggered-At, as the request carried it)."""
    headers = delivery.headers if isinstance(delivery.headers, dict) else {}
    value = next((v for k, v in headers.items() if str(k).lower() == "x-shopify-triggered-at"), "")
    if not isinstance(value, str) or not value:
        return None
    head, dot, tail = value.partition(".")
    if dot:  # Shopify sends nanoseconds (…57.290670248Z); Python keeps microseconds.
        digits = "".join(ch for ch in tail if ch.isdigit())
        value = f"{head}.{digits[:6]}{tail[len(digits) :]}"
    try:
        parsed = parse_datetime(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    # A time no page can show (e.g. year 1 at +14:00 is year 0 in UTC) counts as none.
    from integrations.inbound.values import storable_datetime

    return storable_datetime(parsed)


@dataclass
class Payload:
    kind: str  # json | text | none | purged (text: what retention says of it)
    text: str = ""
    size: int = 0
    truncated: bool = False


def payload_of(event: Event) -> Payload:
    """The body Shopify sent for the event (every delivery of one webhook carries the same body)."""
    if event.payload_purged_at is not None:
        from integrations.inbound.retention import purge_note

        return Payload("purged", purge_note(event))
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


# --- Outbound calls: the call page, and calls named on other pages ---------------------------


def call_for_detail(pk: int) -> OutboundCall:
    """A call with everything its page shows, in three queries whatever its tries and echoes:
    the call (with shop, origin event and requester), its tries in order, its echoes. 404 if none."""
    echoes = Event.objects.only("id", "shop_id", "topic", "status", "received_at", "echo_of_id").order_by("id")
    calls = OutboundCall.objects.select_related("shop", "origin_event", "requested_by").prefetch_related(
        Prefetch("attempts", queryset=OutboundAttempt.objects.order_by("number"), to_attr="tries"),
        Prefetch("echoes", queryset=echoes[:ECHOES_SHOWN], to_attr="shown_echoes"),
    )
    call = get_object_or_404(calls, pk=pk)
    for attempt in call.tries:
        attempt.shown_user_errors = user_error_lines(attempt.user_errors)
        attempt.shown_error_codes = ", ".join(str(code) for code in attempt.error_codes or [] if code)
    return call


def user_error_lines(user_errors: Any) -> list[dict[str, str]]:
    """Shopify's userErrors as (field path, message, code) for display, whatever shape they came in."""
    lines = []
    for error in user_errors if isinstance(user_errors, list) else []:
        if not isinstance(error, dict):
            lines.append({"field": "", "message": str(error), "code": ""})
            continue
        path = error.get("field")
        where = ".".join(str(part) for part in path) if isinstance(path, list) else str(path or "")
        lines.append({"field": where, "message": str(error.get("message") or ""), "code": str(error.get("code") or "")})
    return lines


def calls_for_record(shop_id: int, gid: str, limit: int = CALLS_FOR_RECORD) -> list[OutboundCall]:
    """The latest calls that change one record (int_call_target_idx), newest first."""
    if not gid:
        return []
    return list(
        OutboundCall.objects.filter(shop_id=shop_id, target_gid=gid)
        .only("id", "shop_id", "operation", "status", "created_at", "target_label", "target_gid")
        .order_by("-id")[:limit]
    )


@dataclass
class CallCount:
    status: str
    label: str
    n: int
    # Failed calls are counted since then (24 h ago): the log's link lists the same calls.
    since: datetime | None = None


def shop_call_counts(shop: Shop, now: datetime | None = None) -> list[CallCount]:
    """The shop's unfinished calls by status, then its calls that failed in the last 24 h, in one
    GROUP BY that costs the size of the backlog, not of the shop's history (`counted_calls`).
    Calls that finished earlier are not counted; the log lists them."""
    since = (now or timezone.now()) - timedelta(hours=24)
    counts = dict(counted_calls(since, shop).values_list("status").annotate(n=Count("id")).order_by())
    labels = dict(OutboundCall.Status.choices)
    failed = OutboundCall.Status.FAILED
    return [CallCount(status, labels[status], counts.get(status, 0)) for status in OutboundCall.ACTIVE] + [
        CallCount(failed, f"{labels[failed]} (24 h)", counts.get(failed, 0), since)
    ]


def counted_calls(since: datetime, shop: Shop | None = None) -> QuerySet[OutboundCall]:
    """Calls the shop page counts, as the dashboard does (`dashboard.outbound_counted`): every
    unfinished one, and those that failed since `since`."""
    calls = OutboundCall.objects.filter(outbound_counted(since))
    return calls.filter(shop=shop) if shop is not None else calls


def shop_queues(now=None) -> list[dict]:
    """Every shop with its unfinished calls by status and its failures of the last 24 h: two
    GROUP BYs, over int_call_status_idx (unfinished calls) and int_call_failed_idx (failed calls
    by created_at): unfinished and recently failed calls are few, whatever the history."""
    now = now or timezone.now()
    active = defaultdict(dict)
    for shop_id, status, n in (
        OutboundCall.objects.filter(status__in=OutboundCall.ACTIVE)
        .values_list("shop_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        active[shop_id][status] = n
    failed = dict(
        OutboundCall.objects.filter(status=OutboundCall.Status.FAILED, created_at__gte=now - timedelta(hours=24))
        .values_list("shop_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        {"shop": shop, "counts": active.get(shop.pk, {}), "failed_24h": failed.get(shop.pk, 0)}
        for shop in Shop.objects.order_by("domain")
    ]
