"""Headers and sessions: a Content-Security-Policy that the pages (and htmx) live within, no-store on
everything a signed-in person sees, a session that ends after a shift, and secret inputs that are
masked. The browser tests (tests/browser/test_csp_browser.py) show htmx still working under the policy."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from console.audit import record_action
from tests.factories import EventFactory, ShopFactory
from tests.inbound.conftest import shopify_headers
from tests.processes import BASE_DIR

TEMPLATES = BASE_DIR / "templates"
# What a strict policy (no 'unsafe-inline', no 'unsafe-eval') refuses, as it appears in markup.
INLINE = {
    "inline <script>": re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE),
    "<style> element": re.compile(r"<style[\s>]", re.IGNORECASE),
    "style attribute": re.compile(r"\sstyle\s*=", re.IGNORECASE),
    "event handler attribute": re.compile(r"\son[a-z]+\s*=", re.IGNORECASE),
    "hx-on attribute": re.compile(r"\s(data-)?hx-on", re.IGNORECASE),
    "javascript: URL": re.compile(r"javascript:", re.IGNORECASE),
    "js: expression": re.compile(r"""hx-(vals|headers|vars)\s*=\s*['"]\s*js:""", re.IGNORECASE),
}


def policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def inline_code(html: str) -> list[str]:
    return [f"{what}: {m.group(0)!r}" for what, pattern in INLINE.items() for m in pattern.finditer(html)]


# --- Content-Security-Policy ----------------------------------------------------------------------


def test_every_page_carries_a_strict_policy(client, admin_user):
    responses = [client.get(reverse("login"))]
    client.force_login(admin_user)
    responses += [client.get(reverse("dashboard")), client.get("/admin/"), client.get(reverse("events:list"))]
    for response in responses:
        directives = policy(response)
        assert directives["default-src"] == ["'self'"]
        assert directives["script-src"] == ["'self'"] and directives["style-src"] == ["'self'"]
        assert directives["object-src"] == ["'none'"] and directives["base-uri"] == ["'none'"]
        assert directives["frame-ancestors"] == ["'none'"] and directives["form-action"] == ["'self'"]
        assert "unsafe" not in response["Content-Security-Policy"]


def test_no_template_needs_inline_script_style_or_eval():
    """The policy allows none of these; a template that used one would break under it."""
    found = {
        str(path.relative_to(BASE_DIR)): inline_code(path.read_text())
        for path in sorted(TEMPLATES.rglob("*.html"))
        if inline_code(path.read_text())
    }
    assert found == {}


def test_rendered_pages_have_no_inline_code(client, admin_user):
    """Markup built in Python (template tags, the dashboard chart) is checked too, with data on the pages."""
    shop = ShopFactory()
    event = EventFactory(shop=shop)
    record_action(actor=admin_user, verb="shop.update", target=shop, before={"a": 1}, after={"a": 2})
    client.force_login(admin_user)
    urls = [
        reverse("dashboard"),
        reverse("events:list"),
        reverse("events:detail", args=[event.pk]),
        reverse("audit_list"),
        reverse("audit_history", args=["integrations", "shop", shop.pk]),
        reverse("integrations:shop_list"),
        reverse("integrations:shop_detail", args=[shop.pk]),
        reverse("integrations:shop_secrets", args=[shop.pk]),
        reverse("integrations:shop_create"),
        reverse("incidents:status_board"),
        reverse("incidents:lookup") + "?q=1001",
        reverse("incidents:follow_ups"),
        reverse("incidents:notification_lists") + "?audience=engineering&severity=sev1",
        reverse("login_lockouts"),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert inline_code(response.content.decode()) == [], url


def test_htmx_is_told_not_to_eval_or_inject_styles(client, support_user):
    client.force_login(support_user)
    html = client.get(reverse("dashboard")).content.decode()
    assert """<meta name="htmx-config" content='{"allowEval": false, "includeIndicatorStyles": false}'>""" in html
    # The indicator rules htmx would have injected are in our stylesheet instead.
    css = (BASE_DIR / "static" / "console" / "console.css").read_text()
    assert ".htmx-request .htmx-indicator" in css


def test_csp_report_uri_is_configurable():
    script = "import django; django.setup(); from django.conf import settings; print(settings.CONTENT_SECURITY_POLICY['DIRECTIVES']['report-uri'])"
    env = {"DJANGO_SETTINGS_MODULE": "console.settings", "DEBUG": "true", "PATH": "/usr/bin:/bin"}
    unset = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=BASE_DIR)
    assert unset.stdout.strip() == "None", unset.stderr
    env["CSP_REPORT_URI"] = "https://csp.example/report"
    set_ = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=BASE_DIR)
    assert set_.stdout.strip() == "https://csp.example/report", set_.stderr


# --- Cache-Control --------------------------------------------------------------------------------


def _no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_signed_in_pages_partials_and_exports_are_no_store(client, support_user):
    EventFactory()
    client.force_login(support_user)
    for response in (
        client.get(reverse("dashboard")),
        client.get(reverse("events:list")),
        client.get(reverse("events:poll")),
        client.get(reverse("audit_list"), headers={"HX-Request": "true"}),
        client.get(reverse("events:export")),
        client.get(reverse("incidents:status_board"), headers={"HX-Request": "true"}),
        client.get(reverse("integrations:shop_list")),
        client.get("/nowhere/"),  # a 404 to a signed-in user is still their page
    ):
        assert _no_store(response), response.request["PATH_INFO"]
        assert "private" in response["Cache-Control"]


def test_the_webhook_receiver_and_static_files_are_left_alone(client, support_user):
    shop = ShopFactory(domain="cache.myshopify.com", webhook_secret="whsec-cache-0000")
    body = b'{"id": 1}'
    headers = shopify_headers(body, domain=shop.domain, secret="whsec-cache-0000")
    received = client.post(reverse("webhook_receiver"), body, content_type="application/json", headers=headers)
    assert received.status_code == 200 and not _no_store(received)
    client.force_login(support_user)  # even with a session cookie
    assert not _no_store(
        client.post(reverse("webhook_receiver"), body, content_type="application/json", headers=headers)
    )
    static = client.get("/static/console/console.css")
    assert static.status_code == 200 and not _no_store(static)


# --- Sessions -------------------------------------------------------------------------------------


def test_a_login_lasts_one_shift_by_default(client, support_user, settings):
    assert settings.SESSION_COOKIE_AGE == 8 * 60 * 60
    client.post(reverse("login"), {"username": support_user.username, "password": "correct-horse-battery"})
    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == 8 * 60 * 60
    assert 0 < client.session.get_expiry_age() <= 8 * 60 * 60


def test_session_lifetime_comes_from_the_environment():
    script = "import django; django.setup(); from django.conf import settings; print(settings.SESSION_COOKIE_AGE)"
    env = {"DJANGO_SETTINGS_MODULE": "console.settings", "DEBUG": "true", "SESSION_COOKIE_AGE": "3600"}
    env["PATH"] = "/usr/bin:/bin"
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=BASE_DIR)
    assert result.stdout.strip() == "3600", result.stderr


# --- Secret inputs --------------------------------------------------------------------------------


def test_the_django_admin_never_shows_a_secret_or_takes_one_as_text(client, admin_user):
    shop = ShopFactory(webhook_secret="whsec-admin-visible-0000", access_token="shpat_admin_visible_1111")
    client.force_login(admin_user)
    html = client.get(reverse("admin:integrations_shop_change", args=[shop.pk])).content.decode()
    assert "whsec-admin-visible-0000" not in html and "shpat_admin_visible_1111" not in html
    assert not re.search(r'<input[^>]+name="(webhook_secret|access_token|previous_webhook_secret)"', html)


@pytest.mark.parametrize("path", ["integrations/shops/forms.py", "console/forms.py"])
def test_no_form_takes_a_secret_or_token_in_a_text_input(path):
    """Every form field whose name says secret, token or password uses a password input."""
    import importlib

    from django import forms

    module = importlib.import_module(Path(path).with_suffix("").as_posix().replace("/", "."))
    checked = 0
    for form_class in vars(module).values():
        if isinstance(form_class, type) and issubclass(form_class, forms.BaseForm) and form_class is not forms.Form:
            for name, field in form_class.base_fields.items():
                if any(word in name for word in ("secret", "token", "password")):
                    assert isinstance(field.widget, forms.PasswordInput), f"{form_class.__name__}.{name}"
                    assert field.widget.attrs.get("autocomplete") == "new-password"
                    checked += 1
    assert checked or path == "console/forms.py"
