"""GraphQL mutations the console uses to repair records, with Shopify's userErrors and the
`@idempotent(key:)` rules for the inventory mutations."""

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from graphql import GraphQLError, GraphQLResolveInfo
from graphql.execution.values import get_directive_values

from integrations.simulator.graphql_resolvers import Context, require_scope, subscription_node
from integrations.simulator.records import join_tags, parse_gid, rest_time, split_tags
from integrations.simulator.store import (
    TOPICS_BY_ENUM,
    Shop,
    decimal_money,
    validate_customer,
    validate_order,
    validate_product,
    validate_variant,
)
from integrations.simulator.versions import idempotency_required

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
    shop = require_scope(info, "write_products")
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
    shop = require_scope(info, "write_products")
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
        values = get_directive_values(info.schema.get_directive("idempotent"), node, info.variable_values)
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
        shop = require_scope(info, "write_inventory")
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
    shop = require_scope(info, "write_customers")
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
    shop = require_scope(info, "write_orders")
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
        require_scope(info, handle)
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


def _subscription_create(_root: Any, info: GraphQLResolveInfo, topic: str, webhookSubscription: dict) -> dict:
    """An API-created HTTP subscription (JSON only). The topic's read scope is not checked here:
    as for every subscription, a topic whose scope is missing is simply not delivered."""
    shop: Shop = info.context.shop
    name = "uri" if webhookSubscription.get("uri") is not None else "callbackUrl"
    if name == "callbackUrl" and webhookSubscription.get("callbackUrl") is not None:
        info.context.deprecations.add("WebhookSubscriptionInput.callbackUrl")
    address = (webhookSubscription.get(name) or "").strip()
    parts = urlsplit(address)
    message = None
    if not address:
        message = "Address can't be blank"
    elif parts.scheme not in ("http", "https") or not parts.hostname:
        message = "Address is invalid"
    elif any(s.address == address for s in shop.active_subscriptions(TOPICS_BY_ENUM[topic])):
        message = "Address for this topic has already been taken"
    if message is None and webhookSubscription.get("format") not in (None, "JSON"):
        name, message = "format", "Format XML is not supported (the simulator sends JSON)"
    if message is not None:
        return {
            "webhookSubscription": None,
            "userErrors": [{"field": ["webhookSubscription", name], "message": message}],
        }
    subscription = shop.subscribe(TOPICS_BY_ENUM[topic], address)
    return {"webhookSubscription": subscription_node(subscription), "userErrors": []}


def _subscription_delete(_root: Any, info: GraphQLResolveInfo, id: str) -> dict:
    shop: Shop = info.context.shop
    if shop.find_subscription(id) is None:
        return {
            "deletedWebhookSubscriptionId": None,
            "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
        }
    shop.remove_subscription(id, "deleted through the API")
    return {"deletedWebhookSubscriptionId": id, "userErrors": []}


MUTATION_RESOLVERS: dict[str, Callable] = {
    "productUpdate": _product_update,
    "productVariantsBulkUpdate": _variants_bulk_update,
    "inventorySetQuantities": _idempotent(_set_quantities),
    "inventoryAdjustQuantities": _idempotent(_adjust_quantities),
    "customerUpdate": _customer_update,
    "orderUpdate": _order_update,
    "tagsAdd": _tags_change(add=True),
    "tagsRemove": _tags_change(add=False),
    "webhookSubscriptionCreate": _subscription_create,
    "webhookSubscriptionDelete": _subscription_delete,
}
