"""Keyset pagination: pages stay fast however deep you go, because each page is an index range
scan starting after the last row seen, never an OFFSET."""

import re
from dataclasses import dataclass

from django.core.exceptions import BadRequest
from django.db.models import QuerySet


@dataclass
class KeysetPage:
    rows: list
    next_cursor: int | None
    first_page: bool


def keyset_page(queryset: QuerySet, *, cursor: str | None, per_page: int = 50) -> KeysetPage:
    """Newest first by primary key; `cursor` is the last id of the previous page.

    A malformed or out-of-range cursor raises BadRequest, which Django answers with 400.
    """
    qs = queryset.order_by("-pk")
    after = _parse_cursor(cursor)
    if after is not None:
        qs = qs.filter(pk__lt=after)
    rows = list(qs[: per_page + 1])
    has_more = len(rows) > per_page
    rows = rows[:per_page]
    return KeysetPage(rows=rows, next_cursor=rows[-1].pk if has_more else None, first_page=after is None)


# Primary keys are BigAutoFields: a cursor beyond this is not one we ever handed out, and SQLite
# raises OverflowError (PostgreSQL "out of range") if such an integer reaches the database.
MAX_CURSOR = 2**63 - 1
_CURSOR = re.compile(r"[1-9][0-9]{0,18}")


def _parse_cursor(cursor: str | None) -> int | None:
    """None for the first page; 400 (BadRequest) for anything that is not an id we could have sent.

    Strict on purpose: int() would also take " 7", "7_000" and non-ASCII digits.
    """
    if not cursor:
        return None
    if not _CURSOR.fullmatch(cursor) or int(cursor) > MAX_CURSOR:
        raise BadRequest("Invalid page cursor.")
    return int(cursor)
