"""CSV export of the event log: streamed, capped, and safe to open in a spreadsheet.

Each list exports what it shows: events, rejected requests or calls in their own columns, and the
list of both directions as one file of both kinds, newest first by time, `direction` (inbound or
outbound) first and then the columns of either kind (`MIXED_COLUMNS`; a column the row's kind does
not have is empty).
"""

import heapq
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from integrations.eventlog.filters import (
    INBOUND,
    KIND_EVENTS,
    KIND_MIXED,
    KIND_OUTBOUND,
    KIND_REJECTED,
    OUTBOUND,
    REJECTED,
)
from integrations.eventlog.selectors import TIME_FIELD, LogQuery

EXPORT_MAX_ROWS = 100_000

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

# Outbound calls: what `outbound list --json` says of a call, minus its input and tries.
OUTBOUND_COLUMNS = [
    ("id", "id"),
    ("created_at", "created_at"),
    ("shop", "shop__domain"),
    ("operation", "operation"),
    ("target", "target_gid"),
    ("label", "target_label"),
    ("lane", "lane"),
    ("origin", "origin"),
    ("origin_ref", "origin_ref"),
    ("idempotency_key", "idempotency_key"),
    ("status", "status"),
    ("classification", "classification"),
    ("failure_kind", "failure_kind"),
    ("attempts", "attempt_count"),
    ("reason", "reason"),
    ("next_step", "next_step"),
]
COLUMNS = {KIND_REJECTED: REJECTED_COLUMNS, KIND_OUTBOUND: OUTBOUND_COLUMNS}

# Both directions in one file: (column, an event's field, a call's field). "time" is when we
# received the webhook or made the call, which the rows are ordered by.
MIXED_COLUMNS = [
    ("direction", None, None),
    ("id", "id", "id"),
    ("time", "received_at", "created_at"),
    ("shop", "shop__domain", "shop__domain"),
    ("topic", "topic", None),
    ("operation", None, "operation"),
    ("record", "resource_label", "target_label"),
    ("record_id", "resource_id", None),
    ("record_gid", "resource_gid", "target_gid"),
    ("webhook_id", "webhook_id", None),
    ("shopify_event_id", "event_id", None),
    ("idempotency_key", None, "idempotency_key"),
    ("status", "status", "status"),
    ("reason", "status_reason", "reason"),
    ("deliveries", "delivery_count", None),
    ("processed", "processed_count", None),
    ("attempts", None, "attempt_count"),
    ("echo_of_call", "echo_of_id", None),
    ("triage", "triage_state", None),
    ("assignee", "assignee__username", None),
    ("tags", "tags", None),
    ("lane", None, "lane"),
    ("origin", None, "origin"),
    ("origin_ref", None, "origin_ref"),
    ("classification", None, "classification"),
    ("failure_kind", None, "failure_kind"),
    ("next_step", None, "next_step"),
]
_MIXED_DIRECTION = {KIND_EVENTS: INBOUND, KIND_OUTBOUND: OUTBOUND}


def export_rows(log: LogQuery, *, limit: int | None = None) -> Iterator[list]:
    """Header, then up to `limit` (default EXPORT_MAX_ROWS) rows streamed from the database, then a
    comment line if capped."""
    limit = EXPORT_MAX_ROWS if limit is None else limit
    if log.kind == KIND_MIXED:
        yield from _mixed_rows(log, limit)
        return
    columns = COLUMNS.get(log.kind, EVENT_COLUMNS)
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


def _mixed_rows(log: LogQuery, limit: int) -> Iterator[list]:
    """Events and calls newest first by time: each kind streamed in that order (on its time
    index), at most `limit` + 1 of each, merged as they come."""
    yield [name for name, _, _ in MIXED_COLUMNS]
    streams = [_mixed_stream(kind, queryset, position, limit) for position, (kind, queryset) in enumerate(log.streams)]
    merged = heapq.merge(*streams, key=lambda item: item[:3], reverse=True)
    for n, (_, _, _, kind, by_field) in enumerate(merged):
        if n == limit:
            yield [f"# capped at {limit} rows: narrow the filters to export the rest"]
            return
        position = 0 if kind == KIND_EVENTS else 1
        out = [_MIXED_DIRECTION[kind]]
        for _, *names in MIXED_COLUMNS[1:]:
            name = names[position]
            out.append(_csv_cell(by_field[name]) if name else "")
        yield out


def _mixed_stream(kind: str, queryset, position: int, limit: int) -> Iterator[tuple]:
    """One kind's rows, newest first by time, as (time, calls before events at the same time, id,
    kind, the row by field): the order the page lists them in."""
    fields = [names[position] for _, *names in MIXED_COLUMNS if names[position]]
    time_at = fields.index(TIME_FIELD[kind])
    values = queryset.order_by(f"-{TIME_FIELD[kind]}", "-pk").values_list(*fields)[: limit + 1]
    for row in values.iterator(chunk_size=2000):
        yield (row[time_at], kind == KIND_OUTBOUND, row[0], kind, dict(zip(fields, row, strict=True)))


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    # Topic, shop and reason of a rejected request come from whoever sent it, and a call's label
    # and reason from a store or Shopify: keep spreadsheets from running them as formulas.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
