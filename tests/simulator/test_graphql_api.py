"""GraphQL Admin API over real HTTP: shapes, pagination, cost and throttling, scopes, userErrors,
deprecations and version fall-forward."""

import pytest

from tests.simulator.helpers import DOMAIN

PRODUCT_IDS = "{ products(first: 5) { edges { node { id title } } } }"


def _cost(response):
    return response.json()["extensions"]["cost"]


def test_products_come_back_with_shopify_shapes(api):
    api.create_shop()
    query = """{ products(first: 2) { edges { cursor node { id legacyResourceId title handle status tags updatedAt
        variants(first: 5) { nodes { id sku price inventoryQuantity inventoryItem { id tracked } } } } }
        pageInfo { hasNextPage hasPreviousPage endCursor } } }"""
    response = api.graphql(query)
    assert response.status_code == 200
    data = response.json()["data"]["products"]
    first = data["edges"][0]["node"]
    rest = next(p for p in api.records("products") if p["admin_graphql_api_id"] == first["id"])
    assert first["id"] == f"gid://shopify/Product/{rest['id']}"
    assert first["legacyResourceId"] == str(rest["id"])
    assert first["status"] == rest["status"].upper()
    assert first["updatedAt"].endswith("Z")
    assert [v["sku"] for v in first["variants"]["nodes"]] == [v["sku"] for v in rest["variants"]]
    assert first["variants"]["nodes"][0]["inventoryItem"]["id"].startswith("gid://shopify/InventoryItem/")
    assert data["pageInfo"] == {"hasNextPage": True, "hasPreviousPage": False, "endCursor": data["edges"][1]["cursor"]}


def test_cursors_walk_every_record_forwards_and_backwards(api):
    api.create_shop(records=100)
    expected = sorted(p["admin_graphql_api_id"] for p in api.records("products"))
    expected.sort(key=lambda g: int(g.rsplit("/", 1)[1]))
    query = "query($after: String) { products(first: 7, after: $after) { nodes { id } pageInfo { hasNextPage endCursor } } }"
    seen, after = [], None
    while True:
        page = api.graphql(query, {"after": after}).json()["data"]["products"]
        seen += [n["id"] for n in page["nodes"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert seen == expected
    backwards = "query($before: String) { products(last: 4, before: $before, reverse: true) { nodes { id } } }"
    last_four_reversed = api.graphql(backwards).json()["data"]["products"]["nodes"]
    assert [n["id"] for n in last_four_reversed] == list(reversed(expected))[-4:]


def test_node_and_nodes_resolve_any_record_type(api):
    api.create_shop()
    order = api.records("orders")[0]
    level = api.records("inventory_levels")[0]
    query = """query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Order { name lineItems(first: 5) { nodes { sku } } }
        ... on InventoryLevel { quantities(names: ["available", "on_hand"]) { name quantity } } } }"""
    ids = [order["admin_graphql_api_id"], level["admin_graphql_api_id"], "gid://shopify/Product/1"]
    nodes = api.graphql(query, {"ids": ids}).json()["data"]["nodes"]
    assert nodes[0] == {
        "id": order["admin_graphql_api_id"],
        "name": order["name"],
        "lineItems": {"nodes": [{"sku": li["sku"]} for li in order["line_items"]]},
    }
    assert nodes[1]["quantities"][0] == {"name": "available", "quantity": level["available"]}
    assert nodes[2] is None
    single = api.graphql("query($id: ID!) { node(id: $id) { id } }", {"id": order["admin_graphql_api_id"]}).json()[
        "data"
    ]["node"]
    assert single == {"id": order["admin_graphql_api_id"]}


def test_requested_and_actual_cost_with_refund(clocked_api):
    clocked_api.create_shop()  # 30 records: 9 products
    small = clocked_api.graphql(PRODUCT_IDS)
    assert _cost(small) == {
        "requestedQueryCost": 7,  # connection 2 + 5 products x 1
        "actualQueryCost": 7,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1993, "restoreRate": 100.0},
    }
    nested = clocked_api.graphql(
        "{ products(first: 50) { edges { node { id variants(first: 10) { nodes { id } } } } } }"
    )
    cost = _cost(nested)
    assert cost["requestedQueryCost"] == 2 + 50 * (1 + 2 + 10)
    products = nested.json()["data"]["products"]["edges"]
    variants = sum(len(e["node"]["variants"]["nodes"]) for e in products)
    assert cost["actualQueryCost"] == 2 + len(products) * 3 + variants
    # Only the actual cost stays taken: the rest of the requested cost was refunded.
    assert cost["throttleStatus"]["currentlyAvailable"] == 1993 - cost["actualQueryCost"]
    mutation_cost = _cost(
        clocked_api.graphql(
            'mutation { tagsAdd(id: "gid://shopify/Product/1", tags: ["x"]) { userErrors { message } } }'
        )
    )
    assert mutation_cost["requestedQueryCost"] == 10


def test_throttled_when_the_bucket_is_empty_and_restored_at_100_per_second(clocked_api, clock):
    clocked_api.create_shop(records=300)
    gids = [
        r["admin_graphql_api_id"] for kind in ("products", "customers", "orders") for r in clocked_api.records(kind)
    ][:250]
    query = "query($ids: [ID!]!) { nodes(ids: $ids) { id } }"
    for n in range(1, 9):  # 8 x 250 = the whole 2000-point bucket
        assert (
            _cost(clocked_api.graphql(query, {"ids": gids}))["throttleStatus"]["currentlyAvailable"] == 2000 - 250 * n
        )
    throttled = clocked_api.graphql(query, {"ids": gids})
    assert throttled.status_code == 200
    body = throttled.json()
    assert "data" not in body
    assert body["errors"] == [
        {
            "message": "Throttled",
            "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
        }
    ]
    assert body["extensions"]["cost"] == {
        "requestedQueryCost": 250,
        "actualQueryCost": None,
        "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 0, "restoreRate": 100.0},
    }
    clock.advance(2.4)
    assert "errors" in clocked_api.graphql(query, {"ids": gids}).json()  # 240 < 250
    clock.advance(0.1)
    ok = clocked_api.graphql(query, {"ids": gids})
    assert "errors" not in ok.json()
    assert _cost(ok)["throttleStatus"]["currentlyAvailable"] == 0


def test_single_query_max_cost(clocked_api):
    clocked_api.create_shop()
    response = clocked_api.graphql("{ products(first: 250) { nodes { variants(first: 250) { nodes { id } } } } }")
    error = response.json()["errors"][0]
    requested = 2 + 250 * (1 + 2 + 250)
    assert error["extensions"] == {
        "code": "MAX_COST_EXCEEDED",
        "cost": requested,
        "maxCost": 1000,
        "documentation": "https://shopify.dev/api/usage/rate-limits",
    }
    assert error["message"].startswith(
        f"Query cost is {requested}, which exceeds the single query max cost limit (1000)."
    )
    assert _cost(response)["throttleStatus"]["currentlyAvailable"] == 2000  # nothing charged


def test_missing_scope_gives_access_denied_with_partial_data(api):
    api.create_shop(scopes=["read_products", "read_orders"])
    response = api.graphql("{ products(first: 1) { nodes { id } } orders(first: 1) { nodes { id customer { id } } } }")
    body = response.json()
    assert len(body["data"]["products"]["nodes"]) == 1
    assert body["data"]["orders"]["nodes"][0]["customer"] is None
    assert body["errors"][0]["path"] == ["orders", "nodes", 0, "customer"]
    assert body["errors"][0]["extensions"] == {
        "code": "ACCESS_DENIED",
        "documentation": "https://shopify.dev/api/usage/access-scopes",
        "requiredAccess": "`read_customers` access scope.",
    }
    denied = api.graphql(
        'mutation { productUpdate(product: {id: "gid://shopify/Product/1", title: "x"}) { userErrors { message } } }'
    )
    assert denied.json()["errors"][0]["message"] == (
        "Access denied for productUpdate field. Required access: `write_products` access scope."
    )
    assert denied.json()["data"] == {"productUpdate": None}


def test_current_app_installation_lists_scope_handles(api):
    api.create_shop(scopes=["write_products", "read_orders"])
    scopes = api.graphql("{ currentAppInstallation { accessScopes { handle } } }").json()["data"]
    assert scopes == {
        "currentAppInstallation": {
            "accessScopes": [{"handle": "write_products"}, {"handle": "read_products"}, {"handle": "read_orders"}]
        }
    }


def test_invalid_input_comes_back_as_user_errors(api):
    api.create_shop()
    product = api.records("products")[0]
    customers = api.records("customers")
    blank = api.graphql(
        "mutation($p: ProductUpdateInput!) { productUpdate(product: $p) { product { id } userErrors { field message } } }",
        {"p": {"id": product["admin_graphql_api_id"], "title": ""}},
    )
    assert blank.json()["data"] == {
        "productUpdate": {
            "product": None,
            "userErrors": [{"field": ["product", "title"], "message": "Title can't be blank"}],
        }
    }
    taken = api.graphql(
        "mutation($i: CustomerInput!) { customerUpdate(input: $i) { userErrors { field message } } }",
        {"i": {"id": customers[0]["admin_graphql_api_id"], "email": customers[1]["email"]}},
    )
    assert taken.json()["data"]["customerUpdate"]["userErrors"] == [
        {"field": ["input", "email"], "message": "Email has already been taken"}
    ]
    negative = api.graphql(
        """mutation($pid: ID!, $v: [ProductVariantsBulkInput!]!) { productVariantsBulkUpdate(productId: $pid, variants: $v) {
            productVariants { id } userErrors { field message code } } }""",
        {
            "pid": product["admin_graphql_api_id"],
            "v": [{"id": product["variants"][0]["admin_graphql_api_id"], "price": "-1.00"}],
        },
    )
    assert negative.json()["data"]["productVariantsBulkUpdate"]["userErrors"] == [
        {
            "field": ["variants", "0", "price"],
            "message": "Price must be greater than or equal to 0",
            "code": "GREATER_THAN_OR_EQUAL_TO",
        }
    ]
    assert api.records("products")[0]["variants"][0]["price"] == product["variants"][0]["price"]


def test_repair_mutations_change_the_records(api):
    api.create_shop()
    product = api.records("products")[0]
    order = api.records("orders")[0]
    customer = api.records("customers")[0]
    variant = product["variants"][0]
    result = api.graphql(
        """mutation($p: ProductUpdateInput!, $pid: ID!, $v: [ProductVariantsBulkInput!]!, $o: OrderInput!, $c: CustomerInput!, $cid: ID!) {
          productUpdate(product: $p) { product { title } userErrors { message } }
          productVariantsBulkUpdate(productId: $pid, variants: $v) { productVariants { price sku } userErrors { message } }
          orderUpdate(input: $o) { order { note tags } userErrors { message } }
          customerUpdate(input: $c) { customer { firstName } userErrors { message } }
          tagsAdd(id: $cid, tags: ["repaired"]) { node { id } userErrors { message } } }""",
        {
            "p": {"id": product["admin_graphql_api_id"], "title": "Fixed Title"},
            "pid": product["admin_graphql_api_id"],
            "v": [{"id": variant["admin_graphql_api_id"], "price": "12.5", "inventoryItem": {"sku": "NEW-SKU"}}],
            "o": {"id": order["admin_graphql_api_id"], "note": "checked", "tags": ["audit"]},
            "c": {"id": customer["admin_graphql_api_id"], "firstName": "Zoe"},
            "cid": customer["admin_graphql_api_id"],
        },
    ).json()
    assert "errors" not in result
    assert result["data"]["productVariantsBulkUpdate"]["productVariants"] == [{"price": "12.50", "sku": "NEW-SKU"}]
    assert result["extensions"]["cost"]["requestedQueryCost"] == 50
    assert api.records("products")[0]["title"] == "Fixed Title"
    assert api.records("orders")[0]["note"] == "checked"
    assert api.records("orders")[0]["tags"] == "audit"
    stored = api.records("customers")[0]
    assert stored["first_name"] == "Zoe"
    assert "repaired" in stored["tags"]


def test_inventory_set_with_compare_guard(api):
    api.create_shop()
    level = api.records("inventory_levels")[0]
    mutation = """mutation($input: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $input) @idempotent(key: $key)
        { inventoryAdjustmentGroup { reason changes { name delta quantityAfterChange } } userErrors { field code } } }"""
    mutation = mutation.replace("mutation($input", "mutation($key: String!, $input")

    def set_to(quantity, change_from, key):
        entry = {
            "inventoryItemId": f"gid://shopify/InventoryItem/{level['inventory_item_id']}",
            "locationId": f"gid://shopify/Location/{level['location_id']}",
            "quantity": quantity,
            "changeFromQuantity": change_from,
        }
        variables = {"key": key, "input": {"name": "available", "reason": "correction", "quantities": [entry]}}
        return api.graphql(mutation, variables).json()["data"]["inventorySetQuantities"]

    stale = set_to(5, level["available"] + 1, "k1")
    assert stale["inventoryAdjustmentGroup"] is None
    assert stale["userErrors"] == [
        {"field": ["input", "quantities", "0", "changeFromQuantity"], "code": "CHANGE_FROM_QUANTITY_STALE"}
    ]
    ok = set_to(5, level["available"], "k2")
    assert ok["userErrors"] == []
    assert ok["inventoryAdjustmentGroup"]["changes"] == [
        {"name": "available", "delta": 5 - level["available"], "quantityAfterChange": 5}
    ]
    assert api.records("inventory_levels")[0]["available"] == 5


def test_deprecated_fields_are_reported_in_a_header(api):
    api.create_shop()
    plain = api.graphql(PRODUCT_IDS)
    assert "X-Shopify-API-Deprecated-Reason" not in plain.headers
    deprecated = api.graphql("{ products(first: 1) { nodes { bodyHtml } } orders(first: 1) { nodes { totalPrice } } }")
    assert deprecated.headers["X-Shopify-API-Deprecated-Reason"] == "Order.totalPrice, Product.bodyHtml"
    level = api.records("inventory_levels")[0]
    compare = api.graphql(
        """mutation($i: InventorySetQuantitiesInput!) { inventorySetQuantities(input: $i) @idempotent(key: "dep-1") { userErrors { code } } }""",
        {
            "i": {
                "name": "available",
                "reason": "correction",
                "quantities": [
                    {
                        "inventoryItemId": f"gid://shopify/InventoryItem/{level['inventory_item_id']}",
                        "locationId": f"gid://shopify/Location/{level['location_id']}",
                        "quantity": 3,
                        "compareQuantity": level["available"],
                    }
                ],
            }
        },
    )
    assert compare.headers["X-Shopify-API-Deprecated-Reason"] == "InventoryQuantityInput.compareQuantity"


@pytest.mark.parametrize(
    ("requested", "answered"), [("2026-04", "2026-04"), ("2024-10", "2026-01"), ("2099-01", "2026-01")]
)
def test_unsupported_versions_fall_forward(api, requested, answered):
    api.create_shop()
    response = api.graphql(PRODUCT_IDS, version=requested)
    assert response.status_code == 200
    assert "errors" not in response.json()
    assert response.headers["X-Shopify-API-Version"] == answered


def test_search_query_and_sort_key(clocked_api, clock):
    clocked_api.create_shop()
    target = clocked_api.records("products")[3]
    clock.advance(3600)
    clocked_api.control(
        "PATCH", f"/shops/{DOMAIN}/records/products/{target['id']}", json={"changes": {"vendor": "Zed Corp"}}
    )
    since = clocked_api.records("products")[3]["updated_at"]
    query = "query($q: String) { products(first: 50, query: $q, sortKey: UPDATED_AT, reverse: true) { nodes { id vendor } } }"
    recent = clocked_api.graphql(query, {"q": f"updated_at:>='{since}'"}).json()["data"]["products"]["nodes"]
    assert recent == [{"id": target["admin_graphql_api_id"], "vendor": "Zed Corp"}]
    newest_first = clocked_api.graphql(query, {"q": None}).json()["data"]["products"]["nodes"]
    assert newest_first[0]["id"] == target["admin_graphql_api_id"]
    count = clocked_api.graphql("{ productsCount(query: \"vendor:'Zed Corp'\") { count precision } }").json()
    assert count["data"]["productsCount"] == {"count": 1, "precision": "EXACT"}


def test_malformed_requests(api):
    api.create_shop()
    url = f"{api.base}/{DOMAIN}/admin/api/2026-10/graphql.json"
    headers = {"X-Shopify-Access-Token": "shpat_test_token", "Content-Type": "application/json"}
    bad_json = api.http.post(url, data=b"{not json", headers=headers)
    assert (bad_json.status_code, bad_json.json()) == (
        400,
        {"errors": {"query": "Required parameter missing or invalid"}},
    )
    syntax = api.graphql("{ products(first: 1) { nodes { id }")
    assert syntax.status_code == 200
    assert "Syntax Error" in syntax.json()["errors"][0]["message"]
    unknown = api.graphql("{ products(first: 1) { nodes { nope } } }")
    assert "Cannot query field 'nope'" in unknown.json()["errors"][0]["message"]
    no_size = api.graphql("{ products { nodes { id } } }")
    assert no_size.json()["errors"][0]["message"] == "you must provide one of first or last"
