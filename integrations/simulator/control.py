"""The control interface under `/_simulator/`: create and reset shops, change scopes, tokens
and shop state, edit records behind the console's back, place orders, inject faults, and list
webhook deliveries. JSON in, JSON out; errors are `{"error": "..."}` with 400/404/422.
"""

import re
import time
from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from integrations.simulator.faults import FAULT_KINDS, FaultError
from integrations.simulator.records import gid, rest_time
from integrations.simulator.responses import Request, Response, json_response
from integrations.simulator.store import (
    COMPLIANCE_TOPICS,
    KNOWN_TOPICS,
    SHOP_REDACT_DELAY,
    Action,
    Shop,
    ShopConfig,
)

if TYPE_CHECKING:
    from integrations.simulator.server import Simulator

PREFIX = "/_simulator"
DOMAIN_RE = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
MAX_RECORDS = 100_000
RECORD_KINDS = (
    "products",
    "variants",
    "inventory_items",
    "inventory_levels",
    "locations",
    "customers",
    "orders",
    "fulfillments",
)
PROTECTED_KEYS = frozenset(
    {
        "id",
        "admin_graphql_api_id",
        "product_id",
        "inventory_item_id",
        "location_id",
        "order_id",
        "variants",
        "line_items",
        "fulfillments",
    }
)


class ControlError(Exception):
    """A control request that cannot be served; becomes `{"error": ...}` with `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _body(request: Request) -> dict:
    try:
        data = request.json()
    except ValueError as exc:
        raise ControlError(400, f"Body is not JSON: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ControlError(400, "Body must be a JSON object")
    return data


def _int(value: Any, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ControlError(400, f"{name} must be an integer") from exc


def config_from(data: dict) -> ShopConfig:
    """A validated ShopConfig from control/CLI input."""
    allowed = {f.name for f in fields(ShopConfig)}
    unknown = set(data) - allowed
    if unknown:
        raise ControlError(400, f"Unknown shop settings: {', '.join(sorted(unknown))}")
    for required in ("domain", "token", "webhook_secret"):
        if not data.get(required):
            raise ControlError(400, f"{required} is required")
    data = dict(data)
    data["domain"] = str(data["domain"]).strip().lower()
    if not DOMAIN_RE.match(data["domain"]):
        raise ControlError(400, "domain must look like example-store.myshopify.com")
    if isinstance(data.get("scopes"), str):
        data["scopes"] = [s for s in data["scopes"].split(",") if s.strip()]
    if isinstance(data.get("topics"), str):
        data["topics"] = [s for s in data["topics"].split(",") if s.strip()]
    unknown_topics = set(data.get("topics") or ()) - set(KNOWN_TOPICS)
    if unknown_topics:
        raise ControlError(400, f"Unknown topics: {', '.join(sorted(unknown_topics))}")
    if "records" in data and not 0 <= _int(data["records"], "records") <= MAX_RECORDS:
        raise ControlError(400, f"records must be between 0 and {MAX_RECORDS}")
    return ShopConfig(**data)


class Control:
    """Routes `/_simulator/...` requests to the simulator."""

    def __init__(self, simulator: "Simulator") -> None:
        self.sim = simulator
        self.routes: list[tuple[str, re.Pattern, Callable[..., Any]]] = [
            (m, re.compile(p), h)
            for m, p, h in [
                ("GET", r"/health", self._health),
                ("POST", r"/reset", self._reset_all),
                ("GET", r"/shops", self._list_shops),
                ("POST", r"/shops", self._create_shop),
                ("GET", r"/shops/([^/]+)", self._get_shop),
                ("DELETE", r"/shops/([^/]+)", self._delete_shop),
                ("POST", r"/shops/([^/]+)/reset", self._reset_shop),
                ("PUT", r"/shops/([^/]+)/scopes", self._set_scopes),
                ("POST", r"/shops/([^/]+)/tokens", self._issue_token),
                ("POST", r"/shops/([^/]+)/revoke-token", self._revoke_token),
                ("POST", r"/shops/([^/]+)/expire-token", self._expire_token),
                ("POST", r"/shops/([^/]+)/uninstall", self._uninstall),
                ("POST", r"/shops/([^/]+)/install", self._install),
                ("POST", r"/shops/([^/]+)/(freeze|unfreeze|lock|unlock)", self._set_state),
                ("PUT", r"/shops/([^/]+)/limits", self._set_limits),
                ("GET", r"/shops/([^/]+)/faults", self._list_faults),
                ("POST", r"/shops/([^/]+)/faults", self._set_fault),
                ("DELETE", r"/shops/([^/]+)/faults", self._clear_faults),
                ("DELETE", r"/shops/([^/]+)/faults/(\w+)", self._clear_fault),
                ("GET", r"/shops/([^/]+)/subscriptions", self._list_subscriptions),
                ("POST", r"/shops/([^/]+)/subscriptions", self._add_subscription),
                ("DELETE", r"/shops/([^/]+)/subscriptions/(.+)", self._delete_subscription),
                ("GET", r"/shops/([^/]+)/subscription-removals", self._subscription_removals),
                ("GET", r"/shops/([^/]+)/deliveries", self._list_deliveries),
                ("GET", r"/shops/([^/]+)/records/(\w+)", self._list_records),
                ("GET", r"/shops/([^/]+)/records/(\w+)/([\d:]+)", self._get_record),
                ("PATCH", r"/shops/([^/]+)/records/(\w+)/([\d:]+)", self._edit_record),
                ("POST", r"/shops/([^/]+)/orders", self._create_order),
                ("POST", r"/shops/([^/]+)/orders/(\d+)/pay", self._pay_order),
                ("POST", r"/shops/([^/]+)/orders/(\d+)/fulfill", self._fulfill_order),
                ("POST", r"/shops/([^/]+)/customers", self._create_customer),
                ("POST", r"/shops/([^/]+)/inventory", self._change_inventory),
                (
                    "POST",
                    r"/shops/([^/]+)/privacy/(customers-data-request|customers-redact|shop-redact)",
                    self._privacy,
                ),
                ("GET", r"/shops/([^/]+)/traffic", self._traffic_status),
                ("POST", r"/shops/([^/]+)/traffic", self._start_traffic),
                ("DELETE", r"/shops/([^/]+)/traffic", self._stop_traffic),
            ]
        ]

    def handle(self, request: Request) -> Response:
        """Dispatch one control request."""
        path = unquote(request.path[len(PREFIX) :]) or "/"
        path = path.rstrip("/") or "/"
        matched_path = False
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            matched_path = True
            if method != request.method:
                continue
            try:
                status, data = handler(request, *match.groups())
            except ControlError as error:
                return json_response(error.status, {"error": str(error)})
            except (FaultError, ValueError, TypeError) as error:
                return json_response(400, {"error": str(error)})
            return json_response(status, data)
        return json_response(405 if matched_path else 404, {"error": "No such control endpoint", "path": request.path})

    def _shop(self, domain: str) -> Shop:
        shop = self.sim.store.get(domain.lower())
        if shop is None:
            raise ControlError(404, f"No simulated shop {domain}")
        return shop

    # --- shops ------------------------------------------------------------------------------

    def _health(self, request: Request) -> tuple[int, dict]:
        return 200, {
            "ok": True,
            "shops": [s.domain for s in self.sim.store.all()],
            "time_scale": self.sim.sender.time_scale,
        }

    def _reset_all(self, request: Request) -> tuple[int, dict]:
        self.sim.reset()
        return 200, {"ok": True}

    def _list_shops(self, request: Request) -> tuple[int, dict]:
        return 200, {"shops": [self._describe(s) for s in self.sim.store.all()]}

    def _create_shop(self, request: Request) -> tuple[int, dict]:
        shop = self.sim.create_shop(config_from(_body(request)))
        return 201, self._describe(shop)

    def _get_shop(self, request: Request, domain: str) -> tuple[int, dict]:
        return 200, self._describe(self._shop(domain))

    def _delete_shop(self, request: Request, domain: str) -> tuple[int, dict]:
        self._shop(domain)
        self.sim.delete_shop(domain.lower())
        return 200, {"deleted": domain.lower()}

    def _reset_shop(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self.sim.create_shop(self._shop(domain).config)
        return 200, self._describe(shop)

    def _describe(self, shop: Shop) -> dict:
        with shop.lock:
            data = shop.describe()
        data["webhook_retry_schedule_seconds"] = self.sim.sender.retry_schedule()
        data["traffic"] = self.sim.traffic_running(shop.domain)
        return data

    # --- access -----------------------------------------------------------------------------

    def _set_scopes(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        scopes = _body(request).get("scopes")
        if isinstance(scopes, str):
            scopes = scopes.split(",")
        if not isinstance(scopes, list):
            raise ControlError(400, "scopes must be a list or a comma-separated string")
        with shop.action() as act:
            previous, current = shop.set_scopes(scopes)
            act.emit(
                "app/scopes_update",
                {
                    "id": shop.shop_id,
                    "shop_id": gid("Shop", shop.shop_id),
                    "previous": previous,
                    "current": current,
                    "updated_at": rest_time(shop.now()),
                },
            )
        return 200, {"previous": previous, "current": current}

    def _issue_token(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        expires_in = data.get("expires_in")
        with shop.lock:
            issued = shop.issue_token(
                data.get("token"), expires_in=None if expires_in is None else _int(expires_in, "expires_in")
            )
        return 201, issued

    def _revoke_token(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        with shop.lock:
            count = shop.revoke_tokens(_body(request).get("token"))
        return 200, {"revoked": count}

    def _expire_token(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        with shop.lock:
            count = shop.expire_tokens(_body(request).get("token"))
        return 200, {"expired": count}

    def _uninstall(self, request: Request, domain: str) -> tuple[int, dict]:
        """Uninstall the app: tokens revoked, app/uninstalled sent, subscriptions gone, and
        shop/redact 48 h later (time-scaled, or `shop_redact_after` seconds)."""
        shop = self._shop(domain)
        data = _body(request)
        delay = data.get("shop_redact_after")
        delay = SHOP_REDACT_DELAY * self.sim.sender.time_scale if delay is None else float(delay)
        with shop.action() as act:
            shop.installed = False
            shop.revoke_tokens()
            act.emit("app/uninstalled", shop.shop_payload())
        with shop.lock:
            for subscription in shop.subscriptions:
                if subscription.active:
                    shop.remove_subscription(subscription.id, "app uninstalled")
        self.sim.sender.call_later(delay, lambda: self._shop_redact(shop))
        return 200, {"uninstalled": shop.domain, "shop_redact_in_seconds": delay}

    def _shop_redact(self, shop: Shop) -> None:
        if shop.installed or self.sim.store.get(shop.domain) is not shop:
            return  # reinstalled or replaced meanwhile
        with shop.action() as act:
            act.emit("shop/redact", {"shop_id": shop.shop_id, "shop_domain": shop.domain})

    def _install(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        with shop.lock:
            if data.get("scopes"):
                shop.set_scopes(data["scopes"] if isinstance(data["scopes"], list) else data["scopes"].split(","))
            shop.installed = True
            issued = shop.issue_token(data.get("token"), expires_in=data.get("expires_in"))
            if shop.config.webhook_url and not any(s.active for s in shop.subscriptions):
                for topic in shop.config.topics:
                    shop.subscribe(topic, shop.config.webhook_url)
        return 200, issued

    def _set_state(self, request: Request, domain: str, action: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        with shop.lock:
            if action in ("freeze", "unfreeze"):
                shop.frozen = action == "freeze"
            else:
                shop.locked = action == "lock"
        return 200, {"frozen": shop.frozen, "locked": shop.locked}

    def _set_limits(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        with shop.lock:
            rest = shop.rest_bucket
            graphql = shop.graphql_bucket
            rest.resize(int(data.get("rest_bucket_size", rest.size)), float(data.get("rest_leak_rate", rest.leak_rate)))
            graphql.resize(
                float(data.get("graphql_maximum", graphql.maximum)),
                float(data.get("graphql_restore_rate", graphql.restore_rate)),
            )
            if "throttling" in data:
                shop.throttling = bool(data["throttling"])
        return 200, self._describe(shop)

    # --- faults -----------------------------------------------------------------------------

    def _list_faults(self, request: Request, domain: str) -> tuple[int, dict]:
        return 200, {"faults": self._shop(domain).faults.describe(), "kinds": list(FAULT_KINDS)}

    def _set_fault(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        kind = data.get("kind")
        fault = shop.faults.set(
            kind,
            rate=float(data.get("rate", 1.0)),
            seed=_int(data.get("seed", 0), "seed"),
            count=None if data.get("count") is None else _int(data["count"], "count"),
            params=data.get("params") or {},
        )
        if kind == "small_bucket":
            with shop.lock:
                shop.rest_bucket.resize(int(fault.params["rest_size"]), float(fault.params["rest_leak_rate"]))
                shop.graphql_bucket.resize(
                    float(fault.params["graphql_maximum"]), float(fault.params["graphql_restore_rate"])
                )
        return 201, fault.describe()

    def _restore_limits(self, shop: Shop) -> None:
        config = shop.config
        with shop.lock:
            shop.rest_bucket.resize(config.rest_bucket_size, config.rest_leak_rate)
            shop.graphql_bucket.resize(config.graphql_maximum, config.graphql_restore_rate)

    def _clear_faults(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        had_small_bucket = shop.faults.get("small_bucket") is not None
        shop.faults.clear()
        if had_small_bucket:
            self._restore_limits(shop)
        return 200, {"faults": []}

    def _clear_fault(self, request: Request, domain: str, kind: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        if kind not in FAULT_KINDS:
            raise ControlError(404, f"Unknown fault kind {kind}")
        shop.faults.clear(kind)
        if kind == "small_bucket":
            self._restore_limits(shop)
        return 200, {"faults": shop.faults.describe()}

    # --- subscriptions and deliveries --------------------------------------------------------

    def _list_subscriptions(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        with shop.lock:
            return 200, {
                "subscriptions": [s.describe() for s in shop.subscriptions],
                "compliance_topics": list(COMPLIANCE_TOPICS),
            }

    def _add_subscription(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        if data.get("topic") not in KNOWN_TOPICS or data.get("topic") in COMPLIANCE_TOPICS:
            raise ControlError(
                400, f"topic must be one of {', '.join(t for t in KNOWN_TOPICS if t not in COMPLIANCE_TOPICS)}"
            )
        if not data.get("address"):
            raise ControlError(400, "address is required")
        with shop.lock:
            subscription = shop.subscribe(
                data["topic"], data["address"], api_version=data.get("api_version"), name=data.get("name")
            )
        return 201, subscription.describe()

    def _delete_subscription(self, request: Request, domain: str, subscription_id: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        if subscription_id.isdigit():
            subscription_id = gid("WebhookSubscription", int(subscription_id))
        with shop.lock:
            removed = shop.remove_subscription(subscription_id, "deleted through the control interface")
        if removed is None:
            raise ControlError(404, f"No active subscription {subscription_id}")
        return 200, removed.describe()

    def _subscription_removals(self, request: Request, domain: str) -> tuple[int, dict]:
        self._shop(domain)
        return 200, {"removals": [r for r in self.sim.hub.removals if r["shop_domain"] == domain.lower()]}

    def _list_deliveries(self, request: Request, domain: str) -> tuple[int, dict]:
        self._shop(domain)
        params = request.params()
        deliveries = self.sim.hub.deliveries(
            domain.lower(), topic=params.get("topic"), status=params.get("status"), webhook_id=params.get("webhook_id")
        )
        with_body = params.get("body") in ("1", "true", "yes")
        return 200, {"deliveries": [d.describe(with_body) for d in deliveries], "count": len(deliveries)}

    # --- records ----------------------------------------------------------------------------

    def _index(self, shop: Shop, kind: str) -> Any:
        if kind not in RECORD_KINDS:
            raise ControlError(404, f"Unknown record kind {kind}; known: {', '.join(RECORD_KINDS)}")
        if kind == "inventory_levels":
            return shop.records.levels
        return getattr(shop.records, kind)

    def _list_records(self, request: Request, domain: str, kind: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        params = request.params()
        limit = min(1000, _int(params.get("limit", 50), "limit"))
        offset = _int(params.get("offset", 0), "offset")
        with shop.lock:
            index = self._index(shop, kind)
            keys = list(index.ids if hasattr(index, "ids") else sorted(index))
            items = [index[k] for k in keys[offset : offset + limit]]
            return 200, {"items": items, "total": len(keys), "offset": offset, "limit": limit}

    def _record(self, shop: Shop, kind: str, record_id: str) -> dict:
        index = self._index(shop, kind)
        if kind == "inventory_levels":
            item, _, location = record_id.partition(":")
            record = index.get((_int(item, "inventory item id"), _int(location or "x", "location id")))
        else:
            record = index.get(_int(record_id, "id"))
        if record is None:
            raise ControlError(404, f"No {kind} record {record_id}")
        return record

    def _get_record(self, request: Request, domain: str, kind: str, record_id: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        with shop.lock:
            return 200, self._record(shop, kind, record_id)

    def _edit_record(self, request: Request, domain: str, kind: str, record_id: str) -> tuple[int, dict]:
        """Change a record as the merchant would in the store admin (webhooks unless `silent`)."""
        shop = self._shop(domain)
        data = _body(request)
        changes = data.get("changes")
        if not isinstance(changes, dict) or not changes:
            raise ControlError(400, 'Body needs {"changes": {...}}')
        with shop.lock:
            record = self._record(shop, kind, record_id)
            bad = [k for k in changes if k in PROTECTED_KEYS or k not in record]
            if bad:
                raise ControlError(422, f"Cannot change {', '.join(sorted(bad))} on {kind}")
            act = Action()
            self._apply(shop, act, kind, record, changes)
            if not data.get("silent") and act.events:
                self.sim.hub.emit(shop, act.events)
            return 200, record

    def _apply(self, shop: Shop, act: Action, kind: str, record: dict, changes: dict) -> None:
        if kind == "products":
            shop.update_product(act, record, changes)
        elif kind == "variants":
            shop.update_variant(act, record, changes)
        elif kind == "inventory_levels":
            rest = {k: v for k, v in changes.items() if k != "available"}
            record.update(rest)
            if "available" in changes:
                shop.set_available(
                    act, record["inventory_item_id"], record["location_id"], _int(changes["available"], "available")
                )
        elif kind == "customers":
            shop.update_customer(act, record, changes)
        elif kind == "orders":
            shop.update_order(act, record, changes)
        else:
            record.update(changes)
            shop.touch(record)

    def _create_order(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        with shop.lock:
            customer = None
            if data.get("customer_id") is not None:
                customer = shop.records.customers.get(_int(data["customer_id"], "customer_id"))
                if customer is None:
                    raise ControlError(422, "No such customer")
            lines = []
            for line in data.get("lines") or []:
                variant = shop.records.variants.get(_int(line.get("variant_id"), "variant_id"))
                if variant is None:
                    raise ControlError(422, f"No such variant {line.get('variant_id')}")
                lines.append((variant, max(1, _int(line.get("quantity", 1), "quantity"))))
            if not lines:
                raise ControlError(422, "An order needs at least one line")
            with shop.action() as act:
                if customer is None and data.get("new_customer", True):
                    customer = shop.create_customer(act)
                order = shop.create_order(
                    act, customer=customer, lines=lines, financial_status=data.get("financial_status", "paid")
                )
            return 201, order

    def _pay_order(self, request: Request, domain: str, order_id: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        with shop.lock:
            order = self._record(shop, "orders", order_id)
            with shop.action() as act:
                shop.mark_paid(act, order)
            return 200, order

    def _fulfill_order(self, request: Request, domain: str, order_id: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        with shop.lock:
            order = self._record(shop, "orders", order_id)
            if all(item["fulfillable_quantity"] <= 0 for item in order["line_items"]):
                raise ControlError(422, "Nothing left to fulfil")
            location = data.get("location_id")
            with shop.action() as act:
                fulfillment = shop.fulfill(act, order, None if location is None else _int(location, "location_id"))
            return 201, fulfillment

    def _create_customer(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        with shop.action() as act:
            customer = shop.create_customer(
                act, first_name=data.get("first_name"), last_name=data.get("last_name"), email=data.get("email")
            )
        return 201, customer

    def _change_inventory(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        with shop.lock:
            key = (
                _int(data.get("inventory_item_id"), "inventory_item_id"),
                _int(data.get("location_id"), "location_id"),
            )
            level = shop.records.levels.get(key)
            if level is None:
                raise ControlError(404, "No inventory level for that item and location")
            if "available" in data:
                target = _int(data["available"], "available")
            else:
                target = (level["available"] or 0) + _int(data.get("delta"), "delta")
            with shop.action() as act:
                shop.set_available(act, *key, target)
            return 200, level

    def _privacy(self, request: Request, domain: str, kind: str) -> tuple[int, dict]:
        """Send a mandatory privacy webhook as if a customer or the merchant asked for it."""
        shop = self._shop(domain)
        data = _body(request)
        base = {"shop_id": shop.shop_id, "shop_domain": shop.domain}
        with shop.lock:
            if kind == "shop-redact":
                topic, payload = "shop/redact", base
            else:
                customer = shop.records.customers.get(_int(data.get("customer_id"), "customer_id"))
                if customer is None:
                    raise ControlError(404, "No such customer")
                orders = sorted(shop.records.orders_by_customer.get(customer["id"], []))
                person = {"id": customer["id"], "email": customer["email"], "phone": customer["phone"]}
                if kind == "customers-redact":
                    topic, payload = "customers/redact", {**base, "customer": person, "orders_to_redact": orders}
                else:
                    request_id = _int(data.get("data_request_id", int(time.time()) % 100000), "data_request_id")
                    topic, payload = (
                        "customers/data_request",
                        {**base, "orders_requested": orders, "customer": person, "data_request": {"id": request_id}},
                    )
            with shop.action() as act:
                act.emit(topic, payload)
        return 200, {"topic": topic, "payload": payload}

    # --- traffic ------------------------------------------------------------------------------

    def _traffic_status(self, request: Request, domain: str) -> tuple[int, dict]:
        self._shop(domain)
        return 200, self.sim.traffic_status(domain.lower())

    def _start_traffic(self, request: Request, domain: str) -> tuple[int, dict]:
        shop = self._shop(domain)
        data = _body(request)
        self.sim.start_traffic(
            shop,
            interval=float(data.get("interval", 2.0)),
            seed=_int(data.get("seed", 0), "seed"),
            fault_chance=float(data.get("fault_chance", 0.03)),
        )
        return 201, self.sim.traffic_status(shop.domain)

    def _stop_traffic(self, request: Request, domain: str) -> tuple[int, dict]:
        self._shop(domain)
        self.sim.stop_traffic(domain.lower())
        return 200, self.sim.traffic_status(domain.lower())
