"""Webhook subscriptions against the simulator over real HTTP: the console goes down, Shopify (the
simulator) gives up on a topic's deliveries and removes its subscription; the next check reports it
missing with the gap window from the last webhook of that topic we received; re-subscribe (an
audited `webhook.subscribe` call) restores it, the next check closes the gap, and deliveries of the
topic reach the console again."""

from urllib.parse import urlsplit

import pytest

from console.models import AuditEntry
from integrations.jobs.registry import TOPIC_JOBS
from integrations.models import Event, HealthCheck, OutboundCall, SubscriptionGap
from integrations.shops.subscriptions import (
    EXPECTED_TOPICS,
    PRIVACY_TOPICS,
    SubscriptionError,
    check_subscriptions,
    gap_window,
    resubscribe,
    topic_enum,
    topic_name,
)
from tests.outbound.conftest import simulator, store_factory  # noqa: F401 (fixtures)
from tests.processes import TcpProxy, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
TOPIC = "customers/update"


@pytest.fixture
def console(live_server, settings):
    """The console's receiver behind a proxy that can be cut off (a real outage for the
    simulator); CONSOLE_WEBHOOK_URL is the proxy's address."""
    parts = urlsplit(live_server.url)
    proxy = TcpProxy(parts.hostname, parts.port)
    settings.CONSOLE_WEBHOOK_URL = f"http://127.0.0.1:{proxy.port}/webhooks/shopify"
    yield proxy
    proxy.down()


@pytest.fixture
def wired(store_factory, console, settings):  # noqa: F811
    """A shop whose simulator sends its webhooks to this test's console (through the proxy)."""
    return store_factory(records=40, webhook_url=settings.CONSOLE_WEBHOOK_URL)


def edit_customer(sim, customer: dict, note: str) -> None:
    sim.control("PATCH", f"/records/customers/{customer['id']}", json={"changes": {"note": note}})


def active(sim, topic: str) -> list[dict]:
    return [s for s in sim.control("GET", "/subscriptions")["subscriptions"] if s["active"] and s["topic"] == topic]


def received(shop, topic: str = TOPIC) -> list[Event]:
    return list(Event.objects.filter(shop=shop, topic=topic).order_by("id"))


def test_expected_topics_are_the_handled_topics_without_the_privacy_ones():
    assert set(EXPECTED_TOPICS) == set(TOPIC_JOBS) - PRIVACY_TOPICS
    assert {"orders/create", "products/update", "inventory_levels/update", "app/uninstalled"} <= set(EXPECTED_TOPICS)
    assert not set(EXPECTED_TOPICS) & {"customers/data_request", "customers/redact", "shop/redact"}
    assert topic_enum("orders/create") == "ORDERS_CREATE"
    assert topic_enum("inventory_levels/update") == "INVENTORY_LEVELS_UPDATE"
    assert all(topic_name(topic_enum(topic)) == topic for topic in (*EXPECTED_TOPICS, "app/scopes_update"))
    assert topic_name("APP_SUBSCRIPTIONS_UPDATE") == "app_subscriptions/update"


def test_a_dropped_subscription_is_reported_with_its_gap_and_resubscribe_restores_its_deliveries(
    wired, console, admin_user, settings
):
    shop, sim = wired
    first = check_subscriptions(shop, triggered_by="test")
    assert first["ok"] and first["missing"] == [] and first["error"] == "" and first["gaps"] == []
    assert set(EXPECTED_TOPICS) <= set(first["actual"])
    assert first["extra"] == []  # fulfillments/create too is handled now (the shipping confirmation email)
    customers = sim.records("customers")

    edit_customer(sim, customers[0], "before the outage")
    (last,) = wait_for(lambda: received(shop), timeout=15, message="the first customers/update")

    # The console is unreachable: every try of the next delivery fails, and Shopify removes the subscription.
    console.down()
    edit_customer(sim, customers[1], "during the outage")
    removals = wait_for(lambda: sim.control("GET", "/subscription-removals")["removals"], timeout=15)
    assert [r["topic"] for r in removals] == [TOPIC]
    assert removals[0]["reason"].startswith("9 consecutive failed attempts")
    console.up()

    found = check_subscriptions(shop, triggered_by="schedule")
    assert not found["ok"] and found["missing"] == [TOPIC] and found["error"] == ""
    gap = SubscriptionGap.objects.get(shop=shop, topic=TOPIC, closed_at__isnull=True)
    assert gap.gap_from == last.received_at  # the last customers/update we received
    assert found["gaps"] == [
        {
            "id": gap.pk,
            "topic": TOPIC,
            "state": "opened",
            "detected_at": gap.detected_at.isoformat(),
            "gap_from": last.received_at.isoformat(),
            "window_start": last.received_at.isoformat(),
            "window_end": gap.detected_at.isoformat(),
            "resubscribed_at": None,
            "resubscribed_by": None,
            "closed_at": None,
        }
    ]
    start, end = gap_window(gap)
    assert start == last.received_at and end >= gap.detected_at  # open: until now
    check = HealthCheck.objects.filter(shop=shop, kind=HealthCheck.Kind.SUBSCRIPTIONS).latest("id")
    assert not check.ok and check.triggered_by == "schedule" and check.details["missing"] == [TOPIC]
    assert check.problems == [
        f"Not subscribed to {TOPIC}: its webhooks since {last.received_at.isoformat()} never reached the console. "
        "Re-subscribe, then reconcile the records of this topic changed in that window."
    ]
    assert len(received(shop)) == 1  # the change made during the outage is inside the window, never received

    again = check_subscriptions(shop, triggered_by="schedule")
    assert [g["state"] for g in again["gaps"]] == ["open"]
    assert SubscriptionGap.objects.filter(shop=shop).count() == 1

    outcome = resubscribe(shop, TOPIC, by=admin_user, reason="Shopify dropped it during the outage")
    assert outcome.status == OutboundCall.Status.SUCCEEDED and outcome.created and outcome.gap_id == gap.pk
    assert str(outcome).startswith(f"re-subscribed: call {outcome.call_id} succeeded.")
    call = OutboundCall.objects.get(operation="webhook.subscribe")
    assert call.pk == outcome.call_id and call.status == OutboundCall.Status.SUCCEEDED
    assert call.origin == OutboundCall.Origin.PERSON and call.lane == OutboundCall.Lane.LIVE
    assert call.requested_by == admin_user and call.why == "Shopify dropped it during the outage"
    assert call.idempotency_key == f"webhook.subscribe:{TOPIC}:gap-{gap.pk}"
    assert call.input == {
        "topic": "CUSTOMERS_UPDATE",
        "webhookSubscription": {"uri": settings.CONSOLE_WEBHOOK_URL, "format": "JSON"},
    }
    attempt = call.attempts.get()
    assert attempt.outcome == "succeeded" and attempt.http_status == 200 and attempt.deprecation == ""
    entry = AuditEntry.objects.get(verb="shop.resubscribe")
    assert entry.actor == admin_user and entry.reason == "Shopify dropped it during the outage"
    assert entry.target_id == str(shop.pk)
    assert entry.after == {
        "topic": TOPIC,
        "address": settings.CONSOLE_WEBHOOK_URL,
        "call": call.pk,
        "gap": gap.pk,
        "gap_from": last.received_at.isoformat(),
    }
    gap.refresh_from_db()
    assert gap.resubscribed_at == call.finished_at and gap.resubscribed_by == admin_user and gap.closed_at is None
    (restored,) = active(sim, TOPIC)
    assert restored["id"] == outcome.subscription_id and restored["address"] == settings.CONSOLE_WEBHOOK_URL

    # A second click finds the same call: nothing sent again, nothing audited again.
    twice = resubscribe(shop, TOPIC, by=admin_user, reason="clicked again")
    assert not twice.created and twice.call_id == call.pk and "earlier click" in str(twice)
    assert OutboundCall.objects.count() == 1 and call.attempts.count() == 1
    assert AuditEntry.objects.filter(verb="shop.resubscribe").count() == 1
    assert len(active(sim, TOPIC)) == 1

    after = check_subscriptions(shop, triggered_by="test")
    assert after["ok"] and after["missing"] == [] and TOPIC in after["actual"]
    assert [(g["topic"], g["state"], g["resubscribed_by"]) for g in after["gaps"]] == [(TOPIC, "closed", "ada-admin")]
    gap.refresh_from_db()
    assert gap.closed_at is not None and gap_window(gap) == (last.received_at, gap.closed_at)
    assert after["gaps"][0]["window_end"] == gap.closed_at.isoformat()
    assert check_subscriptions(shop, triggered_by="test")["gaps"] == []  # a closed gap is history

    # Deliveries of the topic reach the console again.
    edit_customer(sim, customers[2], "after the fix")
    events = wait_for(lambda: len(received(shop)) == 2 and received(shop), timeout=15, message="a new customers/update")
    assert events[-1].received_at > gap.resubscribed_at


def test_a_topic_never_received_opens_from_registration_and_an_unreadable_shop_changes_no_gap(store_factory):  # noqa: F811
    shop, sim = store_factory(records=10)  # no webhook URL: the simulator subscribed it to nothing
    sim.control("POST", "/subscriptions", json={"topic": "orders/create", "address": "http://127.0.0.1:9/hooks"})
    found = check_subscriptions(shop, triggered_by="test")
    assert found["actual"] == ["orders/create"] and found["extra"] == []
    assert found["missing"] == [topic for topic in EXPECTED_TOPICS if topic != "orders/create"]
    assert {g["topic"] for g in found["gaps"]} == set(found["missing"])
    gap = SubscriptionGap.objects.get(shop=shop, topic="products/create")
    assert gap.gap_from is None and gap_window(gap)[0] == shop.created_at  # none ever received
    problems = HealthCheck.objects.latest("id").problems
    assert f"Not subscribed to products/create: its webhooks since {shop.created_at.isoformat()} never" in (
        " ".join(problems)
    )

    # Subscribed elsewhere meanwhile: the next check closes that one gap.
    sim.control("POST", "/subscriptions", json={"topic": "products/create", "address": "http://127.0.0.1:9/hooks"})
    closed = check_subscriptions(shop, triggered_by="test")
    assert [g["topic"] for g in closed["gaps"] if g["state"] == "closed"] == ["products/create"]
    open_before = set(SubscriptionGap.objects.filter(shop=shop, closed_at__isnull=True).values_list("id", flat=True))

    sim.control("POST", "/revoke-token", json={})
    failed = check_subscriptions(shop, triggered_by="test")
    assert not failed["ok"] and failed["error"].startswith("HTTP 401")
    assert failed["missing"] == [] and failed["actual"] == []
    assert {g["state"] for g in failed["gaps"]} == {"open"} and {g["id"] for g in failed["gaps"]} == open_before
    assert set(SubscriptionGap.objects.filter(shop=shop, closed_at__isnull=True).values_list("id", flat=True)) == (
        open_before
    )
    check = HealthCheck.objects.latest("id")
    assert not check.ok and check.problems == [f"Could not list the webhook subscriptions: {failed['error']}"]


def test_resubscribe_refuses_what_it_cannot_do_and_holds_for_a_paused_queue(store_factory, admin_user):  # noqa: F811
    shop, _sim = store_factory(records=10)
    with pytest.raises(SubscriptionError, match="not a topic this console subscribes to"):
        resubscribe(shop, "customers/redact", by=admin_user, reason="privacy topics need no subscription")
    with pytest.raises(SubscriptionError, match="Say why"):
        resubscribe(shop, TOPIC, by=admin_user, reason="  ")
    assert not OutboundCall.objects.exists() and not AuditEntry.objects.filter(verb="shop.resubscribe").exists()

    shop.queue_paused = True
    shop.save(update_fields=["queue_paused"])
    held = resubscribe(shop, TOPIC, by=admin_user, reason="while paused")
    assert held.status == OutboundCall.Status.PAUSED and held.gap_id is None and held.subscription_id == ""
    assert str(held).startswith(f"call {held.call_id} is held, not sent")
    assert OutboundCall.objects.get().attempts.count() == 0  # held: nothing sent
    assert AuditEntry.objects.filter(verb="shop.resubscribe").count() == 1

    shop.state = shop.State.UNINSTALLED
    shop.save(update_fields=["state"])
    with pytest.raises(SubscriptionError, match="uninstalled"):
        resubscribe(shop, TOPIC, by=admin_user, reason="after uninstall")
