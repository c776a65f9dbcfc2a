"""GET /metrics: the figures move with real traffic (signed webhooks through the receiver, the real
pump, outbound calls through the simulator, the throttle, a replay, a worksheet apply), database
figures equal the database, refusals carry no figures, and under gunicorn and qcluster (several
processes, prometheus_client's multiprocess mode) a scrape adds up every process's counts."""

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from django.apps import apps
from django.db import connection
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.parser import text_string_to_metric_families

from console.management.commands.devstack import fresh_metrics_dir
from console.processes import stop_processes
from integrations.models import Event, OutboundCall, ReplayItem, Shop, ShopThrottle
from integrations.outbound import queue
from integrations.outbound.sender import Sender
from integrations.outbound.throttle import DatabaseThrottle
from integrations.processing.pump import Pump, process_pending
from integrations.replay import services as replays
from integrations.replay.selection import for_events
from tests.factories import ShopFactory
from tests.inbound.conftest import shopify_headers
from tests.outbound import conftest as outbound
from tests.processes import BASE_DIR, child_env, free_port, wait_for
from tests.replay.helpers import failing
from tests.webhooks import order, receive

TOKEN = "metrics-test-token-0123456789"
DOMAIN = "metrics-shop.myshopify.com"
SECRET = "whsec-metrics-0123456789"


simulator, store_factory = outbound.simulator, outbound.store_factory  # the outbound tests' simulator fixtures


@pytest.fixture
def shop_in_simulator(store_factory):
    return store_factory()


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    return TOKEN


def scrape(client) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} of one authorised scrape."""
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return samples(response.content.decode())


def samples(text: str) -> dict[tuple, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def post_webhook(client, body: bytes, **headers):
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in shopify_headers(body, **headers).items()}
    meta.pop("HTTP_CONTENT_TYPE")
    return client.post("/webhooks/shopify", data=body, content_type="application/json", **meta)


def webhook(found, outcome, topic, shop) -> float:
    return value(found, "console_webhooks_total", outcome=outcome, topic=topic, shop=shop)


# --- traffic moves the figures ------------------------------------------------------------------


@pytest.mark.django_db
def test_webhooks_and_processing_move_the_figures_by_exactly_what_happened(client, token):
    ShopFactory(domain=DOMAIN, webhook_secret=SECRET)
    before = scrape(client)
    bodies = [json.dumps(order(order_id=5000 + n)).encode() for n in range(3)]
    for n, body in enumerate(bodies):
        assert post_webhook(client, body, webhook_id=f"wh-{n}", domain=DOMAIN, secret=SECRET).status_code == 200
    assert post_webhook(client, bodies[0], webhook_id="wh-0", domain=DOMAIN, secret=SECRET).json()["status"] == (
        "duplicate"
    )
    # Refused: a known shop's bad signature; an unknown shop; an attacker's made-up topic and shop.
    assert post_webhook(client, bodies[0], webhook_id="wh-x", domain=DOMAIN, secret="wrong").status_code == 401
    assert post_webhook(client, bodies[0], webhook_id="wh-y", domain="nobody.myshopify.com").status_code == 401
    attack = post_webhook(client, b"{}", topic="evil/topic-123", webhook_id="wh-z", domain="evil-123.example")
    assert attack.status_code == 401

    after = scrape(client)
    moved = {
        key: after[key] - before.get(key, 0.0)
        for key in after
        if key[0] == "console_webhooks_total" and after[key] != before.get(key, 0.0)
    }
    assert moved == {
        ("console_webhooks_total", (("outcome", "accepted"), ("shop", DOMAIN), ("topic", "orders/create"))): 3,
        ("console_webhooks_total", (("outcome", "duplicate"), ("shop", DOMAIN), ("topic", "orders/create"))): 1,
        ("console_webhooks_total", (("outcome", "rejected"), ("shop", DOMAIN), ("topic", "orders/create"))): 1,
        ("console_webhooks_total", (("outcome", "rejected"), ("shop", "unknown"), ("topic", "orders/create"))): 1,
        ("console_webhooks_total", (("outcome", "rejected"), ("shop", "unknown"), ("topic", "other"))): 1,
    }
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert "evil" not in text and "nobody" not in text, "an attacker's strings never become labels"
    queued = Event.objects.filter(status=Event.Status.QUEUED).count()
    assert queued == 3
    assert value(after, "console_event_queue_depth", status="queued") == queued
    assert value(after, "console_event_queue_oldest_age_seconds") >= 0
    assert value(after, "console_metrics_database_ok") == 1

    assert process_pending() == 3  # the real pump, in this process
    done = scrape(client)
    settled = ("console_events_settled_total", {"topic": "orders/create", "status": "processed", "lane": "live"})
    assert value(done, settled[0], **settled[1]) - value(after, settled[0], **settled[1]) == 3
    latency = "console_event_processing_latency_seconds_count"
    assert value(done, latency, topic="orders/create") - value(after, latency, topic="orders/create") == 3
    assert value(done, "console_event_queue_depth", status="queued") == 0
    assert value(done, "console_event_queue_oldest_age_seconds") == 0


@pytest.fixture
def _fast_retries(settings):
    settings.OUTBOUND_BACKOFF_BASE = 0.02
    settings.OUTBOUND_BACKOFF_CAP = 0.1
    settings.OUTBOUND_READ_TIMEOUT = 0.4
    settings.OUTBOUND_CONNECT_TIMEOUT = 0.5


def test_outbound_tries_through_the_simulator_are_counted_by_class(client, token, shop_in_simulator, _fast_retries):
    shop, sim = shop_in_simulator
    target = sim.records("orders")[0]["admin_graphql_api_id"]
    before = scrape(client)
    call, _ = queue.enqueue(shop, "order.add_tags", {"id": target, "tags": ["vip"]}, origin="person")
    assert value(scrape(client), "console_outbound_due_calls") == 1
    sim.fault("api_5xx_rate", count=1, params={"statuses": [503]})  # the first try fails, the next applies
    Sender(tag="test").drain(timeout=15)
    call.refresh_from_db()
    assert call.status == OutboundCall.Status.SUCCEEDED and call.attempt_count == 2

    after = scrape(client)
    name = "console_outbound_calls_total"
    for kind, expected in (("retryable", 1), ("succeeded", 1), ("non_retryable", 0)):
        moved = value(after, name, operation="order.add_tags", **{"class": kind}) - value(
            before, name, operation="order.add_tags", **{"class": kind}
        )
        assert moved == expected, kind
    assert value(after, "console_outbound_due_calls") == 0


@pytest.mark.django_db
def test_a_throttle_that_makes_a_caller_wait_is_counted_with_the_wait(client, token, settings):
    shop = ShopFactory()
    throttle = DatabaseThrottle()
    throttle.bucket(shop.id)  # the shop's bucket row, full
    ShopThrottle.objects.filter(pk=shop.id).update(available=0.0, restore_rate=1.0, as_of=time.time())
    before = scrape(client)
    assert throttle.reserve(shop.id, 50, bulk=False) > 0  # 50 points short at 1 a second: 50 s
    after = scrape(client)
    count, total = "console_outbound_throttle_wait_seconds_count", "console_outbound_throttle_wait_seconds_sum"
    assert value(after, count, lane="live") - value(before, count, lane="live") == 1
    assert 40 < value(after, total, lane="live") - value(before, total, lane="live") <= 50
    assert value(after, count, lane="bulk") == value(before, count, lane="bulk")


@pytest.mark.django_db
def test_a_replay_is_counted_requested_started_finished_with_its_items(
    client, token, monkeypatch, support_user, django_capture_on_commit_callbacks
):
    shop = ShopFactory()
    restore = failing(monkeypatch, "notify_fulfillment", "warehouse API down")
    paid = receive(shop, "orders/paid", order(order_id=4242, customer={"id": 7042}))
    process_pending()
    restore()
    before = scrape(client)
    with django_capture_on_commit_callbacks(execute=True):
        replay = replays.check_replay(selection=for_events([paid.pk]), by=support_user)
        replays.do_replay(replay, by=support_user, reason="warehouse is back", plan_hash=replay.plan_hash)
        assert value(scrape(client), "console_replay_items_pending") == 1
        pump = Pump(tag="test")
        while pump.run_once():
            pass
    assert ReplayItem.objects.get().status == ReplayItem.Status.DONE

    after = scrape(client)
    for stage in ("requested", "started", "finished"):
        moved = value(after, "console_replays_total", stage=stage) - value(before, "console_replays_total", stage=stage)
        assert moved == 1, stage
    name = "console_replay_items_settled_total"
    assert value(after, name, status="done") - value(before, name, status="done") == 1
    assert value(after, "console_replay_items_pending") == 0
    replayed = ("console_events_settled_total", {"topic": "orders/paid", "status": "processed", "lane": "replay"})
    assert value(after, replayed[0], **replayed[1]) - value(before, replayed[0], **replayed[1]) == 1


@pytest.mark.django_db(transaction=True)
def test_a_worksheet_apply_counts_its_rows_by_result(
    client, token, shop_in_simulator, admin_user, approver_user, settings
):
    from incidents.worksheets import services as worksheets
    from integrations.models import PlatformProduct
    from tests.worksheets.conftest import copy_to_platform, send_outbound

    settings.WORKSHEET_MIN_AGE_SECONDS = 0
    settings.WORKSHEET_RULES = {}
    shop, sim = shop_in_simulator
    copy_to_platform(shop, sim, "products")
    a, b, *_rest = PlatformProduct.objects.filter(shop=shop).order_by("shopify_id")
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")  # one row to write to Shopify
    worksheet = worksheets.create_worksheet(
        shop=shop, resource="products", ids_text=f"{a.shopify_id}\n{b.shopify_id}", by=admin_user
    )
    worksheets.start_compare(worksheet, by=admin_user)
    worksheet.refresh_from_db()
    worksheets.submit(worksheet, by=admin_user)
    worksheets.approve(worksheet, by=approver_user)
    before = scrape(client)
    worksheets.start_apply(worksheet, by=approver_user)
    send_outbound()
    worksheets.settle(worksheet)
    after = scrape(client)
    name = "console_worksheet_rows_applied_total"
    moved = {r: value(after, name, result=r) - value(before, name, result=r) for r in ("applied", "skipped", "stale")}
    assert moved == {"applied": 1, "skipped": 1, "stale": 0}


@pytest.mark.django_db
def test_paused_shops_and_firing_alerts_are_read_from_the_database(client, token):
    ShopFactory.create_batch(2, queue_paused=True)
    ShopFactory()
    found = scrape(client)
    assert value(found, "console_shops_paused") == Shop.objects.filter(queue_paused=True).count() == 2
    assert value(found, "console_alerts_firing", rule="backlog_age") == 0
    Alert = apps.get_model("alerts", "Alert")
    for subject in ("shop-a", "shop-b"):
        Alert.objects.create(rule="backlog_age", subject=subject, severity="sev2", audience="support", summary="x")
    Alert.objects.create(rule="backlog_age", subject="old", severity="sev2", audience="support", summary="x",
                         status="resolved", resolved_at="2026-01-01T00:00:00Z")  # fmt: skip
    assert value(scrape(client), "console_alerts_firing", rule="backlog_age") == 2


# --- who may scrape ------------------------------------------------------------------------------


def _refused_without_figures(response, status: int) -> None:
    assert response.status_code == status
    assert b"console_" not in response.content and b"# TYPE" not in response.content
    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db
def test_anonymous_wrong_token_and_other_addresses_are_refused_without_figures(client, settings, admin_user):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    _refused_without_figures(client.get("/metrics"), 403)  # nothing configured: nobody
    _refused_without_figures(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"), 403)

    settings.METRICS_TOKEN = TOKEN
    _refused_without_figures(client.get("/metrics"), 401)
    assert client.get("/metrics")["WWW-Authenticate"].startswith("Bearer")
    _refused_without_figures(client.get("/metrics", HTTP_AUTHORIZATION="Bearer " + TOKEN[:-1] + "x"), 401)
    _refused_without_figures(client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}"), 401)
    client.force_login(admin_user)  # a console login is not a scraper's credential
    _refused_without_figures(client.get("/metrics"), 401)
    client.logout()

    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.0.0.0/8", "2001:db8::/32"]
    _refused_without_figures(client.get("/metrics"), 403)  # the test client comes from 127.0.0.1
    _refused_without_figures(client.get("/metrics", REMOTE_ADDR="11.0.0.1"), 403)
    # Behind no trusted proxy, a forwarded address is the client's own claim: not believed.
    _refused_without_figures(client.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.2.3"), 403)

    settings.METRICS_TOKEN = TOKEN  # both set: both must pass
    _refused_without_figures(client.get("/metrics", REMOTE_ADDR="10.1.2.3"), 401)
    _refused_without_figures(client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}"), 403)
    assert client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="10.1.2.3").status_code == 405


@pytest.mark.django_db
def test_the_right_token_or_an_allowed_address_gets_the_figures(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, []
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and response["Content-Type"] == CONTENT_TYPE_PLAIN_0_0_4
    assert "no-store" in response["Cache-Control"]
    assert b"# TYPE console_webhooks_total counter" in response.content

    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", ["10.0.0.0/8", "2001:db8::/32"]
    assert client.get("/metrics", REMOTE_ADDR="10.9.8.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="2001:db8::5").status_code == 200
    settings.TRUSTED_PROXY_COUNT = 1  # the address our one proxy saw
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR="10.9.8.7").status_code == 200

    settings.METRICS_TOKEN, settings.TRUSTED_PROXY_COUNT = TOKEN, 0
    both = client.get("/metrics", REMOTE_ADDR="10.9.8.7", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert both.status_code == 200 and b"console_event_queue_depth" in both.content


# --- several processes ---------------------------------------------------------------------------


@contextlib.contextmanager
def _started(argv: list[str], env: dict[str, str], log: Path):
    with log.open("w") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=BASE_DIR, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            stop_processes([process])


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.mark.django_db(transaction=True)
def test_gunicorn_workers_and_a_qcluster_worker_add_up_in_one_scrape(tmp_path):
    """Two gunicorn workers receive the webhooks and a qcluster worker process processes them, each
    process counting into PROMETHEUS_MULTIPROC_DIR: every scrape, whichever web worker answers it,
    shows the sum of all of them."""
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"stale")  # an earlier run's: devstack empties the dir
    assert fresh_metrics_dir(str(metrics_dir)) == str(metrics_dir) and not list(metrics_dir.iterdir())

    ShopFactory(domain=DOMAIN, webhook_secret=SECRET)
    port = free_port()
    env = child_env(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), METRICS_TOKEN=TOKEN)
    if connection.vendor == "sqlite":
        env["Q_WORKERS"] = "1"
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", "python:console.gunicorn_conf", "console.wsgi",
                "--workers", "2", "--bind", f"127.0.0.1:{port}"]  # fmt: skip
    qcluster = [sys.executable, str(BASE_DIR / "manage.py"), "qcluster"]
    base = f"http://127.0.0.1:{port}"
    sent = 8
    with (
        _started(gunicorn, env, tmp_path / "gunicorn.log"),
        _started(qcluster, env, tmp_path / "qcluster.log"),
    ):
        wait_for(lambda: _answers(f"{base}/healthz"), timeout=60, message="gunicorn to answer")
        http = requests.Session()
        for n in range(sent):
            body = json.dumps(order(order_id=7000 + n)).encode()
            headers = shopify_headers(body, webhook_id=f"mp-{n}", domain=DOMAIN, secret=SECRET)
            assert http.post(f"{base}/webhooks/shopify", data=body, headers=headers, timeout=10).status_code == 200
        wait_for(
            lambda: Event.objects.filter(status=Event.Status.PROCESSED).count() == sent,
            timeout=60,
            message="the qcluster worker to process every event",
        )
        scrapes = []
        for _ in range(6):
            response = http.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
            assert response.status_code == 200
            scrapes.append(samples(response.text))
        refused = http.get(f"{base}/metrics", timeout=10)
        assert refused.status_code == 401 and "console_" not in refused.text
    pids = {path.stem.rsplit("_", 1)[1] for path in metrics_dir.glob("*.db")}
    assert len(pids) >= 2, "counts came from more than one process"
    for found in scrapes:
        assert webhook(found, "accepted", "orders/create", DOMAIN) == sent
        assert value(found, "console_events_settled_total", topic="orders/create", status="processed", lane="live") == (
            sent
        )
        assert value(found, "console_event_processing_latency_seconds_count", topic="orders/create") == sent
        assert value(found, "console_event_queue_depth", status="queued") == 0
