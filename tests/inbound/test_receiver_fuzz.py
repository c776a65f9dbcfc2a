"""Property: whatever arrives at the receiver, it never answers 500 and always records a Delivery."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.models import Delivery, Event
from tests.factories import ShopFactory
from tests.inbound.conftest import DOMAIN, SECRET, sign

HEADER_NAMES = [
    "X-Shopify-Topic",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Shop-Domain",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Event-Id",
    "X-Shopify-Triggered-At",
    "X-Shopify-API-Version",
    "Content-Type",
]
header_values = st.one_of(
    st.text(max_size=300),
    st.sampled_from(
        ["", " ", DOMAIN, DOMAIN.upper(), "orders/create", "2026-10", "not-a-date", "2026-13-45T99:99:99Z"]
    ),
    st.binary(max_size=50).map(lambda b: b.decode("latin-1")),
)
headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=len(HEADER_NAMES))
bodies = st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(str.encode), st.just(b"{}"), st.just(b""))


@pytest.fixture
def shop(db):
    return ShopFactory(domain=DOMAIN, webhook_secret=SECRET)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, sent=headers, sign_it=st.booleans(), method=st.sampled_from(["post", "post", "post", "put", "get"]))
def test_never_a_500_and_always_recorded(client, shop, body, sent, sign_it, method):
    if sign_it:
        sent = {**sent, "X-Shopify-Hmac-Sha256": sign(body)}
    before = Delivery.objects.count()
    meta = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in sent.items() if name != "Content-Type"}
    response = client.generic(
        method.upper(),
        "/webhooks/shopify",
        data=body,
        content_type=sent.get("Content-Type") or "application/json",
        **meta,
    )
    assert response.status_code in (200, 401, 405, 413)
    assert Delivery.objects.count() == before + 1
    delivery = Delivery.objects.order_by("-id").first()
    assert delivery.response_status == response.status_code
    if response.status_code == 200:
        assert delivery.event is not None and delivery.signature_valid is True
    else:
        assert delivery.event is None and delivery.reason


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(min_size=1, max_size=3000))
def test_signed_garbage_is_stored_and_fails_processing_without_crashing(client, shop, body):
    from integrations.processing.pump import process_event

    webhook_id = f"fuzz-{Delivery.objects.count()}"
    response = client.post(
        "/webhooks/shopify",
        data=body,
        content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC="orders/updated",
        HTTP_X_SHOPIFY_SHOP_DOMAIN=DOMAIN,
        HTTP_X_SHOPIFY_WEBHOOK_ID=webhook_id,
        HTTP_X_SHOPIFY_HMAC_SHA256=sign(body),
    )
    assert response.status_code == 200
    event = Event.objects.get(webhook_id=webhook_id)
    status = process_event(event)
    assert status in (Event.Status.FAILED, Event.Status.PROCESSED)
    event.refresh_from_db()
    if status == Event.Status.FAILED:
        assert event.status_reason
