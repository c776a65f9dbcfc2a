"""Retention: old payloads purged in small batches (each its own transaction, oldest first, a
backlog over several runs), traces intact, recent data untouched, attempts of old successful jobs
thinned to the first and last, purged events said to be purged on their page and refused by a
stored replay, every run recorded and shown on the dashboard, and 0 keeping everything."""

import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django_q.models import Schedule

from integrations import tasks
from integrations.eventlog.trace import trace_event
from integrations.inbound import retention
from integrations.models import Attempt, Delivery, Event, Job, OutboundAttempt, RetentionRun
from integrations.processing.pump import Pump
from integrations.replay import services
from integrations.replay.selection import for_events
from tests.factories import (
    AttemptFactory,
    DeliveryFactory,
    EventFactory,
    JobFactory,
    OutboundAttemptFactory,
    OutboundCallFactory,
    ShopFactory,
)
from tests.replay.helpers import failing
from tests.webhooks import order, receive

pytestmark = pytest.mark.django_db

HEADERS = {"X-Shopify-Topic": "orders/create", "X-Shopify-Shop-Domain": "a.myshopify.com", "X-Customer": "ana@x.com"}


@pytest.fixture(autouse=True)
def _defaults(settings):
    settings.PAYLOAD_RETENTION_DAYS = 30
    settings.ATTEMPT_RETENTION_DAYS = 90
    settings.WEBHOOK_REJECTED_RETENTION_DAYS = 14


def old_event(days: float, *, status=Event.Status.PROCESSED, deliveries: int = 1, body: bytes = b'{"id": 1}') -> Event:
    event = EventFactory(status=status, received_at=timezone.now() - timedelta(days=days))
    for _ in range(deliveries):
        DeliveryFactory(event=event, received_at=event.received_at, body=body, headers=HEADERS)
    return event


def process_all() -> None:
    pump = Pump(tag="test")
    while pump.run_once():
        pass


@pytest.fixture
def shop(db):
    return ShopFactory()


@pytest.fixture
def failed_paid(shop, monkeypatch):
    """An orders/paid event whose notify_fulfillment failed (not retryable): one to replay."""
    restore = failing(monkeypatch, "notify_fulfillment", "warehouse API down")
    event = receive(shop, "orders/paid", order(order_id=1001, customer={"id": 7001}))
    process_all()
    restore()
    event.refresh_from_db()
    assert event.status == Event.Status.FAILED
    return event


def age(event: Event, days: float) -> None:
    """Move an event and its deliveries `days` into the past."""
    when = timezone.now() - timedelta(days=days)
    Event.objects.filter(pk=event.pk).update(received_at=when)
    Delivery.objects.filter(event=event).update(received_at=when)


# --- Payloads, in batches -----------------------------------------------------------------------


def test_old_payloads_are_purged_oldest_first_in_batches_each_its_own_transaction():
    old = [old_event(40 + i, deliveries=2) for i in range(7)]  # old[6] is the oldest
    recent = old_event(10)

    with CaptureQueriesContext(connection) as queries:
        first = retention.purge_payloads(batch_size=2, max_batches=2)

    assert (first.done, first.batches, first.more) == (4, 2, True)  # at most batch_size * max_batches
    assert first.extra["deliveries"] == 8
    purged = set(Event.objects.filter(payload_purged_at__isnull=False).values_list("pk", flat=True))
    assert purged == {e.pk for e in old[3:]}  # the four oldest
    # Each batch is one transaction (a savepoint inside the test's own): a SELECT of at most
    # batch_size ids, then its UPDATEs (the events, the bodies' hashes, the bodies and headers),
    # and nothing written outside one.
    sql = [q["sql"] for q in queries.captured_queries]
    opened = [i for i, s in enumerate(sql) if s.startswith("SAVEPOINT")]
    released = [i for i, s in enumerate(sql) if s.startswith("RELEASE SAVEPOINT")]
    assert len(opened) == len(released) == 2
    writes = [i for i, s in enumerate(sql) if s.startswith("UPDATE")]
    assert len(writes) == 6
    assert all(any(o < w < r for o, r in zip(opened, released, strict=True)) for w in writes)

    second = retention.purge_payloads(batch_size=2, max_batches=2)
    assert (second.done, second.batches, second.more) == (3, 2, False)
    assert retention.purge_payloads(batch_size=2, max_batches=2).done == 0  # finished
    assert Event.objects.filter(payload_purged_at__isnull=False).count() == 7

    for delivery in Delivery.objects.filter(event__in=old):
        assert delivery.body is None and delivery.headers == {}
    kept = Delivery.objects.get(event=recent)
    assert bytes(kept.body) == b'{"id": 1}' and kept.headers == HEADERS
    assert Event.objects.get(pk=recent.pk).payload_purged_at is None


def test_events_in_flight_or_held_keep_their_payload_until_they_settle():
    waiting = {status: old_event(60, status=status) for status in retention.UNSETTLED}
    failed = old_event(60, status=Event.Status.FAILED)
    ignored = old_event(60, status=Event.Status.IGNORED)

    step = retention.purge_payloads()

    assert step.done == 2
    assert set(Event.objects.filter(payload_purged_at__isnull=False).values_list("pk", flat=True)) == {
        failed.pk,
        ignored.pk,
    }
    assert Delivery.objects.filter(event__in=waiting.values(), body__isnull=False).count() == len(waiting)


def test_a_purged_event_keeps_its_trace_and_each_deliverys_size_hash_and_signature(shop):
    body_dict = order(order_id=4242, email="ana@example.com")
    event = receive(shop, "orders/paid", body_dict, webhook_id="wh-trace")
    process_all()
    body = json.dumps(body_dict).encode()
    age(event, 31)
    before = trace_event(Event.objects.get(pk=event.pk))
    assert before["processed"] == 1 and before["jobs"]

    assert retention.purge_payloads().done == 1

    event.refresh_from_db()
    after = trace_event(event)
    assert after == before  # received, verified, processed, jobs and their results: all still answered
    assert (after["received"], after["verified"], after["processed"]) == (True, True, 1)
    assert [job["status"] for job in after["jobs"]] == [job.status for job in Job.objects.filter(event=event)]
    delivery = Delivery.objects.get(event=event)
    assert delivery.body is None and delivery.headers == {}
    assert delivery.body_size == len(body) and delivery.body_sha256 == hashlib.sha256(body).hexdigest()
    assert (delivery.signature_valid, delivery.outcome, delivery.response_status) == (True, "accepted", 200)
    assert (event.topic, event.resource_label, event.resource_id) == ("orders/paid", "#4242", "4242")
    assert event.resource_gid == "gid://shopify/Order/4242" and event.status == Event.Status.PROCESSED


def test_the_purged_events_page_says_it_was_purged(client, support_user):
    purged = old_event(45, body=b'{"email": "secret-buyer@example.com"}')
    recent = old_event(2, body=b'{"email": "recent-buyer@example.com"}')
    retention.purge_payloads()
    purged.refresh_from_db()
    client.force_login(support_user)

    html = client.get(reverse("events:detail", args=[purged.pk])).content.decode()
    day = timezone.localtime(purged.payload_purged_at).strftime("%Y-%m-%d")
    assert f"Payload purged on {day} after 30 days (PAYLOAD_RETENTION_DAYS)" in html
    assert "secret-buyer" not in html and "X-Customer" not in html and "No body stored" not in html
    assert "Headers purged with the payload" in html

    html = client.get(reverse("events:detail", args=[recent.pk])).content.decode()
    assert "recent-buyer@example.com" in html and "Payload purged" not in html


# --- Replays of a purged event -------------------------------------------------------------------


def test_a_replay_dry_run_does_not_replay_a_purged_event_from_storage(failed_paid):
    paid = failed_paid
    planned = services.check_replay(selection=for_events([paid.pk]))
    assert any(entry["decision"] == "run" for entry in planned.plan)
    age(paid, 40)
    retention.purge_payloads()
    paid.refresh_from_db()

    replay = services.check_replay(selection=for_events([paid.pk]))

    assert {entry["decision"] for entry in replay.plan} == {"skip"}
    assert {entry["kind"] for entry in replay.plan} == {"purged"}
    reason = replay.plan[0]["reason"]
    assert retention.purge_note(paid) in reason and "not replayable from storage" in reason
    assert replay.summary["skips_by_reason"] == {"payload purged": len(replay.plan)}
    # The plan shown before the purge cannot run: the run finds another plan.
    with pytest.raises(services.PlanChanged):
        services.do_replay(planned, by=None, reason="warehouse is back", plan_hash=planned.plan_hash)
    # A refetch reads the order from Shopify by its id, which was kept: it still plans.
    refetch = services.check_replay(selection=for_events([paid.pk]), mode="refetch")
    assert "purged" not in {entry["kind"] for entry in refetch.plan}
    assert any(entry["decision"] == "run" for entry in refetch.plan)


def test_an_event_waiting_in_a_replay_keeps_its_payload(failed_paid):
    paid = failed_paid
    replay = services.check_replay(selection=for_events([paid.pk]))
    services.do_replay(replay, by=None, reason="warehouse is back", plan_hash=replay.plan_hash)
    age(paid, 40)

    assert retention.purge_payloads().done == 0
    assert Delivery.objects.get(event=paid).body is not None


# --- Attempts ------------------------------------------------------------------------------------


def job_with(outcomes: list[tuple[str, str]], *, status=Job.Status.SUCCEEDED, days: float = 100) -> Job:
    when = timezone.now() - timedelta(days=days)
    job = JobFactory(status=status, finished_at=when, attempt_count=len(outcomes))
    for number, (outcome, trigger) in enumerate(outcomes, start=1):
        AttemptFactory(job=job, number=number, outcome=outcome, trigger=trigger, started_at=when, finished_at=when)
    return job


def numbers(job: Job) -> list[int]:
    return list(Attempt.objects.filter(job=job).order_by("number").values_list("number", flat=True))


F, S = Attempt.Outcome.FAILED, Attempt.Outcome.SUCCEEDED
FIRST, RETRY, REPLAY = Attempt.Trigger.FIRST, Attempt.Trigger.RETRY, Attempt.Trigger.REPLAY


def test_attempts_of_old_successful_jobs_are_thinned_to_the_first_and_last():
    retried = job_with([(F, FIRST), (F, RETRY), (F, RETRY), (S, RETRY)])
    # Its first success (what the trace's "out of order" reads) was not a replay: kept as well.
    replayed = job_with([(S, FIRST), (S, REPLAY), (S, REPLAY), (S, REPLAY)])
    late_success = job_with([(F, FIRST), (F, RETRY), (S, RETRY), (S, REPLAY), (S, REPLAY)])
    failed = job_with([(F, FIRST), (F, RETRY), (F, RETRY)], status=Job.Status.FAILED)
    two = job_with([(F, FIRST), (S, RETRY)])
    recent = job_with([(F, FIRST), (F, RETRY), (S, RETRY)], days=10)

    first = retention.thin_attempts(batch_size=2, max_batches=3)
    assert first.batches == 3 and first.more is True  # a backlog: the walk stopped at its batch limit
    for _ in range(10):
        step = retention.thin_attempts(batch_size=2, max_batches=3, cursor=first.cursor)
        first.cursor = step.cursor
        if not step.more:
            break

    assert numbers(retried) == [1, 4]
    assert numbers(replayed) == [1, 4]
    assert numbers(late_success) == [1, 3, 5]
    assert numbers(failed) == [1, 2, 3]  # a job that did not succeed keeps every attempt
    assert numbers(two) == [1, 2]
    assert numbers(recent) == [1, 2, 3]  # newer than ATTEMPT_RETENTION_DAYS
    assert Job.objects.get(pk=retried.pk).attempt_count == 4  # the trace still says four runs
    assert trace_event(Event.objects.get(pk=retried.event_id))["jobs"][0]["attempts"] == 4


def test_a_run_resumes_the_attempt_walk_where_the_last_run_stopped():
    jobs = [job_with([(F, FIRST), (F, RETRY), (S, RETRY)]) for _ in range(4)]  # 12 attempts

    ids = list(Attempt.objects.order_by("pk").values_list("pk", flat=True))

    first = retention.run_retention(batch_size=3, max_batches=2)
    assert first.cursors["attempts"] == ids[5]  # two batches of three attempts
    assert first.steps["attempts"]["more"] is True
    assert sum(len(numbers(job)) for job in jobs) == 10
    second = retention.run_retention(batch_size=3, max_batches=2)
    assert second.steps["attempts"]["done"] == 2 and second.steps["attempts"]["more"] is False
    assert [numbers(job) for job in jobs] == [[1, 3]] * 4


def test_tries_of_old_succeeded_calls_are_thinned_and_failed_calls_kept():
    when = timezone.now() - timedelta(days=100)

    def call_with(outcomes, status):
        call = OutboundCallFactory(status=status, finished_at=when, attempt_count=len(outcomes))
        for number, outcome in enumerate(outcomes, start=1):
            OutboundAttemptFactory(call=call, number=number, outcome=outcome, started_at=when)
        return call

    succeeded = call_with(["retry", "retry", "retry", "succeeded"], "succeeded")
    failed = call_with(["retry", "retry", "failed"], "failed")

    step = retention.thin_outbound_attempts()

    assert step.done == 2
    tries = OutboundAttempt.objects.order_by("number")
    assert list(tries.filter(call=succeeded).values_list("number", flat=True)) == [1, 4]
    assert list(tries.filter(call=failed).values_list("number", flat=True)) == [1, 2, 3]


# --- Runs, settings, the schedule, the dashboard, the command -----------------------------------


def test_a_run_is_recorded_with_its_settings_and_what_each_step_did():
    old_event(40)
    old_event(41)
    DeliveryFactory(event=None, received_at=timezone.now() - timedelta(days=20))
    job = job_with([(F, FIRST), (F, RETRY), (S, RETRY)])

    run = retention.run_retention(batch_size=500, max_batches=20)

    stored = RetentionRun.objects.get()
    assert stored.pk == run.pk and stored.finished_at is not None and stored.errors == ""
    assert stored.trigger == "schedule"
    assert stored.settings == {
        "PAYLOAD_RETENTION_DAYS": 30,
        "ATTEMPT_RETENTION_DAYS": 90,
        "WEBHOOK_REJECTED_RETENTION_DAYS": 14,
        "batch_size": 500,
        "max_batches": 20,
    }
    assert stored.steps["payloads"]["done"] == 2 and stored.steps["payloads"]["deliveries"] == 2
    assert stored.steps["rejected_deliveries"]["done"] == 1
    assert stored.steps["attempts"]["done"] == 1 and numbers(job) == [1, 3]
    assert stored.steps["outbound_attempts"]["done"] == 0
    assert stored.cursors["attempts"] == Attempt.objects.order_by("-pk").values_list("pk", flat=True)[0]


def test_settings_of_zero_keep_everything(settings):
    settings.PAYLOAD_RETENTION_DAYS = 0
    settings.ATTEMPT_RETENTION_DAYS = 0
    settings.WEBHOOK_REJECTED_RETENTION_DAYS = 0
    event = old_event(3000)
    DeliveryFactory(event=None, received_at=timezone.now() - timedelta(days=3000))
    job = job_with([(F, FIRST), (F, RETRY), (S, RETRY)], days=3000)

    run = retention.run_retention()

    assert all(step["done"] == 0 and step["skipped"] for step in run.steps.values())
    assert Delivery.objects.filter(body__isnull=False).count() == 2
    assert Delivery.objects.get(event=event).headers == HEADERS
    assert Event.objects.get(pk=event.pk).payload_purged_at is None
    assert numbers(job) == [1, 2, 3]


def test_the_worker_runs_it_on_a_schedule():
    schedule = Schedule.objects.get(name=retention.SCHEDULE_NAME)
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == ("integrations.tasks.run_retention", "I", -1)
    assert schedule.minutes == retention.SCHEDULE_MINUTES
    old_event(40)

    steps = tasks.run_retention()

    assert steps["payloads"]["done"] == 1
    assert RetentionRun.objects.get().steps == steps


def test_the_dashboard_shows_the_settings_and_the_last_run(client, support_user):
    client.force_login(support_user)
    html = client.get(reverse("dashboard")).content.decode()
    assert 'id="retention-h"' in html and "Retention has not run yet" in html

    for days in (40, 41, 42):
        old_event(days)
    retention.run_retention(batch_size=1, max_batches=2)
    html = client.get(reverse("dashboard")).content.decode()

    assert "30 days" in html and "90 days, then first and last" in html and "14 days" in html
    assert "purged the payloads of 2 events" in html and "A backlog is left" in html
    assert "Next run:" in html and "not scheduled" not in html


def test_the_command_runs_dry_and_for_real_and_says_what_is_due():
    for days in (40, 41, 42):
        old_event(days)
    recent = old_event(1)

    out = StringIO()
    call_command("retention", "run", "--dry-run", "--json", stdout=out)
    dry = json.loads(out.getvalue())
    assert dry["dry_run"] is True and dry["steps"]["payloads"]["done"] == 3 and dry["steps"]["payloads"]["backlog"] == 3
    assert not RetentionRun.objects.exists() and not Event.objects.filter(payload_purged_at__isnull=False).exists()

    out = StringIO()
    call_command("retention", "run", "--batch-size", "2", "--max-batches", "1", stdout=out)
    assert "events' payloads purged: 2 in 1 batches; more left for the next runs" in out.getvalue()
    assert RetentionRun.objects.get().trigger == "command"

    out = StringIO()
    call_command("retention", "status", "--json", stdout=out)
    status = json.loads(out.getvalue())
    assert status["would"]["payloads"]["done"] == 1 and status["settings"]["PAYLOAD_RETENTION_DAYS"] == 30
    assert [run["trigger"] for run in status["runs"]] == ["command"] and status["next_due"]
    out = StringIO()
    call_command("retention", "status", stdout=out)
    assert "A run now would do:" in out.getvalue() and "Latest runs:" in out.getvalue()
    assert Event.objects.get(pk=recent.pk).payload_purged_at is None

    with pytest.raises(CommandError, match="at least 1"):
        call_command("retention", "run", "--batch-size", "0")


def test_the_attempt_walk_keeps_its_place_while_thinning_is_turned_off(settings):
    jobs = [job_with([(F, FIRST), (F, RETRY), (S, RETRY)]) for _ in range(2)]
    first = retention.run_retention(batch_size=3, max_batches=1)
    assert first.cursors["attempts"] > 0 and [numbers(job) for job in jobs] == [[1, 3], [1, 2, 3]]

    settings.ATTEMPT_RETENTION_DAYS = 0
    off = retention.run_retention(batch_size=3, max_batches=1)
    assert off.steps["attempts"]["skipped"] and off.cursors["attempts"] == first.cursors["attempts"]

    settings.ATTEMPT_RETENTION_DAYS = 90
    on = retention.run_retention(batch_size=3, max_batches=1)
    assert on.steps["attempts"]["done"] == 1 and [numbers(job) for job in jobs] == [[1, 3], [1, 3]]
