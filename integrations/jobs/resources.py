"""Which Shopify record a payload is about: its gid, id, label and `updated_at`, for search and
"other events for this record"."""

from dataclasses import dataclass
from datetime import datetime

from django.utils.dateparse import parse_datetime

from integrations.inbound.values import storable_datetime


@dataclass
class Resource:
    gid: str = ""
    id: str = ""
    label: str = ""
    updated_at: datetime | None = None


def describe_resource(topic: str, payload: dict) -> Resource:
    updated_at = shopify_time(payload.get("updated_at"), required=False)
    if topic.startswith("inventory_levels/"):
        return Resource(
            gid=str(payload.get("admin_graphql_api_id") or ""),
            id=str(payload.get("inventory_item_id") or ""),
            label=f"item {payload.get('inventory_item_id')} @ location {payload.get('location_id')}",
            updated_at=updated_at,
        )
    if topic in ("customers/redact", "customers/data_request"):
        customer_id = (payload.get("customer") or {}).get("id")
        return Resource(
            gid=f"gid://shopify/Customer/{customer_id}", id=str(customer_id or ""), label=f"Customer {customer_id}"
        )
    if topic == "shop/redact" or topic == "app/uninstalled":
        shop_id = payload.get("shop_id") or payload.get("id")
        return Resource(
            gid=f"gid://shopify/Shop/{shop_id}",
            id=str(shop_id or ""),
            label=str(payload.get("shop_domain") or payload.get("myshopify_domain") or ""),
            updated_at=updated_at,
        )
    label = payload.get("name") if topic.startswith(("orders/", "fulfillments/")) else payload.get("title")
    if topic.startswith("customers/"):
        label = f"Customer {payload.get('id')}"
    return Resource(
        gid=str(payload.get("admin_graphql_api_id") or ""),
        id=str(payload.get("id") or ""),
        label=str(label or "")[:100],
        updated_at=updated_at,
    )


def shopify_time(value, *, required: bool = True) -> datetime | None:
    """A payload time, aware; None (or, when `required`, ValueError) when it is missing or outside
    what the database and Python can both hold (see storable_datetime). A value shaped like a
    date that is none (Feb 30) raises ValueError either way."""
    parsed = parse_datetime(value) if isinstance(value, str) else None  # ValueError: not a date at all
    storable = storable_datetime(parsed)
    if storable is None and required:
        problem = "out of range" if parsed is not None else "missing or unreadable"
        raise ValueError(f"{problem} updated_at: {str(value)[:100]!r}")
    return storable
