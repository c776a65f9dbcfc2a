"""Values no column or `datetime` can hold: signed webhooks carrying them are accepted and
stored (the raw value kept, the typed column empty), the pump fails only the event that carries
one, with a reason, and leaves nothing claimed, and no page answers 500 because of one."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations.inbound.values import EARLIEST, LATEST, storable_datetime, storable_text
from integrations.models import Delivery, Event
from integrations.processing.pump import process_pending
from tests.factories import ShopFactory
from tests.inbound.conftest import DOMAIN, SECRET, sign

pytestmark = pytest.mark.django_db

BIGINT = 2**63


@pytest.fixture
def shop(db):
    return ShopFactory(domain=DOMAIN, webhook_secret=SECRET)


@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    return client


def post(client, body: bytes, *, domain=DOMAIN, topic="orders/create", webhook_id="wh-1", sign_it=True, **headers):
    meta = {
        "HTTP_X_SHOPIFY_TOPIC": topic,
        "HTTP_X_SHOPIFY_SHOP_DOMAIN": domain,
        "HTTP_X_SHOPIFY_WEBHOOK_ID": webhook_id,
        "HTTP_X_SHOPIFY_HMAC_SHA256": sign(body) if sign_it else "bad",
        **{f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()},
    }
    return client.post("/webhooks/shopify", data=body, content_type="application/json", **meta)


def pages_answer(client, delivery: Delivery, **filters) -> None:
    """Every event-log page that shows this delivery or its event answers without a 500."""
    urls = [
        (reverse("events:list"), {}),
        (reverse("events:list"), {"status": "rejected"}),
        (reverse("events:list"), filters),
        (reverse("events:list"), {"status": "rejected", **filters}),
        (reverse("events:poll"), {"after": 0}),
        (reverse("events:poll"), {"after": 0, "status": "rejected"}),
        (reverse("events:delivery", args=[delivery.pk]), {}),
    ]
    if delivery.event_id:
        urls.append((reverse("events:detail", args=[delivery.event_id]), {}))
    for url, params in urls:
        response = client.get(url, params)
        # A filter the form refuses may be answered 400; never a 500.
        assert response.status_code in (200, 302, 400), (url, params, response.status_code)
        assert params or response.status_code in (200, 302), (url, response.status_code)
    assert client.get(reverse("dashboard")).status_code == 200
    for params in ({}, filters):
        export = client.get(reverse("events:export"), params)
        assert export.status_code in (200, 400) and (export.status_code == 400 or b"".join(export.streaming_content))


def order(**fields) -> bytes:
    payload = {
        "id": 5512345678901,
        "admin_graphql_api_id": "gid://shopify/Order/5512345678901",
        "name": "#1042",
        "order_number": 1042,
        "updated_at": "2026-05-04T10:15:04-04:00",
        "financial_status": "paid",
        "line_items": [],
    }
    payload.update(fields)
    return json.dumps(payload).encode()


# --- The examples in the issue ------------------------------------------------------------------

OUT_OF_RANGE_TIMES = [
    "0001-01-01T00:00:00+14:00",  # 1 BC in UTC: PostgreSQL stored it, then no read of the row worked
    "0001-01-01T00:00:00.000000001+00:01",
    "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
    "9999-12-31T23:59:59.999999999Z",  # one day from the end: no time zone could show it
    "0001-01-01T00:00:00Z",
    "0000-01-01T00:00:00Z",
    "2026-05-04T14:15:04+99:00",
    "2026-02-30T00:00:00Z",
]


@pytest.mark.parametrize("sent", OUT_OF_RANGE_TIMES)
def test_a_trigger_time_out_of_range_is_stored_raw_with_the_typed_column_empty(client, shop, support_user, sent):
    response = post(client, order(), **{"X-Shopify-Triggered-At": sent})
    assert response.status_code == 200
    delivery = Delivery.objects.get()
    assert delivery.headers["X-Shopify-Triggered-At"] == sent
    assert delivery.event.triggered_at is None
    assert process_pending() == 1
    assert Event.objects.get().status == Event.Status.PROCESSED
    client.force_login(support_user)
    pages_answer(client, delivery, q="wh-1")


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("0001-01-02T00:00:00Z", datetime(1, 1, 2, tzinfo=UTC)),
        ("9999-12-30T23:59:59.999999-00:00", LATEST),
        ("0001-01-02T14:00:00+14:00", EARLIEST),
    ],
)
def test_the_extremes_that_fit_are_kept(client, shop, support_user, sent, stored):
    assert post(client, order(), **{"X-Shopify-Triggered-At": sent}).status_code == 200
    assert Event.objects.get().triggered_at == stored
    client.force_login(support_user)
    pages_answer(client, Delivery.objects.get())


def test_storable_datetime_bounds():
    assert storable_datetime(EARLIEST) == EARLIEST and storable_datetime(LATEST) == LATEST
    assert storable_datetime(EARLIEST - timedelta(microseconds=1)) is None
    assert storable_datetime(LATEST + timedelta(microseconds=1)) is None
    assert storable_datetime(datetime(2026, 5, 4, 10, 0)) == datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("orders/updated", {"updated_at": "0001-01-01T00:00:00+14:00"}, "out of range updated_at"),
        ("orders/updated", {"updated_at": "9999-12-31T23:59:59-14:00"}, "out of range updated_at"),
        ("orders/create", {"id": BIGINT}, ""),
        ("orders/create", {"id": 2**200}, ""),
        ("orders/create", {"order_number": -BIGINT - 1}, ""),
        ("orders/create", {"customer": {"id": 2**64}}, ""),
        ("orders/create", {"name": "#10\x0042"}, ""),
        ("orders/create", {"id": float("inf")}, ""),
        (
            "inventory_levels/update",
            {"inventory_item_id": BIGINT, "location_id": 1, "available": 1, "updated_at": "2026-05-04T10:00:00Z"},
            "",
        ),
        (
            "inventory_levels/update",
            {"inventory_item_id": 1, "location_id": 1, "available": 2**64, "updated_at": "2026-05-04T10:00:00Z"},
            "",
        ),
    ],
)
def test_a_payload_value_out_of_range_fails_only_its_event(client, shop, support_user, topic, payload, reason):
    """One batch: a good event, the poison one, another good one. The pump falls back to one event
    per transaction, so only the poison one fails, with its reason, and nothing stays claimed."""
    good = order()
    assert post(client, good, webhook_id="good-1").status_code == 200
    body = json.dumps(payload if topic.startswith("inventory") else json.loads(order(**payload))).encode()
    assert post(client, body, topic=topic, webhook_id="poison").status_code == 200
    assert post(client, order(id=5512345678902), webhook_id="good-2").status_code == 200

    assert process_pending() == 3
    assert not Event.objects.filter(status__in=Event.IN_FLIGHT_STATUSES).exists()
    statuses = dict(Event.objects.values_list("webhook_id", "status"))
    assert statuses["good-1"] == statuses["good-2"] == Event.Status.PROCESSED
    poison = Event.objects.get(webhook_id="poison")
    if poison.status == Event.Status.FAILED:
        assert poison.status_reason and reason in poison.status_reason
    else:  # SQLite holds any 64-bit integer, where PostgreSQL's integer columns refuse it
        assert connection.vendor == "sqlite" and not reason and poison.status == Event.Status.PROCESSED
    client.force_login(support_user)
    pages_answer(client, poison.deliveries.get(), q="poison")
    assert client.get(reverse("events:list"), {"q": str(BIGINT)}).status_code == 200


def test_an_event_whose_resource_cannot_be_written_still_fails_and_is_released(client, shop, monkeypatch):
    """Even when the database refuses what the run read from the payload, and so the first
    attempt to write the failure too, the event ends failed, not claimed by a live pump."""
    from integrations.processing import runner

    assert post(client, order()).status_code == 200
    real = runner.describe_resource

    def unwritable(topic, payload):
        resource = real(topic, payload)
        resource.updated_at = "not a time"  # refused by every write of the event
        return resource

    monkeypatch.setattr(runner, "describe_resource", unwritable)
    process_pending()
    event = Event.objects.get()
    assert event.status == Event.Status.FAILED and event.claimed_by == "" and event.status_reason


# --- The property ---------------------------------------------------------------------------------

offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: "Z" if m == 0 else f"{'+' if m > 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
)
times = st.one_of(
    st.builds(lambda moment, zone: moment.isoformat() + zone, st.datetimes(), offsets),
    st.builds(
        lambda moment, zone: moment.isoformat() + zone,
        st.one_of(
            st.datetimes(max_value=datetime(1, 1, 3)),
            st.datetimes(min_value=datetime(9999, 12, 29)),
        ),
        offsets,
    ),
    st.sampled_from([*OUT_OF_RANGE_TIMES, "", "soon", "2026-05-04T14:15:04.290670248Z", "10000-01-01T00:00:00Z"]),
    st.text(max_size=40),
)
integers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31 - 1, 2**31, 2**32, BIGINT - 1, BIGINT, 2**64, -BIGINT - 1, 0, -1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.none(),
)
# What WSGI hands us: header bytes decoded as latin-1, NUL included.
header_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255, exclude_characters="\r\n"))
ids = st.one_of(
    st.integers(min_value=1, max_value=400).map(lambda n: "w" * n),
    st.builds(lambda n, tail: "x" * n + tail, st.integers(min_value=90, max_value=110), header_text),
    header_text.filter(str.strip),
)
topics = st.one_of(
    st.sampled_from(["orders/create", "orders/updated", "orders/paid", "inventory_levels/update", "products/update"]),
    header_text.filter(str.strip),
    st.just("orders/" + "x" * 300),
)
domains = st.one_of(
    st.just(DOMAIN),
    st.just(DOMAIN),
    st.integers(min_value=0, max_value=400).map(lambda n: "d" * n + ".myshopify.com"),
    header_text,
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "id": integers,
        "updated_at": times,
        "order_number": integers,
        "inventory_item_id": integers,
        "location_id": integers,
        "available": integers,
        "name": st.text(max_size=120),
        "customer": st.fixed_dictionaries({"id": integers}),
        "variants": st.lists(st.fixed_dictionaries({"id": integers, "updated_at": times}), max_size=2),
    },
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    payload=payloads,
    triggered_at=times,
    webhook_id=ids,
    event_id=st.one_of(integers.map(str), header_text),
    api_version=st.one_of(st.just("2026-10"), header_text),
    topic=topics,
    domain=domains,
)
def test_hostile_values_never_500_always_stored_never_stuck(
    client, shop, support_user, payload, triggered_at, webhook_id, event_id, api_version, topic, domain
):
    body = json.dumps(payload).encode()
    before = Delivery.objects.count()
    response = post(
        client,
        body,
        domain=domain,
        topic=topic,
        webhook_id=webhook_id,
        **{
            "X-Shopify-Triggered-At": triggered_at,
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-API-Version": api_version,
        },
    )
    known = domain.strip().lower() == DOMAIN
    assert response.status_code == (200 if known else 401), response.content
    assert Delivery.objects.count() == before + 1
    delivery = Delivery.objects.order_by("-id").first()
    assert delivery.response_status == response.status_code
    if known:
        assert delivery.event is not None and delivery.signature_valid is True
        # The whole id as sent, whatever the column holds.
        assert delivery.headers["X-Shopify-Webhook-Id"] == storable_text(webhook_id)
        assert len(delivery.webhook_id) <= 100 and delivery.event.webhook_id == delivery.webhook_id

    process_pending()
    assert not Event.objects.filter(status=Event.Status.CLAIMED).exists()
    for status, reason in Event.objects.values_list("status", "status_reason"):
        assert status != Event.Status.FAILED or reason

    client.force_login(support_user)
    pages_answer(client, delivery, q=webhook_id[:255].strip(), topic=topic[:100].strip(), shop=DOMAIN)


# --- Rows stored before the range checks ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_clears_times_postgresql_stored_but_cannot_hand_back(client, support_user):
    """PostgreSQL took `0001-01-01T00:00:00+14:00` (1 BC in UTC); every read of the row then
    failed. Migration 0010 empties such typed columns (the raw header is still in the delivery)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite never stored them: its adapter refused to convert them to UTC")
    from django.db.migrations.executor import MigrationExecutor

    from integrations.models import PlatformOrder

    shop = ShopFactory(domain=DOMAIN, webhook_secret=SECRET)
    assert post(client, order(), **{"X-Shopify-Triggered-At": "0001-01-01T00:00:00+14:00"}).status_code == 200
    assert process_pending() == 1
    event_id = Event.objects.values_list("id", flat=True).get()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE integrations_event SET triggered_at = '0001-01-01 00:00:00+14', "
            "resource_updated_at = '10000-01-01 00:00:00+00' WHERE id = %s",
            [event_id],
        )
        cursor.execute("UPDATE integrations_platformorder SET shopify_updated_at = '0001-01-01 00:00:00+14'")
    executor = MigrationExecutor(connection)
    executor.migrate([("integrations", "0009_privacy_export_permission")])
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())  # every app: worksheets depends on integrations

    event = Event.objects.get(pk=event_id)
    assert event.triggered_at is None and event.resource_updated_at is None
    assert PlatformOrder.objects.get(shop=shop).shopify_updated_at == EARLIEST
    client.force_login(support_user)
    pages_answer(client, event.deliveries.get())
