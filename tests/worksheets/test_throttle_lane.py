"""Worksheet reads and writes share the shop's throttle with everything else, in the reconcile
lane: a compare waits rather than take the part of the bucket kept for live calls, and a
worksheet's writes queue behind live calls."""

import pytest

from incidents.worksheets import services
from incidents.worksheets.models import Worksheet
from integrations.models import OutboundAttempt, OutboundCall, PlatformProduct, ShopThrottle
from integrations.outbound.queue import enqueue
from integrations.outbound.throttle import throttle
from tests.worksheets.conftest import copy_to_platform, send_outbound

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def small_bucket(store_factory, settings):
    # A bucket the compare of every product cannot read through without waiting for restores.
    settings.WORKSHEET_READ_BATCH = 5
    settings.OUTBOUND_BUCKET_MAXIMUM = 20.0
    settings.OUTBOUND_BUCKET_RESTORE_RATE = 4.0
    settings.OUTBOUND_LIVE_RESERVE = 0.25  # 5 points kept for live calls
    shop, sim = store_factory(records=120)
    sim.limits(graphql_maximum=20, graphql_restore_rate=4)
    copy_to_platform(shop, sim, "products")
    return shop, sim


def test_a_compare_leaves_the_live_reserve_and_is_never_throttled(small_bucket, admin_user):
    shop, _sim = small_bucket
    ids = [str(p.shopify_id) for p in PlatformProduct.objects.filter(shop=shop)]
    assert len(ids) > 20  # more points than the bucket holds
    worksheet = services.create_worksheet(shop=shop, resource="products", ids_text="\n".join(ids), by=admin_user)
    services.start_compare(worksheet, by=admin_user)
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.COMPARED and worksheet.progress_done == len(ids)
    assert not worksheet.rows.filter(kind="unreadable").exists()
    bucket = ShopThrottle.objects.get(shop=shop)
    assert bucket.throttled_total == 0  # it waited for room instead of being refused
    # The products cost more than the bucket held, so the compare waited for restores; right
    # after it, a live call still finds its reserve.
    assert throttle().reserve(shop.pk, 4, bulk=False) == 0


def test_a_worksheets_writes_queue_in_the_reconcile_lane_behind_live_calls(small_bucket, admin_user, approver_user):
    shop, sim = small_bucket
    products = list(PlatformProduct.objects.filter(shop=shop).order_by("shopify_id")[:3])
    for product in products:
        PlatformProduct.objects.filter(pk=product.pk).update(title=f"Platform {product.shopify_id}")
    worksheet = services.create_worksheet(
        shop=shop, resource="products", ids_text="\n".join(str(p.shopify_id) for p in products), by=admin_user
    )
    services.start_compare(worksheet, by=admin_user)
    worksheet.refresh_from_db()
    services.submit(worksheet, by=admin_user)
    services.approve(worksheet, by=approver_user)
    services.start_apply(worksheet, by=approver_user)
    reconcile = OutboundCall.objects.filter(origin=OutboundCall.Origin.WORKSHEET)
    assert reconcile.count() == 3 and set(reconcile.values_list("lane", flat=True)) == {"reconcile"}
    # A live call queued after them is still sent first.
    live, _ = enqueue(shop, "order.add_tags", {"id": "gid://shopify/Order/1", "tags": ["checked"]},
                      origin=OutboundCall.Origin.PERSON, lane=OutboundCall.Lane.LIVE, by=admin_user,
                      why="a live call")  # fmt: skip
    send_outbound()
    services.settle(worksheet)
    worksheet.refresh_from_db()
    assert worksheet.state == Worksheet.State.APPLIED
    first_live = OutboundAttempt.objects.filter(call=live).order_by("started_at").first()
    first_reconcile = OutboundAttempt.objects.filter(call__in=reconcile).order_by("started_at").first()
    assert first_live.started_at <= first_reconcile.started_at
    for product in products:
        assert sim.record("products", product.shopify_id)["title"] == f"Platform {product.shopify_id}"
