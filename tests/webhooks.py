"""Storing webhooks in tests exactly as the receiver does (its own storage function), without HTTP."""

import json

from django.utils import timezone

from integrations.inbound.storage import store_verified_delivery
from integrations.models import Delivery, Event


def receive(shop, topic: str, payload, webhook_id: str | None = None, *, triggered_at=None) -> Event:
    """Store a verified webhook for `shop` (a dict payload, or raw bytes); returns its Event."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    webhook_id = webhook_id or f"wh-{Delivery.objects.count() + 1}"
    now = timezone.now()
    event_id, _ = store_verified_delivery(
        {
            "shop_id": shop.id,
            "webhook_id": webhook_id,
            "topic": topic,
            "received_at": now,
            "last_delivery_at": now,
            "triggered_at": triggered_at,
        },
        {
            "shop_id": shop.id,
            "shop_domain": shop.domain,
            "topic": topic,
            "webhook_id": webhook_id,
            "headers": {},
            "body": body,
            "body_size": len(body),
            "signature_valid": True,
            "response_status": 200,
            "received_at": now,
        },
    )
    return Event.objects.select_related("shop").get(pk=event_id)


def order(order_id=1001, updated="2026-05-04T10:00:00-04:00", **extra) -> dict:
    """An orders/* payload with the fields the jobs read."""
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{order_id}",
        "updated_at": updated,
        "financial_status": "paid",
        "email": "ana@example.com",
        "customer": {"id": 7001},
        "shipping_address": {"address1": "12 Pine St", "country_code": "US"},
        **extra,
    }
