"""Jobs that push the platform's decisions back to Shopify, as outbound calls.

They never call Shopify themselves: each enqueues one OutboundCall whose idempotency key names
the intent (tag this order, tag this buyer), so a replay, a retry or a second webhook finds the
call already there instead of making another. None of them acts on an echo (a webhook reporting
our own write), so a write can never trigger itself again.
"""

from dataclasses import dataclass

from integrations.jobs.registry import RetryableJobError, always, job
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


@dataclass(frozen=True)
class IntendedCall:
    operation: str
    variables: dict
    key: str
    why: str
    label: str
    says: str  # what the job's result says once it is queued


def _order_tag_call(event: Event, payload: dict, *, planning: bool = False) -> IntendedCall | str:
    """The call tag_notified_order makes for this event, or why it makes none. A dry run
    (`planning`) assumes the notification: the replay runs notify_fulfillment first."""
    if note := _echo_note(event):
        return note
    order_id = int(payload["id"])
    if FULFILLMENT_TAG in {tag.lower() for tag in split_tags(payload.get("tags"))}:
        return f"nothing to push: the order is already tagged {FULFILLMENT_TAG}"
    if payload.get("financial_status") not in ("paid", None):
        return "nothing to push: the order is not paid, so it was not sent to fulfillment"
    if (
        not planning
        and not FulfillmentNotification.objects.filter(shop_id=event.shop_id, order_shopify_id=order_id).exists()
    ):
        if event.topic == "orders/paid":
            # notify_fulfillment runs just before on this topic and failed: the tag waits for it
            # (a retry, or a replay that runs both), rather than claim a notification not made.
            raise RetryableJobError("fulfillment was not notified for this order: the tag waits until it is")
        return "nothing to push: fulfillment was not notified for this order (yet)"
    return IntendedCall(
        "order.add_tags",
        {"id": f"gid://shopify/Order/{order_id}", "tags": [FULFILLMENT_TAG]},
        key=f"tag_notified_order:{order_id}:{FULFILLMENT_TAG}",
        why="fulfillment was notified for this order",
        label=str(payload.get("name") or ""),
        says=f"tags the order {FULFILLMENT_TAG}",
    )


def _buyer_tag_call(event: Event, payload: dict) -> IntendedCall | str:
    """The call tag_buyer makes for this event, or why it makes none."""
    if note := _echo_note(event):
        return note
    if payload.get("financial_status") not in ("paid", None):
        return "nothing to push: the order is not paid"
    customer_id = (payload.get("customer") or {}).get("id")
    if not customer_id:
        return "nothing to push: the order has no customer"
    return IntendedCall(
        "customer.add_tags",
        {"id": f"gid://shopify/Customer/{int(customer_id)}", "tags": [BUYER_TAG]},
        key=f"tag_buyer:{int(customer_id)}:{BUYER_TAG}",
        why=f"customer paid order {payload.get('name') or payload.get('id')}",
        label=f"Customer {customer_id}",
        says=f"tags customer {customer_id} {BUYER_TAG}",
    )


def _push(job_name: str, event: Event, intended: IntendedCall | str) -> str:
    if isinstance(intended, str):
        return intended
    call_id, created = enqueue_for_event(
        event,
        intended.operation,
        intended.variables,
        key=intended.key,
        origin_ref=f"job:{job_name}:event {event.pk}",
        why=intended.why,
        label=intended.label,
    )
    return f"{'queued' if created else 'already queued'}: call {call_id} {intended.says}"


def _keys(plan, **options):
    def intended_calls(event: Event, payload: dict) -> list[str]:
        intended = plan(event, payload, **options)
        return [] if isinstance(intended, str) else [intended.key]

    return intended_calls


@job(
    "tag_notified_order",
    decision=always(
        "The call's key is the order and the tag, so a replay finds the existing call instead of tagging again; "
        "echoes of our own tag are skipped."
    ),
    scopes=("write_orders",),
    effect="Enqueues one outbound call keyed tag_notified_order:<order>:fulfillment-notified, unique per shop: "
    "a second run finds the call already there. tagsAdd only adds the tag.",
    writes=(("shopify", "order", "tags"),),
    intended_calls=_keys(_order_tag_call, planning=True),
    # A newer event's run may have found nothing to push yet (no notification then): only the
    # call's key says whether the tag was pushed, so an older event's run is never skipped for it.
    supersedable=False,
)
def tag_notified_order(event: Event, payload: dict) -> str:
    """Tag an order in Shopify once the fulfillment queue was told about it."""
    return _push("tag_notified_order", event, _order_tag_call(event, payload))


@job(
    "tag_buyer",
    decision=always(
        "The call's key is the customer and the tag, so a customer is tagged at most once however often this runs."
    ),
    scopes=("write_customers",),
    effect="Enqueues one outbound call keyed tag_buyer:<customer>:buyer, unique per shop: a customer is tagged once.",
    writes=(("shopify", "customer", "tags"),),
    intended_calls=_keys(_buyer_tag_call),
    supersedable=False,
)
def tag_buyer(event: Event, payload: dict) -> str:
    """Tag the customer of a paid order as a buyer in Shopify."""
    return _push("tag_buyer", event, _buyer_tag_call(event, payload))
