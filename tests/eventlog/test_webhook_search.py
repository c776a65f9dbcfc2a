"""Finding a webhook: its id (or a prefix of 8 characters or more) finds its deliveries whatever the
status filter, ids are shown whole in the list, and the topic filter takes a topic's beginning.
On PostgreSQL, each prefix search is an index range, never a scan."""

import re

import pytest
from django.db import connection
from django.urls import reverse

from integrations.eventlog import selectors
from integrations.eventlog.filters import MIN_WEBHOOK_PREFIX, topic_suggestions
from integrations.jobs.registry import TOPIC_JOBS
from integrations.models import Delivery, Event
from tests.factories import DeliveryFactory, EventFactory, ShopFactory

pytestmark = pytest.mark.django_db

LIST = reverse("events:list")
REJECTED_ID = "5f0e1a2b-9c3d-4e5f-8a7b-6c5d4e3f2a1b"
ACCEPTED_ID = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


def events_in(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="event-(\d+)"', html)]


def deliveries_in(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="delivery-(\d+)"', html)]


@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def webhooks():
    shop = ShopFactory()
    accepted = EventFactory(shop=shop, webhook_id=ACCEPTED_ID, status=Event.Status.PROCESSED)
    DeliveryFactory(event=accepted)
    # A retry of the accepted webhook that failed verification first, and a webhook only ever refused.
    early = DeliveryFactory(event=None, webhook_id=ACCEPTED_ID, shop_domain=shop.domain, reason="bad HMAC")
    rejected = DeliveryFactory(event=None, webhook_id=REJECTED_ID, shop_domain=shop.domain, reason="bad HMAC")
    EventFactory(shop=shop, status=Event.Status.FAILED)  # noise
    DeliveryFactory(event=None, webhook_id="ffffffff-0000-4000-8000-000000000000")  # noise
    return {"shop": shop, "accepted": accepted, "early": early, "rejected": rejected}


# --- Whatever the status filter ------------------------------------------------------------------


@pytest.mark.parametrize("q", [REJECTED_ID, REJECTED_ID[:8], REJECTED_ID[:13], f"  {REJECTED_ID}  "])
def test_a_rejected_webhook_is_found_by_id_under_any_status(support, webhooks, q):
    html = support.get(LIST, {"q": q}).content.decode()
    assert deliveries_in(html) == [webhooks["rejected"].pk]
    assert events_in(html) == []
    assert "Rejected requests with this webhook id" in html
    assert "see above for the same webhook id in another status" in html


@pytest.mark.parametrize("status", ["failed", "processed", "queued", "ignored", "retry_wait", "claimed"])
def test_a_webhook_id_finds_its_deliveries_whatever_the_status_filter(support, webhooks, status):
    html = support.get(LIST, {"q": ACCEPTED_ID[:10], "status": status}).content.decode()
    # The rejected early request, and the event itself when the filter hides it.
    assert webhooks["early"].pk in deliveries_in(html)
    assert events_in(html) == [webhooks["accepted"].pk]
    html = support.get(LIST, {"q": REJECTED_ID, "status": status}).content.decode()
    assert deliveries_in(html) == [webhooks["rejected"].pk] and events_in(html) == []


def test_under_rejected_an_accepted_webhook_shows_its_event(support, webhooks):
    html = support.get(LIST, {"q": ACCEPTED_ID, "status": "rejected"}).content.decode()
    assert deliveries_in(html) == [webhooks["early"].pk]
    assert events_in(html) == [webhooks["accepted"].pk]
    assert "Accepted events with this webhook id" in html


def test_the_other_filters_still_apply_to_what_the_status_filter_hides(support, webhooks):
    other = ShopFactory()
    html = support.get(LIST, {"q": REJECTED_ID, "shop": other.domain}).content.decode()
    assert deliveries_in(html) == []
    html = support.get(LIST, {"q": REJECTED_ID, "topic": "products"}).content.decode()
    assert deliveries_in(html) == []


def test_searches_that_cannot_be_a_webhook_id_add_nothing(support, webhooks):
    DeliveryFactory(event=None, webhook_id="#1042")
    DeliveryFactory(event=None, webhook_id="gid://shopify/Order/1")
    for q in ("#1042", "gid://shopify/Order/1"):
        response = support.get(LIST, {"q": q})
        assert response.context["also"] == [] and deliveries_in(response.content.decode()) == []


def test_what_the_status_filter_hides_is_capped_with_a_link_to_the_rest(support):
    for n in range(selectors.ALSO_MAX_ROWS + 3):
        DeliveryFactory(event=None, webhook_id=f"{REJECTED_ID[:-2]}{n:02d}")
    html = support.get(LIST, {"q": REJECTED_ID[:20]}).content.decode()
    assert len(deliveries_in(html)) == selectors.ALSO_MAX_ROWS
    link = re.search(r'<a href="([^"]+)">all of them</a>', html).group(1).replace("&amp;", "&")
    assert "status=rejected" in link and f"q={REJECTED_ID[:20]}" in link
    assert len(deliveries_in(support.get(link).content.decode())) == selectors.ALSO_MAX_ROWS + 3


def test_the_live_poll_keeps_to_the_main_rows(support, webhooks):
    html = support.get(reverse("events:poll"), {"q": REJECTED_ID, "after": 0}).content.decode()
    assert deliveries_in(html) == []  # the poll adds rows of the list's own kind only


# --- Prefixes ------------------------------------------------------------------------------------


def test_a_prefix_needs_8_characters(support, webhooks):
    assert MIN_WEBHOOK_PREFIX == 8
    assert events_in(support.get(LIST, {"q": ACCEPTED_ID[:8]}).content.decode()) == [webhooks["accepted"].pk]
    assert events_in(support.get(LIST, {"q": ACCEPTED_ID[:7]}).content.decode()) == []
    status_rejected = {"status": "rejected"}
    assert deliveries_in(support.get(LIST, {"q": REJECTED_ID[:8], **status_rejected}).content.decode()) == [
        webhooks["rejected"].pk
    ]
    assert deliveries_in(support.get(LIST, {"q": REJECTED_ID[:7], **status_rejected}).content.decode()) == []
    # A short id is still found whole.
    short = EventFactory(webhook_id="wh-1")
    assert events_in(support.get(LIST, {"q": "wh-1"}).content.decode()) == [short.pk]


@pytest.mark.parametrize("q", ["b54557e4%", "b54557e4_bdd9", "b5455%e4", "b54557e4\\", "________"])
def test_like_wildcards_in_a_prefix_are_literal(support, webhooks, q):
    assert events_in(support.get(LIST, {"q": q}).content.decode()) == []


def test_a_digits_only_prefix_is_a_webhook_id_too(support):
    event = EventFactory(webhook_id="12345678-1234-4234-8234-123456789012")
    assert events_in(support.get(LIST, {"q": "12345678"}).content.decode()) == [event.pk]


def test_an_id_longer_than_the_column_is_searched_as_the_receiver_stores_it():
    """Longer than the column, an id is stored in a form of its own: webhook_id_match knows it."""
    from integrations.models import webhook_id_match

    ShopFactory()
    long_id = "x" * 150
    assert selectors.webhook_search(long_id) == webhook_id_match(long_id)
    assert selectors.webhook_search(long_id[:100]) != webhook_id_match(long_id[:100])  # fits: a prefix range


# --- Ids shown whole -------------------------------------------------------------------------------


def test_ids_are_shown_whole_and_selectable_in_the_list(support, webhooks):
    long_id = "f" * 64 + "-0000-4000-8000-000000000000"
    event = EventFactory(webhook_id=long_id)
    html = support.get(LIST).content.decode()
    assert f'<code class="id" title="Webhook id {long_id}">{long_id}</code>' in html
    assert f'<code class="id" title="Webhook id {ACCEPTED_ID}">{ACCEPTED_ID}</code>' in html
    row = re.search(rf'id="event-{event.pk}".*?</tr>', html, re.S).group(0)
    assert "…" not in row and row.count(long_id) == 2  # the title and the text, neither cut
    html = support.get(LIST, {"status": "rejected"}).content.decode()
    assert f'<code class="id" title="Webhook id {REJECTED_ID}">{REJECTED_ID}</code>' in html


def test_the_row_still_links_to_its_page(support, webhooks):
    html = support.get(LIST).content.decode()
    assert f'href="{reverse("events:detail", args=[webhooks["accepted"].pk])}"' in html
    html = support.get(LIST, {"status": "rejected"}).content.decode()
    assert f'href="{reverse("events:delivery", args=[webhooks["rejected"].pk])}"' in html


# --- Topics ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("orders", ["orders/create", "orders/paid", "orders/updated"]),
        ("orders/", ["orders/create", "orders/paid", "orders/updated"]),
        ("orders/p", ["orders/paid"]),
        ("orders/paid", ["orders/paid"]),
        ("  products ", ["products/update"]),
        ("order_", []),
        ("%", []),
        ("Orders", []),
    ],
)
def test_the_topic_filter_matches_a_prefix(support, topic, expected):
    shop = ShopFactory()
    for name in ("orders/create", "orders/paid", "orders/updated", "products/update", "customers/update"):
        EventFactory(shop=shop, topic=name)
    response = support.get(LIST, {"topic": topic})
    assert sorted(row.topic for row in response.context["page"].rows) == expected


def test_the_topic_prefix_applies_to_rejected_requests(support):
    kept = DeliveryFactory(event=None, topic="orders/paid")
    DeliveryFactory(event=None, topic="products/update")
    assert deliveries_in(support.get(LIST, {"status": "rejected", "topic": "orders"}).content.decode()) == [kept.pk]


def test_known_topics_are_offered_with_their_resources(support):
    suggestions = dict(topic_suggestions())
    for topic in TOPIC_JOBS:
        assert suggestions[topic] == topic
    assert suggestions["orders"] == "every orders/… topic"
    html = support.get(LIST).content.decode()
    datalist = re.search(r'<datalist id="topic-list">(.*?)</datalist>', html, re.S).group(1)
    assert '<option value="orders" label="every orders/… topic">' in datalist
    assert '<option value="inventory_levels/connect">' in datalist
    assert 'list="topic-list"' in html


# --- Plans -----------------------------------------------------------------------------------------


def _a_realistic_log(events: int = 6000, shops: int = 3) -> None:
    """Enough rows, spread like a real log, for the planner to choose as it does at scale: on a
    near-empty table any index (or none) is as good as another, and plans are a coin toss."""
    import uuid

    # Orders are a small share here, as in a log dominated by inventory and product traffic: a
    # prefix matching most of the log is rightly read through the primary key instead.
    topics = ["orders/create", "orders/paid"] + ["inventory_levels/update"] * 30 + ["products/update"] * 18
    owners = ShopFactory.create_batch(shops)
    Event.objects.bulk_create(
        Event(
            shop=owners[n % shops],
            webhook_id=str(uuid.UUID(int=n * 7919 + 1)),
            topic=topics[n % len(topics)],
            status=Event.Status.FAILED,
        )
        for n in range(events)
    )
    Delivery.objects.bulk_create(
        Delivery(webhook_id=str(uuid.UUID(int=n * 104729 + 3)), outcome="rejected", response_status=401)
        for n in range(events // 3)
    )


def _plan(queryset) -> str:
    with connection.cursor() as cursor:
        # Statistics from this test's rows only: what earlier tests left in the planner's
        # statistics (autovacuum's ANALYZE of their rows) must not change the plan.
        cursor.execute("ANALYZE integrations_event")
        cursor.execute("ANALYZE integrations_delivery")
        cursor.execute("SET LOCAL enable_seqscan = off")  # inside the test's transaction
    return queryset.explain()


@pytest.mark.parametrize(
    ("queryset", "index"),
    [
        pytest.param(
            lambda: Event.objects.filter(selectors.event_search(ACCEPTED_ID[:8])),
            "int_event_unique_webhook",
            id="events by webhook id prefix",
        ),
        pytest.param(
            lambda: Event.objects.filter(selectors.event_search("12345678")),
            "int_event_unique_webhook",
            id="events by a digits-only prefix",
        ),
        pytest.param(
            lambda: selectors.build_log_query({"status": "rejected", "q": REJECTED_ID[:8]}).queryset,
            "int_delivery_webhook_idx",
            id="rejected requests by webhook id prefix",
        ),
        pytest.param(
            lambda: selectors.build_log_query({"q": REJECTED_ID[:8]}).also[0].queryset,
            "int_delivery_webhook_idx",
            id="rejected requests under Any",
        ),
        pytest.param(
            lambda: selectors.build_log_query({"topic": "orders"}).queryset.filter(pk__lt=10**6),
            "int_event_topic_idx",
            id="events by topic prefix",
        ),
    ],
)
def test_prefix_searches_are_index_ranges(queryset, index):
    """Not just "no Seq Scan": the prefix itself is the index condition (a range), so the search
    reads the matching entries only, however large the log."""
    if connection.vendor != "postgresql":
        pytest.skip("planner behaviour is PostgreSQL's")
    _a_realistic_log()
    plan = _plan(queryset())
    assert "Seq Scan" not in plan, plan
    assert index in plan, plan
    column = "topic" if "topic" in index else "webhook_id"
    conditions = [line for line in plan.splitlines() if "Index Cond" in line and column in line]
    assert conditions and ">=" in conditions[0] and "<" in conditions[0], plan


def test_a_prefix_range_finds_exactly_the_prefixed_ids():
    """Ids around the range's ends: the neighbours of the prefix, a character above it, the top one."""
    shop = ShopFactory()
    ids = [
        "abcdefgh",
        "abcdefgh-1",
        "abcdefgh\U0010fffe",
        "abcdefgi",
        "abcdefg",
        "abcdefgg-9",
        "ABCDEFGH-2",
        "abcdefgh~",
    ]
    for webhook_id in ids:
        EventFactory(shop=shop, webhook_id=webhook_id)
        Delivery.objects.create(webhook_id=webhook_id, outcome="rejected", response_status=401)
    found = set(Event.objects.filter(selectors.event_search("abcdefgh")).values_list("webhook_id", flat=True))
    assert found == {"abcdefgh", "abcdefgh-1", "abcdefgh\U0010fffe", "abcdefgh~"}
    rejected = selectors.build_log_query({"status": "rejected", "q": "abcdefgh"}).queryset
    assert set(rejected.values_list("webhook_id", flat=True)) == found
