"""The worksheet path against the simulator over HTTP: compare with the ownership map as the
truth, maker-checker approval, apply with the stale guard, apply again, rollback."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied

from console.models import AuditEntry
from incidents.worksheets import services
from incidents.worksheets.models import Worksheet, WorksheetRow
from integrations.models import OutboundCall, PlatformProduct
from tests.worksheets.conftest import copy_to_platform, send_outbound

pytestmark = pytest.mark.django_db(transaction=True)
P = WorksheetRow.Proposal


@pytest.fixture
def products(store):
    shop, sim = store
    copy_to_platform(shop, sim, "products")
    rows = list(PlatformProduct.objects.filter(shop=shop).order_by("shopify_id"))
    return shop, sim, rows


def compare(worksheet: Worksheet) -> Worksheet:
    services.start_compare(worksheet, by=worksheet.prepared_by)  # the test queue runs the task at once
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.COMPARED, worksheet.progress_note
    return worksheet


def row(worksheet, record) -> WorksheetRow:
    return worksheet.rows.get(key=f"gid://shopify/Product/{record.shopify_id}")


def test_proposals_follow_the_ownership_map_field_by_field(products, admin_user):
    shop, _sim, (a, b, c, d, e, *_rest) = products
    # a: the platform owns titles and has a newer one -> push it to Shopify.
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")
    # b: Shopify owns the vendor -> copy Shopify's value to the platform.
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")
    # c: the same tags in another order, other case and spacing in the title: equal.
    tags = [t.strip() for t in c.tags.split(",") if t.strip()]
    PlatformProduct.objects.filter(pk=c.pk).update(tags=" ,  ".join(reversed(tags)), title=f"  {c.title}  ")
    # e: a platform-owned title differs, but Shopify changed the record after the last sync.
    PlatformProduct.objects.filter(pk=e.pk).update(
        title="Edited here", shopify_updated_at=e.shopify_updated_at - timedelta(days=1)
    )
    ids = f"{a.shopify_id}\ngid://shopify/Product/{b.shopify_id}, {c.shopify_id}\n{d.shopify_id}\n{e.shopify_id}\n"
    worksheet = compare(services.create_worksheet(shop=shop, resource="products", ids_text=ids, by=admin_user))

    assert [r.key.rsplit("/", 1)[1] for r in worksheet.rows.order_by("position")] == [
        str(x.shopify_id) for x in (a, b, c, d, e)
    ]
    ra = row(worksheet, a)
    assert (ra.kind, ra.proposal) == ("differs", P.WRITE_SHOPIFY)
    title = next(f for f in ra.fields if f["name"] == "title")
    assert title == {**title, "platform": "Platform title", "shopify": a.title, "owner": "platform", "differs": True}
    assert ra.values_to_write() == {"title": "Platform title"}
    rb = row(worksheet, b)
    assert rb.proposal == P.WRITE_PLATFORM and rb.values_to_write() == {"vendor": b.vendor}
    assert "Shopify owns vendor" in rb.reason
    assert (row(worksheet, c).kind, row(worksheet, c).proposal) == ("same", P.NO_CHANGE)
    assert row(worksheet, d).proposal == P.NO_CHANGE
    re_ = row(worksheet, e)
    assert re_.proposal == P.NEEDS_PERSON and "both sides changed since the last sync" in re_.reason
    radius = services.blast_radius(worksheet)
    assert radius["rows_write_shopify"] == 1 and radius["rows_write_platform"] == 1
    assert radius["fields_write_shopify"] == {"title": 1} and radius["fields_write_platform"] == {"vendor": 1}


def test_a_record_missing_on_either_side_is_its_own_kind_of_row(products, admin_user):
    shop, _sim, (a, b, *_rest) = products
    PlatformProduct.objects.filter(pk=b.pk).delete()
    ids = f"{a.shopify_id}\n{b.shopify_id}\n999999999\n"
    PlatformProduct.objects.create(shop=shop, shopify_id=999999999, gid="gid://shopify/Product/999999999",
                                   title="Ghost", shopify_updated_at=a.shopify_updated_at)  # fmt: skip
    worksheet = compare(services.create_worksheet(shop=shop, resource="products", ids_text=ids, by=admin_user))
    kinds = dict(worksheet.rows.values_list("key", "kind"))
    assert kinds[f"gid://shopify/Product/{b.shopify_id}"] == "missing_in_platform"
    assert kinds["gid://shopify/Product/999999999"] == "missing_in_shopify"
    assert set(worksheet.rows.exclude(kind="same").values_list("proposal", flat=True)) == {P.NEEDS_PERSON}


def test_records_changed_within_the_minimum_age_are_listed_as_in_flight(products, admin_user, settings):
    settings.WORKSHEET_MIN_AGE_SECONDS = 300
    shop, sim, (a, *_rest) = products
    # The merchant changed it in Shopify just now: its webhook may not have arrived yet.
    sim.control(
        "PATCH", f"/records/products/{a.shopify_id}", json={"changes": {"vendor": "New vendor"}, "silent": True}
    )
    worksheet = compare(
        services.create_worksheet(shop=shop, resource="products", ids_text=str(a.shopify_id), by=admin_user)
    )
    [only] = worksheet.rows.all()
    assert (only.kind, only.proposal) == ("in_flight", P.NO_CHANGE)
    assert "Compare again later" in only.reason


def test_approval_needs_another_admin_and_apply_writes_exactly_the_approved_rows(
    products, admin_user, approver_user, support_user
):
    shop, sim, (a, b, c, d, _e, f, *_rest) = products
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")
    PlatformProduct.objects.filter(pk=c.pk).update(title="Skip me")  # proposed, but skipped in review
    PlatformProduct.objects.filter(pk=f.pk).update(title="Goes stale")
    ids = "\n".join(str(x.shopify_id) for x in (a, b, c, d, f))
    untouched = {p["id"]: p for p in sim.records("products") if p["id"] not in (a.shopify_id, f.shopify_id)}
    worksheet = compare(services.create_worksheet(shop=shop, resource="products", ids_text=ids, by=admin_user))
    services.decide_row(row(worksheet, c), by=admin_user, decision="skip", note="the catalogue team is on it")
    worksheet.refresh_from_db()
    services.submit(worksheet, by=admin_user)

    with pytest.raises(PermissionDenied, match="preparer cannot approve"):
        services.approve(worksheet, by=admin_user)
    with pytest.raises(PermissionDenied):
        services.approve(worksheet, by=support_user)  # not an admin
    with pytest.raises(services.WorksheetError, match="Only an approved worksheet"):
        services.start_apply(worksheet, by=approver_user)
    services.approve(worksheet, by=approver_user, comment="checked against the PIM")
    assert worksheet.approved_by == approver_user and worksheet.approved_hash == worksheet.plan_hash

    # After compare, a merchant edits f in Shopify: the apply must leave it alone.
    sim.control(
        "PATCH", f"/records/products/{f.shopify_id}", json={"changes": {"title": "Merchant's edit"}, "silent": True}
    )
    services.start_apply(worksheet, by=approver_user)
    send_outbound()
    services.settle(worksheet)
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.APPLIED
    results = {r.key: r.result for r in worksheet.rows.all()}
    assert results == {
        row(worksheet, a).key: "applied",
        row(worksheet, b).key: "applied",
        row(worksheet, c).key: "skipped",
        row(worksheet, d).key: "skipped",
        row(worksheet, f).key: "stale",
    }
    assert sim.record("products", a.shopify_id)["title"] == "Platform title"
    assert sim.record("products", f.shopify_id)["title"] == "Merchant's edit"
    assert "title: " in row(worksheet, f).result_detail and "Merchant's edit" in row(worksheet, f).result_detail
    assert PlatformProduct.objects.get(pk=b.pk).vendor == b.vendor
    assert PlatformProduct.objects.get(pk=f.pk).title == "Goes stale"
    for product in sim.records("products"):
        if product["id"] in untouched:
            assert product == untouched[product["id"]]
    ra = row(worksheet, a)
    assert ra.before == {"title": a.title} and ra.after == {"title": "Platform title"}
    assert ra.call.lane == OutboundCall.Lane.RECONCILE and ra.call.origin == OutboundCall.Origin.WORKSHEET

    # Applying again is refused, and running the apply task again writes nothing twice.
    calls = OutboundCall.objects.count()
    with pytest.raises(services.WorksheetError):
        services.start_apply(worksheet, by=approver_user)
    from incidents.worksheets.tasks import apply_task

    Worksheet.objects.filter(pk=worksheet.pk).update(state=Worksheet.State.APPLYING)
    worksheet.rows.filter(pk=ra.pk).update(result="")  # as if a worker died before recording it
    apply_task(worksheet.pk)
    send_outbound()
    services.settle(worksheet)
    assert OutboundCall.objects.filter(origin=OutboundCall.Origin.WORKSHEET).count() == 1
    assert OutboundCall.objects.count() == calls
    verbs = set(AuditEntry.objects.filter(target_id=str(worksheet.pk)).values_list("verb", flat=True))
    assert {"worksheet.create", "worksheet.submit", "worksheet.approve", "worksheet.apply",
            "worksheet.write_platform", "worksheet.write_shopify"} <= verbs  # fmt: skip


def test_an_edit_after_approval_voids_it(products, admin_user, approver_user):
    shop, _sim, (a, *_rest) = products
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")
    worksheet = compare(
        services.create_worksheet(shop=shop, resource="products", ids_text=str(a.shopify_id), by=admin_user)
    )
    services.submit(worksheet, by=admin_user)
    services.approve(worksheet, by=approver_user)
    services.decide_row(
        row(worksheet, a), by=admin_user, decision="override", override_side="write_shopify",
        override_values={"title": "Another title"}, note="marketing asked",
    )  # fmt: skip
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.COMPARED and worksheet.approved_by is None
    assert worksheet.steps.filter(target="compared", comment__contains="voids the approval").exists()
    with pytest.raises(services.WorksheetError):
        services.start_apply(worksheet, by=approver_user)


def test_rollback_restores_the_before_values_under_the_same_approval(products, admin_user, approver_user):
    shop, sim, (a, b, *_rest) = products
    PlatformProduct.objects.filter(pk=a.pk).update(title="Platform title")
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")
    ids = f"{a.shopify_id}\n{b.shopify_id}"
    worksheet = compare(services.create_worksheet(shop=shop, resource="products", ids_text=ids, by=admin_user))
    services.submit(worksheet, by=admin_user)
    services.approve(worksheet, by=approver_user)
    services.start_apply(worksheet, by=admin_user)
    send_outbound()
    services.settle(worksheet)
    assert sim.record("products", a.shopify_id)["title"] == "Platform title"

    back = services.rollback(worksheet, by=admin_user)
    assert back.rollback_of == worksheet and back.state == Worksheet.State.COMPARED
    services.submit(back, by=admin_user)
    with pytest.raises(PermissionDenied):
        services.approve(back, by=admin_user)
    services.approve(back, by=approver_user)
    services.start_apply(back, by=admin_user)
    send_outbound()
    services.settle(back)
    back.refresh_from_db()
    assert back.state == Worksheet.State.APPLIED, list(back.rows.values_list("result", "result_detail"))
    assert sim.record("products", a.shopify_id)["title"] == a.title
    assert PlatformProduct.objects.get(pk=b.pk).vendor == "Stale vendor"


def test_comparing_again_reads_every_record_afresh_and_resets_the_decisions(products, admin_user):
    shop, _sim, (a, *_rest) = products
    PlatformProduct.objects.filter(pk=a.pk).update(vendor="Stale vendor")
    worksheet = compare(
        services.create_worksheet(shop=shop, resource="products", ids_text=str(a.shopify_id), by=admin_user)
    )
    services.decide_row(row(worksheet, a), by=admin_user, decision="skip", note="later")
    PlatformProduct.objects.filter(pk=a.pk).update(vendor=a.vendor)  # fixed meanwhile by a sync
    worksheet.refresh_from_db()
    services.start_compare(worksheet, by=admin_user)
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.COMPARED
    fresh = row(worksheet, a)
    assert (fresh.kind, fresh.proposal, fresh.decision) == ("same", P.NO_CHANGE, "accept")
