"""A support person opens a shop's API health page, asks Shopify again with "Check now", finds a
revoked scope and a dropped webhook subscription, and re-subscribes the topic from the page: in
Debian's Chromium, against a live server whose checks talk to the Shopify simulator over HTTP."""

import re

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from console import roles
from integrations.models import OutboundCall
from integrations.simulator.store import DEFAULT_SCOPES
from tests.factories import UserFactory
from tests.outbound.conftest import simulator, store_factory  # noqa: F401 (fixtures)

pytestmark = pytest.mark.browser

TOPIC = "orders/paid"
# The simulator subscribes the shop to its default topics at this address (nothing listens there).
SHOP_WEBHOOK_URL = "http://127.0.0.1:9/webhooks/shopify"


@pytest.fixture
def support_page(page, login):
    UserFactory(username="browser-health-support", role=roles.SUPPORT)
    login("browser-health-support")
    return page


def active_subscriptions(sim, topic: str) -> list[dict]:
    return [s for s in sim.control("GET", "/subscriptions")["subscriptions"] if s["active"] and s["topic"] == topic]


def test_check_finds_a_revoked_scope_and_a_dropped_subscription_and_resubscribe_restores_it(
    support_page,
    store_factory,  # noqa: F811
    live_server,
    settings,
):
    page = support_page
    settings.CONSOLE_WEBHOOK_URL = f"{live_server.url}/webhooks/shopify"  # the live server's thread reads it
    shop, sim = store_factory(records=10, webhook_url=SHOP_WEBHOOK_URL)

    # In Shopify (the simulator): the merchant revokes write_orders, and the orders/paid subscription goes.
    sim.control("PUT", "/scopes", json={"scopes": [s for s in DEFAULT_SCOPES if s != "write_orders"]})
    (dropped,) = active_subscriptions(sim, TOPIC)
    sim.control("DELETE", f"/subscriptions/{dropped['id']}")
    assert active_subscriptions(sim, TOPIC) == []

    page.goto(reverse("integrations:shop_health", args=[shop.pk]))
    expect(page.get_by_role("heading", name=f"API health: {shop.domain}", level=1)).to_be_visible()
    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_role("status")).to_contain_text("problem(s) found")

    summary = page.get_by_role("region", name=re.compile(r"^\d+ problems?$"))
    expect(summary.get_by_role("listitem").filter(has_text="Missing access scopes")).to_contain_text("write_orders")
    expect(summary.get_by_role("listitem").filter(has_text="Missing webhook subscriptions")).to_contain_text(TOPIC)

    scopes = page.get_by_role("region", name="Access scopes: granted vs required")
    missing_cell = scopes.get_by_role("cell").nth(0)  # the first column: Missing (required, not granted)
    expect(scopes.get_by_role("columnheader").nth(0)).to_have_text("Missing (required, not granted)")
    expect(missing_cell).to_contain_text("write_orders")

    subscriptions = page.get_by_role("region", name="Webhook subscriptions")
    row = subscriptions.get_by_role("row").filter(has=page.get_by_text(TOPIC, exact=True))
    expect(row).to_have_count(1)
    expect(row.get_by_role("button", name="Re-subscribe")).to_be_visible()
    assert shop.access_token not in page.content()

    row.get_by_label(f"Reason to re-subscribe {TOPIC}").fill("Shopify dropped orders/paid; merchant asked")
    row.get_by_role("button", name="Re-subscribe").click()
    page.wait_for_url(re.compile(rf"/shops/{shop.pk}/health/?$"))
    expect(page.get_by_role("status")).to_contain_text(f"{TOPIC}: re-subscribed: call")
    expect(page.get_by_role("status").get_by_role("listitem")).to_have_class(re.compile(r"\bmsg-success\b"))
    assert shop.access_token not in page.content()

    call = OutboundCall.objects.get(shop=shop, operation="webhook.subscribe")
    assert call.status == OutboundCall.Status.SUCCEEDED and call.why == "Shopify dropped orders/paid; merchant asked"
    (restored,) = active_subscriptions(sim, TOPIC)
    assert restored["address"] == settings.CONSOLE_WEBHOOK_URL and restored["id"] != dropped["id"]

    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_role("status")).to_contain_text("problem(s) found")  # the scope is still missing
    summary = page.get_by_role("region", name=re.compile(r"^\d+ problems?$"))
    expect(summary.get_by_role("listitem").filter(has_text="Missing access scopes")).to_contain_text("write_orders")
    expect(summary).not_to_contain_text("Missing webhook subscriptions")
    expect(summary).not_to_contain_text(TOPIC)
    expect(subscriptions.get_by_role("row").filter(has=page.get_by_text(TOPIC, exact=True))).to_have_count(0)
    expect(subscriptions).to_contain_text("No missing subscriptions.")
    expect(scopes.get_by_role("cell").nth(0)).to_contain_text("write_orders")
    assert shop.access_token not in page.content()
