"""Ownership: who owns which data per shop (defaults in code, rules per shop, audited), a write by a
non-owner blocked unless an admin overrides it (audited), and drift: a webhook that is not an
echo of our own call changing a field the platform owns."""

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console.models import AuditEntry
from integrations.models import (
    Event,
    FulfillmentNotification,
    Job,
    OutboundCall,
    OwnershipDrift,
    OwnershipRule,
    PlatformInventoryLevel,
    PlatformProduct,
)
from integrations.outbound import queue
from integrations.outbound.queue import QueueError
from integrations.processing.pump import process_event, process_pending
from integrations.shops import ownership
from tests.factories import EventFactory, OutboundCallFactory, ShopFactory
from tests.webhooks import order, receive

pytestmark = pytest.mark.django_db

PRODUCT_GID = "gid://shopify/Product/632910392"
CUSTOMER_GID = "gid://shopify/Customer/7001"


@pytest.fixture
def shop():
    return ShopFactory()


def product(title="Mug", updated="2026-05-04T10:00:00Z", **extra) -> dict:
    return {
        "id": 632910392,
        "admin_graphql_api_id": PRODUCT_GID,
        "title": title,
        "handle": "mug",
        "status": "active",
        "vendor": "Acme",
        "tags": "",
        "updated_at": updated,
        "variants": [
            {"id": 808950810, "title": "Default", "sku": "MUG-1", "price": "12.00", "inventory_item_id": 4401}
        ],
        **extra,
    }


def level(available: int, updated: str) -> dict:
    return {
        "inventory_item_id": 4401,
        "location_id": 655441491,
        "available": available,
        "updated_at": updated,
        "admin_graphql_api_id": "gid://shopify/InventoryLevel/655441491?inventory_item_id=4401",
    }


def synced_product(shop, title="Mug") -> Event:
    created = receive(shop, "products/create", product(title))
    process_pending()
    assert PlatformProduct.objects.get(shop=shop).title == title
    return created


def note_on(customer_gid=CUSTOMER_GID, note="call before delivery"):
    return {"input": {"id": customer_gid, "note": note}}


# --- the map --------------------------------------------------------------------------------------


def test_defaults_declared_in_code_next_to_the_field_maps(shop):
    owners = ownership.ownership_map(shop)
    assert owners[("product", "title")] == owners[("product", "body_html")] == "platform"
    assert owners[("product", "handle")] == owners[("product", "")] == "shopify"
    assert owners[("inventory_level", "available")] == "shared"
    assert owners[("order", "")] == owners[("order", "email")] == owners[("customer", "note")] == "shopify"
    assert owners[("order", "tags")] == owners[("customer", "tags")] == "shared"
    assert owners[("variant", "price")] == "shopify"
    # Every resource of the field maps, and every field of each, has an owner.
    from integrations.jobs.fields import RESOURCES

    for name, resource in RESOURCES.items():
        assert (name, "") in owners
        assert {(name, f.platform) for f in resource.fields if f.platform != "gid"} <= set(owners)


def test_a_field_rule_wins_over_a_resource_rule_which_wins_over_the_defaults(shop, admin_user):
    ownership.set_owner(shop, "product", "", "pim", by=admin_user, reason="the PIM holds the catalogue now")
    assert ownership.owner_of(shop, "product", "title") == "pim"  # the resource rule beats the field default
    ownership.set_owner(shop, "product", "title", "platform", by=admin_user, reason="titles stay ours")
    assert ownership.owner_of(shop, "product", "title") == "platform"
    assert ownership.owner_of(shop, "product", "vendor") == "pim"
    assert ownership.owner_of(ShopFactory(), "product", "title") == "platform"  # another shop: defaults


def test_set_owner_changes_the_map_and_is_audited(shop, admin_user):
    with pytest.raises(QueueError, match=re.escape("customer.note is owned by shopify")):
        queue.enqueue(shop, "customer.update", note_on(), origin="person")
    result = ownership.set_owner(
        shop, "customer", "note", "platform", by=admin_user, reason="delivery notes come from the platform"
    )
    assert result == {
        "resource": "customer",
        "field": "note",
        "owner": "platform",
        "before": "shopify",
        "rule": "platform",
        "changed": True,
    }
    rule = OwnershipRule.objects.get(shop=shop)
    assert (rule.resource, rule.field, rule.owner, rule.changed_by) == ("customer", "note", "platform", admin_user)
    entry = AuditEntry.objects.get(verb="ownership.change")
    assert entry.target_id == str(shop.pk) and entry.actor == admin_user
    assert entry.before == {"resource": "customer", "field": "note", "owner": "shopify", "rule": None}
    assert entry.after == {"resource": "customer", "field": "note", "owner": "platform", "rule": "platform"}
    assert entry.reason == "delivery notes come from the platform"
    # The write the map refused before is allowed now.
    call, created = queue.enqueue(shop, "customer.update", note_on(), origin="person")
    assert created and call.operation == "customer.update"

    # The same owner again changes nothing and audits nothing; "default" removes the rule.
    assert ownership.set_owner(shop, "customer", "note", "platform", by=admin_user, reason="again")["changed"] is False
    back = ownership.set_owner(shop, "customer", "note", "default", by=admin_user, reason="back to the code default")
    assert back["owner"] == "shopify" and back["rule"] is None and not OwnershipRule.objects.exists()
    assert AuditEntry.objects.filter(verb="ownership.change").count() == 2


def test_only_admins_change_owners_and_nonsense_is_refused(shop, admin_user, support_user):
    with pytest.raises(PermissionDenied):
        ownership.set_owner(shop, "product", "title", "shopify", by=support_user, reason="mine now")
    with pytest.raises(PermissionDenied):
        ownership.set_owner(shop, "product", "title", "shopify", by=None, reason="a script")
    for args, message in (
        (("products", "", "shopify"), "unknown resource"),
        (("product", "colour", "shopify"), "has no field 'colour'"),
        (("product", "title", "Not A Name!"), "another system's name"),
    ):
        with pytest.raises(ownership.OwnershipError, match=message):
            ownership.set_owner(shop, *args, by=admin_user, reason="r")
    with pytest.raises(ownership.OwnershipError, match="Say why"):
        ownership.set_owner(shop, "product", "title", "shopify", by=admin_user, reason="  ")
    assert not OwnershipRule.objects.exists() and not AuditEntry.objects.filter(verb="ownership.change").exists()


# --- blocking a non-owner write -------------------------------------------------------------------


def test_a_write_to_a_field_the_platform_does_not_own_is_blocked_with_the_reason(shop):
    with pytest.raises(QueueError) as refused:
        queue.enqueue(shop, "customer.update", note_on(), origin="person")
    message = str(refused.value)
    assert "customer.note is owned by shopify, not the platform" in message
    assert shop.domain in message and "ownership page" in message and "override" in message
    # Replacing a shared tag list is refused too: the platform only adds tags.
    with pytest.raises(QueueError, match=r"customer\.tags is shared .* would replace it"):
        queue.enqueue(shop, "customer.update", {"input": {"id": CUSTOMER_GID, "tags": ["vip"]}}, origin="person")
    with pytest.raises(QueueError, match=re.escape("product.handle is owned by shopify")):
        queue.enqueue(shop, "product.update", {"product": {"id": PRODUCT_GID, "handle": "cup"}}, origin="person")
    assert not OutboundCall.objects.exists()

    # What the platform owns, and adding tags to a shared list, goes through.
    for operation, variables in (
        ("product.update", {"product": {"id": PRODUCT_GID, "title": "Mug", "descriptionHtml": "<p>Big</p>"}}),
        ("order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["gift-wrap"]}),
        ("customer.add_tags", {"id": CUSTOMER_GID, "tags": ["buyer"]}),
    ):
        assert queue.enqueue(shop, operation, variables, origin="person")[1]
    assert OutboundCall.objects.count() == 3


def test_an_admin_overrides_one_call_with_a_reason_and_it_is_audited(shop, admin_user):
    call, created = queue.enqueue(
        shop, "customer.update", note_on(), origin="person", by=admin_user, override_reason="merchant asked by phone"
    )
    assert created and call.status == OutboundCall.Status.QUEUED
    entry = AuditEntry.objects.get(verb="ownership.override")
    assert entry.actor == admin_user and entry.target_id == str(shop.pk) and entry.reason == "merchant asked by phone"
    assert entry.after == {"operation": "customer.update", "fields": ["customer.note"]}
    assert entry.before == {"owners": {"customer.note": "shopify"}}
    # One call only: the next one is blocked again.
    with pytest.raises(QueueError, match=re.escape("customer.note is owned by shopify")):
        queue.enqueue(shop, "customer.update", note_on(note="another"), origin="person", by=admin_user)
    # An override of a write that needs none audits nothing.
    queue.enqueue(
        shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["x"]}, origin="person", override_reason="x"
    )
    assert AuditEntry.objects.filter(verb="ownership.override").count() == 1


def test_a_support_user_cannot_override(shop, support_user, admin_user):
    with pytest.raises(PermissionDenied):
        queue.enqueue(shop, "customer.update", note_on(), origin="person", by=support_user, override_reason="please")
    with pytest.raises(PermissionDenied):
        queue.enqueue(shop, "customer.update", note_on(), origin="person", override_reason="a script")
    with pytest.raises(QueueError, match="Say why"):
        queue.enqueue(shop, "customer.update", note_on(), origin="person", by=admin_user, override_reason=" ")
    assert not OutboundCall.objects.exists() and not AuditEntry.objects.filter(verb="ownership.override").exists()


def test_a_job_pushes_only_what_the_platform_may_write(shop, admin_user):
    # By default the platform adds its tags to the shared order tags: the push is queued.
    receive(shop, "orders/paid", order(1001))
    process_pending()
    assert OutboundCall.objects.filter(operation="order.add_tags", input__tags=["fulfillment-notified"]).exists()

    # For a shop whose order tags belong to Shopify alone, the same push is refused, with why.
    other = ShopFactory()
    ownership.set_owner(other, "order", "tags", "shopify", by=admin_user, reason="the merchant tags by hand")
    other.refresh_from_db()
    paid = receive(other, "orders/paid", order(2002))
    process_pending()
    tagging = Job.objects.get(event=paid, name="tag_notified_order")
    assert tagging.status == Job.Status.FAILED
    assert "order.tags is owned by shopify, not the platform" in tagging.attempts.get().message
    assert FulfillmentNotification.objects.filter(shop=other, order_shopify_id=2002).exists()
    assert not OutboundCall.objects.filter(shop=other, operation="order.add_tags").exists()


# --- drift ----------------------------------------------------------------------------------------


def test_a_webhook_changing_a_platform_owned_field_is_drift(shop):
    synced_product(shop, "Mug")
    changed = receive(shop, "products/update", product("Big Mug", "2026-05-04T11:00:00Z", vendor="Other"))
    process_pending()
    assert Event.objects.get(pk=changed.pk).status == Event.Status.PROCESSED
    (drift,) = OwnershipDrift.objects.all()
    assert (drift.shop, drift.resource, drift.field, drift.record_gid) == (shop, "product", "title", PRODUCT_GID)
    assert (drift.before, drift.after, drift.event_id) == ("Mug", "Big Mug", changed.pk)  # vendor is Shopify's
    assert PlatformProduct.objects.get(shop=shop).title == "Big Mug"  # the sync itself is unchanged

    since = timezone.now() - timedelta(days=1)
    (row,) = ownership.drift_report(shop, since=since)
    assert row == {
        "shop": shop.domain,
        "shop_id": shop.pk,
        "resource": "product",
        "field": "title",
        "count": 1,
        "records": 1,
        "last_seen": drift.observed_at,
        "events": [changed.pk],
        "latest": {"event": changed.pk, "record_gid": PRODUCT_GID, "before": "Mug", "after": "Big Mug"},
    }
    assert ownership.drift_count(shop) == 1
    assert ownership.drift_report(shop, since=since, resource="order") == []
    assert ownership.drift_report(shop, since=since, field="title")[0]["count"] == 1
    assert ownership.drift_report(ShopFactory(), since=since) == []
    assert ownership.drift_report(shop, since=since, until=since + timedelta(minutes=1)) == []


def test_stock_changed_in_shopify_is_drift_when_the_warehouse_is_the_only_writer(shop, admin_user):
    receive(shop, "inventory_levels/update", level(9, "2026-05-04T09:00:00Z"))
    process_pending()
    receive(shop, "inventory_levels/update", level(8, "2026-05-04T09:30:00Z"))
    process_pending()
    assert not OwnershipDrift.objects.exists(), "by default a sale lowering stock is not drift"
    ownership.set_owner(shop, "inventory_level", "available", "platform", by=admin_user, reason="warehouse only")
    receive(shop, "inventory_levels/update", level(10, "2026-05-04T10:00:00Z"))
    process_pending()
    sold = receive(shop, "inventory_levels/update", level(7, "2026-05-04T10:05:00Z"))
    process_pending()
    assert PlatformInventoryLevel.objects.get(shop=shop).available == 7
    drift = OwnershipDrift.objects.get(event=sold)
    assert (drift.resource, drift.field, drift.before, drift.after, drift.event) == (
        "inventory_level",
        "available",
        "10",
        "7",
        sold,
    )
    assert drift.record_gid == "gid://shopify/InventoryLevel/655441491?inventory_item_id=4401"


def test_an_echo_of_our_own_write_is_not_drift(shop):
    synced_product(shop, "Mug")
    updated = "2026-05-04T11:00:00Z"
    call = OutboundCallFactory(
        shop=shop,
        operation="product.update",
        target_gid=PRODUCT_GID,
        input={"product": {"id": PRODUCT_GID, "title": "Big Mug"}},
        status="succeeded",
        first_sent_at=timezone.now() - timedelta(seconds=5),
        result_updated_at=parse_datetime(updated),
    )
    echo = receive(shop, "products/update", product("Big Mug", updated))
    process_pending()
    echo.refresh_from_db()
    assert echo.echo_of_id == call.pk and echo.status == Event.Status.PROCESSED
    assert PlatformProduct.objects.get(shop=shop).title == "Big Mug"
    assert not OwnershipDrift.objects.exists()
    assert ownership.drift_count(shop) == 0

    # Someone else then renames it in Shopify: that is drift.
    later = receive(shop, "products/update", product("Huge Mug", "2026-05-04T12:00:00Z"))
    process_pending()
    assert list(OwnershipDrift.objects.values_list("event_id", "before", "after")) == [
        (later.pk, "Big Mug", "Huge Mug")
    ]


def test_an_echo_linked_after_it_was_processed_leaves_the_report(shop):
    """The pump can run a webhook before the sender has written its call's success; the echo
    link is made afterwards (`link_early_echoes`), and the drift noted meanwhile is not drift."""
    synced_product(shop, "Mug")
    early = receive(shop, "products/update", product("Big Mug", "2026-05-04T11:00:00Z"))
    process_pending()
    assert ownership.drift_count(shop) == 1
    call = OutboundCallFactory(shop=shop, operation="product.update", target_gid=PRODUCT_GID, status="succeeded")
    Event.objects.filter(pk=early.pk).update(echo_of=call)
    assert ownership.drift_count(shop) == 0
    assert ownership.drift_report(shop, since=timezone.now() - timedelta(days=1)) == []


def test_a_replay_or_an_older_event_adds_no_drift(shop):
    synced_product(shop, "Mug")
    changed = receive(shop, "products/update", product("Big Mug", "2026-05-04T11:00:00Z"))
    process_pending()
    assert OwnershipDrift.objects.count() == 1

    assert process_event(changed, replay=True) == Event.Status.PROCESSED
    assert OwnershipDrift.objects.count() == 1
    # Even when the comparison runs again (the record put back as it was), the drift is recorded once.
    PlatformProduct.objects.filter(shop=shop).update(
        title="Mug", shopify_updated_at=parse_datetime("2026-05-04T10:00:00Z")
    )
    assert process_event(changed, replay=True) == Event.Status.PROCESSED
    assert PlatformProduct.objects.get(shop=shop).title == "Big Mug"
    assert OwnershipDrift.objects.count() == 1

    # An event older than the record is not written, so it is not drift either.
    receive(shop, "products/update", product("Old Mug", "2026-05-04T09:00:00Z"))
    process_pending()
    assert OwnershipDrift.objects.count() == 1


def test_drift_costs_one_indexed_read_per_event_and_only_where_the_platform_owns_fields(admin_user):
    """A batch of product updates (new vendors, the title as the platform holds it): one more
    statement per event than for a shop whose products the platform owns nothing of."""
    owning, not_owning = ShopFactory(), ShopFactory()
    ownership.set_owner(not_owning, "product", "", "shopify", by=admin_user, reason="the catalogue is in Shopify")
    for shop in (owning, not_owning):
        synced_product(shop, "Mug")

    def statements(shop, n: int) -> list[str]:
        for k in range(n):
            receive(shop, "products/update", product("Mug", f"2026-05-04T11:{k:02d}:00Z", vendor=f"Vendor {k}"))
        with CaptureQueriesContext(connection) as captured:
            assert process_pending() == n
        return [q["sql"] for q in captured.captured_queries]

    n = 6
    with_owned, without = statements(owning, n), statements(not_owning, n)
    assert len(with_owned) - len(without) == n
    reads = [sql for sql in with_owned if "integrations_platformproduct" in sql and sql.startswith("SELECT")]
    assert len([sql for sql in reads if '"title"' in sql]) == n  # the drift read selects the owned field
    assert not OwnershipDrift.objects.exists()


def test_rule_changes_reach_the_next_batch(shop, admin_user):
    synced_product(shop, "Mug")
    ownership.set_owner(shop, "product", "title", "shopify", by=admin_user, reason="titles are edited in Shopify")
    receive(shop, "products/update", product("Big Mug", "2026-05-04T11:00:00Z"))
    process_pending()
    assert not OwnershipDrift.objects.exists()
    ownership.set_owner(shop, "product", "title", "default", by=admin_user, reason="the platform owns titles again")
    receive(shop, "products/update", product("Huge Mug", "2026-05-04T12:00:00Z"))
    process_pending()
    assert OwnershipDrift.objects.get().after == "Huge Mug"


# --- pages ----------------------------------------------------------------------------------------


def test_the_map_page_shows_defaults_and_rules(client_as, support_user, admin_user, shop):
    ownership.set_owner(shop, "variant", "price", "erp", by=admin_user, reason="prices come from the ERP")
    url = reverse("integrations:ownership", args=[shop.pk])
    html = client_as(support_user).get(url).content.decode()
    assert 'data-target="product.title"' in html and "The platform is the catalogue" in html
    row = html.split('data-target="variant.price"')[1].split("</tr>")[0]
    assert "erp" in row and "ada-admin" in row
    assert "Change an owner" not in html and "An admin changes owners" in html
    assert "No drift in the last 7 days" in html

    admin_html = client_as(admin_user).get(url).content.decode()
    assert "Change an owner" in admin_html and 'name="csrfmiddlewaretoken"' in admin_html


def test_an_admin_changes_an_owner_on_the_page_and_support_gets_403(client, support_user, admin_user, shop):
    url = reverse("integrations:ownership", args=[shop.pk])
    data = {"target": "product.title", "owner": "PIM", "reason": "the PIM owns titles"}
    client.force_login(support_user)
    assert client.post(url, data).status_code == 403
    assert not OwnershipRule.objects.exists()

    client.force_login(admin_user)
    response = client.post(url, data)
    assert response.status_code == 302 and response["Location"] == url
    assert OwnershipRule.objects.get(shop=shop).owner == "pim"
    assert AuditEntry.objects.filter(verb="ownership.change", actor=admin_user).exists()
    response = client.post(url, {**data, "reason": ""})
    assert response.status_code == 400
    response = client.post(url, {"target": "product.nope", "owner": "pim", "reason": "r"})
    assert response.status_code == 400


def test_the_page_escapes_what_it_shows(client_as, admin_user, shop):
    OwnershipRule.objects.create(shop=shop, resource="product", field="vendor", owner="<script>x</script>")
    html = client_as(admin_user).get(reverse("integrations:ownership", args=[shop.pk])).content.decode()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def make_drifts(n: int, shops) -> list[OwnershipDrift]:
    made = []
    for k in range(n):
        shop = shops[k % len(shops)]
        event = EventFactory(shop=shop, topic="products/update", status=Event.Status.PROCESSED)
        made.append(
            OwnershipDrift.objects.create(
                shop=shop,
                resource="product" if k % 3 else "inventory_level",
                field="title" if k % 3 else "available",
                record_gid=f"gid://shopify/Product/{k}",
                event=event,
                before=f"<b>old {k}</b>",
                after=f"new {k}",
            )
        )
    return made


def test_the_drift_page_lists_drift_and_links_its_events(client_as, support_user):
    shops = [ShopFactory(), ShopFactory()]
    drifts = make_drifts(4, shops)
    page = client_as(support_user)
    html = page.get(reverse("integrations:drift")).content.decode()
    for drift in drifts:
        assert f'href="{reverse("events:detail", args=[drift.event_id])}"' in html
    assert shops[0].domain in html and shops[1].domain in html and "product.title" in html
    assert "<b>old" not in html and "&lt;b&gt;old" in html

    only = page.get(reverse("integrations:drift"), {"shop": shops[0].pk, "resource": "product"}).content.decode()
    assert shops[1].domain not in only.split("<tbody>")[1]
    assert page.get(reverse("integrations:drift"), {"since": "not a date"}).status_code == 400
    future = (timezone.now() + timedelta(days=2)).date().isoformat()
    assert "No drift in this period" in page.get(reverse("integrations:drift"), {"since": future}).content.decode()


def test_the_drift_page_costs_the_same_queries_for_2_and_20_drifts(client_as, support_user):
    page = client_as(support_user)
    shops = [ShopFactory(), ShopFactory(), ShopFactory()]

    def queries(n: int) -> int:
        OwnershipDrift.objects.all().delete()
        make_drifts(n, shops)
        with CaptureQueriesContext(connection) as captured:
            response = page.get(reverse("integrations:drift"))
        assert response.status_code == 200 and response.content.decode().count("events/") >= n
        return len(captured)

    assert queries(2) == queries(20)


# --- the command ----------------------------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command("ownership", *args, stdout=out)
    return out.getvalue()


def test_the_ownership_command_shows_sets_and_reports(shop, admin_user, support_user):
    shown = json.loads(run("show", shop.domain, "--json"))
    fields = {(row["resource"], row["field"]): row for row in shown["fields"]}
    assert fields[("product", "title")]["owner"] == "platform" and fields[("product", "title")]["rule"] is None
    assert "product.title" in run("show", shop.domain)

    changed = json.loads(
        run(
            "set",
            shop.domain,
            "customer",
            "note",
            "platform",
            "--reason",
            "ours",
            "--user",
            admin_user.username,
            "--json",
        )
    )
    assert changed["owner"] == "platform" and changed["before"] == "shopify" and changed["changed"]
    assert f"variant on {shop.domain}: owned by erp" in run(
        "set", shop.domain, "variant", "erp", "--reason", "r", "--user", "ada-admin"
    )
    assert "product.vendor" in run("set", shop.domain, "product.vendor", "pim", "--reason", "r", "--user", "ada-admin")
    with pytest.raises(CommandError, match="admin"):
        run("set", shop.domain, "product", "pim", "--reason", "r", "--user", support_user.username)
    with pytest.raises(CommandError, match="has no field"):
        run("set", shop.domain, "product", "colour", "pim", "--reason", "r", "--user", "ada-admin")
    assert OwnershipRule.objects.filter(shop=shop).count() == 3

    assert "No ownership drift" in run("drift", "--shop", shop.domain)
    synced_product(shop, "Mug")
    changed_event = receive(shop, "products/update", product("Big Mug", "2026-05-04T11:00:00Z"))
    process_pending()
    report = json.loads(run("drift", "--shop", shop.domain, "--days", "1", "--json"))
    assert [(row["resource"], row["field"], row["events"]) for row in report["drift"]] == [
        ("product", "title", [changed_event.pk])
    ]
    assert f"events {changed_event.pk}" in run("drift")


def test_an_admin_overrides_one_non_owner_write_from_the_command_and_support_cannot(shop, admin_user, support_user):
    import json
    from io import StringIO

    from django.core.management import CommandError, call_command

    note = json.dumps({"input": {"id": "gid://shopify/Customer/5", "note": "VIP, call first"}})
    with pytest.raises(CommandError, match="owned by shopify"):
        call_command("outbound", "enqueue", shop.domain, "customer.update", "--input", note)
    with pytest.raises(CommandError, match="Only an admin"):
        call_command(
            "outbound",
            "enqueue",
            shop.domain,
            "customer.update",
            "--input",
            note,
            "--override-reason",
            "ticket 12",
            "--user",
            support_user.username,
        )
    out = StringIO()
    call_command(
        "outbound",
        "enqueue",
        shop.domain,
        "customer.update",
        "--input",
        note,
        "--override-reason",
        "ticket 12",
        "--user",
        admin_user.username,
        "--json",
        stdout=out,
    )
    assert json.loads(out.getvalue())["created"] is True
    assert AuditEntry.objects.filter(verb="ownership.override", reason="ticket 12").count() == 1
