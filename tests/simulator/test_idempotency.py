"""`@idempotent(key:)` on the inventory mutations, as Shopify documents it."""

import threading
import time

import pytest

from tests.simulator.helpers import DOMAIN

ADJUST = """mutation($input: InventoryAdjustQuantitiesInput!) { inventoryAdjustQuantities(input: $input) %s {
  inventoryAdjustmentGroup { id changes { delta quantityAfterChange } } userErrors { field message code } } }"""


def _adjust(api, level, delta, *, key=None, version="2026-10"):
    directive = f'@idempotent(key: "{key}")' if key else ""
    variables = {
        "input": {
            "name": "available",
            "reason": "correction",
            "changes": [
                {
                    "delta": delta,
                    "inventoryItemId": f"gid://shopify/InventoryItem/{level['inventory_item_id']}",
                    "locationId": f"gid://shopify/Location/{level['location_id']}",
                }
            ],
        }
    }
    return api.graphql(ADJUST % directive, variables, version=version).json()


def _available(api, level):
    key = f"{level['inventory_item_id']}:{level['location_id']}"
    return api.control("GET", f"/shops/{DOMAIN}/records/inventory_levels/{key}").json()["available"]


@pytest.mark.parametrize("version", ["2026-04", "2026-07", "2026-10", "unstable"])
def test_directive_is_required_from_2026_04(api, version):
    api.create_shop()
    level = api.records("inventory_levels")[0]
    body = _adjust(api, level, 5, version=version)
    assert body["data"] == {"inventoryAdjustQuantities": None}
    assert (
        body["errors"][0]["message"]
        == "The @idempotent directive is required for inventoryAdjustQuantities from API version 2026-04."
    )
    assert _available(api, level) == level["available"]


def test_directive_is_optional_on_2026_01_and_on_versions_falling_forward_to_it(api):
    api.create_shop()
    level = api.records("inventory_levels")[0]
    for version in ("2026-01", "2025-10"):
        body = _adjust(api, level, 1, version=version)
        assert body["data"]["inventoryAdjustQuantities"]["userErrors"] == []
    assert _available(api, level) == level["available"] + 2


def test_a_repeated_key_returns_the_original_result_and_changes_stock_once(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    level = api.records("inventory_levels")[0]
    first = _adjust(api, level, 5, key="7d1c5b43-4f2e-4c49-9d36-8f0b7a1e2a10")
    again = _adjust(api, level, 5, key="7d1c5b43-4f2e-4c49-9d36-8f0b7a1e2a10")
    assert again["data"] == first["data"]
    assert first["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]["changes"] == [
        {"delta": 5, "quantityAfterChange": level["available"] + 5}
    ]
    assert _available(api, level) == level["available"] + 5
    receiver.wait_for(1, topic="inventory_levels/update")
    time.sleep(0.2)
    assert len(receiver.of("inventory_levels/update")) == 1
    third = _adjust(api, level, 5, key="a-new-key")
    assert (
        third["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]["id"]
        != (first["data"]["inventoryAdjustQuantities"]["inventoryAdjustmentGroup"]["id"])
    )
    assert _available(api, level) == level["available"] + 10


def test_the_same_key_with_other_parameters_is_a_mismatch(api):
    api.create_shop()
    level = api.records("inventory_levels")[0]
    _adjust(api, level, 5, key="k-1")
    mismatch = _adjust(api, level, 6, key="k-1")["data"]["inventoryAdjustQuantities"]
    assert mismatch["inventoryAdjustmentGroup"] is None
    assert mismatch["userErrors"] == [
        {
            "field": None,
            "message": "The idempotency key was already used with different parameters.",
            "code": "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
        }
    ]
    assert _available(api, level) == level["available"] + 5


def test_a_retry_that_overtakes_a_slow_original_gets_concurrent_request(api):
    api.create_shop()
    level = api.records("inventory_levels")[0]
    # The original stalls 0.6 s after registering its key (only it is slowed: count=1).
    api.fault("slow_responses", params={"seconds": 0.6}, count=1)
    results = {}
    original = threading.Thread(
        target=lambda: results.setdefault("original", _adjust(api.__class__(api.base), level, 4, key="slow"))
    )
    original.start()
    time.sleep(0.2)
    overtaking = _adjust(api, level, 4, key="slow")["data"]["inventoryAdjustQuantities"]
    assert overtaking["userErrors"][0]["code"] == "IDEMPOTENCY_CONCURRENT_REQUEST"
    original.join(5)
    assert results["original"]["data"]["inventoryAdjustQuantities"]["userErrors"] == []
    later = _adjust(api, level, 4, key="slow")
    assert later["data"] == results["original"]["data"]
    assert _available(api, level) == level["available"] + 4
