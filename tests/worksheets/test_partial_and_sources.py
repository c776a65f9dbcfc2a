"""A partial failure and the retry of the failed rows only; building from events; the rules;
the CSV export."""

import csv
import io
from datetime import timedelta

import pytest
from django.utils import timezone

from incidents.worksheets import services
from incidents.worksheets.compare import rules_for
from incidents.worksheets.models import Worksheet
from incidents.worksheets.resources import KINDS, parse_ids
from integrations.models import Event, OutboundCall, OwnershipRule, PlatformProduct
from tests.factories import EventFactory
from tests.worksheets.conftest import copy_to_platform, send_outbound

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_partial_failure_keeps_what_was_written_and_retries_only_the_failed_rows(store, admin_user, approver_user):
    shop, sim = store
    copy_to_platform(shop, sim, "products")
    a, b = PlatformProduct.objects.filter(shop=shop).order_by("shopify_id")[:2]
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")  # -> Shopify
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")  # -> the platform
    worksheet = services.create_worksheet(shop=shop, resource="products", ids_text=f"{a.shopify_id},{b.shopify_id}",
                                          by=admin_user)  # fmt: skip
    services.start_compare(worksheet, by=admin_user)
    worksheet.refresh_from_db()
    services.submit(worksheet, by=admin_user)
    services.approve(worksheet, by=approver_user)
    # Meanwhile an admin hands product titles to Shopify: the push is refused when queued.
    rule = OwnershipRule.objects.create(shop=shop, resource="product", field="title", owner="shopify")
    services.start_apply(worksheet, by=approver_user)
    send_outbound()
    services.settle(worksheet)
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.PARTIALLY_APPLIED
    results = dict(worksheet.rows.values_list("key", "result"))
    assert results == {a.gid: "failed", b.gid: "applied"}
    assert "owned by shopify" in worksheet.rows.get(key=a.gid).result_detail
    assert PlatformProduct.objects.get(pk=b.pk).vendor == b.vendor

    rule.delete()
    applied_at = worksheet.rows.get(key=b.gid).applied_at
    services.start_apply(worksheet, by=approver_user)  # retry the failed rows
    send_outbound()
    services.settle(worksheet)
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.APPLIED
    assert worksheet.rows.get(key=a.gid).result == "applied" and worksheet.rows.get(key=a.gid).attempts == 2
    assert worksheet.rows.get(key=b.gid).applied_at == applied_at  # not written again
    assert sim.record("products", a.shopify_id)["title"] == "Platform title"
    assert OutboundCall.objects.filter(origin="worksheet").count() == 1
    assert worksheet.steps.filter(comment="retry the failed rows").exists()


def test_a_worksheet_lists_the_records_the_selected_events_touched(store, admin_user):
    shop, sim = store
    copy_to_platform(shop, sim, "products")
    a, b, c = PlatformProduct.objects.filter(shop=shop).order_by("shopify_id")[:3]
    gap_start = timezone.now() - timedelta(hours=2)
    for product, topic, when in ((a, "products/update", 90), (b, "products/update", 30), (a, "products/update", 10),
                                 (c, "products/update", 200), (b, "orders/create", 20)):  # fmt: skip
        EventFactory(shop=shop, topic=topic, resource_gid=product.gid, status=Event.Status.FAILED,
                     received_at=timezone.now() - timedelta(minutes=when))  # fmt: skip
    Event.objects.filter(topic="orders/create").update(resource_gid="gid://shopify/Order/1")
    worksheet = services.create_worksheet(
        shop=shop, resource="products", by=admin_user,
        events_filter=f"shop={shop.domain}&topic=products/update&since={gap_start.isoformat()}",
    )  # fmt: skip
    assert list(worksheet.rows.order_by("position").values_list("key", flat=True)) == [a.gid, b.gid]
    assert worksheet.source == Worksheet.Source.EVENTS
    with pytest.raises(services.WorksheetError, match="exactly one list"):
        services.create_worksheet(shop=shop, resource="products", by=admin_user, ids_text="1", events_filter="topic=x")
    with pytest.raises(services.WorksheetError, match="nothing to compare"):
        services.create_worksheet(shop=shop, resource="customers", by=admin_user, events_filter=f"shop={shop.domain}")


def test_pasted_ids_are_read_as_gids_and_bad_lines_are_named():
    kind = KINDS["products"]
    assert parse_ids(kind, "id\n12, 13\ngid://shopify/Product/14\n12\n") == [
        "gid://shopify/Product/12", "gid://shopify/Product/13", "gid://shopify/Product/14",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="line 2: 'abc' is not a Product id"):
        parse_ids(kind, "12\nabc\n")
    # An uploaded CSV: the ids are its first column.
    assert parse_ids(kind, 'id,title\n21,"Shirt, blue"\n22,Hat\n') == [
        "gid://shopify/Product/21",
        "gid://shopify/Product/22",
    ]
    levels = KINDS["inventory_levels"]
    assert parse_ids(levels, "5:7") == ["gid://shopify/InventoryLevel/7?inventory_item_id=5"]


def test_rules_per_resource_come_from_settings(settings):
    settings.WORKSHEET_RULES = {
        "orders": {"ignored": ["currency"], "min_age_seconds": 600, "tolerances": {"total_price": "0.05"}}
    }
    rules = rules_for("orders")
    assert rules.ignored == {"currency"} and rules.min_age == timedelta(seconds=600)
    assert rules.equal("total_price", "10.00", "10.04") and not rules.equal("total_price", "10.00", "10.06")
    assert KINDS["orders"].field("total_price").normalise("10.5") == "10.50"
    assert KINDS["products"].field("tags").normalise(" b, a ,a") == ["a", "b"]
    assert KINDS["customers"].field("email").normalise(" Ann@Example.COM ") == "ann@example.com"


def test_the_csv_export_has_a_line_per_row_and_field_with_formulas_defused(store, admin_user):
    shop, sim = store
    copy_to_platform(shop, sim, "products")
    a = PlatformProduct.objects.filter(shop=shop).order_by("shopify_id").first()
    PlatformProduct.objects.filter(pk=a.pk).update(title="=HYPERLINK(1)")
    worksheet = services.create_worksheet(shop=shop, resource="products", ids_text=str(a.shopify_id), by=admin_user,
                                          fields=["title", "vendor"])  # fmt: skip
    services.start_compare(worksheet, by=admin_user)
    lines = list(csv.DictReader(io.StringIO(services.export_csv(worksheet))))
    assert [line["field"] for line in lines] == ["title", "vendor"]
    title = lines[0]
    assert title["platform"] == "'=HYPERLINK(1)" and title["differs"] == "yes" and title["proposal"] == "write_shopify"


def test_the_minute_sweep_finishes_an_apply_whose_calls_went_out(store, admin_user, approver_user):
    from incidents.worksheets.tasks import settle_applying

    shop, sim = store
    copy_to_platform(shop, sim, "products")
    a = PlatformProduct.objects.filter(shop=shop).order_by("shopify_id").first()
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")
    worksheet = services.create_worksheet(shop=shop, resource="products", ids_text=str(a.shopify_id), by=admin_user)
    services.start_compare(worksheet, by=admin_user)
    worksheet.refresh_from_db()
    services.submit(worksheet, by=admin_user)
    services.approve(worksheet, by=approver_user)
    services.start_apply(worksheet, by=approver_user)
    assert settle_applying() == 0  # its call has not been sent yet
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.APPLYING and worksheet.rows.get().result == "sending"
    send_outbound()
    assert settle_applying() == 1
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.APPLIED and worksheet.rows.get().result == "applied"


def test_a_list_of_ids_can_be_linked_to_an_incident(store, admin_user):
    from tests.factories import IncidentFactory

    shop, _sim = store
    incident = IncidentFactory(opened_by=admin_user)
    worksheet = services.create_worksheet(shop=shop, resource="products", ids_text="12", by=admin_user,
                                          link_incident=incident)  # fmt: skip
    assert worksheet.incident == incident and worksheet.source == Worksheet.Source.IDS
    assert list(incident.worksheets.all()) == [worksheet]
