import re

import pytest
from playwright.sync_api import expect

from console import roles
from tests.factories import ShopFactory, UserFactory

pytestmark = pytest.mark.browser

STAFF_NAV = [
    "Dashboard", "Events", "Outbound", "Replays", "Runbook", "Incidents", "Worksheets", "Status board", "Lookup", "Shops", "Privacy",
    "Alerts", "Audit trail",
]  # fmt: skip
EXPECTED_NAV = {
    roles.SUPPORT: STAFF_NAV,
    roles.CUSTOMER_SERVICE: ["Dashboard", "Status board", "Lookup"],
    roles.ADMIN: STAFF_NAV,
}


@pytest.mark.parametrize("role", roles.ROLES)
def test_each_role_logs_in_and_sees_its_navigation(page, login, role):
    UserFactory(username=f"browser-{role}", role=role)
    login(f"browser-{role}")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    nav = page.get_by_role("navigation", name="Main").get_by_role("link").all_inner_texts()
    assert nav == EXPECTED_NAV[role]
    assert role in page.locator(".usermenu").inner_text()


def test_customer_service_gets_403_on_an_action_it_does_not_see(page, login):
    UserFactory(username="cs-browser", role=roles.CUSTOMER_SERVICE)
    shop = ShopFactory()
    login("cs-browser")
    assert page.get_by_role("link", name="Shops").count() == 0
    for path in ("/shops/new/", f"/shops/{shop.pk}/secrets/", "/audit/"):
        response = page.goto(path)
        assert response.status == 403, path
        assert page.get_by_role("heading", name="Not allowed").is_visible()


def test_admin_registers_a_shop_with_the_keyboard(page, login):
    UserFactory(username="admin-browser", role=roles.ADMIN, is_staff=True)
    login("admin-browser")
    page.goto("/shops/")
    page.get_by_role("link", name="Register a shop").click()
    expect(page.get_by_label("Domain")).to_be_focused()  # ready to type on arrival
    page.keyboard.type("kb-shop.myshopify.com")
    page.get_by_label("Webhook secret").fill("kb-secret-0123456789")
    page.get_by_label("Webhook secret").press("Enter")
    page.wait_for_url(re.compile(r"/shops/\d+/$"))
    expect(page.get_by_role("heading", name="kb-shop.myshopify.com")).to_be_visible()
    body = page.content()
    assert "kb-secret-0123456789" not in body and "••••6789" in body


def test_logout_returns_to_login(page, login):
    UserFactory(username="leaver", role=roles.SUPPORT)
    login("leaver")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login/")
    page.goto("/")
    assert "/login/" in page.url
