"""Customer service reads the status board in a browser: a late promised update is flagged."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from console import roles
from incidents.models import IncidentUpdate
from tests.factories import IncidentFactory, IncidentUpdateFactory, UserFactory

pytestmark = pytest.mark.browser


def test_an_overdue_update_is_flagged_on_the_status_board_for_customer_service(page, login):
    support = UserFactory(username="board-support", role=roles.SUPPORT)
    UserFactory(username="board-service", role=roles.CUSTOMER_SERVICE)
    incident = IncidentFactory(
        title="Internal: confirmation mailer queue",
        public_title="Order confirmations delayed",
        opened_by=support,
        next_update_due_at=timezone.now() - timedelta(minutes=11),
    )
    IncidentUpdateFactory(
        incident=incident,
        author=support,
        body="Confirmation emails may arrive up to an hour late. Next update by 14:00 UTC.",
        audience=IncidentUpdate.Audience.CUSTOMER_SERVICE,
        confirmed=True,
        next_update_at=timezone.now() - timedelta(minutes=11),
    )
    IncidentFactory(title="Internal: refund job crash", opened_by=support)
    login("board-service")
    expect(page.get_by_text("Order confirmations delayed")).to_be_visible()  # on the dashboard too
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Status board").click()
    card = page.locator("article.incident", has_text="Order confirmations delayed")
    expect(card).to_have_class("card incident overdue")
    expect(card.get_by_role("status")).to_contain_text("Next update overdue")
    expect(page.get_by_text("Internal: refund job crash")).to_have_count(0)
    expect(page.get_by_text("Internal: confirmation mailer queue")).to_have_count(0)
