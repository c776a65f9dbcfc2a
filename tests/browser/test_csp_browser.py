"""Under the Content-Security-Policy, in a real Chromium: htmx still polls, swaps and posts, and
the browser reports no violation. Also the login lockout and retiring a secret, end to end."""

import re

import pytest
from django.conf import settings
from playwright.sync_api import expect

from console import roles
from console.audit import record_action
from integrations.models import Event, Shop
from tests.factories import EventFactory, ShopFactory, UserFactory

pytestmark = pytest.mark.browser

# Runs before any page script (injected by the browser's DevTools, which the CSP does not govern).
WATCH_VIOLATIONS = """
window.__csp = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def watched(page):
    messages = []
    page.on("console", lambda msg: messages.append(msg.text) if msg.type in ("error", "warning") else None)
    page.add_init_script(WATCH_VIOLATIONS)
    page.csp_messages = messages
    return page


def assert_no_violations(page):
    assert page.evaluate("window.__csp") == []
    assert [m for m in page.csp_messages if "Content Security Policy" in m or "htmx:" in m] == []


def test_htmx_polls_swaps_and_posts_under_the_policy(watched, login):
    page = watched
    UserFactory(username="csp-support", role=roles.SUPPORT)
    shop = ShopFactory()
    failed = EventFactory(shop=shop, topic="orders/paid", status=Event.Status.FAILED)
    for i in range(60):
        record_action(actor=None, verb="shop.update", target=shop, reason=f"entry-{i:02d}")

    response = page.goto("/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    login("csp-support")

    # Live poll (hx-get every 5 s, hx-swap outerHTML): a new event appears without a reload.
    page.goto("/events/?topic=orders%2Fpaid")
    page.evaluate("window.__same_page = true")
    arrived = EventFactory(shop=shop, topic="orders/paid", resource_label="#4242")
    expect(page.locator(f"#event-{arrived.pk}")).to_be_visible(timeout=15_000)
    assert page.evaluate("window.__same_page") is True

    # hx-post with the CSRF token from hx-headers: triage in place.
    page.goto(f"/events/{failed.pk}/")
    panel = page.locator("#triage-panel")
    panel.get_by_label("Note for acknowledge").fill("looking")
    panel.get_by_role("button", name="Acknowledge").click()
    expect(panel).to_contain_text("Event acknowledged.")

    # hx-get of the next page of the audit trail, swapped into the table.
    page.goto("/audit/")
    expect(page.get_by_text("entry-59")).to_be_visible()
    expect(page.get_by_text("entry-09")).to_have_count(0)
    page.evaluate("window.__same_page = true")
    page.get_by_role("link", name="Older entries").click()
    expect(page.get_by_text("entry-09")).to_be_visible()
    assert page.evaluate("window.__same_page") is True

    assert_no_violations(page)


def test_a_locked_out_login_says_so_in_the_browser(watched, live_server):
    page = watched
    UserFactory(username="csp-locked", role=roles.SUPPORT)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.goto("/login/")
        page.get_by_label("Username").fill("csp-locked")
        page.get_by_label("Password").fill("wrong-password")
        page.get_by_role("button", name="Log in").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("logins are refused for 15 minutes")
    expect(alert).to_contain_text("ask a console admin to unlock it")
    assert "/login/" in page.url
    assert_no_violations(page)


def test_an_admin_retires_a_leaked_previous_secret(watched, login):
    page = watched
    UserFactory(username="csp-admin", role=roles.ADMIN, is_staff=True)
    shop = ShopFactory(domain="leak.myshopify.com", webhook_secret="whsec-old-leaked-7777")
    login("csp-admin")
    page.goto(f"/shops/{shop.pk}/secrets/")
    page.get_by_label("New webhook secret").fill("whsec-new-current-8888")
    page.get_by_label("Reason").first.fill("scheduled rotation")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(rf"/shops/{shop.pk}/$"))
    page.goto(f"/shops/{shop.pk}/secrets/")
    retire = page.get_by_role("region", name="Retire the previous secret now")
    expect(retire).to_contain_text("••••7777")
    retire.get_by_label("Reason").fill("the old secret was pasted in a ticket")
    retire.get_by_role("button", name="Retire previous secret now").click()
    page.wait_for_url(re.compile(rf"/shops/{shop.pk}/$"))
    expect(page.get_by_role("status")).to_contain_text("Previous webhook secret retired")
    assert Shop.objects.get(pk=shop.pk).verifying_secrets() == ["whsec-new-current-8888"]
    assert_no_violations(page)
