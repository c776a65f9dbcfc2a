"""Webhook deliveries: headers, signatures, payloads, retries on Shopify's schedule (time-scaled),
and removal of a subscription whose delivery failed every retry."""

import itertools
import json
import re
import time
import uuid

import pytest

from integrations.simulator.webhooks import RETRY_DELAYS
from tests.simulator.conftest import TIME_SCALE
from tests.simulator.helpers import DOMAIN, SECRET, independent_hmac_ok, wait_until

EXPECTED_HEADERS = {
    "Content-Type",
    "User-Agent",
    "X-Shopify-Topic",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Shop-Domain",
    "X-Shopify-API-Version",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Triggered-At",
    "X-Shopify-Event-Id",
}


def _edit_product(api, **changes):
    product = api.records("products")[0]
    response = api.control("PATCH", f"/shops/{DOMAIN}/records/products/{product['id']}", json={"changes": changes})
    assert response.status_code == 200
    return response.json()


def test_retry_schedule_is_eight_retries_over_four_hours():
    assert len(RETRY_DELAYS) == 8
    assert sum(RETRY_DELAYS) == 4 * 3600
    assert all(later > earlier for earlier, later in itertools.pairwise(RETRY_DELAYS))


def test_a_delivery_carries_shopifys_header_set_and_a_valid_signature(api, receiver):
    api.create_shop(webhook_url=receiver.url, webhook_api_version="2026-07")
    product = _edit_product(api, title="Signed Mug")
    delivery = receiver.wait_for(1, topic="products/update")[0]
    sent = {name.lower() for name in delivery.headers}
    assert {h.lower() for h in EXPECTED_HEADERS} <= sent
    assert delivery.header("X-Shopify-Topic") == "products/update"
    assert delivery.header("X-Shopify-Shop-Domain") == DOMAIN
    assert delivery.header("X-Shopify-API-Version") == "2026-07"
    assert delivery.header("User-Agent") == "Shopify-Captain-Hook"
    assert delivery.header("Content-Type") == "application/json"
    uuid.UUID(delivery.header("X-Shopify-Webhook-Id"))
    uuid.UUID(delivery.header("X-Shopify-Event-Id"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", delivery.header("X-Shopify-Triggered-At"))
    signature = delivery.header("X-Shopify-Hmac-Sha256")
    assert len(signature) == 44
    assert independent_hmac_ok(delivery.body, signature, SECRET)
    assert not independent_hmac_ok(delivery.body + b" ", signature, SECRET)
    payload = json.loads(delivery.body)
    assert payload["id"] == product["id"]
    assert payload["admin_graphql_api_id"] == f"gid://shopify/Product/{product['id']}"
    assert payload["title"] == "Signed Mug"
    assert payload["updated_at"] == product["updated_at"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-05:00", payload["updated_at"])
    assert all({"id", "admin_graphql_api_id", "updated_at"} <= set(v) for v in payload["variants"])


def test_failed_delivery_is_retried_on_the_scaled_schedule_with_the_same_webhook_id(api, receiver):
    receiver.default_status = 500
    api.create_shop(webhook_url=receiver.url)
    _edit_product(api, title="Never Delivered")
    arrivals = receiver.wait_for(9, timeout=10, topic="products/update")
    assert len({a.header("X-Shopify-Webhook-Id") for a in arrivals}) == 1
    assert len({a.header("X-Shopify-Event-Id") for a in arrivals}) == 1
    assert len({a.body for a in arrivals}) == 1
    assert len({a.header("X-Shopify-Hmac-Sha256") for a in arrivals}) == 1
    delivery = wait_until(lambda: [d for d in api.deliveries(topic="products/update") if d["status"] == "failed"])[0]
    attempts = delivery["attempts"]
    assert [a["status_code"] for a in attempts] == [500] * 9
    for previous, attempt, delay in zip(attempts[:-1], attempts[1:], RETRY_DELAYS, strict=True):
        assert attempt["scheduled_at"] - previous["finished_at"] == pytest.approx(delay * TIME_SCALE, abs=1e-6)
        assert attempt["started_at"] >= attempt["scheduled_at"]
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(arrivals)]
    for gap, delay in zip(gaps, RETRY_DELAYS, strict=True):
        assert gap >= delay * TIME_SCALE * 0.9
    time.sleep(0.2)
    assert len(receiver.of("products/update")) == 9  # no tenth attempt


def test_subscription_is_removed_after_every_retry_failed(api, receiver):
    receiver.default_status = 503
    api.create_shop(webhook_url=receiver.url)
    _edit_product(api, title="First")
    removals = wait_until(
        lambda: api.control("GET", f"/shops/{DOMAIN}/subscription-removals").json()["removals"], timeout=10
    )
    assert removals[0]["topic"] == "products/update"
    assert removals[0]["reason"].startswith("9 consecutive failed attempts")
    subscriptions = api.control("GET", f"/shops/{DOMAIN}/subscriptions").json()["subscriptions"]
    assert [s["active"] for s in subscriptions if s["topic"] == "products/update"] == [False]
    assert all(s["active"] for s in subscriptions if s["topic"] != "products/update")
    receiver.default_status = 200
    _edit_product(api, title="Second")
    customer = api.records("customers")[0]
    api.control("PATCH", f"/shops/{DOMAIN}/records/customers/{customer['id']}", json={"changes": {"note": "hi"}})
    receiver.wait_for(1, topic="customers/update")
    assert len(receiver.of("products/update")) == 9  # nothing new for the removed subscription


def test_success_stops_the_retries(api, receiver):
    receiver.statuses.extend([500, 503])
    api.create_shop(webhook_url=receiver.url)
    _edit_product(api, title="Third Time Lucky")
    receiver.wait_for(3, topic="products/update")
    delivery = wait_until(lambda: [d for d in api.deliveries(topic="products/update") if d["status"] == "delivered"])[0]
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 200]
    time.sleep(0.1)
    assert len(receiver.of("products/update")) == 3


def test_redirects_are_failures_and_not_followed(api, receiver):
    receiver.statuses.extend([301])
    api.create_shop(webhook_url=receiver.url)
    _edit_product(api, title="Moved")
    arrivals = receiver.wait_for(2, topic="products/update")
    assert {a.path for a in arrivals} == {"/webhooks/shopify"}
    delivery = wait_until(lambda: [d for d in api.deliveries(topic="products/update") if d["status"] == "delivered"])[0]
    assert [a["status_code"] for a in delivery["attempts"]] == [301, 200]


def test_a_slow_receiver_times_out_and_is_retried(api, receiver):
    receiver.delay = 0.8  # the test simulator allows 0.5 s per request
    api.create_shop(webhook_url=receiver.url)
    _edit_product(api, title="Slow")
    receiver.wait_for(2, topic="products/update", timeout=5)
    receiver.delay = 0
    delivery = wait_until(lambda: [d for d in api.deliveries(topic="products/update") if d["attempts"]])[0]
    assert delivery["attempts"][0]["error"] == "timeout"
    assert delivery["attempts"][0]["status_code"] is None


def test_one_action_shares_an_event_id_across_topics(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    variant = api.records("variants")[0]
    order = api.control(
        "POST", f"/shops/{DOMAIN}/orders", json={"lines": [{"variant_id": variant["id"], "quantity": 2}]}
    ).json()
    topics = {"customers/create", "orders/create", "orders/paid", "inventory_levels/update"}
    arrivals = receiver.wait_for(4)
    assert {a.header("X-Shopify-Topic") for a in arrivals} == topics
    assert len({a.header("X-Shopify-Event-Id") for a in arrivals}) == 1
    assert len({a.header("X-Shopify-Webhook-Id") for a in arrivals}) == 4
    created = json.loads(receiver.of("orders/create")[0].body)
    assert created["id"] == order["id"]
    assert created["line_items"][0]["id"] > 2**53
    assert (
        created["line_items"][0]["admin_graphql_api_id"] == f"gid://shopify/LineItem/{created['line_items'][0]['id']}"
    )
    level = json.loads(receiver.of("inventory_levels/update")[0].body)
    assert "id" not in level
    assert (
        level["admin_graphql_api_id"]
        == f"gid://shopify/InventoryLevel/{level['location_id']}?inventory_item_id={variant['inventory_item_id']}"
    )
    api.control("POST", f"/shops/{DOMAIN}/orders/{order['id']}/fulfill")
    fulfillment = json.loads(receiver.wait_for(1, topic="fulfillments/create")[0].body)
    assert fulfillment["order_id"] == order["id"]
    assert fulfillment["admin_graphql_api_id"] == f"gid://shopify/Fulfillment/{fulfillment['id']}"


def test_api_changes_emit_webhooks_and_two_subscriptions_get_two_deliveries(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    api.control(
        "POST",
        f"/shops/{DOMAIN}/subscriptions",
        json={"topic": "customers/update", "address": receiver.url + "?second"},
    )
    customer = api.records("customers")[0]
    api.graphql(
        "mutation($i: CustomerInput!) { customerUpdate(input: $i) { userErrors { message } } }",
        {"i": {"id": customer["admin_graphql_api_id"], "note": "via API"}},
    )
    arrivals = receiver.wait_for(2, topic="customers/update")
    assert {a.path for a in arrivals} == {"/webhooks/shopify", "/webhooks/shopify?second"}
    assert len({a.header("X-Shopify-Event-Id") for a in arrivals}) == 1
    assert len({a.header("X-Shopify-Webhook-Id") for a in arrivals}) == 2
    assert json.loads(arrivals[0].body)["note"] == "via API"


def test_no_deliveries_for_topics_whose_scope_is_missing(api, receiver):
    api.create_shop(webhook_url=receiver.url, scopes=["write_products", "write_inventory"])
    variant = api.records("variants")[0]
    api.control("POST", f"/shops/{DOMAIN}/orders", json={"lines": [{"variant_id": variant["id"]}]})
    receiver.wait_for(1, topic="inventory_levels/update")
    time.sleep(0.1)
    assert {a.header("X-Shopify-Topic") for a in receiver.received} == {"inventory_levels/update"}


def test_mandatory_privacy_topics(api, receiver):
    api.create_shop(webhook_url=receiver.url, topics=[])
    customer = api.records("customers")[0]
    orders = sorted(o["id"] for o in api.records("orders") if (o["customer"] or {}).get("id") == customer["id"])
    api.control(
        "POST",
        f"/shops/{DOMAIN}/privacy/customers-data-request",
        json={"customer_id": customer["id"], "data_request_id": 3301},
    )
    api.control("POST", f"/shops/{DOMAIN}/privacy/customers-redact", json={"customer_id": customer["id"]})
    api.control("POST", f"/shops/{DOMAIN}/privacy/shop-redact")
    shop_id = api.control("GET", f"/shops/{DOMAIN}").json()["shop_id"]
    person = {"id": customer["id"], "email": customer["email"], "phone": customer["phone"]}
    data_request = json.loads(receiver.wait_for(1, topic="customers/data_request")[0].body)
    assert data_request == {
        "shop_id": shop_id,
        "shop_domain": DOMAIN,
        "orders_requested": orders,
        "customer": person,
        "data_request": {"id": 3301},
    }
    redact = json.loads(receiver.wait_for(1, topic="customers/redact")[0].body)
    assert redact == {"shop_id": shop_id, "shop_domain": DOMAIN, "customer": person, "orders_to_redact": orders}
    assert json.loads(receiver.wait_for(1, topic="shop/redact")[0].body) == {"shop_id": shop_id, "shop_domain": DOMAIN}


def test_control_interface_lists_deliveries_with_their_outcome(api, receiver):
    receiver.statuses.extend([500])
    api.create_shop(webhook_url=receiver.url)
    _edit_product(api, title="Listed")
    delivery = wait_until(
        lambda: [d for d in api.deliveries(topic="products/update", body="1") if d["status"] == "delivered"]
    )[0]
    assert delivery["webhook_id"] == receiver.wait_for(2)[0].header("X-Shopify-Webhook-Id")
    assert [(a["number"], a["status_code"], a["ok"]) for a in delivery["attempts"]] == [(1, 500, False), (2, 200, True)]
    assert json.loads(delivery["body"])["title"] == "Listed"
    assert api.deliveries(status="failed") == []
