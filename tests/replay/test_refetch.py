"""Replays that refetch the record from Shopify first (through the simulator, over HTTP): a stale
stored payload is replaced by the record as Shopify has it now; a record gone is skipped."""

import pytest

from integrations.models import Event, PlatformOrder
from integrations.replay import services
from integrations.replay.selection import for_events
from tests.webhooks import receive

pytestmark = pytest.mark.django_db(transaction=True)


def stale_copy(record: dict, **changes) -> dict:
    return {**record, "updated_at": "2020-01-01T00:00:00Z", **changes}


def test_a_refetch_replay_syncs_the_record_as_shopify_has_it_now(store, drain):
    shop, sim = store
    current = sim.records("orders")[0]
    event = receive(shop, "orders/updated", stale_copy(current, tags="stale-tag", email="old@example.com"))
    drain()
    assert PlatformOrder.objects.get(shop=shop, shopify_id=current["id"]).tags == "stale-tag"

    stored = services.check_replay(selection=for_events([event.pk]))
    assert {e["job"]: e["kind"] for e in stored.plan}["sync_order"] == "succeeded"
    replay = services.check_replay(selection=for_events([event.pk]), mode="refetch")
    entry = {e["job"]: e for e in replay.plan}["sync_order"]
    assert entry["decision"] == "run" and "as Shopify has it now" in entry["reason"]
    assert replay.summary["refetch_reads"] == 1
    services.do_replay(replay, by=None, reason="payload was stale", plan_hash=replay.plan_hash)

    drain()

    replay.refresh_from_db()
    assert replay.status == "done" and replay.jobs_ran == 1, replay.items.get().result
    order = PlatformOrder.objects.get(shop=shop, shopify_id=current["id"])
    assert order.tags == current["tags"] and order.email == current["email"]
    assert order.shopify_updated_at.year > 2020


def test_a_record_gone_from_shopify_is_skipped_with_the_reason(store, drain):
    shop, sim = store
    current = sim.records("orders")[0]
    missing = stale_copy(current, id=987654321, admin_graphql_api_id="gid://shopify/Order/987654321", name="#GONE")
    event = receive(shop, "orders/updated", missing)
    drain()
    replay = services.check_replay(selection=for_events([event.pk]), mode="refetch")
    services.do_replay(replay, by=None, reason="refetch", plan_hash=replay.plan_hash)

    drain()

    replay.refresh_from_db()
    item = replay.items.get()
    assert item.status == "skipped" and "no longer exists in Shopify" in item.result
    assert replay.status == "done" and replay.jobs_ran == 0
    assert Event.objects.get(pk=event.pk).status == Event.Status.PROCESSED


def test_topics_without_a_record_to_read_are_not_refetched(store, drain):
    shop, _sim = store
    event = receive(
        shop, "customers/data_request", {"shop_domain": shop.domain, "customer": {"id": 1}, "orders_requested": []}
    )
    drain()
    replay = services.check_replay(selection=for_events([event.pk]), mode="refetch")
    [entry] = replay.plan
    assert entry["kind"] == "not_refetchable" and "replay the stored payload" in entry["reason"]
