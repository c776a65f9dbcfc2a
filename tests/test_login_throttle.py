"""Login throttling (django-axes): repeated failures lock a username and an address out, the page
says for how long and whom to ask, every lockout and every early unlock is in the audit trail, and
admins can unlock from the console, the terminal and the Django admin."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.hashers import MD5PasswordHasher, make_password
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from console import logins
from console.models import AuditEntry
from tests.factories import TEST_PASSWORD

LIMIT = settings.AXES_FAILURE_LIMIT


class CountingHasher(MD5PasswordHasher):
    """Counts password checks, to show a locked-out login never reaches one."""

    algorithm = "counting_md5"
    checks = 0

    def verify(self, password, encoded):
        CountingHasher.checks += 1
        return super().verify(password, encoded)


def attempt(client, username, password="wrong-password", ip="198.51.100.7", **extra):
    return client.post(reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def lock_username(client, username, ip_prefix="198.51.100."):
    """LIMIT failures for `username`, each from its own address (so only the username locks)."""
    for i in range(LIMIT):
        attempt(client, username, ip=f"{ip_prefix}{i + 1}")


def test_a_hundred_wrong_passwords_are_not_all_processed(client, support_user, settings):
    settings.PASSWORD_HASHERS = ["tests.test_login_throttle.CountingHasher"]
    support_user.password = make_password(TEST_PASSWORD, hasher="counting_md5")
    support_user.save()
    CountingHasher.checks = 0

    statuses = [attempt(client, support_user.username, ip=f"203.0.113.{i % 50 + 1}").status_code for i in range(100)]

    assert statuses[: LIMIT - 1] == [200] * (LIMIT - 1)  # "didn't match", as before
    assert statuses[LIMIT - 1 :] == [429] * (100 - LIMIT + 1)  # the one that reached the limit, and every later one
    assert CountingHasher.checks == LIMIT  # the other 95 never had their password checked
    # Refused attempts are not counted, so the lockout ends when the page says it does.
    assert sum(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == LIMIT
    # The right password is refused too while the lockout lasts.
    assert attempt(client, support_user.username, TEST_PASSWORD, ip="192.0.2.200").status_code == 429
    assert not logged_in(client)


def test_the_lockout_page_says_how_long_and_whom_to_ask(client, support_user):
    lock_username(client, support_user.username)
    response = attempt(client, support_user.username, TEST_PASSWORD)
    assert response.status_code == 429
    html = response.content.decode()
    assert f"refused for {settings.AXES_COOLOFF_TIME.seconds // 60} minutes" in html
    assert "ask a console admin to unlock it" in html and "Login lockouts" in html
    assert "didn't match" not in html
    assert "no-store" in response["Cache-Control"]
    assert response.templates[0].name == "registration/login.html"  # the login form, ready for later


def test_each_lockout_is_audited_once(client, support_user):
    for i in range(LIMIT + 20):
        attempt(client, support_user.username, ip=f"198.51.100.{i + 1}")
    entry = AuditEntry.objects.get(verb="login.lockout")
    assert entry.target_id == str(support_user.pk) and entry.actor is None and entry.actor_label == "system"
    assert entry.after["username"] == support_user.username
    assert entry.after["failures"] == LIMIT and entry.after["locked_minutes"] == 15
    assert entry.source_ip == f"198.51.100.{LIMIT}"


def test_failures_from_one_address_lock_that_address_for_every_username(client, support_user, admin_user):
    guesses = [f"guess-{i}-Hunter2!" for i in range(LIMIT)]  # people type passwords into the username box
    for name in guesses:
        attempt(client, name, ip="203.0.113.66")
    assert attempt(client, support_user.username, TEST_PASSWORD, ip="203.0.113.66").status_code == 429
    assert not logged_in(client)
    # Another address is not affected.
    assert attempt(client, support_user.username, TEST_PASSWORD, ip="203.0.113.67").status_code == 302
    assert logged_in(client)

    entry = AuditEntry.objects.get(verb="login.lockout")
    assert entry.after["ip_address"] == "203.0.113.66" and entry.after["username"] == logins.UNKNOWN_USERNAME
    assert entry.target_id == ""
    trail = str(list(AuditEntry.objects.values()))
    assert not any(name in trail for name in guesses)  # what was typed as a username is not kept


def test_the_django_admin_login_is_throttled_too(client, admin_user):
    for i in range(LIMIT):
        client.post("/admin/login/", {"username": admin_user.username, "password": "nope"}, REMOTE_ADDR=f"10.9.0.{i}")
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": admin_user.username, "password": TEST_PASSWORD},
        REMOTE_ADDR="10.9.1.1",
    )
    assert response.status_code == 429
    assert not logged_in(client)


def test_a_lockout_ends_by_itself_and_expiry_is_not_an_unlock(client, support_user):
    lock_username(client, support_user.username)
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert attempt(client, support_user.username, TEST_PASSWORD).status_code == 302
    assert not AccessAttempt.objects.exists()  # axes tidied the expired records away
    assert not AuditEntry.objects.filter(verb="login.unlock").exists()


# --- Unlocking ----------------------------------------------------------------------------------


def test_an_admin_unlocks_a_username_from_the_console(client, support_user, admin_user):
    lock_username(client, support_user.username)
    client.force_login(admin_user)
    page = client.get(reverse("login_lockouts")).content.decode()
    assert support_user.username in page and "Unlock" in page
    assert reverse("login_lockouts") in client.get(reverse("audit_list")).content.decode()

    response = client.post(
        reverse("login_unlock"), {"username": support_user.username, "reason": "called the help desk"}, follow=True
    )
    assert response.status_code == 200
    assert f"Unlocked {support_user.username}" in response.content.decode()
    assert "Nobody is locked out" in response.content.decode()

    unlocks = AuditEntry.objects.filter(verb="login.unlock")
    assert unlocks.count() == LIMIT  # one per failure record removed (one per address here)
    assert {(e.actor_id, e.reason, e.target_id) for e in unlocks} == {
        (admin_user.pk, "called the help desk", str(support_user.pk))
    }
    client.logout()
    assert attempt(client, support_user.username, TEST_PASSWORD).status_code == 302


def test_an_admin_unlocks_an_address(client, support_user, admin_user):
    for i in range(LIMIT):
        attempt(client, f"nobody-{i}", ip="203.0.113.99")
    client.force_login(admin_user)
    assert "203.0.113.99" in client.get(reverse("login_lockouts")).content.decode()
    client.post(reverse("login_unlock"), {"ip_address": "203.0.113.99", "reason": "office NAT"})
    assert not logins.active_lockouts()
    client.logout()
    assert attempt(client, support_user.username, TEST_PASSWORD, ip="203.0.113.99").status_code == 302


@pytest.mark.parametrize(
    "data",
    [
        {"username": "sam-support"},  # no reason
        {"username": "sam-support", "ip_address": "203.0.113.1", "reason": "r"},  # both
        {"reason": "r"},  # neither
        {"ip_address": "not-an-ip", "reason": "r"},
        {"ip_address": "203.0.113.1\x00", "reason": "r"},
        {"username": "u" * 151, "reason": "r"},
        {"username": "sam\x00", "reason": "r"},
    ],
)
def test_unlock_form_errors_are_400(client, support_user, admin_user, data):
    lock_username(client, support_user.username)
    client.force_login(admin_user)
    response = client.post(reverse("login_unlock"), data)
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()
    assert len(logins.active_lockouts()) == 1


def test_unlocking_someone_not_locked_changes_nothing(client, admin_user):
    client.force_login(admin_user)
    response = client.post(reverse("login_unlock"), {"username": "nobody", "reason": "r"}, follow=True)
    assert "was not locked out" in response.content.decode()
    assert not AuditEntry.objects.filter(verb="login.unlock").exists()


def test_support_cannot_unlock(client, support_user, admin_user):
    lock_username(client, admin_user.username)
    client.force_login(support_user)
    assert client.get(reverse("login_lockouts")).status_code == 403
    assert client.post(reverse("login_unlock"), {"username": admin_user.username, "reason": "r"}).status_code == 403
    assert len(logins.active_lockouts()) == 1


def test_the_logins_command_lists_and_unlocks_audited(client, support_user, admin_user, capsys):
    lock_username(client, support_user.username)
    call_command("logins", "list")
    assert f"username {support_user.username}\t{LIMIT} failures" in capsys.readouterr().out
    with pytest.raises(CommandError, match="may not unlock"):
        call_command("logins", "unlock", "--username", support_user.username, "--reason", "r", "--user", "sam-support")
    with pytest.raises(CommandError, match="not an IP address"):
        call_command("logins", "unlock", "--ip", "nope", "--reason", "r", "--user", admin_user.username)
    call_command(
        "logins", "unlock", "--username", support_user.username, "--reason", "phoned in", "--user", admin_user.username
    )
    assert "Unlocked" in capsys.readouterr().out
    assert set(AuditEntry.objects.filter(verb="login.unlock").values_list("actor", "reason")) == {
        (admin_user.pk, "phoned in")
    }
    assert attempt(client, support_user.username, TEST_PASSWORD).status_code == 302


def test_axes_own_reset_command_is_audited_as_system(client, support_user):
    lock_username(client, support_user.username)
    call_command("axes_reset_username", support_user.username)
    entries = AuditEntry.objects.filter(verb="login.unlock")
    assert entries.count() == LIMIT
    assert {(e.actor_label, e.target_id) for e in entries} == {("system", str(support_user.pk))}
    assert "outside the console" in entries.first().reason


def test_deleting_in_the_django_admin_is_audited_in_the_admins_name(client, support_user, admin_user):
    attempt(client, support_user.username, ip="198.51.100.1")
    record = AccessAttempt.objects.get()
    client.force_login(admin_user)
    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 200
    response = client.post(reverse("admin:axes_accessattempt_delete", args=[record.pk]), {"post": "yes"})
    assert response.status_code == 302
    entry = AuditEntry.objects.get(verb="login.unlock")
    assert entry.actor == admin_user and entry.reason == "deleted in the Django admin"
    assert entry.before["username"] == support_user.username and entry.before["failures"] == 1


# --- Addresses behind proxies ---------------------------------------------------------------------


def test_x_forwarded_for_is_ignored_unless_proxies_are_trusted(client, support_user):
    # Without TRUSTED_PROXY_COUNT, a client cannot dodge the address lockout with a made-up header.
    for i in range(LIMIT):
        attempt(client, f"nobody-{i}", ip="203.0.113.5", HTTP_X_FORWARDED_FOR=f"192.0.2.{i}")
    assert attempt(client, support_user.username, TEST_PASSWORD, ip="203.0.113.5").status_code == 429


def test_behind_a_trusted_proxy_the_clients_address_counts(client, support_user, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    proxy = "10.0.0.2"
    for i in range(LIMIT):
        # What the client sends is on the left; our proxy appends the address it saw.
        attempt(client, f"nobody-{i}", ip=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{i}, 203.0.113.50")
    entry = AuditEntry.objects.get(verb="login.lockout")
    assert entry.after["ip_address"] == "203.0.113.50" and entry.source_ip == "203.0.113.50"
    # Another client behind the same proxy can still log in.
    assert (
        attempt(client, support_user.username, TEST_PASSWORD, ip=proxy, HTTP_X_FORWARDED_FOR="203.0.113.51").status_code
        == 302
    )


def test_hostile_headers_on_a_login_are_stored_not_a_500(client, support_user):
    """axes records User-Agent and Accept; PostgreSQL text cannot hold NUL."""
    headers = {"HTTP_USER_AGENT": "evil\x00agent", "HTTP_ACCEPT": "text/html\x00"}
    assert attempt(client, support_user.username, **headers).status_code == 200
    assert AccessAttempt.objects.get().user_agent == "evil\ufffdagent"
    assert attempt(client, support_user.username, TEST_PASSWORD, **headers).status_code == 302
    assert client.post(reverse("logout"), **headers).status_code == 302
