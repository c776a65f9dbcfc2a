"""The shared throttle (database and Redis backends alike) and the lanes: a call waits for room
instead of being sent into a throttle, bulk lanes never take the reserve kept for live calls, a
report from Shopify can only slow the console down, and live calls go first."""

import os
import shutil
import subprocess
import time

import pytest

from integrations.models import OutboundCall, ShopThrottle
from integrations.outbound import queue
from integrations.outbound.client import AdminClient, Reply
from integrations.outbound.sender import Sender
from integrations.outbound.throttle import DatabaseThrottle, RedisThrottle
from tests.factories import ShopFactory
from tests.processes import free_port


@pytest.fixture
def redis_url():
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("redis-server is missing in CI")
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(params=["database", "redis"])
def backend(request, db, settings):
    settings.OUTBOUND_BUCKET_MAXIMUM = 100.0
    settings.OUTBOUND_BUCKET_RESTORE_RATE = 10.0
    settings.OUTBOUND_LIVE_RESERVE = 0.3
    if request.param == "redis":
        return RedisThrottle(request.getfixturevalue("redis_url"))
    return DatabaseThrottle()


def take_all(throttle, shop_id: int, *, bulk: bool, cost: float = 10) -> int:
    taken = 0
    while throttle.reserve(shop_id, cost, bulk=bulk) == 0:
        taken += 1
        assert taken < 100
    return taken


def test_calls_take_their_cost_until_the_bucket_is_empty_then_wait_for_the_restore(backend):
    shop = ShopFactory()
    backend.bucket(shop.pk)  # first sight: the assumed bucket
    assert take_all(backend, shop.pk, bulk=False) == 10
    wait = backend.reserve(shop.pk, 10, bulk=False)
    assert 0.5 < wait <= 1.01, "10 points at 10/s is about a second away"


def test_bulk_lanes_leave_the_reserve_for_live_calls(backend):
    shop = ShopFactory()
    backend.bucket(shop.pk)
    assert take_all(backend, shop.pk, bulk=True) == 7, "bulk may take 100 - 30 reserved = 70 points"
    assert backend.reserve(shop.pk, 10, bulk=True) > 0
    assert take_all(backend, shop.pk, bulk=False) == 3, "the reserve is there for live calls"


def test_a_report_from_shopify_can_only_slow_us_down_by_the_calls_in_flight(backend, db):
    shop = ShopFactory()
    backend.bucket(shop.pk)
    in_flight = OutboundCall.objects.create(
        shop=shop,
        operation="order.add_tags",
        input={"id": "gid://shopify/Order/1", "tags": ["a"]},
        origin="person",
        idempotency_key="k1",
        status="running",
        claimed_by="other-sender",
        claimed_at="2026-01-01T00:00:00Z",
        expected_cost=10,
    )
    reply = Reply(bucket_available=50.0, bucket_maximum=100.0, restore_rate=10.0)
    backend.report(shop.pk, reply, call_id=in_flight.pk + 1, started=time.time())
    assert 39 < backend.bucket(shop.pk).available < 41, "50 reported minus the 10 of the call in flight"


def test_a_late_report_from_an_older_request_never_raises_the_level(backend):
    shop = ShopFactory()
    backend.bucket(shop.pk)
    sent_long_ago = time.time() - 5
    backend.report(
        shop.pk, Reply(bucket_available=10.0, bucket_maximum=100.0, restore_rate=10.0), call_id=0, started=time.time()
    )
    # A slow answer to a request sent before that one says the bucket was nearly full: stale news.
    backend.report(
        shop.pk, Reply(bucket_available=95.0, bucket_maximum=100.0, restore_rate=10.0), call_id=0, started=sent_long_ago
    )
    assert backend.bucket(shop.pk).available < 12, "an old report made the console send faster"
    # A newer request's report is taken as it is, up or down.
    backend.report(
        shop.pk, Reply(bucket_available=60.0, bucket_maximum=100.0, restore_rate=10.0), call_id=0, started=time.time()
    )
    assert 59 < backend.bucket(shop.pk).available < 62


def test_a_shorter_block_never_shortens_a_longer_one(backend):
    shop = ShopFactory()
    backend.bucket(shop.pk)
    backend.block(shop.pk, 2.0, throttled=True)
    backend.block(shop.pk, 0.1, throttled=False)
    assert backend.reserve(shop.pk, 10, bulk=False) > 1.5


def test_a_block_holds_every_call_of_the_shop(backend):
    shop = ShopFactory()
    backend.bucket(shop.pk)
    backend.block(shop.pk, 0.5, throttled=True)
    assert 0.3 < backend.reserve(shop.pk, 10, bulk=False) <= 0.5
    time.sleep(0.55)
    assert backend.reserve(shop.pk, 10, bulk=False) == 0


def test_two_shops_have_two_buckets(backend):
    first, second = ShopFactory(), ShopFactory()
    backend.bucket(first.pk)
    backend.bucket(second.pk)
    take_all(backend, first.pk, bulk=False)
    assert backend.reserve(second.pk, 10, bulk=False) == 0


def test_a_shop_that_must_wait_never_hides_another_shops_due_calls(store_factory, settings):
    settings.OUTBOUND_BUCKET_MAXIMUM = 2000.0
    (busy, busy_sim), (quiet, quiet_sim) = store_factory(), store_factory()
    for order in busy_sim.records("orders")[:25]:
        queue.enqueue(busy, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": ["a"]}, origin="person")
    quiet_order = quiet_sim.records("orders")[0]
    late, _ = queue.enqueue(
        quiet, "order.add_tags", {"id": quiet_order["admin_graphql_api_id"], "tags": ["b"]}, origin="person"
    )
    DatabaseThrottle().bucket(busy.pk)
    DatabaseThrottle().block(busy.pk, 60, throttled=False)  # e.g. a Retry-After of a minute
    sender = Sender(tag="test")
    assert sender.run_once() == 0
    late.refresh_from_db()
    assert late.status == OutboundCall.Status.SUCCEEDED, "the quiet shop's call waited behind the busy shop"
    assert not OutboundCall.objects.filter(shop=busy).exclude(status="queued").exists()


def test_live_calls_go_before_queued_bulk_calls_of_the_same_shop(store):
    shop, sim = store
    orders = sim.records("orders")
    bulk = [
        queue.enqueue(
            shop,
            "order.add_tags",
            {"id": o["admin_graphql_api_id"], "tags": ["bulk"]},
            origin="replay",
            lane="reconcile",
        )[0]
        for o in orders[:5]
    ]
    live = queue.enqueue(
        shop, "order.add_tags", {"id": orders[6]["admin_graphql_api_id"], "tags": ["live"]}, origin="person"
    )[0]
    sender = Sender(tag="test")
    assert sender.run_once() == 0
    live.refresh_from_db()
    assert live.status == OutboundCall.Status.SUCCEEDED
    assert all(OutboundCall.objects.get(pk=c.pk).status == "queued" for c in bulk)


def test_a_call_never_overtakes_an_earlier_unfinished_call_for_the_same_record(store):
    shop, sim = store
    order = sim.records("orders")[0]
    first = queue.enqueue(
        shop,
        "order.add_tags",
        {"id": order["admin_graphql_api_id"], "tags": ["one"]},
        origin="replay",
        lane="reconcile",
    )[0]
    second = queue.enqueue(
        shop, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": ["two"]}, origin="person"
    )[0]
    assert [c.pk for c in queue.due_calls()] == [first.pk], "the live call must wait for the earlier one"
    Sender(tag="test").drain(timeout=10)
    assert sim.record("orders", order["id"])["tags"] == "one, two"
    assert OutboundCall.objects.get(pk=second.pk).status == "succeeded"


def test_the_sender_keeps_the_model_in_step_with_shopify(store):
    shop, sim = store
    sim.limits(graphql_maximum=500, graphql_restore_rate=25)
    order = sim.records("orders")[0]
    queue.enqueue(shop, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": ["a"]}, origin="person")
    Sender(tag="test").drain(timeout=10)
    row = ShopThrottle.objects.get(pk=shop.pk)
    assert (row.maximum, row.restore_rate) == (500.0, 25.0)
    assert row.reported_at is not None


def test_rest_calls_read_the_leaky_bucket_header(store):
    shop, _ = store
    reply = AdminClient(shop).rest_get("oauth/access_scopes.json", versioned=False)
    assert reply.http_status == 200 and "access_scopes" in reply.body
    reply = AdminClient(shop).rest_get("shop.json")
    assert reply.http_status == 200 and reply.call_limit.endswith("/40")
