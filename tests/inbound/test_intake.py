"""The webhook receiver over real HTTP, fed by the store simulator (and, for hand-made bodies,
by requests signed in the test)."""

import concurrent.futures

import psycopg
import pytest
import requests
from django.db import connection

from integrations.models import Delivery, Event, FulfillmentNotification, PlatformOrder
from integrations.processing.pump import process_pending
from tests.inbound.conftest import DOMAIN, order_payload, shopify_headers, sign
from tests.processes import wait_for


def _deliveries(count):
    return wait_for(lambda: Delivery.objects.count() >= count, timeout=20, message=f"{count} deliveries")


def test_valid_webhook_is_stored_verified_and_processed_once(simulator, console_shop, receiver_url):
    simulator.create_shop(receiver_url, topics=["orders/create", "orders/paid"])
    order = simulator.create_order(financial_status="paid")
    _deliveries(2)
    assert process_pending() >= 2
    create = Event.objects.get(topic="orders/create")
    assert create.status == Event.Status.PROCESSED and create.processed_count == 1 and create.delivery_count == 1
    assert create.resource_label == order["name"] and create.resource_id == str(order["id"])
    delivery = create.deliveries.get()
    assert delivery.signature_valid is True and delivery.response_status == 200 and delivery.outcome == "accepted"
    assert delivery.headers["X-Shopify-Topic"] == "orders/create" and bytes(delivery.body).startswith(b"{")
    assert PlatformOrder.objects.get(shopify_id=order["id"]).name == order["name"]
    assert FulfillmentNotification.objects.filter(order_shopify_id=order["id"]).count() == 1
    # A second pass finds nothing to do and changes nothing.
    assert process_pending() == 0
    assert Event.objects.get(pk=create.pk).processed_count == 1
    # The simulator saw 200s.
    assert {d["status"] for d in simulator.deliveries()} == {"delivered"}


def test_wrong_signature_is_rejected_with_401_and_never_processed(simulator, console_shop, receiver_url):
    simulator.create_shop(receiver_url, topics=["orders/create"])
    simulator.fault("wrong_signature")
    simulator.create_order()
    rejected = wait_for(lambda: Delivery.objects.filter(response_status=401).first(), message="a rejected delivery")
    assert rejected.outcome == Delivery.Outcome.REJECTED and rejected.signature_valid is False
    assert rejected.reason == "HMAC signature does not match" and rejected.event is None
    assert rejected.shop == console_shop and rejected.body  # kept for diagnosis
    assert not Event.objects.exists()
    assert process_pending() == 0 and not PlatformOrder.objects.exists()


def test_unknown_shop_is_rejected_with_401(simulator, transactional_db, receiver_url):
    simulator.create_shop(receiver_url, topics=["orders/create"])  # the console has no such shop
    simulator.create_order()
    rejected = wait_for(lambda: Delivery.objects.first(), message="a delivery")
    assert (rejected.response_status, rejected.outcome) == (401, Delivery.Outcome.REJECTED)
    assert rejected.reason == f"unknown shop {DOMAIN}" and rejected.shop is None
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "missing", ["X-Shopify-Hmac-Sha256", "X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id"]
)
def test_missing_headers_are_rejected_with_401(console_shop, receiver_url, missing):
    body = order_payload()
    headers = shopify_headers(body)
    del headers[missing]
    response = requests.post(receiver_url, data=body, headers=headers, timeout=5)
    assert response.status_code == 401
    delivery = Delivery.objects.get(reason__startswith="missing header")
    assert delivery.reason == f"missing header {missing}" and delivery.outcome == "rejected"
    assert not Event.objects.exists()


def test_secret_bearing_headers_are_redacted(console_shop, receiver_url):
    body = order_payload()
    headers = {**shopify_headers(body), "Authorization": "Bearer s3cr3t", "X-Shopify-Access-Token": "shpat_leak"}
    requests.post(receiver_url, data=body, headers=headers, timeout=5)
    stored = Delivery.objects.get().headers
    assert stored["Authorization"] == "[redacted]" and stored["X-Shopify-Access-Token"] == "[redacted]"
    assert "s3cr3t" not in str(stored) and "shpat_leak" not in str(stored)


def test_previous_secret_verifies_during_rotation(console_shop, receiver_url):
    from datetime import timedelta

    from django.utils import timezone

    console_shop.previous_webhook_secret = "old-secret-value-123"
    console_shop.previous_secret_retire_at = timezone.now() + timedelta(hours=1)
    console_shop.save()
    body = order_payload()
    response = requests.post(
        receiver_url, data=body, headers=shopify_headers(body, secret="old-secret-value-123"), timeout=5
    )
    assert response.status_code == 200


def test_same_webhook_five_times_makes_one_event_processed_once(simulator, console_shop, receiver_url):
    simulator.create_shop(receiver_url, topics=["orders/create"])
    simulator.fault("duplicate_delivery", params={"copies": 4})
    simulator.create_order()
    _deliveries(5)
    wait_for(lambda: Event.objects.filter(delivery_count=5).exists(), message="five deliveries counted")
    process_pending()
    event = Event.objects.get()
    assert (event.delivery_count, event.processed_count, event.status) == (5, 1, Event.Status.PROCESSED)
    outcomes = sorted(event.deliveries.values_list("outcome", flat=True))
    assert outcomes == ["accepted"] + ["duplicate"] * 4
    assert PlatformOrder.objects.count() == 1


def test_concurrent_duplicates_make_one_event(console_shop, receiver_url):
    """Five copies of one webhook at the same instant: the unique constraint keeps one Event."""
    if connection.vendor != "postgresql":
        pytest.skip("true concurrent writers need PostgreSQL (SQLite serialises every write)")
    body = order_payload()
    headers = shopify_headers(body, webhook_id="wh-concurrent")
    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        statuses = list(
            pool.map(
                lambda _: requests.post(receiver_url, data=body, headers=headers, timeout=10).status_code, range(5)
            )
        )
    assert statuses == [200] * 5
    event = Event.objects.get()
    assert event.delivery_count == 5 and event.deliveries.count() == 5
    process_pending()
    event.refresh_from_db()
    assert event.processed_count == 1 and PlatformOrder.objects.count() == 1


def _post_order(client, webhook_id: str, order_id: int = 5512345678901):
    body = order_payload(order_id=order_id)
    headers = shopify_headers(body, webhook_id=webhook_id)
    return client.post("/webhooks/shopify", body, content_type="application/json", headers=headers)


def _prepared_receiver_statements() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["WITH ev AS (INSERT%"])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("prepared", [True, False])
def test_postgresql_insert_is_one_prepared_statement_per_connection(
    client, console_shop, settings, monkeypatch, prepared
):
    """Parsing and planning the receiver's statement per webhook was most of its database time."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    settings.WEBHOOK_PREPARED_STATEMENT = prepared
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)  # persistent, as in production
    connection.close()  # a fresh connection: nothing prepared on it yet
    for number in range(3):
        response = _post_order(client, f"wh-prepared-{number}", order_id=5512345678901 + number)
        assert response.status_code == 200 and response.json()["status"] == "accepted"
    assert _prepared_receiver_statements() == (1 if prepared else 0)
    # Switched on for that one statement only: psycopg keeps no tally of Django's own queries.
    assert connection.connection.prepare_threshold is None
    assert Event.objects.count() == 3 and Delivery.objects.filter(outcome="accepted").count() == 3


def test_stale_prepared_statement_costs_one_503_then_recovers(client, console_shop, monkeypatch):
    """A migration from another process changes a column the prepared statement returns."""
    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 60)
    assert _post_order(client, "wh-stale-1").status_code == 200
    assert _prepared_receiver_statements() == 1

    def alter_outcome(length: int) -> None:
        db = connection.settings_dict
        params = {"dbname": db["NAME"], "user": db["USER"], "password": db["PASSWORD"], "host": db["HOST"]}
        with psycopg.connect(**params, port=db["PORT"] or 5432, autocommit=True) as other:
            other.execute(f"ALTER TABLE integrations_delivery ALTER COLUMN outcome TYPE varchar({length})")

    alter_outcome(20)
    try:
        stale = _post_order(client, "wh-stale-2", order_id=5512345678902)
        assert stale.status_code == 503  # so Shopify retries; nothing half-stored
        assert not Event.objects.filter(webhook_id="wh-stale-2").exists()
        retried = _post_order(client, "wh-stale-2", order_id=5512345678902)
        assert retried.status_code == 200 and retried.json()["status"] == "accepted"
    finally:
        alter_outcome(16)
    assert Delivery.objects.filter(webhook_id="wh-stale-2", response_status=200).count() == 1


def test_out_of_order_updates_keep_the_newest_state(simulator, console_shop, receiver_url):
    simulator.create_shop(receiver_url, topics=["orders/updated"])
    order = simulator.records("orders")[0]
    simulator.fault("out_of_order", params={"window": 0.5, "gap": 0.05})
    for tag in ("first", "second", "third"):
        simulator.control("PATCH", f"/shops/{DOMAIN}/records/orders/{order['id']}", changes={"tags": tag})
    _deliveries(3)
    arrival = [Event.objects.get(pk=pk) for pk in Delivery.objects.order_by("id").values_list("event_id", flat=True)]
    assert [e.triggered_at for e in arrival] != sorted(e.triggered_at for e in arrival), "simulator did not reorder"
    process_pending()
    assert PlatformOrder.objects.get(shopify_id=order["id"]).tags == "third"


def test_older_event_never_overwrites_newer_state(console_shop, receiver_url):
    newer = order_payload(updated_at="2026-05-04T12:00:00-04:00", tags="newer")
    older = order_payload(updated_at="2026-05-04T11:00:00-04:00", tags="older")
    requests.post(
        receiver_url, data=newer, headers=shopify_headers(newer, topic="orders/updated", webhook_id="a"), timeout=5
    )
    process_pending()
    requests.post(
        receiver_url, data=older, headers=shopify_headers(older, topic="orders/updated", webhook_id="b"), timeout=5
    )
    process_pending()
    assert PlatformOrder.objects.get().tags == "newer"
    assert Event.objects.get(webhook_id="b").status == Event.Status.PROCESSED  # processed: correctly a no-op


def test_non_json_body_with_valid_signature_is_kept_and_failed(console_shop, receiver_url):
    body = b"<html>not json</html>"
    response = requests.post(receiver_url, data=body, headers=shopify_headers(body), timeout=5)
    assert response.status_code == 200
    event = Event.objects.get()
    assert event.status == Event.Status.QUEUED
    process_pending()
    event.refresh_from_db()
    assert event.status == Event.Status.FAILED and "not valid JSON" in event.status_reason
    assert bytes(event.deliveries.get().body) == body


def test_unhandled_topic_is_kept_and_ignored_with_reason(console_shop, receiver_url):
    body = b'{"id": 1, "updated_at": "2026-05-04T10:00:00Z"}'
    assert (
        requests.post(
            receiver_url, data=body, headers=shopify_headers(body, topic="collections/update"), timeout=5
        ).status_code
        == 200
    )
    process_pending()
    event = Event.objects.get()
    assert event.status == Event.Status.IGNORED and "no handler for topic 'collections/update'" in event.status_reason


def test_oversize_body_gets_413_and_is_recorded_without_body(console_shop, receiver_url, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 1000
    body = order_payload(note="x" * 2000)
    response = requests.post(receiver_url, data=body, headers=shopify_headers(body), timeout=5)
    assert response.status_code == 413
    delivery = Delivery.objects.get()
    assert delivery.outcome == Delivery.Outcome.TOO_LARGE and delivery.body is None and delivery.body_size == len(body)
    assert not Event.objects.exists()


def test_get_is_answered_405_and_recorded(transactional_db, receiver_url):
    response = requests.get(receiver_url, timeout=5)
    assert response.status_code == 405
    assert Delivery.objects.get().reason.startswith("method GET not allowed")


def test_signature_is_checked_on_the_exact_bytes(console_shop, receiver_url):
    body = order_payload()
    headers = shopify_headers(body)
    reformatted = body.replace(b", ", b",")  # same JSON, different bytes
    assert requests.post(receiver_url, data=reformatted, headers=headers, timeout=5).status_code == 401
    assert (
        requests.post(
            receiver_url, data=body, headers={**headers, "X-Shopify-Hmac-Sha256": sign(body, "wrong")}, timeout=5
        ).status_code
        == 401
    )
    assert requests.post(receiver_url, data=body, headers=headers, timeout=5).status_code == 200
