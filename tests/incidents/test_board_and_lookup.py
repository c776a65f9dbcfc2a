"""Customer service's status board and lookup: an affected order or customer is found at once, with
whether it is fixed yet and what to tell the customer; the board and the lookup cost a fixed number
of queries however many incidents, updates and records there are."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import AffectedRecord, Incident, IncidentUpdate
from integrations.models import Event, ReplayItem, ReplayRequest
from tests.factories import IncidentFactory, IncidentUpdateFactory
from tests.incidents.conftest import make_order_event

pytestmark = pytest.mark.django_db

CS = IncidentUpdate.Audience.CUSTOMER_SERVICE


@pytest.fixture
def incident(support_user, failing_orders):
    incident = services.open_incident(
        title="sync_order KeyError on discount codes", by=support_user, event_ids=[e.pk for e in failing_orders],
        public_title="New orders are slow to reach the warehouse", customer_advice="The order is safe; it ships late.",
        workaround="None needed: nothing to do for the customer.",
    )  # fmt: skip
    services.post_update(incident, body="Orders are being re-sent now.", audience=CS, confirmed=True, by=support_user)
    return incident


def lookup(client, q: str) -> str:
    response = client.get(reverse("incidents:lookup"), {"q": q})
    assert response.status_code == 200
    return response.content.decode()


def test_an_order_is_found_with_its_repair_state_which_turns_to_fixed_when_its_replay_succeeds(
    client_as, service_user, support_user, incident, failing_orders
):
    client = client_as(service_user)
    for q in ("#1001", "1001", " 1001 "):
        html = lookup(client, q)
        assert "New orders are slow to reach the warehouse" in html and "#1001" in html
        assert "Not fixed yet" in html and "The order is safe; it ships late." in html
        assert "Orders are being re-sent now." in html and "Open: investigating" in html
        assert "#1002" not in html
    # A replay of it is queued: being fixed. It succeeds and the event is processed: fixed.
    event = failing_orders[0]
    replay = ReplayRequest.objects.create(
        requested_by=support_user, requested_label="sam", kind="one", selection={"event_ids": [event.pk]},
        plan_hash="0" * 64, incident=incident,
    )  # fmt: skip
    item = ReplayItem.objects.create(replay=replay, event=event, shop=event.shop, jobs=["sync_order"])
    assert "Being fixed" in lookup(client, "#1001")
    ReplayItem.objects.filter(pk=item.pk).update(status=ReplayItem.Status.DONE, finished_at=timezone.now())
    Event.objects.filter(pk=event.pk).update(
        status=Event.Status.PROCESSED, processed_at=timezone.now(), processed_count=1
    )
    html = lookup(client, "#1001")
    assert "Fixed" in html and "Not fixed yet" not in html and "Being fixed" not in html
    assert AffectedRecord.objects.get(incident=incident, key="#1001").repair_state == "repaired"


def test_a_customer_email_finds_their_orders(client_as, service_user, incident):
    html = lookup(client_as(service_user), "Buyer1002@Example.com")
    assert "New orders are slow to reach the warehouse" in html and "buyer1002@example.com" in html
    assert "Not fixed yet" in html


def test_nothing_found_says_so_plainly_and_escapes_what_was_typed(client_as, service_user, incident):
    client = client_as(service_user)
    assert "No open incident affects #4242." in lookup(client, "#4242")
    html = lookup(client, '<script>alert("x")</script>')
    assert "No open incident affects &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert '<script>alert("x")</script>' not in html


def test_an_empty_query_shows_the_form_only(client_as, service_user):
    html = client_as(service_user).get(reverse("incidents:lookup")).content.decode()
    assert '<label class="grow" for="lookup-q">' in html and 'name="q"' in html and "autofocus" in html
    assert 'method="get"' in html and "No open incident affects" not in html


def test_a_resolved_incident_shows_as_resolved_for_a_week_then_not_at_all(
    client_as, service_user, support_user, incident
):
    Incident.objects.filter(pk=incident.pk).update(
        status=Incident.Status.RESOLVED, resolved_at=timezone.now() - timedelta(days=2)
    )
    client = client_as(service_user)
    html = lookup(client, "#1001")
    assert "Resolved" in html and "New orders are slow to reach the warehouse" in html
    board = client.get(reverse("incidents:status_board")).content.decode()
    assert "New orders are slow to reach the warehouse" not in board  # the board is for open incidents
    Incident.objects.filter(pk=incident.pk).update(resolved_at=timezone.now() - timedelta(days=30))
    html = lookup(client, "#1001")
    assert "No open incident affects #1001." in html and "warehouse" not in html


def test_the_lookup_costs_a_fixed_number_of_queries(
    client_as, service_user, support_user, shop, django_assert_max_num_queries
):
    # One order affected by many incidents, each with several updates: the same few queries.
    for n in range(12):
        event = make_order_event(shop, 1001, email="many@example.com")
        incident = services.open_incident(title=f"Cause {n}", public_title=f"Public {n}", by=support_user,
                                          event_ids=[event.pk])  # fmt: skip
        for i in range(3):
            IncidentUpdateFactory(incident=incident, body=f"u{n}-{i}", audience=CS, confirmed=True)
    client = client_as(service_user)
    lookup(client, "#1001")
    with django_assert_max_num_queries(12):  # session, user, perms; the records, refresh (3), updates
        html = lookup(client, "many@example.com")
    assert html.count("lookup-match") == 24  # each incident's order and customer
    assert "u11-2" in html and "u11-1" not in html  # only the latest confirmed update of each


def test_the_board_shows_public_fields_only_in_a_fixed_number_of_queries(
    client_as, service_user, support_user, django_assert_max_num_queries
):
    for n in range(15):
        incident = IncidentFactory(
            title=f"Internal cause {n}", public_title=f"Public name {n}", customer_impact=f"Impact {n}",
            customer_advice=f"Advice {n}", workaround=f"Workaround {n}", summary=f"Summary {n}",
            severity_reasoning=f"Reasoning {n}", next_update_due_at=timezone.now() + timedelta(hours=1),
        )  # fmt: skip
        IncidentUpdateFactory(incident=incident, body=f"Shared {n}", audience=CS, confirmed=True)
        IncidentUpdateFactory(incident=incident, body=f"Guess {n}", audience=CS, confirmed=False)
        IncidentUpdateFactory(incident=incident, body=f"Engineering {n}", audience="engineering", confirmed=True)
    client = client_as(service_user)
    with django_assert_max_num_queries(7):  # session, user, perms; the incidents, their updates
        html = client.get(reverse("incidents:status_board")).content.decode()
    for n in range(15):
        for public in (f"Public name {n}<", f"Impact {n}<", f"Advice {n}<", f"Workaround {n}<", f"Shared {n}<"):
            assert public in html
        for internal in (
            f"Internal cause {n}<",
            f"Summary {n}<",
            f"Reasoning {n}<",
            f"Guess {n}<",
            f"Engineering {n}<",
        ):
            assert internal not in html
    assert "What customers may notice" in html and "What to tell them" in html and "Next update due by" in html


def test_the_search_box_swaps_in_the_answer_alone_and_a_history_restore_gets_the_page(
    client_as, service_user, incident
):
    client = client_as(service_user)
    url = reverse("incidents:lookup")
    partial = client.get(url, {"q": "1001"}, headers={"HX-Request": "true"}).content.decode()
    assert 'id="lookup-results"' in partial
    assert "<html" not in partial and "New orders are slow to reach the warehouse" in partial
    restored = client.get(
        url, {"q": "1001"}, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"}
    ).content.decode()
    assert "<html" in restored and 'name="q" value="1001"' in restored
