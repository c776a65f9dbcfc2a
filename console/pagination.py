"""Keyset pagination: pages stay fast however deep you go, because each page is an index range
scan starting after the last row seen, never an OFFSET."""

from dataclasses import dataclass

from django.db.models import QuerySet


@dataclass
class KeysetPage:
    rows: list
    next_cursor: int | None
    first_page: bool


def keyset_page(queryset: QuerySet, *, cursor: str | None, per_page: int = 50) -> KeysetPage:
    """Newest first by primary key; `cursor` is the last id of the previous page."""
    qs = queryset.order_by("-pk")
    after = _parse_cursor(cursor)
    if after is not None:
        qs = qs.filter(pk__lt=after)
    rows = list(qs[: per_page + 1])
    has_more = len(rows) > per_page
    rows = rows[:per_page]
    return KeysetPage(rows=rows, next_cursor=rows[-1].pk if has_more else None, first_page=after is None)


def _parse_cursor(cursor: str | None) -> int | None:
    try:
        value = int(cursor) if cursor else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None
