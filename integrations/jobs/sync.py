"""Sync jobs: keep the platform's orders, products, variants, inventory levels and customers in
step with Shopify, from the declared field maps (`fields`). Idempotent and order-safe: each record
is one conditional upsert on Shopify's `updated_at` (`records`); the fulfillment notification is
unique per order.

Before the upsert, a webhook that is not an echo of our own call and would change a field the
platform owns for the shop is noted as ownership drift (`ownership`): one indexed SELECT per
event, and only for resources with platform-owned fields (products' titles and inventory levels
by default); nothing at all for the other resources or for echoes."""

from django.db import connection
from django.utils import timezone

from integrations.jobs.fields import CUSTOMER, INVENTORY_LEVEL, ORDER, PRODUCT, VARIANT, Resource
from integrations.jobs.ownership import note_drift, watched_fields
from integrations.jobs.records import Written, upsert_newer
from integrations.jobs.registry import Decision, always, conditional, job
from integrations.jobs.resources import shopify_time
from integrations.models import Event, FulfillmentNotification, Job, PlatformCustomer, PlatformOrder


def _row(resource: Resource, payload: dict, parent: dict | None, updated_at) -> tuple[dict, dict, object, str]:
    """What one record's upsert writes: (key, values, updated_at, gid)."""
    key, values = resource.key_of(payload), resource.values(payload, parent)
    gid = values.get("gid") or payload.get("admin_graphql_api_id") or " ".join(f"{k}={v}" for k, v in key.items())
    return key, values, updated_at or shopify_time(payload.get("updated_at")), str(gid)


def _write(resource: Resource, event: Event, row: tuple) -> Written:
    key, values, updated_at, _gid = row
    return upsert_newer(resource, event=event, key=key, values=values, updated_at=updated_at)


def sync_record(resource: Resource, event: Event, payload: dict, *, parent: dict | None = None, updated_at=None):
    row = _row(resource, payload, parent, updated_at)
    if watched := watched_fields(event, resource):
        note_drift(resource, event, [row], watched)
    return _write(resource, event, row)


@job(
    "sync_order",
    decision=always(
        "Writes only when the event is newer than the stored order (updated_at), so a replay never "
        "duplicates or rolls back an order."
    ),
    scopes=("read_orders",),
    effect="Upserts the platform's order, unique per (shop, order id), only when the event's updated_at is newer "
    "than the stored one: a second run writes nothing.",
    writes=(("platform", "order", ""),),
    refetchable=True,
)
def sync_order(event: Event, payload: dict) -> str:
    """Keep the platform's copy of the order in step with Shopify (never its personal data again
    once the order was redacted)."""
    return str(sync_record(ORDER, event, payload))


def _fulfillment_insert_sql() -> str:
    table = FulfillmentNotification._meta.db_table
    return (
        f"INSERT INTO {table} (shop_id, order_shopify_id, order_name, event_id, created_at) "  # noqa: S608
        f"VALUES (%s, %s, %s, %s, %s) ON CONFLICT (shop_id, order_shopify_id) DO NOTHING RETURNING id"
    )


def _order_not_fulfilled(event: Event, job: Job | None) -> Decision:
    order_id = event.resource_id
    order = (
        PlatformOrder.objects.filter(shop_id=event.shop_id, shopify_id=int(order_id))
        .values("fulfillment_status", "name", "shopify_updated_at")
        .first()
        if order_id.isdigit()
        else None
    )
    if order and order["fulfillment_status"] == "fulfilled":
        return Decision(
            False,
            f"order {order['name'] or order_id} is already fulfilled (our copy, as of Shopify's "
            f"{order['shopify_updated_at']:%Y-%m-%d %H:%M} UTC): there is nothing left to pick",
        )
    return Decision(True, "the order is not fulfilled yet; at most one notification per order is ever sent")


@job(
    "notify_fulfillment",
    decision=conditional(
        "Safe while the order is not fulfilled yet: at most one notification per order is ever sent (a database "
        "constraint refuses a second), and a fulfilled order has nothing left to pick.",
        _order_not_fulfilled,
    ),
    scopes=("read_orders",),
    effect="Inserts one fulfillment notification per (shop, order): a unique constraint, so a second insert "
    "(a replay racing a live delivery, or another replay) does nothing.",
    writes=(("platform", "fulfillment_notification", ""),),
)
def notify_fulfillment(event: Event, payload: dict) -> str:
    """Tell the fulfillment queue that a paid order can be picked and shipped."""
    if payload.get("financial_status") not in ("paid", None):
        return f"not paid ({payload.get('financial_status')}): nothing to fulfil"
    order_id = int(payload["id"])
    name = str(payload.get("name") or "")[:64]
    # One statement: the unique (shop, order) constraint decides, even between two pumps at once.
    created_at = FulfillmentNotification._meta.get_field("created_at").get_db_prep_save(timezone.now(), connection)
    with connection.cursor() as cursor:
        cursor.execute(_fulfillment_insert_sql(), [event.shop_id, order_id, name, event.pk, created_at])
        inserted = cursor.fetchone()
    if inserted is not None:
        return "notified"
    earlier = FulfillmentNotification.objects.filter(shop_id=event.shop_id, order_shopify_id=order_id)
    earlier = earlier.values("event_id", "created_at").first() or {}
    return f"already notified: order {name or order_id} went to fulfillment at {earlier.get('created_at')} (event {earlier.get('event_id')}); not sent again"


@job(
    "sync_product",
    decision=always("Product and each variant are written only when newer than what we hold (updated_at)."),
    scopes=("read_products",),
    effect="Upserts the product and each variant, unique per (shop, id), each only when newer (updated_at).",
    writes=(("platform", "product", ""), ("platform", "variant", "")),
    refetchable=True,
)
def sync_product(event: Event, payload: dict) -> str:
    """Keep the product and its variants in step with Shopify."""
    product_updated = shopify_time(payload.get("updated_at"))
    result = sync_record(PRODUCT, event, payload, updated_at=product_updated)
    rows = [
        _row(VARIANT, variant, payload, shopify_time(variant.get("updated_at"), required=False) or product_updated)
        for variant in payload.get("variants") or []
    ]
    if rows and (watched := watched_fields(event, VARIANT)):
        note_drift(VARIANT, event, rows, watched)  # one SELECT for all the variants
    variants: dict[str, int] = {}
    for row in rows:
        written = _write(VARIANT, event, row)
        variants[written.outcome] = variants.get(written.outcome, 0) + 1
    if variants:
        return f"{result}; variants: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(variants.items()))
    return str(result)


@job(
    "sync_inventory_level",
    decision=always(
        "An inventory level is set (not adjusted) and only when the event is newer, so replays cannot double-count stock."
    ),
    scopes=("read_inventory",),
    effect="Sets the available count, unique per (shop, item, location), only when newer (updated_at); it never "
    "adds to a count.",
    writes=(("platform", "inventory_level", "available"),),
    refetchable=True,
)
def sync_inventory_level(event: Event, payload: dict) -> str:
    """Keep the available quantity per item and location in step with Shopify."""
    return str(sync_record(INVENTORY_LEVEL, event, payload))


def _customer_not_redacted(event: Event, job: Job | None) -> Decision:
    customer_id = event.resource_id
    if (
        customer_id.isdigit()
        and PlatformCustomer.objects.filter(
            shop_id=event.shop_id, shopify_id=int(customer_id), redacted_at__isnull=False
        ).exists()
    ):
        return Decision(False, f"customer {customer_id} was redacted since: replaying would write personal data back")
    return Decision(True, "the customer has not been redacted; the write happens only if the event is newer")


@job(
    "sync_customer",
    decision=conditional(
        "Safe unless the customer has since been redacted: the job never writes personal data back for a "
        "redacted customer.",
        _customer_not_redacted,
    ),
    scopes=("read_customers",),
    effect="Upserts the platform's customer, unique per (shop, customer id), only when newer (updated_at), and never "
    "for a redacted customer.",
    writes=(("platform", "customer", ""),),
    refetchable=True,
)
def sync_customer(event: Event, payload: dict) -> str:
    """Keep the customer record in step with Shopify (never after a redaction)."""
    written: Written = sync_record(CUSTOMER, event, payload)
    return str(written)
