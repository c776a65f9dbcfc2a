"""The outbound page: each shop's queue at a glance, and the forms that send to Shopify (the
stock, product and any-operation verbs of the `outbound` command), with server-side permission
checks and clear errors that create nothing."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from integrations.models import OutboundCall, PlatformInventoryLevel
from tests.factories import OutboundCallFactory, ShopFactory, UserFactory

pytestmark = pytest.mark.django_db
INDEX = reverse("outbound:index")


def test_the_queues_show_each_shops_unfinished_calls_and_paused_state(client_as, support_user):
    calm, paused = ShopFactory(domain="calm.myshopify.com"), ShopFactory(domain="held.myshopify.com", queue_paused=True)
    OutboundCallFactory(shop=calm, status="queued")
    OutboundCallFactory.create_batch(2, shop=paused, status="paused")
    page = client_as(support_user).get(INDEX).content.decode()
    calm_row = re.search(r"calm\.myshopify\.com.*?</tr>", page, re.S).group(0)
    held_row = re.search(r"held\.myshopify\.com</a>.*?</tr>", page, re.S).group(0)
    assert "running" in calm_row and ">1</a>" in calm_row
    assert "paused</span>" in held_row and ">2</a>" in held_row
    assert "Send to Shopify" in page and 'name="stock-quantity"' in page


def test_the_page_costs_the_same_queries_for_two_shops_or_twenty(client_as, support_user, django_assert_num_queries):
    client = client_as(support_user)
    for _ in range(2):
        OutboundCallFactory(shop=ShopFactory())
    client.get(INDEX)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get(INDEX)
    for _ in range(18):
        OutboundCallFactory(shop=ShopFactory(), status="failed")
    with django_assert_num_queries(len(few.captured_queries)):
        client.get(INDEX)


def test_a_stock_push_queues_an_inventory_set_guarded_by_the_last_synced_level(client_as, support_user):
    shop = ShopFactory()
    PlatformInventoryLevel.objects.create(
        shop=shop, inventory_item_id=11, location_id=22, available=4, shopify_updated_at="2026-05-01T00:00:00Z"
    )
    form = {
        "form": "stock",
        "stock-shop": shop.pk,
        "stock-inventory_item_id": 11,
        "stock-location_id": 22,
        "stock-quantity": 9,
        "stock-lane": "live",
    }
    response = client_as(support_user).post(INDEX, form)
    call = OutboundCall.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("outbound:detail", args=[call.pk])
    quantity = call.input["input"]["quantities"][0]
    assert (quantity["quantity"], quantity["changeFromQuantity"]) == (9, 4)
    assert call.requested_by == support_user and call.origin == "person"

    again = client_as(support_user).post(INDEX, form, follow=True)
    assert OutboundCall.objects.count() == 1
    assert "Already asked for" in again.content.decode()


def test_a_stock_push_for_a_level_never_seen_explains_itself_and_queues_nothing(client_as, support_user):
    shop = ShopFactory()
    form = {
        "form": "stock",
        "stock-shop": shop.pk,
        "stock-inventory_item_id": 11,
        "stock-location_id": 22,
        "stock-quantity": 9,
        "stock-lane": "live",
    }
    response = client_as(support_user).post(INDEX, form)
    assert response.status_code == 400 and "never seen item 11" in response.content.decode()
    assert not OutboundCall.objects.exists()


@pytest.mark.parametrize(
    ("value", "error"),
    [("{nope", "Not JSON"), ("[1, 2]", "JSON object"), ('{"id": "gid://shopify/Order/1"}', "needs tags")],
)
def test_bad_input_for_any_operation_is_refused_with_the_reason(client_as, support_user, value, error):
    shop = ShopFactory()
    form = {
        "form": "enqueue",
        "enqueue-shop": shop.pk,
        "enqueue-operation": "order.add_tags",
        "enqueue-input": value,
        "enqueue-lane": "live",
    }
    response = client_as(support_user).post(INDEX, form)
    assert response.status_code == 400 and error in response.content.decode()
    assert not OutboundCall.objects.exists()


def test_any_operation_is_queued_with_its_lane_key_and_why_and_escaped_on_its_page(client_as, support_user):
    shop = ShopFactory()
    form = {
        "form": "enqueue",
        "enqueue-shop": shop.pk,
        "enqueue-operation": "order.add_tags",
        "enqueue-input": '{"id": "gid://shopify/Order/7", "tags": ["<b>vip</b>"]}',
        "enqueue-lane": "reconcile",
        "enqueue-key": "fix-7",
        "enqueue-why": "ticket 881",
    }
    page = client_as(support_user).post(INDEX, form, follow=True).content.decode()
    call = OutboundCall.objects.get()
    assert (call.lane, call.priority, call.idempotency_key, call.why) == ("reconcile", 2, "fix-7", "ticket 881")
    assert "&lt;b&gt;vip&lt;/b&gt;" in page and "<b>vip</b>" not in page


def test_product_content_needs_a_title_or_a_description(client_as, support_user):
    shop = ShopFactory()
    form = {"form": "product", "product-shop": shop.pk, "product-product_id": 5, "product-lane": "live"}
    response = client_as(support_user).post(INDEX, form)
    assert response.status_code == 400 and "Give a title, a description, or both" in response.content.decode()
    form["product-title"] = "Camp Stove"
    client_as(support_user).post(INDEX, form)
    assert OutboundCall.objects.get().input == {"product": {"id": "gid://shopify/Product/5", "title": "Camp Stove"}}


def test_someone_who_may_read_calls_but_not_send_sees_no_forms_and_is_refused(client_as):
    reader = UserFactory(username="reader")
    reader.user_permissions.add(*Permission.objects.filter(codename__in=["view_outboundcall"]))
    shop = ShopFactory()
    client = client_as(reader)
    page = client.get(INDEX).content.decode()
    assert "Send to Shopify" not in page
    form = {
        "form": "product",
        "product-shop": shop.pk,
        "product-product_id": 5,
        "product-title": "X",
        "product-lane": "live",
    }
    assert client.post(INDEX, form).status_code == 403
    assert not OutboundCall.objects.exists()


def test_customer_service_cannot_open_it(client_as, service_user):
    assert client_as(service_user).get(INDEX).status_code == 403
