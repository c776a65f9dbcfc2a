"""Sync jobs: keep the platform's orders, products, variants, inventory levels and customers in
step with Shopify. Idempotent and order-safe: a record is written only when the event is newer
than what we hold (Shopify's `updated_at`); the fulfillment notification is unique per order."""

from datetime import datetime

from django.db import IntegrityError, models, transaction

from integrations.jobs.registry import Replay, job
from integrations.jobs.resources import shopify_time
from integrations.models import (
    Event,
    FulfillmentNotification,
    PlatformCustomer,
    PlatformInventoryLevel,
    PlatformOrder,
    PlatformProduct,
    PlatformVariant,
)


def upsert_newer(model: type[models.Model], *, lookup: dict, updated_at: datetime, values: dict, event: Event) -> str:
    """Create the record, or update it only if this event's state is newer than what we hold.

    Returns "created", "updated" or "stale" (ours is as new or newer: nothing written, so a second
    run of the same event changes nothing and an out-of-order older event loses).
    """
    current = model.objects.select_for_update().filter(**lookup).first()
    if current is None:
        try:
            with transaction.atomic():
                model.objects.create(**lookup, **values, shopify_updated_at=updated_at, last_event=event)
            return "created"
        except IntegrityError:  # a concurrent worker created it first; compare against theirs
            current = model.objects.select_for_update().get(**lookup)
    if current.shopify_updated_at >= updated_at:
        return "stale"
    for field, value in values.items():
        setattr(current, field, value)
    current.shopify_updated_at = updated_at
    current.last_event = event
    current.save()
    return "updated"


@job(
    "sync_order",
    replay=Replay.ALWAYS,
    reason="Writes only when the event is newer than the stored order (updated_at), so a replay never duplicates or rolls back an order.",
)
def sync_order(event: Event, payload: dict) -> str:
    """Keep the platform's copy of the order in step with Shopify (never its personal data again
    once the order was redacted)."""
    customer = payload.get("customer") or {}
    lookup = {"shop": event.shop, "shopify_id": int(payload["id"])}
    redacted = PlatformOrder.objects.filter(**lookup, redacted_at__isnull=False).exists()
    return upsert_newer(
        PlatformOrder,
        lookup=lookup,
        updated_at=shopify_time(payload.get("updated_at")),
        event=event,
        values={
            "gid": payload.get("admin_graphql_api_id") or f"gid://shopify/Order/{payload['id']}",
            "name": payload.get("name") or "",
            "order_number": payload.get("order_number"),
            "email": "" if redacted else payload.get("email") or "",
            "customer_shopify_id": customer.get("id"),
            "financial_status": payload.get("financial_status") or "",
            "fulfillment_status": payload.get("fulfillment_status") or "",
            "total_price": str(payload.get("total_price") or ""),
            "currency": payload.get("currency") or "",
            "tags": payload.get("tags") or "",
            "line_items": [
                {k: item.get(k) for k in ("id", "variant_id", "sku", "title", "quantity", "price")}
                for item in payload.get("line_items") or []
            ],
            "shipping_address": None if redacted else payload.get("shipping_address"),
        },
    )


@job(
    "notify_fulfillment",
    replay=Replay.ALWAYS,
    reason="At most one notification per order is ever sent: a database constraint refuses a second, so replaying a paid order is harmless.",
)
def notify_fulfillment(event: Event, payload: dict) -> str:
    """Tell the fulfillment queue that a paid order can be picked and shipped."""
    if payload.get("financial_status") not in ("paid", None):
        return f"not paid ({payload.get('financial_status')}): nothing to fulfil"
    try:
        with transaction.atomic():
            FulfillmentNotification.objects.create(
                shop=event.shop, order_shopify_id=int(payload["id"]), order_name=payload.get("name") or "", event=event
            )
    except IntegrityError:
        return "already notified"
    return "notified"


@job(
    "sync_product",
    replay=Replay.ALWAYS,
    reason="Product and each variant are written only when newer than what we hold (updated_at).",
)
def sync_product(event: Event, payload: dict) -> str:
    """Keep the product and its variants in step with Shopify."""
    product_updated = shopify_time(payload.get("updated_at"))
    result = upsert_newer(
        PlatformProduct,
        lookup={"shop": event.shop, "shopify_id": int(payload["id"])},
        updated_at=product_updated,
        event=event,
        values={
            "gid": payload.get("admin_graphql_api_id") or f"gid://shopify/Product/{payload['id']}",
            "title": payload.get("title") or "",
            "handle": payload.get("handle") or "",
            "status": payload.get("status") or "",
            "vendor": payload.get("vendor") or "",
            "tags": payload.get("tags") or "",
        },
    )
    for variant in payload.get("variants") or []:
        upsert_newer(
            PlatformVariant,
            lookup={"shop": event.shop, "shopify_id": int(variant["id"])},
            updated_at=shopify_time(variant.get("updated_at"), required=False) or product_updated,
            event=event,
            values={
                "gid": variant.get("admin_graphql_api_id") or f"gid://shopify/ProductVariant/{variant['id']}",
                "product_shopify_id": int(payload["id"]),
                "title": variant.get("title") or "",
                "sku": variant.get("sku") or "",
                "price": str(variant.get("price") or ""),
                "inventory_item_id": variant.get("inventory_item_id"),
            },
        )
    return result


@job(
    "sync_inventory_level",
    replay=Replay.ALWAYS,
    reason="An inventory level is set (not adjusted) and only when the event is newer, so replays cannot double-count stock.",
)
def sync_inventory_level(event: Event, payload: dict) -> str:
    """Keep the available quantity per item and location in step with Shopify."""
    return upsert_newer(
        PlatformInventoryLevel,
        lookup={
            "shop": event.shop,
            "inventory_item_id": int(payload["inventory_item_id"]),
            "location_id": int(payload["location_id"]),
        },
        updated_at=shopify_time(payload.get("updated_at")),
        event=event,
        values={"available": payload.get("available")},
    )


@job(
    "sync_customer",
    replay=Replay.CONDITIONAL,
    reason="Safe unless the customer has since been redacted: the job refuses to write personal data back for a redacted customer.",
)
def sync_customer(event: Event, payload: dict) -> str:
    """Keep the customer record in step with Shopify (never after a redaction)."""
    lookup = {"shop": event.shop, "shopify_id": int(payload["id"])}
    if PlatformCustomer.objects.filter(**lookup, redacted_at__isnull=False).exists():
        return "customer was redacted: not written"
    return upsert_newer(
        PlatformCustomer,
        lookup=lookup,
        updated_at=shopify_time(payload.get("updated_at")),
        event=event,
        values={
            "gid": payload.get("admin_graphql_api_id") or f"gid://shopify/Customer/{payload['id']}",
            "email": payload.get("email") or "",
            "first_name": payload.get("first_name") or "",
            "last_name": payload.get("last_name") or "",
            "phone": payload.get("phone") or "",
            "tags": payload.get("tags") or "",
        },
    )
