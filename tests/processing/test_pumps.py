"""Pumps: disjoint claims, no pump takes or finishes work another live pump holds, a poison event
fails alone, retries never hold up new events, and the statements an event costs stay few."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from integrations.models import Attempt, Delivery, Event, FulfillmentNotification, Job, PlatformOrder, WorkerHeartbeat
from integrations.processing import claims
from integrations.processing.pump import Pump, process_pending
from integrations.processing.runner import LostClaim, parse_payload, run_event, write_outcomes
from tests.factories import ShopFactory
from tests.webhooks import receive

pytestmark = pytest.mark.django_db
Status = Event.Status


@pytest.fixture
def shop():
    return ShopFactory()


def order(order_id: int, updated: str = "2026-05-04T10:00:00Z", **extra) -> dict:
    return {
        "id": order_id,
        "name": f"#{order_id}",
        "updated_at": updated,
        "financial_status": "paid",
        "customer": {"id": 7001},
        **extra,
    }


def settle_as(pump_name: str, event: Event) -> None:
    """What pump `pump_name` writes for `event` after running it (its own claim or not)."""
    event = Event.objects.select_related("shop").get(pk=event.pk)
    body = Delivery.objects.filter(event=event).values_list("body", flat=True).first()
    outcome = run_event(event, parse_payload(body), {}, worker=pump_name, careful=True)
    write_outcomes([outcome], pump=pump_name)


def test_a_pump_never_takes_or_recovers_claims_of_a_live_pump(shop, settings):
    settings.EVENT_CLAIM_LEASE_SECONDS = 30
    events = [receive(shop, "orders/paid", order(1000 + n)) for n in range(4)]
    slow = Pump(tag="slow")
    slow.beat()
    assert claims.claim_new(slow.name, 10) == [e.pk for e in events]
    # The slow pump has held them far longer than the lease, but its heartbeat is fresh.
    Event.objects.filter(pk__in=[e.pk for e in events]).update(claimed_at=timezone.now() - timedelta(minutes=10))

    other = Pump(tag="other")
    assert other.run_once() == 0
    assert claims.recover_lost_claims() == 0
    assert set(Event.objects.values_list("status", "claimed_by")) == {(Status.CLAIMED, slow.name)}

    assert slow.process([e.pk for e in events]) == 4
    assert set(Event.objects.values_list("status", flat=True)) == {Status.PROCESSED}
    assert set(Attempt.objects.values_list("worker", flat=True)) == {slow.name}
    assert FulfillmentNotification.objects.count() == 4


def test_a_pump_that_stalled_past_its_lease_cannot_finish_work_taken_over_by_another(shop, settings):
    settings.EVENT_CLAIM_LEASE_SECONDS = 30
    event = receive(shop, "orders/paid", order(2000))
    stalled = Pump(tag="stalled")
    stalled.beat()
    assert claims.claim_new(stalled.name, 10) == [event.pk]
    # It stops beating (e.g. a long GC pause or a network partition) for longer than the lease.
    long_ago = timezone.now() - timedelta(minutes=5)
    WorkerHeartbeat.objects.filter(name=stalled.name).update(beat_at=long_ago)
    Event.objects.filter(pk=event.pk).update(claimed_at=long_ago)

    rescuer = Pump(tag="rescuer")
    assert claims.recover_lost_claims() == 1
    assert claims.claim_new(rescuer.name, 10) == [event.pk]

    # The stalled pump wakes up while the rescuer holds the event, and tries to settle its old
    # run: refused (the claim is not its own any more), and everything it wrote rolled back.
    with pytest.raises(LostClaim), transaction.atomic():
        settle_as(stalled.name, event)
    assert not FulfillmentNotification.objects.exists() and not PlatformOrder.objects.exists()
    assert Event.objects.get(pk=event.pk).claimed_by == rescuer.name

    assert rescuer.process([event.pk]) == 1
    event.refresh_from_db()
    assert event.status == Status.PROCESSED and event.processed_count == 1
    with pytest.raises(LostClaim), transaction.atomic():
        settle_as(stalled.name, event)
    event.refresh_from_db()
    assert event.processed_count == 1
    assert FulfillmentNotification.objects.count() == 1 and PlatformOrder.objects.count() == 1
    workers = set(Attempt.objects.filter(outcome="succeeded").values_list("worker", flat=True))
    assert workers == {rescuer.name}


def test_pumps_claim_disjoint_batches(shop):
    events = [receive(shop, "orders/create", order(3000 + n)) for n in range(7)]
    a = claims.claim_new("host:1:pump1", 3)
    b = claims.claim_new("host:2:pump1", 3)
    c = claims.claim_new("host:3:pump1", 3)
    assert set(a).isdisjoint(b) and set(b).isdisjoint(c) and set(a).isdisjoint(c)
    assert sorted(a + b + c) == [e.pk for e in events]


def test_a_poison_event_fails_with_its_reason_and_the_rest_of_the_batch_is_processed(shop, monkeypatch):
    good = [receive(shop, "orders/create", order(4000 + n)) for n in range(3)]
    # A number no database integer column holds.
    poison = receive(shop, "orders/create", order(4100, order_number=10**30))
    assert process_pending() == 4
    poison.refresh_from_db()
    assert poison.status == Status.FAILED and "sync_order failed (not retryable)" in poison.status_reason
    assert [Event.objects.get(pk=e.pk).status for e in good] == [Status.PROCESSED] * 3
    assert PlatformOrder.objects.count() == 3

    # Even a failure outside any job (here: writing the outcome raises) fails only that event.
    from integrations.processing import runner

    broken = receive(shop, "orders/create", order(4200))
    fine = receive(shop, "orders/create", order(4201))
    real = runner._settle_values

    def refuse_one(outcome, now):
        if outcome.event.pk == broken.pk and outcome.status != Status.FAILED:
            raise ValueError("a value the database refuses")
        return real(outcome, now)

    monkeypatch.setattr(runner, "_settle_values", refuse_one)
    assert process_pending() == 2
    broken.refresh_from_db()
    assert broken.status == Status.FAILED and "a value the database refuses" in broken.status_reason
    assert Event.objects.get(pk=fine.pk).status == Status.PROCESSED
    assert process_pending() == 0  # nothing stuck, nothing left claimed
    assert not Event.objects.filter(status=Status.CLAIMED).exists()


def test_due_retries_never_hold_up_new_events(shop, settings):
    settings.EVENT_BATCH_SIZE = 5
    waiting = [receive(shop, "orders/create", order(5000 + n)) for n in range(30)]
    past = timezone.now() - timedelta(seconds=1)
    for event in waiting:
        Job.objects.create(
            event=event, name="sync_order", status=Job.Status.RETRY_WAIT, attempt_count=1, next_attempt_at=past
        )
    Event.objects.filter(pk__in=[e.pk for e in waiting]).update(status=Status.RETRY_WAIT, next_attempt_at=past)
    new = receive(shop, "orders/create", order(6000))
    pump = Pump(tag="fair")
    handled = pump.run_once()
    assert Event.objects.get(pk=new.pk).status == Status.PROCESSED
    assert handled == 1 + 20  # the new event, then at most RETRIES_PER_PASS retries
    assert Event.objects.filter(status=Status.RETRY_WAIT).count() == 10


def test_statements_per_event_do_not_grow_beyond_its_own_writes(shop):
    """One batch of n orders/create: a fixed number of statements for the batch, plus one upsert
    per event on PostgreSQL (an indexed read and the upsert on SQLite, which has no xmax)."""

    def statements_for(n: int, base: int) -> int:
        for k in range(n):
            receive(shop, "orders/create", order(base + k))
        with CaptureQueriesContext(connection) as captured:
            assert process_pending() == n
        return len(captured)

    process_pending()  # the pump's heartbeat row exists from now on, as in a running pump
    few, many = statements_for(5, 7000), statements_for(45, 8000)
    per_event = 1 if connection.vendor == "postgresql" else 2
    assert many - few == 40 * per_event


def test_every_attempt_says_which_worker_ran_it(shop):
    import os
    import socket

    receive(shop, "orders/create", order(9000))
    process_pending()
    attempt = Attempt.objects.get()
    assert attempt.worker.startswith(f"{socket.gethostname()}:{os.getpid()}:")


def test_events_for_one_record_run_in_the_order_they_arrived(shop):
    """Within a batch, whatever order the database returns the claimed rows in."""
    first = receive(shop, "orders/updated", order(9100, updated="2026-05-04T10:00:00Z"), "wh-arrived-1")
    second = receive(shop, "orders/updated", order(9100, updated="2026-05-04T10:00:00Z"), "wh-arrived-2")
    assert process_pending() == 2
    assert Attempt.objects.get(job__event=first, job__name="sync_order").message == "created"
    assert Attempt.objects.get(job__event=second, job__name="sync_order").message.startswith("stale")
