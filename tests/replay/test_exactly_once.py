"""Safe replay, end to end: 1,000 events replayed three times each, two of the replays running at
the same time, and every downstream effect (platform records, fulfillment notifications, outbound
calls applied in the simulator) happens exactly once.

Real processes throughout: a store simulator sends signed webhooks (with Shopify's retries) over
HTTP to a gunicorn console; two qcluster worker processes, two pump threads each, one with an
outbound sender, process them. Every handler of the orders is disabled first, so the live pass only
stores and holds the events: all the downstream work is left for the replays, which could
therefore duplicate (or lose) any of it.
"""

import contextlib
import json
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from django.test import override_settings
from django.utils import timezone

from console.processes import stop_processes
from integrations.jobs import registry
from integrations.models import (
    Attempt,
    Event,
    FulfillmentNotification,
    Job,
    OutboundAttempt,
    OutboundCall,
    PlatformCustomer,
    PlatformOrder,
    ReplayItem,
    ReplayRequest,
    WorkerHeartbeat,
)
from integrations.outbound import queue
from integrations.processing.pump import Pump
from integrations.replay import services, switches
from integrations.replay.selection import for_events
from integrations.simulator.server import Simulator, serve_in_thread
from tests.processes import BASE_DIR, child_env, free_port, wait_for
from tests.webhooks import order, receive

pytestmark = pytest.mark.django_db(transaction=True)

ORDERS = 500  # each placed paid: orders/create + orders/paid, so 1,000 events
HANDLERS = ("sync_order", "notify_fulfillment", "tag_notified_order", "tag_buyer")
ORDER_TAG, BUYER_TAG = "fulfillment-notified", "buyer"
# Webhooks to the console: the two of each order, and the echoes of our own tag writes (orders/updated
# and customers/update, one per tagsAdd the simulator applies; its delivery log counts them).
TOPICS = ["orders/create", "orders/paid", "orders/updated", "customers/update"]
JOB_MENTION = re.compile(rf"\b({'|'.join(HANDLERS)}): (succeeded|failed|skipped)\b")
Done = ReplayRequest.Status.DONE


@pytest.fixture
def simulator():
    """Replaces the outbound tests' simulator (retries every few milliseconds, half-second timeouts)
    with Shopify's pacing scaled down to 1 %: a receiver briefly slowed by SQLite's write lock is
    retried within a second, and a subscription is not dropped after 1.5 s of a busy console."""
    running = serve_in_thread(Simulator(time_scale=0.01, connect_timeout=1.0, total_timeout=5.0))
    yield running
    running.stop()


@contextlib.contextmanager
def started(name: str, argv: list[str], env: dict[str, str], logs: Path):
    """Run a console process for the block, its output in `logs/<name>.log` (a pipe nobody reads
    would fill up and stall it); stop it the way devstack does."""
    path = logs / f"{name}.log"
    with path.open("w") as log:
        process = subprocess.Popen(
            argv, env=env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            stop_processes([process])


def _tails(logs: Path) -> str:
    return "\n".join(f"--- {p.name} ---\n" + "\n".join(p.read_text().splitlines()[-40:]) for p in logs.glob("*.log"))


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # not listening yet, or a worker still booting
        return False


def _deliveries(sim, topic: str) -> list[dict]:
    return sim.control("GET", "/deliveries", params={"topic": topic, "body": "1"})["deliveries"]


def _all_delivered(sim, topic: str, count: int) -> bool:
    found = _deliveries(sim, topic)
    return len(found) == count and all(d["status"] == "delivered" for d in found)


def _mentions(item: ReplayItem) -> dict[str, str]:
    """{job: succeeded | failed | skipped} as the item's result tells it."""
    return dict(JOB_MENTION.findall(item.result))


def test_1000_events_replayed_three_times_two_at_once_every_effect_exactly_once(
    store_factory, admin_user, approver_user, tmp_path
):
    port = free_port()
    shop, sim = store_factory(
        records=100,  # 30 customers: every buyer pays several orders, so tag_buyer keeps meeting its own key
        webhook_url=f"http://127.0.0.1:{port}/webhooks/shopify",
        topics=TOPICS,
        graphql_maximum=4000,
        graphql_restore_rate=2000,
    )
    for name in HANDLERS:
        switches.set_handler(job=name, shop=shop, disabled=True, by=admin_user, reason="test: hold the orders")
    qcluster = [sys.executable, str(BASE_DIR / "manage.py"), "qcluster"]
    workers = {"Q_WORKERS": "1", "EVENT_PUMP_THREADS": "2", "OUTBOUND_BACKOFF_BASE": "0.05"}
    gunicorn = [sys.executable, "-m", "gunicorn", "console.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(started("gunicorn", gunicorn, child_env(), tmp_path))
        pumps = stack.enter_context(started("qcluster-pumps", qcluster, child_env(**workers), tmp_path))
        sending = stack.enter_context(
            started("qcluster-pumps-sender", qcluster, child_env(**workers, OUTBOUND_SENDER_THREADS="1"), tmp_path)
        )
        try:
            replays, orders, buyers = _run(shop, sim, port, admin_user, approver_user)
        except BaseException:
            print(_tails(tmp_path))
            raise
        assert pumps.poll() is None and sending.poll() is None, "both worker processes ran to the end"
    _assert_exactly_once(shop, sim, replays, orders, buyers)


def _run(shop, sim, port, admin_user, approver_user):
    wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), timeout=60, message="gunicorn to answer")
    wait_for(
        lambda: (
            WorkerHeartbeat.objects.filter(
                name__regex=r":pump[12]$", beat_at__gte=timezone.now() - timedelta(seconds=5)
            ).count()
            >= 4
        ),
        timeout=60,
        message="two pumps in each of the two worker processes",
    )

    # 1. 500 paid orders in the store: 1,000 signed webhooks over HTTP, held by the live pumps.
    rng = random.Random(12)
    variants, customers = sim.records("variants"), sim.records("customers")
    orders = [
        sim.control(
            "POST",
            "/orders",
            json={
                "lines": [{"variant_id": rng.choice(variants)["id"], "quantity": 1}],
                "customer_id": rng.choice(customers)["id"],
                "financial_status": "paid",
            },
        )
        for _ in range(ORDERS)
    ]
    order_ids = {o["id"] for o in orders}
    buyers = {o["customer"]["id"] for o in orders}
    assert len(order_ids) == ORDERS and 10 < len(buyers) < ORDERS
    wait_for(
        lambda: _all_delivered(sim, "orders/create", ORDERS) and _all_delivered(sim, "orders/paid", ORDERS),
        timeout=120,
        interval=0.5,
        message="the simulator to deliver 1,000 webhooks to gunicorn",
    )
    wait_for(
        lambda: (
            Event.objects.filter(shop=shop).count() == 2 * ORDERS
            and not Event.objects.filter(shop=shop, status__in=Event.IN_FLIGHT_STATUSES).exists()
        ),
        timeout=60,
        interval=0.5,
        message="the live pumps to settle the 1,000 events",
    )
    # Nothing downstream was done: every job is held, so the replays have all the work.
    events = Event.objects.filter(shop=shop)
    assert Counter(events.values_list("status", flat=True)) == {"held": 2 * ORDERS}
    assert Counter(events.values_list("topic", flat=True)) == {"orders/create": ORDERS, "orders/paid": ORDERS}
    assert {int(pk) for pk in events.values_list("resource_id", flat=True)} == order_ids
    assert Counter(Job.objects.values_list("status", flat=True)) == {"held": 5 * ORDERS}
    assert not Attempt.objects.exists() and not OutboundCall.objects.exists()
    assert not PlatformOrder.objects.exists() and not FulfillmentNotification.objects.exists()

    # 2. Three dry runs of the same 1,000 events; two of them requested, approved by a second admin and
    # started at once. The shop's queue is paused meanwhile, so neither runs before both are approved
    # (a run would change the state the other's plan was computed on).
    queue.pause_shop(shop, by=admin_user, reason="test: start two replays at the same moment")
    for name in HANDLERS:
        switches.set_handler(job=name, shop=shop, disabled=False, by=admin_user, reason="test: fixed")
    selection = for_events(events.values_list("id", flat=True))
    first, second, third = (services.check_replay(selection=selection, by=admin_user) for _ in range(3))
    for replay in (first, second, third):
        summary = replay.summary
        assert (summary["events_to_run"], summary["jobs_to_run"], summary["jobs_to_skip"]) == (1000, 2500, 0)
        # The dry run counts the calls the run makes: one tag per order, one per buyer.
        assert summary["outbound_calls"] == ORDERS + len(buyers)
    for replay in (first, second):
        services.do_replay(replay, by=admin_user, reason="test: replay the held orders", plan_hash=replay.plan_hash)
        assert replay.status == ReplayRequest.Status.AWAITING_APPROVAL, replay.approval_reasons
    for replay in (first, second):
        services.approve_replay(replay, by=approver_user, plan_hash=replay.plan_hash)
    assert ReplayItem.objects.filter(status=ReplayItem.Status.PENDING).count() == 2 * 2 * ORDERS
    queue.resume_shop(shop, by=admin_user, reason="test: go")

    # 3. Both run on the two worker processes (the live pumps meanwhile process the echoes of our tag
    # writes); then the senders drain every call to the simulator.
    wait_for(
        lambda: (
            set(ReplayRequest.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == {Done}
        ),
        timeout=240,
        interval=0.5,
        message="the two concurrent replays to finish",
    )
    wait_for(
        lambda: (
            OutboundCall.objects.filter(status=OutboundCall.Status.SUCCEEDED).count() == ORDERS + len(buyers)
            and _all_delivered(sim, "orders/updated", ORDERS)
            and _all_delivered(sim, "customers/update", len(buyers))
        ),
        timeout=120,
        interval=0.5,
        message="the senders to apply every call and the simulator to deliver their echoes",
    )
    wait_for(
        lambda: (
            Event.objects.count() == 3 * ORDERS + len(buyers)
            and not Event.objects.filter(status__in=Event.IN_FLIGHT_STATUSES).exists()
        ),
        timeout=60,
        interval=0.5,
        message="the live pumps to process the echoes",
    )

    # 4. The third replay, run after: its dry run predates the state the first two left, so it must
    # be looked at again; the fresh plan has nothing left to run.
    with pytest.raises(services.PlanChanged):
        services.do_replay(third, by=admin_user, reason="test: once more", plan_hash=third.plan_hash)
    third.refresh_from_db()
    assert third.status == ReplayRequest.Status.PLANNED and third.summary["jobs_to_run"] == 0
    assert set(third.summary["skips_by_reason"]) <= {"already succeeded", "a newer event was processed"}
    services.do_replay(third, by=admin_user, reason="test: once more", plan_hash=third.plan_hash)
    wait_for(lambda: ReplayRequest.objects.get(pk=third.pk).status == Done, timeout=30, message="the third replay")
    assert not ReplayItem.objects.filter(status__in=[ReplayItem.Status.PENDING, ReplayItem.Status.CLAIMED]).exists()
    assert not OutboundCall.objects.exclude(status=OutboundCall.Status.SUCCEEDED).exists()
    return (first, second, third), order_ids, buyers


def _assert_exactly_once(shop, sim, replays, order_ids, buyers):
    first, second, third = (ReplayRequest.objects.get(pk=r.pk) for r in replays)
    replayed = Event.objects.filter(pk__in=[item.event_id for item in first.items.all()])
    paid = set(replayed.filter(topic="orders/paid").values_list("id", flat=True))

    # Platform records: one order per order placed, one customer per buyer (synced from the echoes).
    assert PlatformOrder.objects.filter(shop=shop).count() == ORDERS
    assert set(PlatformOrder.objects.values_list("shopify_id", flat=True)) == order_ids
    assert set(PlatformOrder.objects.values_list("financial_status", flat=True)) == {"paid"}
    assert set(PlatformCustomer.objects.values_list("shopify_id", flat=True)) == buyers
    assert PlatformCustomer.objects.count() == len(buyers)
    # Fulfillment: one notification per paid order, made by its orders/paid event.
    notifications = list(FulfillmentNotification.objects.values_list("order_shopify_id", "event_id"))
    assert len(notifications) == ORDERS and {o for o, _ in notifications} == order_ids
    assert {e for _, e in notifications} == paid

    # Outbound: one call per intent (each order's tag, each buyer's tag), in the replay lane, each
    # sent once and succeeded once.
    calls = list(OutboundCall.objects.values_list("operation", "idempotency_key", "status", "lane"))
    assert Counter(op for op, *_ in calls) == {"order.add_tags": ORDERS, "customer.add_tags": len(buyers)}
    assert {key for _, key, *_ in calls} == {f"tag_notified_order:{o}:{ORDER_TAG}" for o in order_ids} | {
        f"tag_buyer:{c}:{BUYER_TAG}" for c in buyers
    }
    assert {(status, lane) for *_, status, lane in calls} == {("succeeded", "replay")}
    sent = Counter(OutboundAttempt.objects.filter(outcome="succeeded").values_list("call_id", flat=True))
    assert len(sent) == len(calls) and set(sent.values()) == {1}, "a call was applied twice (or not at all)"

    # In the simulator: each order's tagsAdd applied once, each buyer's once. Every applied mutation
    # changes the record and sends one webhook, so the delivery log counts them per record.
    applied = Counter(json.loads(d["body"])["id"] for d in _deliveries(sim, "orders/updated"))
    assert applied == dict.fromkeys(order_ids, 1), "an order's tag was applied twice, or never"
    applied = Counter(json.loads(d["body"])["id"] for d in _deliveries(sim, "customers/update"))
    assert applied == dict.fromkeys(buyers, 1), "a buyer's tag was applied twice, or never"
    records = {r["id"]: r for r in sim.records("orders")}
    for order_id in order_ids:
        assert [t.strip() for t in records[order_id]["tags"].split(",")].count(ORDER_TAG) == 1
    for customer in sim.records("customers"):
        tags = [t.strip() for t in (customer["tags"] or "").split(",")]
        assert tags.count(BUYER_TAG) == (1 if customer["id"] in buyers else 0)

    # Jobs: nothing ran live (all held); each replayed job ran at most once over the three replays,
    # and succeeded; every job with an effect ran exactly once.
    attempts = Attempt.objects.filter(job__event__in=replayed)
    assert set(attempts.values_list("trigger", "outcome")) == {("replay", "succeeded")}
    assert set(attempts.values_list("replay_id", flat=True)) <= {first.pk, second.pk}
    per_job = Counter(attempts.values_list("job_id", flat=True))
    assert set(per_job.values()) == {1}, "a job ran twice"
    ran = defaultdict(set)
    for event_id, name in attempts.values_list("job__event_id", "job__name"):
        ran[name].add(event_id)
    for name in ("notify_fulfillment", "tag_notified_order", "tag_buyer"):
        assert ran[name] == paid, f"{name} did not run exactly once for every orders/paid event"
    # An order's two events carry the same version: sync_order ran for one or both, and created the
    # order once; where it ran for one, the other was skipped as superseded and is left held.
    created = Counter(
        attempts.filter(job__name="sync_order", message="created").values_list("job__event__resource_id", flat=True)
    )
    assert len(created) == ORDERS and set(created.values()) == {1}
    never_ran = Job.objects.filter(event__in=replayed).exclude(pk__in=list(per_job))
    assert set(never_ran.values_list("name", "status")) <= {("sync_order", "held")}

    # The replays: all three done; the two concurrent ones overlapped, each settled all 1,000 items,
    # and between them accounted for every planned job once per replay: run by one, skipped by the other.
    assert [r.status for r in (first, second, third)] == [Done, Done, Done]
    assert second.started_at < first.finished_at, "the two replays never ran at the same time"
    for replay in (first, second):
        assert replay.items_total == replay.items_done == 2 * ORDERS
        assert replay.jobs_failed == 0
        assert replay.jobs_ran + replay.jobs_skipped == 5 * ORDERS
        assert set(replay.items.values_list("status", flat=True)) <= {"done", "skipped"}
    assert first.jobs_ran + second.jobs_ran == attempts.count()
    told = defaultdict(list)
    for item in ReplayItem.objects.filter(replay__in=[first, second]):
        for name, verdict in _mentions(item).items():
            told[(item.event_id, name)].append(verdict)
    assert len(told) == 5 * ORDERS
    for (event_id, name), verdicts in told.items():
        assert len(verdicts) == 2 and verdicts.count("succeeded") <= 1, (event_id, name, verdicts)
    assert sum(v.count("succeeded") for v in told.values()) == attempts.count()
    assert third.items_total == 0 and third.outcome.startswith("nothing to run")

    # The live lane kept running: the echoes of our writes were processed and pushed nothing back.
    echoes = Event.objects.exclude(pk__in=replayed)
    assert Counter(echoes.values_list("topic", flat=True)) == {
        "orders/updated": ORDERS,
        "customers/update": len(buyers),
    }
    assert set(echoes.values_list("status", flat=True)) == {"processed"}
    # Both worker processes ran replayed jobs (workers are host:pid:tag).
    assert len({w.rsplit(":", 1)[0] for w in attempts.values_list("worker", flat=True)}) == 2


# Two bugs this module found (fixed), each reduced to a few events in one process.


def test_an_orders_updated_that_arrived_before_orders_paid_does_not_cost_the_order_its_tag(shop, drain):
    """Shopify sends orders/paid and orders/updated for one payment with the same updated_at, in
    either order. If orders/updated is replayed first, its tag_notified_order finds no notification
    yet and succeeds without a call; the orders/paid event's tag_notified_order is then skipped as
    superseded ("a newer event ... ran tag_notified_order"), so the order is notified but never
    tagged, and no later replay will tag it."""
    held = ("notify_fulfillment", "tag_notified_order", "tag_buyer")
    for name in held:
        switches.set_handler(job=name, shop=shop, disabled=True, by=None, reason="test: hold")
    updated = receive(shop, "orders/updated", order(1001), "wh-updated")
    paid = receive(shop, "orders/paid", order(1001), "wh-paid")
    drain()
    for name in held:
        switches.set_handler(job=name, shop=shop, disabled=False, by=None, reason="test: fixed")
    replay = services.check_replay(selection=for_events([updated.pk, paid.pk]))
    with override_settings(REPLAY_BATCH_SIZE=1):  # the two events in two batches, as 25 at a time often are
        services.do_replay(replay, by=None, reason="test", plan_hash=replay.plan_hash)
        drain()
    assert FulfillmentNotification.objects.filter(order_shopify_id=1001).exists()
    assert OutboundCall.objects.filter(idempotency_key=f"tag_notified_order:1001:{ORDER_TAG}").exists()


def test_a_job_failing_in_a_replay_batch_does_not_strand_the_other_events_of_the_batch(shop, drain, monkeypatch):
    """A job raising in a batch rolls the batch back and runs it again one event at a time, but with
    the same Job objects, which the rolled-back run already marked succeeded. The settle of an event
    that ran before the failing one then matches no row ("lost its claim"): it stays claimed by the
    live pump and its replay item is put back, to be refused by every other pump. (On PostgreSQL a
    deadlock between two pumps is such a failure; the e2e test above meets it.)"""
    switches.set_handler(job="tag_buyer", shop=shop, disabled=True, by=None, reason="test: hold")
    first = receive(shop, "orders/paid", order(1001, customer={"id": 1}), "wh-first")
    second = receive(shop, "orders/paid", order(1002, customer={"id": 2}), "wh-second")
    drain()
    switches.set_handler(job="tag_buyer", shop=shop, disabled=False, by=None, reason="test: fixed")
    real = registry.JOB_TYPES["tag_buyer"]

    def fails_for_the_second(event, payload):
        if event.pk == second.pk:
            raise ValueError("the second buyer cannot be tagged")
        return real.run(event, payload)

    monkeypatch.setitem(registry.JOB_TYPES, "tag_buyer", replace(real, run=fails_for_the_second))
    replay = services.check_replay(selection=for_events([first.pk, second.pk]))
    services.do_replay(replay, by=None, reason="test", plan_hash=replay.plan_hash)
    Pump(tag="replayer").run_once()  # one pass: both items in one batch
    first.refresh_from_db()
    assert (first.status, first.claimed_by) == (Event.Status.PROCESSED, "")
    assert ReplayItem.objects.get(replay=replay, event=first).status == ReplayItem.Status.DONE
    assert OutboundCall.objects.filter(idempotency_key=f"tag_buyer:1:{BUYER_TAG}").exists()
