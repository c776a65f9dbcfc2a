"""Scale-out on Redis and PostgreSQL: with REDIS_URL set, django-q2's broker is a real Redis server,
and two qcluster processes (standing in for two machines) share 5,000 events and the outbound calls
they make: each event processed once in effect, each call applied once, and the simulator's
GraphQL bucket never exceeded (the shops' throttle is kept in the same Redis)."""

import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest
import redis
from django.db import connection
from django.utils import timezone
from django_q.models import OrmQ, Task

from integrations.models import Attempt, Event, Job, OutboundAttempt, OutboundCall, WorkerHeartbeat
from tests.outbound import conftest as outbound
from tests.processes import BASE_DIR, child_env, free_port, running, wait_for
from tests.webhooks import receive

# The simulator and a console shop pointing at it, as the outbound tests have them.
simulator, store_factory = outbound.simulator, outbound.store_factory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ORDERS = 600
BUYERS = 100
PRODUCT_EVENTS = 1900
CUSTOMER_EVENTS = 1900


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("several clusters sharing work need PostgreSQL's row locks (SQLite serialises every write)")


@pytest.fixture
def redis_url(tmp_path):
    """A real Redis server on a free port for this test (installed like PostgreSQL: `.ci/run` does;
    elsewhere `apt-get install -y redis-server`)."""
    binary = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None
    )
    if binary is None:
        message = "redis-server not found: install it with `apt-get install -y redis-server` to run this test"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_for(lambda: _pings(client), timeout=10, message="redis-server to answer")
        yield url
    finally:
        server.terminate()
        server.wait(10)


def _pings(client) -> bool:
    try:
        return client.ping()
    except redis.RedisError:
        return False


def _payloads(sim) -> list[tuple[str, dict]]:
    """5,000 webhooks about the simulated store's own records: each order created then paid (the
    paid ones are sent to fulfillment and tagged, their buyers tagged), products and customers updated."""
    orders = sim.records("orders")[:ORDERS]
    customers = sim.records("customers")[:BUYERS]
    products = sim.records("products")
    assert len(orders) == ORDERS and len(customers) == BUYERS and products
    webhooks = []
    for n, order in enumerate(orders):
        buyer = customers[n % BUYERS]
        base = {
            "id": order["id"],
            "admin_graphql_api_id": f"gid://shopify/Order/{order['id']}",
            "name": order.get("name") or f"#{order['id']}",
            "customer": {"id": buyer["id"]},
            "line_items": [{"id": 1, "sku": "MUG", "quantity": 1, "price": "20.00"}],
            "tags": "",
        }
        webhooks.append(
            ("orders/create", {**base, "financial_status": "pending", "updated_at": "2026-05-04T10:01:00Z"})
        )
        webhooks.append(("orders/paid", {**base, "financial_status": "paid", "updated_at": "2026-05-04T10:02:00Z"}))
    for n in range(PRODUCT_EVENTS):
        product = products[n % len(products)]
        webhooks.append(
            (
                "products/update",
                {
                    "id": product["id"],
                    "title": f"Mug {n}",
                    "updated_at": f"2026-05-04T11:{n % 60:02d}:{n // 60 % 60:02d}Z",
                    "variants": [{"id": 10_000_000 + n, "sku": f"M-{n}", "price": "9.00"}],
                },
            )
        )
    for n in range(CUSTOMER_EVENTS):
        customer = customers[n % BUYERS]
        webhooks.append(
            (
                "customers/update",
                {
                    "id": customer["id"],
                    "email": f"c{customer['id']}@example.com",
                    "updated_at": f"2026-05-04T12:{n % 60:02d}:{n // 60 % 60:02d}Z",
                },
            )
        )
    assert len(webhooks) == 5000
    return webhooks


def test_two_clusters_on_a_redis_broker_share_5000_events_once_each_within_the_shops_bucket(redis_url, store_factory):
    shop, sim = store_factory(records=2500, graphql_maximum=1000, graphql_restore_rate=500)
    webhooks = _payloads(sim)
    env = child_env(
        REDIS_URL=redis_url,
        OUTBOUND_THROTTLE_BACKEND="redis",
        Q_WORKERS="1",
        EVENT_PUMP_THREADS="1",
        EVENT_BATCH_SIZE="25",
        OUTBOUND_SENDER_THREADS="1",
        OUTBOUND_BACKOFF_BASE="0.05",
        OUTBOUND_BACKOFF_CAP="0.5",
    )
    with running(["qcluster"], env=env) as first, running(["qcluster"], env=env) as second:
        wait_for(
            lambda: (
                WorkerHeartbeat.objects.filter(beat_at__gte=timezone.now() - timezone.timedelta(seconds=5)).count() >= 2
            ),
            timeout=60,
            message="a pump in each cluster",
        )
        for n, (topic, payload) in enumerate(webhooks):
            receive(shop, topic, payload, f"redis-{n}")
        # Tasks through the broker: queued from another process, run by the clusters, kept as results.
        subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), "shell", "-c",
             "from django_q.tasks import async_task\n"
             "for i in range(40): async_task('math.floor', i + 0.5, group='through-redis')"],
            env=env, cwd=BASE_DIR, check=True, timeout=60,
        )  # fmt: skip
        wait_for(
            lambda: (
                not Event.objects.filter(status__in=Event.IN_FLIGHT_STATUSES).exists()
                and not OutboundCall.objects.exclude(
                    status__in=[OutboundCall.Status.SUCCEEDED, OutboundCall.Status.FAILED]
                ).exists()
                and Task.objects.filter(group="through-redis").count() == 40
            ),
            timeout=300,
            interval=0.5,
            message="events, outbound calls and broker tasks to drain",
        )
        assert first.poll() is None and second.poll() is None, "both clusters ran to the end"

    # Every event processed exactly once in effect.
    assert Counter(Event.objects.values_list("status", flat=True)) == {"processed": 5000}
    assert set(Event.objects.values_list("processed_count", flat=True)) == {1}
    assert set(Job.objects.values_list("status", flat=True)) == {"succeeded"}
    assert Attempt.objects.count() == Job.objects.count()
    processes = Counter(worker.rsplit(":", 1)[0] for worker in Attempt.objects.values_list("worker", flat=True))
    assert len(processes) == 2 and min(processes.values()) > 500, processes

    # One call per intent, each applied once, none answered THROTTLED or 429: the bucket held.
    calls = Counter(OutboundCall.objects.values_list("operation", "status"))
    assert calls == {("order.add_tags", "succeeded"): ORDERS, ("customer.add_tags", "succeeded"): BUYERS}
    assert OutboundAttempt.objects.filter(outcome="succeeded").count() == ORDERS + BUYERS
    assert not OutboundAttempt.objects.filter(throttled=True).exists()
    assert not OutboundAttempt.objects.filter(http_status=429).exists()
    senders = {worker.split(":")[1] for worker in OutboundAttempt.objects.values_list("worker", flat=True)}
    assert len(senders) == 2, f"both clusters should send: {senders}"
    for order in sim.records("orders")[:ORDERS:60]:
        tags = [tag.strip() for tag in sim.record("orders", order["id"])["tags"].split(",")]
        assert tags.count("fulfillment-notified") == 1, tags

    # The broker was Redis: the tasks ran (in either cluster), none went through the database queue.
    results = Task.objects.filter(group="through-redis")
    assert sorted(results.values_list("result", flat=True)) == list(range(40))
    assert set(results.values_list("success", flat=True)) == {True}
    assert OrmQ.objects.count() == 0
    assert redis.Redis.from_url(redis_url).info("stats")["total_commands_processed"] > 100
