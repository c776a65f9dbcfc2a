"""Production settings: `check --deploy` is clean, and readiness reports a real outage while
liveness (/healthz) does not."""

import json
import subprocess
import sys

import pytest
from django.urls import reverse

from tests.processes import BASE_DIR

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "console.settings",
    "DEBUG": "False",
    "SECRET_KEY": "k3y-" + "production-grade-random-secret-0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "console.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://console.example.com",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "DATABASE_URL": "sqlite:////tmp/deploy-check.sqlite3",
    "PATH": "/usr/bin:/bin",
}


def _manage(*args, env):
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, capture_output=True, text=True, cwd=BASE_DIR
    )


def test_check_deploy_is_clean_under_production_settings():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_healthz_ok(client, db):
    response = client.get(reverse("healthz"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_503_naming_the_database_when_it_is_unreachable_and_healthz_stays_200():
    # A real outage: nothing listens on port 1, so PostgreSQL connections are refused.
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/readyz'); h = Client().get('/healthz');"
        "print(r.status_code, r.json()['status'], ','.join(r.json()['failing']), h.status_code);"
        "print(r.content.decode())"
    )
    env = {
        **PRODUCTION_ENV,
        "DATABASE_URL": "postgres://nobody:nothing@127.0.0.1:1/none",
        "ALLOWED_HOSTS": "testserver",
        "SECURE_SSL_REDIRECT": "False",
    }
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=BASE_DIR)
    summary, body = result.stdout.splitlines()
    assert summary.split() == ["503", "unavailable", "database", "200"], result.stderr
    assert json.loads(body)["checks"]["database"]["error"] == "OperationalError: see the log"
    assert "nothing" not in body and "nobody" not in body  # neither the password nor the user


@pytest.mark.django_db
def test_healthz_needs_no_login_and_is_exempt_from_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_REDIRECT_EXEMPT = [r"^healthz/?$"]
    assert client.get("/healthz").status_code == 200
    assert client.get("/login/").status_code == 301
