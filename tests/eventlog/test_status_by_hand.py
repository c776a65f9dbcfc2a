"""Support sets an event's status by hand, from the page or the command line: same service, reason
required, audited, never for an event a pump holds."""

import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from console.models import AuditEntry
from integrations.models import Event, EventHistory
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db
Status = Event.Status


def test_page_offers_the_status_actions_the_event_can_take(client_as, support_user):
    client = client_as(support_user)
    waiting = EventFactory(status=Status.RETRY_WAIT)
    html = client.get(reverse("events:detail", args=[waiting.pk])).content.decode()
    assert reverse("events:mark_failed", args=[waiting.pk]) in html
    assert reverse("events:mark_ignored", args=[waiting.pk]) in html
    claimed = EventFactory(status=Status.CLAIMED)
    html = client.get(reverse("events:detail", args=[claimed.pk])).content.decode()
    assert reverse("events:mark_failed", args=[claimed.pk]) not in html


def test_marking_failed_from_the_page_needs_a_reason_and_is_audited(client_as, support_user):
    client = client_as(support_user)
    event = EventFactory(status=Status.RETRY_WAIT)
    url = reverse("events:mark_failed", args=[event.pk])
    client.post(url, {"reason": "   "})
    assert Event.objects.get(pk=event.pk).status == Status.RETRY_WAIT
    response = client.post(url, {"reason": "the shop closed its store"}, follow=True)
    assert "Failed: the worker will not process this event again." in response.content.decode()
    event.refresh_from_db()
    assert event.status == Status.FAILED and "the shop closed its store" in event.status_reason
    entry = AuditEntry.objects.get(verb="event.mark-failed")
    assert entry.actor == support_user and entry.before == {"status": "retry_wait"}
    assert EventHistory.objects.get(event=event).author == support_user


def test_a_pump_held_event_cannot_be_changed_by_hand(client_as, support_user):
    event = EventFactory(status=Status.CLAIMED)
    client_as(support_user).post(reverse("events:mark_ignored", args=[event.pk]), {"reason": "x"})
    assert Event.objects.get(pk=event.pk).status == Status.CLAIMED
    assert not AuditEntry.objects.filter(verb__startswith="event.mark").exists()


def test_the_command_does_the_same_for_a_named_user(support_user, service_user, capsys):
    event = EventFactory(status=Status.QUEUED)
    with pytest.raises(CommandError, match="may not change events"):
        call_command("events", "ignore", str(event.pk), "--reason", "dup", "--user", service_user.username)
    call_command(
        "events", "ignore", str(event.pk), "--reason", "duplicate test order", "--user", support_user.username, "--json"
    )
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ignored" and "duplicate test order" in result["status_reason"]
    assert AuditEntry.objects.get(verb="event.mark-ignored").actor == support_user
    with pytest.raises(CommandError, match="cannot be marked failed"):
        call_command("events", "fail", str(event.pk), "--reason", "x", "--user", support_user.username)


def test_pumps_command_lists_pumps_and_what_they_hold(capsys):
    from django.utils import timezone

    from integrations.models import WorkerHeartbeat

    WorkerHeartbeat.objects.create(name="host:1:pump1", beat_at=timezone.now())
    EventFactory(status=Status.CLAIMED, claimed_by="host:1:pump1")
    call_command("events", "pumps", "--json")
    [row] = json.loads(capsys.readouterr().out)
    assert (row["name"], row["alive"], row["holding"]) == ("host:1:pump1", True, 1)
