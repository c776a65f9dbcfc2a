"""The whole loop over real HTTP: the simulator sends signed webhooks to the console's receiver,
the pump runs the jobs, jobs enqueue calls, the sender sends them, and the webhook Shopify sends
back because of our own write is linked to the call and never written back."""

import pytest

from integrations.models import Event, FulfillmentNotification, Job, OutboundCall
from integrations.outbound import queue
from integrations.outbound.flows import push_product_content, push_stock_level
from integrations.outbound.queue import QueueError
from integrations.outbound.sender import Sender
from integrations.processing.pump import process_pending
from tests.processes import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wired(store_factory, live_server):
    """A shop whose simulator sends its webhooks to this test's console."""
    return store_factory(records=40, webhook_url=f"{live_server.url}/webhooks/shopify")


def events_for(shop, topic: str, gid: str):
    return Event.objects.filter(shop=shop, topic=topic, resource_gid=gid)


def wait_event(shop, topic: str, record_id: int, count: int = 1) -> list[Event]:
    def arrived():
        process_pending()
        events = list(
            Event.objects.filter(shop=shop, topic=topic, status__in=["processed", "failed", "ignored"]).order_by("id")
        )
        events = [e for e in events if e.resource_id == str(record_id)]
        return events if len(events) >= count else None

    return wait_for(arrived, timeout=15, message=f"{topic} for {record_id} to arrive and be processed")


def test_an_order_tag_comes_back_as_an_echo_linked_to_its_call_and_is_not_written_back(wired):
    shop, sim = wired
    order = next(o for o in sim.records("orders") if o["financial_status"] == "paid" and not o["tags"])
    # The order went to fulfillment but is not tagged yet: any orders/updated that is not our echo
    # makes tag_notified_order push the tag, so only echo detection keeps the count at one call.
    FulfillmentNotification.objects.create(shop=shop, order_shopify_id=order["id"], order_name=order["name"])
    call, _ = queue.enqueue(
        shop, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": ["gift-wrap"]}, origin="person"
    )
    Sender(tag="test").drain(timeout=10)
    call.refresh_from_db()
    assert call.status == OutboundCall.Status.SUCCEEDED and call.result_updated_at is not None

    (echo,) = wait_event(shop, "orders/updated", order["id"])
    assert echo.echo_of_id == call.pk
    job = Job.objects.get(event=echo, name="tag_notified_order")
    assert "not written back" in job.attempts.get().message
    assert OutboundCall.objects.count() == 1, "the echo made another call"
    assert list(call.echoes.all()) == [echo]

    # A change made in Shopify by someone else is not an echo, and the job acts on it.
    sim.control("PATCH", f"/records/orders/{order['id']}", json={"changes": {"note": "call the customer"}})
    events = wait_event(shop, "orders/updated", order["id"], count=2)
    assert events[-1].echo_of_id is None
    assert OutboundCall.objects.filter(operation="order.add_tags", input__tags=["fulfillment-notified"]).exists()


def test_an_echo_processed_before_the_calls_success_was_written_is_linked_afterwards(wired):
    from integrations.outbound.echo import link_early_echoes

    shop, sim = wired
    order = sim.records("orders")[1]
    call, _ = queue.enqueue(
        shop, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": ["late"]}, origin="person"
    )
    Sender(tag="test").drain(timeout=10)
    call.refresh_from_db()
    (echo,) = wait_event(shop, "orders/updated", order["id"])
    # As if the pump had got there first: unlink, then let the sender's success step link it.
    Event.objects.filter(pk=echo.pk).update(echo_of=None)
    assert link_early_echoes(call, call.result_updated_at, sent_at=call.first_sent_at) == 1
    assert Event.objects.get(pk=echo.pk).echo_of_id == call.pk
    assert link_early_echoes(call, call.result_updated_at, sent_at=call.first_sent_at) == 0, "one echo per call"


def test_a_paid_order_is_tagged_once_fulfillment_was_notified_and_its_echo_stops_there(wired):
    shop, sim = wired
    order = next(o for o in sim.records("orders") if o["financial_status"] == "pending" and o.get("customer"))
    sim.control("POST", f"/orders/{order['id']}/pay", json={})
    wait_event(shop, "orders/paid", order["id"])
    tag_call = OutboundCall.objects.get(operation="order.add_tags")
    buyer_call = OutboundCall.objects.get(operation="customer.add_tags")
    assert tag_call.origin == "job" and tag_call.input["tags"] == ["fulfillment-notified"]
    assert tag_call.origin_event.topic == "orders/paid"
    assert buyer_call.target_gid == f"gid://shopify/Customer/{order['customer']['id']}"

    Sender(tag="test").drain(timeout=10)
    assert sim.record("orders", order["id"])["tags"].count("fulfillment-notified") == 1
    assert "buyer" in sim.record("customers", order["customer"]["id"])["tags"]
    echoes = wait_event(shop, "orders/updated", order["id"])
    assert any(e.echo_of_id == tag_call.pk for e in echoes)
    assert OutboundCall.objects.count() == 2, "an echo was written back"


def test_a_replayed_paid_order_finds_its_call_instead_of_making_another(wired):
    from integrations.processing.pump import process_event

    shop, sim = wired
    order = next(o for o in sim.records("orders") if o["financial_status"] == "pending")
    sim.control("POST", f"/orders/{order['id']}/pay", json={})
    (paid,) = wait_event(shop, "orders/paid", order["id"])
    process_event(paid, replay=True)
    assert OutboundCall.objects.filter(operation="order.add_tags").count() == 1
    job = Job.objects.get(event=paid, name="tag_notified_order")
    assert "already queued" in job.attempts.order_by("-number").first().message


def test_warehouse_stock_uses_the_last_synced_level_as_the_compare_guard(wired):
    shop, sim = wired
    level = sim.records("inventory_levels")[0]
    item, location = level["inventory_item_id"], level["location_id"]
    with pytest.raises(QueueError, match="never seen"):
        push_stock_level(shop, inventory_item_id=item, location_id=location, quantity=9)
    # Shopify tells us the level first (a change made in the store admin).
    sim.control("POST", "/inventory", json={"inventory_item_id": item, "location_id": location, "available": 4})
    wait_event(shop, "inventory_levels/update", item)
    call, created = push_stock_level(shop, inventory_item_id=item, location_id=location, quantity=9)
    again, created_again = push_stock_level(shop, inventory_item_id=item, location_id=location, quantity=9)
    assert created and not created_again and again.pk == call.pk
    assert call.input["input"]["quantities"][0]["changeFromQuantity"] == 4
    Sender(tag="test").drain(timeout=10)
    call.refresh_from_db()
    assert call.status == OutboundCall.Status.SUCCEEDED, call.reason
    assert sim.record("inventory_levels", f"{item}:{location}")["available"] == 9
    (_, echo) = wait_event(shop, "inventory_levels/update", item, count=2)
    assert echo.echo_of_id == call.pk


def test_product_content_the_platform_owns_is_pushed_and_comes_back_as_an_echo(wired):
    shop, sim = wired
    product = sim.records("products")[0]
    call, _ = push_product_content(shop, product_id=product["id"], title="Trail Lantern (2027 edition)")
    Sender(tag="test").drain(timeout=10)
    call.refresh_from_db()
    assert call.status == OutboundCall.Status.SUCCEEDED, call.reason
    assert sim.record("products", product["id"])["title"] == "Trail Lantern (2027 edition)"
    (echo,) = wait_event(shop, "products/update", product["id"])
    assert echo.echo_of_id == call.pk


def test_an_uninstall_stops_the_shops_calls_with_the_reason(wired):
    shop, sim = wired
    orders = sim.records("orders")[:3]
    queue.pause_shop(shop, by=None, reason="hold while we look")
    calls = [
        queue.enqueue(shop, "order.add_tags", {"id": o["admin_graphql_api_id"], "tags": ["x"]}, origin="person")[0]
        for o in orders
    ]
    sim.control("POST", "/uninstall", json={})
    wait_for(
        lambda: process_pending() is not None and shop.__class__.objects.get(pk=shop.pk).state == "uninstalled",
        timeout=15,
        message="the uninstall to be processed",
    )
    for call in calls:
        call.refresh_from_db()
        assert call.status == OutboundCall.Status.FAILED and call.failure_kind == "uninstalled"
        assert "uninstalled" in call.reason and call.attempts.count() == 0
    late, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["y"]}, origin="person")
    assert late.status == OutboundCall.Status.FAILED and "uninstalled" in late.reason
