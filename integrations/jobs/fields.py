"""One declared field map per Shopify resource: payload field -> platform field, and which fields
are personal data.

Sync jobs build the values they write from these maps, redaction blanks exactly the personal
fields they declare, and a data-request export lists the fields they declare; outbound writes,
ownership and worksheet comparison will read the same maps. Adding a field here adds it to all of
them (and needs the platform model's column).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from integrations.models import (
    PlatformCustomer,
    PlatformInventoryLevel,
    PlatformOrder,
    PlatformProduct,
    PlatformVariant,
)


def text(value: Any) -> str:
    return "" if value is None else str(value)


def optional_int(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def as_is(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Field:
    """`platform` is the model field; `payload` the key in Shopify's webhook payload, or a function
    of the payload (and, for nested records, the parent payload)."""

    platform: str
    payload: str | Callable[..., Any]
    personal: bool = False
    convert: Callable[[Any], Any] = text
    blank: Any = ""  # what redaction writes in a personal field

    def read(self, payload: dict, parent: dict | None = None) -> Any:
        raw = self.payload(payload, parent) if callable(self.payload) else payload.get(self.payload)
        return self.convert(raw)


@dataclass(frozen=True, eq=False)  # hashed by identity: one plan per declared resource
class Resource:
    """A Shopify resource as the platform stores it: its model, its key within a shop, and its fields."""

    name: str
    model: type[models.Model]
    key: dict[str, Callable[[dict], Any]]  # model field -> read from the payload
    fields: tuple[Field, ...]
    gid_type: str = ""
    # A redacted record keeps its row but is never written again at all (customers: Shopify may
    # still send a queued customers/update after customers/redact).
    frozen_when_redacted: bool = False
    extra: dict = field(default_factory=dict)

    def key_of(self, payload: dict) -> dict[str, Any]:
        return {name: read(payload) for name, read in self.key.items()}

    def values(self, payload: dict, parent: dict | None = None) -> dict[str, Any]:
        return {f.platform: f.read(payload, parent) for f in self.fields}

    @property
    def personal_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.personal)

    def scrubbed_values(self) -> dict[str, Any]:
        """What redaction writes: every personal field blanked."""
        return {f.platform: f.blank for f in self.personal_fields}

    def export_fields(self) -> list[str]:
        """What a customer data request exports for this resource."""
        return [*self.key, *(f.platform for f in self.fields if f.platform != "gid"), "shopify_updated_at"]

    @property
    def has_redaction(self) -> bool:
        return any(f.name == "redacted_at" for f in self.model._meta.concrete_fields)


def _gid(kind: str) -> Field:
    return Field("gid", lambda p, _parent: p.get("admin_graphql_api_id") or f"gid://shopify/{kind}/{p['id']}")


def _line_items(payload: dict, _parent) -> list[dict]:
    keys = ("id", "variant_id", "sku", "title", "quantity", "price")
    return [{k: item.get(k) for k in keys} for item in payload.get("line_items") or []]


ORDER = Resource(
    name="order",
    model=PlatformOrder,
    key={"shopify_id": lambda p: int(p["id"])},
    gid_type="Order",
    fields=(
        _gid("Order"),
        Field("name", "name"),
        Field("order_number", "order_number", convert=optional_int),
        Field("email", "email", personal=True),
        Field("customer_shopify_id", lambda p, _: (p.get("customer") or {}).get("id"), convert=optional_int),
        Field("financial_status", "financial_status"),
        Field("fulfillment_status", "fulfillment_status"),
        Field("total_price", "total_price"),
        Field("currency", "currency"),
        Field("tags", "tags"),
        Field("line_items", _line_items, convert=as_is),
        Field("shipping_address", "shipping_address", personal=True, convert=as_is, blank=None),
    ),
)

CUSTOMER = Resource(
    name="customer",
    model=PlatformCustomer,
    key={"shopify_id": lambda p: int(p["id"])},
    gid_type="Customer",
    frozen_when_redacted=True,
    fields=(
        _gid("Customer"),
        Field("email", "email", personal=True),
        Field("first_name", "first_name", personal=True),
        Field("last_name", "last_name", personal=True),
        Field("phone", "phone", personal=True),
        Field("tags", "tags"),
    ),
)

PRODUCT = Resource(
    name="product",
    model=PlatformProduct,
    key={"shopify_id": lambda p: int(p["id"])},
    gid_type="Product",
    fields=(
        _gid("Product"),
        Field("title", "title"),
        Field("handle", "handle"),
        Field("status", "status"),
        Field("vendor", "vendor"),
        Field("tags", "tags"),
    ),
)

VARIANT = Resource(
    name="variant",
    model=PlatformVariant,
    key={"shopify_id": lambda p: int(p["id"])},
    gid_type="ProductVariant",
    fields=(
        _gid("ProductVariant"),
        Field("product_shopify_id", lambda p, parent: (parent or {}).get("id") or p.get("product_id"), convert=int),
        Field("title", "title"),
        Field("sku", "sku"),
        Field("price", "price"),
        Field("inventory_item_id", "inventory_item_id", convert=optional_int),
    ),
)

INVENTORY_LEVEL = Resource(
    name="inventory_level",
    model=PlatformInventoryLevel,
    key={
        "inventory_item_id": lambda p: int(p["inventory_item_id"]),
        "location_id": lambda p: int(p["location_id"]),
    },
    fields=(Field("available", "available", convert=as_is),),
)

RESOURCES: dict[str, Resource] = {r.name: r for r in (ORDER, CUSTOMER, PRODUCT, VARIANT, INVENTORY_LEVEL)}

# Raw payloads hold more personal data than the platform keeps (billing addresses, notes, IPs).
# Redaction scrubs these keys wherever they appear, plus every personal field the maps declare.
EXTRA_PERSONAL_PAYLOAD_KEYS = frozenset(
    {
        "address1",
        "address2",
        "city",
        "zip",
        "province",
        "province_code",
        "latitude",
        "longitude",
        "company",
        "contact_email",
        "browser_ip",
        "note",
    }
)
# Blocks that describe a person: everything in them but ids and the country is personal.
PERSONAL_PAYLOAD_BLOCKS = frozenset({"shipping_address", "billing_address", "default_address", "addresses", "customer"})


def personal_payload_keys() -> frozenset[str]:
    declared = {
        f.payload
        for resource in RESOURCES.values()
        for f in resource.personal_fields
        if isinstance(f.payload, str) and f.payload not in PERSONAL_PAYLOAD_BLOCKS
    }
    return frozenset(declared) | EXTRA_PERSONAL_PAYLOAD_KEYS
