"""API versions against the simulator over real HTTP: every call records the version Shopify
answered with and the deprecations it reported; a version near the end of its support window, a
request that fell forward, and a call that used a deprecated field all warn."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.models import AuditEntry
from integrations.models import ApiNotice, HealthCheck, OutboundCall
from integrations.outbound import queue
from integrations.outbound.operations import get_operation
from integrations.outbound.sender import Sender
from integrations.shops.versions import check_version, deprecation_notices, support_window, version_state
from tests.factories import OutboundCallFactory
from tests.outbound import conftest as outbound

# The simulator fixtures of the outbound tests (a console Shop pointed at a running simulator).
simulator, store_factory, store = outbound.simulator, outbound.store_factory, outbound.store
Status = OutboundCall.Status
DECEMBER_2026 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def on_version(shop, version: str):
    shop.api_version = version
    shop.save(update_fields=["api_version"])
    return shop


def retitle_product(shop, sim, title: str) -> OutboundCall:
    product = sim.records("products")[0]
    call, _ = queue.enqueue(
        shop, "product.update", {"product": {"id": product["admin_graphql_api_id"], "title": title}}, origin="person"
    )
    return call


def set_stock_the_old_way(shop, level: dict, *, current: int, quantity: int) -> OutboundCall:
    """inventory.set that also passes the deprecated `compareQuantity` (next to the compare guard)."""
    variables = {
        "input": {
            "name": "available",
            "reason": "correction",
            "quantities": [
                {
                    "inventoryItemId": f"gid://shopify/InventoryItem/{level['inventory_item_id']}",
                    "locationId": f"gid://shopify/Location/{level['location_id']}",
                    "quantity": quantity,
                    "changeFromQuantity": current,
                    "compareQuantity": current,
                }
            ],
        }
    }
    # Queued as it stands (not through enqueue's write policy): what matters here is what the
    # sender records about Shopify's answer.
    return OutboundCallFactory(
        shop=shop,
        operation="inventory.set",
        input=variables,
        target_gid=get_operation("inventory.set").target(variables),
        origin="person",
        idempotency_key=f"test:stock:{current}:{quantity}",
        expected_cost=10,
    )


def send(call: OutboundCall) -> OutboundCall:
    Sender(tag="test").drain(timeout=10)
    call.refresh_from_db()
    assert call.status == Status.SUCCEEDED, call.reason
    return call


def test_support_windows_are_twelve_months_from_the_quarterly_release():
    assert support_window("2026-01") == (
        datetime(2026, 1, 1, 17, 0, tzinfo=UTC),
        datetime(2027, 1, 1, 17, 0, tzinfo=UTC),
    )
    assert support_window("2026-10")[1] == datetime(2027, 10, 1, 17, 0, tzinfo=UTC)
    assert support_window("unstable") == (None, None)
    assert support_window("2026-02") == (None, None)
    assert deprecation_notices("Product.bodyHtml, Order.totalPrice,Product.bodyHtml") == [
        "Product.bodyHtml",
        "Order.totalPrice",
    ]


def test_a_shop_on_a_version_near_the_end_of_its_window_warns(store):
    shop, sim = store
    on_version(shop, "2026-01")
    send(retitle_product(shop, sim, "Answered by 2026-01"))
    shop.refresh_from_db()
    assert shop.answered_api_version == "2026-01"

    state = version_state(shop, now=DECEMBER_2026)
    assert state["requested"] == state["answered"] == "2026-01"
    assert state["supported_until"] == datetime(2027, 1, 1, 17, 0, tzinfo=UTC)
    assert state["days_left"] == 31 and state["fell_forward"] is False
    assert state["deprecations"] == []
    [warning] = state["warnings"]
    assert "2026-01 leaves support around 2027-01-01 (31 days)" in warning

    state = check_version(shop, triggered_by="test", now=DECEMBER_2026)
    check = HealthCheck.objects.get(shop=shop, kind="version")
    assert check.ok is False and "leaves support" in check.problems[0]
    assert check.details["supported_until"] == "2027-01-01T17:00:00+00:00"


def test_a_current_version_does_not_warn_and_unstable_does(store):
    shop, sim = store
    send(retitle_product(shop, sim, "Answered by 2026-10"))
    shop.refresh_from_db()
    state = version_state(shop, now=DECEMBER_2026)
    assert state["answered"] == "2026-10" and state["days_left"] == 304 and state["warnings"] == []
    assert check_version(shop, triggered_by="test", now=DECEMBER_2026)["warnings"] == []
    assert HealthCheck.objects.get(shop=shop, kind="version").ok is True

    on_version(shop, "unstable")
    send(retitle_product(shop, sim, "Answered by unstable"))
    shop.refresh_from_db()
    state = version_state(shop, now=DECEMBER_2026)
    assert state["answered"] == "unstable" and state["supported_until"] is None
    assert any("unstable" in warning and "not for production" in warning for warning in state["warnings"])


def test_a_retired_version_falls_forward_and_says_so(store):
    shop, sim = store
    on_version(shop, "2025-07")
    send(retitle_product(shop, sim, "Fell forward"))
    shop.refresh_from_db()
    assert shop.answered_api_version == "2026-01", "Shopify serves a retired version as the oldest supported"
    state = version_state(shop, now=DECEMBER_2026)
    assert state["fell_forward"] is True and state["days_left"] == 31
    assert any("requests 2025-07 but Shopify answered with 2026-01" in warning for warning in state["warnings"])
    assert not AuditEntry.objects.filter(verb="shop.api_version_changed").exists(), "the first answer is no change"

    # Moved to a current version: the answered version changes once, on the lifecycle record.
    on_version(shop, "2026-10")
    send(retitle_product(shop, sim, "Answered by 2026-10"))
    shop.refresh_from_db()
    assert shop.answered_api_version == "2026-10"
    [entry] = AuditEntry.objects.filter(verb="shop.api_version_changed", target_id=str(shop.pk))
    assert entry.before == {"answered_api_version": "2026-01"} and entry.after["answered_api_version"] == "2026-10"
    assert version_state(shop, now=DECEMBER_2026)["warnings"] == []


def test_a_call_that_used_a_deprecated_field_is_recorded_and_warns(store):
    shop, sim = store
    level = sim.records("inventory_levels")[0]
    first = send(set_stock_the_old_way(shop, level, current=level["available"], quantity=7))
    assert first.attempts.get().deprecation == "InventoryQuantityInput.compareQuantity"
    notice = ApiNotice.objects.get(shop=shop)
    assert (notice.notice, notice.times, notice.last_call_id, notice.api_version) == (
        "InventoryQuantityInput.compareQuantity",
        1,
        first.pk,
        "2026-10",
    )

    second = send(set_stock_the_old_way(shop, level, current=7, quantity=8))
    notice.refresh_from_db()
    assert notice.times == 2 and notice.last_call_id == second.pk and notice.last_seen > notice.first_seen
    assert ApiNotice.objects.filter(shop=shop).count() == 1

    shop.refresh_from_db()
    state = version_state(shop)
    [listed] = state["deprecations"]
    assert listed["notice"] == "InventoryQuantityInput.compareQuantity" and listed["times"] == 2 and listed["recent"]
    [warning] = [warning for warning in state["warnings"] if "deprecated" in warning]
    assert "InventoryQuantityInput.compareQuantity (2 times" in warning


def test_a_call_without_deprecations_writes_nothing_about_versions(store):
    shop, sim = store
    send(retitle_product(shop, sim, "First answer"))  # records the answered version once
    call = retitle_product(shop, sim, "Second answer")
    with CaptureQueriesContext(connection) as queries:
        send(call)
    statements = [query["sql"] for query in queries.captured_queries]
    assert not [sql for sql in statements if "apinotice" in sql.lower()], "no deprecation, no notice statement"
    assert not [sql for sql in statements if sql.startswith("UPDATE") and "answered_api_version" in sql]
    assert call.attempts.get().deprecation == ""
    assert not ApiNotice.objects.filter(shop=shop).exists()


@pytest.mark.parametrize("version", ["2026-04", "2026-07"])
def test_every_supported_version_answers_as_itself(store, version):
    shop, sim = store
    on_version(shop, version)
    send(retitle_product(shop, sim, f"Answered by {version}"))
    shop.refresh_from_db()
    assert shop.answered_api_version == version
    assert version_state(shop, now=DECEMBER_2026)["fell_forward"] is False
