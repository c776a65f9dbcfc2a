import re

import pytest
from django.urls import reverse

from incidents.models import IncidentUpdate
from tests.factories import IncidentFactory, IncidentUpdateFactory


def test_base_layout_uses_bundled_htmx_and_sends_csrf(client, support_user):
    client.force_login(support_user)
    html = client.get(reverse("dashboard")).content.decode()
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', html)
    assert scripts and all(src.startswith("/static/") for src in scripts), scripts
    assert any("htmx" in src for src in scripts)
    assert 'hx-headers=\'{"X-CSRFToken": "' in html
    assert client.get(scripts[0]).status_code == 200


def test_navigation_follows_the_role(client, support_user, service_user, admin_user):
    def nav(user):
        client.force_login(user)
        html = client.get(reverse("dashboard")).content.decode()
        return re.findall(r"<li><a href=\"[^\"]+\"[^>]*>([^<]+)</a></li>", html)

    assert nav(service_user) == ["Dashboard", "Status board", "Lookup"]
    staff_nav = [
        "Dashboard", "Events", "Outbound", "Replays", "Runbook", "Incidents", "Worksheets", "Status board", "Lookup",
        "Shops", "Privacy", "Alerts", "Audit trail",
    ]  # fmt: skip
    assert nav(support_user) == staff_nav
    assert nav(admin_user) == staff_nav


def test_relative_times_carry_the_exact_time(client, service_user):
    IncidentUpdateFactory(confirmed=True, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE)
    client.force_login(service_user)
    html = client.get(reverse("incidents:status_board")).content.decode()
    assert re.search(r'<time datetime="[^"]+" title="\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC">just now</time>', html)


def test_status_board_shows_only_confirmed_customer_service_updates(
    client, service_user, django_assert_max_num_queries
):
    incident = IncidentFactory(title="Orders delayed")
    IncidentUpdateFactory(
        incident=incident, body="Confirmed for CS", confirmed=True, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE
    )
    IncidentUpdateFactory(
        incident=incident, body="Unconfirmed guess", confirmed=False, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE
    )
    IncidentUpdateFactory(
        incident=incident, body="Internal detail", confirmed=True, audience=IncidentUpdate.Audience.ENGINEERING
    )
    IncidentUpdateFactory(incident=IncidentFactory(title="Nothing shareable yet"), body="guess", confirmed=False)
    for i in range(10):
        IncidentUpdateFactory(confirmed=True, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE, body=f"other {i}")
    client.force_login(service_user)
    with django_assert_max_num_queries(7):
        html = client.get(reverse("incidents:status_board")).content.decode()
    assert "Confirmed for CS" in html
    assert "Unconfirmed guess" not in html and "Internal detail" not in html
    assert "Nothing shareable yet" not in html
    assert html.count('class="card incident"') == 11


def test_status_board_empty_state(client, service_user):
    client.force_login(service_user)
    assert "No active integration incidents" in client.get(reverse("incidents:status_board")).content.decode()


@pytest.mark.parametrize("user_fixture", ["support_user", "service_user", "admin_user"])
def test_dashboard_renders_for_each_role(request, client, user_fixture, django_assert_max_num_queries):
    client.force_login(request.getfixturevalue(user_fixture))
    # Event-log health adds 10 aggregate queries for support/admin, outbound 3; incident health at most 7
    # (overdue updates 1, failed notifications 2, failure spikes 4); retention 1; alerts 1 (2 while some fire).
    with django_assert_max_num_queries(32):
        assert client.get(reverse("dashboard")).status_code == 200


def test_login_and_logout(client, support_user):
    response = client.post(reverse("login"), {"username": support_user.username, "password": "correct-horse-battery"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("dashboard")).status_code == 302


def test_wrong_password_says_so(client, support_user):
    response = client.post(reverse("login"), {"username": support_user.username, "password": "nope"})
    assert "didn't match" in response.content.decode()
