"""Webhook subscriptions through the GraphQL Admin API: the `webhookSubscriptions` query over the
subscriptions the simulator keeps (and removes after failed retries), `webhookSubscriptionCreate`
with Shopify's userErrors, and `webhookSubscriptionDelete`."""

from integrations.simulator.store import DEFAULT_TOPICS
from tests.simulator.helpers import DOMAIN, wait_until

LIST = """query($first: Int!, $after: String, $topics: [WebhookSubscriptionTopic!]) {
  webhookSubscriptions(first: $first, after: $after, topics: $topics) {
    edges { cursor node { id legacyResourceId topic format uri createdAt updatedAt apiVersion { handle supported } } }
    pageInfo { hasNextPage endCursor } } }"""
CREATE = """mutation($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri apiVersion { handle } endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } }
    userErrors { field message } } }"""
DELETE = """mutation($id: ID!) { webhookSubscriptionDelete(id: $id) { deletedWebhookSubscriptionId userErrors { field message } } }"""


def _all(api, **variables) -> list[dict]:
    nodes, after = [], None
    while True:
        page = api.graphql(LIST, {"first": 4, "after": after, **variables}).json()["data"]["webhookSubscriptions"]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


def _control_subscriptions(api) -> list[dict]:
    return api.control("GET", f"/shops/{DOMAIN}/subscriptions").json()["subscriptions"]


def test_the_query_lists_the_active_subscriptions_page_by_page_and_by_topic(api, receiver):
    api.create_shop(webhook_url=receiver.url, webhook_api_version="2026-07")
    nodes = _all(api)
    kept = [s for s in _control_subscriptions(api) if s["active"]]
    assert len(nodes) == len(DEFAULT_TOPICS) == len(kept)
    assert [n["id"] for n in nodes] == [s["id"] for s in kept]
    first = nodes[0]
    assert first["id"].startswith("gid://shopify/WebhookSubscription/")
    assert first["legacyResourceId"] == first["id"].rsplit("/", 1)[1]
    assert first["topic"] == "ORDERS_CREATE" and first["format"] == "JSON"
    assert first["uri"] == receiver.url
    assert first["apiVersion"] == {"handle": "2026-07", "supported": True}
    assert first["createdAt"].endswith("Z") and first["updatedAt"] == first["createdAt"]
    only = _all(api, topics=["PRODUCTS_UPDATE", "APP_UNINSTALLED"])
    assert [n["topic"] for n in only] == ["PRODUCTS_UPDATE", "APP_UNINSTALLED"]
    # The deprecated endpoint shape is still served, and reported as deprecated.
    response = api.graphql(
        "{ webhookSubscriptions(first: 1) { nodes { endpoint { __typename ... on WebhookHttpEndpoint { callbackUrl } } } } }"
    )
    assert response.json()["data"]["webhookSubscriptions"]["nodes"][0]["endpoint"] == {
        "__typename": "WebhookHttpEndpoint",
        "callbackUrl": receiver.url,
    }
    assert response.headers["X-Shopify-API-Deprecated-Reason"] == "WebhookSubscription.endpoint"


def test_a_connection_costs_two_plus_one_per_node_and_its_objects(api):
    api.create_shop(webhook_url="http://127.0.0.1:9/webhooks")
    cost = api.graphql(LIST, {"first": 5}).json()["extensions"]["cost"]
    assert cost["requestedQueryCost"] == 2 + 5 * 2  # node + apiVersion
    assert cost["actualQueryCost"] == 2 + 5 * 2


def test_a_subscription_removed_after_failed_retries_is_no_longer_listed(api, receiver):
    receiver.default_status = 503
    api.create_shop(webhook_url=receiver.url)
    product = api.records("products")[0]
    api.control("PATCH", f"/shops/{DOMAIN}/records/products/{product['id']}", json={"changes": {"title": "Lost"}})
    wait_until(lambda: api.control("GET", f"/shops/{DOMAIN}/subscription-removals").json()["removals"], timeout=10)
    topics = [n["topic"] for n in _all(api)]
    assert "PRODUCTS_UPDATE" not in topics
    assert len(topics) == len(DEFAULT_TOPICS) - 1


def test_create_adds_a_subscription_that_receives_deliveries(api, receiver):
    api.create_shop(webhook_url=receiver.url, topics=["orders/create"])
    response = api.graphql(CREATE, {"topic": "CUSTOMERS_UPDATE", "sub": {"uri": receiver.url, "format": "JSON"}})
    body = response.json()
    # `uri` is the current input; only the deprecated `endpoint` selected here is reported.
    assert response.headers["X-Shopify-API-Deprecated-Reason"] == "WebhookSubscription.endpoint"
    assert body["extensions"]["cost"]["actualQueryCost"] == 10
    payload = body["data"]["webhookSubscriptionCreate"]
    assert payload["userErrors"] == []
    created = payload["webhookSubscription"]
    assert created["topic"] == "CUSTOMERS_UPDATE" and created["uri"] == receiver.url
    assert created["endpoint"] == {"__typename": "WebhookHttpEndpoint", "callbackUrl": receiver.url}
    assert created["apiVersion"]["handle"] == "2026-10"
    assert created["id"] in [s["id"] for s in _control_subscriptions(api) if s["active"]]
    assert [n["topic"] for n in _all(api)] == ["ORDERS_CREATE", "CUSTOMERS_UPDATE"]
    customer = api.records("customers")[0]
    api.control("PATCH", f"/shops/{DOMAIN}/records/customers/{customer['id']}", json={"changes": {"note": "hello"}})
    (delivery,) = receiver.wait_for(1, topic="customers/update")
    assert delivery.header("X-Shopify-Topic") == "customers/update"


def test_create_refuses_a_taken_address_a_bad_address_and_xml_with_user_errors(api, receiver):
    api.create_shop(webhook_url=receiver.url)

    def errors(topic, sub):
        return api.graphql(CREATE, {"topic": topic, "sub": sub}).json()["data"]["webhookSubscriptionCreate"]

    taken = errors("ORDERS_CREATE", {"callbackUrl": receiver.url})
    assert taken == {
        "webhookSubscription": None,
        "userErrors": [
            {
                "field": ["webhookSubscription", "callbackUrl"],
                "message": "Address for this topic has already been taken",
            }
        ],
    }
    assert errors("ORDERS_CREATE", {"uri": "not a url"})["userErrors"] == [
        {"field": ["webhookSubscription", "uri"], "message": "Address is invalid"}
    ]
    assert errors("ORDERS_CREATE", {"uri": ""})["userErrors"][0]["message"] == "Address can't be blank"
    assert errors("ORDERS_CREATE", {"uri": "http://127.0.0.1:9/other", "format": "XML"})["userErrors"][0]["field"] == [
        "webhookSubscription",
        "format",
    ]
    assert len([s for s in _control_subscriptions(api) if s["active"]]) == len(DEFAULT_TOPICS)
    # The same address for another topic is fine; the deprecated callbackUrl input is reported.
    other = api.graphql(CREATE, {"topic": "APP_SCOPES_UPDATE", "sub": {"callbackUrl": receiver.url}})
    assert other.json()["data"]["webhookSubscriptionCreate"]["userErrors"] == []
    assert other.headers["X-Shopify-API-Deprecated-Reason"] == (
        "WebhookSubscription.endpoint, WebhookSubscriptionInput.callbackUrl"
    )
    # Unknown topics and compliance topics are not in the enum.
    unknown = api.graphql(CREATE, {"topic": "CUSTOMERS_REDACT", "sub": {"uri": receiver.url}}).json()
    assert "does not exist in 'WebhookSubscriptionTopic'" in unknown["errors"][0]["message"]
    assert unknown["data"] is None


def test_delete_removes_a_subscription_and_refuses_an_unknown_id(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    target = next(n for n in _all(api) if n["topic"] == "PRODUCTS_UPDATE")
    response = api.graphql(DELETE, {"id": target["id"]}).json()
    assert response["data"]["webhookSubscriptionDelete"] == {
        "deletedWebhookSubscriptionId": target["id"],
        "userErrors": [],
    }
    assert response["extensions"]["cost"]["actualQueryCost"] == 10
    assert "PRODUCTS_UPDATE" not in [n["topic"] for n in _all(api)]
    removed = next(s for s in _control_subscriptions(api) if s["id"] == target["id"])
    assert not removed["active"] and removed["removal_reason"] == "deleted through the API"
    again = api.graphql(DELETE, {"id": target["id"]}).json()["data"]["webhookSubscriptionDelete"]
    assert again == {
        "deletedWebhookSubscriptionId": None,
        "userErrors": [{"field": ["id"], "message": "Webhook subscription does not exist"}],
    }
    product = api.records("products")[0]
    api.control("PATCH", f"/shops/{DOMAIN}/records/products/{product['id']}", json={"changes": {"title": "Quiet"}})
    customer = api.records("customers")[0]
    api.control("PATCH", f"/shops/{DOMAIN}/records/customers/{customer['id']}", json={"changes": {"note": "x"}})
    receiver.wait_for(1, topic="customers/update")
    assert receiver.of("products/update") == []


def test_node_lookup_and_single_query_find_a_live_subscription(api, receiver):
    api.create_shop(webhook_url=receiver.url)
    first = _all(api)[0]
    query = "query($id: ID!) { webhookSubscription(id: $id) { id topic } node(id: $id) { id ... on WebhookSubscription { uri } } }"
    data = api.graphql(query, {"id": first["id"]}).json()["data"]
    assert data == {
        "webhookSubscription": {"id": first["id"], "topic": first["topic"]},
        "node": {"id": first["id"], "uri": receiver.url},
    }
    api.graphql(DELETE, {"id": first["id"]})
    assert api.graphql(query, {"id": first["id"]}).json()["data"] == {"webhookSubscription": None, "node": None}


def test_subscriptions_are_missing_scope_free_but_need_a_valid_token(api, receiver):
    api.create_shop(webhook_url=receiver.url, scopes=["read_locations"])
    assert len(_all(api)) == len(DEFAULT_TOPICS)
    assert api.graphql(LIST, {"first": 1}, token="shpat_wrong").status_code == 401
