"""GraphQL read resolvers over the shop's REST-shaped records: node lookup, Relay pagination,
scope checks, and the fields that need converting from REST names and values.

Resolvers run with the shop lock held (taken by `graphql_api.run_graphql`).
"""

import base64
import json
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from graphql import GraphQLError, GraphQLObjectType, GraphQLResolveInfo, get_named_type

from integrations.simulator.records import gid, graphql_time, money_set, parse_gid, rest_time, split_tags
from integrations.simulator.search import compile_search
from integrations.simulator.store import Shop, Subscription, scope_description, topic_enum
from integrations.simulator.versions import LATEST_VERSION, SUPPORTED_VERSIONS

MAX_PAGE_SIZE = 250
ACCESS_SCOPE_DOCS = "https://shopify.dev/api/usage/access-scopes"
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
    """Per-request state handed to every resolver as `info.context`."""

    shop: Shop
    version: str
    request_id: str
    deprecations: set[str] = field(default_factory=set)
    stall: float = 0.0  # slow_responses delay to spend inside an idempotent mutation
    stalled: bool = False


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


def require_scope(info: GraphQLResolveInfo, *handles: str) -> Shop:
    """The request's shop, or ACCESS_DENIED for this field unless one of `handles` is granted."""
    shop: Shop = info.context.shop
    if not any(shop.has_scope(h) for h in handles):
        raise access_denied(info.field_name, handles[0])
    return shop


def bad_request(message: str) -> GraphQLError:
    """A GraphQL error with code BAD_REQUEST."""
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
        raise bad_request(f"Invalid cursor for current pagination sort: {cursor!r}") from exc
    return (data.get("last_value"), last_id) if tuple_keys else last_id


def _cursor(name: str) -> Callable:
    """Resolver encoding the sort key stored under `name` (cursors are built only when asked for)."""

    def resolve(source: dict, _info: GraphQLResolveInfo) -> str | None:
        key = source.get(name)
        return None if key is None else _encode_cursor(key)

    return resolve


def paginate(keys: Sequence, fetch: Callable[[Any], dict], args: dict) -> dict:
    """A Relay connection over `keys` (sorted ascending: ids, or (value, id) tuples)."""
    first, last = args.get("first"), args.get("last")
    if first is None and last is None:
        raise bad_request("you must provide one of first or last")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 0 <= value <= MAX_PAGE_SIZE:
            raise bad_request(f"The {name} argument must be between 0 and {MAX_PAGE_SIZE}.")
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
        "edges": [{"node": node, "cursor": k} for k, node in zip(chosen, nodes, strict=True)],
        "nodes": nodes,
        "pageInfo": {
            "hasNextPage": end < n,
            "hasPreviousPage": start > 0,
            "startCursor": chosen[0] if chosen else None,
            "endCursor": chosen[-1] if chosen else None,
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
    if kind == "WebhookSubscription":  # an app reads its own subscriptions without any scope
        return subscription_node(info.context.shop.find_subscription(value))
    handles = NODE_SCOPES.get(kind)
    if handles is None:
        return None
    require_scope(info, *handles)
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
        shop = require_scope(info, *handles)
        return _index_connection(getattr(shop.records, attribute), kind, args)

    return resolve


def _root_count(attribute: str, kind: str, *handles: str) -> Callable:
    def resolve(_root: Any, info: GraphQLResolveInfo, query: str | None = None) -> dict:
        shop = require_scope(info, *handles)
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


def subscription_node(subscription: Subscription | None) -> dict | None:
    """A webhook subscription as the GraphQL `WebhookSubscription` object reads it."""
    if subscription is None:
        return None
    stamp = rest_time(subscription.created_at)
    version = subscription.api_version
    return {
        "admin_graphql_api_id": subscription.id,
        "id": int(subscription.id.rsplit("/", 1)[1]),
        "topic": topic_enum(subscription.topic),
        "format": "JSON",
        "uri": subscription.address,
        "callback_url": subscription.address,
        "endpoint": {"callback_url": subscription.address},
        "api_version": {
            "handle": version,
            "display_name": f"{version} (Latest)" if version == LATEST_VERSION else version,
            "supported": version in SUPPORTED_VERSIONS,
        },
        "created_at": stamp,
        "updated_at": stamp,  # subscriptions are never updated here
    }


def _webhook_subscriptions(_root: Any, info: GraphQLResolveInfo, topics: list[str] | None = None, **args: Any) -> dict:
    shop: Shop = info.context.shop
    wanted = set(topics) if topics else None
    live = {
        int(s.id.rsplit("/", 1)[1]): s
        for s in shop.active_subscriptions()
        if wanted is None or topic_enum(s.topic) in wanted
    }
    return paginate(sorted(live), lambda key: subscription_node(live[key]), args)


# --- object field resolvers -------------------------------------------------------------------------


def records_of(info: GraphQLResolveInfo) -> Any:
    """The RecordSet of the request's shop."""
    return info.context.shop.records


def _product_variants(source: dict, _info: GraphQLResolveInfo, **args: Any) -> dict:
    variants = {v["id"]: v for v in source["variants"]}
    return paginate(sorted(variants), variants.__getitem__, args)


def _variant_product(source: dict, info: GraphQLResolveInfo) -> dict:
    return records_of(info).products[source["product_id"]]


def _variant_item(source: dict, info: GraphQLResolveInfo) -> dict:
    return records_of(info).inventory_items[source["inventory_item_id"]]


def _selected_options(source: dict, info: GraphQLResolveInfo) -> list[dict]:
    product = records_of(info).products.get(source["product_id"])
    options = product["options"] if product else []
    return [
        {"name": option["name"], "value": source.get(f"option{option['position']}")}
        for option in options
        if source.get(f"option{option['position']}") is not None
    ]


def _item_levels(source: dict, info: GraphQLResolveInfo, **args: Any) -> dict:
    records = records_of(info)
    levels = records.levels
    item_id = source["id"]
    return paginate(records.item_locations.get(item_id, []), lambda loc: levels[(item_id, loc)], args)


def _item_level(source: dict, info: GraphQLResolveInfo, locationId: str) -> dict | None:
    parsed = parse_gid(locationId)
    if parsed is None or parsed[0] != "Location":
        raise GraphQLError(f"Invalid global id '{locationId}'", extensions={"code": "argumentLiteralsIncompatible"})
    return records_of(info).levels.get((source["id"], parsed[1]))


def _location_levels(source: dict, info: GraphQLResolveInfo, **args: Any) -> dict:
    records = records_of(info)
    location_id = source["id"]
    keys = [item for item in records.inventory_items.ids if (item, location_id) in records.levels]
    return paginate(keys, lambda item: records.levels[(item, location_id)], args)


def _level_quantities(source: dict, info: GraphQLResolveInfo, names: list[str]) -> list[dict]:
    shop: Shop = info.context.shop
    unknown = [n for n in names if n not in QUANTITY_NAMES]
    if unknown:
        raise bad_request(f"Invalid quantity names: {', '.join(unknown)}. Valid names: {', '.join(QUANTITY_NAMES)}.")
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
    return records_of(info).locations[source["location_id"]]


def _level_item(source: dict, info: GraphQLResolveInfo) -> dict:
    return records_of(info).inventory_items[source["inventory_item_id"]]


def _location_address(source: dict, _info: GraphQLResolveInfo) -> dict:
    return source


def _customer_orders(source: dict, info: GraphQLResolveInfo, **args: Any) -> dict:
    shop = require_scope(info, "read_orders")
    ids = sorted(shop.records.orders_by_customer.get(source["id"], []))
    return paginate(ids, shop.records.orders.__getitem__, args)


def _customer_email_address(source: dict, _info: GraphQLResolveInfo) -> dict | None:
    if not source.get("email"):
        return None
    consent = source.get("email_marketing_consent") or {}
    return {"email_address": source["email"], "marketing_state": (consent.get("state") or "not_subscribed").upper()}


def _customer_orders_count(source: dict, info: GraphQLResolveInfo) -> str:
    return str(len(records_of(info).orders_by_customer.get(source["id"], [])))


def _customer_spent(source: dict, info: GraphQLResolveInfo) -> dict:
    records = records_of(info)
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
    require_scope(info, "read_customers")
    summary = source.get("customer")
    return records_of(info).customers.get(summary["id"]) if summary else None


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
    return records_of(info).variants.get(source.get("variant_id"))


def _line_product(source: dict, info: GraphQLResolveInfo) -> dict | None:
    return records_of(info).products.get(source.get("product_id"))


def _fulfillment_order(source: dict, info: GraphQLResolveInfo) -> dict:
    return records_of(info).orders[source["order_id"]]


def _fulfillment_location(source: dict, info: GraphQLResolveInfo) -> dict | None:
    return records_of(info).locations.get(source.get("location_id"))


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
    product = records_of(info).products.get(source["product_id"])
    return f"{product['title']} - {source['title']}" if product else source["title"]


def _item_cost(source: dict, _info: GraphQLResolveInfo) -> dict | None:
    return {"amount": source["cost"], "currency_code": "USD"} if source.get("cost") is not None else None


def _item_variant(source: dict, info: GraphQLResolveInfo) -> dict:
    return records_of(info).variant_by_item[source["id"]]


# --- resolver map ---------------------------------------------------------------------------------

QUERY_RESOLVERS: dict[str, dict[str, Callable]] = {
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
        "webhookSubscription": _single("WebhookSubscription"),
        "webhookSubscriptions": _webhook_subscriptions,
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


def wire(schema: Any, resolvers_by_type: dict[str, dict[str, Callable]]) -> None:
    """Attach resolvers to `schema`; fields without one read the REST record by snake_case name."""
    for type_name, resolvers in resolvers_by_type.items():
        fields = schema.type_map[type_name].fields
        for field_name, resolver in resolvers.items():
            fields[field_name].resolve = resolver
    for type_name, graphql_type in schema.type_map.items():
        if type_name.startswith("__") or not isinstance(graphql_type, GraphQLObjectType):
            continue
        if type_name.endswith(_CAMEL_KEYED):
            # Built by the resolvers with GraphQL (camelCase) keys; cursors hold raw sort keys.
            for field_name, definition in graphql_type.fields.items():
                if definition.resolve is None:
                    cursor = field_name in ("cursor", "startCursor", "endCursor")
                    definition.resolve = _cursor(field_name) if cursor else _key(field_name)
            continue
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
            else:
                # An explicit key lookup is cheaper than graphql-core's generic default resolver.
                definition.resolve = _key(_snake(field_name))
    schema.type_map["Node"].resolve_type = _node_type
    schema.type_map["WebhookSubscriptionEndpoint"].resolve_type = lambda _value, _info, _type: "WebhookHttpEndpoint"
