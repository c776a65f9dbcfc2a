"""A sender that dies mid-try: its call goes back to the queue after the lease, and sent again
with the same idempotency key it applies once, even though Shopify had applied the first try."""

from datetime import timedelta

from django.utils import timezone

from integrations.models import OutboundCall
from integrations.outbound import queue
from integrations.outbound.client import AdminClient
from integrations.outbound.operations import get_operation
from integrations.outbound.sender import Sender, recover_lost_calls

Status = OutboundCall.Status


def test_a_call_whose_sender_died_after_shopify_applied_it_is_sent_again_and_applies_once(store, settings):
    shop, sim = store
    level = sim.records("inventory_levels")[0]
    variables = {
        "input": {
            "name": "available",
            "reason": "correction",
            "quantities": [
                {
                    "inventoryItemId": f"gid://shopify/InventoryItem/{level['inventory_item_id']}",
                    "locationId": f"gid://shopify/Location/{level['location_id']}",
                    "quantity": level["available"] + 5,
                    "changeFromQuantity": level["available"],
                }
            ],
        }
    }
    call, _ = queue.enqueue(shop, "inventory.set", variables, origin="person")
    # The sender claimed it, Shopify applied the try, and the sender died before writing anything.
    claimed_at = timezone.now() - timedelta(seconds=settings.OUTBOUND_CLAIM_LEASE_SECONDS + 5)
    OutboundCall.objects.filter(pk=call.pk).update(
        status=Status.RUNNING, claimed_by="dead:1:sender1", claimed_at=claimed_at
    )
    operation = get_operation("inventory.set")
    lost = AdminClient(shop).graphql(
        operation.document, {**variables, "idempotencyKey": queue.shopify_idempotency_key(call)}
    )
    assert lost.data["inventorySetQuantities"]["userErrors"] == []

    assert recover_lost_calls() == 1
    call.refresh_from_db()
    assert call.status == Status.QUEUED and "same idempotency key" in call.reason
    Sender(tag="test").drain(timeout=10)
    call.refresh_from_db()
    assert call.status == Status.SUCCEEDED, call.reason
    assert call.result["changes"][0]["delta"] == 5, "Shopify's answer is the first try's, not a second change"
    current = sim.record("inventory_levels", f"{level['inventory_item_id']}:{level['location_id']}")
    assert current["available"] == level["available"] + 5


def test_a_live_senders_claim_is_not_taken_back(store):
    shop, _ = store
    call, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["a"]}, origin="person")
    OutboundCall.objects.filter(pk=call.pk).update(
        status=Status.RUNNING, claimed_by="alive:1:sender1", claimed_at=timezone.now()
    )
    assert recover_lost_calls() == 0
    assert OutboundCall.objects.get(pk=call.pk).status == Status.RUNNING


def test_a_sender_that_lost_its_claim_records_its_try_but_leaves_the_call_alone(store):
    shop, sim = store
    order = sim.records("orders")[0]
    call, _ = queue.enqueue(
        shop, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": ["a"]}, origin="person"
    )
    sender = Sender(tag="slow")
    call = OutboundCall.objects.select_related("shop").get(pk=call.pk)
    assert sender._claim(call)
    # Recovery handed it to another sender meanwhile.
    OutboundCall.objects.filter(pk=call.pk).update(claimed_by="other:2:sender1")
    sender.send(call)
    call.refresh_from_db()
    assert call.status == Status.RUNNING and call.claimed_by == "other:2:sender1"
    assert call.attempts.count() == 1, "the try happened and is on the record"
    assert call.attempt_count == 1

    # The sender now holding it finishes the call; its try is the second on record.
    other = Sender(tag="other")
    other.name = "other:2:sender1"
    other.send(OutboundCall.objects.select_related("shop").get(pk=call.pk))
    call.refresh_from_db()
    assert call.status == Status.SUCCEEDED and call.attempt_count == 2
    assert list(call.attempts.values_list("number", "worker")) == [(1, sender.name), (2, "other:2:sender1")]
