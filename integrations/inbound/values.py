"""Values from Shopify made storable: what a header or payload carries must never break the
receiver, a page or the pump, whatever the column or Python can hold.

Each helper returns what the column can store (a time, a size, text cut to the column), or None
when the value cannot be stored as typed; the raw value stays in Delivery.headers or the stored
body, where support reads it. The receiver uses them on every request and the worker on every
payload time it stores.
"""

import ipaddress
from datetime import UTC, datetime
from functools import cache

from django.db import models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

# A day inside Python's datetime range at both ends. PostgreSQL's timestamptz reaches far wider
# (4713 BC to 294276 AD), so a time stored outside this window would be accepted and then break
# every read of the row (psycopg cannot build the datetime), and SQLite could not even convert it
# to UTC. The day of margin lets any stored time be shown in any time zone (offsets stay under
# a day) without overflowing.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999999, tzinfo=UTC)
# The smallest positive integer column among our databases: PostgreSQL's `integer`.
MAX_POSITIVE_INT = 2**31 - 1


def storable_datetime(value: datetime | None) -> datetime | None:
    """`value` made aware (a time without an offset is UTC), or None when it falls outside
    EARLIEST..LATEST once converted to UTC (e.g. year 1 at +14:00 is still year 0 in UTC)."""
    if value is None:
        return None
    if timezone.is_naive(value):
        value = value.replace(tzinfo=UTC)
    try:
        in_utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return value if EARLIEST <= in_utc <= LATEST else None


def parse_storable_datetime(value: object) -> datetime | None:
    """An ISO 8601 time as Shopify writes it (nanoseconds, `Z`), parsed and storable; None when it
    is missing, unreadable or out of range."""
    if not isinstance(value, str) or not value:
        return None
    trimmed = value.strip()
    if "." in trimmed:  # Shopify sends nanoseconds (…57.290670248Z); Python keeps microseconds.
        head, _, tail = trimmed.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        trimmed = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = parse_datetime(trimmed.replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return storable_datetime(parsed)


def storable_size(value: int) -> int:
    """A byte count for a PositiveIntegerField: a declared Content-Length can exceed 64 bits."""
    return min(max(value, 0), MAX_POSITIVE_INT)


def storable_ip(value: str | None) -> str | None:
    """REMOTE_ADDR when it is an IP address (a unix socket or a proxy may hand us anything else)."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def storable_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a hostile value must still be recorded, not crash us.
    return value.replace("\x00", "\ufffd")


@cache
def _text_limits(model: type[models.Model]) -> dict[str, int]:
    return {
        f.attname: f.max_length
        for f in model._meta.concrete_fields
        if isinstance(f, models.CharField) and f.max_length is not None
    }


def fit_text(model: type[models.Model], values: dict) -> dict:
    """`values` with every text value cut to its column's max_length (PostgreSQL refuses a longer
    one; SQLite would keep it and the two databases would disagree)."""
    limits = _text_limits(model)
    return {
        name: value[: limits[name]] if name in limits and isinstance(value, str) else value
        for name, value in values.items()
    }
