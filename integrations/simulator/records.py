"""Shopify-shaped records (REST field names, as webhooks and the REST API send them) and their
deterministic generation from a seed.

Every record has a numeric `id`, an `admin_graphql_api_id` (`gid://shopify/<Type>/<id>`) and an
`updated_at` in the shop's UTC offset, like `2026-05-04T10:15:02-05:00`. Money is a string.
"""

import bisect
import hashlib
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from urllib.parse import parse_qs

# Simulated shops keep a fixed offset (no DST) so timestamps are reproducible.
SHOP_TZ = timezone(timedelta(hours=-5))
# Seeded records are dated in the year before this instant, whatever today's date is.
SEED_EPOCH = datetime(2026, 1, 1, tzinfo=SHOP_TZ).timestamp()
CURRENCY = "USD"
TAX_RATE = Decimal("0.08")
CENT = Decimal("0.01")

# First id of each record type. Line item ids start above 2**53 on purpose: Shopify ids can,
# and a client that parses them as JavaScript numbers would round them.
ID_BASES = {
    "Product": 8_100_000_000_000,
    "ProductVariant": 44_000_000_000_000,
    "InventoryItem": 46_000_000_000_000,
    "Location": 66_010_000_000,
    "Customer": 7_000_000_000_000,
    "Order": 5_500_000_000_000,
    "LineItem": 18_000_000_000_000_000,
    "Fulfillment": 4_200_000_000_000,
    "InventoryAdjustmentGroup": 30_000_000_000,
}

LOCATIONS = [
    ("Main Warehouse", "400 Industrial Way", "Columbus", "OH", "43215"),
    ("Downtown Store", "12 Pine St", "Austin", "TX", "78701"),
    ("East Fulfillment Center", "88 Harbor Rd", "Newark", "NJ", "07102"),
]
ADJECTIVES = [
    "Trail",
    "Summit",
    "Ridge",
    "Alpine",
    "Canyon",
    "Harbor",
    "Cedar",
    "Granite",
    "Meadow",
    "Glacier",
    "Desert",
    "Forest",
]
NOUNS = [
    ("Backpack", "Bags", "89.00"),
    ("Tent", "Shelter", "249.00"),
    ("Sleeping Bag", "Sleep", "139.00"),
    ("Enamel Mug", "Kitchen", "18.00"),
    ("Headlamp", "Lighting", "39.00"),
    ("Rain Jacket", "Apparel", "159.00"),
    ("Wool Socks", "Apparel", "22.00"),
    ("Water Filter", "Hydration", "49.00"),
    ("Camp Stove", "Kitchen", "99.00"),
    ("Trekking Poles", "Hiking", "79.00"),
    ("Hammock", "Shelter", "69.00"),
    ("Fleece Beanie", "Apparel", "25.00"),
]
VENDORS = ["Camp Co", "Northbound Gear", "Peak Supply", "Wildway"]
COLORS = ["Blue", "Green", "Orange", "Black", "Sand"]
SIZES = ["S", "M", "L", "XL"]
FIRST_NAMES = [
    "Ana",
    "Ben",
    "Chloe",
    "Dev",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jon",
    "Kara",
    "Liam",
    "Mei",
    "Noah",
    "Olu",
    "Priya",
]
LAST_NAMES = [
    "Ruiz",
    "Smith",
    "Okafor",
    "Nguyen",
    "Kowalski",
    "Haddad",
    "Larsen",
    "Tanaka",
    "Moreau",
    "Patel",
    "Silva",
    "Brown",
]
STREETS = ["Pine St", "Oak Ave", "Maple Dr", "River Rd", "Hill St", "Lake Blvd"]
CITIES = [("Austin", "TX", "78701"), ("Denver", "CO", "80202"), ("Portland", "OR", "97201"), ("Boston", "MA", "02108")]
TAGS = ["vip", "wholesale", "gift", "newsletter", "returning", "local-pickup"]
CARRIERS = [
    ("UPS", "https://www.ups.com/track?tracknum={}"),
    ("USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={}"),
]


def rest_time(ts: float) -> str:
    """A REST/webhook timestamp in the shop's offset, whole seconds: `2026-05-04T10:15:02-05:00`."""
    return datetime.fromtimestamp(int(ts), SHOP_TZ).isoformat()


@lru_cache(maxsize=65536)
def graphql_time(rest_value: str | None) -> str | None:
    """The GraphQL `DateTime` form of a REST timestamp: UTC with a `Z` suffix."""
    if rest_value is None:
        return None
    return datetime.fromisoformat(rest_value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    """Epoch seconds of an ISO 8601 timestamp (REST or GraphQL form, or a bare date)."""
    value = value.strip().strip("'\"")
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=SHOP_TZ)
    return parsed.timestamp()


def gid(kind: str, record_id: int) -> str:
    """`gid://shopify/<kind>/<id>`."""
    return f"gid://shopify/{kind}/{record_id}"


def level_gid(location_id: int, inventory_item_id: int) -> str:
    """An inventory level's gid, keyed by location and item as Shopify writes it."""
    return f"gid://shopify/InventoryLevel/{location_id}?inventory_item_id={inventory_item_id}"


def parse_gid(value: str) -> tuple[str, int, dict[str, str]] | None:
    """(type, numeric id, query parameters) of a Shopify gid, or None when it is not one."""
    if not isinstance(value, str) or not value.startswith("gid://shopify/"):
        return None
    rest, _, query = value[len("gid://shopify/") :].partition("?")
    kind, _, raw_id = rest.partition("/")
    if not kind or not raw_id.isdigit():
        return None
    params = {k: v[0] for k, v in parse_qs(query).items()}
    return kind, int(raw_id), params


def money(value: Decimal) -> str:
    """Shopify money string with two decimals."""
    return str(value.quantize(CENT))


def money_set(amount: str) -> dict:
    """A `*_set` money bag in the shop currency."""
    return {
        "shop_money": {"amount": amount, "currency_code": CURRENCY},
        "presentment_money": {"amount": amount, "currency_code": CURRENCY},
    }


def shop_id_for(domain: str) -> int:
    """A stable numeric shop id derived from the domain."""
    return 60_000_000 + int(hashlib.sha256(domain.encode()).hexdigest()[:8], 16) % 30_000_000


def join_tags(tags: list[str]) -> str:
    """Shopify's REST tag string: trimmed, de-duplicated, comma-and-space separated."""
    seen: dict[str, None] = {}
    for tag in tags:
        tag = tag.strip()
        if tag and tag.lower() not in {t.lower() for t in seen}:
            seen[tag] = None
    return ", ".join(seen)


def split_tags(tags: str | None) -> list[str]:
    """The list form of a REST tag string."""
    return [t.strip() for t in (tags or "").split(",") if t.strip()]


class IdSequence:
    """Increasing ids per record type with random gaps, deterministic by seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"ids-{seed}")
        self._last = dict(ID_BASES)

    def next(self, kind: str) -> int:
        """The next id for `kind` (always larger than the previous one)."""
        self._last[kind] += self._rng.randint(1, 97)
        return self._last[kind]


class SortedIndex(dict):
    """A dict of records by id that also keeps the ids sorted, for cursor pagination."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int] = []

    def add(self, record: dict) -> None:
        """Insert or replace `record`, keeping `ids` sorted."""
        record_id = record["id"]
        if record_id not in self:
            if not self.ids or record_id > self.ids[-1]:
                self.ids.append(record_id)
            else:
                bisect.insort(self.ids, record_id)
        self[record_id] = record

    def remove(self, record_id: int) -> None:
        """Forget a record (no error when absent)."""
        if self.pop(record_id, None) is not None:
            index = bisect.bisect_left(self.ids, record_id)
            del self.ids[index]


class RecordSet:
    """All records of one shop, with the indexes the APIs need."""

    def __init__(self) -> None:
        self.locations = SortedIndex()
        self.products = SortedIndex()
        self.variants = SortedIndex()
        self.inventory_items = SortedIndex()
        self.levels: dict[tuple[int, int], dict] = {}  # (inventory_item_id, location_id)
        self.committed: dict[tuple[int, int], int] = {}
        self.item_locations: dict[int, list[int]] = {}
        self.variant_by_item: dict[int, dict] = {}
        self.customers = SortedIndex()
        self.customer_by_email: dict[str, int] = {}
        self.orders = SortedIndex()
        self.orders_by_customer: dict[int, list[int]] = {}
        self.fulfillments = SortedIndex()
        self.line_items: dict[int, tuple[int, dict]] = {}
        self.next_order_number = 1001

    def counts(self) -> dict[str, int]:
        """Record counts by kind."""
        return {
            "locations": len(self.locations),
            "products": len(self.products),
            "variants": len(self.variants),
            "inventory_items": len(self.inventory_items),
            "inventory_levels": len(self.levels),
            "customers": len(self.customers),
            "orders": len(self.orders),
            "fulfillments": len(self.fulfillments),
        }


class RecordFactory:
    """Builds records and adds them to a RecordSet. Randomness comes from `rng`, ids from `ids`."""

    def __init__(self, records: RecordSet, rng: random.Random, ids: IdSequence) -> None:
        self.records = records
        self.rng = rng
        self.ids = ids

    def location(self, name: str, address1: str, city: str, province: str, zip_code: str, at: float) -> dict:
        """Add a location."""
        location_id = self.ids.next("Location")
        location = {
            "id": location_id,
            "admin_graphql_api_id": gid("Location", location_id),
            "name": name,
            "address1": address1,
            "address2": None,
            "city": city,
            "province_code": province,
            "country_code": "US",
            "zip": zip_code,
            "active": True,
            "legacy": False,
            "created_at": rest_time(at),
            "updated_at": rest_time(at),
        }
        self.records.locations.add(location)
        return location

    def product(self, at: float, stock: Callable[[], int] | None = None) -> dict:
        """Add a product with 1-4 variants, each with an inventory item stocked at every location."""
        rng = self.rng
        adjective = rng.choice(ADJECTIVES)
        noun, product_type, base_price = rng.choice(NOUNS)
        product_id = self.ids.next("Product")
        title = f"{adjective} {noun}"
        handle = f"{title.lower().replace(' ', '-')}-{product_id % 100000}"
        stamp = rest_time(at)
        option_name, values = rng.choice([("Color", COLORS), ("Size", SIZES), ("Title", ["Default Title"])])
        chosen = values if option_name == "Title" else rng.sample(values, rng.randint(1, min(4, len(values))))
        product = {
            "id": product_id,
            "admin_graphql_api_id": gid("Product", product_id),
            "title": title,
            "body_html": f"<p>The {title.lower()} our customers take everywhere.</p>",
            "vendor": rng.choice(VENDORS),
            "product_type": product_type,
            "handle": handle,
            "status": rng.choices(["active", "draft", "archived"], weights=[85, 10, 5])[0],
            "tags": join_tags(rng.sample(["camp", "hike", "sale", "new", "bestseller"], rng.randint(0, 2))),
            "created_at": stamp,
            "updated_at": stamp,
            "published_at": stamp,
            "published_scope": "global",
            "template_suffix": None,
            "variants": [],
            "options": [
                {"id": product_id + 1, "product_id": product_id, "name": option_name, "position": 1, "values": chosen}
            ],
            "images": [],
            "image": None,
        }
        price = Decimal(base_price) + Decimal(rng.randint(-5, 5))
        for position, value in enumerate(chosen, start=1):
            self._variant(product, position, value, price, at, stock)
        self.records.products.add(product)
        return product

    def _variant(
        self, product: dict, position: int, value: str, price: Decimal, at: float, stock: Callable[[], int] | None
    ) -> dict:
        rng = self.rng
        variant_id = self.ids.next("ProductVariant")
        item_id = self.ids.next("InventoryItem")
        stamp = rest_time(at)
        code = "".join(word[0] for word in product["title"].split()).upper()
        sku = f"{code}-{product['id'] % 10000:04d}-{value[:3].upper()}"
        item = {
            "id": item_id,
            "admin_graphql_api_id": gid("InventoryItem", item_id),
            "sku": sku,
            "tracked": True,
            "requires_shipping": True,
            "cost": money(price * Decimal("0.45")),
            "country_code_of_origin": None,
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.records.inventory_items.add(item)
        total = 0
        locations = []
        for location_id in self.records.locations.ids:
            available = stock() if stock else rng.choice([0, rng.randint(1, 40), rng.randint(20, 150)])
            total += available
            locations.append(location_id)
            self.records.levels[(item_id, location_id)] = {
                "inventory_item_id": item_id,
                "location_id": location_id,
                "available": available,
                "updated_at": stamp,
                "admin_graphql_api_id": level_gid(location_id, item_id),
            }
            self.records.committed[(item_id, location_id)] = 0
        self.records.item_locations[item_id] = locations
        variant = {
            "id": variant_id,
            "admin_graphql_api_id": gid("ProductVariant", variant_id),
            "product_id": product["id"],
            "title": value,
            "sku": sku,
            "price": money(price),
            "compare_at_price": money(price * Decimal("1.2")) if rng.random() < 0.2 else None,
            "position": position,
            "inventory_policy": "deny",
            "inventory_management": "shopify",
            "fulfillment_service": "manual",
            "inventory_item_id": item_id,
            "inventory_quantity": total,
            "old_inventory_quantity": total,
            "option1": value,
            "option2": None,
            "option3": None,
            "barcode": f"{rng.randint(10**11, 10**12 - 1)}",
            "grams": rng.choice([200, 450, 900, 1800]),
            "weight": 0.0,
            "weight_unit": "kg",
            "taxable": True,
            "requires_shipping": True,
            "image_id": None,
            "created_at": stamp,
            "updated_at": stamp,
        }
        variant["weight"] = variant["grams"] / 1000
        product["variants"].append(variant)
        self.records.variants.add(variant)
        self.records.variant_by_item[item_id] = variant
        return variant

    def customer(self, at: float, first: str | None = None, last: str | None = None, email: str | None = None) -> dict:
        """Add a customer."""
        rng = self.rng
        customer_id = self.ids.next("Customer")
        first = first or rng.choice(FIRST_NAMES)
        last = last or rng.choice(LAST_NAMES)
        email = email or f"{first}.{last}.{customer_id % 1000000}@example.com".lower()
        stamp = rest_time(at)
        street_no = rng.randint(1, 999)
        city, province, zip_code = rng.choice(CITIES)
        subscribed = rng.random() < 0.4
        customer = {
            "id": customer_id,
            "admin_graphql_api_id": gid("Customer", customer_id),
            "email": email,
            "phone": f"+1512555{rng.randint(0, 9999):04d}" if rng.random() < 0.5 else None,
            "first_name": first,
            "last_name": last,
            "state": "enabled",
            "verified_email": True,
            "tags": join_tags(rng.sample(TAGS, rng.randint(0, 2))),
            "note": None,
            "currency": CURRENCY,
            "tax_exempt": False,
            "created_at": stamp,
            "updated_at": stamp,
            "addresses": [
                {
                    "id": customer_id + 1,
                    "customer_id": customer_id,
                    "first_name": first,
                    "last_name": last,
                    "address1": f"{street_no} {rng.choice(STREETS)}",
                    "city": city,
                    "province_code": province,
                    "country_code": "US",
                    "zip": zip_code,
                    "default": True,
                }
            ],
            "email_marketing_consent": {
                "state": "subscribed" if subscribed else "not_subscribed",
                "opt_in_level": "single_opt_in" if subscribed else None,
                "consent_updated_at": stamp if subscribed else None,
            },
            "sms_marketing_consent": None,
        }
        self.records.customers.add(customer)
        self.records.customer_by_email[email.lower()] = customer_id
        return customer

    def order(
        self,
        at: float,
        customer: dict | None,
        lines: list[tuple[dict, int]],
        financial_status: str = "pending",
        source_name: str = "web",
    ) -> dict:
        """Add an order for `lines` of (variant, quantity). Stock is not touched here (see Shop)."""
        order_id = self.ids.next("Order")
        number = self.records.next_order_number
        self.records.next_order_number += 1
        stamp = rest_time(at)
        line_items = []
        subtotal = Decimal(0)
        for variant, quantity in lines:
            line_id = self.ids.next("LineItem")
            product = self.records.products.get(variant["product_id"])
            item = {
                "id": line_id,
                "admin_graphql_api_id": gid("LineItem", line_id),
                "product_id": variant["product_id"],
                "variant_id": variant["id"],
                "sku": variant["sku"],
                "title": product["title"] if product else variant["title"],
                "variant_title": variant["title"],
                "name": f"{product['title'] if product else ''} - {variant['title']}",
                "vendor": product["vendor"] if product else None,
                "quantity": quantity,
                "current_quantity": quantity,
                "fulfillable_quantity": quantity,
                "fulfillment_status": None,
                "price": variant["price"],
                "price_set": money_set(variant["price"]),
                "grams": variant["grams"],
                "requires_shipping": True,
                "taxable": True,
                "product_exists": True,
            }
            subtotal += Decimal(variant["price"]) * quantity
            line_items.append(item)
        tax = (subtotal * TAX_RATE).quantize(CENT)
        total = subtotal + tax
        address = customer["addresses"][0] if customer and customer["addresses"] else None
        order = {
            "id": order_id,
            "admin_graphql_api_id": gid("Order", order_id),
            "name": f"#{number}",
            "order_number": number,
            "number": number - 1000,
            "email": customer["email"] if customer else None,
            "contact_email": customer["email"] if customer else None,
            "phone": None,
            "created_at": stamp,
            "updated_at": stamp,
            "processed_at": stamp,
            "cancelled_at": None,
            "cancel_reason": None,
            "closed_at": None,
            "confirmed": True,
            "test": False,
            "currency": CURRENCY,
            "presentment_currency": CURRENCY,
            "financial_status": financial_status,
            "fulfillment_status": None,
            "subtotal_price": money(subtotal),
            "subtotal_price_set": money_set(money(subtotal)),
            "total_tax": money(tax),
            "total_tax_set": money_set(money(tax)),
            "total_price": money(total),
            "total_price_set": money_set(money(total)),
            "total_outstanding": "0.00" if financial_status == "paid" else money(total),
            "tags": "",
            "note": None,
            "source_name": source_name,
            "customer": _customer_summary(customer) if customer else None,
            "line_items": line_items,
            "shipping_address": (
                {
                    "first_name": customer["first_name"],
                    "last_name": customer["last_name"],
                    "address1": address["address1"],
                    "city": address["city"],
                    "province_code": address["province_code"],
                    "country_code": address["country_code"],
                    "zip": address["zip"],
                }
                if customer and address
                else None
            ),
            "shipping_lines": [],
            "fulfillments": [],
            "refunds": [],
        }
        self.records.orders.add(order)
        for item in line_items:
            self.records.line_items[item["id"]] = (order_id, item)
        if customer:
            self.records.orders_by_customer.setdefault(customer["id"], []).append(order_id)
        return order

    def fulfillment(self, order: dict, location_id: int, at: float) -> dict:
        """Add a successful fulfillment of everything still fulfillable on `order`."""
        rng = self.rng
        fulfillment_id = self.ids.next("Fulfillment")
        carrier, url = rng.choice(CARRIERS)
        tracking = f"1Z{rng.randint(10**15, 10**16 - 1)}"
        stamp = rest_time(at)
        lines = []
        for item in order["line_items"]:
            if item["fulfillable_quantity"] > 0:
                lines.append(
                    {
                        "id": item["id"],
                        "admin_graphql_api_id": item["admin_graphql_api_id"],
                        "variant_id": item["variant_id"],
                        "sku": item["sku"],
                        "quantity": item["fulfillable_quantity"],
                    }
                )
                item["fulfillable_quantity"] = 0
                item["fulfillment_status"] = "fulfilled"
        fulfillment = {
            "id": fulfillment_id,
            "admin_graphql_api_id": gid("Fulfillment", fulfillment_id),
            "order_id": order["id"],
            "name": f"{order['name']}.{len(order['fulfillments']) + 1}",
            "status": "success",
            "shipment_status": None,
            "service": "manual",
            "location_id": location_id,
            "tracking_company": carrier,
            "tracking_number": tracking,
            "tracking_numbers": [tracking],
            "tracking_url": url.format(tracking),
            "tracking_urls": [url.format(tracking)],
            "created_at": stamp,
            "updated_at": stamp,
            "line_items": lines,
        }
        order["fulfillments"].append(fulfillment)
        order["fulfillment_status"] = "fulfilled"
        self.records.fulfillments.add(fulfillment)
        return fulfillment


def _customer_summary(customer: dict) -> dict:
    return {
        "id": customer["id"],
        "admin_graphql_api_id": customer["admin_graphql_api_id"],
        "email": customer["email"],
        "first_name": customer["first_name"],
        "last_name": customer["last_name"],
        "phone": customer["phone"],
        "state": customer["state"],
        "created_at": customer["created_at"],
        "updated_at": customer["updated_at"],
    }


def seed_records(factory: RecordFactory, count: int) -> None:
    """Fill a shop with about `count` top-level records (30% products, 30% customers, 40% orders),
    dated over the year before SEED_EPOCH. Same seed, same records."""
    rng = factory.rng
    records = factory.records
    year = 365 * 86400
    start = SEED_EPOCH - year
    for name, address1, city, province, zip_code in LOCATIONS:
        factory.location(name, address1, city, province, zip_code, start)
    n_products = max(1, count * 3 // 10)
    n_customers = max(1, count * 3 // 10)
    n_orders = max(1, count - n_products - n_customers)
    for i in range(n_products):
        factory.product(start + year * 0.3 * i / n_products)
    for i in range(n_customers):
        factory.customer(start + year * 0.5 * i / n_customers)
    variants = [records.variants[v] for v in records.variants.ids]
    customers = [records.customers[c] for c in records.customers.ids]
    order_times = sorted(start + year * (0.5 + 0.5 * rng.random()) for _ in range(n_orders))
    for at in order_times:
        lines = [(rng.choice(variants), rng.randint(1, 3)) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
        status = rng.choices(
            ["paid", "pending", "authorized", "refunded", "partially_refunded"], weights=[70, 10, 10, 5, 5]
        )[0]
        order = factory.order(at, rng.choice(customers), lines, financial_status=status)
        later = at + rng.randint(600, 4 * 86400)
        if status == "paid" and rng.random() < 0.6:
            factory.fulfillment(order, records.locations.ids[0], later)
            if rng.random() < 0.8:
                order["closed_at"] = rest_time(later)
        order["updated_at"] = rest_time(later)
