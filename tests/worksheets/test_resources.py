"""Each resource type compared and written against the simulator: variants (price to the cent),
inventory levels (Shopify's compare guard), customers and orders (case, tags, Shopify-only fields)."""

import pytest
from django.core.exceptions import PermissionDenied

from incidents.worksheets import services
from incidents.worksheets.models import Worksheet, WorksheetRow
from integrations.models import (
    OwnershipRule,
    PlatformCustomer,
    PlatformInventoryLevel,
    PlatformOrder,
    PlatformVariant,
)
from tests.worksheets.conftest import copy_to_platform, send_outbound

pytestmark = pytest.mark.django_db(transaction=True)
P = WorksheetRow.Proposal


def compared(shop, resource, ids, by, **kwargs) -> Worksheet:
    worksheet = services.create_worksheet(shop=shop, resource=resource, ids_text=ids, by=by, **kwargs)
    services.start_compare(worksheet, by=by)
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.COMPARED
    return worksheet


def approve_and_apply(worksheet, preparer, approver) -> Worksheet:
    services.submit(worksheet, by=preparer)
    services.approve(worksheet, by=approver)
    services.start_apply(worksheet, by=approver)
    send_outbound()
    services.settle(worksheet)
    worksheet.refresh_from_db()
    return worksheet


def test_variant_prices_compare_to_the_cent_and_a_platform_owned_price_is_pushed(store, admin_user, approver_user):
    shop, sim = store
    copy_to_platform(shop, sim, "variants")
    a, b = PlatformVariant.objects.filter(shop=shop).order_by("shopify_id")[:2]
    # a: "19.5" and "19.50" are the same price.
    PlatformVariant.objects.filter(pk=a.pk).update(price=str(float(a.price)))
    # b: the platform owns this shop's prices and has a new one.
    OwnershipRule.objects.create(shop=shop, resource="variant", field="price", owner="platform")
    PlatformVariant.objects.filter(pk=b.pk).update(price="123.40")
    worksheet = compared(shop, "variants", f"{a.shopify_id}\n{b.shopify_id}", admin_user, fields=["price", "sku"])
    rows = {r.key.rsplit("/", 1)[1]: r for r in worksheet.rows.all()}
    assert rows[str(a.shopify_id)].proposal == P.NO_CHANGE
    assert rows[str(b.shopify_id)].proposal == P.WRITE_SHOPIFY
    assert rows[str(b.shopify_id)].values_to_write() == {"price": "123.40"}
    worksheet = approve_and_apply(worksheet, admin_user, approver_user)
    assert worksheet.state == Worksheet.State.APPLIED, list(worksheet.rows.values_list("result", "result_detail"))
    assert float(sim.record("variants", b.shopify_id)["price"]) == 123.40


def test_inventory_levels_are_written_with_shopifys_compare_guard(store, admin_user, approver_user):
    shop, sim = store
    copy_to_platform(shop, sim, "inventory_levels")
    level = PlatformInventoryLevel.objects.filter(shop=shop).order_by("inventory_item_id").first()
    # The warehouse is this shop's only writer of stock counts.
    OwnershipRule.objects.create(shop=shop, resource="inventory_level", field="available", owner="platform")
    PlatformInventoryLevel.objects.filter(pk=level.pk).update(available=(level.available or 0) + 7)
    ids = f"{level.inventory_item_id}:{level.location_id}"
    worksheet = compared(shop, "inventory_levels", ids, admin_user)
    [row] = worksheet.rows.all()
    assert row.key == f"gid://shopify/InventoryLevel/{level.location_id}?inventory_item_id={level.inventory_item_id}"
    assert row.proposal == P.WRITE_SHOPIFY and row.values_to_write() == {"available": (level.available or 0) + 7}
    worksheet = approve_and_apply(worksheet, admin_user, approver_user)
    row.refresh_from_db()
    assert row.result == "applied", row.result_detail
    variables = row.call.input["input"]["quantities"][0]
    assert variables["changeFromQuantity"] == level.available  # Shopify refuses the write if the count moved
    assert sim.record("inventory_levels", ids)["available"] == (level.available or 0) + 7


def test_customers_compare_emails_without_case_and_tags_as_a_set_and_shared_tags_need_a_person(
    store, admin_user, approver_user
):
    shop, sim = store
    copy_to_platform(shop, sim, "customers")
    a, b, c = PlatformCustomer.objects.filter(shop=shop).order_by("shopify_id")[:3]
    PlatformCustomer.objects.filter(pk=a.pk).update(email=a.email.upper())
    PlatformCustomer.objects.filter(pk=b.pk).update(tags=(b.tags + ", vip").strip(", "))  # tags are shared
    PlatformCustomer.objects.filter(pk=c.pk).update(first_name="Wrongname")  # Shopify owns names
    ids = "\n".join(str(x.shopify_id) for x in (a, b, c))
    worksheet = compared(shop, "customers", ids, admin_user)
    rows = {r.key.rsplit("/", 1)[1]: r for r in worksheet.rows.all()}
    assert rows[str(a.shopify_id)].proposal == P.NO_CHANGE
    assert rows[str(b.shopify_id)].proposal == P.NEEDS_PERSON and "shared" in rows[str(b.shopify_id)].reason
    assert rows[str(c.shopify_id)].proposal == P.WRITE_PLATFORM
    with pytest.raises(services.WorksheetError, match="needs a person"):
        services.decide_row(rows[str(b.shopify_id)], by=admin_user, decision="accept")
    worksheet = approve_and_apply(worksheet, admin_user, approver_user)
    assert PlatformCustomer.objects.get(pk=c.pk).first_name == c.first_name
    assert worksheet.rows.get(pk=rows[str(b.shopify_id)].pk).result == "skipped"


def test_orders_statuses_are_shopifys_and_a_money_at_stake_is_counted(store, admin_user):
    shop, sim = store
    copy_to_platform(shop, sim, "orders")
    order = PlatformOrder.objects.filter(shop=shop).exclude(total_price="").order_by("shopify_id").first()
    PlatformOrder.objects.filter(pk=order.pk).update(financial_status="voided", total_price=f"{order.total_price}0")
    worksheet = compared(shop, "orders", str(order.shopify_id), admin_user)
    [row] = worksheet.rows.all()
    differing = {f["name"] for f in row.fields if f["differs"]}
    assert differing == {"financial_status"}, row.fields  # "12.5" and "12.50" are the same total
    assert row.proposal == P.WRITE_PLATFORM
    assert services.blast_radius(worksheet)["orders"] == 1
    assert services.blast_radius(worksheet)["money"] == str(row.money)


def test_an_override_of_a_field_shopify_owns_needs_an_admin_and_says_why(store, admin_user, approver_user):
    shop, sim = store
    copy_to_platform(shop, sim, "customers")
    customer = PlatformCustomer.objects.filter(shop=shop).order_by("shopify_id").first()
    PlatformCustomer.objects.filter(pk=customer.pk).update(last_name="Platformname")
    worksheet = compared(shop, "customers", str(customer.shopify_id), admin_user)
    [row] = worksheet.rows.all()
    with pytest.raises(services.WorksheetError, match="needs a note"):
        services.decide_row(row, by=admin_user, decision="override", override_side="write_shopify",
                            override_values={"last_name": "Platformname"})  # fmt: skip
    services.decide_row(row, by=admin_user, decision="override", override_side="write_shopify",
                        override_values={"last_name": "Platformname"}, note="the customer asked by phone")  # fmt: skip
    worksheet.refresh_from_db()
    worksheet = approve_and_apply(worksheet, admin_user, approver_user)
    row.refresh_from_db()
    assert row.result == "applied", row.result_detail
    assert sim.record("customers", customer.shopify_id)["last_name"] == "Platformname"


def test_a_support_user_cannot_approve_and_a_service_user_cannot_prepare(store, support_user, service_user):
    shop, sim = store
    with pytest.raises(PermissionDenied):
        services.create_worksheet(shop=shop, resource="products", ids_text="1", by=service_user)
    copy_to_platform(shop, sim, "products")
    product = sim.records("products")[0]
    worksheet = compared(shop, "products", str(product["id"]), support_user)
    services.submit(worksheet, by=support_user)
    with pytest.raises(PermissionDenied):
        services.approve(worksheet, by=support_user)
