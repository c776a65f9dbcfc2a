import pytest
from django.core.management import call_command
from django.urls import reverse

from console.models import AuditEntry
from integrations.models import Shop
from tests.factories import ShopFactory

SECRET = "whsec-very-secret-value-123456"
TOKEN = "shpat_super_secret_token_abcdef"


def test_admin_registers_a_shop_and_secrets_never_show_in_full(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("integrations:shop_create"),
        {"domain": "Camp-Co.myshopify.com", "webhook_secret": SECRET, "access_token": TOKEN, "api_version": "2026-10"},
    )
    shop = Shop.objects.get(domain="camp-co.myshopify.com")
    assert response.status_code == 302
    assert shop.webhook_secret == SECRET and shop.access_token == TOKEN
    entry = AuditEntry.objects.for_object(shop).get()
    assert entry.verb == "shop.register" and entry.actor == admin_user
    assert SECRET not in str(entry.after) and TOKEN not in str(entry.after)
    for url in (
        reverse("integrations:shop_detail", args=[shop.pk]),
        reverse("audit_list"),
        reverse("integrations:shop_secrets", args=[shop.pk]),
    ):
        html = client.get(url).content.decode()
        assert SECRET not in html and TOKEN not in html
    assert "••••3456" in client.get(reverse("integrations:shop_detail", args=[shop.pk])).content.decode()
    assert SECRET not in client.get(reverse("admin:integrations_shop_change", args=[shop.pk])).content.decode()


def test_registration_errors_are_clear_and_keep_input(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("integrations:shop_create"), {"domain": "not a shop", "webhook_secret": "", "api_version": "2026-05"}
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "permanent domain" in html and "quarter" in html and "This field is required" in html
    assert 'value="not a shop"' in html
    assert not Shop.objects.exists()


def test_rotation_keeps_the_previous_secret_verifying_for_an_hour(client, admin_user):
    shop = ShopFactory(webhook_secret="old-secret-000000")
    client.force_login(admin_user)
    client.post(
        reverse("integrations:shop_secrets", args=[shop.pk]),
        {"new_webhook_secret": "new-secret-111111", "reason": "leaked"},
    )
    shop.refresh_from_db()
    assert shop.verifying_secrets() == ["new-secret-111111", "old-secret-000000"]
    later = shop.previous_secret_retire_at
    assert shop.verifying_secrets(now=later) == ["new-secret-111111"]
    entry = AuditEntry.objects.for_object(shop).get(verb="shop.rotate_webhook_secret")
    assert entry.reason == "leaked" and "old-secret-000000" not in str(entry.before)


def test_edit_records_only_what_changed(client, admin_user):
    shop = ShopFactory(name="Before")
    client.force_login(admin_user)
    client.post(
        reverse("integrations:shop_edit", args=[shop.pk]),
        {"name": "After", "api_url": "", "api_version": shop.api_version, "reason": "rename"},
    )
    entry = AuditEntry.objects.for_object(shop).get(verb="shop.update")
    assert entry.before == {"name": "Before"} and entry.after == {"name": "After"}


def test_shop_list_has_no_query_per_row(client, support_user, django_assert_max_num_queries):
    ShopFactory.create_batch(30)
    client.force_login(support_user)
    with django_assert_max_num_queries(6):
        response = client.get(reverse("integrations:shop_list"))
    assert response.content.decode().count("myshopify.com</a>") == 30


def test_empty_shop_list_says_what_to_do(client, admin_user):
    client.force_login(admin_user)
    assert "Register the first one" in client.get(reverse("integrations:shop_list")).content.decode()


@pytest.mark.django_db
def test_shop_verifying_secrets_without_rotation():
    shop = ShopFactory.build(webhook_secret="only-one-secret")
    assert shop.verifying_secrets() == ["only-one-secret"]
    call_command("check")


def test_a_second_rotation_within_the_grace_hour_is_refused(client, admin_user):
    shop = ShopFactory(webhook_secret="first-secret-000000")
    client.force_login(admin_user)
    url = reverse("integrations:shop_secrets", args=[shop.pk])
    client.post(url, {"new_webhook_secret": "second-secret-11111", "reason": "leaked"})
    response = client.post(url, {"new_webhook_secret": "third-secret-222222", "reason": "again"})
    assert response.status_code == 200 and "still verifies until" in response.content.decode()
    shop.refresh_from_db()
    assert shop.verifying_secrets() == ["second-secret-11111", "first-secret-000000"]
