"""A support person finds a failed outbound call in the event log and reads, on its page, every
try Shopify answered and what to do next: in Debian's Chromium, against a live server."""

import re

import pytest
from playwright.sync_api import expect

from console import roles
from integrations.models import OutboundCall
from integrations.outbound.classify import NEXT_STEPS
from tests.factories import EventFactory, OutboundAttemptFactory, OutboundCallFactory, ShopFactory, UserFactory

pytestmark = pytest.mark.browser

Status = OutboundCall.Status


@pytest.fixture
def support_page(page, login):
    UserFactory(username="browser-out-support", role=roles.SUPPORT)
    login("browser-out-support")
    return page


def failed_call(shop) -> OutboundCall:
    call = OutboundCallFactory(
        shop=shop,
        target_gid="gid://shopify/Order/7001",
        target_label="#7001",
        input={"id": "gid://shopify/Order/7001", "tags": ["vip"]},
        status=Status.FAILED,
        classification=OutboundCall.Classification.NON_RETRYABLE,
        failure_kind="missing_scope",
        reason="access denied: Access denied for tagsAdd field. [ACCESS_DENIED]",
        next_step=NEXT_STEPS["missing_scope"][1],
        attempt_count=2,
    )
    OutboundAttemptFactory(
        call=call,
        number=1,
        outcome="retry",
        http_status=503,
        message="Shopify answered HTTP 503: upstream unavailable",
        response_excerpt='{"errors": "upstream unavailable"}',
    )
    OutboundAttemptFactory(
        call=call,
        number=2,
        outcome="failed",
        http_status=403,
        error_codes=["ACCESS_DENIED"],
        message="access denied: Access denied for tagsAdd field. [ACCESS_DENIED]",
        response_excerpt='{"errors": [{"message": "Access denied for tagsAdd field."}]}',
    )
    return call


def test_find_a_failed_call_and_read_its_tries_and_next_step(support_page):
    page = support_page
    shop = ShopFactory(domain="outbound-north.myshopify.com")
    call = failed_call(shop)
    other = OutboundCallFactory(shop=shop, target_label="#7002", status=Status.SUCCEEDED)
    event = EventFactory(shop=shop, resource_label="#7001")  # a webhook about the same order

    page.goto("/events/")
    expect(page.locator(f"#event-{event.pk}")).to_be_visible()
    expect(page.locator(f"#event-{event.pk} .dir")).to_have_text("IN ← webhook")

    page.get_by_label("Direction").select_option("outbound")
    page.get_by_label("Search").fill("#7001")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#log-rows tr.log-row")
    expect(rows).to_have_count(1)
    row = page.locator(f"#call-{call.pk}")
    expect(row.locator(".dir")).to_have_text("OUT → Shopify")
    expect(row).to_contain_text("order.add_tags")
    expect(row).to_contain_text("Failed")
    expect(row).to_contain_text("not retryable")
    expect(page.locator(f"#call-{other.pk}")).to_have_count(0)
    expect(page.locator(f"#event-{event.pk}")).to_have_count(0)
    # The two badges look different, not only read differently.
    colours = page.evaluate(
        "() => [getComputedStyle(document.querySelector('.log .dir-outbound')).backgroundColor,"
        " getComputedStyle(document.querySelector('.pagehead + p .dir-inbound')).backgroundColor]"
    )
    assert colours[0] != colours[1], colours

    row.get_by_role("link", name=f"#{call.pk}").click()
    page.wait_for_url(re.compile(rf"/outbound/{call.pk}/$"))
    state = page.get_by_role("region", name="Where it stands")
    expect(state).to_contain_text("Failed")
    expect(state).to_contain_text("Not retryable")
    expect(state.locator(".next-step")).to_contain_text("The app lacks a scope this call needs.")

    tries = page.get_by_role("region", name="Tries and what Shopify said")
    first, second = tries.locator("#try-1"), tries.locator("#try-2")
    expect(first).to_contain_text("503")
    expect(first).to_contain_text("Will retry")
    expect(second).to_contain_text("403")
    expect(second).to_contain_text("ACCESS_DENIED")
    expect(second).to_contain_text("Failed")
    # Shopify's answer is folded away until asked for.
    excerpt = tries.get_by_text('Access denied for tagsAdd field."}]}')
    expect(excerpt).to_be_hidden()
    tries.locator("tr.try-more").nth(1).get_by_text("Response excerpt").click()
    expect(excerpt).to_be_visible()

    # Send it again with a reason: queued again, the page says so.
    todo = page.get_by_role("region", name="What to do")
    todo.get_by_label("Reason to send the call again").fill("merchant approved write_orders")
    todo.get_by_role("button", name="Send again").click()
    page.wait_for_url(re.compile(rf"/outbound/{call.pk}/$"))
    expect(page.get_by_role("status")).to_contain_text("Queued again with the same idempotency key")
    call.refresh_from_db()
    assert call.status == Status.QUEUED


def test_an_echo_in_the_event_log_leads_to_its_call(support_page):
    page = support_page
    shop = ShopFactory(domain="echo-north.myshopify.com")
    call = OutboundCallFactory(shop=shop, status=Status.SUCCEEDED, target_label="#7101")
    echo = EventFactory(shop=shop, topic="orders/updated", echo_of=call, resource_label="#7101")

    page.goto("/events/")
    row = page.locator(f"#event-{echo.pk}")
    expect(row.locator(".dir")).to_have_text("IN ← webhook")
    marker = row.get_by_role("link", name=f"echo of call #{call.pk}")
    expect(marker).to_be_visible()
    expect(page.locator(f"#call-{call.pk} .dir")).to_have_text("OUT → Shopify")  # the call is listed too
    marker.click()
    page.wait_for_url(re.compile(rf"/outbound/{call.pk}/$"))
    expect(page.get_by_role("region", name="Where it stands")).to_contain_text("Succeeded")
