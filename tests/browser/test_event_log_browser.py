import re

import pytest
from playwright.sync_api import expect

from console import roles
from integrations.models import Attempt, Event, Job
from tests.factories import AttemptFactory, DeliveryFactory, EventFactory, JobFactory, ShopFactory, UserFactory

pytestmark = pytest.mark.browser


@pytest.fixture
def support_page(page, login):
    UserFactory(username="browser-support", role=roles.SUPPORT)
    login("browser-support")
    return page


def test_filter_and_search_the_event_log(support_page):
    page = support_page
    shop = ShopFactory(domain="north.myshopify.com")
    paid = EventFactory(shop=shop, topic="orders/paid", resource_label="#1042", status=Event.Status.FAILED)
    created = EventFactory(shop=shop, topic="orders/create", resource_label="#1043", status=Event.Status.PROCESSED)
    other_shop = EventFactory(topic="orders/paid", status=Event.Status.FAILED)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Events")).to_be_visible()
    rows = page.locator("#log-rows tr.log-row")
    expect(rows).to_have_count(3)

    page.get_by_label("Search").fill("#1042")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(page.locator(f"#event-{paid.pk}")).to_be_visible()

    page.get_by_label("Search").fill("")
    page.get_by_label("Shop").select_option(shop.domain)
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(page.locator(f"#event-{paid.pk}")).to_be_visible()
    expect(page.locator(f"#event-{created.pk}")).to_have_count(0)
    expect(page.locator(f"#event-{other_shop.pk}")).to_have_count(0)
    assert "status=failed" in page.url


def test_detail_page_answers_the_five_questions(support_page):
    page = support_page
    event = EventFactory(
        topic="orders/paid", resource_label="#2001", status=Event.Status.FAILED, delivery_count=2, processed_count=0
    )
    DeliveryFactory(event=event, body=b'{"id": 2001, "note": "<b>hi</b>"}')
    job = JobFactory(
        event=event, name="notify_fulfillment", status=Job.Status.FAILED, attempt_count=1, last_error="503 upstream"
    )
    AttemptFactory(job=job, number=1, outcome=Attempt.Outcome.FAILED, error_class="UpstreamDown", traceback="tb line")

    page.goto("/events/")
    page.locator(f"#event-{event.pk} a").click()
    page.wait_for_url(re.compile(rf"/events/{event.pk}/$"))
    answers = page.get_by_role("region", name="What happened to this webhook")
    expect(answers).to_be_visible()
    for question in (
        "Received?",
        "Verified?",
        "Processed?",
        "Which jobs?",
        "Where did it fail, and is it still failing?",
    ):
        expect(answers.get_by_text(question, exact=True)).to_be_visible()
    expect(answers).to_contain_text("Yes, twice")
    expect(answers).to_contain_text("Yes: the HMAC signature matched")
    expect(answers).to_contain_text("No: processing failed.")
    expect(answers).to_contain_text("At job:notify_fulfillment: 503 upstream")
    expect(answers).to_contain_text("Still failing.")
    # The payload shows the markup as text, never as HTML.
    expect(page.locator("pre.payload")).to_contain_text('"note": "<b>hi</b>"')
    expect(page.locator("pre.payload b")).to_have_count(0)
    # The traceback is folded away until asked for.
    expect(page.get_by_text("tb line")).to_be_hidden()
    page.get_by_text("Traceback", exact=True).click()
    expect(page.get_by_text("tb line")).to_be_visible()


def test_triage_in_place_without_reload(support_page):
    page = support_page
    event = EventFactory(status=Event.Status.FAILED)
    page.goto(f"/events/{event.pk}/")
    panel = page.locator("#triage-panel")
    panel.get_by_label("Note for acknowledge").fill("on it")
    panel.get_by_role("button", name="Acknowledge").click()
    expect(panel).to_contain_text("Event acknowledged.")
    expect(panel.get_by_role("button", name="Resolve")).to_be_visible()
    expect(panel.get_by_role("button", name="Acknowledge")).to_have_count(0)
    expect(panel.locator(".triage-history")).to_contain_text("on it")
    event.refresh_from_db()
    assert event.triage_state == Event.Triage.ACKNOWLEDGED


def test_new_event_appears_live_without_reload(support_page):
    page = support_page
    shop = ShopFactory()
    first = EventFactory(shop=shop, topic="orders/paid")
    page.goto("/events/?topic=orders%2Fpaid")
    expect(page.locator(f"#event-{first.pk}")).to_be_visible()
    page.evaluate("window.__same_page = true")  # gone if the page reloads

    ignored = EventFactory(shop=shop, topic="orders/create")  # filtered out: must not appear
    arrived = EventFactory(shop=shop, topic="orders/paid", resource_label="#3001")

    new_row = page.locator(f"#event-{arrived.pk}")
    expect(new_row).to_be_visible(timeout=15_000)  # the page polls every 5 s
    expect(new_row).to_contain_text("#3001")
    rows = page.locator("#log-rows tr.log-row")
    expect(rows.first).to_have_id(f"event-{arrived.pk}")  # prepended above what was shown
    expect(rows).to_have_count(2)
    expect(page.locator(f"#event-{ignored.pk}")).to_have_count(0)
    assert page.evaluate("window.__same_page") is True


def test_a_rejected_webhook_is_found_by_id_under_any_status(support_page):
    page = support_page
    webhook_id = "5f0e1a2b-9c3d-4e5f-8a7b-6c5d4e3f2a1b"
    shop = ShopFactory(domain="south.myshopify.com")
    rejected = DeliveryFactory(
        event=None, webhook_id=webhook_id, shop_domain=shop.domain, reason="HMAC signature did not match"
    )
    EventFactory(shop=shop, status=Event.Status.PROCESSED)  # noise

    page.goto("/events/")
    expect(page.get_by_label("Status")).to_have_value("")  # "Any status"
    page.get_by_label("Search").fill(webhook_id[:8])  # the start of the id is enough
    page.get_by_role("button", name="Filter").click()
    section = page.get_by_role("region", name="Rejected requests with this webhook id (they never became events)")
    expect(section).to_be_visible()
    row = section.locator(f"#delivery-{rejected.pk}")
    expect(row).to_contain_text("HMAC signature did not match")
    # The whole id is shown, and one click selects all of it for copying.
    code = row.locator("code.id")
    expect(code).to_have_text(webhook_id)
    code.click()
    assert page.evaluate("window.getSelection().toString()") == webhook_id

    # Under another status the webhook is still found; its row opens the request's page.
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(f"#delivery-{rejected.pk}")).to_be_visible()
    page.locator(f"#delivery-{rejected.pk} a").click()
    page.wait_for_url(re.compile(rf"/events/deliveries/{rejected.pk}/$"))
    expect(page.get_by_role("heading", name="Why it was refused")).to_be_visible()


def test_fifty_rows_fit_one_line_each_at_1366_px(support_page):
    page = support_page
    shops = [ShopFactory(domain=f"a-rather-long-merchant-store-name-number-{n}.myshopify.com") for n in range(3)]
    statuses = list(Event.Status.values)
    for i in range(50):
        EventFactory(
            shop=shops[i % 3],
            webhook_id=f"{i:08x}-bdd9-4b37-8a5f-bf7d70bcd043",
            topic=["inventory_levels/update", "orders/create", "customers/data_request"][i % 3],
            status=statuses[i % len(statuses)],
            resource_label=f"#{100000 + i}",
        )
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto("/events/")
    rows = page.locator("#log-rows tr.log-row")
    expect(rows).to_have_count(50)
    heights = rows.evaluate_all("rows => rows.map(r => r.getBoundingClientRect().height)")
    assert max(heights) < 40, heights  # one line of text each
    size = page.evaluate(
        "({height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth,"
        " viewport: document.documentElement.clientWidth})"
    )
    assert size["height"] < 2400, size  # it was 3,300 px with wrapped shop domains
    assert size["width"] <= size["viewport"], size  # no sideways scrolling either
    # A cut shop domain is whole on hover.
    expect(rows.first.locator("td.shop")).to_have_attribute("title", re.compile(r"\.myshopify\.com$"))


def test_pages_have_a_favicon_and_no_missing_files(support_page):
    page = support_page
    event = EventFactory(status=Event.Status.FAILED)
    missing = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    for path in ("/", "/events/", f"/events/{event.pk}/", "/events/failed-tasks/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        icon = page.locator('link[rel="icon"]')
        expect(icon).to_have_attribute("type", "image/svg+xml")
        href = icon.get_attribute("href")
        response = page.request.get(href)
        assert response.status == 200 and "svg" in response.headers["content-type"], href
    assert missing == []


def test_all_directions_lists_webhooks_and_calls_and_both_arrive_live(support_page):
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import OutboundCallFactory

    page = support_page
    shop = ShopFactory(domain="both-ways.myshopify.com")
    now = timezone.now()
    older_call = OutboundCallFactory(shop=shop, target_label="#4001", created_at=now - timedelta(minutes=3))
    event = EventFactory(shop=shop, topic="orders/paid", received_at=now - timedelta(minutes=2))
    page.goto("/events/")
    rows = page.locator("#log-rows tr.log-row")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_have_id(f"event-{event.pk}")
    expect(rows.nth(1)).to_have_id(f"call-{older_call.pk}")
    expect(rows.nth(0).locator(".dir")).to_have_text("IN ← webhook")
    expect(rows.nth(1).locator(".dir")).to_have_text("OUT → Shopify")
    page.evaluate("window.__same_page = true")  # gone if the page reloads

    new_call = OutboundCallFactory(shop=shop, target_label="#4002")
    new_event = EventFactory(shop=shop, topic="orders/updated")
    expect(page.locator(f"#event-{new_event.pk}")).to_be_visible(timeout=15_000)  # the page polls every 5 s
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_have_id(f"event-{new_event.pk}")
    expect(rows.nth(1)).to_have_id(f"call-{new_call.pk}")
    expect(rows.nth(1)).to_contain_text("#4002")
    assert page.evaluate("window.__same_page") is True


def test_older_rows_of_both_directions_load_in_place_once_each(support_page):
    from datetime import timedelta

    from django.utils import timezone

    from tests.factories import OutboundCallFactory

    page = support_page
    shops = [ShopFactory(domain=f"a-rather-long-merchant-store-name-number-{n}.myshopify.com") for n in range(3)]
    now = timezone.now()
    for i in range(30):
        EventFactory(
            shop=shops[i % 3],
            webhook_id=f"{i:08x}-bdd9-4b37-8a5f-bf7d70bcd043",
            topic=["inventory_levels/update", "orders/create", "customers/data_request"][i % 3],
            status=list(Event.Status.values)[i % 6],
            resource_label=f"#{100000 + i}",
            received_at=now - timedelta(minutes=2 * i),
        )
        OutboundCallFactory(
            shop=shops[i % 3],
            operation=["inventory.set", "customer.add_tags", "order.add_tags"][i % 3],
            status=["failed", "waiting", "succeeded"][i % 3],
            classification="non_retryable" if i % 3 == 0 else None,
            target_label=f"SKU-WINTER-HAT-{i:04d}",
            created_at=now - timedelta(minutes=2 * i + 1),
        )
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto("/events/")
    rows = page.locator("#log-rows tr.log-row")
    expect(rows).to_have_count(50)
    heights = rows.evaluate_all("rows => rows.map(r => r.getBoundingClientRect().height)")
    assert max(heights) < 40, heights  # one line each, webhooks and calls alike
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], width  # no sideways scrolling
    page.get_by_role("link", name="Older").click()
    expect(rows).to_have_count(60)
    ids = rows.evaluate_all("rows => rows.map(r => r.id)")
    assert len(set(ids)) == 60 and ids[-1].startswith("call-")
    expect(page.get_by_role("link", name="Older")).to_have_count(0)
