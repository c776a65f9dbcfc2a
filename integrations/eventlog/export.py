"""CSV export of the event log: streamed, capped, and safe to open in a spreadsheet."""

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from integrations.eventlog.filters import INBOUND, KIND_OUTBOUND, KIND_REJECTED, REJECTED
from integrations.eventlog.selectors import LogQuery

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


def export_rows(log: LogQuery, *, limit: int | None = None) -> Iterator[list]:
    """Header, then up to `limit` (default EXPORT_MAX_ROWS) rows streamed from the database, then a
    comment line if capped."""
    limit = EXPORT_MAX_ROWS if limit is None else limit
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


def _csv_cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    # Topic, shop and reason of a rejected request come from whoever sent it, and a call's label
    # and reason from a store or Shopify: keep spreadsheets from running them as formulas.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value
