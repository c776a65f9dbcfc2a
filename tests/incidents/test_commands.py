"""`manage.py incidents ...`: the subcommands, flags, exit statuses and --json keys scripts rely on,
each checked against what the database holds afterwards."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from console.models import AuditEntry
from incidents.models import (
    AffectedRecord,
    Incident,
    IncidentAction,
    IncidentStep,
    IncidentUpdate,
    NotificationList,
    SeverityChange,
)
from integrations.models import Event, ReplayRequest
from tests.incidents.conftest import make_order_event

pytestmark = pytest.mark.django_db

INCIDENT_KEYS = {
    "id", "title", "status", "severity", "severity_reasoning", "direction", "shops", "linked_events", "actions",
    "updates", "affected",
}  # fmt: skip
FAILED_ORDERS = "shop=north-shop.myshopify.com&topic=orders/create&status=failed"


def run(*args) -> dict | list:
    """Run `incidents ARGS --json`; return its JSON."""
    out = StringIO()
    call_command("incidents", *map(str, args), "--json", stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def text(*args) -> str:
    """Run `incidents ARGS` (human output); return what it printed."""
    out = StringIO()
    call_command("incidents", *map(str, args), stdout=out, stderr=StringIO())
    return out.getvalue()


def refused(*args, match: str) -> CommandError:
    """Run `incidents ARGS --json` expecting exit status 1; check the {"error": ...} it printed."""
    out = StringIO()
    with pytest.raises(CommandError, match=match) as refusal:
        call_command("incidents", *map(str, args), "--json", stdout=out, stderr=StringIO())
    assert refusal.value.returncode == 1
    assert json.loads(out.getvalue()) == {"error": str(refusal.value)}
    return refusal.value


def processed(*events) -> None:
    """The events were processed again (Shopify's retry, or a replay)."""
    Event.objects.filter(pk__in=[e.pk for e in events]).update(
        status=Event.Status.PROCESSED, processed_at=timezone.now(), processed_count=1
    )


@pytest.fixture
def opened(failing_orders, support_user) -> dict:
    return run("open", "--title", "Order sync failing", "--from-events", FAILED_ORDERS, "--user", support_user.username)


def test_open_from_failing_events_links_them_measures_the_impact_and_lists_the_affected_orders(
    failing_orders, support_user, shop
):
    make_order_event(shop, 2001, status=Event.Status.PROCESSED)  # not matched by the filter
    data = run(
        "open", "--title", "Order sync failing", "--from-events", FAILED_ORDERS, "--user", support_user.username,
        "--public-title", "Some orders arrive late", "--advice", "Their order is safe; it will show up soon.",
    )  # fmt: skip
    assert set(data) >= INCIDENT_KEYS
    assert data["linked_events"] == 3 and data["shops"] == [shop.domain] and data["direction"] == "inbound"
    orders = [r for r in data["affected"] if r["kind"] == "order"]
    assert [(r["key"], r["repair_state"]) for r in orders] == [
        ("#1001", "waiting"),
        ("#1002", "waiting"),
        ("#1003", "waiting"),
    ]
    assert {r["key"] for r in data["affected"] if r["kind"] == "customer"} == {
        "buyer1001@example.com",
        "buyer1002@example.com",
        "buyer1003@example.com",
    }
    # Three unsynced, unfulfilled orders of one shop: delayed orders that hold up fulfilment.
    assert data["severity"] == "sev2"
    assert "fulfilment timing is affected" in data["severity_reasoning"]
    assert data["measured"]["orders_unsynced"] == 3 and data["measured"]["money_at_risk"] == {"EUR": "300.00"}
    assert data["status"] == "investigating" and data["actions"] == [] and data["updates"] == []

    incident = Incident.objects.get(pk=data["id"])
    assert set(incident.events.values_list("id", flat=True)) == {e.pk for e in failing_orders}
    assert incident.opened_by == support_user and incident.lead == support_user
    assert incident.public_title == "Some orders arrive late"
    assert incident.severity == "sev2" and incident.started_at is not None and incident.next_update_due_at
    assert AffectedRecord.objects.filter(incident=incident, kind="order", repair_state="waiting").count() == 3
    assert incident.steps.get().kind == IncidentStep.Kind.OPENED
    change = SeverityChange.objects.get(incident=incident)
    assert (change.target, change.overridden, change.by) == ("sev2", False, support_user)
    assert AuditEntry.objects.filter(verb="incident.open", actor=support_user, target_id=str(incident.pk)).exists()


def test_open_by_hand_with_rubric_answers_and_an_override_that_needs_a_reason(support_user, shop):
    data = run(
        "open", "--title", "Checkout webhooks lost", "--shop", shop.domain, "--orders", "blocked", "--no-workaround",
        "--user", support_user.username,
    )  # fmt: skip
    assert data["severity"] == "sev1" and "Orders are blocked and there is no workaround" in data["severity_reasoning"]
    assert data["shops"] == [shop.domain] and data["linked_events"] == 0
    assert Incident.objects.get(pk=data["id"]).rubric["orders"] == "blocked"

    before = Incident.objects.count()
    refused(
        "open", "--title", "Duplicate log line", "--severity", "sev3", "--user", support_user.username,
        match="needs a reason",
    )  # fmt: skip
    assert Incident.objects.count() == before

    data = run(
        "open", "--title", "Duplicate log line", "--shop", str(shop.pk), "--severity", "sev3",
        "--severity-reason", "a big merchant asked", "--user", support_user.username,
    )  # fmt: skip
    incident = Incident.objects.get(pk=data["id"])
    assert (incident.severity, incident.severity_overridden) == ("sev3", True)
    assert "Overridden to SEV3: a big merchant asked" in data["severity_reasoning"]
    change = incident.severity_changes.get()
    assert (change.rubric_severity, change.target, change.override_reason) == ("sev4", "sev3", "a big merchant asked")


def test_show_and_list(opened, support_user):
    data = run("show", opened["id"])
    assert data["id"] == opened["id"] and data["title"] == "Order sync failing" and data["linked_events"] == 3
    human = text("show", opened["id"])
    assert f"Incident {opened['id']} · SEV2 · Investigating: Order sync failing" in human
    assert "#1001" in human and "To resolve: 3 failed events not replayed or resolved" in human

    assert [i["id"] for i in run("list")] == [opened["id"]]
    Incident.objects.filter(pk=opened["id"]).update(status="resolved", resolved_at=Incident.objects.get().opened_at)
    assert run("list") == [] and [i["id"] for i in run("list", "--all")] == [opened["id"]]
    assert "No open incidents." in text("list")


def test_update_confirmed_is_listed_sent_and_sets_the_next_update(opened, support_user, mailoutbox):
    NotificationList.objects.create(audience="customer_service", severity="sev2", emails="cs-desk@example.com")
    update = run(
        "update", opened["id"], "--body", "Orders from 09:00 arrive late; nothing is lost.", "--audience",
        "customer_service", "--confirmed", "--next-update", "2099-01-01T10:00Z", "--user", support_user.username,
    )  # fmt: skip
    assert update["audience"] == "customer_service" and update["confirmed"] is True and update["id"]
    assert update["body"] == "Orders from 09:00 arrive late; nothing is lost."
    assert update["next_update_due_at"].startswith("2099-01-01T10:00")
    assert update["notifications"][0]["recipients"] == ["cs-desk@example.com"]

    stored = IncidentUpdate.objects.get(pk=update["id"])
    assert stored.confirmed_by == support_user and stored.confirmed_at is not None
    assert Incident.objects.get(pk=opened["id"]).next_update_due_at.year == 2099
    assert [m.bcc for m in mailoutbox if "arrive late" in m.body] == [["cs-desk@example.com"]]

    shown = run("show", opened["id"])
    assert [(u["audience"], u["confirmed"], u["body"]) for u in shown["updates"]] == [
        ("customer_service", True, "Orders from 09:00 arrive late; nothing is lost.")
    ]


def test_an_unconfirmed_update_is_confirmed_later(opened, support_user, admin_user):
    update = run(
        "update", opened["id"], "--body", "Maybe the payment app.", "--audience", "engineering", "--user",
        support_user.username,
    )  # fmt: skip
    assert update["confirmed"] is False and update["notifications"] == []
    confirmed = run("confirm", opened["id"], update["id"], "--user", admin_user.username)
    assert confirmed["confirmed"] is True and confirmed["confirmed_by"] == admin_user.username
    stored = IncidentUpdate.objects.get(pk=update["id"])
    assert stored.confirmed and stored.confirmed_by == admin_user
    refused("confirm", opened["id"], update["id"], "--user", admin_user.username, match="already confirmed")
    refused("confirm", opened["id"], 999999, "--user", admin_user.username, match="No update 999999 on incident")


def test_status_moves_along_the_table_and_a_move_it_does_not_allow_is_refused(opened, support_user):
    user = support_user.username
    assert run("status", opened["id"], "identified", "--note", "bad deploy", "--user", user)["status"] == "identified"
    assert run("status", opened["id"], "contained", "--user", user)["status"] == "contained"
    refused("status", opened["id"], "investigating", "--user", user, match="contained cannot become investigating")
    refused("status", opened["id"], "fixed", "--user", user, match="status must be one of")

    incident = Incident.objects.get(pk=opened["id"])
    assert incident.status == "contained" and incident.identified_at and incident.contained_at
    steps = list(incident.steps.filter(kind=IncidentStep.Kind.STATUS).values_list("source", "target", "text"))
    assert [(s, t) for s, t, _ in steps] == [("investigating", "identified"), ("identified", "contained")]
    assert steps[0][2].endswith("bad deploy")


def test_actions_the_containment_rule_and_the_data_gate(opened, support_user, admin_user, failing_orders):
    user = support_user.username
    action = run(
        "action", opened["id"], "--kind", "containment", "--title", "Pause the order handler", "--owner",
        admin_user.username, "--due", "2099-03-01 12:00", "--user", user,
    )  # fmt: skip
    assert set(action) >= {"id", "kind", "title", "done", "owner", "due_at", "incident"}
    assert (action["kind"], action["done"], action["owner"], action["incident"]) == (
        "containment", False, admin_user.username, opened["id"],
    )  # fmt: skip
    assert action["due_at"].startswith("2099-03-01T12:00")
    remediation = run(
        "action", opened["id"], "--kind", "remediation", "--title", "Idempotent order sync", "--user", user
    )

    error = refused("resolve", opened["id"], "--user", user, match="containment action")
    assert "Pause the order handler" in str(error)
    assert Incident.objects.get(pk=opened["id"]).status == "investigating"

    done = run("action-done", opened["id"], action["id"], "--user", user)
    assert done["done"] is True and done["done_by"] == user
    assert IncidentAction.objects.get(pk=action["id"]).done_at is not None
    refused("action-done", opened["id"], action["id"], "--user", user, match="already done")

    # The linked failed events are neither replayed nor resolved: resolving needs an override.
    refused("resolve", opened["id"], "--user", user, match="--override-reason")
    assert Incident.objects.get(pk=opened["id"]).status == "investigating"
    resolved = run("resolve", opened["id"], "--override-reason", "merchant re-entered the orders", "--user", user)
    assert resolved["status"] == "resolved"
    incident = Incident.objects.get(pk=opened["id"])
    assert incident.resolved_at and incident.resolve_override_reason == "merchant re-entered the orders"
    assert AuditEntry.objects.filter(verb="incident.resolve_override", actor=support_user).exists()
    # Remediation stays open as a follow-up.
    assert [(a["id"], a["done"]) for a in resolved["actions"] if a["kind"] == "remediation"] == [
        (remediation["id"], False)
    ]


def test_resolve_without_override_once_the_data_is_repaired(opened, support_user, failing_orders):
    processed(*failing_orders)
    data = run("resolve", opened["id"], "--user", support_user.username)
    assert data["status"] == "resolved"
    assert Incident.objects.get(pk=opened["id"]).resolve_override_reason == ""
    assert {r["repair_state"] for r in data["affected"] if r["kind"] == "order"} == {"repaired"}


def test_severity_answers_the_rubric_again_and_keeps_every_change(opened, support_user):
    data = run("severity", opened["id"], "--orders", "blocked", "--has-workaround", "--user", support_user.username)
    assert data["severity"] == "sev2" and "Orders are blocked but there is a workaround" in data["severity_reasoning"]
    data = run(
        "severity", opened["id"], "--no-workaround", "--override", "sev2", "--reason", "one small shop",
        "--user", support_user.username,
    )  # fmt: skip
    assert data["severity"] == "sev2" and data["severity_overridden"] is True
    incident = Incident.objects.get(pk=opened["id"])
    assert incident.rubric["orders"] == "blocked" and incident.rubric["workaround"] is False
    changes = list(incident.severity_changes.values_list("rubric_severity", "target", "overridden"))
    assert changes == [("sev2", "sev2", False), ("sev2", "sev2", False), ("sev1", "sev2", True)]


def test_strategy_and_controlled_replay_dry_run(opened, support_user):
    data = run(
        "strategy", opened["id"], "controlled_replay", "--reason", "handler fixed", "--user", support_user.username
    )
    assert data["strategy"] == "controlled_replay"
    assert f"manage.py incidents replay {opened['id']}" in text(
        "strategy", opened["id"], "controlled_replay", "--user", support_user.username
    )
    replay = run("replay", opened["id"], "--user", support_user.username)
    assert set(replay) >= {"replay", "status", "events"} and replay["events"] == 3 and replay["status"] == "planned"
    stored = ReplayRequest.objects.get(pk=replay["replay"])
    assert stored.incident_id == opened["id"] and stored.items_total == 0  # a dry run: nothing queued
    assert run("show", opened["id"])["replays"] == [stored.pk]


def test_link_more_events_by_filter_and_by_id(opened, support_user, shop):
    later = make_order_event(shop, 1004, topic="orders/updated")
    data = run("link", opened["id"], "--events", later.pk, "--user", support_user.username)
    assert data["linked"]["events"] == 1 and data["linked_events"] == 4
    assert "#1004" in {r["key"] for r in data["affected"]}
    assert Incident.objects.get(pk=opened["id"]).events.filter(pk=later.pk).exists()
    refused("link", opened["id"], "--user", support_user.username, match="Nothing to link")
    refused("link", opened["id"], "--events", "12,abc", "--user", support_user.username, match="'abc' is not an id")


def test_lookup_by_order_name_and_email_says_what_to_tell_and_whether_it_is_fixed(opened, failing_orders):
    Incident.objects.filter(pk=opened["id"]).update(customer_advice="Tell them their order is safe.")
    for query in ("1001", "#1001"):
        (row,) = run("lookup", query)
        assert (row["incident"], row["incident_status"], row["kind"], row["key"]) == (
            opened["id"], "investigating", "order", "#1001",
        )  # fmt: skip
        assert row["repair_state"] == "waiting" and row["fixed"] is False
        assert row["advice"] == "Tell them their order is safe." and row["shop"] == "north-shop.myshopify.com"
    rows = run("lookup", "BUYER1002@example.com")
    assert {(r["kind"], r["key"]) for r in rows} == {("customer", "buyer1002@example.com"), ("order", "#1002")}
    assert "Order sync failing" not in json.dumps(rows)  # the internal title never reaches customer service
    assert "Tell them their order is safe." in text("lookup", "#1002")

    processed(failing_orders[0])
    (row,) = run("lookup", "#1001")
    assert row["repair_state"] == "repaired" and row["fixed"] is True
    assert AffectedRecord.objects.get(incident_id=opened["id"], key="#1001").repair_state == "repaired"

    assert run("lookup", "#4242") == []
    assert text("lookup", "#4242").strip() == "No open incident affects #4242."


def test_summary_has_the_timeline_actions_and_communications(opened, support_user):
    user = support_user.username
    run("action", opened["id"], "--kind", "containment", "--title", "Disable order handler", "--user", user)
    run("action", opened["id"], "--kind", "remediation", "--title", "Add idempotency keys", "--user", user)
    run(
        "update",
        opened["id"],
        "--body",
        "Handler disabled.",
        "--audience",
        "engineering",
        "--confirmed",
        "--user",
        user,
    )
    markdown = text("summary", opened["id"])
    assert markdown.startswith(f"# Incident #{opened['id']}: Order sync failing")
    for heading in ("## Timeline", "## Containment", "## Remediation", "## Communications", "## Impact"):
        assert heading in markdown
    assert "- [ ] Disable order handler" in markdown and "- [ ] Add idempotency keys" in markdown
    assert "Handler disabled." in markdown
    timeline = markdown.split("## Timeline", 1)[1]
    assert "Opened as SEV2" in timeline and "Added containment action" in timeline
    assert run("summary", opened["id"])["markdown"] == markdown


def test_unknown_user_incident_and_unreadable_values_are_refused(opened, support_user, service_user):
    before = (Incident.objects.count(), IncidentStep.objects.count())
    refused("open", "--title", "X", "--user", "nobody-here", match="No active user 'nobody-here'")
    refused("open", "--title", "X", match="--user U")
    refused("show", 999999, match="No incident 999999")
    refused("status", 999999, "identified", "--user", support_user.username, match="No incident 999999")
    refused("status", opened["id"], "identified", match="--user U")
    refused(
        "action", opened["id"], "--kind", "remediation", "--title", "T", "--due", "next tuesday", "--user",
        support_user.username, match="--due: 'next tuesday' is not a date and time",
    )  # fmt: skip
    refused(
        "action", opened["id"], "--kind", "remediation", "--title", "T", "--owner", "ghost", "--user",
        support_user.username, match="No active user 'ghost'",
    )  # fmt: skip
    refused("open", "--title", "X", "--shop", "nowhere.myshopify.com", "--user", support_user.username, match="No shop")
    refused("open", "--title", "X", "--from-events", "colour=blue", "--user", support_user.username, match="filter")
    # Customer service reads incidents but may not change them.
    refused("status", opened["id"], "identified", "--user", service_user.username, match="casey-service: You may not")
    assert (Incident.objects.count(), IncidentStep.objects.count()) == before
    assert Incident.objects.get(pk=opened["id"]).status == "investigating"


def test_the_response_tools_pause_watch_and_correct_record_on_the_incident(opened, support_user, shop):
    from incidents.worksheets.models import Worksheet

    user = support_user.username
    paused = run("pause", opened["id"], "--reason", "stop writing orders back", "--user", user)
    assert paused["paused"] == [{"shop": shop.domain, "held": 0}]
    shop.refresh_from_db()
    assert shop.queue_paused
    # Pausing is containment carried out: recorded as a done containment action.
    assert [(a["kind"], a["done"]) for a in paused["actions"]] == [("containment", True)]
    refused("pause", opened["id"], "--user", user, match="No linked shop has a running outbound queue")

    watched = run("watch", opened["id"], "--topic", "orders/create", "--shop", shop.domain, "--minutes", "30",
                  "--remind", "2099-01-01T09:00Z", "--user", user)  # fmt: skip
    assert watched["watch"]["topic"] == "orders/create" and watched["watch"]["failures"] == 3
    incident = Incident.objects.get(pk=opened["id"])
    assert (incident.watch_topic, incident.watch_shop, incident.watch_minutes) == ("orders/create", shop, 30)
    assert incident.watch_remind_at.year == 2099

    corrected = run("correct", opened["id"], "--user", user)
    worksheet = Worksheet.objects.get(pk=corrected["worksheet"])
    assert worksheet.incident_id == opened["id"] and worksheet.resource == "orders" and worksheet.shop == shop
    assert corrected["worksheets"] == [worksheet.pk]
    kinds = list(incident.steps.filter(kind=IncidentStep.Kind.RESPONSE).values_list("text", flat=True))
    assert any("Monitored wait" in t for t in kinds) and any(f"worksheet {worksheet.pk}" in t for t in kinds)


def test_notification_lists_are_set_by_an_admin_and_refuse_bad_addresses(admin_user, support_user):
    from incidents.models import NotificationList

    out = StringIO()
    call_command(
        "incidents", "list-set", "fulfilment", "sev1", "--users", support_user.username,
        "--emails", "Warehouse@Example.com, night-shift@example.com", "--user", admin_user.username, "--json", stdout=out,
    )  # fmt: skip
    state = json.loads(out.getvalue())
    assert state["recipients"] == sorted(["warehouse@example.com", "night-shift@example.com", support_user.email])
    one = NotificationList.objects.get(audience="fulfilment", severity="sev1")
    assert list(one.users.all()) == [support_user]
    assert AuditEntry.objects.filter(verb="incidents.notification_list").count() == 1

    with pytest.raises(CommandError, match="not an e-mail address: nope"):
        call_command("incidents", "list-set", "fulfilment", "sev1", "--emails", "nope", "--user", admin_user.username)
    assert NotificationList.objects.get(pk=one.pk).emails == "night-shift@example.com\nwarehouse@example.com"
    with pytest.raises(CommandError, match="Only admins"):
        call_command(
            "incidents", "list-set", "fulfilment", "sev1", "--emails", "a@example.com", "--user", support_user.username
        )

    listed = StringIO()
    call_command("incidents", "lists", "--json", stdout=listed)
    rows = {(r["audience"], r["severity"]): r for r in json.loads(listed.getvalue())}
    assert len(rows) == 16 and rows[("fulfilment", "sev1")]["users"] == [support_user.username]
    assert rows[("engineering", "sev1")]["recipients"] == []


def test_edit_repair_state_send_again_and_follow_ups(opened, support_user, admin_user, settings):
    incident_id = opened["id"]
    edited = run("edit", incident_id, "--public-title", "Orders delayed", "--advice", "Orders are safe.",
                 "--lead", admin_user.username, "--user", support_user.username)  # fmt: skip
    assert edited["lead"] == admin_user.username
    assert Incident.objects.get(pk=incident_id).public_title == "Orders delayed"
    refused("edit", incident_id, "--user", support_user.username, match="Nothing to change")

    record = run("repair-state", incident_id, "order", "1002", "needs_manual", "--note", "refunded by hand",
                 "--user", support_user.username)  # fmt: skip
    assert record == {"kind": "order", "key": "#1002", "shop": "north-shop.myshopify.com",
                      "repair_state": "needs_manual", "note": "refunded by hand"}  # fmt: skip
    states = {r["key"]: r["repair_state"] for r in run("show", incident_id)["affected"] if r["kind"] == "order"}
    assert states == {"#1001": "waiting", "#1002": "needs_manual", "#1003": "waiting"}  # kept by the refresh
    refused("repair-state", incident_id, "order", "#9999", "repaired", "--user", support_user.username,
            match="no affected order #9999")  # fmt: skip

    # A notification that failed is sent again once the mail server answers.
    from incidents.models import NotificationList

    NotificationList.objects.create(audience="engineering", severity="sev2", emails="oncall@example.com")
    settings.EMAIL_BACKEND = "tests.incidents.mail_backends.FailingBackend"
    run("update", incident_id, "--body", "Cause found", "--audience", "engineering", "--confirmed",
        "--user", support_user.username)  # fmt: skip
    failed = Incident.objects.get(pk=incident_id).notifications.get(status="failed")
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    again = run("send-again", incident_id, failed.pk, "--user", support_user.username)
    assert again["status"] == "sent" and again["recipients"] == ["oncall@example.com"]
    refused("send-again", incident_id, failed.pk, "--user", support_user.username, match="only a failed one")

    run("action", incident_id, "--kind", "remediation", "--title", "Idempotency key on order sync",
        "--owner", admin_user.username, "--user", support_user.username)  # fmt: skip
    run("action", incident_id, "--kind", "containment", "--title", "Pause", "--user", support_user.username)
    rows = run("follow-ups")
    assert [(r["incident"], r["title"], r["owner"]) for r in rows] == [
        (incident_id, "Idempotency key on order sync", admin_user.username)
    ]
    assert run("follow-ups", "--owner", support_user.username) == []
