"""`manage.py events replay` and `manage.py replays`: the flags and --json keys scripts rely on."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from integrations.models import Delivery, FulfillmentNotification, ReplayRequest

pytestmark = pytest.mark.django_db


def replay_cmd(*args) -> dict:
    out = StringIO()
    call_command("events", "replay", *args, "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_a_dry_run_prints_the_plan_with_the_keys_scripts_read(shop, failed_paid):
    [paid] = failed_paid()
    data = replay_cmd(paid.webhook_id, "--dry-run")
    assert data["events"] == 1 and data["needs_approval"] is False and data["outbound_calls"] == 1
    assert len(data["plan_hash"]) == 64 and data["status"] == "planned"
    decisions = {entry["job"]: (entry["decision"], entry["webhook_id"]) for entry in data["plan"]}
    assert decisions["notify_fulfillment"] == ("run", paid.webhook_id)
    assert decisions["sync_order"][0] == "skip"
    assert all(entry["reason"] for entry in data["plan"])
    assert not FulfillmentNotification.objects.exists()


def test_a_real_replay_without_a_reason_is_refused(shop, failed_paid):
    [paid] = failed_paid()
    with pytest.raises(CommandError, match="needs --reason"):
        call_command("events", "replay", paid.webhook_id)
    assert not ReplayRequest.objects.exists()


def test_a_real_replay_is_queued_and_the_worker_runs_it(shop, drain, failed_paid, support_user):
    [paid] = failed_paid()
    data = replay_cmd(paid.webhook_id, "--reason", "warehouse back", "--user", support_user.username)
    assert data["status"] == "queued" and data["requested_by"] == support_user.username
    drain()
    out = StringIO()
    call_command("replays", "show", str(data["id"]), "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert shown["status"] == "done" and shown["progress"]["percent"] == 100
    assert FulfillmentNotification.objects.count() == 1


def test_a_filter_selects_failed_events_of_a_topic_in_a_window(shop, failed_paid):
    events = failed_paid(2)
    since = events[0].received_at.isoformat()
    data = replay_cmd("--filter", f"shop={shop.domain}&topic=orders/paid&status=failed&since={since}", "--dry-run")
    assert data["events"] == 2
    assert {entry["event_id"] for entry in data["plan"]} == {e.pk for e in events}
    with pytest.raises(CommandError, match="no such events"):
        call_command("events", "replay", "--filter", f"shop={shop.domain}&status=processed", "--dry-run")


def test_bad_filters_and_unknown_or_rejected_webhooks_are_refused(shop):
    with pytest.raises(CommandError, match="unknown filter key"):
        call_command("events", "replay", "--filter", "colour=red", "--dry-run")
    with pytest.raises(CommandError, match="not a date"):
        call_command("events", "replay", "--filter", "since=yesterday", "--dry-run")
    with pytest.raises(CommandError, match="no webhook"):
        call_command("events", "replay", "nope", "--dry-run")
    Delivery.objects.create(
        shop_domain=shop.domain, topic="orders/paid", webhook_id="forged", headers={}, outcome="rejected",
        response_status=401, reason="HMAC signature does not match",
    )  # fmt: skip
    with pytest.raises(CommandError, match="never replayable"):
        call_command("events", "replay", "forged", "--reason", "try")


def test_over_the_limits_it_waits_for_an_admin_who_did_not_ask(
    shop,
    drain,
    failed_paid,
    settings,
    admin_user,
    approver_user,
):
    settings.REPLAY_APPROVAL_EVENTS = 0
    [paid] = failed_paid()
    out = StringIO()
    with pytest.raises(SystemExit) as exit_status:
        call_command(
            "events", "replay", paid.webhook_id, "--reason", "r", "--user", admin_user.username, "--json",
            stdout=out, stderr=StringIO(),
        )  # fmt: skip
    assert exit_status.value.code == 3
    data = json.loads(out.getvalue())
    assert data["status"] == "awaiting_approval" and data["needs_approval"]

    with pytest.raises(CommandError, match="another admin"):
        call_command("replays", "approve", str(data["id"]), "--user", admin_user.username)
    out = StringIO()
    call_command("replays", "approve", str(data["id"]), "--user", approver_user.username, "--json", stdout=out)
    assert json.loads(out.getvalue())["approved_by"] == approver_user.username
    drain()
    assert FulfillmentNotification.objects.count() == 1


def test_support_cannot_approve_and_replays_can_be_listed_and_cancelled(shop, failed_paid, settings, support_user):
    settings.REPLAY_APPROVAL_EVENTS = 0
    [paid] = failed_paid()
    with pytest.raises(SystemExit):
        call_command("events", "replay", paid.webhook_id, "--reason", "r", stdout=StringIO(), stderr=StringIO())
    replay = ReplayRequest.objects.get()
    with pytest.raises(CommandError, match="admin role"):
        call_command("replays", "approve", str(replay.pk), "--user", support_user.username)
    out = StringIO()
    call_command("replays", "list", "--json", stdout=out)
    assert [r["id"] for r in json.loads(out.getvalue())] == [replay.pk]
    call_command("replays", "cancel", str(replay.pk), "--reason", "not needed", stdout=StringIO())
    replay.refresh_from_db()
    assert replay.status == "cancelled"


def test_a_replay_can_be_linked_to_an_incident(shop, failed_paid, admin_user):
    from console.models import AuditEntry
    from integrations.replay import services
    from tests.factories import IncidentFactory

    [paid] = failed_paid()
    incident = IncidentFactory(opened_by=admin_user)
    data = replay_cmd(paid.webhook_id, "--dry-run", "--incident", str(incident.pk))
    assert data["incident_id"] == incident.pk
    assert list(incident.replays.values_list("pk", flat=True)) == [data["id"]]
    replay = ReplayRequest.objects.get(pk=data["id"])
    services.link_incident(replay, None, by=admin_user)
    assert ReplayRequest.objects.get(pk=replay.pk).incident is None
    assert AuditEntry.objects.filter(verb="replay.link_incident", target_id=str(replay.pk)).exists()
    with pytest.raises(CommandError, match="No incident"):
        call_command("events", "replay", paid.webhook_id, "--dry-run", "--incident", "999999")
