"""What a worksheet compares for each resource type: the fields (named as the platform's field map
and the ownership map name them), how to read each from Shopify's GraphQL node and from the
platform record, how values are normalised before comparing, and how each side is written.

Normalisation makes equal what a person would call equal: money to the cent, tags as a set
(order and surrounding spaces do not matter), whitespace collapsed, case ignored where Shopify
ignores it (emails, handles, enum values).
"""

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Model, Q

from integrations.jobs.fields import RESOURCES as FIELD_MAPS
from integrations.models import (
    PlatformCustomer,
    PlatformInventoryLevel,
    PlatformOrder,
    PlatformProduct,
    PlatformVariant,
    Shop,
)

# --- normalising ------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return re.sub(r"\s+", " ", "" if value is None else str(value)).strip()


def _folded(value: Any) -> str:
    return _text(value).lower()


def _tags(value: Any) -> list[str]:
    items = value if isinstance(value, list | tuple) else _text(value).split(",")
    return sorted({_text(item) for item in items if _text(item)})


def _money(value: Any) -> str | None:
    if value in (None, ""):
        return None
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.01")))
    except InvalidOperation:
        return _text(value)


def _integer(value: Any) -> int | None:
    if value in (None, ""):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _fulfillment(value: Any) -> str:
    # GraphQL says UNFULFILLED where the REST payloads the platform stores say null.
    folded = _folded(value)
    return "" if folded in ("unfulfilled", "none", "null") else folded


def _phone(value: Any) -> str:
    return re.sub(r"[\s().-]", "", _text(value))


NORMALISERS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "folded": _folded,
    "tags": _tags,
    "money": _money,
    "integer": _integer,
    "fulfillment": _fulfillment,
    "phone": _phone,
}


# --- fields and resources ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldSpec:
    """`name`: the platform field (and the ownership map's). `read`: its raw value in the GraphQL
    node. `shopify_input`: the mutation input key that writes it, or "" if Shopify's API cannot
    write it (a status or total is the result of what happened to the order)."""

    name: str
    kind: str
    read: Callable[[dict], Any]
    shopify_input: str = ""

    def normalise(self, value: Any) -> Any:
        return NORMALISERS[self.kind](value)

    def for_platform(self, value: Any) -> Any:
        """A normalised value as the platform's column stores it."""
        if self.kind == "tags":
            return ", ".join(value or [])
        if self.kind == "integer":
            return value
        return "" if value is None else value

    def for_shopify(self, value: Any) -> Any:
        """A normalised value as the mutation input takes it."""
        if self.kind == "tags":
            return list(value or [])
        if self.name == "status":
            return str(value or "").upper()
        return value


def _get(*path: str) -> Callable[[dict], Any]:
    def read(node: dict) -> Any:
        value: Any = node
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        return value

    return read


def _legacy(gid: str) -> int | None:
    match = re.match(r"^gid://shopify/\w+/(\d+)", gid or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True, eq=False)
class ResourceKind:
    name: str  # the worksheet's resource
    ownership: str  # the ownership map's and the field map's resource
    gid_type: str
    model: type[Model]
    fields: tuple[FieldSpec, ...]
    selection: str  # the GraphQL selection read for one node (id and updatedAt included)
    operation: str = ""  # the outbound operation that writes Shopify
    label: Callable[[dict], str] = lambda values: ""

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def document(self) -> str:
        return f"query WorksheetRead($ids: [ID!]!) {{ nodes(ids: $ids) {{ ... on {self.gid_type} {{ {self.selection} }} }} }}"

    # --- keys ---

    def gid(self, text: str) -> str:
        """A pasted id as this resource's gid: a gid, or a numeric id (for inventory levels
        `INVENTORY_ITEM_ID:LOCATION_ID`). Raises ValueError naming what was wrong."""
        text = text.strip()
        if self.name == "inventory_levels":
            match = re.match(r"^gid://shopify/InventoryLevel/(\d+)\?inventory_item_id=(\d+)$", text)
            if match:
                return text
            match = re.match(r"^(\d+):(\d+)$", text)
            if match:
                return f"gid://shopify/InventoryLevel/{match.group(2)}?inventory_item_id={match.group(1)}"
            raise ValueError(f"{text!r} is not an inventory level: give its gid or INVENTORY_ITEM_ID:LOCATION_ID")
        if re.match(rf"^gid://shopify/{self.gid_type}/\d+$", text):
            return text
        if re.match(r"^\d{1,19}$", text):
            return f"gid://shopify/{self.gid_type}/{text}"
        raise ValueError(
            f"{text!r} is not a {self.gid_type} id: give the number or its gid://shopify/{self.gid_type}/…"
        )

    def platform_key(self, gid: str) -> dict:
        if self.name == "inventory_levels":
            match = re.match(r"^gid://shopify/InventoryLevel/(\d+)\?inventory_item_id=(\d+)$", gid)
            return {"inventory_item_id": int(match.group(2)), "location_id": int(match.group(1))}
        return {"shopify_id": _legacy(gid)}

    def platform_records(self, shop: Shop, gids: list[str]) -> dict[str, Model]:
        """gid -> the platform's record, for a batch of gids (one query)."""
        keys = {gid: self.platform_key(gid) for gid in gids}
        if self.name == "inventory_levels":
            query = Q()
            for key in keys.values():
                query |= Q(**key)
            rows = self.model.objects.filter(Q(shop=shop) & query) if keys else []
            by_key = {(r.inventory_item_id, r.location_id): r for r in rows}
            return {
                gid: by_key[(k["inventory_item_id"], k["location_id"])]
                for gid, k in keys.items()
                if (k["inventory_item_id"], k["location_id"]) in by_key
            }
        rows = self.model.objects.filter(shop=shop, shopify_id__in=[k["shopify_id"] for k in keys.values()])
        by_id = {r.shopify_id: r for r in rows}
        return {gid: by_id[k["shopify_id"]] for gid, k in keys.items() if k["shopify_id"] in by_id}

    # --- values ---

    def shopify_values(self, node: dict) -> dict:
        """Raw values from a GraphQL node, plus what a write needs (the parent product's id)."""
        values = {f.name: f.read(node) for f in self.fields}
        if self.name == "variants":
            values["product_gid"] = _get("product", "id")(node)
        return values

    def platform_values(self, record: Model) -> dict:
        return {f.name: getattr(record, f.name) for f in self.fields}

    # --- writes ---

    def shopify_write(self, gid: str, values: dict, snapshot: dict) -> tuple[str, dict]:
        """(operation, variables) writing these normalised values to the record in Shopify."""
        inputs = {self.field(name).shopify_input: self.field(name).for_shopify(v) for name, v in values.items()}
        if self.name == "products":
            return self.operation, {"product": {"id": gid, **inputs}}
        if self.name == "variants":
            variant = {"id": gid, **{k: v for k, v in inputs.items() if k != "sku"}}
            if "sku" in inputs:
                variant["inventoryItem"] = {"sku": inputs["sku"]}
            return self.operation, {"productId": snapshot.get("product_gid"), "variants": [variant]}
        if self.name == "inventory_levels":
            key = self.platform_key(gid)
            return self.operation, {
                "input": {
                    "name": "available",
                    "reason": "correction",
                    "quantities": [
                        {
                            "inventoryItemId": f"gid://shopify/InventoryItem/{key['inventory_item_id']}",
                            "locationId": f"gid://shopify/Location/{key['location_id']}",
                            "quantity": int(values["available"]),
                            # Shopify's own compare guard: refused if the count moved since the snapshot.
                            "changeFromQuantity": _integer(snapshot.get("available")) or 0,
                        }
                    ],
                }
            }
        return self.operation, {"input": {"id": gid, **inputs}}

    def unwritable_in_shopify(self, names) -> list[str]:
        return [name for name in names if not self.field(name).shopify_input]


PRODUCTS = ResourceKind(
    name="products",
    ownership="product",
    gid_type="Product",
    model=PlatformProduct,
    operation="product.update",
    selection="id title handle status vendor tags updatedAt",
    fields=(
        FieldSpec("title", "text", _get("title"), "title"),
        FieldSpec("handle", "folded", _get("handle"), "handle"),
        FieldSpec("status", "folded", _get("status"), "status"),
        FieldSpec("vendor", "text", _get("vendor"), "vendor"),
        FieldSpec("tags", "tags", _get("tags"), "tags"),
    ),
    label=lambda values: _text(values.get("title")),
)
VARIANTS = ResourceKind(
    name="variants",
    ownership="variant",
    gid_type="ProductVariant",
    model=PlatformVariant,
    operation="variant.update",
    selection="id title sku price updatedAt product { id }",
    fields=(
        FieldSpec("title", "text", _get("title")),  # from the options: not writable by itself
        FieldSpec("sku", "text", _get("sku"), "sku"),
        FieldSpec("price", "money", _get("price"), "price"),
    ),
    label=lambda values: " · ".join(v for v in (_text(values.get("title")), _text(values.get("sku"))) if v),
)
INVENTORY_LEVELS = ResourceKind(
    name="inventory_levels",
    ownership="inventory_level",
    gid_type="InventoryLevel",
    model=PlatformInventoryLevel,
    operation="inventory.set",
    selection='id updatedAt quantities(names: ["available"]) { name quantity }',
    fields=(
        FieldSpec(
            "available",
            "integer",
            lambda node: next(
                (q.get("quantity") for q in node.get("quantities") or [] if q.get("name") == "available"), None
            ),
            "quantity",
        ),
    ),
)
ORDERS = ResourceKind(
    name="orders",
    ownership="order",
    gid_type="Order",
    model=PlatformOrder,
    operation="order.update",
    selection=(
        "id name email tags displayFinancialStatus displayFulfillmentStatus currencyCode updatedAt "
        "totalPriceSet { shopMoney { amount } }"
    ),
    fields=(
        FieldSpec("email", "folded", _get("email"), "email"),
        FieldSpec("tags", "tags", _get("tags"), "tags"),
        FieldSpec("financial_status", "folded", _get("displayFinancialStatus")),
        FieldSpec("fulfillment_status", "fulfillment", _get("displayFulfillmentStatus")),
        FieldSpec("total_price", "money", _get("totalPriceSet", "shopMoney", "amount")),
        FieldSpec("currency", "folded", _get("currencyCode")),
    ),
    label=lambda values: _text(values.get("name")),
)
CUSTOMERS = ResourceKind(
    name="customers",
    ownership="customer",
    gid_type="Customer",
    model=PlatformCustomer,
    operation="customer.update",
    selection="id firstName lastName phone tags updatedAt defaultEmailAddress { emailAddress }",
    fields=(
        FieldSpec("email", "folded", _get("defaultEmailAddress", "emailAddress"), "email"),
        FieldSpec("first_name", "text", _get("firstName"), "firstName"),
        FieldSpec("last_name", "text", _get("lastName"), "lastName"),
        FieldSpec("phone", "phone", _get("phone"), "phone"),
        FieldSpec("tags", "tags", _get("tags"), "tags"),
    ),
    label=lambda values: " ".join(v for v in (_text(values.get("first_name")), _text(values.get("last_name"))) if v),
)

KINDS: dict[str, ResourceKind] = {k.name: k for k in (PRODUCTS, VARIANTS, INVENTORY_LEVELS, ORDERS, CUSTOMERS)}

# Every compared field is one the platform's field map stores (a test checks it).
assert all(
    {f.name for f in kind.fields} <= {f.platform for f in FIELD_MAPS[kind.ownership].fields} for kind in KINDS.values()
)


def parse_ids(kind: ResourceKind, text: str) -> list[str]:
    """Pasted or uploaded ids as gids, in order and without repeats: one per line, several on a line
    separated by commas, or a CSV file whose first column holds them (a header line allowed).
    Raises ValueError naming the bad lines."""
    gids, bad, seen = [], [], set()
    for number, cells in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in cells if cell.strip()]
        if not cells:
            continue
        parsed = []
        for cell in cells:
            try:
                parsed.append(kind.gid(cell))
            except ValueError as error:
                parsed.append(error)
        if all(isinstance(item, str) for item in parsed):
            found = parsed  # a comma-separated list of ids
        elif isinstance(parsed[0], str):
            found = parsed[:1]  # a CSV row: the id, then other columns
        elif number == 1 and not any(re.search(r"\d", cell) for cell in cells):
            continue  # a header
        else:
            bad.append(f"line {number}: {parsed[0]}")
            continue
        for gid in found:
            if gid not in seen:
                seen.add(gid)
                gids.append(gid)
    if bad:
        raise ValueError("; ".join(bad[:10]) + (f"; and {len(bad) - 10} more" if len(bad) > 10 else ""))
    return gids
