"""Real qcluster worker processes sending to the simulator with its bucket shrunk: nothing lost,
each call applied exactly once, hardly ever throttled, Retry-After honoured; and a shop paused
mid-stream sends nothing until resumed, then drains in order per record."""

import json
import time
from collections import Counter, defaultdict

import pytest
from django.utils import timezone

from integrations.models import OutboundAttempt, OutboundCall
from integrations.outbound import queue
from tests.processes import child_env, running, wait_for
from tests.simulator.helpers import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

Status = OutboundCall.Status


@pytest.fixture
def receiver():
    running_receiver = Receiver()
    yield running_receiver
    running_receiver.stop()


def worker_env(**extra):
    return child_env(
        Q_WORKERS="1",
        EVENT_PUMP_THREADS="0",
        OUTBOUND_SENDER_THREADS="1",
        OUTBOUND_BACKOFF_BASE="0.05",
        OUTBOUND_BACKOFF_CAP="0.5",
        **extra,
    )


def tag_calls(shop, orders: list[dict], tags_per_order: int, *, lane="live") -> list[OutboundCall]:
    calls = []
    for round_number in range(tags_per_order):
        for order in orders:
            call, created = queue.enqueue(
                shop,
                "order.add_tags",
                {"id": order["admin_graphql_api_id"], "tags": [f"t{round_number:02d}"]},
                origin="person",
                lane=lane,
            )
            assert created
            calls.append(call)
    return calls


def applied_per_order(receiver: Receiver) -> Counter:
    """orders/updated webhooks the simulator sent, per order: one per applied tagsAdd."""
    return Counter(json.loads(r.body)["id"] for r in receiver.of("orders/updated"))


def test_two_worker_processes_send_300_calls_each_applied_once_hardly_ever_throttled(store_factory, receiver):
    shop, sim = store_factory(records=300, webhook_url=receiver.url, graphql_maximum=200, graphql_restore_rate=200)
    orders = sim.records("orders")[:100]
    assert len(orders) == 100
    calls = tag_calls(shop, orders, 3)
    # One 429 with Retry-After early on: every sender must hold the shop for it.
    sim.fault("api_5xx_rate", count=1, params={"statuses": [429], "retry_after": 0.8})
    env = worker_env()
    with running(["qcluster"], env=env) as first, running(["qcluster"], env=env) as second:
        wait_for(
            lambda: OutboundCall.objects.filter(status=Status.SUCCEEDED).count() == len(calls),
            timeout=120,
            message="every call to succeed",
        )
        assert first.poll() is None and second.poll() is None
    statuses = Counter(OutboundCall.objects.values_list("status", flat=True))
    assert statuses == {Status.SUCCEEDED: 300}
    workers = set(OutboundAttempt.objects.values_list("worker", flat=True))
    assert len({worker.split(":")[1] for worker in workers}) >= 2, f"both processes should send: {workers}"

    receiver.wait_for(300, timeout=20, topic="orders/updated")
    applied = applied_per_order(receiver)
    assert set(applied.values()) == {3} and len(applied) == 100, "a call was lost or applied twice"
    for order in orders:
        tags = sim.record("orders", order["id"])["tags"]
        assert tags == "t00, t01, t02", f"writes to one record were reordered: {tags}"

    attempts = list(OutboundAttempt.objects.order_by("started_at"))
    throttled = [a for a in attempts if a.throttled]
    assert len(throttled) / len(attempts) < 0.01, f"{len(throttled)} of {len(attempts)} attempts throttled"
    limited = [a for a in throttled if a.http_status == 429]
    assert len(limited) == 1 and limited[0].retry_after == 0.8
    blocked_from = limited[0].started_at + timezone.timedelta(milliseconds=limited[0].duration_ms + 50)
    blocked_until = limited[0].started_at + timezone.timedelta(seconds=0.8)
    # The other sender may have had one call already claimed and paid for when the 429 came.
    inside = [a for a in attempts if blocked_from < a.started_at < blocked_until]
    assert len(inside) <= 1, f"calls were sent to the shop before its Retry-After had passed: {inside}"
    retried = limited[0].call.attempts.order_by("number")
    assert (retried[1].started_at - retried[0].started_at).total_seconds() >= 0.8


def test_a_shop_paused_mid_stream_sends_nothing_then_drains_200_calls_in_order_per_record(store_factory, receiver):
    shop, sim = store_factory(records=80, webhook_url=receiver.url, graphql_maximum=100, graphql_restore_rate=100)
    orders = sim.records("orders")[:20]
    calls = tag_calls(shop, orders, 10)
    assert len(calls) == 200
    with running(["qcluster"], env=worker_env()):
        wait_for(
            lambda: OutboundCall.objects.filter(status=Status.SUCCEEDED).count() >= 30,
            timeout=60,
            message="the stream to start",
        )
        held = queue.pause_shop(shop, by=None, reason="test: containment")
        assert held > 0
        wait_for(
            lambda: not OutboundCall.objects.filter(status=Status.RUNNING).exists(),
            timeout=15,
            message="the call in flight at the pause to finish",
        )
        sent_at_pause = OutboundAttempt.objects.count()
        statuses = Counter(OutboundCall.objects.values_list("status", flat=True))
        assert statuses[Status.PAUSED] == held and statuses[Status.QUEUED] == 0
        time.sleep(2.0)
        assert OutboundAttempt.objects.count() == sent_at_pause, "a call was sent while the shop was paused"

        released = queue.resume_shop(shop, by=None, reason="test: cause fixed")
        assert released == held
        wait_for(
            lambda: OutboundCall.objects.filter(status=Status.SUCCEEDED).count() == 200,
            timeout=90,
            message="all 200 calls to drain",
        )
    receiver.wait_for(200, timeout=20, topic="orders/updated")
    applied = applied_per_order(receiver)
    assert set(applied.values()) == {10}, "a call was lost or applied twice across the pause"
    expected = ", ".join(f"t{n:02d}" for n in range(10))
    for order in orders:
        assert sim.record("orders", order["id"])["tags"] == expected
    # Sent in id order within each record.
    first_try = defaultdict(list)
    for call_id, target, started in OutboundAttempt.objects.filter(number=1).values_list(
        "call_id", "call__target_gid", "started_at"
    ):
        first_try[target].append((started, call_id))
    for tries in first_try.values():
        assert [call_id for _, call_id in sorted(tries)] == sorted(call_id for _, call_id in tries)
