"""Support finds a privacy request and its deadline in the browser."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from console import roles
from integrations.models import PrivacyRequest
from tests.factories import EventFactory, ShopFactory, UserFactory

pytestmark = pytest.mark.browser


def test_a_privacy_request_is_listed_with_its_deadline(page, login):
    UserFactory(username="privacy-support", role=roles.SUPPORT)
    shop = ShopFactory(domain="north-camp.myshopify.com")
    due = timezone.now() + timedelta(days=12)
    PrivacyRequest.objects.create(
        shop=shop,
        event=EventFactory(shop=shop, topic="customers/redact"),
        kind=PrivacyRequest.Kind.CUSTOMER_REDACT,
        customer_shopify_id=4242,
        due_at=due,
    )
    login("privacy-support")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Privacy").click()
    expect(page.get_by_role("heading", name="Privacy requests")).to_be_visible()
    row = page.get_by_role("row", name="4242")
    expect(row).to_contain_text("north-camp.myshopify.com")
    expect(row).to_contain_text("Customer redaction")
    expect(row.locator(".deadline")).to_contain_text(f"{due:%Y-%m-%d %H:%M} UTC")
    expect(row.locator(".deadline")).to_contain_text("in 1")  # "in 1 week, 5 days"
    page.get_by_label("State").select_option("overdue")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("No privacy requests match these filters")).to_be_visible()
