"""The five answers for one webhook: trace_event / trace_webhook and `manage.py events trace`."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from integrations.eventlog.trace import trace_event, trace_webhook, traced_events
from integrations.models import Attempt, Delivery, Event, Job
from tests.factories import AttemptFactory, DeliveryFactory, EventFactory, JobFactory, ShopFactory

pytestmark = pytest.mark.django_db

KEYS = {
    "webhook_id",
    "event_id",
    "shop",
    "topic",
    "received",
    "verified",
    "deliveries",
    "processed",
    "status",
    "jobs",
    "failure",
    "still_failing",
    "out_of_order",
    "first_received_at",
    "last_received_at",
}


def processed_event(**kwargs) -> Event:
    event = EventFactory(status=Event.Status.PROCESSED, processed_count=1, **kwargs)
    DeliveryFactory(event=event)
    job = JobFactory(event=event, name="sync_order", status=Job.Status.SUCCEEDED, attempt_count=1)
    AttemptFactory(job=job, number=1)
    return event


def test_processed_event_answers_all_five_questions():
    event = processed_event(webhook_id="wh-processed")
    trace = trace_webhook("wh-processed")
    assert set(trace) == KEYS
    assert trace["event_id"] == event.pk
    assert trace["shop"] == event.shop.domain
    assert trace["topic"] == "orders/create"
    assert (trace["received"], trace["verified"]) == (True, True)
    assert (trace["deliveries"], trace["processed"], trace["status"]) == (1, 1, "processed")
    assert trace["jobs"] == [
        {
            "name": "sync_order",
            "status": "succeeded",
            "attempts": 1,
            "error": None,
            "result": None,
            "did_nothing": False,
        }
    ]
    assert trace["out_of_order"] is False
    assert trace["failure"] is None
    assert trace["still_failing"] is False
    assert trace["first_received_at"] == event.received_at.isoformat()


def test_duplicates_count_every_delivery_but_process_once():
    event = EventFactory(status=Event.Status.PROCESSED, processed_count=1, delivery_count=5, webhook_id="wh-dup")
    DeliveryFactory(event=event)
    for _ in range(4):
        DeliveryFactory(event=event, outcome=Delivery.Outcome.DUPLICATE)
    trace = trace_event(event)
    assert (trace["deliveries"], trace["processed"]) == (5, 1)


def test_failed_job_is_the_failure_stage_and_still_failing():
    event = EventFactory(status=Event.Status.FAILED, status_reason="job notify failed", webhook_id="wh-fail")
    ok = JobFactory(event=event, name="sync_order", status=Job.Status.SUCCEEDED, attempt_count=1)
    failed = JobFactory(
        event=event,
        name="notify_fulfillment",
        status=Job.Status.FAILED,
        attempt_count=3,
        last_error="ConnectionError: fulfillment API down",
        retryable=True,
    )
    AttemptFactory(job=ok, number=1)
    for n in (1, 2, 3):
        AttemptFactory(job=failed, number=n, outcome=Attempt.Outcome.FAILED, error_class="ConnectionError")
    trace = trace_webhook("wh-fail", event.shop.domain)
    assert trace["status"] == "failed"
    assert trace["failure"] == {
        "stage": "job:notify_fulfillment",
        "error": "ConnectionError: fulfillment API down",
        "retryable": True,
    }
    assert trace["still_failing"] is True
    assert [job["status"] for job in trace["jobs"]] == ["succeeded", "failed"]


def test_payload_that_is_not_json_fails_at_parse():
    event = EventFactory(status=Event.Status.FAILED, status_reason="payload is not valid JSON: Expecting value")
    trace = trace_event(event)
    assert trace["failure"] == {
        "stage": "parse",
        "error": "payload is not valid JSON: Expecting value",
        "retryable": False,
    }
    assert trace["still_failing"] is True


def test_handler_failure_without_jobs_fails_at_handler():
    event = EventFactory(status=Event.Status.FAILED, status_reason="handler could not read the payload: KeyError('id')")
    assert trace_event(event)["failure"]["stage"] == "handler"


def test_job_waiting_to_retry_is_still_failing_and_retryable():
    event = EventFactory(status=Event.Status.RETRY_WAIT)
    JobFactory(event=event, name="sync_order", status=Job.Status.RETRY_WAIT, attempt_count=1, last_error="429")
    trace = trace_event(event)
    assert trace["failure"] == {"stage": "job:sync_order", "error": "429", "retryable": True}
    assert trace["still_failing"] is True


def test_recovered_job_reports_the_past_failure_but_not_still_failing():
    event = EventFactory(status=Event.Status.PROCESSED, processed_count=1)
    job = JobFactory(event=event, name="sync_order", status=Job.Status.SUCCEEDED, attempt_count=2)
    AttemptFactory(
        job=job, number=1, outcome=Attempt.Outcome.FAILED, error_class="Throttled", message="429", retryable=True
    )
    AttemptFactory(job=job, number=2, started_at=timezone.now() + timedelta(seconds=5))
    trace = trace_event(event)
    assert trace["failure"] == {"stage": "job:sync_order", "error": "Throttled: 429", "retryable": True}
    assert trace["still_failing"] is False


def test_webhook_seen_only_on_rejected_requests():
    for _ in range(3):
        DeliveryFactory(
            event=None, webhook_id="wh-forged", shop_domain="evil.myshopify.com", reason="HMAC signature did not match"
        )
    trace = trace_webhook("wh-forged")
    assert set(trace) == KEYS
    assert trace["event_id"] is None
    assert (trace["received"], trace["verified"], trace["status"]) == (True, False, "rejected")
    assert trace["deliveries"] == 3
    assert trace["processed"] == 0
    assert trace["failure"] == {"stage": "verification", "error": "HMAC signature did not match", "retryable": False}
    assert trace["still_failing"] is True
    assert trace_webhook("wh-forged", "other.myshopify.com") is None


def test_rejected_first_then_accepted_reports_the_event():
    shop = ShopFactory()
    DeliveryFactory(event=None, webhook_id="wh-later", shop_domain=shop.domain)
    event = processed_event(webhook_id="wh-later", shop=shop)
    assert trace_webhook("wh-later")["event_id"] == event.pk


def test_unknown_webhook_is_none():
    assert trace_webhook("nope") is None
    assert trace_webhook("  ") is None


def test_trace_queries_do_not_grow_with_jobs_and_attempts(django_assert_num_queries):
    event = EventFactory(webhook_id="wh-many")
    for _ in range(6):
        job = JobFactory(event=event, status=Job.Status.FAILED, attempt_count=3)
        for n in (1, 2, 3):
            AttemptFactory(job=job, number=n, outcome=Attempt.Outcome.FAILED)
    with django_assert_num_queries(4):  # shop ids, event + shop, jobs, attempts
        trace = trace_webhook("wh-many")
    assert len(trace["jobs"]) == 6
    loaded = traced_events().get(pk=event.pk)
    with django_assert_num_queries(0):
        assert len(trace_event(loaded)["jobs"]) == 6


def test_command_json_output():
    event = processed_event(webhook_id="wh-cmd")
    out = StringIO()
    call_command("events", "trace", "wh-cmd", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert set(data) == KEYS
    assert data["event_id"] == event.pk
    assert data["status"] == "processed"
    assert data["jobs"][0]["name"] == "sync_order"
    assert data["still_failing"] is False


def test_command_plain_words_and_shop_filter():
    event = processed_event(webhook_id="wh-words")
    out = StringIO()
    call_command("events", "trace", "wh-words", "--shop", event.shop.domain, stdout=out)
    text = out.getvalue()
    assert "Received? Yes, once." in text
    assert "Verified? Yes" in text
    assert "Processed? Yes, once." in text
    assert "sync_order: succeeded after 1 attempt" in text
    assert "Where did it fail, and is it still failing? Nowhere" in text
    assert f"/events/{event.pk}/" in text


def test_command_unknown_webhook_exits_1():
    with pytest.raises(CommandError, match="No delivery with webhook id 'ghost'") as excinfo:
        call_command("events", "trace", "ghost")
    assert excinfo.value.returncode == 1
