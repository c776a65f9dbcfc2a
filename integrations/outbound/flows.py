"""What the demo platform pushes to Shopify on its own initiative (jobs that react to webhooks
are in `integrations.jobs.pushes`):

- stock levels from the warehouse: `inventory.set` with the level we last saw as the compare guard
  (`changeFromQuantity`), so a level that changed in Shopify since is refused as stale, never
  overwritten;
- product titles and descriptions, which the platform owns: `product.update`.

Each builds Shopify's own variables and enqueues one call; the commands and pages call these.
"""

from integrations.models import OutboundCall, PlatformInventoryLevel, PlatformProduct, Shop
from integrations.outbound.queue import QueueError, enqueue


def push_stock_level(
    shop: Shop,
    *,
    inventory_item_id: int,
    location_id: int,
    quantity: int,
    by=None,
    lane: str = OutboundCall.Lane.LIVE,
    origin: str = OutboundCall.Origin.PERSON,
    origin_ref: str = "warehouse",
    compare_to: int | None = None,
) -> tuple[OutboundCall, bool]:
    """Set the available quantity at a location to the warehouse's count.

    The compare guard is `compare_to`, else what Shopify will hold when this call runs: the
    quantity of an earlier call for the level that is still to run (calls for one record run in
    order) or that applied after the platform last synced the level, else the synced level. With
    none of these the call is refused: we would be overwriting a value we never saw."""
    if compare_to is None:
        compare_to, pending = _expected_level(shop, inventory_item_id, location_id)
        if pending is not None and compare_to == int(quantity):
            return pending, False  # the same count pushed twice: the call for it is there already
    variables = {
        "input": {
            "name": "available",
            "reason": "correction",
            "referenceDocumentUri": f"logistics://warehouse/stock-count/{inventory_item_id}-{location_id}",
            "quantities": [
                {
                    "inventoryItemId": f"gid://shopify/InventoryItem/{inventory_item_id}",
                    "locationId": f"gid://shopify/Location/{location_id}",
                    "quantity": int(quantity),
                    "changeFromQuantity": int(compare_to),
                }
            ],
        }
    }
    return enqueue(
        shop,
        "inventory.set",
        variables,
        origin=origin,
        origin_ref=origin_ref,
        lane=lane,
        why=f"warehouse count: {quantity} available (Shopify last showed {compare_to})",
        label=f"item {inventory_item_id} @ location {location_id}",
        by=by,
    )


def _expected_level(shop: Shop, inventory_item_id: int, location_id: int) -> tuple[int, OutboundCall | None]:
    """What Shopify will hold once earlier calls ran, and the call that says so (if one does)."""
    level = PlatformInventoryLevel.objects.filter(
        shop=shop, inventory_item_id=inventory_item_id, location_id=location_id
    ).first()
    target = f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={inventory_item_id}"
    latest = (
        OutboundCall.objects.filter(shop=shop, target_gid=target, operation="inventory.set")
        .filter(status__in=[*OutboundCall.ACTIVE, OutboundCall.Status.SUCCEEDED])
        .order_by("-id")
        .first()
    )
    if latest is not None and (
        latest.status != OutboundCall.Status.SUCCEEDED
        or level is None
        or (latest.result_updated_at and latest.result_updated_at > level.shopify_updated_at)
    ):
        return int(latest.input["input"]["quantities"][0]["quantity"]), latest
    if level is None or level.available is None:
        raise QueueError(
            f"the platform has never seen item {inventory_item_id} at location {location_id}: no value to "
            "compare against, so the write could overwrite a change made in Shopify. Sync it first or pass "
            "the quantity you expect Shopify to hold."
        )
    return level.available, None


def push_product_content(
    shop: Shop,
    *,
    product_id: int,
    title: str | None = None,
    description_html: str | None = None,
    by=None,
    lane: str = OutboundCall.Lane.LIVE,
    origin: str = OutboundCall.Origin.PERSON,
    origin_ref: str = "catalog",
) -> tuple[OutboundCall, bool]:
    """Send the platform's title and/or description of a product to Shopify."""
    product = {"id": f"gid://shopify/Product/{int(product_id)}"}
    if title is not None:
        if not title.strip():
            raise QueueError("a product title cannot be blank")
        product["title"] = title
    if description_html is not None:
        product["descriptionHtml"] = description_html
    if len(product) == 1:
        raise QueueError("give a title, a description, or both")
    known = (
        PlatformProduct.objects.filter(shop=shop, shopify_id=int(product_id)).values_list("title", flat=True).first()
    )
    return enqueue(
        shop,
        "product.update",
        {"product": product},
        origin=origin,
        origin_ref=origin_ref,
        lane=lane,
        why="the platform owns product content",
        label=(title or known or f"Product {product_id}")[:100],
        by=by,
    )
