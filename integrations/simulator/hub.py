"""Turns record changes into webhook deliveries: finds the subscriptions, serialises and signs
payloads, applies the shop's webhook faults, keeps the delivery log, and removes a subscription
whose delivery failed every retry."""

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace

from integrations.simulator.store import COMPLIANCE_TOPICS, TOPIC_SCOPES, Shop
from integrations.simulator.versions import resolve_version
from integrations.simulator.webhooks import Delivery, WebhookSender, next_uid, triggered_at

MAX_LOGGED_DELIVERIES = 20_000  # per shop; the oldest are forgotten first
DUPLICATE_SPACING = 0.01  # seconds between an original and its injected copies


class WebhookHub:
    """Emits Shopify-shaped webhooks for shop actions and records every delivery."""

    def __init__(self, sender: WebhookSender, shop_lookup: Callable[[str], Shop | None]) -> None:
        self.sender = sender
        self.sender.on_exhausted = self._exhausted
        self._shop_lookup = shop_lookup
        self._log: dict[str, OrderedDict[int, Delivery]] = {}
        self._held: dict[str, list[tuple[Delivery, float]]] = {}
        self.removals: list[dict] = []
        self._lock = threading.Lock()

    # --- emission ---------------------------------------------------------------------------

    def emit(self, shop: Shop, events: list[tuple[str, dict]]) -> list[Delivery]:
        """Deliver one action's events (one shared event id) to every matching address."""
        event_id = str(uuid.uuid4())
        fired = triggered_at(time.time())
        deliveries = []
        for topic, payload in events:
            body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
            for address, version, subscription_id, name in self._targets(shop, topic):
                delivery = Delivery(
                    shop_domain=shop.domain,
                    topic=topic,
                    address=address,
                    api_version=version,
                    body=body,
                    secret=shop.config.webhook_secret,
                    event_id=event_id,
                    triggered_at=fired,
                    subscription_id=subscription_id,
                    name=name,
                )
                deliveries.append(delivery)
                self._dispatch(shop, delivery)
        return deliveries

    def _targets(self, shop: Shop, topic: str) -> list[tuple[str, str, str | None, str | None]]:
        if topic in COMPLIANCE_TOPICS:
            # Compliance webhooks go to the app's configured address, whatever the subscriptions.
            url = shop.config.webhook_url
            return [(url, resolve_version(shop.config.webhook_api_version), None, None)] if url else []
        needed = TOPIC_SCOPES.get(topic)
        if needed and not shop.has_scope(needed):
            return []
        return [(s.address, s.api_version, s.id, s.name) for s in shop.active_subscriptions(topic)]

    def _dispatch(self, shop: Shop, delivery: Delivery) -> None:
        faults = shop.faults
        self._record(delivery)
        if faults.hit("drop_delivery"):
            delivery.status = "dropped"
            delivery.faults.append("drop_delivery")
            return
        if faults.hit("wrong_signature"):
            delivery.wrong_signature = True
            delivery.faults.append("wrong_signature")
        delay = 0.0
        if fault := faults.hit("delay"):
            delay = float(fault.params["seconds"])
            delivery.faults.append("delay")
        batch = [(delivery, delay)]
        if fault := faults.hit("duplicate_delivery"):
            delivery.faults.append("duplicate_delivery")
            for n in range(int(fault.params["copies"])):
                copy = replace(
                    delivery,
                    uid=next_uid(),
                    copy_of=delivery.uid,
                    attempts=[],
                    faults=[*delivery.faults],
                    created_at=time.time(),
                )
                self._record(copy)
                batch.append((copy, delay + DUPLICATE_SPACING * (n + 1)))
        if fault := faults.hit("out_of_order"):
            for item, _ in batch:
                item.faults.append("out_of_order")
            self._hold(shop.domain, batch, float(fault.params["window"]), float(fault.params["gap"]))
            return
        for item, item_delay in batch:
            self.sender.submit(item, item_delay)

    def _hold(self, domain: str, batch: list[tuple[Delivery, float]], window: float, gap: float) -> None:
        with self._lock:
            first = domain not in self._held
            self._held.setdefault(domain, []).extend(batch)
        if first:
            self.sender.call_later(window, lambda: self._release(domain, gap))

    def _release(self, domain: str, gap: float) -> None:
        """Send the held deliveries newest first, `gap` seconds apart."""
        with self._lock:
            held = self._held.pop(domain, [])
        for position, (delivery, delay) in enumerate(reversed(held)):
            self.sender.submit(delivery, delay + position * gap)

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            log = self._log.setdefault(delivery.shop_domain, OrderedDict())
            log[delivery.uid] = delivery
            while len(log) > MAX_LOGGED_DELIVERIES:
                log.popitem(last=False)

    # --- failure handling -------------------------------------------------------------------

    def _exhausted(self, delivery: Delivery) -> None:
        """Every retry failed: remove the API-created subscription, as Shopify does."""
        if delivery.subscription_id is None or delivery.copy_of is not None:
            return
        shop = self._shop_lookup(delivery.shop_domain)
        if shop is None:
            return
        reason = f"{len(delivery.attempts)} consecutive failed attempts (last: {_last_outcome(delivery)})"
        with shop.lock:
            removed = shop.remove_subscription(delivery.subscription_id, reason)
        if removed is None:
            return
        cancelled = 0
        with self._lock:
            for other in self._log.get(delivery.shop_domain, {}).values():
                if other.subscription_id == removed.id and other.status == "pending":
                    other.status = "cancelled"
                    cancelled += 1
            self.removals.append(
                {
                    "shop_domain": delivery.shop_domain,
                    "subscription_id": removed.id,
                    "topic": removed.topic,
                    "address": removed.address,
                    "reason": reason,
                    "webhook_id": delivery.webhook_id,
                    "cancelled_pending_deliveries": cancelled,
                    "at": time.time(),
                }
            )

    # --- queries ----------------------------------------------------------------------------

    def deliveries(
        self, domain: str, *, topic: str | None = None, status: str | None = None, webhook_id: str | None = None
    ) -> list[Delivery]:
        """Logged deliveries of a shop, oldest first, optionally filtered."""
        with self._lock:
            items = list(self._log.get(domain, {}).values())
        return [
            d
            for d in items
            if (topic is None or d.topic == topic)
            and (status is None or d.status == status)
            and (webhook_id is None or d.webhook_id == webhook_id)
        ]

    def forget(self, domain: str | None = None) -> None:
        """Drop the delivery log (of one shop or all) and cancel what is still pending."""
        with self._lock:
            logs = [self._log.pop(domain, OrderedDict())] if domain else list(self._log.values())
            if domain is None:
                self._log.clear()
                self._held.clear()
                self.removals.clear()
            else:
                self._held.pop(domain, None)
        for log in logs:
            for delivery in log.values():
                if delivery.status == "pending":
                    delivery.status = "cancelled"


def _last_outcome(delivery: Delivery) -> str:
    if not delivery.attempts:
        return "none"
    last = delivery.attempts[-1]
    return f"HTTP {last.status_code}" if last.status_code is not None else str(last.error)
