"""The control CLI (`manage.py shopify_simulator_ctl`) drives a running simulator over HTTP."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from tests.simulator.helpers import DOMAIN


def ctl(sim, *args):
    out = io.StringIO()
    call_command("shopify_simulator_ctl", "--url", sim.url, *args, stdout=out)
    return json.loads(out.getvalue())


def test_fault_revoke_and_reset_through_the_cli(sim, api):
    created = ctl(
        sim,
        "create-shop",
        DOMAIN,
        "--token",
        "shpat_cli",
        "--webhook-secret",
        "s",
        "--records",
        "20",
        "--scopes",
        "read_products",
    )
    assert created["scopes"] == ["read_products"]
    fault = ctl(sim, "fault", DOMAIN, "slow_responses", "--rate", "0.5", "--seed", "3", "--param", "seconds=0.01")
    assert (fault["kind"], fault["rate"], fault["seed"], fault["params"]) == (
        "slow_responses",
        0.5,
        3,
        {"seconds": 0.01},
    )
    assert [f["kind"] for f in ctl(sim, "faults", DOMAIN)["faults"]] == ["slow_responses"]
    assert api.graphql("{ shop { name } }", token="shpat_cli").status_code == 200
    assert ctl(sim, "revoke-token", DOMAIN) == {"revoked": 1}
    assert api.graphql("{ shop { name } }", token="shpat_cli").status_code == 401
    ctl(sim, "reset")
    assert ctl(sim, "shops") == {"shops": []}


def test_edit_behind_the_consoles_back_and_list_deliveries(sim, api, receiver):
    api.create_shop(webhook_url=receiver.url)
    product = api.records("products")[0]
    edited = ctl(sim, "edit", DOMAIN, "products", str(product["id"]), 'title="Edited Elsewhere"', "vendor=Other")
    assert (edited["title"], edited["vendor"]) == ("Edited Elsewhere", "Other")
    read_back = api.graphql(
        "query($id: ID!) { product(id: $id) { title vendor } }", {"id": product["admin_graphql_api_id"]}
    ).json()["data"]
    assert read_back == {"product": {"title": "Edited Elsewhere", "vendor": "Other"}}
    receiver.wait_for(1, topic="products/update")
    deliveries = ctl(sim, "deliveries", DOMAIN, "--topic", "products/update")
    assert deliveries["count"] == 1
    ctl(sim, "edit", DOMAIN, "products", str(product["id"]), "title=Quiet", "--silent")
    assert ctl(sim, "deliveries", DOMAIN, "--topic", "products/update")["count"] == 1
    assert api.records("products")[0]["title"] == "Quiet"


def test_orders_stock_and_state_commands(sim, api, receiver):
    api.create_shop(webhook_url=receiver.url)
    variant = api.records("variants")[0]
    order = ctl(sim, "create-order", DOMAIN, f"{variant['id']}:2", "--financial-status", "pending")
    assert order["financial_status"] == "pending"
    assert ctl(sim, "pay-order", DOMAIN, str(order["id"]))["financial_status"] == "paid"
    assert ctl(sim, "fulfill-order", DOMAIN, str(order["id"]))["order_id"] == order["id"]
    level = api.records("inventory_levels")[0]
    assert (
        ctl(sim, "set-stock", DOMAIN, str(level["inventory_item_id"]), str(level["location_id"]), "9")["available"] == 9
    )
    assert ctl(sim, "freeze", DOMAIN) == {"frozen": True, "locked": False}
    assert api.rest("GET", "shop.json").status_code == 402
    receiver.wait_for(1, topic="fulfillments/create")


def test_errors_become_command_errors(sim):
    with pytest.raises(CommandError):
        ctl(sim, "shop", "missing.myshopify.com")
    with pytest.raises(CommandError):
        call_command("shopify_simulator_ctl", "--url", "http://127.0.0.1:9", "health", stdout=io.StringIO())


def test_bad_control_input_is_a_400_not_a_crash(api):
    api.create_shop()
    response = api.control("PUT", f"/shops/{DOMAIN}/limits", json={"rest_bucket_size": "lots"})
    assert response.status_code == 400
    assert "lots" in response.json()["error"]
    assert api.control("POST", f"/shops/{DOMAIN}/faults", json={"kind": "gremlins"}).status_code == 400
    assert (
        api.control("POST", "/shops", json={"domain": "not a domain", "token": "t", "webhook_secret": "s"}).status_code
        == 400
    )
