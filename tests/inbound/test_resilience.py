"""Outages and crashes: nothing acknowledged is lost, nothing is done twice."""

import os
import signal
import sqlite3
import sys

import pytest
import requests
from django.db import connection

from integrations.models import Attempt, Delivery, Event, FulfillmentNotification, PlatformOrder
from tests.inbound.conftest import DOMAIN, SimulatorClient
from tests.processes import TcpProxy, child_env, free_port, running, wait_for


@pytest.fixture
def slow_retry_simulator():
    from integrations.simulator.server import Simulator, serve_in_thread

    # First retry after 0.6 s, then 1.2 s, 2.4 s ...: time for the test to see 503s and recover.
    server = serve_in_thread(Simulator(time_scale=0.01, connect_timeout=1.0, total_timeout=5.0))
    yield SimulatorClient(server.url)
    server.stop()
    server.simulator.sender.stop(wait=True)


class DatabaseOutage:
    """Makes the receiver's database refuse work: PostgreSQL behind a proxy we cut; SQLite with
    its write lock held by another connection (the receiver's busy timeout is 1 s)."""

    def __init__(self):
        settings = connection.settings_dict
        self.vendor = connection.vendor
        if self.vendor == "postgresql":
            self.proxy = TcpProxy(settings["HOST"] or "127.0.0.1", int(settings["PORT"] or 5432))
            s = settings
            self.url = f"postgres://{s['USER']}:{s['PASSWORD']}@127.0.0.1:{self.proxy.port}/{s['NAME']}"
        else:
            self.path = settings["NAME"]
            self.url = f"sqlite:///{os.path.abspath(self.path)}"
            self.blocker = None

    def start(self):
        if self.vendor == "postgresql":
            self.proxy.down()
        else:
            self.blocker = sqlite3.connect(self.path, isolation_level=None, timeout=10)
            self.blocker.execute("BEGIN IMMEDIATE")

    def end(self):
        if self.vendor == "postgresql":
            self.proxy.up()
        else:
            self.blocker.execute("ROLLBACK")
            self.blocker.close()


@pytest.mark.django_db(transaction=True)
def test_database_outage_answers_503_then_the_retry_is_accepted_once(slow_retry_simulator, console_shop):
    outage = DatabaseOutage()
    port = free_port()
    env = child_env(DATABASE_URL=outage.url, SQLITE_BUSY_TIMEOUT="1", WEBHOOK_SHOP_CACHE_SECONDS="0")
    with running(["runserver", f"127.0.0.1:{port}", "--noreload"], env=env):
        receiver = f"http://127.0.0.1:{port}/webhooks/shopify"
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=30, message="the receiver to start")
        slow_retry_simulator.create_shop(receiver, topics=["orders/create"])
        outage.start()
        try:
            slow_retry_simulator.create_order(new_customer=False)
            failed_attempts = wait_for(
                lambda: [
                    a for d in slow_retry_simulator.deliveries() for a in d["attempts"] if a["status_code"] == 503
                ],
                timeout=30,
                message="the receiver to answer 503",
            )
        finally:
            outage.end()
        delivered = wait_for(
            lambda: [d for d in slow_retry_simulator.deliveries() if d["status"] == "delivered"],
            timeout=30,
            message="a retried delivery to be accepted",
        )
    assert len(failed_attempts) >= 1
    codes = [a["status_code"] for a in delivered[0]["attempts"]]
    assert codes[-1] == 200 and 503 in codes
    event = Event.objects.get()
    assert event.delivery_count == 1 and event.webhook_id == delivered[0]["webhook_id"]
    assert list(Delivery.objects.values_list("outcome", "response_status")) == [("accepted", 200)]


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_mid_batch_loses_and_duplicates_nothing(simulator, console_shop, live_server):
    orders = 120
    simulator.create_shop(f"{live_server.url}/webhooks/shopify", topics=["orders/paid"], records=10)
    variant = simulator.records("variants")[0]
    order_ids = [
        simulator.control(
            "POST",
            f"/shops/{DOMAIN}/orders",
            lines=[{"variant_id": variant["id"]}],
            financial_status="pending",
            new_customer=False,
        )["id"]
        for _ in range(orders)
    ]
    for order_id in order_ids:
        simulator.control("POST", f"/shops/{DOMAIN}/orders/{order_id}/pay")
    wait_for(lambda: Event.objects.count() == orders, timeout=60, message="all webhooks stored")

    # Small batches, so the kill lands while the pump holds claims it has not committed.
    env = child_env(EVENT_CLAIM_LEASE_SECONDS="2", Q_WORKERS="1", EVENT_BATCH_SIZE="3")
    with running(["qcluster"], env=env) as worker:
        wait_for(
            lambda: Event.objects.filter(status=Event.Status.PROCESSED).exists(),
            timeout=60,
            interval=0.01,
            message="processing to start",
        )
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
    processed_at_kill = Event.objects.filter(status=Event.Status.PROCESSED).count()
    claimed_at_kill = Event.objects.filter(status=Event.Status.CLAIMED).count()
    assert 0 < processed_at_kill < orders, "the kill should land in the middle of the backlog"

    with running(["qcluster"], env=env):
        wait_for(
            lambda: Event.objects.filter(status=Event.Status.PROCESSED).count() == orders,
            timeout=120,
            message="every event processed after the restart",
        )
    assert PlatformOrder.objects.count() == orders
    assert FulfillmentNotification.objects.count() == orders
    assert set(Event.objects.values_list("processed_count", flat=True)) == {1}
    assert not Event.objects.filter(status=Event.Status.CLAIMED).exists()
    # The dead pump's uncommitted batch shows as "worker lost" attempts, then ran again.
    lost = Attempt.objects.filter(error_class="WorkerLost", trigger=Attempt.Trigger.RECOVERY)
    assert lost.count() >= claimed_at_kill
    assert all(attempt.job.status == "succeeded" for attempt in lost.select_related("job"))
    print(f"killed after {processed_at_kill}/{orders} events", file=sys.stderr)
