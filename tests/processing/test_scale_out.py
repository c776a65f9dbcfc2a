"""Scale-out on PostgreSQL: real qcluster processes share the work with every event processed once in
effect, and two pumps writing the same record at the same moment leave the newest state."""

import threading
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from integrations.jobs import registry
from integrations.models import (
    Attempt,
    Delivery,
    Event,
    FulfillmentNotification,
    Job,
    OutboundCall,
    PlatformCustomer,
    PlatformOrder,
    PlatformProduct,
    WorkerHeartbeat,
)
from integrations.processing.pump import process_event
from tests.factories import ShopFactory
from tests.processes import child_env, running, wait_for
from tests.webhooks import receive

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("concurrent pumps need PostgreSQL's row locks (SQLite serialises every write)")


def store(shop, topic: str, payload: dict, webhook_id: str) -> int:
    return receive(shop, topic, payload, webhook_id).pk


def order(order_id: int, minute: int, status: str = "paid") -> dict:
    return {
        "id": order_id,
        "name": f"#{order_id}",
        "updated_at": f"2026-05-04T10:{minute:02d}:00Z",
        "financial_status": status,
        "customer": {"id": 70000 + order_id % 50},
        "line_items": [{"id": 1, "sku": "MUG", "quantity": 1, "price": "20.00"}],
    }


def test_two_qcluster_processes_drain_2000_events_each_processed_once_in_effect():
    shop = ShopFactory()
    env = child_env(Q_WORKERS="1", EVENT_BATCH_SIZE="25", EVENT_CLAIM_LEASE_SECONDS="30")
    with running(["qcluster"], env=env) as first, running(["qcluster"], env=env) as second:
        wait_for(
            lambda: (
                WorkerHeartbeat.objects.filter(beat_at__gte=timezone.now() - timezone.timedelta(seconds=5)).count() >= 2
            ),
            timeout=60,
            message="a pump in each cluster",
        )
        # 500 orders, each created, paid and updated; 250 products; 250 customers: 2,000 events.
        n = 0
        for order_id in range(1, 501):
            for minute, topic in ((1, "orders/create"), (2, "orders/paid"), (3, "orders/updated")):
                store(shop, topic, order(order_id, minute, "pending" if minute == 1 else "paid"), f"wh-{n}")
                n += 1
        for product_id in range(1, 251):
            payload = {
                "id": product_id,
                "title": f"Mug {product_id}",
                "updated_at": "2026-05-04T11:00:00Z",
                "variants": [{"id": 10_000 + product_id, "sku": f"M-{product_id}", "price": "9.00"}],
            }
            store(shop, "products/update", payload, f"wh-{n}")
            n += 1
        for customer_id in range(1, 251):
            payload = {"id": customer_id, "email": f"c{customer_id}@example.com", "updated_at": "2026-05-04T11:00:00Z"}
            store(shop, "customers/update", payload, f"wh-{n}")
            n += 1
        assert n == 2000
        wait_for(
            lambda: not Event.objects.filter(status__in=Event.IN_FLIGHT_STATUSES).exists(),
            timeout=180,
            interval=0.5,
            message="the backlog to drain",
        )
        assert first.poll() is None and second.poll() is None, "both clusters ran to the end"

    assert Counter(Event.objects.values_list("status", flat=True)) == {"processed": 2000}
    assert set(Event.objects.values_list("processed_count", flat=True)) == {1}
    # Jobs: one sync per event; per orders/paid also the fulfillment notification, the order tag
    # and the buyer tag; per orders/updated the order tag check.
    assert Job.objects.count() == 2000 + 3 * 500 + 500
    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    assert Attempt.objects.count() == Job.objects.count()
    assert set(Attempt.objects.values_list("outcome", "number")) == {("succeeded", 1)}
    assert PlatformOrder.objects.count() == 500
    assert set(PlatformOrder.objects.values_list("financial_status", flat=True)) == {"paid"}
    assert FulfillmentNotification.objects.count() == 500
    # One outbound call per intent, though two pumps ran the jobs: each order tagged once, each of
    # the 50 buyers once.
    assert OutboundCall.objects.filter(operation="order.add_tags").count() == 500
    assert OutboundCall.objects.filter(operation="customer.add_tags").count() == 50
    assert PlatformProduct.objects.count() == 250 and PlatformCustomer.objects.count() == 250
    # Both processes ran attempts (host:pid:tag, so the pid tells the processes apart).
    processes = Counter(worker.rsplit(":", 1)[0] for worker in Attempt.objects.values_list("worker", flat=True))
    assert len(processes) == 2, processes
    assert min(processes.values()) > 100, processes


@pytest.mark.parametrize("first", ["newer", "older"])
def test_two_pumps_writing_the_same_order_at_once_leave_the_newest_state(monkeypatch, first):
    """The first pump's upsert has run but not committed when the second pump's upsert arrives:
    the second waits on the row and then, in either order, the newer version stands."""
    shop = ShopFactory()
    real = registry.JOB_TYPES["sync_order"]
    upserted = threading.Event()
    release = threading.Event()

    def sync_then_hold(event, payload):
        result = real.run(event, payload)
        if threading.current_thread().name == "first":
            upserted.set()
            release.wait(10)  # hold the transaction (and the row lock) open
        return result

    monkeypatch.setitem(registry.JOB_TYPES, "sync_order", real.__class__(**{**real.__dict__, "run": sync_then_hold}))
    for round_ in range(3):
        order_id = 500 + round_
        newer = store(shop, "orders/updated", {**order(order_id, 30), "tags": "newer"}, f"new-{first}-{round_}")
        older = store(shop, "orders/updated", {**order(order_id, 10), "tags": "older"}, f"old-{first}-{round_}")
        ids = {"newer": newer, "older": older}
        statuses: dict[str, str] = {}

        def work(which: str, event_id: int, statuses=statuses) -> None:
            try:
                statuses[which] = process_event(Event.objects.get(pk=event_id))
            finally:
                connection.close()

        second = "older" if first == "newer" else "newer"
        one = threading.Thread(target=work, args=(first, ids[first]), name="first")
        two = threading.Thread(target=work, args=(second, ids[second]), name="second")
        upserted.clear()
        release.clear()
        one.start()
        assert upserted.wait(10)
        two.start()
        # Let the second pump reach the row lock, then let the first commit.
        wait_for(lambda: _waiting_on_a_lock(), timeout=10, interval=0.05, message="the second upsert to wait")
        release.set()
        one.join(10)
        two.join(10)
        assert statuses == {"newer": "processed", "older": "processed"}
        stored = PlatformOrder.objects.get(shop=shop, shopify_id=order_id)
        assert stored.tags == "newer" and stored.shopify_updated_at.minute == 30
        older_attempt = Attempt.objects.get(job__event_id=ids["older"], job__name="sync_order")
        assert older_attempt.message.startswith("stale" if first == "newer" else "created")
    assert Delivery.objects.count() == 6


def _waiting_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0
