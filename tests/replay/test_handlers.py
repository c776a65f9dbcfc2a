"""Handler switches: disable a handler from the page or the command line, see its events held
(their other jobs run), enable it again and replay exactly the held events, once."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, ManagementUtility, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from console.models import AuditEntry
from integrations.jobs.registry import JOB_TYPES
from integrations.models import Attempt, Event, HandlerSwitch, Job, OutboundCall
from integrations.replay import services
from integrations.replay.selection import for_filter
from integrations.replay.switches import held_events, held_filter, set_handler
from tests.factories import ShopFactory, UserFactory
from tests.webhooks import order, receive

HANDLERS = reverse("replays:handlers")
SWITCH = reverse("replays:handler_switch")
JOB = "tag_buyer"  # a push of its own: nothing else on orders/paid waits for it


@pytest.fixture
def shops(db):
    return ShopFactory(domain="north.myshopify.com"), ShopFactory(domain="south.myshopify.com")


def _post(client, action, shop, reason="buyer tags are wrong, fixing the mapping", job=JOB):
    return client.post(SWITCH, {"job": job, "action": action, "shop": shop, "reason": reason}, follow=True)


def _jobs(event) -> dict[str, str]:
    return dict(Job.objects.filter(event=event).values_list("name", "status"))


def _run(command, *args) -> str:
    out = StringIO()
    call_command("handlers", command, *args, stdout=out)
    return out.getvalue()


def test_disable_for_one_shop_holds_its_job_and_enable_lists_what_to_replay(
    client_as, support_user, shops, drain, django_capture_on_commit_callbacks
):
    north, south = shops
    client = client_as(support_user)

    # Given: support disables tag_buyer for north from the page.
    page = _post(client, "disable", north.domain)
    assert page.status_code == 200
    assert f"Handler {JOB} disabled for {north.domain}" in page.content.decode()
    entry = AuditEntry.objects.get(verb="handler.disable")
    assert entry.actor == support_user
    assert entry.after["job"] == JOB
    assert entry.after["shop"] == north.domain
    assert entry.reason == "buyer tags are wrong, fixing the mapping"

    # When: a paid order arrives for each shop and is processed.
    held = receive(north, "orders/paid", order(1001))
    other = receive(south, "orders/paid", order(2002, customer={"id": 8002}))
    drain()
    held.refresh_from_db()
    other.refresh_from_db()

    # Then: north's event is held with only tag_buyer held; south's runs everything.
    assert held.status == Event.Status.HELD
    assert _jobs(held) == {
        "sync_order": "succeeded",
        "notify_fulfillment": "succeeded",
        "tag_notified_order": "succeeded",
        JOB: "held",
    }
    assert other.status == Event.Status.PROCESSED
    assert set(_jobs(other).values()) == {"succeeded"}
    assert not OutboundCall.objects.filter(shop=north, idempotency_key__startswith="tag_buyer:").exists()

    # The page shows where it is disabled, and the held event (not yet replayable).
    html = client.get(HANDLERS).content.decode()
    card = html[html.index(f'id="handler-{JOB}"') :]
    card = card[: card.index("</section>")]
    assert "disabled for 1 shop" in card
    assert north.domain in card
    assert "still disabled there" in card

    # When: it is enabled again from the page.
    page = _post(client, "enable", north.domain, reason="mapping fixed")
    text = page.content.decode()
    filter_text = held_filter(JOB, north)
    assert filter_text == f"held_job={JOB}&shop={north.domain}"
    assert "1 event was held while it was disabled" in text
    assert f"filter {filter_text}".replace("&", "&amp;") in text
    assert f"{reverse('events:list')}?status=held&amp;shop={north.domain}&amp;topic=orders%2Fpaid" in text
    assert AuditEntry.objects.get(verb="handler.enable").after["held_events"] == 1
    # The page offers a dry run of exactly those events (posted to replays:new).
    card = text[text.index(f'id="handler-{JOB}"') :]
    card = card[: card.index("</section>")]
    assert f'action="{reverse("replays:new")}"' in card
    assert f'name="filter" value="{filter_text.replace("&", "&amp;")}"' in card
    assert 'name="mode" value="stored"' in card
    assert "running" in card

    # Then: a dry run of that filter runs tag_buyer only, and the replay runs it once.
    replay = services.check_replay(selection=for_filter(filter_text), by=support_user)
    runs = [(e["event_id"], e["job"]) for e in replay.plan if e["decision"] == "run"]
    assert runs == [(held.pk, JOB)]
    with django_capture_on_commit_callbacks(execute=True):
        replay = services.do_replay(replay, by=support_user, reason="mapping fixed", plan_hash=replay.plan_hash)
    drain()
    held.refresh_from_db()
    assert held.status == Event.Status.PROCESSED
    assert set(_jobs(held).values()) == {"succeeded"}
    job = Job.objects.get(event=held, name=JOB)
    assert Attempt.objects.filter(job=job).count() == 1
    assert OutboundCall.objects.filter(shop=north, idempotency_key="tag_buyer:7001:buyer").count() == 1
    assert Attempt.objects.filter(job__event=held).count() == 4  # the three others ran once, live
    assert not held_events(JOB, north).exists()


def test_disable_for_all_shops_holds_every_shops_events(client_as, admin_user, shops, drain):
    north, south = shops
    page = _post(client_as(admin_user), "disable", "*")
    assert f"Handler {JOB} disabled for all shops" in page.content.decode()
    events = [receive(north, "orders/paid", order(1001)), receive(south, "orders/paid", order(2002))]
    drain()
    for event in events:
        event.refresh_from_db()
        assert event.status == Event.Status.HELD
        assert _jobs(event)[JOB] == "held"
    assert held_events(JOB).count() == 2
    html = client_as(admin_user).get(HANDLERS).content.decode()
    assert "disabled for all shops" in html

    # Enabled for every shop again: one dry run can cover every shop's held events.
    page = _post(client_as(admin_user), "enable", "*", reason="fixed everywhere")
    text = page.content.decode()
    assert "2 events were held while it was disabled" in text
    card = text[text.index(f'id="handler-{JOB}"') :]
    card = card[: card.index("</section>")]
    assert f'name="filter" value="held_job={JOB}"' in card
    assert "Dry-run the replay of 2 held events in every shop" in card
    for shop in shops:
        assert f'value="held_job={JOB}&amp;shop={shop.domain}"' in card


def test_enabling_one_shop_while_disabled_for_all_is_refused(client_as, support_user, shops):
    north, _south = shops
    client = client_as(support_user)
    _post(client, "disable", "*")
    page = _post(client, "enable", north.domain, reason="only north is fine")
    assert "Not changed" in page.content.decode() and "disabled for all shops" in page.content.decode()
    assert not HandlerSwitch.objects.filter(shop=north).exists()


def test_a_reason_is_required(client_as, support_user, shops):
    page = _post(client_as(support_user), "disable", shops[0].domain, reason="  ")
    assert "Not changed" in page.content.decode()
    assert not HandlerSwitch.objects.exists()
    assert not AuditEntry.objects.filter(verb__startswith="handler.").exists()


def test_an_unknown_job_is_refused_with_the_services_reason(client_as, support_user, shops):
    page = _post(client_as(support_user), "disable", shops[0].domain, job="no_such_job")
    assert "Not changed: no job named &#x27;no_such_job&#x27;" in page.content.decode()
    assert not HandlerSwitch.objects.exists()


def test_customer_service_may_not_switch_or_look(client_as, service_user, shops):
    client = client_as(service_user)
    response = client.post(SWITCH, {"job": JOB, "action": "disable", "shop": "*", "reason": "x"})
    assert response.status_code == 403
    assert not HandlerSwitch.objects.exists()
    assert client.get(HANDLERS).status_code == 403


def test_the_switch_view_is_post_only(client_as, support_user):
    assert client_as(support_user).get(SWITCH).status_code == 405


def test_the_page_lists_every_job_type(client_as, support_user, shops):
    html = client_as(support_user).get(HANDLERS).content.decode()
    for name in JOB_TYPES:
        assert f'id="handler-{name}"' in html
        assert f'href="{reverse("replays:runbook")}#job-{name}"' in html
    for shop in shops:
        assert f'<option value="{shop.domain}">' in html
    assert "<script" not in html.split("</head>", 1)[1]
    assert "style=" not in html


def test_the_page_query_count_is_constant(client_as, support_user, shops):
    client = client_as(support_user)
    for shop in shops:
        set_handler(job=JOB, shop=shop, disabled=True, by=support_user, reason="r")
    set_handler(job="sync_order", shop=None, disabled=True, by=support_user, reason="r")
    client.get(HANDLERS)
    with CaptureQueriesContext(connection) as few:
        client.get(HANDLERS)
    for n in range(5):
        shop = ShopFactory()
        set_handler(job=JOB, shop=shop, disabled=True, by=support_user, reason=f"r{n}")
        set_handler(job="sync_product", shop=shop, disabled=n % 2 == 0, by=support_user, reason=f"r{n}")
    with CaptureQueriesContext(connection) as many:
        client.get(HANDLERS)
    assert len(many) == len(few)


# --- the command ----------------------------------------------------------------------------


def test_command_disable_enable_and_list(shops, drain, support_user):
    north, _south = shops
    out = json.loads(_run("disable", JOB, "--shop", north.domain, "--reason", "bad tags", "--json"))
    assert out["job"] == JOB
    assert out["shop"] == north.domain
    assert out["disabled"] is True
    assert out["by"] == "command line"
    entry = AuditEntry.objects.get(verb="handler.disable")
    assert entry.actor is None
    assert entry.actor_label == "system"  # the audit trail's word for a command without --user

    receive(north, "orders/paid", order(1001))
    drain()

    listed = {row["job"]: row for row in json.loads(_run("list", "--json"))}
    assert listed[JOB]["disabled_for"] == [north.domain]
    assert listed[JOB]["held_events"] == 1
    assert listed[JOB]["held_by_shop"] == {north.domain: 1}
    assert listed["sync_order"]["disabled_for"] == []
    assert "disabled for: north.myshopify.com  held=1" in _run("list")

    text = _run("enable", JOB, "--shop", north.domain, "--reason", "fixed", "--user", support_user.username)
    filter_text = held_filter(JOB, north)
    assert "1 event was held while it was disabled" in text
    assert f'manage.py events replay --filter "{filter_text}" --dry-run' in text
    assert AuditEntry.objects.get(verb="handler.enable").actor == support_user

    # The printed command is the dry run: it plans tag_buyer for the held event.
    dry = _run_events_replay(filter_text)
    assert dry["status"] == "planned"
    assert [(e["job"], e["decision"]) for e in dry["plan"] if e["decision"] == "run"] == [(JOB, "run")]


def _run_events_replay(filter_text: str) -> dict:
    out = StringIO()
    call_command("events", "replay", "--filter", filter_text, "--dry-run", "--json", stdout=out)
    return json.loads(out.getvalue())


def test_command_enable_as_json_gives_the_count_filter_and_command(shops, drain):
    north, _south = shops
    _run("disable", JOB, "--reason", "every shop")
    receive(north, "orders/paid", order(1001))
    drain()
    out = json.loads(_run("enable", JOB, "--reason", "fixed", "--json"))
    assert out["held_events"] == 1
    assert out["replay_filter"] == f"held_job={JOB}"
    assert out["dry_run_command"] == f'manage.py events replay --filter "held_job={JOB}" --dry-run'
    assert out["still_disabled_for"] == []
    assert out["was_disabled"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("disable", "no_such_job", "--reason", "r"), "No job named 'no_such_job'"),
        (("disable", JOB, "--shop", "nowhere.myshopify.com", "--reason", "r"), "No shop nowhere.myshopify.com"),
        (("disable", JOB), "--reason"),
        (("enable", JOB, "--reason", "   "), "--reason"),
        (("disable", JOB, "--reason", "r", "--user", "nobody"), "No active user 'nobody'"),
        (("disable", JOB, "--reason", "r", "--user", "casey-service"), "may not do this"),
    ],
)
def test_command_refuses(db, service_user, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("handlers", *args)
    assert not HandlerSwitch.objects.exists()


def test_command_exit_status_is_non_zero_on_refusal(db):
    with pytest.raises(SystemExit) as exit_info:
        ManagementUtility(["manage.py", "handlers", "disable", "no_such_job", "--reason", "r"]).execute()
    assert exit_info.value.code == 1


def test_command_user_must_be_active(db):
    UserFactory(username="gone", is_active=False)
    with pytest.raises(CommandError, match="No active user"):
        call_command("handlers", "disable", JOB, "--reason", "r", "--user", "gone")


def test_disabling_a_job_others_wait_on_holds_the_event_and_its_replay_runs_both(shop, drain, support_user):
    from integrations.models import Event, FulfillmentNotification, Job, OutboundCall
    from integrations.replay import services
    from integrations.replay.selection import for_filter
    from tests.webhooks import order, receive

    set_handler(job="notify_fulfillment", shop=shop, disabled=True, by=support_user, reason="warehouse migration")
    paid = receive(shop, "orders/paid", order())
    drain()
    paid.refresh_from_db()
    # tag_notified_order waits on the notification: the event is held, not left retrying.
    assert paid.status == Event.Status.HELD
    assert dict(Job.objects.filter(event=paid).values_list("name", "status"))["notify_fulfillment"] == "held"
    set_handler(job="notify_fulfillment", shop=shop, disabled=False, by=support_user, reason="migration done")
    assert list(held_events("notify_fulfillment", shop)) == [paid]

    replay = services.check_replay(selection=for_filter(held_filter("notify_fulfillment", shop)), by=support_user)
    assert replay.summary["jobs_to_run"] == 2
    services.do_replay(replay, by=support_user, reason="held during the migration", plan_hash=replay.plan_hash)
    drain()
    paid.refresh_from_db()
    assert paid.status == Event.Status.PROCESSED
    assert FulfillmentNotification.objects.count() == 1
    assert OutboundCall.objects.filter(operation="order.add_tags").count() == 1


def test_a_shop_cannot_be_enabled_while_the_handler_is_off_for_all_shops(shop, support_user):
    from integrations.replay.switches import SwitchError

    set_handler(job="tag_buyer", shop=None, disabled=True, by=support_user, reason="all off")
    with pytest.raises(SwitchError, match="disabled for all shops"):
        set_handler(job="tag_buyer", shop=shop, disabled=False, by=support_user, reason="just this one")
