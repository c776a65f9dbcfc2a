"""REST Admin API over real HTTP: leaky bucket headers, 429, error bodies, versions, pagination."""

import re
import uuid

from tests.simulator.helpers import DOMAIN, TOKEN

UNAUTHORIZED = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}


def test_call_limit_header_counts_up_and_the_41st_call_gets_429_with_retry_after(clocked_api, clock):
    clocked_api.create_shop()
    for n in range(1, 41):
        response = clocked_api.rest("GET", "shop.json")
        assert response.status_code == 200
        assert response.headers["X-Shopify-Shop-Api-Call-Limit"] == f"{n}/40"
    refused = clocked_api.rest("GET", "shop.json")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "0.5"
    assert refused.headers["X-Shopify-Shop-Api-Call-Limit"] == "40/40"
    assert refused.json() == {
        "errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
    }
    clock.advance(10)  # 20 calls leak out at 2/s
    after = clocked_api.rest("GET", "shop.json")
    assert after.status_code == 200
    assert after.headers["X-Shopify-Shop-Api-Call-Limit"] == "21/40"


def test_plus_limits_are_configurable_per_shop(clocked_api):
    clocked_api.create_shop(rest_bucket_size=400, rest_leak_rate=20)
    for _ in range(400):
        assert clocked_api.rest("GET", "shop.json").status_code == 200
    refused = clocked_api.rest("GET", "shop.json")
    assert refused.status_code == 429
    assert refused.headers["X-Shopify-Shop-Api-Call-Limit"] == "400/400"
    assert refused.headers["Retry-After"] == "0.1"  # 1/20 s, rounded up to a tenth
    assert "Exceeded 20 calls per second" in refused.json()["errors"]


def test_throttling_can_be_disabled(clocked_api):
    clocked_api.create_shop(throttling=False)
    assert all(clocked_api.rest("GET", "shop.json").status_code == 200 for _ in range(60))


def test_access_scopes_endpoint_lists_write_scopes_with_the_reads_they_imply(api):
    api.create_shop(scopes=["read_products", "write_orders"])
    response = api.http.get(
        f"{api.base}/{DOMAIN}/admin/oauth/access_scopes.json", headers={"X-Shopify-Access-Token": TOKEN}
    )
    assert response.status_code == 200
    assert response.json() == {
        "access_scopes": [{"handle": "read_products"}, {"handle": "write_orders"}, {"handle": "read_orders"}]
    }


def test_error_statuses_and_bodies(api):
    api.create_shop(scopes=["write_products"])
    bad_token = api.rest("GET", "products.json", token="shpat_wrong")
    assert (bad_token.status_code, bad_token.json()) == (401, UNAUTHORIZED)
    missing_scope = api.rest("GET", "orders.json")
    assert missing_scope.status_code == 403
    assert missing_scope.json() == {"errors": "[API] This action requires merchant approval for read_orders scope."}
    assert api.rest("GET", "products/1.json").json() == {"errors": "Not Found"}
    assert api.rest("GET", "products/1.json").status_code == 404
    assert api.rest("GET", "shop.json", domain="no-such-shop.myshopify.com").status_code == 404
    product = api.records("products")[0]
    invalid = api.rest("PUT", f"products/{product['id']}.json", json={"product": {"title": "  "}})
    assert (invalid.status_code, invalid.json()) == (422, {"errors": {"title": ["can't be blank"]}})
    missing_root = api.rest("PUT", f"products/{product['id']}.json", json={"title": "x"})
    assert (missing_root.status_code, missing_root.json()) == (
        400,
        {"errors": {"product": "Required parameter missing or invalid"}},
    )
    api.control("POST", f"/shops/{DOMAIN}/freeze")
    frozen = api.rest("GET", "products.json")
    assert (frozen.status_code, frozen.json()) == (402, {"errors": "Unavailable Shop"})
    api.control("POST", f"/shops/{DOMAIN}/lock")
    locked = api.rest("GET", "products.json")
    assert (locked.status_code, locked.json()) == (423, {"errors": "This shop is unavailable"})
    api.control("POST", f"/shops/{DOMAIN}/unlock")
    api.control("POST", f"/shops/{DOMAIN}/unfreeze")
    assert api.rest("GET", "products.json").status_code == 200


def test_every_response_names_the_answering_version_and_a_request_id(api):
    api.create_shop()
    seen_ids = set()
    for requested, answered in [
        ("2026-07", "2026-07"),
        ("2025-07", "2026-01"),
        ("2027-01", "2026-01"),
        ("unstable", "unstable"),
    ]:
        for response in (
            api.rest("GET", "shop.json", version=requested),
            api.rest("GET", "shop.json", version=requested, token="bad"),
        ):
            assert response.headers["X-Shopify-API-Version"] == answered
            request_id = response.headers["X-Request-Id"]
            uuid.UUID(request_id)
            seen_ids.add(request_id)
    assert len(seen_ids) == 8


def test_cursor_pagination_follows_link_headers_through_every_product(api):
    api.create_shop(records=100)
    expected = sorted(p["id"] for p in api.records("products"))
    url = f"{api.base}/{DOMAIN}/admin/api/2026-10/products.json?limit=7&fields=id,title"
    seen, pages = [], 0
    while url:
        response = api.http.get(url, headers={"X-Shopify-Access-Token": TOKEN})
        assert response.status_code == 200
        products = response.json()["products"]
        assert all(set(p) == {"id", "title"} for p in products)
        seen += [p["id"] for p in products]
        pages += 1
        if pages == 2:
            assert 'rel="previous"' in response.headers["Link"]
        match = re.search(r'<([^>]+)>; rel="next"', response.headers.get("Link", ""))
        url = match.group(1) if match else None
    assert seen == expected
    assert pages == -(-len(expected) // 7)


def test_orders_default_to_open_and_counts_match(api):
    api.create_shop(records=100)
    orders = api.records("orders")
    open_ids = sorted(o["id"] for o in orders if o["closed_at"] is None and o["cancelled_at"] is None)
    listed = api.rest("GET", "orders.json", params={"limit": 250}).json()["orders"]
    assert [o["id"] for o in listed] == open_ids
    assert api.rest("GET", "orders/count.json", params={"status": "any"}).json() == {"count": len(orders)}
    assert api.rest("GET", "orders/count.json").json() == {"count": len(open_ids)}


def test_inventory_levels_read_and_set(api):
    api.create_shop()
    level = api.records("inventory_levels")[0]
    listed = api.rest("GET", "inventory_levels.json", params={"inventory_item_ids": level["inventory_item_id"]}).json()
    assert level in listed["inventory_levels"]
    assert len(listed["inventory_levels"]) == 3  # stocked at every location
    body = {"inventory_item_id": level["inventory_item_id"], "location_id": level["location_id"], "available": 77}
    updated = api.rest("POST", "inventory_levels/set.json", json=body)
    assert updated.status_code == 200
    assert updated.json()["inventory_level"]["available"] == 77
    bad = api.rest("POST", "inventory_levels/set.json", json={**body, "available": "lots"})
    assert (bad.status_code, bad.json()) == (422, {"errors": {"available": ["is not a number"]}})
    assert api.rest("GET", "inventory_levels.json").status_code == 422
