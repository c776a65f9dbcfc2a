"""Jobs that message buyers. A message cannot be unsent, so these are never replayed: a person
who finds one failed checks the outbox and resends by hand. The outbox row's unique key
(shop, kind, record) still keeps a live delivery and a retry from writing two."""

from django.db import connection
from django.utils import timezone

from integrations.jobs.registry import RetryableJobError, job, never
from integrations.models import CustomerMessage, Event, PlatformOrder

SHIPPING = CustomerMessage.Kind.SHIPPING_CONFIRMATION


def _message_insert_sql() -> str:
    table = CustomerMessage._meta.db_table
    return (
        f"INSERT INTO {table} (shop_id, kind, record_gid, order_shopify_id, to_email, subject, body, event_id, "  # noqa: S608
        "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (shop_id, kind, record_gid) DO NOTHING RETURNING id"
    )


@job(
    "email_shipping_confirmation",
    decision=never(
        "Emails the buyer that their order shipped. An email cannot be unsent and a replay would send another, "
        "so it is never replayed: check the outbox on the order and resend by hand if the buyer got nothing."
    ),
    scopes=("read_fulfillments",),
    effect="Puts one shipping confirmation per (shop, fulfillment) in the platform's mail outbox: a unique key, "
    "so a live delivery and a retry cannot both write one.",
    writes=(("platform", "customer_message", ""),),
)
def email_shipping_confirmation(event: Event, payload: dict) -> str:
    """Tell the buyer their order shipped, with the carrier and tracking number."""
    order_id = payload.get("order_id")
    if not order_id:
        raise ValueError("fulfillment without order_id: cannot tell whose order shipped")
    record_gid = str(payload.get("admin_graphql_api_id") or f"gid://shopify/Fulfillment/{payload.get('id')}")[:255]
    order = PlatformOrder.objects.filter(shop_id=event.shop_id, shopify_id=int(order_id)).values("email", "name")
    order = order.first()
    if order is None:
        # The fulfillment can arrive before its order: wait for the order rather than send nothing.
        raise RetryableJobError(f"order {order_id} is not synced yet: the email waits for its address")
    to_email = str(order["email"] or payload.get("email") or "")[:255]
    if not to_email:
        return f"no email address for order {order_id} (none given, or redacted): nothing sent"
    name = order["name"] or str(payload.get("name") or order_id)
    tracking = payload.get("tracking_number") or ", ".join(payload.get("tracking_numbers") or []) or "none yet"
    subject = f"Your order {name} is on its way"[:255]
    body = f"Carrier: {payload.get('tracking_company') or 'unknown'}. Tracking number: {tracking}."
    created_at = CustomerMessage._meta.get_field("created_at").get_db_prep_save(timezone.now(), connection)
    with connection.cursor() as cursor:
        cursor.execute(
            _message_insert_sql(), [event.shop_id, SHIPPING, record_gid, int(order_id), to_email, subject, body,
                                    event.pk, created_at],
        )  # fmt: skip
        inserted = cursor.fetchone()
    if inserted is None:
        return f"already sent: the shipping confirmation for {record_gid} is in the outbox; not sent again"
    return f"shipping confirmation queued for {to_email}"
