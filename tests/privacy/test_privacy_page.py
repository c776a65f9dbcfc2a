"""Privacy requests have a page and a command: deadline, state and proof for support; an audited
export download for admins only."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from console.models import AuditEntry
from integrations.models import PrivacyRequest
from integrations.processing.pump import process_event
from tests.factories import EventFactory, ShopFactory
from tests.webhooks import receive

pytestmark = pytest.mark.django_db


@pytest.fixture
def requests_():
    shop = ShopFactory(domain="camp.myshopify.com")
    process_event(
        receive(
            shop, "customers/create", {"id": 7001, "email": "ana@example.com", "updated_at": "2026-05-04T10:00:00Z"}
        )
    )
    process_event(receive(shop, "customers/data_request", {"customer": {"id": 7001}}))
    overdue = PrivacyRequest.objects.create(
        shop=shop,
        event=EventFactory(shop=shop, topic="customers/redact"),
        kind=PrivacyRequest.Kind.CUSTOMER_REDACT,
        customer_shopify_id=9009,
        received_at=timezone.now() - timedelta(days=31),
        due_at=timezone.now() - timedelta(days=1),
    )
    return PrivacyRequest.objects.get(kind=PrivacyRequest.Kind.DATA_REQUEST), overdue


def test_support_sees_deadlines_states_and_proof(client_as, support_user, requests_):
    done, overdue = requests_
    html = client_as(support_user).get(reverse("privacy:list")).content.decode()
    assert f"{done.due_at:%Y-%m-%d %H:%M} UTC" in html and f"{overdue.due_at:%Y-%m-%d %H:%M} UTC" in html
    assert "overdue by 1" in html and "Overdue" in html and "Completed" in html
    assert "customerrecords 1" in html  # the proof row's counts
    assert reverse("privacy:export", args=[done.pk]) not in html  # support may not export
    only_overdue = client_as(support_user).get(reverse("privacy:list"), {"state": "overdue"}).content.decode()
    assert "9009" in only_overdue and "pill-processed" not in only_overdue


def test_admins_download_an_export_and_it_is_audited(client_as, admin_user, support_user, requests_):
    done, overdue = requests_
    url = reverse("privacy:export", args=[done.pk])
    assert client_as(support_user).get(url).status_code == 403
    client = client_as(admin_user)
    assert url in client.get(reverse("privacy:list")).content.decode()
    response = client.get(url)
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    assert json.loads(response.content)["customer"][0]["email"] == "ana@example.com"
    entry = AuditEntry.objects.get(verb="privacy.export_downloaded")
    assert entry.actor == admin_user and entry.target_id == str(done.pk)
    assert client.get(reverse("privacy:export", args=[overdue.pk])).status_code == 404  # a redaction has none


def test_the_command_lists_and_exports_for_admins_only(capsys, admin_user, support_user, requests_, tmp_path):
    done, overdue = requests_
    call_command("privacy", "list", "--state", "overdue", "--json")
    [row] = json.loads(capsys.readouterr().out)
    assert (row["id"], row["overdue"], row["customer_id"]) == (overdue.pk, True, 9009)
    with pytest.raises(CommandError, match="Only admins"):
        call_command("privacy", "export", str(done.pk), "--user", support_user.username)
    target = tmp_path / "export.json"
    call_command("privacy", "export", str(done.pk), "--user", admin_user.username, "--output", str(target))
    assert json.loads(target.read_text())["customer"][0]["shopify_id"] == 7001
    assert AuditEntry.objects.filter(verb="privacy.export_downloaded", actor=admin_user).count() == 1


def test_the_list_runs_a_fixed_number_of_queries(client_as, support_user, django_assert_num_queries):
    shop = ShopFactory()

    def add(n):
        for _ in range(n):
            PrivacyRequest.objects.create(
                shop=shop, event=EventFactory(shop=shop), kind=PrivacyRequest.Kind.SHOP_REDACT, due_at=timezone.now()
            )

    client = client_as(support_user)
    add(2)
    client.get(reverse("privacy:list"))
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        client.get(reverse("privacy:list"))
    add(30)
    with CaptureQueriesContext(connection) as many:
        client.get(reverse("privacy:list"))
    assert len(many) == len(few)
