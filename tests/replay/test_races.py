"""Idempotency enforced by the database (PostgreSQL, real concurrent transactions): a replay
racing a live delivery for the same order writes each effect once, whichever commits first."""

import threading

import pytest
from django.db import connection

from integrations.jobs import registry
from integrations.models import Event, FulfillmentNotification, OutboundCall, ReplayRequest
from integrations.processing import claims
from integrations.processing.pump import Pump
from integrations.replay import services
from integrations.replay.runner import replay_pass
from integrations.replay.selection import for_events
from integrations.replay.switches import set_handler
from tests.factories import ShopFactory
from tests.processes import wait_for
from tests.webhooks import order, receive

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent transactions racing on one row need PostgreSQL (SQLite serialises every write)")


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.parametrize("holder", ["replay", "live"])
def test_a_replay_racing_a_live_delivery_for_the_same_order_writes_once(monkeypatch, holder):
    shop = ShopFactory()
    set_handler(job="notify_fulfillment", shop=shop, disabled=True, by=None, reason="warehouse migration")
    set_handler(job="tag_notified_order", shop=shop, disabled=True, by=None, reason="warehouse migration")
    held = receive(shop, "orders/paid", order(order_id=42), "first-delivery")
    Pump(tag="setup").run_once()
    assert Event.objects.get(pk=held.pk).status == Event.Status.HELD
    set_handler(job="notify_fulfillment", shop=shop, disabled=False, by=None, reason="done")
    set_handler(job="tag_notified_order", shop=shop, disabled=False, by=None, reason="done")
    replay = services.check_replay(selection=for_events([held.pk]))
    services.do_replay(replay, by=None, reason="held during the migration", plan_hash=replay.plan_hash)
    # Shopify delivers the same order's payment again under another webhook id.
    receive(shop, "orders/paid", order(order_id=42), "second-delivery")

    real = registry.JOB_TYPES["notify_fulfillment"]
    inserted, release = threading.Event(), threading.Event()

    def notify_then_hold(event, payload):
        result = real.run(event, payload)
        if threading.current_thread().name == holder:
            inserted.set()
            release.wait(10)  # keep the transaction, and the unique index entry, uncommitted
        return result

    monkeypatch.setitem(
        registry.JOB_TYPES, "notify_fulfillment", real.__class__(**{**real.__dict__, "run": notify_then_hold})
    )

    def work(tag: str) -> None:
        try:
            pump = Pump(tag=tag)
            if tag == "replay":
                replay_pass(pump)
            else:
                pump.process(claims.claim_new(pump.name, 10))
        finally:
            connection.close()

    other = "live" if holder == "replay" else "replay"
    first = threading.Thread(target=work, args=(holder,), name=holder)
    second = threading.Thread(target=work, args=(other,), name=other)
    first.start()
    assert inserted.wait(10)
    second.start()
    wait_for(_waiting_on_a_lock, timeout=10, interval=0.05, message="the second insert to wait on the first")
    release.set()
    first.join(15)
    second.join(15)

    assert FulfillmentNotification.objects.filter(shop=shop, order_shopify_id=42).count() == 1
    assert OutboundCall.objects.filter(shop=shop, operation="order.add_tags").count() == 1
    replay.refresh_from_db()
    assert replay.status == ReplayRequest.Status.DONE
    assert set(Event.objects.filter(shop=shop).values_list("status", flat=True)) == {Event.Status.PROCESSED}
