"""In-memory state of simulated shops: records, tokens, scopes, limits, subscriptions, faults.

Every read and write of a shop happens under `shop.lock` (an RLock); the HTTP layer holds it for
the whole API request, so records can be changed in place. Changes made in one merchant action
are grouped with `shop.action()`, which emits their webhooks (one event id) when the block ends.
"""

import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from integrations.simulator.buckets import (
    GRAPHQL_MAXIMUM_AVAILABLE,
    GRAPHQL_RESTORE_RATE,
    REST_BUCKET_SIZE,
    REST_LEAK_RATE,
    CostBucket,
    LeakyBucket,
)
from integrations.simulator.clock import Clock, system_clock
from integrations.simulator.faults import FaultSet
from integrations.simulator.records import (
    SEED_EPOCH,
    IdSequence,
    RecordFactory,
    RecordSet,
    gid,
    join_tags,
    money,
    rest_time,
    seed_records,
    shop_id_for,
    split_tags,
)
from integrations.simulator.versions import LATEST_VERSION, resolve_version

DEFAULT_SCOPES = (
    "write_products",
    "write_inventory",
    "write_orders",
    "write_customers",
    "write_fulfillments",
    "read_locations",
)
DEFAULT_TOPICS = (
    "orders/create",
    "orders/updated",
    "orders/paid",
    "products/update",
    "inventory_levels/update",
    "customers/create",
    "customers/update",
    "fulfillments/create",
    "app/uninstalled",
    # Subscribed so an app's subscription list is complete, never sent: the simulator creates no
    # products and connects no inventory items to locations.
    "products/create",
    "inventory_levels/connect",
)
# Mandatory privacy topics: configured on the app, not subscribed per shop; always delivered.
COMPLIANCE_TOPICS = ("customers/data_request", "customers/redact", "shop/redact")
OPTIONAL_TOPICS = ("app/scopes_update",)
KNOWN_TOPICS = DEFAULT_TOPICS + COMPLIANCE_TOPICS + OPTIONAL_TOPICS
# What an app may subscribe to through the API (the privacy topics are configured on the app).
SUBSCRIBABLE_TOPICS = DEFAULT_TOPICS + OPTIONAL_TOPICS
# Scope an app needs to receive a topic; a shop without it gets no deliveries for the topic.
TOPIC_SCOPES = {
    "orders/create": "read_orders",
    "orders/updated": "read_orders",
    "orders/paid": "read_orders",
    "fulfillments/create": "read_fulfillments",
    "products/update": "read_products",
    "inventory_levels/update": "read_inventory",
    "customers/create": "read_customers",
    "customers/update": "read_customers",
}
SCOPE_DESCRIPTIONS = {
    "products": "Products, variants and collections",
    "inventory": "Inventory levels and items",
    "orders": "Orders, transactions and fulfillments",
    "customers": "Customer details and customer groups",
    "fulfillments": "Fulfillment services",
    "locations": "Store locations",
}
# Shopify's expiring offline tokens: 60-minute access tokens, refresh tokens (90 days assumed).
EXPIRING_TOKEN_LIFETIME = 3600
REFRESH_TOKEN_LIFETIME = 90 * 86400
IDEMPOTENCY_RETENTION = 24 * 3600  # secondary sources say 24 h (unconfirmed)
SHOP_REDACT_DELAY = 48 * 3600  # shop/redact follows an uninstall by 48 h
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^\+[1-9]\d{7,14}$")
PRODUCT_STATUSES = ("active", "draft", "archived")
INVENTORY_POLICIES = ("deny", "continue")


def topic_enum(topic: str) -> str:
    """GraphQL `WebhookSubscriptionTopic` value of a topic: `orders/create` -> `ORDERS_CREATE`."""
    return topic.replace("/", "_").upper()


TOPICS_BY_ENUM = {topic_enum(t): t for t in SUBSCRIBABLE_TOPICS}


def expand_scopes(scopes: list[str] | tuple[str, ...]) -> list[str]:
    """Granted handles as Shopify lists them: each write scope followed by the read scope it implies."""
    result: list[str] = []
    for scope in scopes:
        scope = scope.strip()
        if not scope:
            continue
        for handle in (scope, _implied_read(scope)):
            if handle and handle not in result:
                result.append(handle)
    return result


def _implied_read(scope: str) -> str | None:
    if scope.startswith("write_"):
        return "read_" + scope[len("write_") :]
    if scope.startswith("unauthenticated_write_"):
        return "unauthenticated_read_" + scope[len("unauthenticated_write_") :]
    return None


def scope_description(handle: str) -> str:
    """Human description of a scope handle."""
    verb, _, resource = handle.partition("_")
    what = SCOPE_DESCRIPTIONS.get(resource, resource.replace("_", " ").capitalize())
    return f"{'Modify' if verb == 'write' else 'Read'} {what[0].lower() + what[1:]}"


@dataclass
class ShopConfig:
    """Everything needed to (re)create a simulated shop."""

    domain: str
    token: str
    webhook_secret: str
    webhook_url: str | None = None
    scopes: list[str] = field(default_factory=lambda: list(DEFAULT_SCOPES))
    records: int = 200
    seed: int = 1
    name: str | None = None
    webhook_api_version: str = LATEST_VERSION
    client_id: str = "simulator-client-id"
    token_expires_in: int | None = None  # None: a non-expiring offline token (custom-app style)
    rest_bucket_size: int = REST_BUCKET_SIZE
    rest_leak_rate: float = REST_LEAK_RATE
    graphql_maximum: float = GRAPHQL_MAXIMUM_AVAILABLE
    graphql_restore_rate: float = GRAPHQL_RESTORE_RATE
    throttling: bool = True
    topics: list[str] = field(default_factory=lambda: list(DEFAULT_TOPICS))

    def describe(self) -> dict:
        """Settings with secrets masked."""
        data = dict(self.__dict__)
        data["token"] = _mask(self.token)
        data["webhook_secret"] = _mask(self.webhook_secret)
        return data


def _mask(value: str) -> str:
    return value[:6] + "…" if value else ""


@dataclass
class Token:
    """An offline access token (expiring when `expires_at` is set)."""

    value: str
    expires_at: float | None = None
    refresh_token: str | None = None
    revoked: bool = False


@dataclass
class RefreshToken:
    """A refresh token for an expiring access token."""

    value: str
    expires_at: float
    previous: str | None = None  # the refresh token this one replaced; valid until this one is used
    used: bool = False


@dataclass
class Subscription:
    """A webhook subscription; removed ones stay listed with when and why."""

    id: str
    topic: str
    address: str
    api_version: str
    name: str | None = None
    created_via: str = "api"
    created_at: float = 0.0  # shop clock, like record timestamps
    removed_at: float | None = None
    removal_reason: str | None = None

    @property
    def active(self) -> bool:
        """Not removed."""
        return self.removed_at is None

    def describe(self) -> dict:
        """JSON-able view."""
        return dict(self.__dict__, active=self.active)


@dataclass
class IdempotencyEntry:
    """What an idempotency key was used for, and its result once done."""

    fingerprint: str
    created_at: float
    result: Any = None
    done: bool = False


@dataclass
class Action:
    """Webhook events collected during one merchant/API action."""

    events: list[tuple[str, dict]] = field(default_factory=list)

    def emit(self, topic: str, payload: dict) -> None:
        """Queue `topic` with `payload` (serialised when the action ends; repeats are collapsed)."""
        for existing_topic, existing in self.events:
            if existing_topic == topic and existing is payload:
                return
        self.events.append((topic, payload))


EmitFn = Callable[["Shop", list[tuple[str, dict]]], None]


class Shop:
    """One simulated store. Public methods that change records must be called with `lock` held
    and inside `action()`; they validate nothing unless they say so."""

    def __init__(self, config: ShopConfig, *, clock: Clock = system_clock, emit: EmitFn | None = None) -> None:
        self.config = config
        self.domain = config.domain
        self.shop_id = shop_id_for(config.domain)
        self.clock = clock
        self._emit = emit
        self.lock = threading.RLock()
        self.records = RecordSet()
        self.ids = IdSequence(config.seed)
        self.rng = random.Random(config.seed)
        self.factory = RecordFactory(self.records, self.rng, self.ids)
        started = time.perf_counter()
        seed_records(self.factory, config.records)
        self.seed_seconds = time.perf_counter() - started
        self.installed = True
        self.frozen = False
        self.locked = False
        self.throttling = config.throttling
        self.rest_bucket = LeakyBucket(config.rest_bucket_size, config.rest_leak_rate, clock)
        self.graphql_bucket = CostBucket(config.graphql_maximum, config.graphql_restore_rate, clock)
        self.faults = FaultSet()
        self.tokens: dict[str, Token] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.idempotency: dict[str, IdempotencyEntry] = {}
        self.subscriptions: list[Subscription] = []
        self._subscription_ids = iter(range(1_100_000_001, 10**12))
        self._adjustment_ids = iter(range(1, 10**12))
        self.scopes: list[str] = []
        self._granted: frozenset[str] = frozenset()
        self.set_scopes(config.scopes)
        self.issue_token(config.token, expires_in=config.token_expires_in)
        if config.webhook_url:
            for topic in config.topics:
                self.subscribe(topic, config.webhook_url)

    # --- time, scopes, tokens -------------------------------------------------------------

    def now(self) -> float:
        """Current time for timestamps; never earlier than the seeded history."""
        return max(self.clock(), SEED_EPOCH + 1)

    def set_scopes(self, scopes: list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
        """Replace the granted scopes; returns (previous, current) expanded handles."""
        previous = expand_scopes(self.scopes)
        self.scopes = [s.strip() for s in scopes if s.strip()]
        current = expand_scopes(self.scopes)
        self._granted = frozenset(current)
        return previous, current

    def granted_scopes(self) -> list[str]:
        """Scope handles as the access-scopes endpoints list them."""
        return expand_scopes(self.scopes)

    def has_scope(self, handle: str) -> bool:
        """Whether `handle` is granted (directly or implied by the write scope)."""
        return handle in self._granted

    def issue_token(self, value: str | None = None, *, expires_in: int | None = None) -> dict:
        """Create an offline access token; with `expires_in` it expires and comes with a refresh token."""
        value = value or "shpat_" + secrets.token_hex(16)
        token = Token(value)
        response: dict[str, Any] = {"access_token": value, "scope": ",".join(self.granted_scopes())}
        if expires_in is not None:
            token.expires_at = self.clock() + expires_in
            refresh = RefreshToken("shprt_" + secrets.token_hex(16), self.clock() + REFRESH_TOKEN_LIFETIME)
            token.refresh_token = refresh.value
            self.refresh_tokens[refresh.value] = refresh
            response.update(
                expires_in=expires_in, refresh_token=refresh.value, refresh_token_expires_in=REFRESH_TOKEN_LIFETIME
            )
        self.tokens[value] = token
        return response

    def refresh(self, refresh_value: str) -> dict | None:
        """Exchange a refresh token for a new access token and a rotated refresh token.

        The refresh token that was replaced stays valid until its successor is first used.
        Returns None when the refresh token is unknown, expired or already superseded.
        """
        refresh = self.refresh_tokens.get(refresh_value)
        if refresh is None or refresh.expires_at <= self.clock() or not self.installed:
            return None
        if refresh.previous:
            self.refresh_tokens.pop(refresh.previous, None)
            refresh.previous = None
        refresh.used = True
        response = self.issue_token(expires_in=EXPIRING_TOKEN_LIFETIME)
        self.refresh_tokens[response["refresh_token"]].previous = refresh_value
        return response

    def authenticate(self, value: str | None) -> str | None:
        """None when `value` is a live token for an installed app, else why not."""
        token = self.tokens.get(value or "")
        if token is None:
            return "unknown token"
        if token.revoked or not self.installed:
            return "revoked token"
        if token.expires_at is not None and token.expires_at <= self.clock():
            return "expired token"
        return None

    def revoke_tokens(self, value: str | None = None) -> int:
        """Revoke one token or all; returns how many were revoked."""
        count = 0
        for token in self.tokens.values():
            if (value is None or token.value == value) and not token.revoked:
                token.revoked = True
                count += 1
        if value is None:
            self.refresh_tokens.clear()
        return count

    def expire_tokens(self, value: str | None = None) -> int:
        """Make one or all expiring tokens expire now (non-expiring ones become expiring-and-expired)."""
        count = 0
        for token in self.tokens.values():
            if value is None or token.value == value:
                token.expires_at = self.clock()
                count += 1
        return count

    # --- subscriptions ----------------------------------------------------------------------

    def subscribe(
        self, topic: str, address: str, *, api_version: str | None = None, name: str | None = None
    ) -> Subscription:
        """Add an API-created subscription."""
        subscription = Subscription(
            id=gid("WebhookSubscription", next(self._subscription_ids)),
            topic=topic,
            address=address,
            api_version=resolve_version(api_version or self.config.webhook_api_version),
            name=name,
            created_at=self.now(),
        )
        self.subscriptions.append(subscription)
        return subscription

    def active_subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """Live subscriptions for `topic` (every topic when None)."""
        return [s for s in self.subscriptions if s.active and (topic is None or s.topic == topic)]

    def find_subscription(self, subscription_id: str) -> Subscription | None:
        """The live subscription with this gid, or None."""
        return next((s for s in self.subscriptions if s.active and s.id == subscription_id), None)

    def remove_subscription(self, subscription_id: str, reason: str) -> Subscription | None:
        """Mark a subscription removed (kept in the list for the record)."""
        for subscription in self.subscriptions:
            if subscription.id == subscription_id and subscription.active:
                subscription.removed_at = time.time()
                subscription.removal_reason = reason
                return subscription
        return None

    # --- actions and webhooks ---------------------------------------------------------------

    @contextmanager
    def action(self) -> Iterator[Action]:
        """Group changes into one merchant action; their webhooks share one event id."""
        act = Action()
        with self.lock:
            yield act
            if act.events and self._emit is not None:
                self._emit(self, act.events)

    def touch(self, record: dict) -> str:
        """Stamp `updated_at` with the current time; returns the stamp."""
        stamp = rest_time(self.now())
        record["updated_at"] = stamp
        return stamp

    def shop_payload(self) -> dict:
        """The Shop object (app/uninstalled payload, REST shop.json)."""
        name = self.config.name or self.domain.split(".")[0].replace("-", " ").title()
        return {
            "id": self.shop_id,
            "name": name,
            "email": f"owner@{self.domain.split('.')[0]}.example",
            "domain": self.domain,
            "myshopify_domain": self.domain,
            "plan_name": "basic",
            "plan_display_name": "Basic",
            "currency": "USD",
            "iana_timezone": "America/New_York",
            "created_at": rest_time(SEED_EPOCH - 400 * 86400),
            "updated_at": rest_time(self.now()),
        }

    # --- reads ------------------------------------------------------------------------------

    def find(self, kind: str, record_id: int, params: dict | None = None) -> dict | None:
        """A record by GraphQL type name and numeric id (InventoryLevel: id = location id)."""
        r = self.records
        if kind == "InventoryLevel":
            item_id = int((params or {}).get("inventory_item_id", 0) or 0)
            return r.levels.get((item_id, record_id))
        if kind == "LineItem":
            found = r.line_items.get(record_id)
            return found[1] if found else None
        table = {
            "Product": r.products,
            "ProductVariant": r.variants,
            "InventoryItem": r.inventory_items,
            "Location": r.locations,
            "Customer": r.customers,
            "Order": r.orders,
            "Fulfillment": r.fulfillments,
        }.get(kind)
        return table.get(record_id) if table is not None else None

    def on_hand(self, item_id: int, location_id: int) -> int:
        """Available plus committed stock at a level."""
        level = self.records.levels[(item_id, location_id)]
        return (level["available"] or 0) + self.records.committed.get((item_id, location_id), 0)

    # --- writes -----------------------------------------------------------------------------

    def update_product(self, act: Action, product: dict, changes: dict) -> None:
        """Apply REST-named product changes (title, body_html, vendor, product_type, status, tags, handle)."""
        product.update(changes)
        if "tags" in changes:
            product["tags"] = join_tags(
                split_tags(changes["tags"]) if isinstance(changes["tags"], str) else changes["tags"]
            )
        self.touch(product)
        act.emit("products/update", product)

    def update_variant(self, act: Action, variant: dict, changes: dict) -> None:
        """Apply REST-named variant changes; `sku` also renames the inventory item."""
        variant.update(changes)
        if "sku" in changes:
            item = self.records.inventory_items.get(variant["inventory_item_id"])
            if item:
                item["sku"] = changes["sku"]
                self.touch(item)
        stamp = self.touch(variant)
        product = self.records.products[variant["product_id"]]
        product["updated_at"] = stamp
        act.emit("products/update", product)

    def set_available(self, act: Action, item_id: int, location_id: int, available: int) -> int:
        """Set `available` at a level; returns the delta. Emits inventory_levels/update when it changes."""
        level = self.records.levels[(item_id, location_id)]
        delta = available - (level["available"] or 0)
        if delta == 0:
            return 0
        level["available"] = available
        stamp = self.touch(level)
        variant = self.records.variant_by_item.get(item_id)
        if variant is not None:
            variant["old_inventory_quantity"] = variant["inventory_quantity"]
            variant["inventory_quantity"] = sum(
                self.records.levels[(item_id, loc)]["available"] or 0 for loc in self.records.item_locations[item_id]
            )
            variant["updated_at"] = stamp
        act.emit("inventory_levels/update", level)
        return delta

    def update_customer(self, act: Action, customer: dict, changes: dict) -> None:
        """Apply REST-named customer changes (email, first_name, last_name, phone, note, tags)."""
        old_email = (customer.get("email") or "").lower()
        customer.update(changes)
        if "tags" in changes:
            customer["tags"] = join_tags(
                split_tags(changes["tags"]) if isinstance(changes["tags"], str) else changes["tags"]
            )
        if "email" in changes:
            self.records.customer_by_email.pop(old_email, None)
            if customer["email"]:
                self.records.customer_by_email[customer["email"].lower()] = customer["id"]
        self.touch(customer)
        act.emit("customers/update", customer)

    def create_customer(
        self, act: Action, *, first_name: str | None = None, last_name: str | None = None, email: str | None = None
    ) -> dict:
        """Add a customer (random name unless given)."""
        customer = self.factory.customer(self.now(), first_name, last_name, email)
        act.emit("customers/create", customer)
        return customer

    def update_order(self, act: Action, order: dict, changes: dict) -> None:
        """Apply REST-named order changes (email, note, tags, shipping_address)."""
        order.update(changes)
        if "tags" in changes:
            order["tags"] = join_tags(
                split_tags(changes["tags"]) if isinstance(changes["tags"], str) else changes["tags"]
            )
        self.touch(order)
        act.emit("orders/updated", order)

    def create_order(
        self,
        act: Action,
        *,
        customer: dict | None,
        lines: list[tuple[dict, int]],
        financial_status: str = "paid",
    ) -> dict:
        """Place an order: stock moves from available to committed at the first location that has it."""
        order = self.factory.order(self.now(), customer, lines, financial_status=financial_status)
        for variant, quantity in lines:
            item_id = variant["inventory_item_id"]
            locations = self.records.item_locations.get(item_id, [])
            if not locations:
                continue
            location_id = next(
                (loc for loc in locations if (self.records.levels[(item_id, loc)]["available"] or 0) >= quantity),
                locations[0],
            )
            level = self.records.levels[(item_id, location_id)]
            self.set_available(act, item_id, location_id, (level["available"] or 0) - quantity)
            self.records.committed[(item_id, location_id)] = (
                self.records.committed.get((item_id, location_id), 0) + quantity
            )
        act.emit("orders/create", order)
        if financial_status == "paid":
            act.emit("orders/paid", order)
        return order

    def mark_paid(self, act: Action, order: dict) -> None:
        """Capture payment: financial_status becomes paid."""
        order["financial_status"] = "paid"
        order["total_outstanding"] = "0.00"
        self.touch(order)
        act.emit("orders/paid", order)
        act.emit("orders/updated", order)

    def fulfill(self, act: Action, order: dict, location_id: int | None = None) -> dict:
        """Fulfil everything still open on the order; committed stock leaves the shelf."""
        location_id = location_id or self.records.locations.ids[0]
        for item in order["line_items"]:
            variant = self.records.variants.get(item["variant_id"])
            if variant is None or item["fulfillable_quantity"] <= 0:
                continue
            key = (variant["inventory_item_id"], location_id)
            if key in self.records.committed:
                self.records.committed[key] = max(0, self.records.committed[key] - item["fulfillable_quantity"])
        fulfillment = self.factory.fulfillment(order, location_id, self.now())
        self.touch(order)
        act.emit("fulfillments/create", fulfillment)
        act.emit("orders/updated", order)
        return fulfillment

    def next_adjustment_group_id(self) -> str:
        """A fresh InventoryAdjustmentGroup gid."""
        return gid("InventoryAdjustmentGroup", 30_000_000_000 + next(self._adjustment_ids))

    # --- idempotency ------------------------------------------------------------------------

    def idempotency_entry(self, key: str) -> IdempotencyEntry | None:
        """The live entry for `key`, forgetting entries older than the retention window."""
        entry = self.idempotency.get(key)
        if entry is not None and entry.created_at + IDEMPOTENCY_RETENTION <= self.clock():
            del self.idempotency[key]
            return None
        return entry

    def begin_idempotent(self, key: str, fingerprint: str) -> IdempotencyEntry:
        """Register `key` as in progress."""
        entry = IdempotencyEntry(fingerprint, self.clock())
        self.idempotency[key] = entry
        return entry

    # --- summaries --------------------------------------------------------------------------

    def describe(self) -> dict:
        """State for the control interface."""
        return {
            "domain": self.domain,
            "shop_id": self.shop_id,
            "installed": self.installed,
            "frozen": self.frozen,
            "locked": self.locked,
            "scopes": self.granted_scopes(),
            "throttling": self.throttling,
            "rest_bucket": {
                "size": self.rest_bucket.size,
                "leak_rate": self.rest_bucket.leak_rate,
                "level": round(self.rest_bucket.level, 3),
            },
            "graphql_bucket": self.graphql_bucket.status(),
            "tokens": [
                {
                    "token": _mask(t.value),
                    "expires_at": t.expires_at,
                    "revoked": t.revoked,
                    "has_refresh_token": bool(t.refresh_token),
                }
                for t in self.tokens.values()
            ],
            "subscriptions": [s.describe() for s in self.subscriptions],
            "faults": self.faults.describe(),
            "counts": self.records.counts(),
            "config": self.config.describe(),
        }


# --- validation shared by the REST and GraphQL layers --------------------------------------
# Each returns {rest_field: [message, ...]}; GraphQL turns it into userErrors.


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _money_error(value: Any) -> str | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return "is invalid"
    if not amount.is_finite():
        return "is invalid"
    if amount < 0:
        return "must be greater than or equal to 0"
    return None


def validate_product(shop: Shop, product: dict, changes: dict) -> dict[str, list[str]]:
    """Errors in REST-named product changes."""
    errors: dict[str, list[str]] = {}
    if "title" in changes:
        if _blank(changes["title"]):
            errors.setdefault("title", []).append("can't be blank")
        elif len(changes["title"]) > 255:
            errors.setdefault("title", []).append("is too long (maximum is 255 characters)")
    if "status" in changes and changes["status"] not in PRODUCT_STATUSES:
        errors.setdefault("status", []).append("is not included in the list")
    if "handle" in changes:
        handle = changes["handle"]
        if _blank(handle):
            errors.setdefault("handle", []).append("can't be blank")
        elif any(p["handle"] == handle and p["id"] != product["id"] for p in shop.records.products.values()):
            errors.setdefault("handle", []).append("has already been taken")
    return errors


def validate_variant(changes: dict) -> dict[str, list[str]]:
    """Errors in REST-named variant changes."""
    errors: dict[str, list[str]] = {}
    for name in ("price", "compare_at_price"):
        if name in changes:
            if name == "price" and changes[name] is None:
                errors.setdefault(name, []).append("can't be blank")
            elif message := _money_error(changes[name]):
                errors.setdefault(name, []).append(message)
    if "inventory_policy" in changes and changes["inventory_policy"] not in INVENTORY_POLICIES:
        errors.setdefault("inventory_policy", []).append("is not included in the list")
    if "sku" in changes and changes["sku"] is not None and len(changes["sku"]) > 255:
        errors.setdefault("sku", []).append("is too long (maximum is 255 characters)")
    return errors


def validate_customer(shop: Shop, customer: dict, changes: dict) -> dict[str, list[str]]:
    """Errors in REST-named customer changes."""
    errors: dict[str, list[str]] = {}
    if "email" in changes and changes["email"] is not None:
        email = changes["email"]
        if not EMAIL_RE.match(email):
            errors.setdefault("email", []).append("is invalid")
        elif shop.records.customer_by_email.get(email.lower(), customer["id"]) != customer["id"]:
            errors.setdefault("email", []).append("has already been taken")
    if "phone" in changes and changes["phone"] is not None and not PHONE_RE.match(changes["phone"]):
        errors.setdefault("phone", []).append("is invalid")
    for name in ("first_name", "last_name"):
        if name in changes and changes[name] is not None and len(changes[name]) > 255:
            errors.setdefault(name, []).append("is too long (maximum is 255 characters)")
    return errors


def validate_order(changes: dict) -> dict[str, list[str]]:
    """Errors in REST-named order changes."""
    errors: dict[str, list[str]] = {}
    if "email" in changes and changes["email"] is not None and not EMAIL_RE.match(changes["email"]):
        errors.setdefault("email", []).append("is invalid")
    if "note" in changes and changes["note"] is not None and len(changes["note"]) > 5000:
        errors.setdefault("note", []).append("is too long (maximum is 5000 characters)")
    return errors


def decimal_money(value: Any) -> str:
    """A validated money value as Shopify's two-decimal string."""
    return money(Decimal(str(value)))


class Store:
    """All simulated shops by domain."""

    def __init__(self, *, clock: Clock = system_clock, emit: EmitFn | None = None) -> None:
        self.clock = clock
        self.emit = emit
        self._shops: dict[str, Shop] = {}
        self._lock = threading.Lock()

    def create(self, config: ShopConfig) -> Shop:
        """Create (or replace) a shop from `config`, seeding its records."""
        config.domain = config.domain.strip().lower()
        shop = Shop(config, clock=self.clock, emit=self.emit)
        with self._lock:
            self._shops[config.domain] = shop
        return shop

    def get(self, domain: str) -> Shop | None:
        """The shop, or None."""
        return self._shops.get(domain)

    def delete(self, domain: str) -> bool:
        """Forget a shop; False when there was none."""
        with self._lock:
            return self._shops.pop(domain, None) is not None

    def all(self) -> list[Shop]:
        """Every shop."""
        return list(self._shops.values())

    def reset(self) -> None:
        """Forget every shop."""
        with self._lock:
            self._shops.clear()
