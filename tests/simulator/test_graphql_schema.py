"""Every field of the served schema resolves against seeded data without errors."""

import pytest
from graphql import GraphQLInterfaceType, get_named_type, is_leaf_type, is_required_argument

from integrations.simulator.graphql_api import SCHEMA

ROOTS = ["products", "productVariants", "inventoryItems", "locations", "customers", "orders"]
SPECIAL_ARGS = {
    "quantities": '(names: ["available", "on_hand", "committed"])',
    "fulfillments": "(first: 2)",
    "trackingInfo": "(first: 2)",
}


def _selection(graphql_type, depth: int) -> str:
    if isinstance(graphql_type, GraphQLInterfaceType):
        return "{ id }"
    parts = []
    for name, definition in graphql_type.fields.items():
        required = [a for a, arg in definition.args.items() if is_required_argument(arg)]
        named = get_named_type(definition.type)
        args = SPECIAL_ARGS.get(name, "")
        if required and not args:
            continue
        if is_leaf_type(named):
            parts.append(name + args)
        elif named.name.endswith("Connection"):
            node_type = get_named_type(named.fields["nodes"].type)
            if depth > 0 and (sub := _selection(node_type, depth - 1)):
                parts.append(f"{name}(first: 2) {{ nodes {sub} pageInfo {{ hasNextPage }} }}")
        elif depth > 0 and (sub := _selection(named, depth - 1)):
            parts.append(f"{name}{args} {sub}")
    return "{ " + " ".join(parts) + " }" if parts else ""


@pytest.mark.parametrize("root", ROOTS)
def test_every_field_resolves(api, root):
    api.create_shop(records=60)
    field = SCHEMA.query_type.fields[root]
    node_type = get_named_type(get_named_type(field.type).fields["nodes"].type)
    query = f"{{ {root}(first: 3) {{ nodes {_selection(node_type, 2)} }} }}"
    response = api.graphql(query)
    body = response.json()
    assert "errors" not in body, body["errors"][:3]
    nodes = body["data"][root]["nodes"]
    assert len(nodes) >= 2
    assert all(node["id"].startswith("gid://shopify/") for node in nodes)
