"""Each job's replay decision, evaluated on the state at dry-run time: one test per kind of
decision (never safe, a condition false now, already succeeded, a newer event, in flight, shop
uninstalled, payload unreadable, handler disabled) and safe jobs that run."""

import json

import pytest

from integrations.jobs import registry
from integrations.models import (
    CustomerMessage,
    Delivery,
    Event,
    FulfillmentNotification,
    Job,
    PlatformCustomer,
    PlatformOrder,
    Shop,
)
from integrations.replay import services
from integrations.replay.selection import for_events
from integrations.replay.switches import set_handler
from tests.replay.helpers import failing
from tests.webhooks import order, receive

pytestmark = pytest.mark.django_db


def plan_of(event: Event, mode: str = "stored") -> dict[str, dict]:
    replay = services.check_replay(selection=for_events([event.pk]), mode=mode)
    return {entry["job"]: entry for entry in replay.plan}


def fulfillment(order_id: int = 1001, fulfillment_id: int = 501) -> dict:
    return {
        "id": fulfillment_id,
        "admin_graphql_api_id": f"gid://shopify/Fulfillment/{fulfillment_id}",
        "order_id": order_id,
        "name": f"#{order_id}.1",
        "tracking_company": "UPS",
        "tracking_number": "1Z999",
        "updated_at": "2026-05-04T12:00:00Z",
    }


def test_a_never_safe_job_is_skipped_with_its_reason_even_after_it_failed(shop, drain, monkeypatch):
    drain_order = receive(shop, "orders/paid", order())
    drain()
    restore = failing(monkeypatch, "email_shipping_confirmation", "mail service refused the connection")
    shipped = receive(shop, "fulfillments/create", fulfillment())
    drain()
    restore()
    assert Job.objects.get(event=shipped, name="email_shipping_confirmation").status == Job.Status.FAILED

    entry = plan_of(shipped)["email_shipping_confirmation"]

    assert (entry["decision"], entry["kind"]) == ("skip", "never")
    assert "never safe to replay" in entry["reason"] and "cannot be unsent" in entry["reason"]
    assert drain_order.pk  # the order was synced first, so the email had an address
    assert not CustomerMessage.objects.exists()


def test_a_never_safe_job_writes_once_even_when_run_twice(shop, drain):
    receive(shop, "orders/paid", order())
    drain()
    shipped = receive(shop, "fulfillments/create", fulfillment())
    drain()
    assert CustomerMessage.objects.count() == 1
    # Bypassing the decision (running the job itself again): the outbox key refuses a second email.
    result = registry.JOB_TYPES["email_shipping_confirmation"].run(shipped, fulfillment())
    assert result.startswith("already sent")
    assert CustomerMessage.objects.count() == 1


def test_conditions_are_evaluated_on_the_state_at_dry_run_time(shop, drain, monkeypatch):
    restore = failing(monkeypatch, "notify_fulfillment", "warehouse API down")
    paid = receive(shop, "orders/paid", order())
    drain()
    restore()

    entry = plan_of(paid)["notify_fulfillment"]
    assert (entry["decision"], entry["kind"]) == ("run", "run")
    assert "warehouse API down" in entry["reason"] and "not fulfilled yet" in entry["reason"]

    # Meanwhile the order was fulfilled (our copy says so): nothing is left to pick.
    PlatformOrder.objects.filter(shop=shop, shopify_id=1001).update(fulfillment_status="fulfilled")
    entry = plan_of(paid)["notify_fulfillment"]
    assert (entry["decision"], entry["kind"]) == ("skip", "condition")
    assert "already fulfilled" in entry["reason"]

    PlatformOrder.objects.filter(shop=shop, shopify_id=1001).update(fulfillment_status="")
    assert plan_of(paid)["notify_fulfillment"]["decision"] == "run"


def test_a_customer_redacted_since_is_never_written_back(shop, drain, monkeypatch):
    restore = failing(monkeypatch, "sync_customer")
    created = receive(
        shop, "customers/create", {"id": 7001, "email": "a@example.com", "updated_at": "2026-05-04T11:00:00Z"}
    )
    drain()
    restore()
    assert plan_of(created)["sync_customer"]["decision"] == "run"
    PlatformCustomer.objects.create(
        shop=shop, shopify_id=7001, gid="gid://shopify/Customer/7001", shopify_updated_at="2026-05-04T11:00:00Z",
        redacted_at="2026-05-05T00:00:00Z",
    )  # fmt: skip
    entry = plan_of(created)["sync_customer"]
    assert (entry["decision"], entry["kind"]) == ("skip", "condition")
    assert "redacted" in entry["reason"]


def test_safe_jobs_that_failed_run_and_those_that_succeeded_are_skipped(shop, drain, monkeypatch):
    restore = failing(monkeypatch, "notify_fulfillment")
    paid = receive(shop, "orders/paid", order(total_price="120.50"))
    drain()
    restore()

    replay = services.check_replay(selection=for_events([paid.pk]))
    plan = {entry["job"]: entry for entry in replay.plan}

    assert plan["sync_order"]["decision"] == "skip" and plan["sync_order"]["kind"] == "succeeded"
    assert "replaying adds nothing" in plan["sync_order"]["reason"]
    assert plan["tag_buyer"]["kind"] == "succeeded"
    # notify_fulfillment failed; tag_notified_order waits for it (retryable), so both run.
    assert plan["notify_fulfillment"]["decision"] == "run"
    assert plan["tag_notified_order"]["decision"] == "run"
    assert replay.summary["jobs_to_run"] == 2 and replay.summary["events_to_run"] == 1
    # The tag the replay will push: one call, in the replay lane.
    assert replay.summary["outbound_calls"] == 1 and replay.summary["outbound_lane"] == "replay"
    assert replay.summary["money_at_risk"] == "120.50"


def test_replaying_an_old_event_after_a_newer_one_was_processed_changes_nothing(shop, drain, monkeypatch):
    restore = failing(monkeypatch, "sync_order", "database refused the row")
    old = receive(shop, "orders/updated", order(updated="2026-05-04T10:00:00Z", tags="old", financial_status="pending"))
    drain()
    restore()
    newer = receive(
        shop, "orders/updated", order(updated="2026-05-04T11:00:00Z", tags="new", financial_status="pending")
    )
    drain()
    snapshot = list(PlatformOrder.objects.values())
    assert snapshot[0]["tags"] == "new"

    replay = services.check_replay(selection=for_events([old.pk]))
    entry = {e["job"]: e for e in replay.plan}["sync_order"]
    assert (entry["decision"], entry["kind"]) == ("skip", "newer")
    assert f"event {newer.pk}" in entry["reason"]
    services.do_replay(replay, by=None, reason="retry the failed update", plan_hash=replay.plan_hash)
    drain()
    assert list(PlatformOrder.objects.values()) == snapshot

    # Even if the planner did not know (the job ran anyway), the write is refused as older.
    sync = registry.JOB_TYPES["sync_order"]
    monkeypatch.setitem(registry.JOB_TYPES, "sync_order", sync.__class__(**{**sync.__dict__, "supersedable": False}))
    replay = services.check_replay(selection=for_events([old.pk]))
    assert {e["job"]: e for e in replay.plan}["sync_order"]["decision"] == "run"
    services.do_replay(replay, by=None, reason="force", plan_hash=replay.plan_hash)
    drain()
    replay.refresh_from_db()
    assert replay.status == "done" and replay.jobs_ran == 1
    assert list(PlatformOrder.objects.values()) == snapshot


def test_events_in_flight_uninstalled_shops_and_unreadable_payloads_are_skipped(shop, drain):
    queued = receive(shop, "orders/paid", order(order_id=1))
    entry = plan_of(queued)["sync_order"]
    assert entry["kind"] == "in_flight" and "still in flight" in entry["reason"]

    broken = receive(shop, "orders/paid", b'{"id": 2, "name": ')
    drain()
    assert Event.objects.get(pk=broken.pk).status == Event.Status.FAILED
    entry = plan_of(broken)["sync_order"]
    assert entry["kind"] == "unreadable" and "cannot be read" in entry["reason"]

    Shop.objects.filter(pk=shop.pk).update(state=Shop.State.UNINSTALLED)
    entry = plan_of(queued)["sync_order"]
    assert entry["kind"] == "uninstalled"


def test_a_disabled_handler_is_skipped_with_who_and_why(shop, drain, monkeypatch, support_user):
    restore = failing(monkeypatch, "notify_fulfillment")
    paid = receive(shop, "orders/paid", order())
    drain()
    restore()
    set_handler(job="notify_fulfillment", shop=shop, disabled=True, by=support_user, reason="warehouse migration")

    entry = plan_of(paid)["notify_fulfillment"]

    assert (entry["decision"], entry["kind"]) == ("skip", "disabled")
    assert "sam-support" in entry["reason"] and "warehouse migration" in entry["reason"]


def test_the_plan_hash_changes_with_the_state_and_the_selection(shop, drain, monkeypatch):
    restore = failing(monkeypatch, "notify_fulfillment")
    first = receive(shop, "orders/paid", order(order_id=1))
    second = receive(shop, "orders/paid", order(order_id=2))
    drain()
    restore()
    one = services.check_replay(selection=for_events([first.pk]))
    assert services.check_replay(selection=for_events([first.pk])).plan_hash == one.plan_hash
    assert services.check_replay(selection=for_events([first.pk, second.pk])).plan_hash != one.plan_hash
    Job.objects.filter(event=first, name="notify_fulfillment").update(attempt_count=2)
    assert services.check_replay(selection=for_events([first.pk])).plan_hash != one.plan_hash
    assert services.check_replay(selection=for_events([first.pk]), mode="refetch").plan_hash != one.plan_hash


def test_a_rejected_delivery_is_never_replayable(shop):
    from integrations.replay.selection import SelectionError, for_webhook

    Delivery.objects.create(
        shop_domain=shop.domain, topic="orders/paid", webhook_id="forged-1", headers={}, body=b"{}",
        outcome=Delivery.Outcome.REJECTED, response_status=401, reason="HMAC signature does not match",
        signature_valid=False,
    )  # fmt: skip
    with pytest.raises(SelectionError, match="never verified is never replayable"):
        for_webhook("forged-1")
    with pytest.raises(SelectionError, match="no webhook"):
        for_webhook("never-seen")


def test_each_plan_entry_keeps_the_keys_scripts_read(shop, drain, monkeypatch):
    restore = failing(monkeypatch, "notify_fulfillment")
    paid = receive(shop, "orders/paid", order())
    drain()
    restore()
    data = services.replay_json(services.check_replay(selection=for_events([paid.pk])))
    assert {"events", "plan", "outbound_calls", "needs_approval", "plan_hash"} <= set(data)
    assert data["events"] == 1 and data["needs_approval"] is False and len(data["plan_hash"]) == 64
    assert {tuple(sorted(e)) for e in data["plan"]} >= {
        ("decision", "event_id", "job", "reason", "shop", "topic", "webhook_id")
    }
    assert {e["decision"] for e in data["plan"]} == {"run", "skip"}
    json.dumps(data)


def test_fulfillment_is_never_notified_twice_when_the_job_runs_again(shop, drain):
    paid = receive(shop, "orders/paid", order())
    drain()
    result = registry.JOB_TYPES["notify_fulfillment"].run(paid, order())
    assert result.startswith("already notified")
    assert FulfillmentNotification.objects.count() == 1
