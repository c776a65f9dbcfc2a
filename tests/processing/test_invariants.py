"""Invariants of processing that must survive a rewrite of its internals: a webhook is processed
once however often it arrives, and a paid order is sent to fulfillment once however often it is
paid or replayed. Only public entry points: the receiver's storage function, `process_event`,
`process_pending` and the models."""

import pytest

from integrations.models import Attempt, Delivery, Event, FulfillmentNotification, Job
from integrations.processing.pump import process_event, process_pending
from tests.factories import ShopFactory
from tests.webhooks import order, receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    return ShopFactory()


def work_done() -> tuple[int, int]:
    return Job.objects.count(), Attempt.objects.count()


def test_a_duplicate_after_processing_is_counted_but_not_processed_again(shop):
    first = receive(shop, "orders/paid", order(), webhook_id="wh-dup-1")
    assert process_event(first) == Event.Status.PROCESSED
    before = work_done()
    assert before[0] > 0 and before[1] > 0

    again = receive(shop, "orders/paid", order(), webhook_id="wh-dup-1")

    assert again.pk == first.pk
    assert (again.status, again.processed_count, again.delivery_count) == (Event.Status.PROCESSED, 1, 2)
    outcomes = list(Delivery.objects.filter(event=first).order_by("id").values_list("outcome", flat=True))
    assert outcomes == [Delivery.Outcome.ACCEPTED, Delivery.Outcome.DUPLICATE]
    assert work_done() == before

    # The pump finds nothing to do, and the event is still processed exactly once.
    assert process_pending() == 0
    first.refresh_from_db()
    assert (first.status, first.processed_count, first.delivery_count) == (Event.Status.PROCESSED, 1, 2)
    assert work_done() == before


def test_a_paid_order_is_sent_to_fulfillment_once_whatever_else_arrives_or_is_replayed(shop):
    first = receive(shop, "orders/paid", order(), webhook_id="wh-paid-1")
    assert process_event(first) == Event.Status.PROCESSED
    assert FulfillmentNotification.objects.filter(order_shopify_id=1001).count() == 1

    # Shopify sends orders/paid again for the same order, under a new webhook id.
    second = receive(shop, "orders/paid", order(updated="2026-05-04T10:05:00-04:00"), webhook_id="wh-paid-2")
    assert second.pk != first.pk
    assert process_event(second) == Event.Status.PROCESSED

    # Support replays the first one.
    assert process_event(first, replay=True) == Event.Status.PROCESSED

    assert FulfillmentNotification.objects.filter(order_shopify_id=1001).count() == 1
    for event in (first, second):
        event.refresh_from_db()
        assert event.status == Event.Status.PROCESSED

    second_job = Job.objects.get(event=second, name="notify_fulfillment")
    assert second_job.status == Job.Status.SUCCEEDED
    second_attempt = Attempt.objects.filter(job=second_job).get()
    assert second_attempt.outcome == Attempt.Outcome.SUCCEEDED and "already" in second_attempt.message

    first_job = Job.objects.get(event=first, name="notify_fulfillment")
    assert first_job.status == Job.Status.SUCCEEDED
    replayed = Attempt.objects.filter(job=first_job).order_by("number").last()
    assert replayed.trigger == Attempt.Trigger.REPLAY
    assert replayed.outcome == Attempt.Outcome.SUCCEEDED and "already" in replayed.message
