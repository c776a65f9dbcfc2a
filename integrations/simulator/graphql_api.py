"""GraphQL Admin API: schema subset, resolvers over the shop's REST-shaped records, query cost
and throttling, scopes, deprecation reporting and `@idempotent` mutations.

Parsed and validated documents are cached by query string, so a repeated query pays only for
execution. Resolvers run with the shop lock held (taken by `run_graphql`).
"""

import base64
import json
import logging
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    build_schema,
    execute,
    get_named_type,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_directive_values

from integrations.simulator.buckets import GRAPHQL_SINGLE_QUERY_MAX_COST
from integrations.simulator.cost import OperationAnalysis
from integrations.simulator.graphql_schema import SDL
from integrations.simulator.records import (
    gid,
    graphql_time,
    join_tags,
    money_set,
    parse_gid,
    rest_time,
    split_tags,
)
from integrations.simulator.search import compile_search
from integrations.simulator.store import (
    Shop,
    decimal_money,
    scope_description,
    validate_customer,
    validate_order,
    validate_product,
    validate_variant,
)
from integrations.simulator.versions import idempotency_required

log = logging.getLogger(__name__)

SCHEMA = build_schema(SDL)
_IDEMPOTENT = SCHEMA.get_directive("idempotent")
MAX_PAGE_SIZE = 250
RATE_LIMIT_DOCS = "https://shopify.dev/api/usage/rate-limits"
ACCESS_SCOPE_DOCS = "https://shopify.dev/api/usage/access-scopes"
IDEMPOTENT_MUTATIONS = frozenset({"inventorySetQuantities", "inventoryAdjustQuantities"})
QUANTITY_NAMES = (
    "available",
    "on_hand",
    "committed",
    "incoming",
    "reserved",
    "damaged",
    "safety_stock",
    "quality_control",
)
INVENTORY_REASONS = frozenset(
    {
        "correction",
        "cycle_count_available",
        "damaged",
        "movement_created",
        "movement_updated",
        "movement_received",
        "movement_canceled",
        "other",
        "promotion",
        "quality_control",
        "received",
        "reservation_created",
        "reservation_deleted",
        "reservation_updated",
        "restock",
        "safety_stock",
        "shrinkage",
    }
)
QUANTITY_LIMIT = 1_000_000_000
# Which scope reading a node type needs (any one of the handles).
NODE_SCOPES: dict[str, tuple[str, ...]] = {
    "Product": ("read_products",),
    "ProductVariant": ("read_products",),
    "InventoryItem": ("read_inventory", "read_products"),
    "InventoryLevel": ("read_inventory",),
    "InventoryAdjustmentGroup": ("read_inventory",),
    "Location": ("read_locations", "read_inventory"),
    "Customer": ("read_customers",),
    "Order": ("read_orders",),
    "LineItem": ("read_orders",),
    "Fulfillment": ("read_orders", "read_fulfillments"),
}


@dataclass
class Context:
    shop: Shop
    version: str
    request_id: str
    deprecations: set[str] = field(default_factory=set)
    stall: float = 0.0  # slow_responses delay to spend inside an idempotent mutation
    stalled: bool = False


@dataclass
class GraphQLOutcome:
    status: int
    payload: dict
    deprecations: list[str]


# --- errors -----------------------------------------------------------------------------------


def access_denied(field_name: str, handle: str) -> GraphQLError:
    """Shopify's ACCESS_DENIED error for a field that needs a scope the app lacks."""
    return GraphQLError(
        f"Access denied for {field_name} field. Required access: `{handle}` access scope.",
        extensions={
            "code": "ACCESS_DENIED",
            "documentation": ACCESS_SCOPE_DOCS,
            "requiredAccess": f"`{handle}` access scope.",
        },
    )


def _require(info: GraphQLResolveInfo, *handles: str) -> Shop:
    shop: Shop = info.context.shop
    if not any(shop.has_scope(h) for h in handles):
        raise access_denied(info.field_name, handles[0])
    return shop


def _bad_request(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": "BAD_REQUEST"})


# --- small resolvers ----------------------------------------------------------------------------


def _key(name: str) -> Callable:
    return lambda source, _info, **_: source.get(name)


def _time(name: str) -> Callable:
    return lambda source, _info, **_: graphql_time(source.get(name))


def _upper(name: str, default: str | None = None) -> Callable:
    def resolve(source: dict, _info: GraphQLResolveInfo, **_: Any) -> str | None:
        value = source.get(name)
        return value.upper() if value else default

    return resolve


def _snake(name: str) -> str:
    out = []
    for char in name:
        if char.isupper():
            out.append("_")
            out.append(char.lower())
        else:
            out.append(char)
    return "".join(out)


def _gql_id(source: dict, _info: GraphQLResolveInfo, **_: Any) -> str:
    return source["admin_graphql_api_id"]


def _legacy_id(source: dict, _info: GraphQLResolveInfo, **_: Any) -> str:
    return str(source["id"])


def _tags(source: dict, _info: GraphQLResolveInfo, **_: Any) -> list[str]:
    return split_tags(source.get("tags"))


def _type_of(record: dict) -> str:
    return record["admin_graphql_api_id"].split("/", 4)[3]


# --- pagination -----------------------------------------------------------------------------


def _encode_cursor(key: Any) -> str:
    last_id, last_value = (key[1], key[0]) if isinstance(key, tuple) else (key, key)
    raw = json.dumps({"last_id": last_id, "last_value": last_value}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def _decode_cursor(cursor: str, tuple_keys: bool) -> Any:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True))
        last_id = int(data["last_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise _bad_request(f"Invalid cursor for current pagination sort: {cursor!r}") from exc
    return (data.get("last_value"), last_id) if tuple_keys else last_id


def _lazy_cursor(key: Any) -> Callable:
    return lambda _info, **_: _encode_cursor(key)


def paginate(keys: Sequence, fetch: Callable[[Any], dict], args: dict) -> dict:
    """A Relay connection over `keys` (sorted ascending: ids, or (value, id) tuples)."""
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        raise _bad_request("you must provide one of first or last")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE_SIZE:
            raise _bad_request(f"The {name} argument must be between 0 and {MAX_PAGE_SIZE}.")
    reverse = bool(args.get("reverse"))
    tuple_keys = bool(keys) and isinstance(keys[0], tuple)
    n = len(keys)
    start, end = 0, n
    if args.get("after"):
        key = _decode_cursor(args["after"], tuple_keys)
        start = n - bisect_left(keys, key) if reverse else bisect_right(keys, key)
    if args.get("before"):
        key = _decode_cursor(args["before"], tuple_keys)
        end = n - bisect_right(keys, key) if reverse else bisect_left(keys, key)
    if first is not None:
        end = min(end, start + first)
    if last is not None:
        start = max(start, end - last)
    if end < start:
        end = start
    chosen = [keys[n - 1 - p] for p in range(start, end)] if reverse else keys[start:end]
    nodes = [fetch(k) for k in chosen]
    return {
        "edges": [{"node": node, "cursor": _lazy_cursor(k)} for k, node in zip(chosen, nodes, strict=True)],
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": end < n,
            "hasPreviousPage": start > 0,
            "startCursor": _lazy_cursor(chosen[0]) if chosen else None,
            "endCursor": _lazy_cursor(chosen[-1]) if chosen else None,
        },
    }


SORT_VALUES: dict[str, Callable[[dict], Any]] = {
    "TITLE": lambda r: (r.get("title") or "").lower(),
    "NAME": lambda r: (r.get("name") or "").lower(),
    "SKU": lambda r: r.get("sku") or "",
    "CREATED_AT": lambda r: r.get("created_at") or "",
    "UPDATED_AT": lambda r: r.get("updated_at") or "",
    "PROCESSED_AT": lambda r: r.get("processed_at") or "",
}


def _index_connection(index: Any, kind: str, args: dict) -> dict:
    """Paginate a top-level SortedIndex with optional search query and sort key."""
    predicate = compile_search(args.get("query"), kind)
    sort_key = args.get("sortKey") or "ID"
    if predicate is None and sort_key == "ID":
        keys: Sequence = index.ids
        return paginate(keys, index.__getitem__, args)
    records = [index[i] for i in index.ids]
    if predicate is not None:
        records = [r for r in records if predicate(r)]
    if sort_key == "ID":
        return paginate([r["id"] for r in records], index.__getitem__, args)
    value = SORT_VALUES[sort_key]
    keys = sorted((value(r), r["id"]) for r in records)
    return paginate(keys, lambda k: index[k[1]], args)


def _count(index: Any, kind: str, query: str | None) -> dict:
    predicate = compile_search(query, kind)
    if predicate is None:
        return {"count": len(index), "precision": "EXACT"}
    return {"count": sum(1 for r in index.values() if predicate(r)), "precision": "EXACT"}


# --- node lookup --------------------------------------------------------------------------------


def _lookup(info: GraphQLResolveInfo, value: str, expected: str | None = None) -> dict | None:
    parsed = parse_gid(value)
    if parsed is None:
        raise GraphQLError(f"Invalid global id '{value}'", extensions={"code": "argumentLiteralsIncompatible"})
    kind, record_id, params = parsed
    if expected is not None and kind != expected:
        return None
    handles = NODE_SCOPES.get(kind)
    if handles is None:
        return None
    _require(info, *handles)
    return info.context.shop.find(kind, record_id, params)


def _node_type(value: dict, _info: GraphQLResolveInfo, _type: Any) -> str:
    return _type_of(value)


def _root_node(_root: Any, info: GraphQLResolveInfo, id: str) -> dict | None:
    return _lookup(info, id)


def _root_nodes(_root: Any, info: GraphQLResolveInfo, ids: list[str]) -> list[dict | None]:
    return [_lookup(info, value) for value in ids]


def _single(kind: str) -> Callable:
    def resolve(_root: Any, info: GraphQLResolveInfo, id: str) -> dict | None:
        return _lookup(info, id, kind)

    return resolve


def _root_connection(attribute: str, kind: str, *handles: str) -> Callable:
    def resolve(_root: Any, info: GraphQLResolveInfo, **args: Any) -> dict:
        shop = _require(info, *handles)
        return _index_connection(getattr(shop.records, attribute), kind, args)

    return resolve


def _root_count(attribute: str, kind: str, *handles: str) -> Callable:
    def resolve(_root: Any, info: GraphQLResolveInfo, query: str | None = None) -> dict:
        shop = _require(info, *handles)
        return _count(getattr(shop.records, attribute), kind, query)

    return resolve


def _shop(_root: Any, info: GraphQLResolveInfo) -> dict:
    shop: Shop = info.context.shop
    payload = shop.shop_payload()
    return {
        "admin_graphql_api_id": gid("Shop", shop.shop_id),
        "name": payload["name"],
        "myshopify_domain": payload["myshopify_domain"],
        "email": payload["email"],
        "currency_code": payload["currency"],
        "iana_timezone": payload["iana_timezone"],
    }


def _installation(_root: Any, info: GraphQLResolveInfo) -> dict:
    shop: Shop = info.context.shop
    return {
        "admin_graphql_api_id": gid("AppInstallation", shop.shop_id + 1),
        "access_scopes": [{"handle": h, "description": scope_description(h)} for h in shop.granted_scopes()],
    }


# --- object field resolvers -------------------------------------------------------------------------


def _records(info: GraphQLResolveInfo) -> Any:
    return info.context.shop.records


def _product_variants(source: dict, _info: GraphQLResolveInfo, **args: Any) -> dict:
    variants = {v["id"]: v for v in source["variants"]}
    return paginate(sorted(variants), variants.__getitem__, args)


def _variant_product(source: dict, info: GraphQLResolveInfo) -> dict:
    return _records(info).products[source["product_id"]]


def _variant_item(source: dict, info: GraphQLResolveInfo) -> dict:
    return _records(info).inventory_items[source["inventory_item_id"]]


def _selected_options(source: dict, info: GraphQLResolveInfo) -> list[dict]:
    product = _records(info).products.get(source["product_id"])
    options = product["options"] if product else []
    return [
        {"name": option["name"], "value": source.get(f"option{option['position']}")}
        for option in options
        if source.get(f"option{option['position']}") is not None
    ]


def _item_levels(source: dict, info: GraphQLResolveInfo, **args: Any) -> dict:
    records = _records(info)
    levels = records.levels
    item_id = source["id"]
    return paginate(records.item_locations.get(item_id, []), lambda loc: levels[(item_id, loc)], args)


def _item_level(source: dict, info: GraphQLResolveInfo, locationId: str) -> dict | None:
    parsed = parse_gid(locationId)
    if parsed is None or parsed[0] != "Location":
        raise GraphQLError(f"Invalid global id '{locationId}'", extensions={"code": "argumentLiteralsIncompatible"})
    return _records(info).levels.get((source["id"], parsed[1]))


def _location_levels(source: dict, info: GraphQLResolveInfo, **args: Any) -> dict:
    records = _records(info)
    location_id = source["id"]
    keys = [item for item in records.inventory_items.ids if (item, location_id) in records.levels]
    return paginate(keys, lambda item: records.levels[(item, location_id)], args)


def _level_quantities(source: dict, info: GraphQLResolveInfo, names: list[str]) -> list[dict]:
    shop: Shop = info.context.shop
    unknown = [n for n in names if n not in QUANTITY_NAMES]
    if unknown:
        raise _bad_request(f"Invalid quantity names: {', '.join(unknown)}. Valid names: {', '.join(QUANTITY_NAMES)}.")
    key = (source["inventory_item_id"], source["location_id"])
    available = source["available"] or 0
    committed = shop.records.committed.get(key, 0)
    values = {"available": available, "committed": committed, "on_hand": available + committed}
    return [
        {
            "id": f"gid://shopify/InventoryQuantity/{key[1]}?inventory_item_id={key[0]}&name={name}",
            "name": name,
            "quantity": values.get(name, 0),
            "updated_at": source["updated_at"],
        }
        for name in names
    ]


def _level_location(source: dict, info: GraphQLResolveInfo) -> dict:
    return _records(info).locations[source["location_id"]]


def _level_item(source: dict, info: GraphQLResolveInfo) -> dict:
    return _records(info).inventory_items[source["inventory_item_id"]]


def _location_address(source: dict, _info: GraphQLResolveInfo) -> dict:
    return source


def _customer_orders(source: dict, info: GraphQLResolveInfo, **args: Any) -> dict:
    shop = _require(info, "read_orders")
    ids = sorted(shop.records.orders_by_customer.get(source["id"], []))
    return paginate(ids, shop.records.orders.__getitem__, args)


def _customer_email_address(source: dict, _info: GraphQLResolveInfo) -> dict | None:
    if not source.get("email"):
        return None
    consent = source.get("email_marketing_consent") or {}
    return {"email_address": source["email"], "marketing_state": (consent.get("state") or "not_subscribed").upper()}


def _customer_orders_count(source: dict, info: GraphQLResolveInfo) -> str:
    return str(len(_records(info).orders_by_customer.get(source["id"], [])))


def _customer_spent(source: dict, info: GraphQLResolveInfo) -> dict:
    records = _records(info)
    total = sum(
        (
            Decimal(records.orders[o]["total_price"])
            for o in records.orders_by_customer.get(source["id"], [])
            if records.orders[o]["financial_status"] == "paid"
        ),
        Decimal(0),
    )
    return {"amount": str(total.quantize(Decimal("0.01"))), "currency_code": "USD"}


def _display_name(source: dict, _info: GraphQLResolveInfo) -> str:
    name = " ".join(p for p in (source.get("first_name"), source.get("last_name")) if p)
    return name or source.get("email") or ""


def _order_customer(source: dict, info: GraphQLResolveInfo) -> dict | None:
    _require(info, "read_customers")
    summary = source.get("customer")
    return _records(info).customers.get(summary["id"]) if summary else None


def _order_line_items(source: dict, _info: GraphQLResolveInfo, **args: Any) -> dict:
    items = {item["id"]: item for item in source["line_items"]}
    return paginate(sorted(items), items.__getitem__, args)


def _order_fulfillments(source: dict, _info: GraphQLResolveInfo, first: int | None = None) -> list[dict]:
    fulfillments = source.get("fulfillments") or []
    return fulfillments[:first] if first is not None else fulfillments


def _fulfillment_status(source: dict, _info: GraphQLResolveInfo) -> str:
    return {
        None: "UNFULFILLED",
        "fulfilled": "FULFILLED",
        "partial": "PARTIALLY_FULFILLED",
        "restocked": "RESTOCKED",
    }.get(source.get("fulfillment_status"), "UNFULFILLED")


def _line_variant(source: dict, info: GraphQLResolveInfo) -> dict | None:
    return _records(info).variants.get(source.get("variant_id"))


def _line_product(source: dict, info: GraphQLResolveInfo) -> dict | None:
    return _records(info).products.get(source.get("product_id"))


def _fulfillment_order(source: dict, info: GraphQLResolveInfo) -> dict:
    return _records(info).orders[source["order_id"]]


def _fulfillment_location(source: dict, info: GraphQLResolveInfo) -> dict | None:
    return _records(info).locations.get(source.get("location_id"))


def _tracking(source: dict, _info: GraphQLResolveInfo, first: int | None = None) -> list[dict]:
    numbers = source.get("tracking_numbers") or []
    urls = source.get("tracking_urls") or []
    info = [
        {"company": source.get("tracking_company"), "number": number, "url": urls[i] if i < len(urls) else None}
        for i, number in enumerate(numbers)
    ]
    return info[:first] if first is not None else info


def _total_inventory(source: dict, _info: GraphQLResolveInfo) -> int:
    return sum(v.get("inventory_quantity") or 0 for v in source["variants"])


def _variant_display_name(source: dict, info: GraphQLResolveInfo) -> str:
    product = _records(info).products.get(source["product_id"])
    return f"{product['title']} - {source['title']}" if product else source["title"]


def _item_cost(source: dict, _info: GraphQLResolveInfo) -> dict | None:
    return {"amount": source["cost"], "currency_code": "USD"} if source.get("cost") is not None else None


def _item_variant(source: dict, info: GraphQLResolveInfo) -> dict:
    return _records(info).variant_by_item[source["id"]]


# --- mutations ------------------------------------------------------------------------------------


def _humanize(rest_field: str) -> str:
    return rest_field.replace("_", " ").capitalize()


def _user_errors(
    errors: dict[str, list[str]], prefix: list[str], names: dict[str, str], code: str | None = None
) -> list[dict]:
    out = []
    for rest_field, messages in errors.items():
        for message in messages:
            entry: dict[str, Any] = {
                "field": [*prefix, names.get(rest_field, rest_field)],
                "message": f"{_humanize(rest_field)} {message}",
            }
            if code is not None:
                entry["code"] = code if "greater than" not in message else "GREATER_THAN_OR_EQUAL_TO"
            out.append(entry)
    return out


def _numeric_id(value: str | None, kind: str) -> int | None:
    parsed = parse_gid(value) if value else None
    return parsed[1] if parsed and parsed[0] == kind else None


PRODUCT_FIELDS = {
    "title": "title",
    "handle": "handle",
    "descriptionHtml": "body_html",
    "vendor": "vendor",
    "productType": "product_type",
}


def _product_update(_root: Any, info: GraphQLResolveInfo, product: dict) -> dict:
    shop = _require(info, "write_products")
    record = shop.records.products.get(_numeric_id(product["id"], "Product"))
    if record is None:
        return {"product": None, "userErrors": [{"field": ["product", "id"], "message": "Product does not exist"}]}
    changes = {rest: product[gql] for gql, rest in PRODUCT_FIELDS.items() if gql in product}
    if product.get("status") is not None:
        changes["status"] = product["status"].lower()
    if "tags" in product:
        changes["tags"] = join_tags(product["tags"] or [])
    errors = validate_product(shop, record, changes)
    if errors:
        names = {rest: gql for gql, rest in PRODUCT_FIELDS.items()} | {"status": "status"}
        return {"product": None, "userErrors": _user_errors(errors, ["product"], names)}
    with shop.action() as act:
        shop.update_product(act, record, changes)
    return {"product": record, "userErrors": []}


def _variant_changes(entry: dict) -> dict:
    changes: dict[str, Any] = {}
    for gql, rest in (
        ("price", "price"),
        ("compareAtPrice", "compare_at_price"),
        ("barcode", "barcode"),
        ("taxable", "taxable"),
    ):
        if gql in entry:
            changes[rest] = entry[gql]
    if entry.get("inventoryPolicy") is not None:
        changes["inventory_policy"] = entry["inventoryPolicy"].lower()
    item = entry.get("inventoryItem") or {}
    if "sku" in item:
        changes["sku"] = item["sku"]
    return changes


def _variants_bulk_update(
    _root: Any, info: GraphQLResolveInfo, productId: str, variants: list[dict], allowPartialUpdates: bool = False
) -> dict:
    shop = _require(info, "write_products")
    product = shop.records.products.get(_numeric_id(productId, "Product"))
    if product is None:
        return {
            "product": None,
            "productVariants": None,
            "userErrors": [
                {"field": ["productId"], "message": "Product does not exist", "code": "PRODUCT_DOES_NOT_EXIST"}
            ],
        }
    errors: list[dict] = []
    valid: list[tuple[dict, dict, dict]] = []
    names = {
        "price": "price",
        "compare_at_price": "compareAtPrice",
        "inventory_policy": "inventoryPolicy",
        "sku": "sku",
    }
    for index, entry in enumerate(variants):
        variant = shop.records.variants.get(_numeric_id(entry["id"], "ProductVariant"))
        if variant is None or variant["product_id"] != product["id"]:
            errors.append(
                {
                    "field": ["variants", str(index), "id"],
                    "message": "Product variant does not exist",
                    "code": "PRODUCT_VARIANT_DOES_NOT_EXIST",
                }
            )
            continue
        changes = _variant_changes(entry)
        problems = validate_variant(changes)
        if problems:
            errors.extend(_user_errors(problems, ["variants", str(index)], names, code="INVALID_INPUT"))
            continue
        valid.append((variant, changes, entry.get("inventoryItem") or {}))
    if errors and not allowPartialUpdates:
        return {"product": None, "productVariants": None, "userErrors": errors}
    with shop.action() as act:
        for variant, changes, item_input in valid:
            for money_field in ("price", "compare_at_price"):
                if changes.get(money_field) is not None:
                    changes[money_field] = decimal_money(changes[money_field])
            shop.update_variant(act, variant, changes)
            item = shop.records.inventory_items[variant["inventory_item_id"]]
            if "tracked" in item_input and item_input["tracked"] is not None:
                item["tracked"] = bool(item_input["tracked"])
            if item_input.get("cost") is not None:
                item["cost"] = decimal_money(item_input["cost"])
    return {"product": product, "productVariants": [v for v, _, _ in valid], "userErrors": errors}


def _inventory_target(
    shop: Shop, item_gid: str, location_gid: str, path: list[str], errors: list[dict]
) -> tuple[int, int] | None:
    item_id = _numeric_id(item_gid, "InventoryItem")
    location_id = _numeric_id(location_gid, "Location")
    if item_id is None or item_id not in shop.records.inventory_items:
        errors.append(
            {
                "field": [*path, "inventoryItemId"],
                "message": "The specified inventory item could not be found.",
                "code": "INVALID_INVENTORY_ITEM",
            }
        )
        return None
    if location_id is None or location_id not in shop.records.locations:
        errors.append(
            {
                "field": [*path, "locationId"],
                "message": "The specified location could not be found.",
                "code": "INVALID_LOCATION",
            }
        )
        return None
    if (item_id, location_id) not in shop.records.levels:
        errors.append(
            {
                "field": [*path, "locationId"],
                "message": "The specified inventory item is not stocked at the location.",
                "code": "ITEM_NOT_STOCKED_AT_LOCATION",
            }
        )
        return None
    return item_id, location_id


def _check_reason(data: dict, errors: list[dict]) -> None:
    if data["reason"] not in INVENTORY_REASONS:
        errors.append(
            {"field": ["input", "reason"], "message": "The specified reason is invalid.", "code": "INVALID_REASON"}
        )


def _quantity_bounds(value: int, path: list[str], errors: list[dict]) -> bool:
    if value > QUANTITY_LIMIT:
        errors.append(
            {
                "field": path,
                "message": f"The quantity can't be higher than {QUANTITY_LIMIT:,}.",
                "code": "INVALID_QUANTITY_TOO_HIGH",
            }
        )
        return False
    if value < -QUANTITY_LIMIT:
        errors.append(
            {
                "field": path,
                "message": f"The quantity can't be lower than -{QUANTITY_LIMIT:,}.",
                "code": "INVALID_QUANTITY_TOO_LOW",
            }
        )
        return False
    return True


def _stale(current: int, wanted: int | None, path: list[str], code: str, errors: list[dict]) -> bool:
    if wanted is not None and wanted != current:
        errors.append(
            {
                "field": path,
                "message": f"The specified compare quantity does not match the current quantity ({current}).",
                "code": code,
            }
        )
        return True
    return False


def _adjustment_group(shop: Shop, data: dict, changes: list[dict]) -> dict:
    return {
        "admin_graphql_api_id": shop.next_adjustment_group_id(),
        "created_at": rest_time(shop.now()),
        "reason": data["reason"],
        "reference_document_uri": data.get("referenceDocumentUri"),
        "changes": changes,
    }


def _set_quantities(info: GraphQLResolveInfo, data: dict) -> dict:
    shop: Shop = info.context.shop
    errors: list[dict] = []
    name = data["name"]
    if name not in ("available", "on_hand"):
        errors.append(
            {
                "field": ["input", "name"],
                "message": "The quantity name must be either 'available' or 'on_hand'.",
                "code": "INVALID_NAME",
            }
        )
    _check_reason(data, errors)
    if data.get("ignoreCompareQuantity") is not None:
        info.context.deprecations.add("InventorySetQuantitiesInput.ignoreCompareQuantity")
    targets: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    for index, entry in enumerate(data["quantities"]):
        path = ["input", "quantities", str(index)]
        target = _inventory_target(shop, entry["inventoryItemId"], entry["locationId"], path, errors)
        if target is None or not _quantity_bounds(entry["quantity"], [*path, "quantity"], errors):
            continue
        if target in seen:
            errors.append(
                {
                    "field": path,
                    "message": "The combination of inventoryItemId and locationId must be unique.",
                    "code": "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                }
            )
            continue
        seen.add(target)
        current = shop.on_hand(*target) if name == "on_hand" else (shop.records.levels[target]["available"] or 0)
        if entry.get("compareQuantity") is not None:
            info.context.deprecations.add("InventoryQuantityInput.compareQuantity")
        if entry.get("changeFromQuantity") is not None:
            if _stale(
                current,
                entry["changeFromQuantity"],
                [*path, "changeFromQuantity"],
                "CHANGE_FROM_QUANTITY_STALE",
                errors,
            ):
                continue
        elif not data.get("ignoreCompareQuantity") and _stale(
            current, entry.get("compareQuantity"), [*path, "compareQuantity"], "COMPARE_QUANTITY_STALE", errors
        ):
            continue
        targets.append((*target, entry["quantity"]))
    if errors:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}
    changes = []
    with shop.action() as act:
        for item_id, location_id, quantity in targets:
            committed = shop.records.committed.get((item_id, location_id), 0)
            available = quantity - committed if name == "on_hand" else quantity
            delta = shop.set_available(act, item_id, location_id, available)
            changes.append(
                {
                    "name": name,
                    "delta": delta,
                    "quantity_after_change": quantity,
                    "item": shop.records.inventory_items[item_id],
                    "location": shop.records.locations[location_id],
                }
            )
    return {"inventoryAdjustmentGroup": _adjustment_group(shop, data, changes), "userErrors": []}


def _adjust_quantities(info: GraphQLResolveInfo, data: dict) -> dict:
    shop: Shop = info.context.shop
    errors: list[dict] = []
    if data["name"] != "available":
        errors.append(
            {
                "field": ["input", "name"],
                "message": "The quantity name must be 'available'.",
                "code": "INVALID_QUANTITY_NAME",
            }
        )
    _check_reason(data, errors)
    targets: list[tuple[int, int, int]] = []
    for index, entry in enumerate(data["changes"]):
        path = ["input", "changes", str(index)]
        target = _inventory_target(shop, entry["inventoryItemId"], entry["locationId"], path, errors)
        if target is None:
            continue
        current = shop.records.levels[target]["available"] or 0
        if _stale(
            current,
            entry.get("changeFromQuantity"),
            [*path, "changeFromQuantity"],
            "CHANGE_FROM_QUANTITY_STALE",
            errors,
        ):
            continue
        if not _quantity_bounds(current + entry["delta"], [*path, "delta"], errors):
            continue
        targets.append((*target, entry["delta"]))
    if errors:
        return {"inventoryAdjustmentGroup": None, "userErrors": errors}
    changes = []
    with shop.action() as act:
        for item_id, location_id, delta in targets:
            level = shop.records.levels[(item_id, location_id)]
            after = (level["available"] or 0) + delta
            shop.set_available(act, item_id, location_id, after)
            changes.append(
                {
                    "name": "available",
                    "delta": delta,
                    "quantity_after_change": after,
                    "item": shop.records.inventory_items[item_id],
                    "location": shop.records.locations[location_id],
                }
            )
    return {"inventoryAdjustmentGroup": _adjustment_group(shop, data, changes), "userErrors": []}


def _idempotency_key(info: GraphQLResolveInfo) -> str | None:
    for node in info.field_nodes:
        values = get_directive_values(_IDEMPOTENT, node, info.variable_values)
        if values is not None:
            return values["key"]
    return None


def _stall(info: GraphQLResolveInfo) -> None:
    """Spend a slow_responses delay with the shop lock released, so a retry can overtake us."""
    ctx: Context = info.context
    if ctx.stall > 0 and not ctx.stalled:
        ctx.stalled = True
        ctx.shop.lock.release()
        try:
            time.sleep(ctx.stall)
        finally:
            ctx.shop.lock.acquire()


def _idempotent(run: Callable[[GraphQLResolveInfo, dict], dict]) -> Callable:
    """Wrap an inventory mutation with Shopify's `@idempotent(key:)` semantics."""

    def resolve(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:
        ctx: Context = info.context
        shop = _require(info, "write_inventory")
        key = _idempotency_key(info)
        if key is None:
            if idempotency_required(ctx.version):
                raise GraphQLError(
                    f"The @idempotent directive is required for {info.field_name} from API version 2026-04.",
                    extensions={"code": "BAD_REQUEST"},
                )
            _stall(info)
            return run(info, input)
        fingerprint = info.field_name + json.dumps(input, sort_keys=True, default=str)
        entry = shop.idempotency_entry(key)
        if entry is not None:
            if entry.fingerprint != fingerprint:
                return _idempotency_error(
                    "IDEMPOTENCY_KEY_PARAMETER_MISMATCH",
                    "The idempotency key was already used with different parameters.",
                )
            if not entry.done:
                return _idempotency_error(
                    "IDEMPOTENCY_CONCURRENT_REQUEST", "A request with this idempotency key is currently in progress."
                )
            return entry.result
        entry = shop.begin_idempotent(key, fingerprint)
        try:
            _stall(info)
            result = run(info, input)
        except Exception:
            shop.idempotency.pop(key, None)
            raise
        entry.result = result
        entry.done = True
        return result

    return resolve


def _idempotency_error(code: str, message: str) -> dict:
    return {"inventoryAdjustmentGroup": None, "userErrors": [{"field": None, "message": message, "code": code}]}


CUSTOMER_FIELDS = {
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "phone": "phone",
    "note": "note",
}


def _customer_update(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:
    shop = _require(info, "write_customers")
    record = shop.records.customers.get(_numeric_id(input.get("id"), "Customer"))
    if record is None:
        return {"customer": None, "userErrors": [{"field": ["id"], "message": "Customer does not exist"}]}
    changes = {rest: input[gql] for gql, rest in CUSTOMER_FIELDS.items() if gql in input}
    if "tags" in input:
        changes["tags"] = join_tags(input["tags"] or [])
    errors = validate_customer(shop, record, changes)
    if errors:
        names = {rest: gql for gql, rest in CUSTOMER_FIELDS.items()}
        return {"customer": None, "userErrors": _user_errors(errors, ["input"], names)}
    with shop.action() as act:
        shop.update_customer(act, record, changes)
    return {"customer": record, "userErrors": []}


ADDRESS_FIELDS = {
    "firstName": "first_name",
    "lastName": "last_name",
    "address1": "address1",
    "address2": "address2",
    "city": "city",
    "provinceCode": "province_code",
    "countryCode": "country_code",
    "zip": "zip",
}


def _order_update(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict:
    shop = _require(info, "write_orders")
    record = shop.records.orders.get(_numeric_id(input["id"], "Order"))
    if record is None:
        return {"order": None, "userErrors": [{"field": ["id"], "message": "Order does not exist"}]}
    changes = {key: input[key] for key in ("email", "note") if key in input}
    if "tags" in input:
        changes["tags"] = join_tags(input["tags"] or [])
    if input.get("shippingAddress") is not None:
        address = dict(record.get("shipping_address") or {})
        address.update(
            {
                rest: input["shippingAddress"][gql]
                for gql, rest in ADDRESS_FIELDS.items()
                if gql in input["shippingAddress"]
            }
        )
        changes["shipping_address"] = address
    errors = validate_order(changes)
    if errors:
        return {"order": None, "userErrors": _user_errors(errors, ["input"], {})}
    with shop.action() as act:
        shop.update_order(act, record, changes)
    return {"order": record, "userErrors": []}


TAGGABLE = {
    "Product": ("write_products", "update_product"),
    "Order": ("write_orders", "update_order"),
    "Customer": ("write_customers", "update_customer"),
}


def _tags_change(add: bool) -> Callable:
    def resolve(_root: Any, info: GraphQLResolveInfo, id: str, tags: list[str]) -> dict:
        shop: Shop = info.context.shop
        parsed = parse_gid(id)
        if parsed is None or parsed[0] not in TAGGABLE:
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Invalid id"}]}
        handle, method = TAGGABLE[parsed[0]]
        _require(info, handle)
        record = shop.find(parsed[0], parsed[1])
        if record is None:
            return {"node": None, "userErrors": [{"field": ["id"], "message": "Resource not found"}]}
        current = split_tags(record.get("tags"))
        if add:
            updated = current + list(tags)
        else:
            removing = {t.strip().lower() for t in tags}
            updated = [t for t in current if t.lower() not in removing]
        with shop.action() as act:
            getattr(shop, method)(act, record, {"tags": join_tags(updated)})
        return {"node": record, "userErrors": []}

    return resolve


# --- wiring -------------------------------------------------------------------------------------------

_RESOLVERS: dict[str, dict[str, Callable]] = {
    "QueryRoot": {
        "node": _root_node,
        "nodes": _root_nodes,
        "shop": _shop,
        "currentAppInstallation": _installation,
        "product": _single("Product"),
        "products": _root_connection("products", "products", "read_products"),
        "productsCount": _root_count("products", "products", "read_products"),
        "productVariant": _single("ProductVariant"),
        "productVariants": _root_connection("variants", "variants", "read_products"),
        "productVariantsCount": _root_count("variants", "variants", "read_products"),
        "inventoryItem": _single("InventoryItem"),
        "inventoryItems": _root_connection("inventory_items", "inventory_items", "read_inventory", "read_products"),
        "inventoryLevel": _single("InventoryLevel"),
        "location": _single("Location"),
        "locations": _root_connection("locations", "locations", "read_locations", "read_inventory"),
        "customer": _single("Customer"),
        "customers": _root_connection("customers", "customers", "read_customers"),
        "customersCount": _root_count("customers", "customers", "read_customers"),
        "order": _single("Order"),
        "orders": _root_connection("orders", "orders", "read_orders"),
        "ordersCount": _root_count("orders", "orders", "read_orders"),
    },
    "Mutation": {
        "productUpdate": _product_update,
        "productVariantsBulkUpdate": _variants_bulk_update,
        "inventorySetQuantities": _idempotent(_set_quantities),
        "inventoryAdjustQuantities": _idempotent(_adjust_quantities),
        "customerUpdate": _customer_update,
        "orderUpdate": _order_update,
        "tagsAdd": _tags_change(add=True),
        "tagsRemove": _tags_change(add=False),
    },
    "Product": {
        "descriptionHtml": lambda s, _i: s.get("body_html") or "",
        "bodyHtml": _key("body_html"),
        "status": _upper("status"),
        "totalInventory": _total_inventory,
        "tracksInventory": lambda _s, _i: True,
        "variants": _product_variants,
        "variantsCount": lambda s, _i: {"count": len(s["variants"]), "precision": "EXACT"},
    },
    "ProductVariant": {
        "displayName": _variant_display_name,
        "inventoryPolicy": _upper("inventory_policy"),
        "product": _variant_product,
        "inventoryItem": _variant_item,
        "selectedOptions": _selected_options,
    },
    "InventoryItem": {
        "unitCost": _item_cost,
        "variant": _item_variant,
        "inventoryLevels": _item_levels,
        "inventoryLevel": _item_level,
    },
    "InventoryLevel": {
        "location": _level_location,
        "item": _level_item,
        "quantities": _level_quantities,
        "available": _key("available"),
        "createdAt": _time("updated_at"),
    },
    "Location": {"isActive": _key("active"), "address": _location_address, "inventoryLevels": _location_levels},
    "LocationAddress": {"countryCode": _key("country_code")},
    "Customer": {
        "displayName": _display_name,
        "defaultEmailAddress": _customer_email_address,
        "state": _upper("state"),
        "numberOfOrders": _customer_orders_count,
        "amountSpent": _customer_spent,
        "orders": _customer_orders,
    },
    "Order": {
        "closed": lambda s, _i: s.get("closed_at") is not None,
        "currencyCode": _key("currency"),
        "displayFinancialStatus": _upper("financial_status"),
        "displayFulfillmentStatus": _fulfillment_status,
        "totalOutstandingSet": lambda s, _i: money_set(s["total_outstanding"]),
        "customer": _order_customer,
        "lineItems": _order_line_items,
        "fulfillments": _order_fulfillments,
    },
    "MailingAddress": {"countryCodeV2": _key("country_code")},
    "LineItem": {
        "unfulfilledQuantity": _key("fulfillable_quantity"),
        "originalUnitPriceSet": _key("price_set"),
        "variant": _line_variant,
        "product": _line_product,
    },
    "Fulfillment": {
        "status": _upper("status"),
        "order": _fulfillment_order,
        "location": _fulfillment_location,
        "trackingInfo": _tracking,
    },
}


# Objects the resolvers build themselves, keyed by GraphQL field names rather than REST ones.
_CAMEL_KEYED = ("Connection", "Edge", "Payload", "PageInfo", "UserError", "Count")


def _wire(schema: Any) -> None:
    for type_name, resolvers in _RESOLVERS.items():
        fields = schema.type_map[type_name].fields
        for field_name, resolver in resolvers.items():
            fields[field_name].resolve = resolver
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        if type_name.endswith(_CAMEL_KEYED):
            continue  # built by the resolvers with GraphQL (camelCase) keys
        for field_name, definition in graphql_type.fields.items():
            if definition.resolve is not None:
                continue
            if field_name == "id" and graphql_type.interfaces:
                definition.resolve = _gql_id
            elif field_name == "legacyResourceId":
                definition.resolve = _legacy_id
            elif field_name == "tags":
                definition.resolve = _tags
            elif get_named_type(definition.type).name == "DateTime":
                definition.resolve = _time(_snake(field_name))
            elif field_name != field_name.lower():
                definition.resolve = _key(_snake(field_name))
    schema.type_map["Node"].resolve_type = _node_type


_wire(SCHEMA)


# --- execution ----------------------------------------------------------------------------------------


class _DocumentCache:
    """Parsed and validated documents by query string (bounded; cleared when full)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._entries: dict[str, tuple[DocumentNode | None, list[dict] | None]] = {}
        self._analyses: dict[tuple[str, str | None], OperationAnalysis] = {}

    def document(self, query: str) -> tuple[DocumentNode | None, list[dict] | None]:
        entry = self._entries.get(query)
        if entry is None:
            try:
                document = parse(query)
            except GraphQLError as error:
                entry = (None, [error.formatted])
            else:
                errors = validate(SCHEMA, document)
                entry = (None, [e.formatted for e in errors]) if errors else (document, None)
            if len(self._entries) >= self.size:
                self._entries.clear()
                self._analyses.clear()
            self._entries[query] = entry
        return entry

    def analysis(self, query: str, document: DocumentNode, operation_name: str | None) -> OperationAnalysis | None:
        key = (query, operation_name)
        analysis = self._analyses.get(key)
        if analysis is None:
            operation = get_operation_ast(document, operation_name)
            if operation is None:
                return None
            analysis = self._analyses[key] = OperationAnalysis(SCHEMA, document, operation)
        return analysis


DOCUMENTS = _DocumentCache()


def bad_request_body() -> GraphQLOutcome:
    """Shopify's 400 for a body without a usable query."""
    return GraphQLOutcome(400, {"errors": {"query": "Required parameter missing or invalid"}}, [])


def _cost(requested: int | None, actual: int | None, shop: Shop) -> dict:
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": shop.graphql_bucket.status(),
        }
    }


def _format_error(error: GraphQLError, request_id: str) -> dict:
    original = error.original_error
    if original is not None and not isinstance(original, GraphQLError):
        log.error("GraphQL resolver failed (request %s)", request_id, exc_info=original)
        formatted = error.formatted
        formatted["message"] = (
            f"Internal error. Looks like something went wrong on our end.\nRequest ID: {request_id} (include this in support requests)."
        )
        formatted["extensions"] = {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
        return formatted
    return error.formatted


def _never_awaitable(_value: Any) -> bool:
    """Every resolver here is synchronous; skipping graphql-core's awaitable probe saves time."""
    return False


def run_graphql(
    shop: Shop,
    version: str,
    request_id: str,
    query: str,
    variables: dict | None,
    operation_name: str | None,
    stall: float = 0.0,
) -> GraphQLOutcome:
    """Execute one GraphQL request against `shop`, with cost throttling and scope checks.

    `stall` is a slow_responses delay: spent inside an idempotent mutation after its key is
    registered (lock released), otherwise before taking the shop lock.
    """
    variables = variables or {}
    document, errors = DOCUMENTS.document(query)
    if document is None:
        return GraphQLOutcome(200, {"errors": errors}, [])
    analysis = DOCUMENTS.analysis(query, document, operation_name)
    if analysis is None:
        message = (
            "An operation name is required" if operation_name is None else f"No operation named {operation_name!r}"
        )
        return GraphQLOutcome(200, {"errors": [{"message": message}]}, [])
    deprecations = set(analysis.deprecations)
    if stall and not analysis.is_mutation:
        time.sleep(stall)
        stall = 0.0
    requested = analysis.requested_cost(variables)
    if requested > GRAPHQL_SINGLE_QUERY_MAX_COST:
        with shop.lock:
            extensions = _cost(requested, None, shop)
        message = (
            f"Query cost is {requested}, which exceeds the single query max cost limit ({GRAPHQL_SINGLE_QUERY_MAX_COST}).\n\n"
            f"See {RATE_LIMIT_DOCS} for more information on how the cost of a query is calculated.\n\n"
            "To query larger amounts of data with fewer limits, bulk operations should be used instead."
        )
        error = {
            "message": message,
            "extensions": {
                "code": "MAX_COST_EXCEEDED",
                "cost": requested,
                "maxCost": GRAPHQL_SINGLE_QUERY_MAX_COST,
                "documentation": RATE_LIMIT_DOCS,
            },
        }
        return GraphQLOutcome(200, {"errors": [error], "extensions": extensions}, sorted(deprecations))
    with shop.lock:
        if shop.throttling:
            if shop.faults.hit("throttle_storm"):
                shop.graphql_bucket.drain()
            if not shop.graphql_bucket.consume(requested):
                throttled = {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": RATE_LIMIT_DOCS},
                }
                return GraphQLOutcome(
                    200, {"errors": [throttled], "extensions": _cost(requested, None, shop)}, sorted(deprecations)
                )
        ctx = Context(shop, version, request_id, stall=stall)
        result = execute(
            SCHEMA,
            document,
            context_value=ctx,
            variable_values=variables,
            operation_name=operation_name,
            is_awaitable=_never_awaitable,
        )
        actual = analysis.actual_cost(result.data) if result.data is not None else 0
        if shop.throttling:
            shop.graphql_bucket.refund(requested - actual)
        extensions = _cost(requested, actual, shop)
    if stall and not ctx.stalled:
        time.sleep(stall)
    deprecations |= ctx.deprecations
    payload: dict[str, Any] = {}
    if result.errors:
        payload["errors"] = [_format_error(e, request_id) for e in result.errors]
    payload["data"] = result.data
    payload["extensions"] = extensions
    return GraphQLOutcome(200, payload, sorted(deprecations))


def parse_request_body(body: bytes, content_type: str) -> tuple[str, dict | None, str | None] | None:
    """(query, variables, operationName) from a GraphQL POST body, or None when unusable."""
    if content_type.startswith("application/graphql"):
        text = body.decode("utf-8", "replace")
        return (text, None, None) if text.strip() else None
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("query"), str) or not data["query"].strip():
        return None
    variables = data.get("variables")
    if variables is not None and not isinstance(variables, dict):
        return None
    operation = data.get("operationName")
    return data["query"], variables, operation if isinstance(operation, str) else None


__all__ = ["SCHEMA", "GraphQLOutcome", "bad_request_body", "parse_request_body", "run_graphql"]
