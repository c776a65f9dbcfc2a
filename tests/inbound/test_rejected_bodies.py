"""Unauthenticated requests cannot fill the disk: a request that did not verify keeps only the
start of its body (with the whole body's size and SHA-256), rejected deliveries are deleted after
the retention by the worker's schedule, and a spike of rejections shows on the dashboard."""

import hashlib
from datetime import timedelta

import pytest
import requests
from django.urls import reverse
from django.utils import timezone

from integrations import tasks
from integrations.eventlog.dashboard import dashboard_stats
from integrations.inbound.retention import purge_rejected_deliveries
from integrations.models import Delivery, Event
from tests.factories import DeliveryFactory, ShopFactory
from tests.inbound.conftest import DOMAIN, SECRET, order_payload, shopify_headers
from tests.inbound.test_hostile_values import post

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(db):
    return ShopFactory(domain=DOMAIN, webhook_secret=SECRET)


def big_body(size: int) -> bytes:
    return order_payload(note="x" * size)[:size] if size else b""


# --- Only a prefix of what did not verify -------------------------------------------------------


def test_default_prefix_is_small(settings):
    assert settings.WEBHOOK_REJECTED_BODY_PREFIX_BYTES <= 64 * 1024


@pytest.mark.parametrize(
    "sent",
    [
        {"domain": "nobody.myshopify.com"},  # unknown shop
        {"sign_it": False},  # bad signature
        {"webhook_id": ""},  # missing header
    ],
)
def test_an_anonymous_oversized_request_stores_at_most_the_configured_prefix(client, shop, settings, sent):
    settings.WEBHOOK_REJECTED_BODY_PREFIX_BYTES = 1000
    body = big_body(3 * 1024 * 1024)
    assert post(client, body, **sent).status_code == 401
    delivery = Delivery.objects.get()
    assert bytes(delivery.body) == body[:1000] and delivery.body_truncated is True
    assert delivery.body_size == len(body) and delivery.body_sha256 == hashlib.sha256(body).hexdigest()


def test_a_rejected_body_within_the_prefix_is_kept_whole(client, shop):
    body = order_payload()
    assert post(client, body, sign_it=False).status_code == 401
    delivery = Delivery.objects.get()
    assert bytes(delivery.body) == body and delivery.body_truncated is False
    assert delivery.body_sha256 == hashlib.sha256(body).hexdigest()


def test_a_verified_body_is_stored_whole_above_the_prefix(client, shop, settings):
    settings.WEBHOOK_REJECTED_BODY_PREFIX_BYTES = 1000
    body = order_payload(note="x" * 500_000)
    assert post(client, body).status_code == 200
    delivery = Delivery.objects.get()
    assert bytes(delivery.body) == body and delivery.body_size == len(body) and delivery.body_truncated is False


def test_five_anonymous_ten_megabyte_posts_store_a_few_kilobytes(console_shop, live_server, settings):
    """The issue's example, over real HTTP: it stored 50 MB."""
    body = big_body(settings.WEBHOOK_MAX_BODY_BYTES)
    headers = {**shopify_headers(body, domain="nobody.myshopify.com"), "X-Shopify-Hmac-Sha256": "bad"}
    for _ in range(5):
        response = requests.post(f"{live_server.url}/webhooks/shopify", data=body, headers=headers, timeout=30)
        assert response.status_code == 401
    stored = [len(bytes(b)) for b in Delivery.objects.values_list("body", flat=True)]
    assert stored == [settings.WEBHOOK_REJECTED_BODY_PREFIX_BYTES] * 5
    assert set(Delivery.objects.values_list("body_size", flat=True)) == {len(body)}


def test_the_rejected_delivery_page_shows_the_hash_of_a_cut_body(client, shop, support_user, settings):
    settings.WEBHOOK_REJECTED_BODY_PREFIX_BYTES = 100
    body = big_body(5000)
    post(client, body, sign_it=False)
    delivery = Delivery.objects.get()
    client.force_login(support_user)
    html = client.get(reverse("events:delivery", args=[delivery.pk])).content.decode()
    assert hashlib.sha256(body).hexdigest() in html and "only its start is kept" in html


# --- Retention ----------------------------------------------------------------------------------


def test_old_rejected_deliveries_are_purged_in_batches(settings):
    settings.WEBHOOK_REJECTED_RETENTION_DAYS = 7
    now = timezone.now()
    old = [DeliveryFactory(event=None, received_at=now - timedelta(days=8, minutes=i)) for i in range(7)]
    recent = DeliveryFactory(event=None, received_at=now - timedelta(days=6))
    accepted = DeliveryFactory(received_at=now - timedelta(days=300))  # belongs to its Event: never purged

    assert purge_rejected_deliveries(now=now, batch_size=2, max_batches=2) == 4
    assert Delivery.objects.filter(pk__in=[d.pk for d in old]).count() == 3
    assert purge_rejected_deliveries(now=now, batch_size=2) == 3
    assert set(Delivery.objects.values_list("pk", flat=True)) == {recent.pk, accepted.pk}
    assert Event.objects.filter(pk=accepted.event_id).exists()
    assert purge_rejected_deliveries(now=now) == 0


def test_retention_of_zero_keeps_rejected_deliveries(settings):
    settings.WEBHOOK_REJECTED_RETENTION_DAYS = 0
    DeliveryFactory(event=None, received_at=timezone.now() - timedelta(days=3000))
    assert purge_rejected_deliveries() == 0 and Delivery.objects.count() == 1


def test_the_once_a_minute_schedule_purges(settings):
    settings.EVENT_PUMP_THREADS = 0  # no pump thread in a test
    settings.OUTBOUND_SENDER_THREADS = 0  # nor a sender
    settings.WEBHOOK_REJECTED_RETENTION_DAYS = 1
    DeliveryFactory(event=None, received_at=timezone.now() - timedelta(days=2))
    tasks.ensure_pump()
    assert not Delivery.objects.exists()


# --- A spike on the dashboard --------------------------------------------------------------------


def _rejected(n: int, hours_ago: float) -> None:
    at = timezone.now() - timedelta(hours=hours_ago)
    Delivery.objects.bulk_create(
        [Delivery(outcome="rejected", response_status=401, reason="HMAC", received_at=at) for _ in range(n)]
    )


def test_a_spike_of_rejections_is_flagged_on_the_dashboard(client, support_user):
    client.force_login(support_user)
    _rejected(3, hours_ago=0.2)
    assert dashboard_stats()["rejected_spike"] is False  # a few is not a spike
    assert "Spike:" not in client.get(reverse("dashboard")).content.decode()
    _rejected(40, hours_ago=0.1)
    stats = dashboard_stats()
    assert stats["rejected_last_hour"] == 43 and stats["rejected_spike"] is True
    assert "Spike:" in client.get(reverse("dashboard")).content.decode()


def test_a_steady_rate_of_rejections_is_no_spike():
    for hour in range(1, 23):
        _rejected(30, hours_ago=hour + 0.5)
    _rejected(40, hours_ago=0.1)
    assert dashboard_stats()["rejected_spike"] is False
