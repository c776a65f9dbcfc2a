"""Bad input to a page gets a 400, a 404 or a form error, never a 500, on SQLite and PostgreSQL alike:
the login redirect loop, NUL characters, values longer than their column, unknown object types, and
page cursors that are not ids we handed out."""

import pytest
from django.core.exceptions import BadRequest
from django.urls import reverse

from console.audit import record_action
from console.models import AuditEntry
from console.pagination import MAX_CURSOR, keyset_page
from integrations.models import Shop
from tests.factories import TEST_PASSWORD, ShopFactory

BAD_CURSORS = ["abc", "-5", "0", " 7", "7 ", "1_000", "١٢", "1e3", "0x10", str(MAX_CURSOR + 1), "9" * 40, "1\x00"]


# --- Login ------------------------------------------------------------------------------------


@pytest.mark.parametrize("next_url", ["/login/", "/login/?next=/login/", "/login/?next=%2Flogin%2F"])
def test_a_logged_in_user_sent_back_to_the_login_page_lands_on_the_dashboard(client, support_user, next_url):
    client.force_login(support_user)
    response = client.get(reverse("login"), {"next": next_url})
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")


def test_next_still_works_and_stays_on_this_site(client, support_user):
    client.force_login(support_user)
    assert client.get(reverse("login"), {"next": "/audit/"})["Location"] == "/audit/"
    assert client.get(reverse("login"), {"next": "https://evil.example/"})["Location"] == reverse("dashboard")
    client.logout()
    response = client.post(
        reverse("login") + "?next=/login/",
        {"username": support_user.username, "password": TEST_PASSWORD, "next": "/login/"},
    )
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")


@pytest.mark.parametrize(
    ("username", "password"),
    [("sam\x00support", TEST_PASSWORD), ("sam-support", "pass\x00word"), ("u" * 151, TEST_PASSWORD), ("", "")],
)
def test_malformed_login_input_is_a_form_error(client, support_user, username, password):
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code == 200
    assert b'role="alert"' in response.content
    assert "_auth_user_id" not in client.session


def test_nul_in_next_is_ignored(client, support_user):
    assert client.get(reverse("login"), {"next": "/\x00"}).status_code == 200
    client.force_login(support_user)
    response = client.get(reverse("login"), {"next": "/\x00evil"})
    assert response.status_code == 302 and "\x00" not in response["Location"]


# --- Audit trail ------------------------------------------------------------------------------


@pytest.fixture
def shop_history(db, admin_user):
    shop = ShopFactory()
    for i in range(3):
        record_action(actor=admin_user, verb="shop.update", target=shop, reason=f"change-{i}")
    return shop


@pytest.mark.parametrize(
    "args",
    [
        ["integrations", "shop", "1\x00"],
        ["integrations", "shop", "\x00"],
        ["integrations\x00", "shop", "1"],
        ["integrations", "sh\x00op", "1"],
        ["integrations", "shop", "9" * 65],  # target_id holds 64 characters
        ["integrations", "shop", "9" * 40],  # beyond any integer primary key
        ["integrations", "shop", "-1"],
        ["integrations", "nosuchmodel", "1"],
        ["nosuchapp", "shop", "1"],
        ["INTEGRATIONS", "shop", "1"],
        ["integrations", "shop", "1\t2"],
    ],
)
def test_audit_history_of_impossible_objects_is_404(client, admin_user, shop_history, args):
    client.force_login(admin_user)
    url = "/audit/{}/{}/{}/".format(*args)
    assert client.get(url).status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"actor": "ada\x00"},
        {"actor": "a" * 151},
        {"verb": "shop.update\x00"},
        {"verb": "v" * 65},
        {"target_type": "nosuchapp.nosuchmodel"},
        {"target_type": "integrations.shop\x00"},
        {"target_id": "1\x00"},
        {"target_id": "9" * 65},
    ],
)
def test_audit_list_filters_that_cannot_match_are_400_with_the_error(client, admin_user, shop_history, params):
    client.force_login(admin_user)
    response = client.get(reverse("audit_list"), params)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'role="alert"' in html
    assert "change-0" not in html  # nothing listed as if it matched


def test_valid_filters_still_filter(client, admin_user, shop_history):
    client.force_login(admin_user)
    response = client.get(reverse("audit_list"), {"target_type": "integrations.shop", "target_id": shop_history.pk})
    assert response.status_code == 200 and "change-2" in response.content.decode()


@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_bad_cursors_are_400_on_the_audit_pages(client, admin_user, shop_history, cursor):
    client.force_login(admin_user)
    history = reverse("audit_history", args=["integrations", "shop", shop_history.pk])
    for url in (reverse("audit_list"), history):
        assert client.get(url, {"cursor": cursor}).status_code == 400, url
        assert client.get(url, {"cursor": cursor}, headers={"HX-Request": "true"}).status_code == 400, url


def test_good_cursors_still_page(client, admin_user, shop_history):
    client.force_login(admin_user)
    newest = AuditEntry.objects.order_by("-pk").first()
    html = client.get(reverse("audit_list"), {"cursor": newest.pk}).content.decode()
    assert "change-1" in html and "change-2" not in html
    assert client.get(reverse("audit_list"), {"cursor": MAX_CURSOR}).status_code == 200
    assert client.get(reverse("audit_list"), {"cursor": ""}).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("cursor", BAD_CURSORS)
def test_keyset_page_never_sends_a_bad_cursor_to_the_database(cursor, django_assert_num_queries):
    """Every cursored page (audit, events, privacy) pages through keyset_page: the fix is there."""
    with django_assert_num_queries(0), pytest.raises(BadRequest):
        keyset_page(AuditEntry.objects.all(), cursor=cursor)


# --- Shop secrets -----------------------------------------------------------------------------

TOO_LONG = "t" * 256  # the columns hold 255


@pytest.mark.parametrize(
    "field",
    ["new_webhook_secret", "new_access_token"],
)
@pytest.mark.parametrize("value", [TOO_LONG, "shpat_\x00_token"])
def test_secrets_form_refuses_what_the_column_cannot_hold(client, admin_user, field, value):
    shop = ShopFactory(webhook_secret="current-secret-0000", access_token="current-token-0000")
    client.force_login(admin_user)
    response = client.post(reverse("integrations:shop_secrets", args=[shop.pk]), {field: value, "reason": "r"})
    assert response.status_code == 200
    assert b'class="error"' in response.content
    shop.refresh_from_db()
    assert (shop.webhook_secret, shop.access_token) == ("current-secret-0000", "current-token-0000")
    assert not AuditEntry.objects.filter(verb__startswith="shop.").exists()


def test_shop_registration_refuses_over_long_secrets(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        reverse("integrations:shop_create"),
        {
            "domain": "long.myshopify.com",
            "webhook_secret": TOO_LONG,
            "access_token": TOO_LONG,
            "api_version": "2026-10",
        },
    )
    assert response.status_code == 200
    assert response.content.decode().count("Ensure this value has at most 255 characters") == 2
    assert not Shop.objects.exists()


def test_secret_services_refuse_what_the_column_cannot_hold(admin_user):
    from integrations.shops import services

    shop = ShopFactory(webhook_secret="current-secret-0000", access_token="current-token-0000")
    with pytest.raises(ValueError, match="at most 255"):
        services.rotate_webhook_secret(by=admin_user, shop=shop, new_secret=TOO_LONG)
    with pytest.raises(ValueError, match="at most 255"):
        services.set_access_token(by=admin_user, shop=shop, token=TOO_LONG)
    with pytest.raises(ValueError, match="NUL"):
        services.set_access_token(by=admin_user, shop=shop, token="a\x00b")
    shop.refresh_from_db()
    assert (shop.webhook_secret, shop.access_token) == ("current-secret-0000", "current-token-0000")
