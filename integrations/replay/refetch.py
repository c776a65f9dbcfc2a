"""Refetching a record from Shopify before a replay, for payloads that went stale.

Shopify's REST resources have the same shape as its webhook payloads, so the record read now
replaces the stored payload and the jobs run unchanged. A read goes through the outbound client
(the one module that talks to Shopify, with its timeouts and no redirects). A record Shopify no
longer has is skipped; a rate limit, an outage or a timeout puts the item back until Shopify's
Retry-After (or a few seconds); any other refusal (a revoked token, a missing scope) is a skip with
Shopify's words.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from integrations.models import Delivery, Event
from integrations.outbound.client import AdminClient
from integrations.processing.runner import parse_payload

RETRY_DEFAULT = timedelta(seconds=5)
# Topic prefix -> (REST path for the record, key of the record in the answer).
RECORD_PATHS = {
    "orders/": ("orders/{id}.json", "order"),
    "products/": ("products/{id}.json", "product"),
    "customers/create": ("customers/{id}.json", "customer"),
    "customers/update": ("customers/{id}.json", "customer"),
}


@dataclass
class Fetched:
    payload: dict | None = None
    retry_at: datetime | None = None
    problem: str = ""


def can_refetch(topic: str) -> bool:
    return topic.startswith("inventory_levels/") or any(topic.startswith(prefix) for prefix in RECORD_PATHS)


def fetch_current(event: Event) -> Fetched:
    """The event's record as Shopify has it now, or why not."""
    if not can_refetch(event.topic):
        return Fetched(problem=f"{event.topic} has no record Shopify can be asked for: replay the stored payload")
    client = AdminClient(event.shop)
    if event.topic.startswith("inventory_levels/"):
        stored = _stored_payload(event)
        location = (stored or {}).get("location_id")
        if not location:
            return Fetched(problem="the stored payload names no location, so the level cannot be asked for")
        reply = client.rest_get(
            "inventory_levels.json", params={"inventory_item_ids": event.resource_id, "location_ids": location}
        )
        record = _one(reply, "inventory_levels")
    else:
        path, key = next(v for prefix, v in RECORD_PATHS.items() if event.topic.startswith(prefix))
        reply = client.rest_get(path.format(id=event.resource_id))
        record = (reply.body or {}).get(key) if isinstance(reply.body, dict) and reply.http_status == 200 else None
    if record is not None:
        return Fetched(payload=record)
    status = reply.http_status or 0
    if status == 404 or (status == 200 and record is None):
        return Fetched(
            problem=f"{event.resource_label or event.resource_gid} no longer exists in Shopify (HTTP {status})"
        )
    if reply.transport_error or status == 429 or status >= 500:
        wait = timedelta(seconds=reply.retry_after) if reply.retry_after else RETRY_DEFAULT
        return Fetched(retry_at=timezone.now() + wait, problem=f"{reply.failure()}; trying again in {wait.seconds} s")
    return Fetched(problem=reply.failure() or f"HTTP {status}")


def _one(reply, key: str) -> dict | None:
    if reply.http_status != 200 or not isinstance(reply.body, dict):
        return None
    records = reply.body.get(key) or []
    return records[0] if records else None


def _stored_payload(event: Event) -> dict | None:
    body = (
        Delivery.objects.filter(event=event, outcome=Delivery.Outcome.ACCEPTED).values_list("body", flat=True).first()
    )
    try:
        return parse_payload(body)
    except ValueError:
        return None
