"""A shop's API health against the simulator over real HTTP: `shops check --json` with the
documented keys and exit codes, and the health page with its sections and actions."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from console.models import AuditEntry
from integrations.models import HealthCheck, OutboundCall
from integrations.outbound import queue
from integrations.shops.health import lifecycle_timeline

pytestmark = pytest.mark.django_db

KEYS = {
    "token": {"valid", "expires_at", "refreshed_at"},
    "scopes": {"granted", "required", "missing", "extra"},
    "api_version": {"requested", "answered", "supported_until", "deprecations"},
    "subscriptions": {"expected", "actual", "missing"},
    "queue": {"paused", "reason", "depth", "oldest_age_s"},
    "throttle": {"available", "maximum", "restore_rate"},
}


@pytest.fixture
def subscribed(store_factory):
    """A simulator shop subscribed to every topic it sends (its webhook URL goes nowhere)."""
    return store_factory(webhook_url="http://127.0.0.1:9/webhooks/shopify")


def check(domain: str) -> tuple[int, dict]:
    out = StringIO()
    try:
        call_command("shops", "check", domain, "--json", stdout=out)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, json.loads(out.getvalue())


def test_a_healthy_shop_checks_clean_with_every_documented_key(subscribed):
    shop, _ = subscribed
    code, data = check(shop.domain)
    assert code == 0, data["problems"]
    for key, inner in KEYS.items():
        assert inner <= set(data[key]), key
    assert isinstance(data["ownership_drift"], int)
    assert data["token"]["valid"] is True and data["token"]["expires_at"] is None
    assert data["scopes"]["missing"] == [] and "write_orders" in data["scopes"]["granted"]
    assert "read_orders" in data["scopes"]["required"]
    assert data["subscriptions"]["missing"] == [] and "orders/paid" in data["subscriptions"]["actual"]
    assert data["api_version"]["requested"] == shop.api_version
    assert data["api_version"]["answered"] == shop.api_version
    assert data["api_version"]["supported_until"].startswith(str(int(shop.api_version[:4]) + 1))
    assert data["queue"] == {"paused": False, "reason": "", "depth": 0, "oldest_age_s": None}
    assert data["throttle"]["maximum"] > 0
    assert set(HealthCheck.objects.filter(shop=shop).values_list("kind", flat=True)) >= {"scopes", "subscriptions"}


def test_a_problem_exits_1_and_says_which(subscribed):
    shop, sim = subscribed
    sim.control("PUT", "/scopes", json={"scopes": ["write_products", "write_inventory", "write_customers"]})
    queue.pause_shop(shop, by=None, reason="incident 7: Shopify degraded")
    shop.refresh_from_db()
    code, data = check(shop.domain)
    assert code == 1
    assert "write_orders" in data["scopes"]["missing"]
    assert data["queue"]["paused"] is True and data["queue"]["reason"] == "incident 7: Shopify degraded"
    assert any("write_orders" in problem for problem in data["problems"])
    assert any("paused" in problem for problem in data["problems"])


def test_the_command_in_words_names_the_problem(subscribed, capsys):
    shop, sim = subscribed
    sim.control("PUT", "/scopes", json={"scopes": ["write_products"]})
    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("shops", "check", shop.domain, stdout=out, stderr=err)
    assert exit_.value.code == 1
    assert "problems found" in out.getvalue() and "write_orders" in err.getvalue()


def test_the_health_page_shows_what_the_checks_found_and_offers_the_fixes(subscribed, client_as, support_user):
    shop, sim = subscribed
    sim.control("PUT", "/scopes", json={"scopes": ["write_products", "write_inventory", "write_customers"]})
    subscriptions = sim.control("GET", "/subscriptions")
    orders_paid = next(s for s in subscriptions["subscriptions"] if s["topic"] == "orders/paid")
    sim.control("DELETE", f"/subscriptions/{orders_paid['id']}")
    client = client_as(support_user)
    response = client.post(reverse("integrations:shop_health_check", args=[shop.pk]), follow=True)
    page = response.content.decode()
    assert response.status_code == 200 and "problem" in page
    assert "write_orders" in page and 'id="gap-orderspaid"' in page
    assert "Re-subscribe" in page
    assert shop.access_token not in page, "the token is shown masked, never in full"


def test_the_lifecycle_timeline_puts_pauses_and_changes_in_order(subscribed, admin_user):
    shop, _ = subscribed
    queue.pause_shop(shop, by=admin_user, reason="maintenance")
    queue.resume_shop(shop, by=admin_user, reason="done")
    timeline = lifecycle_timeline(shop)
    assert [item["what"] for item in timeline[:2]] == ["outbound queue resumed", "outbound queue paused"]
    assert timeline[0]["who"] == admin_user.get_username()


def test_the_health_page_costs_the_same_queries_with_more_history(subscribed, client_as, support_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    shop, _ = subscribed
    client = client_as(support_user)
    url = reverse("integrations:shop_health", args=[shop.pk])
    first, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/99", "tags": ["t"]}, origin="person")
    OutboundCall.objects.filter(pk=first.pk).update(status="failed", failure_kind="kind0", finished_at=first.created_at)
    queue.pause_shop(shop, by=support_user, reason="first")
    queue.resume_shop(shop, by=support_user, reason="first")
    client.get(url)
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(15):
        queue.pause_shop(shop, by=support_user, reason=f"pause {n}")
        queue.resume_shop(shop, by=support_user, reason=f"resume {n}")
        call, _ = queue.enqueue(
            shop, "order.add_tags", {"id": f"gid://shopify/Order/{n}", "tags": ["t"]}, origin="person"
        )
        OutboundCall.objects.filter(pk=call.pk).update(
            status="failed", failure_kind=f"kind{n % 3}", finished_at=call.created_at
        )
    with CaptureQueriesContext(connection) as many:
        client.get(url)
    assert len(many.captured_queries) == len(few.captured_queries)
    assert AuditEntry.objects.filter(verb="outbound.pause").count() == 16


def test_resubscribe_from_the_command_line(subscribed, support_user, settings):
    from django.core.management import CommandError

    shop, sim = subscribed
    settings.CONSOLE_WEBHOOK_URL = "http://127.0.0.1:9/webhooks/shopify"
    paid = next(s for s in sim.control("GET", "/subscriptions")["subscriptions"] if s["topic"] == "orders/paid")
    sim.control("DELETE", f"/subscriptions/{paid['id']}")
    with pytest.raises(CommandError, match="not an active user"):
        call_command("shops", "resubscribe", shop.domain, "orders/paid", "--reason", "r", "--user", "nobody")
    out = StringIO()
    call_command(
        "shops",
        "resubscribe",
        shop.domain,
        "orders/paid",
        "--reason",
        "gap found",
        "--user",
        support_user.username,
        stdout=out,
    )
    assert "orders/paid" in out.getvalue()
    active = [s for s in sim.control("GET", "/subscriptions")["subscriptions"] if s["topic"] == "orders/paid"]
    assert any(s.get("removed_at") is None for s in active)
    assert AuditEntry.objects.filter(verb="shop.resubscribe", reason="gap found").exists()
