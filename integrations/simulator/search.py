"""A subset of Shopify's search syntax for the `query:` argument of connections.

Supported: `field:value`, `field:>value` (also `>=`, `<`, `<=`) for ids, numbers and timestamps,
`value*` prefix matches, quoted values, negation with `-field:value` or `NOT field:value`, and
bare words matched against the record's main text fields. Terms are ANDed (`AND` is accepted);
`OR` is not supported and is ignored, as are unknown fields (Shopify also ignores those).
"""

import re
from collections.abc import Callable
from typing import Any

from integrations.simulator.records import parse_time, split_tags

_TERM = re.compile(r"""(-)?(?:(\w+):)?(>=|<=|>|<)?("[^"]*"|'[^']*'|\S+)""")

Predicate = Callable[[dict], bool]


def _text(name: str) -> Callable[[dict], Any]:
    return lambda record: record.get(name)


def _tags(record: dict) -> list[str]:
    return [t.lower() for t in split_tags(record.get("tags"))]


def _order_status(record: dict, value: str) -> bool:
    if value == "open":
        return record.get("closed_at") is None and record.get("cancelled_at") is None
    if value == "closed":
        return record.get("closed_at") is not None
    if value == "cancelled":
        return record.get("cancelled_at") is not None
    return value in ("any", "*")


def _fulfillment(record: dict, value: str) -> bool:
    status = record.get("fulfillment_status")
    if value in ("unfulfilled", "unshipped"):
        return status is None
    if value in ("shipped", "fulfilled"):
        return status == "fulfilled"
    return (status or "") == value


_TIME_FIELDS = ("created_at", "updated_at", "processed_at")
_FIELDS: dict[str, dict[str, str]] = {
    # field -> kind of comparison ("int", "time", "str", "tag", or a special)
    "products": {
        "id": "int",
        "title": "str",
        "handle": "str",
        "vendor": "str",
        "product_type": "str",
        "status": "str",
        "tag": "tag",
        "sku": "sku",
    },
    "variants": {"id": "int", "sku": "str", "title": "str", "barcode": "str", "product_id": "int"},
    "inventory_items": {"id": "int", "sku": "str"},
    "customers": {
        "id": "int",
        "email": "str",
        "first_name": "str",
        "last_name": "str",
        "phone": "str",
        "state": "str",
        "tag": "tag",
    },
    "orders": {
        "id": "int",
        "name": "str",
        "email": "str",
        "financial_status": "str",
        "fulfillment_status": "fulfillment",
        "status": "order_status",
        "tag": "tag",
        "customer_id": "customer_id",
    },
    "locations": {"id": "int", "name": "str"},
}
_DEFAULT_TEXT = {
    "products": ("title",),
    "variants": ("title", "sku"),
    "inventory_items": ("sku",),
    "customers": ("first_name", "last_name", "email"),
    "orders": ("name", "email"),
    "locations": ("name",),
}


def _compare(left: Any, op: str, right: Any) -> bool:
    if left is None:
        return False
    if op == ">":
        return left > right
    if op == ">=":
        return left >= right
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    return left == right


def _str_match(value: Any, wanted: str) -> bool:
    if value is None:
        return False
    text = str(value).lower()
    if wanted.endswith("*"):
        return text.startswith(wanted[:-1])
    return text == wanted


def _term(kind: str, field: str | None, op: str, raw: str) -> Predicate | None:
    value = raw.strip("'\"")
    lowered = value.lower()
    if field is None:
        names = _DEFAULT_TEXT.get(kind, ())
        return lambda r: any(lowered in str(r.get(n) or "").lower() for n in names)
    if field in _TIME_FIELDS:
        try:
            moment = parse_time(value)
        except ValueError:
            return None
        return lambda r: r.get(field) is not None and _compare(parse_time(r[field]), op, moment)
    comparison = _FIELDS.get(kind, {}).get(field)
    if comparison is None:
        return None
    if comparison == "int":
        if not value.isdigit():
            return None
        number = int(value)
        return lambda r: _compare(r.get(field), op, number)
    if comparison == "tag":
        return lambda r: lowered in _tags(r)
    if comparison == "sku":
        return lambda r: any(_str_match(v.get("sku"), lowered) for v in r.get("variants", ()))
    if comparison == "order_status":
        return lambda r: _order_status(r, lowered)
    if comparison == "fulfillment":
        return lambda r: _fulfillment(r, lowered)
    if comparison == "customer_id":
        if not value.isdigit():
            return None
        number = int(value)
        return lambda r: (r.get("customer") or {}).get("id") == number
    return lambda r: _str_match(r.get(field), lowered)


def compile_search(query: str | None, kind: str) -> Predicate | None:
    """A predicate for `query` on records of `kind`, or None when it filters nothing."""
    if not query or not query.strip():
        return None
    predicates: list[Predicate] = []
    negate_next = False
    for match in _TERM.finditer(query):
        neg, field, op, raw = match.groups()
        if field is None and raw in ("AND", "OR"):
            continue
        if field is None and raw == "NOT":
            negate_next = True
            continue
        predicate = _term(kind, field.lower() if field else None, op or "=", raw)
        negated = bool(neg) or negate_next
        negate_next = False
        if predicate is None:
            continue
        predicates.append((lambda p: lambda r: not p(r))(predicate) if negated else predicate)
    if not predicates:
        return None
    return lambda record: all(p(record) for p in predicates)
