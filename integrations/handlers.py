"""What each webhook topic makes the platform do, and the jobs that do it.

`TOPIC_JOBS` names the jobs each topic runs; each job is registered with `@job` and its replay
safety, declared here in code with the reason in plain words. Jobs are idempotent and order-safe:
records carry Shopify's `updated_at` and an older event never overwrites newer state; the
fulfillment notification is unique per order. To handle a new topic, add a line to TOPIC_JOBS
(and a job, if none fits).
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console.audit import record_action
from integrations.models import (
    Delivery,
    Event,
    FulfillmentNotification,
    PlatformCustomer,
    PlatformInventoryLevel,
    PlatformOrder,
    PlatformProduct,
    PlatformVariant,
    PrivacyRequest,
    Shop,
)

PRIVACY_DEADLINE = timedelta(days=30)  # Shopify: act on privacy webhooks within 30 days


class RetryableJobError(Exception):
    """A failure that may pass on a later attempt (a dependency was briefly unavailable)."""


class Replay(StrEnum):
    ALWAYS = "always"
    CONDITIONAL = "conditional"
    NEVER = "never"


@dataclass(frozen=True)
class JobType:
    name: str
    run: Callable[[Event, dict], str]
    replay: Replay
    replay_reason: str
    description: str


JOB_TYPES: dict[str, JobType] = {}


def job(name: str, *, replay: Replay, reason: str) -> Callable:
    def register(func: Callable[[Event, dict], str]) -> Callable[[Event, dict], str]:
        JOB_TYPES[name] = JobType(
            name=name, run=func, replay=replay, replay_reason=reason, description=(func.__doc__ or "").strip()
        )
        return func

    return register


# --- Resource identity, for search and "other events for this record" ------------------------


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
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None and required:
        raise ValueError(f"missing or unreadable updated_at: {value!r}")
    return parsed


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


# --- Topics: the jobs each webhook topic runs ------------------------------------------------

TOPIC_JOBS: dict[str, tuple[str, ...]] = {
    "orders/create": ("sync_order",),
    "orders/updated": ("sync_order",),
    "orders/paid": ("sync_order", "notify_fulfillment"),
    "products/create": ("sync_product",),
    "products/update": ("sync_product",),
    "inventory_levels/update": ("sync_inventory_level",),
    "inventory_levels/connect": ("sync_inventory_level",),
    "customers/create": ("sync_customer",),
    "customers/update": ("sync_customer",),
    "app/uninstalled": ("mark_uninstalled",),
    "customers/data_request": ("export_customer_data",),
    "customers/redact": ("redact_customer",),
    "shop/redact": ("redact_shop",),
}


# --- Jobs -------------------------------------------------------------------------------------


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


@job("mark_uninstalled", replay=Replay.ALWAYS, reason="Marking a shop uninstalled twice changes nothing.")
def mark_uninstalled(event: Event, payload: dict) -> str:
    """The app was uninstalled: stop outbound work for the shop (its token is revoked)."""
    changed = (
        Shop.objects.filter(pk=event.shop_id).exclude(state=Shop.State.UNINSTALLED).update(state=Shop.State.UNINSTALLED)
    )
    if changed:
        record_action(
            actor=None,
            verb="shop.uninstalled",
            target=event.shop,
            before={"state": Shop.State.INSTALLED},
            after={"state": Shop.State.UNINSTALLED},
            reason=f"app/uninstalled webhook {event.webhook_id}",
        )
        return "shop marked uninstalled"
    return "already uninstalled"


# --- Privacy ----------------------------------------------------------------------------------

PERSONAL_KEYS = {
    "email",
    "phone",
    "first_name",
    "last_name",
    "address1",
    "address2",
    "city",
    "zip",
    "province",
    "province_code",
    "latitude",
    "longitude",
    "company",
    "contact_email",
    "browser_ip",
    "note",
}
ADDRESS_KEYS = {"shipping_address", "billing_address", "default_address", "addresses", "customer"}
REDACTED = "[redacted]"


def scrub(value):
    """A copy of a payload with personal data replaced, structure kept for support work."""
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if key in PERSONAL_KEYS and val not in (None, "")
                else scrub_nested(val)
                if key in ADDRESS_KEYS
                else scrub(val)
            )
            for key, val in value.items()
        }
    if isinstance(value, list):
        return [scrub(item) for item in value]
    return value


def scrub_nested(value):
    if isinstance(value, dict):
        kept = {"id", "admin_graphql_api_id", "country_code"}
        return {k: (v if k in kept else REDACTED if v not in (None, "") else v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_nested(item) for item in value]
    return value


def scrub_deliveries(deliveries: models.QuerySet, note: str, *, mentioning: list[bytes] | None = None) -> int:
    """Rewrite stored bodies without personal data; with `mentioning`, only bodies that contain one
    of those byte strings (an email, a customer or order id). Scanning bodies rather than trusting
    the worker's resource fields also catches events not processed yet, topics we ignore and
    rejected requests. Over-matching only scrubs more, which is the safe side."""
    count = 0
    touched_events = set()
    for delivery in deliveries.exclude(body=None).only("id", "body", "event_id").iterator():
        raw = bytes(delivery.body)
        if mentioning is not None and not any(needle in raw for needle in mentioning):
            continue
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            cleaned = b'"[redacted: unparseable payload removed]"'
        else:
            cleaned = json.dumps(scrub(payload)).encode()
        Delivery.objects.filter(pk=delivery.pk).update(body=cleaned, body_size=len(cleaned))
        count += 1
        if delivery.event_id:
            touched_events.add(delivery.event_id)
    if touched_events:
        Event.objects.filter(pk__in=touched_events).update(redacted_at=timezone.now(), redaction_note=note[:255])
    return count


def _privacy_request(event: Event, payload: dict, kind: str) -> PrivacyRequest:
    request, _ = PrivacyRequest.objects.get_or_create(
        event=event,
        defaults={
            "shop": event.shop,
            "kind": kind,
            "customer_shopify_id": (payload.get("customer") or {}).get("id"),
            "received_at": event.received_at,
            "due_at": event.received_at + PRIVACY_DEADLINE,
        },
    )
    return request


def _complete(request: PrivacyRequest, proof: dict, export: dict | None = None) -> None:
    request.state = PrivacyRequest.State.COMPLETED
    request.completed_at = timezone.now()
    request.proof = proof
    if export is not None:
        request.export = export
    request.save()


def _customer_orders(shop: Shop, customer_id, order_ids) -> models.QuerySet:
    return PlatformOrder.objects.filter(shop=shop).filter(
        models.Q(customer_shopify_id=customer_id) | models.Q(shopify_id__in=[int(i) for i in order_ids or []])
    )


@job(
    "export_customer_data",
    replay=Replay.ALWAYS,
    reason="Builds the same export again; it writes nothing but the request's own record.",
)
def export_customer_data(event: Event, payload: dict) -> str:
    """customers/data_request: gather everything we hold about the customer."""
    request = _privacy_request(event, payload, PrivacyRequest.Kind.DATA_REQUEST)
    customer_id = (payload.get("customer") or {}).get("id")
    customer = PlatformCustomer.objects.filter(shop=event.shop, shopify_id=customer_id).values(
        "shopify_id", "email", "first_name", "last_name", "phone", "tags", "shopify_updated_at"
    )
    orders = _customer_orders(event.shop, customer_id, payload.get("orders_requested")).values(
        "shopify_id",
        "name",
        "email",
        "financial_status",
        "fulfillment_status",
        "total_price",
        "currency",
        "shipping_address",
    )
    export = {"customer": [_plain(row) for row in customer], "orders": [_plain(row) for row in orders]}
    _complete(request, {"customer_records": len(export["customer"]), "orders": len(export["orders"])}, export)
    return f"exported {len(export['customer'])} customer and {len(export['orders'])} order records"


@job("redact_customer", replay=Replay.ALWAYS, reason="Scrubbing already-scrubbed data changes nothing.")
def redact_customer(event: Event, payload: dict) -> str:
    """customers/redact: remove the customer's personal data from records and stored payloads."""
    request = _privacy_request(event, payload, PrivacyRequest.Kind.CUSTOMER_REDACT)
    customer = payload.get("customer") or {}
    customer_id = customer.get("id")
    if not customer_id:
        raise ValueError("customers/redact without customer.id: cannot tell whose data to remove")
    now = timezone.now()
    customers = PlatformCustomer.objects.filter(shop=event.shop, shopify_id=customer_id).update(
        email="", first_name="", last_name="", phone="", redacted_at=now
    )
    if not customers:
        # A tombstone, so a customers/create still in the queue cannot write the data back.
        PlatformCustomer.objects.create(
            shop=event.shop,
            shopify_id=int(customer_id),
            gid=f"gid://shopify/Customer/{customer_id}",
            shopify_updated_at=now,
            redacted_at=now,
            last_event=event,
        )
    orders = _customer_orders(event.shop, customer_id, payload.get("orders_to_redact"))
    order_ids = {str(i) for i in orders.values_list("shopify_id", flat=True)}
    order_ids |= {str(i) for i in payload.get("orders_to_redact") or []}
    orders_scrubbed = orders.update(email="", shipping_address=None, redacted_at=now)
    needles = [str(customer_id).encode(), *(i.encode() for i in order_ids)]
    needles += [str(customer[key]).encode() for key in ("email", "phone") if customer.get(key)]
    note = f"customer {customer_id} redacted by webhook {event.webhook_id}"
    payloads = scrub_deliveries(Delivery.objects.filter(shop=event.shop), note, mentioning=needles)
    exports = PrivacyRequest.objects.filter(shop=event.shop, customer_shopify_id=customer_id).exclude(export=None)
    exports_cleared = exports.update(export=None)
    _complete(
        request,
        {
            "customer_records": customers,
            "orders": orders_scrubbed,
            "payloads": payloads,
            "exports_cleared": exports_cleared,
        },
    )
    return f"redacted {customers} customer, {orders_scrubbed} order records and {payloads} payloads"


@job("redact_shop", replay=Replay.ALWAYS, reason="Scrubbing already-scrubbed data changes nothing.")
def redact_shop(event: Event, payload: dict) -> str:
    """shop/redact: remove all personal data we hold for the shop."""
    request = _privacy_request(event, payload, PrivacyRequest.Kind.SHOP_REDACT)
    now = timezone.now()
    customers = PlatformCustomer.objects.filter(shop=event.shop).update(
        email="", first_name="", last_name="", phone="", redacted_at=now
    )
    orders = PlatformOrder.objects.filter(shop=event.shop).update(email="", shipping_address=None, redacted_at=now)
    payloads = scrub_deliveries(
        Delivery.objects.filter(shop=event.shop), f"shop redacted by webhook {event.webhook_id}"
    )
    exports_cleared = PrivacyRequest.objects.filter(shop=event.shop).exclude(export=None).update(export=None)
    proof = {"customer_records": customers, "orders": orders, "payloads": payloads, "exports_cleared": exports_cleared}
    _complete(request, proof)
    return f"redacted {customers} customers, {orders} orders and {payloads} payloads"


def _plain(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
