"""Every injectable fault, observed over real HTTP, and deterministic given its seed."""

import json
import time

from tests.simulator.helpers import DOMAIN, SECRET, independent_hmac_ok, wait_until

OTHER = "other-shop.myshopify.com"


def _edit(api, title, domain=DOMAIN):
    product = api.records("products", domain)[0]
    api.control("PATCH", f"/shops/{domain}/records/products/{product['id']}", json={"changes": {"title": title}})


def _titles(arrivals):
    return [json.loads(a.body)["title"] for a in arrivals]


def test_duplicate_delivery_sends_the_same_webhook_twice(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    api.fault("duplicate_delivery")
    _edit(api, "Twice")
    first, second = receiver.wait_for(2, topic="products/update")
    assert first.header("X-Shopify-Webhook-Id") == second.header("X-Shopify-Webhook-Id")
    assert first.body == second.body
    assert first.header("X-Shopify-Hmac-Sha256") == second.header("X-Shopify-Hmac-Sha256")
    listed = api.deliveries(topic="products/update")
    assert sorted(d["copy_of"] is not None for d in listed) == [False, True]


def test_out_of_order_releases_held_deliveries_newest_first(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    api.fault("out_of_order", params={"window": 0.3, "gap": 0.05})
    for title in ("Edit 1", "Edit 2", "Edit 3"):
        _edit(api, title)
    arrivals = receiver.wait_for(3, topic="products/update")
    assert _titles(arrivals) == ["Edit 3", "Edit 2", "Edit 1"]
    triggered = [a.header("X-Shopify-Triggered-At") for a in arrivals]
    assert triggered == sorted(triggered, reverse=True)
    api.control("DELETE", f"/shops/{DOMAIN}/faults/out_of_order")
    _edit(api, "Edit 4")
    _edit(api, "Edit 5")
    assert _titles(receiver.wait_for(5, topic="products/update"))[3:] == ["Edit 4", "Edit 5"]


def test_delay_holds_the_first_attempt(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    api.fault("delay", params={"seconds": 0.4})
    sent_at = time.time()
    _edit(api, "Late")
    arrival = receiver.wait_for(1, topic="products/update")[0]
    assert arrival.at - sent_at >= 0.4
    delivery = wait_until(lambda: [d for d in api.deliveries(topic="products/update") if d["attempts"]])[0]
    assert delivery["faults"] == ["delay"]
    assert delivery["attempts"][0]["scheduled_at"] - delivery["created_at"] >= 0.4


def test_wrong_signature_fails_an_independent_hmac_check(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    _edit(api, "Good")
    good = receiver.wait_for(1, topic="products/update")[0]
    assert independent_hmac_ok(good.body, good.header("X-Shopify-Hmac-Sha256"), SECRET)
    api.fault("wrong_signature")
    _edit(api, "Forged")
    bad = receiver.wait_for(2, topic="products/update")[1]
    assert json.loads(bad.body)["title"] == "Forged"
    assert len(bad.header("X-Shopify-Hmac-Sha256")) == 44  # still well-formed base64
    assert not independent_hmac_ok(bad.body, bad.header("X-Shopify-Hmac-Sha256"), SECRET)
    assert [d["wrong_signature"] for d in api.deliveries(topic="products/update")] == [False, True]


def test_drop_delivery_never_sends_and_is_listed_as_dropped(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    api.fault("drop_delivery", count=1)
    _edit(api, "Lost")
    _edit(api, "Found")
    arrivals = receiver.wait_for(1, topic="products/update")
    time.sleep(0.2)
    assert _titles(receiver.of("products/update")) == ["Found"]
    wait_until(lambda: api.deliveries(topic="products/update", status="delivered"))
    statuses = [(d["status"], d["attempts"]) for d in api.deliveries(topic="products/update")]
    assert statuses[0] == ("dropped", [])
    assert statuses[1][0] == "delivered"
    assert arrivals[0].header("X-Shopify-Webhook-Id") == api.deliveries(topic="products/update")[1]["webhook_id"]


def _statuses(api, domain, n):
    return [api.rest("GET", "shop.json", domain=domain).status_code for _ in range(n)]


def test_api_5xx_rate_is_observable_and_deterministic_by_seed(api):
    api.create_shop(throttling=False)
    api.create_shop(OTHER, throttling=False)
    api.fault("api_5xx_rate", rate=1.0, params={"statuses": [500]})
    failed = api.graphql("{ shop { name } }")
    assert (failed.status_code, failed.json()) == (500, {"errors": "An unexpected error occurred"})
    assert failed.headers["X-Request-Id"]
    for domain in (DOMAIN, OTHER):
        api.fault("api_5xx_rate", domain=domain, rate=0.4, seed=7, params={"statuses": [500, 502, 503]})
    first = _statuses(api, DOMAIN, 30)
    second = _statuses(api, OTHER, 30)
    assert first == second
    assert 200 in first
    assert set(first) - {200} <= {500, 502, 503}
    assert len(set(first) - {200}) >= 2


def test_small_bucket_shrinks_both_limits_until_cleared(clocked_api):
    clocked_api.create_shop()
    clocked_api.fault(
        "small_bucket",
        params={"rest_size": 5, "rest_leak_rate": 1.0, "graphql_maximum": 100, "graphql_restore_rate": 10},
    )
    assert [clocked_api.rest("GET", "shop.json").headers["X-Shopify-Shop-Api-Call-Limit"] for _ in range(5)] == [
        f"{n}/5" for n in range(1, 6)
    ]
    refused = clocked_api.rest("GET", "shop.json")
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1.0"
    assert refused.json()["errors"].startswith("Exceeded 1 calls per second")
    status = clocked_api.graphql("{ shop { name } }").json()["extensions"]["cost"]["throttleStatus"]
    assert (status["maximumAvailable"], status["restoreRate"]) == (100.0, 10.0)
    clocked_api.control("DELETE", f"/shops/{DOMAIN}/faults")
    assert clocked_api.rest("GET", "shop.json").headers["X-Shopify-Shop-Api-Call-Limit"].endswith("/40")
    assert (
        clocked_api.graphql("{ shop { name } }").json()["extensions"]["cost"]["throttleStatus"]["maximumAvailable"]
        == 2000.0
    )


def test_throttle_storm_throttles_an_idle_shop(clocked_api):
    clocked_api.create_shop()
    clocked_api.fault("throttle_storm", rate=1.0)
    rest = clocked_api.rest("GET", "shop.json")
    assert (rest.status_code, rest.headers["X-Shopify-Shop-Api-Call-Limit"], rest.headers["Retry-After"]) == (
        429,
        "40/40",
        "0.5",
    )
    graphql = clocked_api.graphql("{ shop { name } }").json()
    assert graphql["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert graphql["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0


def test_slow_responses_delay_answers(api):
    api.create_shop()
    api.fault("slow_responses", params={"seconds": 0.3}, count=2)
    for call in (lambda: api.graphql("{ shop { name } }"), lambda: api.rest("GET", "shop.json")):
        started = time.monotonic()
        assert call().status_code == 200
        assert time.monotonic() - started >= 0.3
    assert api.control("GET", f"/shops/{DOMAIN}/faults").json()["faults"][0]["hits"] == 2


def test_webhook_faults_are_deterministic_by_seed(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    api.create_shop(OTHER, webhook_url=receiver.url)
    for domain in (DOMAIN, OTHER):
        api.fault("duplicate_delivery", domain=domain, rate=0.5, seed=11)
        for n in range(12):
            _edit(api, f"Edit {n}", domain)
    patterns = [
        [
            d["faults"] == ["duplicate_delivery"]
            for d in api.deliveries(domain, topic="products/update")
            if d["copy_of"] is None
        ]
        for domain in (DOMAIN, OTHER)
    ]
    assert patterns[0] == patterns[1]
    assert True in patterns[0] and False in patterns[0]
