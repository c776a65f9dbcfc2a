"""Triage where it means something: events that failed, wait to retry or were ignored, and any
event already being triaged (so that can be finished or undone). A processed or queued event
nobody triaged offers no triage, and the server refuses it too."""

import pytest
from django.urls import reverse

from console.models import AuditEntry
from integrations.eventlog.triage import is_triageable
from integrations.models import Event, EventHistory
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db

Status, Triage = Event.Status, Event.Triage
TRIAGE_BUTTONS = (">Acknowledge</button>", ">Assign</button>", ">Save tags</button>")


@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    return client


@pytest.mark.parametrize(
    ("fields", "offered"),
    [
        ({"status": Status.FAILED}, True),
        ({"status": Status.RETRY_WAIT}, True),
        ({"status": Status.IGNORED}, True),
        ({"status": Status.PROCESSED}, False),
        ({"status": Status.QUEUED}, False),
        ({"status": Status.CLAIMED}, False),
        # Triage that started while it failed stays possible to finish after it recovered.
        ({"status": Status.PROCESSED, "triage_state": Triage.ACKNOWLEDGED}, True),
        ({"status": Status.PROCESSED, "triage_state": Triage.RESOLVED}, True),
        ({"status": Status.PROCESSED, "tags": "vip"}, True),
    ],
)
def test_the_panel_offers_triage_only_where_it_means_something(support, fields, offered):
    event = EventFactory(**fields)
    assert is_triageable(event) is offered
    html = support.get(reverse("events:detail", args=[event.pk])).content.decode()
    assert ("<form" in html.split('id="triage-panel"')[1].split("<h3>History</h3>")[0]) is (
        offered or event.status in (Status.QUEUED,)
    )
    if offered:
        assert ">Assign</button>" in html and ">Save tags</button>" in html
    else:
        assert not any(button in html for button in TRIAGE_BUTTONS)
        assert "Nothing to triage: the event is" in html


def test_a_processed_event_with_past_triage_can_be_reopened(support):
    event = EventFactory(status=Status.PROCESSED, triage_state=Triage.RESOLVED)
    html = support.get(reverse("events:detail", args=[event.pk])).content.decode()
    assert ">Reopen</button>" in html and ">Acknowledge</button>" not in html


def test_a_queued_event_still_offers_to_give_up_on_it(support):
    """Marking failed or ignored is about processing, not triage: a stuck queued event keeps it."""
    event = EventFactory(status=Status.QUEUED)
    html = support.get(reverse("events:detail", args=[event.pk])).content.decode()
    assert ">Mark failed</button>" in html and ">Mark ignored</button>" in html
    assert ">Acknowledge</button>" not in html


@pytest.mark.parametrize("status", [Status.PROCESSED, Status.QUEUED, Status.CLAIMED])
@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("acknowledge", {"note": "x"}),
        ("resolve", {}),
        ("ignore", {}),
        ("assign", {"assignee": ""}),
        ("tag", {"tags": "vip"}),
    ],
)
def test_the_server_refuses_triage_where_it_means_nothing(support, support_user, status, name, data):
    event = EventFactory(status=status)
    if name == "assign":
        data = {"assignee": support_user.pk}
    for headers in ({}, {"HX-Request": "true"}):
        response = support.post(reverse(f"events:{name}", args=[event.pk]), data, headers=headers, follow=True)
        assert response.status_code == 200
        assert "Nothing to triage: the event is" in response.content.decode()
    event.refresh_from_db()
    assert (event.triage_state, event.assignee_id, event.tags) == (Triage.OPEN, None, "")
    assert not EventHistory.objects.filter(event=event).exists()
    assert not AuditEntry.objects.filter(verb__startswith="event.").exists()


def test_triage_still_works_on_a_failed_event(support):
    event = EventFactory(status=Status.FAILED)
    support.post(reverse("events:acknowledge", args=[event.pk]), {"note": "on it"})
    event.refresh_from_db()
    assert event.triage_state == Triage.ACKNOWLEDGED
