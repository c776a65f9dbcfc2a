"""Seeded stores: realistic, Shopify-shaped and deterministic by seed."""

import json
import re

import pytest

from integrations.simulator.store import Shop, ShopConfig

KINDS = ("locations", "products", "variants", "inventory_items", "customers", "orders", "fulfillments")
GID_TYPES = {
    "locations": "Location",
    "products": "Product",
    "variants": "ProductVariant",
    "inventory_items": "InventoryItem",
    "customers": "Customer",
    "orders": "Order",
    "fulfillments": "Fulfillment",
}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-05:00")


def _shop(records, seed):
    return Shop(ShopConfig(domain="seeded.myshopify.com", token="t", webhook_secret="s", records=records, seed=seed))


def _dump(shop):
    r = shop.records
    data = {kind: [getattr(r, kind)[i] for i in getattr(r, kind).ids] for kind in KINDS}
    data["levels"] = sorted(r.levels.values(), key=lambda level: (level["inventory_item_id"], level["location_id"]))
    return json.dumps(data, sort_keys=True)


def test_same_seed_same_store_other_seed_other_store():
    assert _dump(_shop(300, 5)) == _dump(_shop(300, 5))
    assert _dump(_shop(300, 5)) != _dump(_shop(300, 6))


def test_record_mix_follows_the_requested_size():
    counts = _shop(1000, 1).records.counts()
    assert (counts["products"], counts["customers"], counts["orders"], counts["locations"]) == (300, 300, 400, 3)
    assert counts["variants"] >= counts["products"]
    assert counts["inventory_levels"] == counts["variants"] * 3
    assert 0 < counts["fulfillments"] < counts["orders"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_record_has_numeric_id_gid_and_updated_at(kind):
    shop = _shop(200, 3)
    index = getattr(shop.records, kind)
    assert index
    for record in index.values():
        assert isinstance(record["id"], int)
        assert record["admin_graphql_api_id"] == f"gid://shopify/{GID_TYPES[kind]}/{record['id']}"
        assert TIMESTAMP.fullmatch(record["updated_at"])
        assert record["updated_at"] >= record["created_at"]


def test_orders_reference_real_records_and_add_up():
    shop = _shop(200, 9)
    records = shop.records
    for order in records.orders.values():
        assert order["customer"]["id"] in records.customers
        subtotal = sum(float(li["price"]) * li["quantity"] for li in order["line_items"])
        assert float(order["subtotal_price"]) == pytest.approx(subtotal)
        assert float(order["total_price"]) == pytest.approx(float(order["subtotal_price"]) + float(order["total_tax"]))
        for item in order["line_items"]:
            assert item["variant_id"] in records.variants
            assert item["id"] > 2**53  # as large as Shopify's can be
        for fulfillment in order["fulfillments"]:
            assert fulfillment["order_id"] == order["id"]
    for variant in records.variants.values():
        levels = [records.levels[(variant["inventory_item_id"], loc)]["available"] for loc in records.locations.ids]
        assert variant["inventory_quantity"] == sum(levels)


def test_a_large_store_seeds():
    shop = _shop(20_000, 2)
    assert shop.records.counts()["orders"] == 8000
    assert len(shop.records.variants) > 6000
