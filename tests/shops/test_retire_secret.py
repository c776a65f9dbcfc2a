"""A leaked previous webhook secret can be retired at once, instead of verifying for its grace hour."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from console.models import AuditEntry
from integrations.inbound.views import shop_cache
from integrations.models import Shop
from integrations.shops import services
from tests.factories import ShopFactory
from tests.inbound.conftest import shopify_headers

OLD, NEW = "whsec-old-leaked-000000", "whsec-new-current-11111"


@pytest.fixture
def rotated(db, admin_user):
    shop = ShopFactory(domain="leaky.myshopify.com", webhook_secret=OLD)
    return services.rotate_webhook_secret(by=admin_user, shop=shop, new_secret=NEW, reason="rotation")


def webhook(client, shop, secret, webhook_id):
    body = json.dumps({"id": 1}).encode()
    headers = shopify_headers(body, webhook_id=webhook_id, domain=shop.domain, secret=secret)
    return client.post(reverse("webhook_receiver"), body, content_type="application/json", headers=headers)


def test_a_webhook_signed_with_the_retired_secret_is_refused_right_after(client, admin_user, rotated):
    assert webhook(client, rotated, OLD, "before-1").status_code == 200  # within the grace hour
    client.force_login(admin_user)
    page = client.get(reverse("integrations:shop_secrets", args=[rotated.pk])).content.decode()
    assert "Retire previous secret now" in page and "••••0000" in page and OLD not in page

    response = client.post(
        reverse("integrations:shop_retire_secret", args=[rotated.pk]), {"retire-reason": "old secret leaked"}
    )
    assert response.status_code == 302
    shop_cache.clear()  # what WEBHOOK_SHOP_CACHE_SECONDS does in every web process
    client.logout()
    assert webhook(client, rotated, OLD, "after-1").status_code == 401
    assert webhook(client, rotated, NEW, "after-2").status_code == 200

    shop = Shop.objects.get(pk=rotated.pk)
    assert shop.previous_webhook_secret == "" and shop.verifying_secrets() == [NEW]
    entry = AuditEntry.objects.for_object(shop).get(verb="shop.retire_webhook_secret")
    assert entry.actor == admin_user and entry.reason == "old secret leaked"
    assert entry.before == {"previous_webhook_secret": "••••0000"} and entry.after == {"previous_webhook_secret": ""}
    assert OLD not in str(entry.before)


def test_until_the_cache_expires_the_receiver_may_still_accept_it(client, admin_user, rotated):
    """Documented: the change reaches each process within WEBHOOK_SHOP_CACHE_SECONDS."""
    assert webhook(client, rotated, OLD, "warm-cache").status_code == 200
    services.retire_previous_webhook_secret(by=admin_user, shop=rotated, reason="leaked")
    assert webhook(client, rotated, OLD, "cached").status_code == 200
    shop_cache.clear()
    assert webhook(client, rotated, OLD, "fresh").status_code == 401


def test_retiring_needs_a_reason_and_a_previous_secret(client, admin_user, rotated):
    client.force_login(admin_user)
    url = reverse("integrations:shop_retire_secret", args=[rotated.pk])
    response = client.post(url, {"retire-reason": "  "})
    assert response.status_code == 400 and "This field is required" in response.content.decode()
    assert client.post(url, {"retire-reason": "leaked"}).status_code == 302
    again = client.post(url, {"retire-reason": "again"})
    assert again.status_code == 400 and "nothing to retire" in again.content.decode()
    assert AuditEntry.objects.filter(verb="shop.retire_webhook_secret").count() == 1
    # With nothing left to retire, the page no longer offers it; rotating again is allowed at once.
    page = client.get(reverse("integrations:shop_secrets", args=[rotated.pk])).content.decode()
    assert "Retire previous secret now" not in page
    response = client.post(
        reverse("integrations:shop_secrets", args=[rotated.pk]),
        {"new_webhook_secret": "whsec-third-22222", "reason": "r"},
    )
    assert response.status_code == 302


def test_a_previous_secret_past_its_hour_cannot_be_retired(admin_user, rotated):
    Shop.objects.filter(pk=rotated.pk).update(previous_secret_retire_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ValueError, match="nothing to retire"):
        services.retire_previous_webhook_secret(by=admin_user, shop=rotated, reason="late")


def test_the_shops_command_retires_audited(admin_user, support_user, rotated, capsys):
    with pytest.raises(CommandError, match="not an active admin"):
        call_command("shops", "retire-secret", rotated.domain, "--reason", "r", "--user", support_user.username)
    call_command(
        "shops", "retire-secret", rotated.domain, "--reason", "leaked in a ticket", "--user", admin_user.username
    )
    assert "previous webhook secret retired" in capsys.readouterr().out
    assert Shop.objects.get(pk=rotated.pk).verifying_secrets() == [NEW]
    entry = AuditEntry.objects.get(verb="shop.retire_webhook_secret")
    assert entry.actor == admin_user and entry.reason == "leaked in a ticket"
    with pytest.raises(CommandError, match="nothing to retire"):
        call_command("shops", "retire-secret", rotated.domain, "--reason", "r", "--user", admin_user.username)


def test_secret_inputs_are_masked_and_never_filled_in(client, admin_user, rotated):
    client.force_login(admin_user)
    for url in (reverse("integrations:shop_create"), reverse("integrations:shop_secrets", args=[rotated.pk])):
        html = client.get(url).content.decode()
        for name in ("webhook_secret", "access_token", "new_webhook_secret", "new_access_token"):
            if f'name="{name}"' in html:
                tag = (
                    html.split(f'name="{name}"')[0].rsplit("<input", 1)[1]
                    + html.split(f'name="{name}"')[1].split(">")[0]
                )
                assert 'type="password"' in tag and 'autocomplete="new-password"' in tag, (url, name)
                assert "value=" not in tag, (url, name)
    # A refused form does not echo a secret back either.
    response = client.post(
        reverse("integrations:shop_secrets", args=[rotated.pk]), {"new_webhook_secret": "whsec-typed-99999"}
    )
    assert response.status_code == 200 and "whsec-typed-99999" not in response.content.decode()
