"""Failing order events with real stored payloads, the way the receiver stores them."""

import json

import pytest

from integrations.models import Event
from tests.factories import DeliveryFactory, EventFactory, ShopFactory


def order_payload(
    number: int, *, email: str = "", total: str = "100.00", currency: str = "EUR", fulfilled: bool = False
) -> dict:
    return {
        "id": 5_000_000 + number,
        "admin_graphql_api_id": f"gid://shopify/Order/{5_000_000 + number}",
        "name": f"#{number}",
        "email": email or f"buyer{number}@example.com",
        "total_price": total,
        "currency": currency,
        "fulfillment_status": "fulfilled" if fulfilled else None,
        "updated_at": "2026-12-01T03:00:00Z",
    }


def make_order_event(shop, number: int, *, status: str = Event.Status.FAILED, topic: str = "orders/create", **payload):
    body = order_payload(number, **payload)
    event = EventFactory(
        shop=shop, topic=topic, status=status, status_reason="order sync failed" if status == Event.Status.FAILED else "",
        resource_gid=body["admin_graphql_api_id"], resource_id=str(body["id"]), resource_label=body["name"],
    )  # fmt: skip
    DeliveryFactory(event=event, body=json.dumps(body).encode())
    return event


@pytest.fixture
def shop(db):
    return ShopFactory(domain="north-shop.myshopify.com")


@pytest.fixture
def failing_orders(shop):
    """Three failed orders/create events (orders #1001 to #1003, 100 EUR each, unfulfilled)."""
    return [make_order_event(shop, n) for n in (1001, 1002, 1003)]
