"""Customer service sees only what the status board shows them, on every page they can open; the
board says in words what a severity means and flags a promised update that is late."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents.models import SEVERITY_FOR_CUSTOMERS, Incident, IncidentUpdate
from tests.factories import IncidentFactory, IncidentUpdateFactory
from tests.test_access_matrix import ACCESS, CS

pytestmark = pytest.mark.django_db

INTERNAL_TITLE = "Refund webhook drops VIP orders (internal)"
UNCONFIRMED_TITLE = "Maybe a payment gateway issue"
SHARED_TITLE = "Stock levels delayed"


@pytest.fixture
def incidents(support_user):
    internal = IncidentFactory(title=INTERNAL_TITLE, severity=Incident.Severity.SEV1, opened_by=support_user)
    IncidentUpdateFactory(incident=internal, body="internal notes", audience=IncidentUpdate.Audience.ENGINEERING)
    IncidentUpdateFactory(
        incident=internal, body="confirmed but internal", audience=IncidentUpdate.Audience.ENGINEERING, confirmed=True
    )
    unconfirmed = IncidentFactory(title=UNCONFIRMED_TITLE, opened_by=support_user)
    IncidentUpdateFactory(
        incident=unconfirmed, body="not sure yet", audience=IncidentUpdate.Audience.CUSTOMER_SERVICE, confirmed=False
    )
    shared = IncidentFactory(title=SHARED_TITLE, severity=Incident.Severity.SEV2, opened_by=support_user)
    IncidentUpdateFactory(
        incident=shared,
        body="Stock may lag 15 minutes.",
        audience=IncidentUpdate.Audience.CUSTOMER_SERVICE,
        confirmed=True,
    )
    return internal, unconfirmed, shared


def pages_customer_service_can_open():
    return sorted(name for name, access in ACCESS.items() if access[CS] in (200, 302) and name not in ("login",))


def test_customer_service_sees_no_incident_without_a_confirmed_update_for_them(client_as, service_user, incidents):
    client = client_as(service_user)
    opened = []
    for name in pages_customer_service_can_open():
        try:
            url = reverse(name)
        except Exception:  # noqa: BLE001 - pages that need an object id are not open to customer service
            continue
        response = client.get(url, follow=True)
        if response.status_code != 200:
            continue
        html = response.content.decode()
        opened.append(name)
        assert INTERNAL_TITLE not in html and UNCONFIRMED_TITLE not in html, name
        assert "internal notes" not in html and "not sure yet" not in html and "confirmed but internal" not in html
    assert {"dashboard", "incidents:status_board", "incidents:list"} <= set(opened)
    dashboard = client.get(reverse("dashboard")).content.decode()
    board = client.get(reverse("incidents:status_board")).content.decode()
    assert SHARED_TITLE in dashboard and SHARED_TITLE in board and "Stock may lag 15 minutes." in board


def test_support_sees_every_open_incident(client_as, support_user, incidents):
    client = client_as(support_user)
    dashboard = client.get(reverse("dashboard")).content.decode()
    listing = client.get(reverse("incidents:list")).content.decode()
    for title in (INTERNAL_TITLE, UNCONFIRMED_TITLE, SHARED_TITLE):
        assert title in dashboard and title in listing


def test_customer_service_is_sent_from_the_incident_list_to_the_board(client_as, service_user):
    response = client_as(service_user).get(reverse("incidents:list"))
    assert response.status_code == 302 and response["Location"] == reverse("incidents:status_board")


def test_the_board_explains_each_severity_in_customer_words(client_as, service_user, incidents):
    html = client_as(service_user).get(reverse("incidents:status_board")).content.decode()
    assert SEVERITY_FOR_CUSTOMERS["sev2"] in html  # the shared incident's own severity, in words
    for words in SEVERITY_FOR_CUSTOMERS.values():
        assert words in html  # and the legend


def test_a_promised_update_is_flagged_once_its_time_passes(client_as, service_user, support_user):
    incident = IncidentFactory(title="Order sync delayed", opened_by=support_user)
    update = IncidentUpdateFactory(
        incident=incident,
        body="Next update within 30 minutes.",
        audience=IncidentUpdate.Audience.CUSTOMER_SERVICE,
        confirmed=True,
        next_update_at=timezone.now() + timedelta(minutes=30),
    )
    client = client_as(service_user)
    html = client.get(reverse("incidents:status_board")).content.decode()
    assert "Next update due by" in html and "overdue" not in html
    IncidentUpdate.objects.filter(pk=update.pk).update(next_update_at=timezone.now() - timedelta(minutes=11))
    html = client.get(reverse("incidents:status_board"), headers={"HX-Request": "true"}).content.decode()
    assert "Next update overdue" in html and "11" in html
    # Only the newest shared update's promise counts.
    IncidentUpdateFactory(
        incident=incident,
        body="Fixed the cause; catching up.",
        audience=IncidentUpdate.Audience.CUSTOMER_SERVICE,
        confirmed=True,
    )
    html = client.get(reverse("incidents:status_board")).content.decode()
    assert "Next update overdue" not in html
