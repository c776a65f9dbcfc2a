"""Jobs that push the platform's decisions back to Shopify, as outbound calls.

They never call Shopify themselves: each enqueues one OutboundCall whose idempotency key names
the intent (tag this order, tag this buyer), so a replay, a retry or a second webhook finds the
call already there instead of making another. None of them acts on an echo (a webhook reporting
our own write), so a write can never trigger itself again.
"""

from integrations.jobs.registry import always, job
from integrations.models import Event, FulfillmentNotification
from integrations.outbound.queue import enqueue_for_event

FULFILLMENT_TAG = "fulfillment-notified"
BUYER_TAG = "buyer"


def split_tags(tags) -> list[str]:
    """Shopify's comma-separated tag string (or a list) as a list."""
    if isinstance(tags, list):
        return [str(tag).strip() for tag in tags if str(tag).strip()]
    return [tag.strip() for tag in str(tags or "").split(",") if tag.strip()]


def _echo_note(event: Event) -> str | None:
    if event.echo_of_id:
        return f"echo of our call {event.echo_of_id}: our own write coming back, not written back"
    return None


@job(
    "tag_notified_order",
    decision=always(
        "The call's key is the order and the tag, so a replay finds the existing call instead of tagging again; "
        "echoes of our own tag are skipped."
    ),
    scopes=("write_orders",),
)
def tag_notified_order(event: Event, payload: dict) -> str:
    """Tag an order in Shopify once the fulfillment queue was told about it."""
    if note := _echo_note(event):
        return note
    order_id = int(payload["id"])
    if FULFILLMENT_TAG in {tag.lower() for tag in split_tags(payload.get("tags"))}:
        return f"nothing to push: the order is already tagged {FULFILLMENT_TAG}"
    if payload.get("financial_status") not in ("paid", None):
        return "nothing to push: the order is not paid, so it was not sent to fulfillment"
    # On orders/paid, notify_fulfillment ran just before and made sure of the notification.
    if (
        event.topic != "orders/paid"
        and not FulfillmentNotification.objects.filter(shop_id=event.shop_id, order_shopify_id=order_id).exists()
    ):
        return "nothing to push: fulfillment was not notified for this order (yet)"
    call_id, created = enqueue_for_event(
        event,
        "order.add_tags",
        {"id": f"gid://shopify/Order/{order_id}", "tags": [FULFILLMENT_TAG]},
        key=f"tag_notified_order:{order_id}:{FULFILLMENT_TAG}",
        origin_ref=f"job:tag_notified_order:event {event.pk}",
        why="fulfillment was notified for this order",
        label=str(payload.get("name") or ""),
    )
    return f"{'queued' if created else 'already queued'}: call {call_id} tags the order {FULFILLMENT_TAG}"


@job(
    "tag_buyer",
    decision=always(
        "The call's key is the customer and the tag, so a customer is tagged at most once however often this runs."
    ),
    scopes=("write_customers",),
)
def tag_buyer(event: Event, payload: dict) -> str:
    """Tag the customer of a paid order as a buyer in Shopify."""
    if note := _echo_note(event):
        return note
    if payload.get("financial_status") not in ("paid", None):
        return "nothing to push: the order is not paid"
    customer_id = (payload.get("customer") or {}).get("id")
    if not customer_id:
        return "nothing to push: the order has no customer"
    call_id, created = enqueue_for_event(
        event,
        "customer.add_tags",
        {"id": f"gid://shopify/Customer/{int(customer_id)}", "tags": [BUYER_TAG]},
        key=f"tag_buyer:{int(customer_id)}:{BUYER_TAG}",
        origin_ref=f"job:tag_buyer:event {event.pk}",
        why=f"customer paid order {payload.get('name') or payload.get('id')}",
        label=f"Customer {customer_id}",
    )
    return f"{'queued' if created else 'already queued'}: call {call_id} tags customer {customer_id} {BUYER_TAG}"
