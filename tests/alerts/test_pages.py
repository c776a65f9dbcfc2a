"""The Alerts page, the dashboard block and the `alerts` command: who may see and silence,
silences audited, and a page whose query count does not grow with the alerts."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from console.alerts import services
from console.alerts.models import Alert, AlertNotice, AlertSilence
from console.models import AuditEntry
from integrations.models import Event, WorkerHeartbeat
from tests.factories import EventFactory

pytestmark = pytest.mark.django_db


def make_alert(n: int, *, status: str = "firing", notices: int = 2) -> Alert:
    now = timezone.now()
    alert = Alert.objects.create(
        rule="failure_rate", subject=f"shop-{n}.myshopify.com orders/create", status=status,
        severity="sev3", audience="engineering", summary=f"{n} of 20 orders/create webhooks failed",
        resolved_at=now if status == "resolved" else None, notified_at=now,
    )  # fmt: skip
    for _ in range(notices):
        AlertNotice.objects.create(alert=alert, kind="firing", channel="email", recipients=["a@example.com"], ok=True)
    return alert


def test_customer_service_may_neither_see_nor_silence(client_as, service_user):
    client = client_as(service_user)
    assert client.get(reverse("alerts:list")).status_code == 403
    response = client.post(reverse("alerts:silence"), {"rule": "backlog_age", "minutes": 30, "reason": "x"})
    assert response.status_code == 403
    assert not AlertSilence.objects.exists() and not AuditEntry.objects.filter(verb="alerts.silence").exists()
    assert "Alerts" not in client.get(reverse("dashboard")).content.decode()


@pytest.mark.parametrize("role", ["support_user", "admin_user"])
def test_support_and_admins_see_firing_and_resolved_alerts(client_as, request, role):
    firing, resolved = make_alert(1), make_alert(2, status="resolved")
    html = client_as(request.getfixturevalue(role)).get(reverse("alerts:list")).content.decode()
    assert f'id="alert-{firing.pk}"' in html and firing.summary in html
    assert f'id="alert-{resolved.pk}"' in html
    assert 'action="/alerts/silence/"' in html


def test_silencing_from_the_page_is_audited_and_lifting_too(client_as, support_user):
    alert = make_alert(1)
    client = client_as(support_user)
    response = client.post(
        reverse("alerts:silence"),
        {"rule": alert.rule, "subject": alert.subject, "minutes": 45, "reason": "the merchant is migrating"},
    )
    assert response.status_code == 302
    silence = AlertSilence.objects.get()
    assert (silence.rule, silence.subject, silence.reason) == (alert.rule, alert.subject, "the merchant is migrating")
    assert timedelta(minutes=44) < silence.until - timezone.now() <= timedelta(minutes=45)
    entry = AuditEntry.objects.get(verb="alerts.silence")
    assert (entry.actor, entry.reason, entry.source_ip) == (support_user, "the merchant is migrating", "127.0.0.1")

    html = client.get(reverse("alerts:list")).content.decode()
    assert f'id="silence-{silence.pk}"' in html and "silenced until" in html

    response = client.post(reverse("alerts:unsilence", args=[silence.pk]), {"reason": "done early"})
    assert response.status_code == 302
    silence.refresh_from_db()
    assert silence.lifted_at is not None
    assert AuditEntry.objects.get(verb="alerts.unsilence").reason == "done early"
    # Lifting it again says so, and changes nothing.
    client.post(reverse("alerts:unsilence", args=[silence.pk]))
    assert AuditEntry.objects.filter(verb="alerts.unsilence").count() == 1


@pytest.mark.parametrize(
    "data",
    [
        {"rule": "backlog_age", "minutes": 30, "reason": ""},
        {"rule": "backlog_age", "minutes": 0, "reason": "x"},
        {"rule": "backlog_age", "minutes": 99999, "reason": "x"},
        {"rule": "not_a_rule", "minutes": 30, "reason": "x"},
    ],
)
def test_a_silence_without_reason_or_with_a_bad_duration_is_refused(client_as, support_user, data):
    response = client_as(support_user).post(reverse("alerts:silence"), data)
    assert response.status_code == 400
    assert not AlertSilence.objects.exists() and not AuditEntry.objects.exists()


def test_the_page_costs_a_fixed_number_of_queries(client_as, support_user):
    client = client_as(support_user)
    for n in range(3):
        make_alert(n)
        make_alert(100 + n, status="resolved")
    services.silence(rule="backlog_age", minutes=10, reason="r", by=support_user)
    client.get(reverse("alerts:list"))
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("alerts:list")).status_code == 200
    for n in range(3, 30):
        make_alert(n, notices=3)
        make_alert(100 + n, status="resolved")
    for _ in range(5):
        services.silence(rule="failure_rate", subject="x", minutes=10, reason="r", by=support_user)
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse("alerts:list")).status_code == 200
    assert len(many) == len(few) <= 12


def test_the_dashboard_shows_firing_alerts_and_a_missing_heartbeat(client_as, support_user):
    client = client_as(support_user)
    WorkerHeartbeat.objects.create(name="web-test:1:pump1", beat_at=timezone.now())
    html = client.get(reverse("dashboard")).content.decode()
    assert 'id="alerts-h"' in html and "No alert is firing." in html and "No worker heartbeat" not in html
    alert = make_alert(1)
    html = client.get(reverse("dashboard")).content.decode()
    assert alert.subject in html and "Webhook failure rate" in html
    # Computed at request time: with no worker alive, no rule runs to say so.
    WorkerHeartbeat.objects.update(beat_at=timezone.now() - timedelta(minutes=10))
    html = client.get(reverse("dashboard")).content.decode()
    assert "No worker heartbeat since" in html
    assert "No worker heartbeat since" in client.get(reverse("alerts:list")).content.decode()


# --- the command ----------------------------------------------------------------------------------


def run(*args) -> dict:
    from io import StringIO

    out = StringIO()
    call_command("alerts", *args, "--json", stdout=out)
    return json.loads(out.getvalue())


def test_the_command_evaluates_lists_silences_and_unsilences(support_user, settings):
    settings.ALERT_BACKLOG_SECONDS = 60
    WorkerHeartbeat.objects.create(name="cmd-test:1:pump1", beat_at=timezone.now())
    EventFactory(status=Event.Status.QUEUED, received_at=timezone.now() - timedelta(minutes=5))
    assert run("evaluate")["opened"] == ["backlog_age · events"]
    listed = run("list")
    assert [(a["rule"], a["subject"]) for a in listed["firing"]] == [("backlog_age", "events")]
    assert listed["worker_heartbeat_gone"] is False

    silence = run("silence", "backlog_age", "--subject", "events", "--minutes", "20", "--reason", "deploy",
                  "--user", support_user.username)  # fmt: skip
    assert (silence["rule"], silence["subject"], silence["by"]) == ("backlog_age", "events", support_user.username)
    assert AuditEntry.objects.get(verb="alerts.silence").actor == support_user
    assert run("list")["firing"][0]["silenced_by"] == silence["id"]

    lifted = run("unsilence", str(silence["id"]), "--user", support_user.username)
    assert lifted["lifted_at"] is not None and lifted["lifted_by"] == support_user.username
    assert "resolved" in run("list", "--all")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["silence", "backlog_age", "--minutes", "5", "--reason", "r", "--user", "nobody"], "No active user"),
        (["silence", "nope", "--minutes", "5", "--reason", "r", "--user", "casey-service"], "casey-service"),
        (["silence", "nope", "--minutes", "5", "--reason", "r", "--user", "sam-support"], "No alert rule"),
        (["unsilence", "999", "--user", "sam-support"], "No silence 999"),
    ],
)
def test_the_command_refuses_with_exit_1(support_user, service_user, args, message, capsys):
    with pytest.raises(CommandError) as refused:
        call_command("alerts", *args, "--json")
    assert refused.value.returncode == 1 and message in str(refused.value)
    assert message in json.loads(capsys.readouterr().out)["error"]
