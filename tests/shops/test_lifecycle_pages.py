"""An uninstalled shop that keeps sending verified webhooks is flagged; an admin marks it
reinstalled with a reason, from the page or the command line; pausing the queue needs a reason."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from console.models import AuditEntry
from integrations.models import Shop
from integrations.shops.services import update_shop
from tests.factories import EventFactory, ShopFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def uninstalled():
    return ShopFactory(state=Shop.State.UNINSTALLED, state_changed_at=timezone.now() - timedelta(hours=2))


def test_an_uninstalled_shop_that_still_sends_is_flagged(client_as, support_user, uninstalled):
    client = client_as(support_user)
    EventFactory(shop=uninstalled, received_at=timezone.now() - timedelta(hours=3))  # before: fine
    html = client.get(reverse("integrations:shop_detail", args=[uninstalled.pk])).content.decode()
    assert "still sending verified webhooks" not in html
    assert "still sending" not in client.get(reverse("integrations:shop_list")).content.decode()
    EventFactory(shop=uninstalled, received_at=timezone.now())
    html = client.get(reverse("integrations:shop_detail", args=[uninstalled.pk])).content.decode()
    assert "Uninstalled, but still sending verified webhooks" in html and "Ask an admin" in html
    assert "still sending" in client.get(reverse("integrations:shop_list")).content.decode()


def test_an_admin_marks_it_reinstalled_with_a_reason(client_as, admin_user, support_user, uninstalled):
    EventFactory(shop=uninstalled, received_at=timezone.now())
    url = reverse("integrations:shop_reinstall", args=[uninstalled.pk])
    assert client_as(support_user).post(url, {"reason": "x"}).status_code == 403
    client = client_as(admin_user)
    client.post(url, {"reason": " "})
    assert Shop.objects.get(pk=uninstalled.pk).state == Shop.State.UNINSTALLED
    response = client.post(url, {"reason": "merchant reinstalled on Monday"}, follow=True)
    assert "is marked installed again" in response.content.decode()
    assert Shop.objects.get(pk=uninstalled.pk).state == Shop.State.INSTALLED
    entry = AuditEntry.objects.get(verb="shop.reinstalled")
    assert entry.actor == admin_user and entry.reason == "merchant reinstalled on Monday"
    assert entry.before == {"state": "uninstalled"} and entry.after == {"state": "installed"}


def test_the_command_reinstalls_for_a_named_admin(admin_user, support_user, uninstalled):
    with pytest.raises(CommandError, match="not an active admin"):
        call_command("shops", "reinstall", uninstalled.domain, "--reason", "r", "--user", support_user.username)
    call_command(
        "shops", "reinstall", uninstalled.domain, "--reason", "merchant said so", "--user", admin_user.username
    )
    assert Shop.objects.get(pk=uninstalled.pk).state == Shop.State.INSTALLED
    with pytest.raises(CommandError, match="not uninstalled"):
        call_command("shops", "reinstall", uninstalled.domain, "--reason", "again", "--user", admin_user.username)


def test_pausing_or_resuming_the_queue_needs_a_reason(client_as, admin_user):
    shop = ShopFactory()
    client = client_as(admin_user)
    fields = {"name": shop.name, "api_url": "", "api_version": shop.api_version, "queue_paused": "on", "reason": ""}
    response = client.post(reverse("integrations:shop_edit", args=[shop.pk]), fields)
    assert "Say why you pause the queue" in response.content.decode()
    assert Shop.objects.get(pk=shop.pk).queue_paused is False
    client.post(reverse("integrations:shop_edit", args=[shop.pk]), {**fields, "reason": "bulk import running"})
    assert Shop.objects.get(pk=shop.pk).queue_paused is True
    with pytest.raises(ValueError, match="needs a reason"):
        update_shop(by=admin_user, shop=shop, changes={"queue_paused": False}, reason="")
    # Other edits need no reason.
    client.post(reverse("integrations:shop_edit", args=[shop.pk]), {**fields, "name": "Renamed", "reason": ""})
    assert Shop.objects.get(pk=shop.pk).name == "Renamed"
