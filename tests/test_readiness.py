"""/readyz says whether the console can do its work, check by check, and turns 503 naming the check
that fails (worker heartbeat, event or outbound backlog, a database that refuses writes, an
unapplied migration), then 200 again once it is put right; /healthz only says the process answers."""

import json
from contextlib import contextmanager
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder
from django.test import override_settings
from django.utils import timezone

from console import readiness
from integrations.models import Event, OutboundCall, WorkerHeartbeat
from integrations.outbound import queue
from integrations.outbound.sender import Sender
from integrations.processing.pump import Pump, process_pending
from tests.factories import EventFactory, ShopFactory
from tests.outbound import conftest as outbound_fixtures
from tests.webhooks import order, receive

# A real store simulator for the outbound sender (the fixtures of tests/outbound).
simulator = outbound_fixtures.simulator
store_factory = outbound_fixtures.store_factory
store = outbound_fixtures.store

THRESHOLDS = {
    "READY_WORKER_HEARTBEAT_SECONDS": 60,
    "READY_MAX_EVENT_AGE_SECONDS": 300,
    "READY_MAX_CALL_AGE_SECONDS": 300,
}


@pytest.fixture(autouse=True)
def _thresholds_and_a_fresh_migrations_answer():
    readiness.forget_migrations()
    with override_settings(**THRESHOLDS):
        yield
    readiness.forget_migrations()


@pytest.fixture
def pump(db):
    """A real event pump that has just beaten its heartbeat (it processes nothing on its own)."""
    pump = Pump(tag="readyz-test")
    pump.beat()
    return pump


def readyz(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    assert response["Content-Type"] == "application/json"
    assert "no-store" in response["Cache-Control"]
    return response.status_code, response.json()


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


@contextmanager
def refusing_writes():
    """The database refuses every write on the connection the view uses (the test client runs
    in this process, on this connection), then takes them again."""
    connection.ensure_connection()
    if connection.vendor == "sqlite":
        connection.connection.execute("PRAGMA query_only = ON")
    else:
        with connection.cursor() as cursor:
            cursor.execute("SET default_transaction_read_only = on")
    try:
        yield
    finally:
        if connection.vendor == "sqlite":
            connection.connection.execute("PRAGMA query_only = OFF")
        else:
            with connection.cursor() as cursor:
                cursor.execute("SET default_transaction_read_only = off")


def assert_nothing_secret(text: str, *shops) -> None:
    secrets = [settings.SECRET_KEY, connection.settings_dict.get("PASSWORD")]
    secrets += [value for shop in shops for value in (shop.access_token, shop.webhook_secret)]
    for secret in filter(None, secrets):
        assert secret not in text


def test_ready_with_a_fresh_heartbeat_and_no_backlog_for_anyone(client, pump):
    status, body = readyz(client)  # an anonymous client: no login needed
    assert status == 200, body
    assert body["status"] == "ok" and body["failing"] == []
    assert list(body["checks"]) == ["database", "migrations", "worker", "event_backlog", "outbound_backlog"]
    assert all(check["ok"] for check in body["checks"].values())
    assert body["checks"]["migrations"]["unapplied"] == 0
    assert body["checks"]["worker"]["pumps_alive"] == 1
    assert body["checks"]["worker"]["threshold_seconds"] == 60
    assert body["checks"]["event_backlog"]["oldest_queued_age_seconds"] is None


def test_not_ready_when_the_worker_heartbeat_stops_and_ready_after_a_new_beat(client, pump):
    assert readyz(client)[0] == 200
    WorkerHeartbeat.objects.update(beat_at=ago(61))
    status, body = readyz(client)
    assert status == 503 and body["status"] == "unavailable"
    assert body["failing"] == ["worker"]
    worker = body["checks"]["worker"]
    assert worker["ok"] is False and worker["newest_beat_age_seconds"] >= 61 and worker["pumps_alive"] == 0
    pump.beat()
    assert readyz(client)[0] == 200


def test_not_ready_without_any_heartbeat(client, db):
    status, body = readyz(client)
    assert status == 503 and body["failing"] == ["worker"]
    assert "no event pump" in body["checks"]["worker"]["error"]


def test_not_ready_when_the_oldest_queued_event_ages_past_the_threshold_and_ready_once_processed(client, pump):
    shop = ShopFactory()
    event = receive(shop, "orders/create", order(order_id=4242))
    assert readyz(client)[0] == 200, "a fresh event in the queue is no backlog"
    Event.objects.filter(pk=event.pk).update(received_at=ago(301))
    status, body = readyz(client)
    assert status == 503 and body["failing"] == ["event_backlog"]
    backlog = body["checks"]["event_backlog"]
    assert backlog["oldest_queued_age_seconds"] >= 301 and backlog["threshold_seconds"] == 300
    assert backlog["oldest_queued_event"] == {"id": event.pk, "shop": shop.domain}
    assert_nothing_secret(json.dumps(body), shop)

    assert process_pending() == 1
    assert Event.objects.get(pk=event.pk).status == Event.Status.PROCESSED
    assert readyz(client)[0] == 200


def test_an_overdue_retry_counts_as_backlog_and_one_not_yet_due_does_not(client, pump):
    waiting = EventFactory(status=Event.Status.RETRY_WAIT, next_attempt_at=ago(301))
    status, body = readyz(client)
    assert status == 503 and body["failing"] == ["event_backlog"]
    assert body["checks"]["event_backlog"]["oldest_retry_overdue_seconds"] >= 301
    assert body["checks"]["event_backlog"]["most_overdue_retry_event"]["id"] == waiting.pk
    Event.objects.filter(pk=waiting.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    assert readyz(client)[0] == 200


def test_not_ready_when_the_oldest_due_outbound_call_ages_and_ready_once_sent(client, pump, store, admin_user):
    shop, sim = store
    target = sim.records("orders")[0]["admin_graphql_api_id"]
    call, _ = queue.enqueue(shop, "order.add_tags", {"id": target, "tags": ["vip"]}, origin="person")
    assert readyz(client)[0] == 200, "a call made just now is no backlog"
    OutboundCall.objects.filter(pk=call.pk).update(created_at=ago(301))
    status, body = readyz(client)
    assert status == 503 and body["failing"] == ["outbound_backlog"]
    backlog = body["checks"]["outbound_backlog"]
    assert backlog["oldest_due_age_seconds"] >= 301
    assert backlog["oldest_due_call"] == {"id": call.pk, "shop": shop.domain, "operation": "order.add_tags"}
    assert_nothing_secret(json.dumps(body), shop)

    # A paused shop's calls wait for a person, not for a sender.
    queue.pause_shop(shop, by=admin_user, reason="checking the readiness probe")
    assert readyz(client)[0] == 200
    queue.resume_shop(shop, by=admin_user, reason="done")
    assert readyz(client)[0] == 503

    assert Sender(tag="readyz").drain(timeout=30) == 1
    assert OutboundCall.objects.get(pk=call.pk).status == OutboundCall.Status.SUCCEEDED
    assert readyz(client)[0] == 200


def test_a_waiting_call_counts_from_when_its_next_try_came_due(client, pump):
    shop = ShopFactory()
    call, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["a"]}, origin="person")
    OutboundCall.objects.filter(pk=call.pk).update(
        status=OutboundCall.Status.WAITING, created_at=ago(3600), next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    assert readyz(client)[0] == 200, "not due yet"
    OutboundCall.objects.filter(pk=call.pk).update(next_attempt_at=ago(100))
    assert readyz(client)[0] == 200, "due for 100 s only"
    OutboundCall.objects.filter(pk=call.pk).update(next_attempt_at=ago(301))
    status, body = readyz(client)
    assert status == 503 and body["failing"] == ["outbound_backlog"]


@pytest.mark.django_db(transaction=True)
def test_not_ready_while_the_database_refuses_writes_and_ready_after_yet_alive_throughout(client):
    Pump(tag="readyz-test").beat()
    assert readyz(client)[0] == 200
    with refusing_writes():
        status, body = readyz(client)
        response = client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert status == 503 and body["failing"] == ["database"]
    assert body["checks"]["database"] == {
        "ok": False,
        "error": "the database refuses writes (read-only)",
        "timeout_seconds": settings.READY_DB_TIMEOUT_SECONDS,
    }
    for name in ("migrations", "worker", "event_backlog", "outbound_backlog"):
        assert body["checks"][name] == {"ok": False, "skipped": "the database check failed"}
    assert_nothing_secret(json.dumps(body))
    assert readyz(client)[0] == 200


def test_the_database_check_writes_its_probe_row(client, pump):
    from console.models import ReadinessProbe

    assert not ReadinessProbe.objects.exists()
    readyz(client)
    first = ReadinessProbe.objects.get().beat_at
    readyz(client)
    assert ReadinessProbe.objects.count() == 1 and ReadinessProbe.objects.get().beat_at > first


def test_migrations_report_ok_and_an_unapplied_one_is_named_once_the_cached_answer_expires(client, pump):
    status, body = readyz(client)
    assert status == 200 and body["checks"]["migrations"] == {"ok": True, "unapplied": 0, "cached": False}
    assert readyz(client)[1]["checks"]["migrations"]["cached"] is True

    recorder = MigrationRecorder(connection)
    recorder.record_unapplied("console", "0006_readiness_probe")
    try:
        assert readyz(client)[0] == 200, "within READY_MIGRATIONS_CACHE_SECONDS the answer is the cached one"
        readiness.forget_migrations()
        status, body = readyz(client)
        assert status == 503 and body["failing"] == ["migrations"]
        assert body["checks"]["migrations"]["first_unapplied"] == "console.0006_readiness_probe"
    finally:
        recorder.record_applied("console", "0006_readiness_probe")
    with override_settings(READY_MIGRATIONS_CACHE_SECONDS=0):
        assert readyz(client)[0] == 200


def test_healthz_is_liveness_only_and_never_touches_the_database(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]


def test_readyz_needs_no_login_and_is_exempt_from_the_https_redirect(client, pump, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/login/").status_code == 301


def test_the_readiness_command_prints_the_checks_and_exits_1_when_not_ready(db):
    out = StringIO()
    with pytest.raises(CommandError, match="not ready: worker"):
        call_command("readiness", stdout=out)
    assert "worker            FAILED" in out.getvalue()
    Pump(tag="readyz-test").beat()
    out = StringIO()
    call_command("readiness", "--json", stdout=out)
    body = json.loads(out.getvalue())
    assert body["status"] == "ok" and body["failing"] == []
