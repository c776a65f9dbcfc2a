"""The outbound queue's rules: one call per origin and intent, pause holds without losing or
reordering, resume releases, a failed call can be sent again (audited), and the `outbound`
command speaks the JSON scripts rely on."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from console.models import AuditEntry
from integrations.models import OutboundCall, Shop
from integrations.outbound import queue
from integrations.outbound.operations import InvalidInput
from integrations.shops.services import update_shop
from tests.factories import ShopFactory

pytestmark = pytest.mark.django_db
Status = OutboundCall.Status
ORDER = "gid://shopify/Order/5500000000018"


def tag(shop, tags, **kwargs):
    return queue.enqueue(shop, "order.add_tags", {"id": ORDER, "tags": tags}, origin="person", **kwargs)


def test_the_same_intent_twice_in_a_row_is_one_call():
    shop = ShopFactory()
    first, created = tag(shop, ["vip"])
    again, created_again = tag(shop, ["vip"])
    assert created and not created_again and again.pk == first.pk
    assert OutboundCall.objects.count() == 1


def test_the_same_change_asked_for_again_after_another_change_is_a_new_call():
    shop = ShopFactory()
    first, _ = tag(shop, ["vip"])
    tag(shop, ["wholesale"])
    third, created = tag(shop, ["vip"])
    assert created and third.pk != first.pk


def test_a_key_used_for_other_input_is_refused_with_a_clear_message():
    shop = ShopFactory()
    tag(shop, ["vip"], key="promo-42")
    with pytest.raises(queue.QueueError, match="already used by call"):
        tag(shop, ["other"], key="promo-42")
    assert OutboundCall.objects.count() == 1


def test_the_database_refuses_a_second_call_with_the_same_key():
    from django.db import IntegrityError, transaction

    shop = ShopFactory()
    tag(shop, ["vip"], key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        OutboundCall.objects.create(
            shop=shop, operation="order.add_tags", input={}, origin="person", idempotency_key="k"
        )


@pytest.mark.parametrize(
    ("operation", "variables", "message"),
    [
        ("order.add_tags", {"id": ORDER}, "needs tags"),
        ("inventory.set", {"input": {"name": "available"}}, "needs input.reason"),
        ("product.update", {"product": {"id": "gid://shopify/Product/1"}, "extra": 1}, "does not take extra"),
        ("order.delete", {}, "unknown operation"),
    ],
)
def test_input_that_is_not_the_mutations_variables_is_refused(operation, variables, message):
    with pytest.raises(InvalidInput, match=message):
        queue.enqueue(ShopFactory(), operation, variables, origin="person")


def test_an_oversized_input_is_refused():
    with pytest.raises(queue.QueueError, match="over 64 KB"):
        tag(ShopFactory(), ["x" * 100] * 1000)


def test_pause_holds_queued_waiting_and_new_calls_in_place_and_resume_releases_them(admin_user):
    shop = ShopFactory()
    queued, _ = tag(shop, ["a"])
    waiting, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/2", "tags": ["b"]}, origin="person")
    later = timezone.now() + timedelta(minutes=5)
    OutboundCall.objects.filter(pk=waiting.pk).update(status=Status.WAITING, next_attempt_at=later)

    with pytest.raises(queue.QueueError, match="needs a reason"):
        queue.pause_shop(shop, by=admin_user, reason=" ")
    assert queue.pause_shop(shop, by=admin_user, reason="Shopify incident") == 2
    new, _ = queue.enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/3", "tags": ["c"]}, origin="person")
    assert {c.status for c in OutboundCall.objects.all()} == {Status.PAUSED}
    assert new.status == Status.PAUSED
    assert list(queue.due_calls()) == []

    assert queue.resume_shop(shop, by=admin_user, reason="Shopify recovered") == 3
    statuses = dict(OutboundCall.objects.values_list("pk", "status"))
    assert statuses == {queued.pk: Status.QUEUED, waiting.pk: Status.WAITING, new.pk: Status.QUEUED}
    assert OutboundCall.objects.get(pk=waiting.pk).next_attempt_at == later
    assert [c.pk for c in queue.due_calls()] == [queued.pk, new.pk], "released in their original order"
    verbs = list(AuditEntry.objects.filter(verb__startswith="outbound.").values_list("verb", "reason"))
    assert verbs == [("outbound.pause", "Shopify incident"), ("outbound.resume", "Shopify recovered")]


def test_pausing_from_the_shop_form_holds_the_calls_too(admin_user):
    shop = ShopFactory()
    tag(shop, ["a"])
    update_shop(by=admin_user, shop=shop, changes={"queue_paused": True}, reason="merchant asked")
    assert Shop.objects.get(pk=shop.pk).queue_paused
    assert OutboundCall.objects.get().status == Status.PAUSED


def test_a_failed_call_can_be_sent_again_with_a_reason_and_an_audit_entry(support_user):
    shop = ShopFactory()
    call, _ = tag(shop, ["a"])
    OutboundCall.objects.filter(pk=call.pk).update(
        status=Status.FAILED, finished_at=timezone.now(), classification="non_retryable"
    )
    call.refresh_from_db()
    key = call.idempotency_key
    with pytest.raises(queue.QueueError):
        queue.send_again(call, by=support_user, reason="")
    assert queue.send_again(call, by=support_user, reason="token fixed")
    call.refresh_from_db()
    assert call.status == Status.QUEUED and call.idempotency_key == key, "same key: it cannot apply twice"
    assert AuditEntry.objects.filter(verb="outbound.send_again", reason="token fixed").exists()
    assert not queue.send_again(call, by=support_user, reason="twice"), "only a failed call is sent again"


# --- the command ------------------------------------------------------------------------------

CALL_KEYS = {
    "id",
    "shop",
    "operation",
    "lane",
    "origin",
    "idempotency_key",
    "status",
    "classification",
    "reason",
    "next_step",
    "attempts",
}
ATTEMPT_KEYS = {"number", "http_status", "error_codes", "user_errors", "throttled", "cost", "duration_ms"}


def run(*args) -> dict | list:
    out = StringIO()
    call_command("outbound", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_command_enqueues_lists_shows_pauses_and_resumes_with_the_promised_json():
    shop = ShopFactory()
    variables = json.dumps({"id": ORDER, "tags": ["vip"]})
    made = run("enqueue", shop.domain, "order.add_tags", "--input", variables, "--lane", "replay", "--key", "k-1")
    assert set(made) >= CALL_KEYS and made["created"] is True
    assert (made["lane"], made["idempotency_key"], made["status"], made["classification"]) == (
        "replay",
        "k-1",
        "queued",
        None,
    )
    assert run("enqueue", shop.domain, "order.add_tags", "--input", variables, "--key", "k-1")["id"] == made["id"]

    listed = run("list", "--shop", shop.domain, "--status", "queued", "--operation", "order.add_tags")
    assert [c["id"] for c in listed] == [made["id"]] and set(listed[0]) >= CALL_KEYS
    assert run("list", "--status", "failed") == []

    OutboundCall.objects.filter(pk=made["id"]).update(attempt_count=1)
    OutboundCall.objects.get(pk=made["id"]).attempts.create(number=1, outcome="retry", http_status=503)
    shown = run("show", str(made["id"]))
    assert set(shown) >= CALL_KEYS and set(shown["attempts"][0]) >= ATTEMPT_KEYS
    assert shown["attempts"][0]["http_status"] == 503

    assert run("pause", shop.domain, "--reason", "incident 12") == {"shop": shop.domain, "paused": True, "held": 1}
    assert run("show", str(made["id"]))["status"] == "paused"
    assert run("resume", shop.domain, "--reason", "over")["released"] == 1


def test_the_command_explains_bad_input():
    shop = ShopFactory()
    with pytest.raises(CommandError, match="not JSON"):
        call_command("outbound", "enqueue", shop.domain, "order.add_tags", "--input", "{nope")
    with pytest.raises(CommandError, match="needs tags"):
        call_command("outbound", "enqueue", shop.domain, "order.add_tags", "--input", '{"id": "x"}')
    with pytest.raises(CommandError, match="No shop"):
        call_command("outbound", "pause", "nowhere.myshopify.com", "--reason", "r")
    with pytest.raises(CommandError, match="needs a reason"):
        call_command("outbound", "pause", shop.domain, "--reason", "")


def failed(call, **fields):
    OutboundCall.objects.filter(pk=call.pk).update(status=Status.FAILED, finished_at=timezone.now(), **fields)
    call.refresh_from_db()
    return call


def test_sending_again_gives_a_fresh_retry_budget(support_user):
    call = failed(tag(ShopFactory(), ["a"])[0], attempt_count=8, classification="retryable", failure_kind="gave_up")
    assert queue.send_again(call, by=support_user, reason="outage over")
    call.refresh_from_db()
    assert (call.attempt_count, call.retry_base) == (8, 8)
    assert (call.classification, call.failure_kind, call.next_step) == (None, "", "")


@pytest.mark.parametrize("kind", ["stale", "key_mismatch"])
def test_a_call_whose_next_step_says_do_not_resend_is_refused(support_user, kind):
    call = failed(tag(ShopFactory(), ["a"])[0], failure_kind=kind, classification="non_retryable")
    with pytest.raises(queue.QueueError, match="Not sent again"):
        queue.send_again(call, by=support_user, reason="try anyway")
    assert OutboundCall.objects.get(pk=call.pk).status == Status.FAILED


def test_an_older_write_is_not_sent_again_over_a_newer_one(support_user):
    shop = ShopFactory()
    older = failed(tag(shop, ["a"])[0], failure_kind="gave_up")
    newer, _ = tag(shop, ["b"])
    OutboundCall.objects.filter(pk=newer.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    with pytest.raises(queue.QueueError, match=f"call {newer.pk} changed the same record since"):
        queue.send_again(older, by=support_user, reason="retry")


def test_a_call_sent_again_to_a_paused_shop_is_held(support_user):
    shop = ShopFactory()
    call = failed(tag(shop, ["a"])[0], failure_kind="unauthorized")
    queue.pause_shop(shop, by=None, reason="hold")
    assert queue.send_again(call, by=support_user, reason="token fixed")
    assert OutboundCall.objects.get(pk=call.pk).status == Status.PAUSED


def test_calls_held_or_queued_against_the_shops_state_are_put_right():
    """A job read "paused" just before a resume committed (or the other way round)."""
    calm, held = ShopFactory(), ShopFactory(queue_paused=True)
    stuck, _ = tag(calm, ["a"])
    OutboundCall.objects.filter(pk=stuck.pk).update(status=Status.PAUSED)
    slipped, _ = queue.enqueue(held, "order.add_tags", {"id": ORDER, "tags": ["b"]}, origin="person")
    OutboundCall.objects.filter(pk=slipped.pk).update(status=Status.QUEUED)
    assert queue.release_held_calls() == 2
    assert OutboundCall.objects.get(pk=stuck.pk).status == Status.QUEUED
    assert OutboundCall.objects.get(pk=slipped.pk).status == Status.PAUSED


def test_asking_again_after_shopify_reported_a_change_is_a_new_call():
    """The merchant changed the record in Shopify (a webhook that is not our echo): pushing the
    same value again is a new intent, not the old call."""
    from tests.factories import EventFactory

    shop = ShopFactory()
    first, _ = tag(shop, ["vip"])
    OutboundCall.objects.filter(pk=first.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    EventFactory(shop=shop, topic="orders/updated", resource_gid=ORDER)
    again, created = tag(shop, ["vip"])
    assert created and again.pk != first.pk and again.seen_event_id is not None


def level_input(quantity: int, compare_to, **extra) -> dict:
    entry = {
        "inventoryItemId": "gid://shopify/InventoryItem/1",
        "locationId": "gid://shopify/Location/2",
        "quantity": quantity,
    }
    if compare_to is not None:
        entry["changeFromQuantity"] = compare_to
    return {"input": {"name": "available", "reason": "correction", "quantities": [entry], **extra}}


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (level_input(5, None), "needs changeFromQuantity"),
        (level_input(5, 3, ignoreCompareQuantity=True), "never ignores the compare guard"),
        (
            {"input": {**level_input(5, 3)["input"], "quantities": level_input(5, 3)["input"]["quantities"] * 2}},
            "one level per call",
        ),
    ],
)
def test_inventory_set_is_always_one_compare_guarded_level(variables, message):
    with pytest.raises(InvalidInput, match=message):
        queue.enqueue(ShopFactory(), "inventory.set", variables, origin="person")


def test_stock_that_returns_to_an_earlier_value_is_pushed_again_and_back_to_back_pushes_chain():
    from integrations.models import PlatformInventoryLevel
    from integrations.outbound.flows import push_stock_level

    shop = ShopFactory()
    PlatformInventoryLevel.objects.create(
        shop=shop, inventory_item_id=1, location_id=2, available=5, shopify_updated_at="2026-05-01T00:00:00Z"
    )

    def push(quantity):
        call, created = push_stock_level(shop, inventory_item_id=1, location_id=2, quantity=quantity)
        return call, created, call.input["input"]["quantities"][0]["changeFromQuantity"]

    first = push(3)
    assert first[1] and first[2] == 5
    assert push(3)[0].pk == first[0].pk, "the same push twice in a row is one call"
    second = push(5)
    assert second[1] and second[2] == 3, "chained on the queued call, not the stale synced level"
    third = push(3)
    assert third[1] and third[2] == 5 and third[0].pk != first[0].pk, "back to 3 is a new call"
