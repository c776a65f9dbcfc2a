"""What the console may ask Shopify to do: operation name -> the GraphQL mutation, its variables
(Shopify's own, as given), the record it changes, and the webhook that reports the change back.

An operation's input is exactly the mutation's variables (`{"input": {...}}` for
`inventorySetQuantities`, `{"id": ..., "tags": [...]}` for `tagsAdd`), so what a call page shows
under "what we sent" is what Shopify received.
"""

from collections.abc import Callable
from dataclasses import dataclass


class InvalidInput(ValueError):
    """The input is not what the operation's mutation takes."""


@dataclass(frozen=True)
class Operation:
    name: str
    mutation: str  # the top-level mutation field
    document: str
    payload_key: str  # where the changed record is in the mutation's payload
    echo_topic: str  # the webhook Shopify sends after the change
    describe: str
    required: tuple[str, ...]
    target: Callable[[dict], str]
    idempotent: bool = False  # carries @idempotent(key:)
    expected_cost: int = 10
    rules: Callable[[dict], None] | None = None  # raises InvalidInput
    scopes: tuple[str, ...] = ()  # the access scopes Shopify requires for the mutation

    def check(self, variables: dict) -> None:
        if not isinstance(variables, dict):
            raise InvalidInput(f"{self.name} takes a JSON object of {self.mutation}'s variables")
        missing = [key for key in self.required if _dig(variables, key) in (None, "", [])]
        if missing:
            raise InvalidInput(f"{self.name} needs {', '.join(missing)} ({self.mutation}'s variables)")
        unknown = sorted(set(variables) - {key.split(".")[0] for key in self.required})
        if unknown:
            raise InvalidInput(f"{self.name} does not take {', '.join(unknown)}")
        if self.rules is not None:
            self.rules(variables)


def _dig(variables: dict, dotted: str):
    value = variables
    for part in dotted.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _inventory_rules(variables: dict) -> None:
    """One level per call (so it is one record: ordered, echo-linked) and always compare-guarded:
    the console never overwrites a stock level blindly."""
    data = variables["input"]
    quantities = data.get("quantities")
    if not isinstance(quantities, list) or len(quantities) != 1:
        raise InvalidInput("inventory.set sets one level per call: give exactly one entry in input.quantities")
    if data.get("ignoreCompareQuantity"):
        raise InvalidInput("inventory.set never ignores the compare guard (ignoreCompareQuantity)")
    if not isinstance(quantities[0], dict) or not isinstance(quantities[0].get("changeFromQuantity"), int):
        raise InvalidInput(
            "inventory.set needs changeFromQuantity (the quantity Shopify should hold now): without it the write "
            "could overwrite a change made in Shopify"
        )


def _inventory_target(variables: dict) -> str:
    quantity = (variables["input"].get("quantities") or [{}])[0]
    item = str(quantity.get("inventoryItemId", "")).rsplit("/", 1)[-1]
    location = str(quantity.get("locationId", "")).rsplit("/", 1)[-1]
    # Shopify's InventoryLevel gid, as inventory_levels/update webhooks carry it.
    return f"gid://shopify/InventoryLevel/{location}?inventory_item_id={item}"


def _one_variant(variables: dict) -> None:
    """One variant per call, so a call is one record (ordered, echo-linked, stale-guarded)."""
    variants = variables.get("variants")
    if not isinstance(variants, list) or len(variants) != 1 or not isinstance(variants[0], dict):
        raise InvalidInput("variant.update changes one variant per call: give exactly one entry in variants")


OPERATIONS: dict[str, Operation] = {}


def register(operation: Operation) -> Operation:
    OPERATIONS[operation.name] = operation
    return operation


register(
    Operation(
        name="inventory.set",
        mutation="inventorySetQuantities",
        document=(
            "mutation InventorySet($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {"
            " inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {"
            " inventoryAdjustmentGroup { id createdAt reason changes { name delta quantityAfterChange } }"
            " userErrors { field message code } } }"
        ),
        payload_key="inventoryAdjustmentGroup",
        echo_topic="inventory_levels/update",
        describe="Set stock at a location (compare guard: changeFromQuantity)",
        required=("input.name", "input.reason", "input.quantities.inventoryItemId", "input.quantities.locationId"),
        target=_inventory_target,
        idempotent=True,
        rules=_inventory_rules,
        scopes=("write_inventory",),
    )
)
register(
    Operation(
        name="order.add_tags",
        mutation="tagsAdd",
        document=(
            "mutation OrderAddTags($id: ID!, $tags: [String!]!) { tagsAdd(id: $id, tags: $tags) {"
            " node { id ... on Order { name tags updatedAt } } userErrors { field message } } }"
        ),
        payload_key="node",
        echo_topic="orders/updated",
        describe="Add tags to an order",
        required=("id", "tags"),
        target=lambda variables: str(variables["id"]),
        scopes=("write_orders",),
    )
)
register(
    Operation(
        name="customer.add_tags",
        mutation="tagsAdd",
        document=(
            "mutation CustomerAddTags($id: ID!, $tags: [String!]!) { tagsAdd(id: $id, tags: $tags) {"
            " node { id ... on Customer { tags updatedAt } } userErrors { field message } } }"
        ),
        payload_key="node",
        echo_topic="customers/update",
        describe="Add tags to a customer",
        required=("id", "tags"),
        target=lambda variables: str(variables["id"]),
        scopes=("write_customers",),
    )
)
register(
    Operation(
        name="product.update",
        mutation="productUpdate",
        document=(
            "mutation ProductUpdate($product: ProductUpdateInput!) { productUpdate(product: $product) {"
            " product { id title handle updatedAt } userErrors { field message } } }"
        ),
        payload_key="product",
        echo_topic="products/update",
        describe="Change a product's title, description or other content the platform owns",
        required=("product.id",),
        target=lambda variables: str(variables["product"]["id"]),
        scopes=("write_products",),
    )
)
register(
    Operation(
        name="customer.update",
        mutation="customerUpdate",
        document=(
            "mutation CustomerUpdate($input: CustomerInput!) { customerUpdate(input: $input) {"
            " customer { id tags updatedAt } userErrors { field message } } }"
        ),
        payload_key="customer",
        echo_topic="customers/update",
        describe="Change a customer's tags or note",
        required=("input.id",),
        target=lambda variables: str(variables["input"]["id"]),
        scopes=("write_customers",),
    )
)

register(
    Operation(
        name="variant.update",
        mutation="productVariantsBulkUpdate",
        document=(
            "mutation VariantUpdate($productId: ID!, $variants: [ProductVariantsBulkInput!]!) {"
            " productVariantsBulkUpdate(productId: $productId, variants: $variants) {"
            " productVariants { id price sku updatedAt } userErrors { field message } } }"
        ),
        payload_key="productVariants",
        echo_topic="products/update",
        describe="Change a variant's price or SKU",
        required=("productId", "variants.id"),
        target=lambda variables: str(variables["variants"][0]["id"]),
        rules=_one_variant,
        scopes=("write_products",),
    )
)
register(
    Operation(
        name="order.update",
        mutation="orderUpdate",
        document=(
            "mutation OrderUpdate($input: OrderInput!) { orderUpdate(input: $input) {"
            " order { id email tags updatedAt } userErrors { field message } } }"
        ),
        payload_key="order",
        echo_topic="orders/updated",
        describe="Change an order's email, note or tags",
        required=("input.id",),
        target=lambda variables: str(variables["input"]["id"]),
        scopes=("write_orders",),
    )
)

register(
    Operation(
        name="webhook.subscribe",
        mutation="webhookSubscriptionCreate",
        document=(
            "mutation WebhookSubscribe($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {"
            " webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {"
            " webhookSubscription { id topic uri createdAt updatedAt } userErrors { field message } } }"
        ),
        payload_key="webhookSubscription",
        echo_topic="",  # no webhook reports a new subscription
        describe="Subscribe the shop to a webhook topic again (integrations.shops.subscriptions.resubscribe)",
        required=("topic", "webhookSubscription.uri"),
        target=lambda variables: "",  # the shop itself; no record, so no per-record ordering
        scopes=(),  # none of its own: Shopify delivers a topic only while its read scope is granted
    )
)


def get_operation(name: str) -> Operation:
    try:
        return OPERATIONS[name]
    except KeyError:
        raise InvalidInput(f"unknown operation {name!r}; known: {', '.join(sorted(OPERATIONS))}") from None
