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
