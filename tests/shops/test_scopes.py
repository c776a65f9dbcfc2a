"""Access scopes against the simulator over real HTTP: what the console needs is declared in code;
a revoked scope shows as missing on the check (kept as history), the next call needing it fails
once (not retried) pointing at the scope check, the other calls needing it wait unsent, calls that
do not need it still run; granting it back and checking again releases the waiting calls."""

import pytest

from integrations.jobs.registry import JOB_TYPES
from integrations.models import HealthCheck, OutboundCall, OutboundHold
from integrations.outbound import queue
from integrations.outbound.operations import OPERATIONS
from integrations.outbound.sender import Sender
from integrations.shops.scopes import check_scopes, required_scopes
from tests.outbound import conftest as outbound

# The simulator fixtures of the outbound tests (a console Shop pointed at a running simulator).
simulator, store_factory, store = outbound.simulator, outbound.store_factory, outbound.store
Status = OutboundCall.Status
ALL_SCOPES = [
    "write_products",
    "write_inventory",
    "write_orders",
    "write_customers",
    "write_fulfillments",
    "read_locations",
]
WITHOUT_WRITE_ORDERS = [scope for scope in ALL_SCOPES if scope != "write_orders"] + ["read_orders"]


@pytest.fixture(autouse=True)
def _fast(settings):
    settings.OUTBOUND_BACKOFF_BASE = 0.02
    settings.OUTBOUND_BACKOFF_CAP = 0.1


def tag_orders(shop, sim, count: int) -> list[OutboundCall]:
    calls = []
    for order in sim.records("orders")[:count]:
        call, _ = queue.enqueue(
            shop, "order.add_tags", {"id": order["admin_graphql_api_id"], "tags": ["vip"]}, origin="person"
        )
        calls.append(call)
    return calls


def retitle_product(shop, sim, title="Renamed by the console") -> OutboundCall:
    product = sim.records("products")[0]
    call, _ = queue.enqueue(
        shop, "product.update", {"product": {"id": product["admin_graphql_api_id"], "title": title}}, origin="person"
    )
    return call


def drain(timeout: float = 10.0) -> int:
    return Sender(tag="test").drain(timeout=timeout)


def fresh(*calls: OutboundCall) -> list[OutboundCall]:
    for call in calls:
        call.refresh_from_db()
    return list(calls)


def open_holds(shop) -> list[tuple[str, str]]:
    return sorted(
        OutboundHold.objects.filter(shop=shop, cleared_at__isnull=True).values_list("kind", "scope"),
    )


def test_scopes_are_declared_on_operations_and_jobs():
    declared = {
        "inventory.set": ("write_inventory",),
        "order.add_tags": ("write_orders",),
        "customer.add_tags": ("write_customers",),
        "product.update": ("write_products",),
        "customer.update": ("write_customers",),
        "variant.update": ("write_products",),
        "order.update": ("write_orders",),
    }
    assert {name: OPERATIONS[name].scopes for name in declared} == declared
    assert JOB_TYPES["sync_order"].scopes == ("read_orders",)
    assert JOB_TYPES["tag_notified_order"].scopes == ("write_orders",)
    assert JOB_TYPES["mark_uninstalled"].scopes == ()
    needs = required_scopes()
    assert sorted(needs) == [
        "read_customers",
        "read_fulfillments",
        "read_inventory",
        "read_orders",
        "read_products",
        "write_customers",
        "write_inventory",
        "write_orders",
        "write_products",
    ]
    assert needs["write_orders"] == ["operation order.add_tags", "operation order.update", "job tag_notified_order"]
    assert needs["read_orders"] == ["job notify_fulfillment", "job sync_order"]


def test_a_shop_with_every_scope_checks_ok_and_lists_the_extra_ones(store):
    shop, _ = store
    result = check_scopes(shop, triggered_by="test")
    assert result["ok"] is True and result["error"] == "" and result["missing"] == []
    assert "write_orders" in result["granted"] and "read_orders" in result["granted"]
    # read_fulfillments is needed (the shipping confirmation email reads fulfillments); write_ is not.
    assert result["extra"] == ["read_locations", "write_fulfillments"]
    check = HealthCheck.objects.get(shop=shop, kind="scopes")
    assert check.ok and check.problems == [] and check.triggered_by == "test"
    assert check.details["missing"] == [] and check.details["required_by"]["write_orders"]
    assert open_holds(shop) == []


def test_a_revoked_scope_fails_one_call_holds_the_others_and_the_rest_still_runs(store):
    shop, sim = store
    sim.control("PUT", "/scopes", json={"scopes": WITHOUT_WRITE_ORDERS})
    first, second, third = tag_orders(shop, sim, 3)
    product_call = retitle_product(shop, sim)

    drain()
    first, second, third, product_call = fresh(first, second, third, product_call)
    # The first call needing write_orders is refused once and not retried...
    assert first.status == Status.FAILED and first.classification == "non_retryable"
    assert first.failure_kind == "missing_scope"
    assert first.attempts.count() == 1 and "ACCESS_DENIED" in first.attempts.get().error_codes
    assert first.next_step.startswith("Needs write_orders.")
    assert "scope check on the shop's API health page" in first.next_step
    # ...the others needing it wait, unsent and not failed...
    for held in (second, third):
        assert held.status == Status.QUEUED and held.attempts.count() == 0, held.reason
    hold = OutboundHold.objects.get(shop=shop, kind="scope", cleared_at__isnull=True)
    assert hold.scope == "write_orders" and f"call {first.pk} (order.add_tags)" in hold.reason
    # ...and a call that does not need it still runs.
    assert product_call.status == Status.SUCCEEDED
    assert sim.record("products", product_call.input["product"]["id"].rsplit("/", 1)[-1])["title"] == (
        "Renamed by the console"
    )
    assert [call.pk for call in queue.due_calls()] == []

    # The scope check shows the diff, kept as history.
    result = check_scopes(shop, triggered_by="test")
    assert result["missing"] == ["write_orders"] and result["ok"] is False and result["error"] == ""
    assert "write_orders" not in result["granted"] and "read_orders" in result["granted"]
    assert result["held"] == [], "the hold the refused call opened is kept, not opened twice"
    check = HealthCheck.objects.filter(shop=shop, kind="scopes").latest("id")
    assert not check.ok and check.details["missing"] == ["write_orders"]
    assert len(check.problems) == 1
    assert "write_orders" in check.problems[0] and "operation order.add_tags" in check.problems[0]
    assert "held" in check.problems[0]

    # Granted back and checked again: the hold clears and the waiting calls run.
    sim.control("PUT", "/scopes", json={"scopes": ALL_SCOPES})
    result = check_scopes(shop, triggered_by="test")
    assert result["ok"] is True and result["released"] == ["write_orders"]
    hold.refresh_from_db()
    assert hold.cleared_at is not None and "granted" in hold.cleared_reason
    assert HealthCheck.objects.filter(shop=shop, kind="scopes").count() == 2
    drain()
    second, third, first = fresh(second, third, first)
    assert second.status == third.status == Status.SUCCEEDED
    assert first.status == Status.FAILED, "the refused call waits for a person to send it again"


def test_a_check_that_finds_a_scope_missing_holds_its_calls_before_any_is_sent(store):
    shop, sim = store
    sim.control("PUT", "/scopes", json={"scopes": WITHOUT_WRITE_ORDERS})
    result = check_scopes(shop, triggered_by="schedule")
    assert result["missing"] == ["write_orders"] and result["held"] == ["write_orders"]
    assert open_holds(shop) == [("scope", "write_orders")]
    tags = tag_orders(shop, sim, 2)
    product_call = retitle_product(shop, sim)
    assert [call.pk for call in queue.due_calls()] == [product_call.pk]
    drain()
    assert [call.status for call in fresh(*tags)] == [Status.QUEUED, Status.QUEUED]
    assert all(call.attempts.count() == 0 for call in tags)
    assert fresh(product_call)[0].status == Status.SUCCEEDED
    # A second check with the scope still missing opens nothing new.
    assert check_scopes(shop, triggered_by="schedule")["held"] == []
    assert OutboundHold.objects.filter(shop=shop).count() == 1


def test_a_hold_on_one_shop_does_not_hold_another_shops_calls(store_factory):
    held_shop, held_sim = store_factory()
    other_shop, other_sim = store_factory()
    held_sim.control("PUT", "/scopes", json={"scopes": WITHOUT_WRITE_ORDERS})
    check_scopes(held_shop, triggered_by="test")
    [held] = tag_orders(held_shop, held_sim, 1)
    [other] = tag_orders(other_shop, other_sim, 1)
    assert [call.pk for call in queue.due_calls()] == [other.pk]
    drain()
    assert [call.status for call in fresh(held, other)] == [Status.QUEUED, Status.SUCCEEDED]


def test_a_check_that_cannot_read_the_scopes_says_why_and_leaves_the_holds(store):
    shop, sim = store
    sim.control("PUT", "/scopes", json={"scopes": WITHOUT_WRITE_ORDERS})
    check_scopes(shop, triggered_by="test")
    sim.control("POST", "/revoke-token", json={})
    result = check_scopes(shop, triggered_by="test")
    assert result["ok"] is False and result["granted"] == [] and result["missing"] == []
    assert "401" in result["error"]
    check = HealthCheck.objects.filter(shop=shop, kind="scopes").latest("id")
    assert not check.ok and "could not be read" in check.problems[0]
    assert open_holds(shop) == [("scope", "write_orders")], "an unreadable answer must not release holds"
