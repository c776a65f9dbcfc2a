"""A support person builds a reconciliation worksheet from pasted ids, watches the compare finish,
reviews it (skips one row), submits it; another admin approves exactly that plan and applies it;
the page follows the apply to its end and shows each row's result with the values before and
after: in Debian's Chromium, against a live server and the Shopify simulator, under the CSP."""

import re

import pytest
from playwright.sync_api import expect

from console import roles
from incidents.worksheets.models import Worksheet
from integrations.models import PlatformProduct
from tests.browser.test_csp_browser import WATCH_VIOLATIONS, assert_no_violations
from tests.factories import UserFactory
from tests.outbound.conftest import simulator, store, store_factory  # noqa: F401
from tests.worksheets.conftest import copy_to_platform, send_outbound

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def watched(page):
    messages = []
    page.on("console", lambda msg: messages.append(msg.text) if msg.type in ("error", "warning") else None)
    page.add_init_script(WATCH_VIOLATIONS)
    page.csp_messages = messages
    return page


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/login/"))


def test_build_review_submit_approve_apply_and_read_before_and_after(watched, login, store, settings):  # noqa: F811
    settings.WORKSHEET_MIN_AGE_SECONDS = 0  # the simulator's records were all just made
    settings.WORKSHEET_RULES = {}
    page = watched
    shop, sim = store
    copy_to_platform(shop, sim, "products")
    a, b, c, *_rest = PlatformProduct.objects.filter(shop=shop).order_by("shopify_id")
    PlatformProduct.objects.filter(pk=a.pk).update(vendor="Stale vendor")  # Shopify owns vendors
    PlatformProduct.objects.filter(pk=b.pk).update(title="Title from the PIM")  # the platform owns titles
    PlatformProduct.objects.filter(pk=c.pk).update(title="Not this one")
    UserFactory(username="browser-ws-support", role=roles.SUPPORT)
    UserFactory(username="browser-ws-admin", role=roles.ADMIN)

    # Build it from pasted ids.
    login("browser-ws-support")
    page.get_by_role("link", name="Worksheets").click()
    expect(page.get_by_role("heading", name="No worksheets yet")).to_be_visible()
    page.get_by_role("link", name="New worksheet").click()
    page.get_by_label("Shop").select_option(shop.domain)
    fields = page.locator("#ws-fields")
    page.get_by_label("Resource").select_option("variants")  # the fields follow the resource (htmx)
    expect(fields.get_by_label("price", exact=True)).to_be_visible()
    expect(fields.get_by_label("vendor", exact=True)).to_have_count(0)
    page.get_by_label("Resource").select_option("products")
    expect(fields.get_by_label("vendor", exact=True)).to_be_visible()
    for name in ("title", "vendor"):
        fields.get_by_label(name, exact=True).check()
    page.get_by_label("Pasted ids").fill(f"{a.shopify_id}\n{b.shopify_id}\ngid://shopify/Product/{c.shopify_id}")
    page.get_by_label("Title (optional)").fill("Vendors and titles after the PIM outage")
    page.get_by_role("button", name="Create and compare").click()
    page.wait_for_url(re.compile(r"/worksheets/\d+/$"))
    worksheet = Worksheet.objects.get()

    # The compare ran on the worker (inline here): the bar is full, and it is in review.
    progress = page.get_by_role("region", name="Progress")
    expect(progress).to_contain_text("3 of 3 rows, 100%")
    expect(progress.locator("progress")).to_have_attribute("value", "3")
    expect(page.locator("#ws-state")).to_have_text("Compared (in review)")
    blast = page.get_by_role("region", name="Blast radius")
    expect(blast.locator(".blast-shopify")).to_have_text("2")
    expect(blast.locator(".blast-platform")).to_have_text("1")

    row_a = page.locator(f"#row-{worksheet.rows.get(position=1).pk}")
    row_b = page.locator(f"#row-{worksheet.rows.get(position=2).pk}")
    row_c = page.locator(f"#row-{worksheet.rows.get(position=3).pk}")
    expect(row_a.locator(".ws-proposal")).to_contain_text("Write the platform")
    expect(row_a.locator("tr.ws-differs[data-field=vendor] mark")).to_have_text([a.vendor, "Stale vendor"])
    expect(row_b.locator(".ws-proposal")).to_contain_text("Write Shopify")

    # Review: skip row 3, in place (htmx); the blast radius follows.
    page.evaluate("window.__same_page = true")
    row_c.get_by_label("Decision for row 3").select_option("override")
    row_c.get_by_text("Override values").click()
    row_c.get_by_label("Write").select_option("write_platform")
    row_c.get_by_label("title", exact=True).fill("Mine")
    row_c.get_by_role("button", name="Save decision").click()
    expect(row_c.get_by_role("alert")).to_contain_text("An override needs a note")  # refused on the server
    row_c.get_by_label("Decision for row 3").select_option("skip")
    row_c.get_by_role("button", name="Save decision").click()
    expect(row_c.locator(".ws-decision-now")).to_contain_text("Skip")
    expect(row_c).to_contain_text("Saved.")
    expect(blast.locator(".blast-shopify")).to_have_text("1")
    assert page.evaluate("window.__same_page") is True

    page.get_by_role("button", name="Submit for approval").click()
    expect(page.locator("#ws-state")).to_have_text("Submitted for approval")
    expect(page.get_by_text("Waiting for another admin")).to_be_visible()  # the preparer cannot approve it
    log_out(page)

    # Another admin approves exactly this plan, then applies it.
    login("browser-ws-admin")
    page.goto(f"/worksheets/{worksheet.pk}/")
    actions = page.get_by_role("region", name="Next step")
    actions.get_by_label("Approval comment").fill("checked against the PIM export")
    actions.get_by_role("button", name="Approve this plan").click()
    expect(page.locator("#ws-state")).to_have_text("Approved")
    expect(page.locator(".ws-approved-by")).to_contain_text("browser-ws-admin")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#ws-state")).to_have_text("Applying")
    expect(progress).to_contain_text("Applying")

    # Row b's title waits in Shopify's queue; once the sender sends it, the polling panel
    # settles the worksheet and the page reloads on its own.
    send_outbound()
    expect(page.locator("#ws-state")).to_have_text("Applied", timeout=20_000)
    expect(row_a.locator(".ws-result")).to_contain_text("Applied")
    expect(row_a.locator("tr[data-field=vendor] .ws-before")).to_have_text("Stale vendor")
    expect(row_a.locator("tr[data-field=vendor] .ws-after")).to_have_text(a.vendor)
    expect(row_b.locator(".ws-result")).to_contain_text("Applied")
    expect(row_b.locator("tr[data-field=title] .ws-before")).to_have_text(b.title)
    expect(row_b.locator("tr[data-field=title] .ws-after")).to_have_text("Title from the PIM")
    expect(row_c.locator(".ws-result")).to_contain_text("Skipped")
    steps = page.get_by_role("region", name="Steps")
    expect(steps).to_contain_text("browser-ws-support")
    expect(steps).to_contain_text("browser-ws-admin")
    expect(page.get_by_role("button", name=re.compile(r"^Roll back"))).to_be_visible()

    assert sim.record("products", b.shopify_id)["title"] == "Title from the PIM"
    assert PlatformProduct.objects.get(pk=a.pk).vendor == a.vendor
    assert sim.record("products", c.shopify_id)["title"] == c.title
    assert_no_violations(page)
