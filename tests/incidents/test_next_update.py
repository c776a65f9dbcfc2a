"""When the next status update is due: by severity from the opening and from each update, at the
time promised when one is, sooner when the severity gets more urgent; and overdue detection."""

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import services
from incidents.models import Incident

pytestmark = pytest.mark.django_db

BLOCKED = {"orders": "blocked", "workaround": False}  # sev1
DELAYED = {"orders": "delayed"}  # sev3
NOTHING = {}  # sev4


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)


@pytest.fixture(autouse=True)
def update_minutes(settings):
    settings.INCIDENT_UPDATE_MINUTES = {"sev1": 15, "sev2": 60, "sev3": 240, "sev4": 1440}


@pytest.mark.parametrize(
    ("answers", "severity", "interval"), [(BLOCKED, "sev1", 15), (DELAYED, "sev3", 240), (NOTHING, "sev4", 1440)]
)
def test_opening_sets_the_next_update_by_severity(support_user, answers, severity, interval):
    incident = services.open_incident(title="x", by=support_user, answers=answers)
    assert incident.severity == severity
    assert incident.next_update_due_at == incident.opened_at + minutes(interval)
    assert not incident.update_overdue


def test_an_update_moves_the_due_time_from_when_it_was_posted(support_user):
    incident = services.open_incident(title="x", by=support_user, answers=DELAYED)
    Incident.objects.filter(pk=incident.pk).update(opened_at=timezone.now() - minutes(200))
    update = services.post_update(incident, body="Looking at the sync job.", audience="engineering", by=support_user)
    incident.refresh_from_db()
    assert incident.next_update_due_at == update.created_at + minutes(240)
    assert "next update due" in incident.steps.latest("id").text


def test_an_unconfirmed_update_moves_the_due_time_too(support_user):
    incident = services.open_incident(title="x", by=support_user, answers=BLOCKED)
    update = services.post_update(incident, body="Maybe the API.", audience="customer_service", by=support_user)
    incident.refresh_from_db()
    assert not update.confirmed
    assert incident.next_update_due_at == update.created_at + minutes(15)


@pytest.mark.parametrize("promise", [10, 600])
def test_an_explicit_next_update_time_wins(support_user, promise):
    incident = services.open_incident(title="x", by=support_user, answers=DELAYED)
    promised = timezone.now() + minutes(promise)
    update = services.post_update(
        incident,
        body="Next news at the promised time.",
        audience="engineering",
        by=support_user,
        next_update_at=promised,
    )
    incident.refresh_from_db()
    assert update.next_update_at == promised
    assert incident.next_update_due_at == promised


def test_a_next_update_time_in_the_past_is_refused(support_user):
    incident = services.open_incident(title="x", by=support_user, answers=DELAYED)
    due = incident.next_update_due_at
    with pytest.raises(services.IncidentError, match="must be promised for a time in the future"):
        services.post_update(
            incident, body="Soon.", audience="engineering", by=support_user,
            next_update_at=timezone.now() - minutes(1),
        )  # fmt: skip
    incident.refresh_from_db()
    assert incident.next_update_due_at == due and not incident.updates.exists()


def test_a_more_urgent_severity_pulls_the_due_time_in(support_user):
    incident = services.open_incident(title="x", by=support_user, answers=DELAYED)
    assert incident.next_update_due_at == incident.opened_at + minutes(240)
    incident = services.set_severity(incident, by=support_user, answers=BLOCKED)
    assert incident.severity == "sev1"
    assert incident.next_update_due_at == incident.opened_at + minutes(15)


def test_a_severity_change_counts_from_the_last_update(support_user):
    incident = services.open_incident(title="x", by=support_user, answers=NOTHING)
    Incident.objects.filter(pk=incident.pk).update(opened_at=timezone.now() - minutes(60))
    update = services.post_update(incident, body="Found it.", audience="engineering", by=support_user)
    incident = services.set_severity(incident, by=support_user, answers=BLOCKED)
    assert incident.next_update_due_at == update.created_at + minutes(15)


def test_a_promise_earlier_than_the_new_interval_is_kept(support_user):
    incident = services.open_incident(title="x", by=support_user, answers=NOTHING)
    promised = timezone.now() + minutes(5)
    services.post_update(
        incident, body="In 5 minutes.", audience="engineering", by=support_user, next_update_at=promised
    )
    incident = services.set_severity(incident, by=support_user, answers=DELAYED)
    assert incident.severity == "sev3" and incident.next_update_due_at == promised


def test_overdue_is_detected_and_resolved_incidents_are_never_overdue(support_user):
    late = services.open_incident(title="late", by=support_user)
    later = services.open_incident(title="later", by=support_user)
    on_time = services.open_incident(title="on time", by=support_user)
    done = services.open_incident(title="done", by=support_user)
    services.resolve(done, by=support_user)
    now = timezone.now()
    Incident.objects.filter(pk=late.pk).update(next_update_due_at=now - minutes(30))
    Incident.objects.filter(pk=later.pk).update(next_update_due_at=now - minutes(1))
    Incident.objects.filter(pk=done.pk).update(next_update_due_at=now - minutes(90))

    assert list(services.overdue_incidents().values_list("title", flat=True)) == ["late", "later"]
    flags = {i.title: i.update_overdue for i in Incident.objects.all()}
    assert on_time.next_update_due_at > now
    assert flags == {"late": True, "later": True, "on time": False, "done": False}


def test_posting_an_update_clears_overdue(support_user):
    incident = services.open_incident(title="late", by=support_user)
    Incident.objects.filter(pk=incident.pk).update(next_update_due_at=timezone.now() - minutes(5))
    assert list(services.overdue_incidents()) == [Incident.objects.get(pk=incident.pk)]
    services.post_update(incident, body="Still on it.", audience="engineering", by=support_user)
    incident.refresh_from_db()
    assert not incident.update_overdue and not services.overdue_incidents().exists()


def test_a_promised_update_that_passes_is_flagged_on_the_update(support_user):
    incident = services.open_incident(title="x", by=support_user)
    update = services.post_update(
        incident, body="More at noon.", audience="customer_service", by=support_user,
        next_update_at=timezone.now() + minutes(30),
    )  # fmt: skip
    assert not update.next_update_overdue
    type(update).objects.filter(pk=update.pk).update(next_update_at=timezone.now() - minutes(1))
    update.refresh_from_db()
    assert update.next_update_overdue
