"""Every rule fires on its condition, tells its audience once, keeps quiet while silenced, and
resolves (with one resolution notice) when the condition clears. Real database, real mail backend
(locmem), a real HTTP server for the Slack-compatible webhook."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from console.alerts import services
from console.alerts.models import Alert, AlertNotice, AlertSilence
from console.alerts.rules import RULES, Breach, Rule
from console.models import AuditEntry
from integrations.models import Event, HealthCheck, OutboundCall, WorkerHeartbeat
from integrations.outbound.queue import pause_shop, resume_shop
from tests.alerts.conftest import ChatServer, list_address
from tests.factories import DeliveryFactory, EventFactory, IncidentFactory, OutboundCallFactory, ShopFactory

pytestmark = pytest.mark.django_db


def ago(**delta):
    return timezone.now() - timedelta(**delta)


# --- each rule's condition, and how it clears -------------------------------------------------
# A scenario makes its rule breach and returns (subject, clear): `clear()` removes the condition.


def failure_rate(ctx):
    ctx.settings.ALERT_FAILURE_MIN_EVENTS = 20
    ctx.settings.ALERT_FAILURE_RATE = 0.2
    shop = ShopFactory(domain="failing.myshopify.com")
    for _ in range(5):
        EventFactory(shop=shop, topic="orders/create", status=Event.Status.FAILED, received_at=ago(minutes=2))
    for _ in range(15):
        EventFactory(shop=shop, topic="orders/create", status=Event.Status.PROCESSED, received_at=ago(minutes=2))

    def clear():  # the window moves past them
        Event.objects.filter(shop=shop).update(received_at=ago(hours=2))

    return "failing.myshopify.com orders/create", clear


def backlog_events(ctx):
    ctx.settings.ALERT_BACKLOG_SECONDS = 300
    event = EventFactory(status=Event.Status.QUEUED, received_at=ago(minutes=10))

    def clear():
        Event.objects.filter(pk=event.pk).update(status="processed", processed_count=1, processed_at=timezone.now())

    return "events", clear


def backlog_outbound(ctx):
    ctx.settings.ALERT_BACKLOG_SECONDS = 300
    call = OutboundCallFactory(status="queued", created_at=ago(minutes=10))

    def clear():
        OutboundCall.objects.filter(pk=call.pk).update(status="succeeded", finished_at=timezone.now())

    return "outbound calls", clear


def rejected_spike(ctx):
    ctx.settings.ALERT_REJECTED_SPIKE = 3
    rejected = [DeliveryFactory(event=None, shop_domain="forged.myshopify.com") for _ in range(4)]

    def clear():
        type(rejected[0]).objects.filter(pk__in=[d.pk for d in rejected]).update(received_at=ago(hours=2))

    return "webhooks", clear


def _check(kind):
    def scenario(ctx):
        shop = ShopFactory(domain=f"{kind}.myshopify.com")
        HealthCheck.objects.create(shop=shop, kind=kind, ok=True, details={"missing": []})
        HealthCheck.objects.create(shop=shop, kind=kind, ok=False, details={"missing": ["write_orders"]})

        def clear():  # the next check finds everything
            HealthCheck.objects.create(shop=shop, kind=kind, ok=True, details={"missing": []})

        return shop.domain, clear

    return scenario


def queue_paused(ctx):
    ctx.settings.ALERT_PAUSED_MINUTES = 0
    shop = ShopFactory(domain="paused.myshopify.com")
    pause_shop(shop, by=ctx.user, reason="merchant asked us to hold writes")

    def clear():
        resume_shop(shop, by=ctx.user, reason="merchant is done")

    return shop.domain, clear


def incident_overdue(ctx):
    incident = IncidentFactory(next_update_due_at=ago(minutes=5))

    def clear():
        type(incident).objects.filter(pk=incident.pk).update(next_update_due_at=timezone.now() + timedelta(hours=1))

    return f"incident #{incident.pk}", clear


def heartbeat(ctx):
    WorkerHeartbeat.objects.update(beat_at=ago(minutes=10))

    def clear():
        WorkerHeartbeat.objects.update(beat_at=timezone.now())

    return "event pumps", clear


SCENARIOS = {
    "failure_rate": ("failure_rate", failure_rate),
    "backlog_events": ("backlog_age", backlog_events),
    "backlog_outbound": ("backlog_age", backlog_outbound),
    "rejected_spike": ("rejected_spike", rejected_spike),
    "missing_scopes": ("missing_scopes", _check(HealthCheck.Kind.SCOPES)),
    "missing_subscriptions": ("missing_subscriptions", _check(HealthCheck.Kind.SUBSCRIPTIONS)),
    "queue_paused": ("queue_paused", queue_paused),
    "incident_update_overdue": ("incident_update_overdue", incident_overdue),
    "worker_heartbeat": ("worker_heartbeat", heartbeat),
}


def test_every_rule_has_a_scenario():
    assert {rule for rule, _ in SCENARIOS.values()} == set(RULES)


@pytest.fixture
def ctx(settings, support_user):
    class Ctx:
        pass

    ctx = Ctx()
    ctx.settings, ctx.user = settings, support_user
    return ctx


def firing(rule=None):
    alerts = Alert.objects.filter(status=Alert.Status.FIRING)
    return list(alerts.filter(rule=rule) if rule else alerts)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_rule_fires_notifies_once_and_resolves_with_one_notice(name, ctx, mailoutbox):
    rule_key, scenario = SCENARIOS[name]
    rule = RULES[rule_key]
    assert services.evaluate()["opened"] == []  # nothing breaches yet
    subject, clear = scenario(ctx)

    result = services.evaluate()
    assert result["opened"] == [f"{rule_key} · {subject}"]
    (alert,) = firing()
    assert (alert.rule, alert.subject, alert.audience) == (rule_key, subject, rule.audience)
    assert alert.summary and alert.notified_at is not None
    (mail,) = mailoutbox
    assert mail.to == [list_address(rule.audience, alert.severity)]
    assert "[FIRING]" in mail.subject and subject in mail.subject and alert.summary in mail.body

    first_seen = alert.last_seen_at
    assert services.evaluate()["opened"] == []  # still firing: deduplicated, nobody told again
    assert len(mailoutbox) == 1 and len(firing()) == 1
    alert.refresh_from_db()
    assert alert.status == "firing" and alert.last_seen_at > first_seen

    clear()
    assert services.evaluate()["resolved"] == [f"{rule_key} · {subject}"]
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.resolved_at is not None and alert.resolved_notified_at is not None
    assert len(mailoutbox) == 2
    assert "[RESOLVED]" in mailoutbox[1].subject and mailoutbox[1].to == mail.to
    services.evaluate()
    assert len(mailoutbox) == 2 and firing() == []
    assert list(alert.notices.values_list("kind", "channel", "ok")) == [
        ("firing", "email", True),
        ("resolved", "email", True),
    ]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_a_silenced_rule_still_fires_and_resolves_but_tells_nobody(name, ctx, mailoutbox, support_user):
    rule_key, scenario = SCENARIOS[name]
    subject, clear = scenario(ctx)
    services.silence(rule=rule_key, subject=subject, minutes=30, reason="known: maintenance", by=support_user)

    services.evaluate()
    (alert,) = firing()
    assert alert.subject == subject and alert.notified_at is None
    assert mailoutbox == []
    services.evaluate()
    assert mailoutbox == []

    clear()
    services.evaluate()
    alert.refresh_from_db()
    assert alert.status == "resolved" and mailoutbox == [] and not alert.notices.exists()


def test_a_silence_of_every_subject_covers_each_and_another_rule_still_notifies(
    ctx, mailoutbox, support_user, settings
):
    settings.ALERT_BACKLOG_SECONDS = 300
    _check(HealthCheck.Kind.SCOPES)(ctx)
    HealthCheck.objects.create(shop=ShopFactory(), kind="scopes", ok=False, details={"missing": ["read_products"]})
    EventFactory(status=Event.Status.QUEUED, received_at=ago(minutes=10))
    services.silence(rule="missing_scopes", minutes=30, reason="merchants are being asked", by=support_user)

    services.evaluate()
    assert len(firing("missing_scopes")) == 2
    (mail,) = mailoutbox
    assert "Backlog too old" in mail.subject


def test_an_alert_opened_during_a_silence_is_announced_when_the_silence_is_lifted(ctx, mailoutbox, support_user):
    subject, _clear = backlog_events(ctx)
    silence = services.silence(rule="backlog_age", subject=subject, minutes=30, reason="deploy", by=support_user)
    services.evaluate()
    assert mailoutbox == []

    services.unsilence(silence.pk, by=support_user, reason="deploy done")
    services.evaluate()
    (mail,) = mailoutbox
    assert "[FIRING]" in mail.subject
    services.evaluate()
    assert len(mailoutbox) == 1


def test_silencing_and_lifting_are_audited_and_checked(support_user, service_user):
    silence = services.silence(rule="backlog_age", subject="events", minutes=15, reason="load test", by=support_user)
    entry = AuditEntry.objects.get(verb="alerts.silence")
    assert (entry.actor, entry.reason, entry.target_id) == (support_user, "load test", str(silence.pk))
    assert entry.after["rule"] == "backlog_age" and entry.after["minutes"] == 15

    with pytest.raises(services.PermissionDenied):
        services.silence(rule="backlog_age", minutes=15, reason="x", by=service_user)
    with pytest.raises(services.PermissionDenied):
        services.silence(rule="backlog_age", minutes=15, reason="x", by=None)
    for bad in ({"rule": "no_such_rule"}, {"minutes": 0}, {"minutes": 10081}, {"reason": "  "}):
        with pytest.raises(services.SilenceError):
            services.silence(**{"rule": "backlog_age", "minutes": 15, "reason": "x", **bad}, by=support_user)

    services.unsilence(silence.pk, by=support_user, reason="over")
    lifted = AuditEntry.objects.get(verb="alerts.unsilence")
    assert (lifted.actor, lifted.reason) == (support_user, "over")
    with pytest.raises(services.SilenceError):
        services.unsilence(silence.pk, by=support_user)
    assert AlertSilence.objects.get().lifted_by_label == support_user.username


def test_an_expired_silence_no_longer_covers(ctx, mailoutbox, support_user):
    subject, _clear = backlog_events(ctx)
    silence = services.silence(rule="backlog_age", subject=subject, minutes=5, reason="short", by=support_user)
    AlertSilence.objects.filter(pk=silence.pk).update(until=ago(seconds=1))
    services.evaluate()
    assert len(mailoutbox) == 1


# --- thresholds ----------------------------------------------------------------------------------


def test_failure_rate_needs_enough_events_and_more_than_the_rate(settings):
    settings.ALERT_FAILURE_MIN_EVENTS = 10
    settings.ALERT_FAILURE_RATE = 0.5
    shop = ShopFactory()
    for status in ["failed"] * 4 + ["processed"] * 5:
        EventFactory(shop=shop, topic="products/update", status=status)
    EventFactory(shop=shop, topic="products/update", status="queued")  # not settled: not counted
    assert RULES["failure_rate"].check(timezone.now()) == []  # 9 settled
    EventFactory(shop=shop, topic="products/update", status="failed")
    assert RULES["failure_rate"].check(timezone.now()) == []  # 5 of 10 is the rate, not above it
    EventFactory(shop=shop, topic="products/update", status="failed")
    (breach,) = RULES["failure_rate"].check(timezone.now())
    assert breach.details["failed"] == 6 and breach.details["settled"] == 11
    EventFactory(shop=shop, topic="orders/create", status="failed")  # another topic is its own subject
    assert [b.subject for b in RULES["failure_rate"].check(timezone.now())] == [breach.subject]


def test_backlog_leaves_out_calls_of_a_paused_shop_and_young_work(settings, support_user):
    settings.ALERT_BACKLOG_SECONDS = 300
    EventFactory(status="queued", received_at=ago(minutes=1))
    OutboundCallFactory(status="waiting", next_attempt_at=ago(minutes=1), created_at=ago(hours=1))
    assert RULES["backlog_age"].check(timezone.now()) == []
    paused = ShopFactory()
    OutboundCallFactory(shop=paused, status="queued", created_at=ago(hours=1))
    pause_shop(paused, by=support_user, reason="hold")
    assert RULES["backlog_age"].check(timezone.now()) == []


def test_a_shop_paused_less_than_the_limit_does_not_fire(settings, support_user):
    settings.ALERT_PAUSED_MINUTES = 60
    pause_shop(ShopFactory(), by=support_user, reason="a moment")
    assert RULES["queue_paused"].check(timezone.now()) == []
    assert len(RULES["queue_paused"].check(timezone.now() + timedelta(minutes=61))) == 1


def test_an_overdue_incident_alert_is_as_severe_as_the_incident(mailoutbox):
    IncidentFactory(severity="sev1", next_update_due_at=ago(minutes=1))
    services.evaluate()
    (alert,) = firing()
    assert alert.severity == "sev1"
    assert mailoutbox[0].to == [list_address("engineering", "sev1")]


def test_the_heartbeat_rule_counts_pumps_against_the_expected_number(settings, beating):
    settings.ALERT_MIN_PUMPS = 2
    WorkerHeartbeat.objects.create(name="other-host:7:pump1", beat_at=ago(minutes=10))
    (breach,) = RULES["worker_heartbeat"].check(timezone.now())
    assert breach.details["alive"] == 1 and "other-host:7:pump1" in breach.summary
    WorkerHeartbeat.objects.filter(name="other-host:7:pump1").update(beat_at=timezone.now())
    assert RULES["worker_heartbeat"].check(timezone.now()) == []
    WorkerHeartbeat.objects.all().delete()
    settings.ALERT_MIN_PUMPS = 1
    (breach,) = RULES["worker_heartbeat"].check(timezone.now())
    assert "No event pump is recorded" in breach.summary


def test_a_new_check_subject_follows_the_latest_check_only():
    shop = ShopFactory(state="uninstalled")
    HealthCheck.objects.create(shop=shop, kind="scopes", ok=False, details={"missing": ["write_orders"]})
    assert RULES["missing_scopes"].check(timezone.now()) == []  # uninstalled shops are not checked


# --- notices: Slack-compatible webhook, failures, no recipients -----------------------------------


def test_the_slack_webhook_is_posted_once_per_firing_and_resolution(ctx, settings, mailoutbox):
    with ChatServer() as chat:
        settings.ALERT_SLACK_WEBHOOK_URL = chat.url
        _subject, clear = backlog_events(ctx)
        services.evaluate()
        services.evaluate()
        clear()
        services.evaluate()
    assert chat.paths == ["/services/T0001/B0002/sekrit-token"] * 2
    assert [set(message) for message in chat.received] == [{"text"}, {"text"}]
    assert "[FIRING] Backlog too old: events" in chat.received[0]["text"]
    assert "The oldest queued webhook event has waited" in chat.received[0]["text"]
    assert "[RESOLVED] Backlog too old: events" in chat.received[1]["text"]
    alert = Alert.objects.get()
    assert list(alert.notices.filter(channel="slack").values_list("kind", "ok")) == [
        ("firing", True),
        ("resolved", True),
    ]
    assert len(mailoutbox) == 2 and alert.notice_error == ""


def test_a_failing_slack_webhook_is_recorded_and_the_evaluation_goes_on(ctx, settings, mailoutbox):
    with ChatServer(status=500) as chat:
        settings.ALERT_SLACK_WEBHOOK_URL = chat.url
        backlog_events(ctx)
        result = services.evaluate()
    assert result["opened"] == ["backlog_age · events"] and result["errors"] == {}
    alert = Alert.objects.get()
    assert "Slack webhook: HTTP 500" in alert.notice_error
    notice = alert.notices.get(channel="slack")
    assert not notice.ok and notice.error.startswith("HTTP 500")
    assert len(mailoutbox) == 1  # the e-mail still went
    assert len(chat.received) == 1


def test_an_unreachable_slack_webhook_is_recorded_without_its_secret_url(ctx, settings, mailoutbox):
    with ChatServer() as chat:
        dead = chat.url  # the port is free again once the server is closed
    settings.ALERT_SLACK_WEBHOOK_URL = dead
    backlog_events(ctx)
    _check(HealthCheck.Kind.SCOPES)(ctx)
    result = services.evaluate()
    assert len(result["opened"]) == 2  # one failure stops neither the other alert nor its mail
    assert len(mailoutbox) == 2
    for alert in Alert.objects.all():
        assert "Slack webhook: ConnectionError" in alert.notice_error
        assert "sekrit-token" not in alert.notice_error
        assert "sekrit-token" not in alert.notices.get(channel="slack").error


def test_a_failing_mail_backend_is_recorded_and_slack_still_posts(ctx, settings):
    settings.EMAIL_BACKEND = "tests.incidents.failing_mail.Backend"
    with ChatServer() as chat:
        settings.ALERT_SLACK_WEBHOOK_URL = chat.url
        backlog_events(ctx)
        services.evaluate()
    alert = Alert.objects.get()
    assert "E-mail: ConnectionRefusedError" in alert.notice_error
    assert len(chat.received) == 1
    assert alert.notified_at is not None  # not sent again every minute


def test_nobody_on_the_list_is_recorded(ctx, mailoutbox):
    from incidents.models import NotificationList

    NotificationList.objects.filter(audience="engineering", severity="sev2").delete()
    backlog_events(ctx)
    services.evaluate()
    assert mailoutbox == []
    notice = AlertNotice.objects.get()
    assert not notice.ok and "nobody is on the engineering and support list for SEV2" in notice.error


# --- deduplication and robustness -------------------------------------------------------------------


def test_only_one_alert_fires_per_rule_and_subject():
    Alert.objects.create(rule="backlog_age", subject="events", severity="sev2", audience="engineering", summary="s")
    with pytest.raises(IntegrityError), transaction.atomic():
        Alert.objects.create(rule="backlog_age", subject="events", severity="sev2", audience="engineering", summary="s")
    # An evaluator that did not see the firing one (another opened it a moment ago) keeps that one.
    assert services._open("backlog_age", "events", timezone.now(), {"summary": "t", "details": {}, "severity": "sev2",
                                                                       "audience": "engineering"}) is False  # fmt: skip
    assert Alert.objects.count() == 1
    Alert.STATES.move(Alert.objects.all(), source="firing", target="resolved", resolved_at=timezone.now())
    Alert.objects.create(rule="backlog_age", subject="events", severity="sev2", audience="engineering", summary="s")
    assert Alert.objects.count() == 2  # resolved ones are history; a new breach is a new alert


def test_a_resolved_alert_cannot_fire_again():
    from integrations.models import InvalidTransition

    with pytest.raises(InvalidTransition):
        Alert.STATES.move(Alert.objects.all(), source="resolved", target="firing")


def test_a_rule_that_raises_leaves_its_alerts_and_the_others_run(ctx, monkeypatch, mailoutbox):
    def broken(now):
        raise RuntimeError("the database said no")

    Alert.objects.create(rule="broken", subject="x", severity="sev3", audience="engineering", summary="s")
    monkeypatch.setitem(RULES, "broken", Rule("broken", "Broken", "engineering", "sev3", broken, "raises"))
    backlog_events(ctx)
    result = services.evaluate()
    assert result["errors"] == {"broken": "RuntimeError: the database said no"}
    assert result["opened"] == ["backlog_age · events"]
    assert Alert.objects.get(rule="broken").status == "firing"


def test_an_alert_of_a_rule_that_no_longer_exists_resolves(monkeypatch):
    Alert.objects.create(rule="retired_rule", subject="x", severity="sev3", audience="engineering", summary="s")
    assert services.evaluate()["resolved"] == ["retired_rule · x"]


def test_a_breach_keeps_its_latest_summary_and_details(monkeypatch):
    figures = {"n": 1}

    def counting(now):
        return [Breach("thing", f"{figures['n']} things", {"n": figures["n"]})]

    monkeypatch.setitem(RULES, "counting", Rule("counting", "Counting", "engineering", "sev4", counting, ""))
    services.evaluate()
    figures["n"] = 7
    services.evaluate()
    alert = Alert.objects.get(rule="counting")
    assert (alert.summary, alert.details) == ("7 things", {"n": 7})


def test_the_worker_schedule_runs_the_evaluation_every_minute():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="alerts-evaluate")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == ("console.alerts.tasks.evaluate_alerts", "I", 1)
    from console.alerts.tasks import evaluate_alerts

    assert evaluate_alerts()["errors"] == {}


@pytest.mark.django_db(transaction=True)
def test_evaluators_running_at_once_open_one_alert_and_send_one_notice(ctx, mailoutbox):
    """Several workers evaluate every minute: whichever inserts first owns the alert, the others'
    inserts are refused by the partial unique constraint, and the notice is claimed once."""
    import threading

    from django.db import connection

    backlog_events(ctx)
    start = threading.Barrier(4)
    errors = []

    def evaluator():
        try:
            start.wait()
            services.evaluate()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluator) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Alert.objects.filter(rule="backlog_age").count() == 1
    assert len(mailoutbox) == 1 and AlertNotice.objects.count() == 1
