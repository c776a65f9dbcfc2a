"""The dashboard's incident blocks: a spike of failures that no open incident covers is suggested,
with a link that opens one prefilled; overdue updates and notifications that failed to send are
shown to support; customer service reads only what the status board shows."""

import html as html_lib
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import Incident, IncidentUpdate, Notification
from integrations.models import Event
from tests.factories import EventFactory, IncidentFactory, IncidentUpdateFactory, OutboundCallFactory, ShopFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def spike_settings(settings):
    settings.INCIDENT_SPIKE_FAILURES = 2
    settings.INCIDENT_SPIKE_MINUTES = 15
    return settings


def open_links(html: str) -> list[str]:
    """The "Open an incident" links of the spike suggestions, unescaped."""
    return [
        html_lib.unescape(href) for href in re.findall(r'<a class="button" href="([^"]+)">Open an incident</a>', html)
    ]


def test_a_spike_of_failing_events_is_suggested_with_a_link_that_opens_it_prefilled(
    client_as, support_user, spike_settings
):
    shop = ShopFactory(domain="spiky.myshopify.com")
    failing = [EventFactory(shop=shop, topic="orders/paid", status=Event.Status.FAILED) for _ in range(3)]
    EventFactory(shop=shop, topic="orders/paid", status=Event.Status.PROCESSED, processed_count=1)
    EventFactory(shop=ShopFactory(), topic="orders/paid", status=Event.Status.FAILED)  # another shop: 1, no spike
    old = EventFactory(shop=shop, topic="orders/paid", status=Event.Status.FAILED)
    Event.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(hours=2))  # outside the window
    client = client_as(support_user)
    html = client.get(reverse("dashboard")).content.decode()
    assert (
        "3 failures</strong> of <code>orders/paid</code> (webhook) for spiky.myshopify.com in the last 15 minutes"
        in html
    )
    [link] = open_links(html)
    url = urlsplit(link)
    assert url.path == reverse("incidents:new")
    [events_filter] = parse_qs(url.query)["filter"]
    assert events_filter.startswith("shop=spiky.myshopify.com&topic=orders/paid&status=failed&since=")
    assert services.events_for_filter(events_filter) == [e.pk for e in failing]
    assert client.get(link).status_code == 200  # the new-incident page reads it


def test_a_spike_at_the_threshold_is_not_suggested(client_as, support_user, spike_settings):
    shop = ShopFactory()
    for _ in range(2):
        EventFactory(shop=shop, topic="orders/paid", status=Event.Status.FAILED)
    html = client_as(support_user).get(reverse("dashboard")).content.decode()
    assert open_links(html) == [] and "No failure spikes outside an open incident." in html


def test_a_spike_of_failing_calls_opens_an_incident_from_the_calls_filter(client_as, support_user, spike_settings):
    shop = ShopFactory(domain="calls.myshopify.com")
    calls = [OutboundCallFactory(shop=shop, operation="inventory.set", status="failed") for _ in range(4)]
    OutboundCallFactory(shop=shop, operation="inventory.set", status="succeeded")
    client = client_as(support_user)
    html = client.get(reverse("dashboard")).content.decode()
    assert "4 failures</strong> of <code>inventory.set</code> (our call to Shopify) for calls.myshopify.com" in html
    [link] = open_links(html)
    [calls_filter] = parse_qs(urlsplit(link).query)["calls_filter"]
    assert calls_filter.startswith("shop=calls.myshopify.com&operation=inventory.set&status=failed&since=")
    assert services.calls_for_filter(calls_filter) == [c.pk for c in calls]
    assert client.get(link).status_code == 200


def test_an_open_incident_covering_the_spike_suppresses_the_suggestion(client_as, support_user, spike_settings):
    shop = ShopFactory(domain="covered.myshopify.com")
    failing = [EventFactory(shop=shop, topic="orders/paid", status=Event.Status.FAILED) for _ in range(3)]
    other = [EventFactory(shop=shop, topic="products/update", status=Event.Status.FAILED) for _ in range(3)]
    incident = services.open_incident(title="orders/paid failing", by=support_user, event_ids=[failing[0].pk])
    client = client_as(support_user)
    html = client.get(reverse("dashboard")).content.decode()
    [link] = open_links(html)  # only the topic no incident covers
    assert "products/update" in parse_qs(urlsplit(link).query)["filter"][0]
    assert "of <code>orders/paid</code>" not in html
    # Once that incident is resolved, the spike is suggested again.
    Incident.objects.filter(pk=incident.pk).update(status=Incident.Status.RESOLVED, resolved_at=timezone.now())
    html = client.get(reverse("dashboard")).content.decode()
    assert len(open_links(html)) == 2 and len(other) == 3


def test_overdue_updates_and_failed_notifications_are_shown_to_support(client_as, support_user):
    late = IncidentFactory(title="Late news", next_update_due_at=timezone.now() - timedelta(minutes=20))
    IncidentFactory(title="On time", next_update_due_at=timezone.now() + timedelta(minutes=20))
    Notification.objects.create(
        incident=late, kind="update", audience="fulfilment", recipients=["w@example.com"], subject="s", body="b",
        status="failed", error="SMTPServerDisconnected",
    )  # fmt: skip
    stale = Notification.objects.create(
        incident=late, kind="opened", audience="engineering", subject="s", body="b", status="failed", error="x"
    )
    Notification.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=3))
    html = client_as(support_user).get(reverse("dashboard")).content.decode()
    [flagged] = re.findall(r'<p class="dash-incident overdue">.*?</p>', html)
    assert "Late news" in flagged and "update overdue" in flagged
    assert '<p class="dash-incident">' in html and "On time" in html
    overdue = html[html.index('class="toplist overdue-updates"') :]
    overdue = overdue[: overdue.index("</ul>")]
    assert "Late news" in overdue and "On time" not in overdue
    assert re.search(r"failed to send in the last day: <strong class=\"bad\">1</strong>", html)
    assert f'href="{reverse("incidents:detail", args=[late.pk])}#notifications"' in html


def test_customer_service_sees_the_board_on_the_dashboard_never_an_internal_title(client_as, service_user):
    shared = IncidentFactory(title="sync_order KeyError", public_title="Orders slow to appear", severity="sev2")
    IncidentUpdateFactory(incident=shared, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE, confirmed=True)
    IncidentFactory(title="Nothing confirmed yet")
    Notification.objects.create(incident=shared, kind="opened", audience="engineering", subject="s", body="b",
                                status="failed", error="boom")  # fmt: skip
    html = client_as(service_user).get(reverse("dashboard")).content.decode()
    assert "Orders slow to appear" in html
    assert "sync_order KeyError" not in html and "Nothing confirmed yet" not in html
    assert "Failure spikes" not in html and "failed to send" not in html


def test_the_incident_blocks_cost_a_fixed_number_of_queries(
    client_as, support_user, spike_settings, django_assert_max_num_queries
):
    for n in range(6):
        shop = ShopFactory()
        for _ in range(3):
            EventFactory(shop=shop, topic="orders/create", status=Event.Status.FAILED)
            OutboundCallFactory(shop=shop, operation="order.add_tags", status="failed")
        incident = IncidentFactory(next_update_due_at=timezone.now() - timedelta(minutes=n + 1))
        for _ in range(3):
            Notification.objects.create(incident=incident, kind="update", audience="engineering", subject="s",
                                        body="b", status="failed", error="boom")  # fmt: skip
    client = client_as(support_user)
    with django_assert_max_num_queries(32):  # as tests/test_site_shell.py allows the dashboard
        html = client.get(reverse("dashboard")).content.decode()
    assert len(open_links(html)) == 10  # the ten largest spikes
    assert 'failed to send in the last day: <strong class="bad">18</strong>' in html


# --- "Open an incident" from other pages -----------------------------------------------------------


def test_an_event_page_opens_an_incident_from_that_event(client_as, support_user):
    event = EventFactory(status=Event.Status.FAILED)
    client = client_as(support_user)
    html = client.get(reverse("events:detail", args=[event.pk])).content.decode()
    link = f"{reverse('incidents:new')}?event={event.pk}"
    assert f'href="{link}">Open an incident</a>' in html
    assert client.get(link).status_code == 200


def test_the_event_log_opens_an_incident_for_every_event_its_filters_match(client_as, support_user):
    shop = ShopFactory(domain="filtered.myshopify.com")
    failing = [EventFactory(shop=shop, status=Event.Status.FAILED) for _ in range(3)]
    EventFactory(shop=shop, status=Event.Status.PROCESSED, processed_count=1)
    EventFactory(status=Event.Status.FAILED)  # another shop
    client = client_as(support_user)
    html = client.get(reverse("events:list"), {"shop": shop.domain, "status": "failed"}).content.decode()
    [href] = re.findall(r'href="([^"]+)"[^>]*>Open an incident for every matching event</a>', html)
    url = urlsplit(html_lib.unescape(href))
    assert url.path == reverse("incidents:new")
    [events_filter] = parse_qs(url.query)["filter"]
    assert services.events_for_filter(events_filter) == [e.pk for e in failing]
    assert client.get(html_lib.unescape(href)).status_code == 200
    # Filters that are no replay filter (a free-text search) offer no such link.
    searched = client.get(reverse("events:list"), {"q": "anything"}).content.decode()
    assert "Open an incident for every matching event" not in searched


def test_an_outbound_call_page_opens_an_incident_from_that_call(client_as, support_user):
    call = OutboundCallFactory(status="failed")
    client = client_as(support_user)
    html = client.get(reverse("outbound:detail", args=[call.pk])).content.decode()
    link = f"{reverse('incidents:new')}?call={call.pk}"
    assert f'href="{link}">Open an incident</a>' in html
    assert client.get(link).status_code == 200
