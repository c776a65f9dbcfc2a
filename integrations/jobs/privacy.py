"""Privacy jobs: customers/data_request, customers/redact and shop/redact, within Shopify's 30 days.

What counts as personal data comes from the declared field maps (`fields`): redaction blanks the
personal fields they declare, an export lists the fields they declare, and stored payloads are
scrubbed of the same keys (plus the address blocks and notes raw payloads carry). Each run appends
a proof row; earlier proof is never rewritten.
"""

import json
from datetime import datetime, timedelta

from django.db import models
from django.utils import timezone

from integrations.jobs.fields import CUSTOMER, ORDER, PERSONAL_PAYLOAD_BLOCKS, personal_payload_keys
from integrations.jobs.registry import always, job
from integrations.models import Delivery, Event, PlatformCustomer, PlatformOrder, PrivacyProof, PrivacyRequest, Shop

PRIVACY_DEADLINE = timedelta(days=30)  # Shopify: act on privacy webhooks within 30 days
REDACTED = "[redacted]"
_KEPT_IN_BLOCKS = {"id", "admin_graphql_api_id", "country_code"}


def scrub(value, personal: frozenset[str] | None = None):
    """A copy of a payload with personal data replaced, structure kept for support work."""
    personal = personal_payload_keys() if personal is None else personal
    if isinstance(value, dict):
        return {
            key: (
                REDACTED
                if key in personal and val not in (None, "")
                else _scrub_block(val)
                if key in PERSONAL_PAYLOAD_BLOCKS
                else scrub(val, personal)
            )
            for key, val in value.items()
        }
    if isinstance(value, list):
        return [scrub(item, personal) for item in value]
    return value


def _scrub_block(value):
    if isinstance(value, dict):
        return {k: (v if k in _KEPT_IN_BLOCKS else REDACTED if v not in (None, "") else v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_block(item) for item in value]
    return value


def scrub_deliveries(deliveries: models.QuerySet, note: str, *, mentioning: list[bytes] | None = None) -> int:
    """Rewrite stored bodies without personal data; with `mentioning`, only bodies that contain one
    of those byte strings (an email, a customer or order id). Scanning bodies rather than trusting
    the worker's resource fields also catches events not processed yet, topics we ignore and
    rejected requests. Over-matching only scrubs more, which is the safe side."""
    count = 0
    touched_events = set()
    personal = personal_payload_keys()
    for delivery in deliveries.exclude(body=None).only("id", "body", "event_id").iterator():
        raw = bytes(delivery.body)
        if mentioning is not None and not any(needle in raw for needle in mentioning):
            continue
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError):
            cleaned = b'"[redacted: unparseable payload removed]"'
        else:
            cleaned = json.dumps(scrub(payload, personal)).encode()
        Delivery.objects.filter(pk=delivery.pk).update(body=cleaned, body_size=len(cleaned))
        count += 1
        if delivery.event_id:
            touched_events.add(delivery.event_id)
    if touched_events:
        Event.objects.filter(pk__in=touched_events).update(redacted_at=timezone.now(), redaction_note=note[:255])
    return count


def _privacy_request(event: Event, payload: dict, kind: str) -> PrivacyRequest:
    request, _ = PrivacyRequest.objects.get_or_create(
        event=event,
        defaults={
            "shop": event.shop,
            "kind": kind,
            "customer_shopify_id": (payload.get("customer") or {}).get("id"),
            "received_at": event.received_at,
            "due_at": event.received_at + PRIVACY_DEADLINE,
        },
    )
    return request


def _complete(request: PrivacyRequest, event: Event, proof: dict, export: dict | None = None) -> None:
    """Record this run's proof (appended, never replacing an earlier one) and complete the request."""
    now = timezone.now()
    PrivacyProof.objects.create(request=request, event=event, recorded_at=now, counts=proof)
    changes = {"state": PrivacyRequest.State.COMPLETED}
    if request.completed_at is None:
        changes["completed_at"] = now
    if export is not None:
        changes["export"] = export
    PrivacyRequest.objects.filter(pk=request.pk).update(**changes)


def _customer_orders(shop: Shop, customer_id, order_ids) -> models.QuerySet:
    return PlatformOrder.objects.filter(shop=shop).filter(
        models.Q(customer_shopify_id=customer_id) | models.Q(shopify_id__in=[int(i) for i in order_ids or []])
    )


@job(
    "export_customer_data",
    decision=always(
        "Builds the same export again; it writes nothing but the request's own record and a new proof row."
    ),
    effect="One privacy request per webhook (get-or-create on the event) and one proof row per run; the export "
    "is rebuilt from what we hold now.",
    writes=(("platform", "privacy_request", ""),),
    supersedable=False,
)
def export_customer_data(event: Event, payload: dict) -> str:
    """customers/data_request: gather everything we hold about the customer."""
    request = _privacy_request(event, payload, PrivacyRequest.Kind.DATA_REQUEST)
    customer_id = (payload.get("customer") or {}).get("id")
    customer = PlatformCustomer.objects.filter(shop=event.shop, shopify_id=customer_id).values(
        *CUSTOMER.export_fields()
    )
    orders = _customer_orders(event.shop, customer_id, payload.get("orders_requested")).values(*ORDER.export_fields())
    export = {"customer": [_plain(row) for row in customer], "orders": [_plain(row) for row in orders]}
    _complete(request, event, {"customer_records": len(export["customer"]), "orders": len(export["orders"])}, export)
    return f"exported {len(export['customer'])} customer and {len(export['orders'])} order records"


@job(
    "redact_customer",
    decision=always("Scrubbing already-scrubbed data changes nothing."),
    effect="Overwrites the customer's personal fields, their orders' and stored payloads' with blanks; a second "
    "run finds them blank. One proof row per run.",
    writes=(("platform", "customer", ""), ("platform", "order", "")),
    supersedable=False,
)
def redact_customer(event: Event, payload: dict) -> str:
    """customers/redact: remove the customer's personal data from records and stored payloads."""
    request = _privacy_request(event, payload, PrivacyRequest.Kind.CUSTOMER_REDACT)
    customer = payload.get("customer") or {}
    customer_id = customer.get("id")
    if not customer_id:
        raise ValueError("customers/redact without customer.id: cannot tell whose data to remove")
    now = timezone.now()
    customers = PlatformCustomer.objects.filter(shop=event.shop, shopify_id=customer_id).update(
        **CUSTOMER.scrubbed_values(), redacted_at=now
    )
    if not customers:
        # A tombstone, so a customers/create still in the queue cannot write the data back.
        PlatformCustomer.objects.create(
            shop=event.shop,
            shopify_id=int(customer_id),
            gid=f"gid://shopify/Customer/{customer_id}",
            shopify_updated_at=now,
            redacted_at=now,
            last_event=event,
        )
    orders = _customer_orders(event.shop, customer_id, payload.get("orders_to_redact"))
    order_ids = {str(i) for i in orders.values_list("shopify_id", flat=True)}
    order_ids |= {str(i) for i in payload.get("orders_to_redact") or []}
    orders_scrubbed = orders.update(**ORDER.scrubbed_values(), redacted_at=now)
    needles = [str(customer_id).encode(), *(i.encode() for i in order_ids)]
    needles += [str(customer[key]).encode() for key in ("email", "phone") if customer.get(key)]
    note = f"customer {customer_id} redacted by webhook {event.webhook_id}"
    payloads = scrub_deliveries(Delivery.objects.filter(shop=event.shop), note, mentioning=needles)
    exports = PrivacyRequest.objects.filter(shop=event.shop, customer_shopify_id=customer_id).exclude(export=None)
    exports_cleared = exports.update(export=None)
    proof = {"customer_records": customers, "orders": orders_scrubbed, "payloads": payloads}
    _complete(request, event, {**proof, "exports_cleared": exports_cleared})
    return f"redacted {customers} customer, {orders_scrubbed} order records and {payloads} payloads"


@job(
    "redact_shop",
    decision=always("Scrubbing already-scrubbed data changes nothing."),
    effect="Blanks every personal field the shop's customers, orders and payloads hold; a second run finds them "
    "blank. One proof row per run.",
    writes=(("platform", "customer", ""), ("platform", "order", "")),
    supersedable=False,
)
def redact_shop(event: Event, payload: dict) -> str:
    """shop/redact: remove all personal data we hold for the shop."""
    request = _privacy_request(event, payload, PrivacyRequest.Kind.SHOP_REDACT)
    now = timezone.now()
    customers = PlatformCustomer.objects.filter(shop=event.shop).update(**CUSTOMER.scrubbed_values(), redacted_at=now)
    orders = PlatformOrder.objects.filter(shop=event.shop).update(**ORDER.scrubbed_values(), redacted_at=now)
    payloads = scrub_deliveries(
        Delivery.objects.filter(shop=event.shop), f"shop redacted by webhook {event.webhook_id}"
    )
    exports_cleared = PrivacyRequest.objects.filter(shop=event.shop).exclude(export=None).update(export=None)
    proof = {"customer_records": customers, "orders": orders, "payloads": payloads, "exports_cleared": exports_cleared}
    _complete(request, event, proof)
    return f"redacted {customers} customers, {orders} orders and {payloads} payloads"


def _plain(row: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
