"""Seeing an event is not triaging it: every triage URL of the event log refuses a user who may
only view events, and changes nothing. The triage URLs are found from the URLconf by the
permission their views require, so a new triage action is covered without editing this file."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from console.models import AuditEntry
from integrations.eventlog import urls as eventlog_urls
from integrations.models import Event, EventHistory
from tests.factories import EventFactory, UserFactory

pytestmark = pytest.mark.django_db

TRIAGE = "integrations.triage_event"
# The actions the console has today; the URLconf may add more, never lose these.
KNOWN_TRIAGE_URLS = {"assign", "tag", "acknowledge", "resolve", "ignore", "reopen"}


def required_perms(view) -> tuple[str, ...]:
    """The permissions `console.access.require_perm` put on a view, through any other decorators."""
    while view is not None:
        if hasattr(view, "required_perms"):
            return tuple(view.required_perms)
        view = getattr(view, "__wrapped__", None)
    return ()


def triage_url_names() -> set[str]:
    return {
        pattern.name
        for pattern in eventlog_urls.urlpatterns
        if pattern.name and TRIAGE in required_perms(pattern.callback)
    }


def triage_urls(event: Event) -> dict[str, str]:
    # Every triage URL, including any whose permission went missing from its view.
    names = triage_url_names() | KNOWN_TRIAGE_URLS
    return {name: reverse(f"{eventlog_urls.app_name}:{name}", kwargs={"pk": event.pk}) for name in sorted(names)}


@pytest.fixture
def viewer(db):
    """May view events and deliveries, may not triage; in no role group."""
    user = UserFactory(username="vera-viewer")
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="integrations", codename__in=["view_event", "view_delivery"])
    )
    assert user.has_perms(["integrations.view_event", "integrations.view_delivery"])
    assert not user.has_perm(TRIAGE) and not user.groups.exists()
    return user


def triage_snapshot(*events: Event) -> list[tuple]:
    return list(
        Event.objects.filter(pk__in=[e.pk for e in events])
        .order_by("pk")
        .values_list("pk", "triage_state", "assignee_id", "tags")
    )


def test_triage_urls_are_found_by_their_permission():
    assert triage_url_names() >= KNOWN_TRIAGE_URLS


def test_a_viewer_gets_403_on_every_triage_action_and_nothing_changes(client, viewer, support_user):
    # Between them, every action has something to change: acknowledge, resolve and ignore start
    # from open, reopen from resolved; assign and tag apply to either.
    open_event = EventFactory(status=Event.Status.FAILED, triage_state=Event.Triage.OPEN)
    resolved_event = EventFactory(status=Event.Status.FAILED, triage_state=Event.Triage.RESOLVED, tags="known")
    before = triage_snapshot(open_event, resolved_event)
    audit_before = AuditEntry.objects.count()
    data = {"assignee": support_user.pk, "tags": "vip, urgent", "note": "should not be written"}

    client.force_login(viewer)
    for event in (open_event, resolved_event):
        for name, url in triage_urls(event).items():
            response = client.post(url, data)
            assert response.status_code == 403, f"{name} answered {response.status_code} for event {event.pk}"
            response = client.post(url, data, headers={"HX-Request": "true"})
            assert response.status_code == 403, f"{name} (htmx) answered {response.status_code}"

    assert triage_snapshot(open_event, resolved_event) == before
    assert not EventHistory.objects.exists()
    assert AuditEntry.objects.count() == audit_before


def test_a_viewer_can_open_the_event_but_sees_no_triage_controls(client, viewer):
    event = EventFactory(status=Event.Status.FAILED, triage_state=Event.Triage.OPEN)
    client.force_login(viewer)

    response = client.get(reverse("events:detail", args=[event.pk]))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="triage-panel"' in html  # the state is shown...
    assert 'class="triage-actions"' not in html  # ...but nothing to act with
    for name, url in triage_urls(event).items():
        assert f'action="{url}"' not in html, f"the page offers the {name} form"
        assert f'hx-post="{url}"' not in html, f"the page offers the {name} htmx form"


def test_support_may_use_every_triage_action(client, support_user):
    client.force_login(support_user)
    for name in sorted(triage_url_names() | KNOWN_TRIAGE_URLS):
        event = EventFactory(status=Event.Status.FAILED)
        url = triage_urls(event)[name]
        response = client.post(url, {"assignee": support_user.pk, "tags": "vip", "note": "on it"})
        assert response.status_code != 403, f"support was refused {name}"
