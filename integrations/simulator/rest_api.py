"""REST Admin API subset: the product, variant, inventory, location, order and customer
resources the console reads, plus the few writes needed to show 422 validation errors.

Called with the shop lock held, after authentication and the leaky bucket (see server.py).
Lists use cursor pagination (`limit`, `page_info`, `Link` header) ordered by id.
"""

import base64
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from integrations.simulator.records import parse_time
from integrations.simulator.responses import Request, Response, error_response, json_response
from integrations.simulator.store import (
    Shop,
    validate_customer,
    validate_order,
    validate_product,
)

DEFAULT_LIMIT = 50
MAX_LIMIT = 250
PRODUCT_WRITABLE = ("title", "body_html", "vendor", "product_type", "status", "tags", "handle")
ORDER_WRITABLE = ("email", "note", "tags")
CUSTOMER_WRITABLE = ("email", "first_name", "last_name", "phone", "note", "tags")

Route = tuple[str, re.Pattern, Callable[..., Response]]


def _forbidden(handle: str) -> Response:
    return error_response(403, body={"errors": f"[API] This action requires merchant approval for {handle} scope."})


def _missing(root: str) -> Response:
    return error_response(400, body={"errors": {root: "Required parameter missing or invalid"}})


def _ints(value: str | None) -> list[int] | None:
    if not value:
        return None
    return [int(v) for v in value.split(",") if v.strip().isdigit()]


def _only(record: dict, fields: str | None) -> dict:
    if not fields:
        return record
    wanted = [f.strip() for f in fields.split(",") if f.strip()]
    return {k: record[k] for k in wanted if k in record}


def _filters(kind: str, params: dict[str, str]) -> dict[str, str]:
    names = ["ids", "since_id", "updated_at_min", "updated_at_max", "created_at_min", "created_at_max"]
    if kind == "products":
        names += ["status", "vendor", "product_type", "handle"]
    if kind == "orders":
        names += ["status", "financial_status", "fulfillment_status"]
    return {n: params[n] for n in names if params.get(n)}


def _predicate(kind: str, filters: dict[str, str]) -> Callable[[dict], bool]:
    checks: list[Callable[[dict], bool]] = []
    ids = _ints(filters.get("ids"))
    if ids is not None:
        wanted = set(ids)
        checks.append(lambda r: r["id"] in wanted)
    for name, field_name, greater in (
        ("updated_at_min", "updated_at", True),
        ("updated_at_max", "updated_at", False),
        ("created_at_min", "created_at", True),
        ("created_at_max", "created_at", False),
    ):
        if name in filters:
            moment = parse_time(filters[name])
            if greater:
                checks.append(lambda r, f=field_name, m=moment: parse_time(r[f]) >= m)
            else:
                checks.append(lambda r, f=field_name, m=moment: parse_time(r[f]) <= m)
    if kind == "orders":
        status = filters.get("status", "open")
        if status == "open":
            checks.append(lambda r: r["closed_at"] is None and r["cancelled_at"] is None)
        elif status == "closed":
            checks.append(lambda r: r["closed_at"] is not None)
        elif status == "cancelled":
            checks.append(lambda r: r["cancelled_at"] is not None)
        financial = filters.get("financial_status")
        if financial and financial != "any":
            checks.append(lambda r: r["financial_status"] == financial)
        fulfillment = filters.get("fulfillment_status")
        if fulfillment and fulfillment != "any":
            if fulfillment in ("unshipped", "unfulfilled"):
                checks.append(lambda r: r["fulfillment_status"] is None)
            elif fulfillment == "shipped":
                checks.append(lambda r: r["fulfillment_status"] == "fulfilled")
            else:
                checks.append(lambda r: r["fulfillment_status"] == fulfillment)
    else:
        for name in ("status", "vendor", "product_type", "handle"):
            if name in filters:
                values = set(filters[name].split(","))
                checks.append(lambda r, n=name, v=values: r.get(n) in v)
    return lambda record: all(check(record) for check in checks)


def _page_info(last_id: int, direction: str, filters: dict[str, str]) -> str:
    raw = json.dumps({"last_id": last_id, "direction": direction, "filters": filters}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_page_info(value: str) -> dict | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        int(data["last_id"])
    except (ValueError, KeyError, TypeError):
        return None
    return data


def _list(shop: Shop, request: Request, ctx: dict, kind: str, index: Any, root: str) -> Response:
    params = request.params()
    try:
        limit = int(params.get("limit", DEFAULT_LIMIT))
    except ValueError:
        limit = DEFAULT_LIMIT
    limit = max(1, min(MAX_LIMIT, limit))
    direction = "next"
    if params.get("page_info"):
        page = _decode_page_info(params["page_info"])
        if page is None:
            return error_response(400, body={"errors": {"page_info": "Invalid value."}})
        filters, direction, last_id = page["filters"], page["direction"], int(page["last_id"])
    else:
        filters = _filters(kind, params)
        last_id = int(filters.get("since_id", 0) or 0)
    predicate = _predicate(kind, filters)
    ids = index.ids
    chosen: list[int] = []
    if direction == "next":
        position = bisect_right(ids, last_id)
        while position < len(ids) and len(chosen) <= limit:
            if predicate(index[ids[position]]):
                chosen.append(ids[position])
            position += 1
        has_next = len(chosen) > limit
        chosen = chosen[:limit]
        has_previous = bool(chosen) and any(predicate(index[i]) for i in ids[: bisect_left(ids, chosen[0])])
    else:
        position = bisect_left(ids, last_id) - 1
        while position >= 0 and len(chosen) <= limit:
            if predicate(index[ids[position]]):
                chosen.append(ids[position])
            position -= 1
        has_previous = len(chosen) > limit
        chosen = sorted(chosen[:limit])
        has_next = True
    links = []
    base = f"{ctx['base_url']}/admin/api/{ctx['version']}/{kind}.json"
    extra = {"limit": limit} | ({"fields": params["fields"]} if params.get("fields") else {})
    if chosen and has_previous:
        links.append(
            f'<{base}?{urlencode(extra | {"page_info": _page_info(chosen[0], "prev", filters)})}>; rel="previous"'
        )
    if chosen and has_next:
        links.append(
            f'<{base}?{urlencode(extra | {"page_info": _page_info(chosen[-1], "next", filters)})}>; rel="next"'
        )
    headers = [("Link", ", ".join(links))] if links else []
    return json_response(200, {root: [_only(index[i], params.get("fields")) for i in chosen]}, headers)


def _count(shop: Shop, request: Request, kind: str, index: Any) -> Response:
    predicate = _predicate(kind, _filters(kind, request.params()))
    return json_response(200, {"count": sum(1 for r in index.values() if predicate(r))})


def _one(index: Any, record_id: str, root: str, request: Request) -> Response:
    record = index.get(int(record_id))
    if record is None:
        return error_response(404)
    return json_response(200, {root: _only(record, request.params().get("fields"))})


def _body(request: Request, root: str) -> dict | Response:
    try:
        data = request.json()
    except ValueError:
        return _missing(root)
    if not isinstance(data, dict) or not isinstance(data.get(root), dict):
        return _missing(root)
    return data[root]


# --- handlers -----------------------------------------------------------------------------------


def _shop_json(shop: Shop, request: Request, ctx: dict) -> Response:
    return json_response(200, {"shop": shop.shop_payload()})


def _products_list(shop: Shop, request: Request, ctx: dict) -> Response:
    return (
        _list(shop, request, ctx, "products", shop.records.products, "products")
        if shop.has_scope("read_products")
        else _forbidden("read_products")
    )


def _products_count(shop: Shop, request: Request, ctx: dict) -> Response:
    return (
        _count(shop, request, "products", shop.records.products)
        if shop.has_scope("read_products")
        else _forbidden("read_products")
    )


def _product_get(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    return (
        _one(shop.records.products, record_id, "product", request)
        if shop.has_scope("read_products")
        else _forbidden("read_products")
    )


def _product_put(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    if not shop.has_scope("write_products"):
        return _forbidden("write_products")
    product = shop.records.products.get(int(record_id))
    if product is None:
        return error_response(404)
    body = _body(request, "product")
    if isinstance(body, Response):
        return body
    changes = {k: body[k] for k in PRODUCT_WRITABLE if k in body}
    errors = validate_product(shop, product, changes)
    if errors:
        return error_response(422, body={"errors": errors})
    with shop.action() as act:
        shop.update_product(act, product, changes)
    return json_response(200, {"product": product})


def _product_variants(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    if not shop.has_scope("read_products"):
        return _forbidden("read_products")
    product = shop.records.products.get(int(record_id))
    if product is None:
        return error_response(404)
    return json_response(200, {"variants": product["variants"]})


def _variant_get(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    return (
        _one(shop.records.variants, record_id, "variant", request)
        if shop.has_scope("read_products")
        else _forbidden("read_products")
    )


def _inventory_scope(shop: Shop) -> Response | None:
    return None if shop.has_scope("read_inventory") else _forbidden("read_inventory")


def _locations_list(shop: Shop, request: Request, ctx: dict) -> Response:
    if not (shop.has_scope("read_locations") or shop.has_scope("read_inventory")):
        return _forbidden("read_locations")
    return json_response(200, {"locations": [shop.records.locations[i] for i in shop.records.locations.ids]})


def _location_get(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    if not (shop.has_scope("read_locations") or shop.has_scope("read_inventory")):
        return _forbidden("read_locations")
    return _one(shop.records.locations, record_id, "location", request)


def _inventory_items_list(shop: Shop, request: Request, ctx: dict) -> Response:
    if denied := _inventory_scope(shop):
        return denied
    ids = _ints(request.params().get("ids"))
    if not ids:
        return error_response(422, body={"errors": {"ids": ["can't be blank"]}})
    items = shop.records.inventory_items
    return json_response(200, {"inventory_items": [items[i] for i in ids if i in items][:MAX_LIMIT]})


def _inventory_item_get(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    if denied := _inventory_scope(shop):
        return denied
    return _one(shop.records.inventory_items, record_id, "inventory_item", request)


def _inventory_levels_list(shop: Shop, request: Request, ctx: dict) -> Response:
    if denied := _inventory_scope(shop):
        return denied
    params = request.params()
    item_ids = _ints(params.get("inventory_item_ids"))
    location_ids = _ints(params.get("location_ids"))
    if not item_ids and not location_ids:
        return error_response(422, body={"errors": ["Must specify either inventory_item_ids or location_ids"]})
    records = shop.records
    items = item_ids if item_ids else records.inventory_items.ids
    locations = set(location_ids) if location_ids else None
    levels = []
    limit = max(1, min(MAX_LIMIT, int(params.get("limit", DEFAULT_LIMIT) or DEFAULT_LIMIT)))
    for item_id in items:
        for location_id in records.item_locations.get(item_id, []):
            if locations is None or location_id in locations:
                levels.append(records.levels[(item_id, location_id)])
        if len(levels) >= limit:
            break
    return json_response(200, {"inventory_levels": levels[:limit]})


def _level_target(shop: Shop, body: dict) -> tuple[int, int] | Response:
    try:
        item_id, location_id = int(body.get("inventory_item_id")), int(body.get("location_id"))
    except (TypeError, ValueError):
        return error_response(
            422, body={"errors": {"inventory_item_id": ["is invalid"], "location_id": ["is invalid"]}}
        )
    if item_id not in shop.records.inventory_items or location_id not in shop.records.locations:
        return error_response(404)
    if (item_id, location_id) not in shop.records.levels:
        return error_response(422, body={"errors": ["Inventory item is not stocked at the location"]})
    return item_id, location_id


def _inventory_levels_write(shop: Shop, request: Request, ctx: dict, action: str) -> Response:
    if not shop.has_scope("write_inventory"):
        return _forbidden("write_inventory")
    try:
        body = request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return error_response(400, body={"errors": {"inventory_item_id": "Required parameter missing or invalid"}})
    target = _level_target(shop, body)
    if isinstance(target, Response):
        return target
    key = "available" if action == "set" else "available_adjustment"
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        return error_response(422, body={"errors": {key: ["is not a number"]}})
    level = shop.records.levels[target]
    new_available = value if action == "set" else (level["available"] or 0) + value
    with shop.action() as act:
        shop.set_available(act, *target, new_available)
    return json_response(200, {"inventory_level": level})


def _orders_list(shop: Shop, request: Request, ctx: dict) -> Response:
    return (
        _list(shop, request, ctx, "orders", shop.records.orders, "orders")
        if shop.has_scope("read_orders")
        else _forbidden("read_orders")
    )


def _orders_count(shop: Shop, request: Request, ctx: dict) -> Response:
    return (
        _count(shop, request, "orders", shop.records.orders)
        if shop.has_scope("read_orders")
        else _forbidden("read_orders")
    )


def _order_get(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    return (
        _one(shop.records.orders, record_id, "order", request)
        if shop.has_scope("read_orders")
        else _forbidden("read_orders")
    )


def _order_put(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    if not shop.has_scope("write_orders"):
        return _forbidden("write_orders")
    order = shop.records.orders.get(int(record_id))
    if order is None:
        return error_response(404)
    body = _body(request, "order")
    if isinstance(body, Response):
        return body
    changes = {k: body[k] for k in ORDER_WRITABLE if k in body}
    errors = validate_order(changes)
    if errors:
        return error_response(422, body={"errors": errors})
    with shop.action() as act:
        shop.update_order(act, order, changes)
    return json_response(200, {"order": order})


def _order_fulfillments(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    if not shop.has_scope("read_orders"):
        return _forbidden("read_orders")
    order = shop.records.orders.get(int(record_id))
    if order is None:
        return error_response(404)
    return json_response(200, {"fulfillments": order["fulfillments"]})


def _customers_list(shop: Shop, request: Request, ctx: dict) -> Response:
    return (
        _list(shop, request, ctx, "customers", shop.records.customers, "customers")
        if shop.has_scope("read_customers")
        else _forbidden("read_customers")
    )


def _customers_count(shop: Shop, request: Request, ctx: dict) -> Response:
    return (
        _count(shop, request, "customers", shop.records.customers)
        if shop.has_scope("read_customers")
        else _forbidden("read_customers")
    )


def _customer_get(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    return (
        _one(shop.records.customers, record_id, "customer", request)
        if shop.has_scope("read_customers")
        else _forbidden("read_customers")
    )


def _customer_put(shop: Shop, request: Request, ctx: dict, record_id: str) -> Response:
    if not shop.has_scope("write_customers"):
        return _forbidden("write_customers")
    customer = shop.records.customers.get(int(record_id))
    if customer is None:
        return error_response(404)
    body = _body(request, "customer")
    if isinstance(body, Response):
        return body
    changes = {k: body[k] for k in CUSTOMER_WRITABLE if k in body}
    errors = validate_customer(shop, customer, changes)
    if errors:
        return error_response(422, body={"errors": errors})
    with shop.action() as act:
        shop.update_customer(act, customer, changes)
    return json_response(200, {"customer": customer})


ROUTES: list[Route] = [
    (m, re.compile(p), h)
    for m, p, h in [
        ("GET", r"shop\.json", _shop_json),
        ("GET", r"products\.json", _products_list),
        ("GET", r"products/count\.json", _products_count),
        ("GET", r"products/(\d+)\.json", _product_get),
        ("PUT", r"products/(\d+)\.json", _product_put),
        ("GET", r"products/(\d+)/variants\.json", _product_variants),
        ("GET", r"variants/(\d+)\.json", _variant_get),
        ("GET", r"locations\.json", _locations_list),
        ("GET", r"locations/(\d+)\.json", _location_get),
        ("GET", r"inventory_items\.json", _inventory_items_list),
        ("GET", r"inventory_items/(\d+)\.json", _inventory_item_get),
        ("GET", r"inventory_levels\.json", _inventory_levels_list),
        ("POST", r"inventory_levels/(set|adjust)\.json", _inventory_levels_write),
        ("GET", r"orders\.json", _orders_list),
        ("GET", r"orders/count\.json", _orders_count),
        ("GET", r"orders/(\d+)\.json", _order_get),
        ("PUT", r"orders/(\d+)\.json", _order_put),
        ("GET", r"orders/(\d+)/fulfillments\.json", _order_fulfillments),
        ("GET", r"customers\.json", _customers_list),
        ("GET", r"customers/count\.json", _customers_count),
        ("GET", r"customers/(\d+)\.json", _customer_get),
        ("PUT", r"customers/(\d+)\.json", _customer_put),
    ]
]


def handle_rest(shop: Shop, request: Request, resource: str, ctx: dict) -> Response:
    """Dispatch a versioned REST request (`resource` is the path after the version)."""
    known_path = False
    for method, pattern, handler in ROUTES:
        match = pattern.fullmatch(resource)
        if match is None:
            continue
        known_path = True
        if method == request.method:
            return handler(shop, request, ctx, *match.groups())
    return error_response(405 if known_path else 404)
