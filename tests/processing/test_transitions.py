"""The declared state machines: every allowed transition works, every other is refused, races have
one winner, and the database refuses states the code relies on never seeing."""

import itertools
import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from console.models import AuditEntry
from integrations.eventlog.triage import acknowledge_event
from integrations.models import Attempt, Delivery, Event, EventHistory, InvalidTransition, Job, PrivacyRequest
from integrations.processing import interventions
from integrations.processing.claims import claim_for_rerun
from tests.factories import EventFactory, JobFactory, ShopFactory, UserFactory

pytestmark = pytest.mark.django_db

Status, JobStatus, Triage = Event.Status, Job.Status, Event.Triage


def event_fields(status: str) -> dict:
    """What the check constraints ask of an event in `status`."""
    now = timezone.now()
    return {
        Status.CLAIMED: {"claimed_by": "host:1:pump1", "claimed_at": now},
        Status.RETRY_WAIT: {"next_attempt_at": now + timedelta(minutes=1), "claimed_by": "", "claimed_at": None},
        Status.PROCESSED: {"processed_at": now, "processed_count": 1, "claimed_by": "", "claimed_at": None},
    }.get(status, {"claimed_by": "", "claimed_at": None})


def job_fields(status: str) -> dict:
    now = timezone.now()
    return {
        JobStatus.RETRY_WAIT: {"next_attempt_at": now + timedelta(minutes=1)},
        JobStatus.SUCCEEDED: {"finished_at": now},
        JobStatus.FAILED: {"finished_at": now},
    }.get(status, {})


ALL_EVENT_PAIRS = list(itertools.product(Status.values, repeat=2))
ALL_JOB_PAIRS = list(itertools.product(JobStatus.values, repeat=2))
ALL_TRIAGE_PAIRS = list(itertools.product(Triage.values, repeat=2))


def test_every_status_is_in_its_machine():
    assert Event.STATES.states == set(Status.values)
    assert Job.STATES.states == set(JobStatus.values)
    assert Event.TRIAGE.states == set(Triage.values)


@pytest.mark.parametrize(("source", "target"), ALL_EVENT_PAIRS, ids=[f"{s}->{t}" for s, t in ALL_EVENT_PAIRS])
def test_event_transitions_work_when_declared_and_are_refused_otherwise(source, target):
    event = EventFactory(status=source, **event_fields(source))
    rows = Event.objects.filter(pk=event.pk)
    if Event.STATES.allows(source, target):
        assert Event.STATES.move(rows, source=source, target=target, **event_fields(target)) == 1
        assert rows.get().status == target
    else:
        with pytest.raises(InvalidTransition):
            Event.STATES.move(rows, source=source, target=target, **event_fields(target))
        assert rows.get().status == source


@pytest.mark.parametrize(("source", "target"), ALL_JOB_PAIRS, ids=[f"{s}->{t}" for s, t in ALL_JOB_PAIRS])
def test_job_transitions_work_when_declared_and_are_refused_otherwise(source, target):
    job = JobFactory(status=source, **job_fields(source))
    rows = Job.objects.filter(pk=job.pk)
    if Job.STATES.allows(source, target):
        assert Job.STATES.move(rows, source=source, target=target, **job_fields(target)) == 1
        assert rows.get().status == target
    else:
        with pytest.raises(InvalidTransition):
            Job.STATES.move(rows, source=source, target=target, **job_fields(target))
        assert rows.get().status == source


@pytest.mark.parametrize(("source", "target"), ALL_TRIAGE_PAIRS, ids=[f"{s}->{t}" for s, t in ALL_TRIAGE_PAIRS])
def test_triage_transitions_work_when_declared_and_are_refused_otherwise(source, target):
    event = EventFactory(status=Status.FAILED, triage_state=source)
    rows = Event.objects.filter(pk=event.pk)
    if Event.TRIAGE.allows(source, target):
        assert Event.TRIAGE.move(rows, source=source, target=target) == 1
        assert rows.get().triage_state == target
    else:
        with pytest.raises(InvalidTransition):
            Event.TRIAGE.move(rows, source=source, target=target)


def test_a_move_from_a_state_the_row_is_not_in_changes_nothing():
    event = EventFactory(status=Status.PROCESSED)
    assert Event.STATES.move(Event.objects.filter(pk=event.pk), source=Status.QUEUED, target=Status.IGNORED) == 0
    assert Event.objects.get(pk=event.pk).status == Status.PROCESSED


def test_move_each_checks_every_row_and_its_own_source():
    a, b = EventFactory(status=Status.QUEUED), EventFactory(status=Status.FAILED)
    rows = [
        (a.pk, Status.QUEUED, Status.IGNORED, {"status_reason": "x"}),
        (b.pk, Status.QUEUED, Status.IGNORED, {"status_reason": "y"}),
    ]
    assert Event.STATES.move_each(Event, rows) == 1  # b is not queued
    assert Event.objects.get(pk=a.pk).status == Status.IGNORED and Event.objects.get(pk=b.pk).status == Status.FAILED
    with pytest.raises(InvalidTransition):
        Event.STATES.move_each(Event, [(b.pk, Status.PROCESSED, Status.QUEUED, {})])


@pytest.mark.django_db(transaction=True)
def test_two_pumps_racing_for_one_event_exactly_one_wins():
    """Real threads with their own database connections, released together."""
    for _round in range(5):
        event = EventFactory(status=Status.QUEUED)
        start = threading.Barrier(2)
        results: dict[str, bool] = {}

        def claim(pump: str, event_id: int = event.pk, start: threading.Barrier = start, results=results) -> None:
            try:
                start.wait()
                results[pump] = claim_for_rerun(pump, event_id, (Status.QUEUED,))
            finally:
                connection.close()

        threads = [threading.Thread(target=claim, args=(f"host:{n}:pump1",)) for n in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results.values()) == [False, True]
        winner = next(pump for pump, won in results.items() if won)
        assert Event.objects.get(pk=event.pk).claimed_by == winner


def test_two_people_changing_one_event_exactly_one_wins():
    support = UserFactory(role="support")
    event = EventFactory(status=Status.QUEUED)
    stale_a, stale_b = Event.objects.get(pk=event.pk), Event.objects.get(pk=event.pk)
    assert interventions.mark_event_ignored(event=stale_a, by=support, reason="duplicate test order") is True
    assert interventions.mark_event_failed(event=stale_b, by=support, reason="give up") is False
    assert Event.objects.get(pk=event.pk).status == Status.IGNORED
    assert list(EventHistory.objects.filter(event=event).values_list("action", "before", "after")) == [
        ("mark-ignored", "queued", "ignored")
    ]
    assert AuditEntry.objects.filter(verb="event.mark-ignored", target_id=str(event.pk)).count() == 1


def test_a_status_set_by_hand_needs_a_reason_and_a_state_it_may_leave():
    support = UserFactory(role="support")
    event = EventFactory(status=Status.PROCESSED)
    with pytest.raises(ValueError, match="Say why"):
        interventions.mark_event_failed(event=event, by=support, reason="  ")
    assert interventions.mark_event_failed(event=event, by=support, reason="wrong") is False
    waiting = EventFactory(status=Status.RETRY_WAIT)
    assert interventions.mark_event_failed(event=waiting, by=support, reason="the shop closed") is True
    waiting.refresh_from_db()
    assert waiting.status == Status.FAILED and waiting.next_attempt_at is None
    assert "the shop closed" in waiting.status_reason and "sam" not in waiting.status_reason


def _failed_order_event(shop, updated):
    event = EventFactory(
        shop=shop,
        status=Status.FAILED,
        topic="orders/updated",
        resource_gid="gid://shopify/Order/1001",
        resource_updated_at=updated,
    )
    JobFactory(event=event, name="sync_order", status=JobStatus.FAILED)
    return event


def _processed_outcome(shop, updated):
    from integrations.jobs.resources import Resource
    from integrations.processing.runner import JobRun, Outcome

    newer = EventFactory(shop=shop, status=Status.PROCESSED, topic="orders/updated")
    job = JobFactory(event=newer, name="sync_order", status=JobStatus.SUCCEEDED)
    resource = Resource(gid="gid://shopify/Order/1001", id="1001", label="#1001", updated_at=updated)
    return Outcome(newer, Status.PROCESSED, resource=resource, runs=[JobRun(job, JobStatus.SUCCEEDED)])


def test_auto_resolve_is_audited_as_the_rule():
    shop = ShopFactory()
    now = timezone.now()
    failed = _failed_order_event(shop, now - timedelta(hours=1))
    assert interventions.resolve_superseded_failures([_processed_outcome(shop, now)]) == 1
    failed.refresh_from_db()
    assert failed.triage_state == Triage.RESOLVED
    entry = AuditEntry.objects.get(verb="event.auto-resolve")
    assert (
        entry.actor is None and entry.before == {"triage_state": "open"} and entry.after == {"triage_state": "resolved"}
    )


def test_auto_resolve_never_overwrites_a_triage_change_made_after_it_read(monkeypatch):
    """The rule reads the failure as open; a person acknowledges it before the rule writes."""
    shop = ShopFactory()
    support = UserFactory(role="support")
    now = timezone.now()
    failed = _failed_order_event(shop, now - timedelta(hours=1))
    real_change = interventions.change_triage_state

    def person_acts_first(**kwargs):
        acknowledge_event(event=Event.objects.get(pk=failed.pk), by=support, note="looking at it")
        return real_change(**kwargs)

    monkeypatch.setattr(interventions, "change_triage_state", person_acts_first)
    assert interventions.resolve_superseded_failures([_processed_outcome(shop, now)]) == 0
    failed.refresh_from_db()
    assert failed.triage_state == Triage.ACKNOWLEDGED
    assert not AuditEntry.objects.filter(verb="event.auto-resolve").exists()
    assert list(EventHistory.objects.filter(event=failed).values_list("action", flat=True)) == ["acknowledge"]


def test_auto_resolve_leaves_a_failure_about_a_newer_version_open():
    shop = ShopFactory()
    now = timezone.now()
    failed = _failed_order_event(shop, now + timedelta(hours=1))
    assert interventions.resolve_superseded_failures([_processed_outcome(shop, now)]) == 0
    assert Event.objects.get(pk=failed.pk).triage_state == Triage.OPEN


@pytest.mark.parametrize(
    ("changes", "constraint"),
    [
        ({"status": "retry_wait", "next_attempt_at": None}, "int_event_retry_has_time"),
        ({"status": "claimed", "claimed_by": "", "claimed_at": None}, "int_event_claim_has_owner"),
        ({"status": "processed", "processed_at": None}, "int_event_processed_has_time"),
        ({"status": "processing"}, "int_event_status_valid"),
        ({"triage_state": "closed"}, "int_event_triage_valid"),
    ],
)
def test_the_database_refuses_an_event_in_an_impossible_state(changes, constraint):
    event = EventFactory(status=Status.QUEUED)
    with (
        pytest.raises(IntegrityError, match=constraint),
        transaction.atomic(),
    ):
        Event.objects.filter(pk=event.pk).update(**changes)


def test_the_database_refuses_impossible_jobs_attempts_deliveries_and_privacy_requests():
    event = EventFactory(status=Status.QUEUED)
    job = JobFactory(event=event, status=JobStatus.PENDING)
    refused = [
        lambda: Job.objects.filter(pk=job.pk).update(status="retry_wait", next_attempt_at=None),
        lambda: Job.objects.filter(pk=job.pk).update(status="succeeded", finished_at=None),
        lambda: Job.objects.filter(pk=job.pk).update(status="running"),
        lambda: Attempt.objects.create(job=job, number=1, outcome="running"),
        lambda: Delivery.objects.create(outcome="accepted", response_status=200, event=None),
        lambda: Delivery.objects.create(outcome="rejected", response_status=401, event=event),
        lambda: PrivacyRequest.objects.create(
            shop=event.shop, event=event, kind="customers/redact", due_at=timezone.now(), state="completed"
        ),
    ]
    for attempt in refused:
        with pytest.raises(IntegrityError), transaction.atomic():
            attempt()
