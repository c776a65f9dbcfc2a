"""The replay pages: the dry run shown before anything runs, confirming it with a reason, the
approval by another admin, a plan that changed meanwhile, cancelling, the progress panel, the
event log's selection, who may do what, and query counts that do not grow with the data."""

import dataclasses
import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from console.models import AuditEntry
from integrations.eventlog.filters import EventFilterForm
from integrations.jobs.registry import JOB_TYPES
from integrations.models import Event, FulfillmentNotification, Job, ReplayItem, ReplayRequest
from integrations.replay import services
from integrations.replay.forms import filter_from_event_log
from tests.factories import EventFactory, ShopFactory, UserFactory
from tests.webhooks import order, receive

Status = ReplayRequest.Status
XSS = "<script>alert(1)</script>"


@pytest.fixture
def failed_paid(shop, drain, monkeypatch):
    """orders/paid events whose notify_fulfillment failed (the warehouse refused), processed."""

    def make(*orders) -> list[Event]:
        real = JOB_TYPES["notify_fulfillment"]

        def warehouse_down(event, payload):
            raise ValueError("warehouse API refused the order")

        monkeypatch.setitem(JOB_TYPES, "notify_fulfillment", dataclasses.replace(real, run=warehouse_down))
        events = [receive(shop, "orders/paid", payload) for payload in orders or [order(2001)]]
        drain()
        monkeypatch.setitem(JOB_TYPES, "notify_fulfillment", real)
        for event in events:
            event.refresh_from_db()
            assert event.status == Event.Status.FAILED
        return events

    return make


def dry_run(client, events, mode="stored") -> ReplayRequest:
    response = client.post(reverse("replays:new"), {"event_ids": [e.pk for e in events], "mode": mode})
    replay = ReplayRequest.objects.order_by("-id").first()
    assert response.status_code == 302
    assert response["Location"] == reverse("replays:detail", args=[replay.pk])
    return replay


def run(client, replay, reason="warehouse is back", plan_hash=None):
    return client.post(
        reverse("replays:run", args=[replay.pk]), {"reason": reason, "plan_hash": plan_hash or replay.plan_hash}
    )


def page_messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def progress(client, replay):
    return client.get(reverse("replays:progress", args=[replay.pk]), headers={"HX-Request": "true"})


# --- The dry run ------------------------------------------------------------------------------


def test_the_dry_run_page_shows_every_decision_and_reason_escaped(client_as, support_user, failed_paid):
    events = failed_paid(order(2001), order(2002, name=XSS, fulfillment_status="fulfilled"))
    client = client_as(support_user)
    replay = dry_run(client, events)
    assert replay.status == Status.PLANNED and replay.requested_by == support_user

    response = client.get(reverse("replays:detail", args=[replay.pk]))
    html = response.content.decode()
    assert response.status_code == 200
    assert "Dry run: nothing has run." in html
    assert XSS not in html and escape(XSS) in html
    rows = re.findall(r'<tr class="plan-(run|skip)">(.*?)</tr>', html, re.S)
    assert len(rows) == len(replay.plan) == 8
    for entry, (decision, row) in zip(replay.plan, rows, strict=True):
        assert decision == entry["decision"]
        assert escape(entry["reason"]) in row
        assert f">{entry['event_id']}</a>" in row and entry["webhook_id"] in row and entry["job"] in row
    assert "is already fulfilled" in html  # the skip of the fulfilled order, with its (escaped) name
    # The summary, the lane and the mode in words.
    assert "Jobs to run" in html and "“replay” lane" in html
    assert "Each job runs on the payload Shopify sent us" in html
    # Nothing ran: no items, the failed job is still failed, no audit entry.
    assert not ReplayItem.objects.exists()
    assert Job.objects.get(event=events[0], name="notify_fulfillment").status == Job.Status.FAILED
    assert not AuditEntry.objects.for_object(replay).exists()
    assert f'name="plan_hash" value="{replay.plan_hash}"' in html


def test_a_refetch_dry_run_says_so_in_words(client_as, support_user, failed_paid):
    client = client_as(support_user)
    replay = dry_run(client, failed_paid(), mode="refetch")
    assert replay.mode == ReplayRequest.Mode.REFETCH
    html = client.get(reverse("replays:detail", args=[replay.pk])).content.decode()
    assert "read again from Shopify" in html and "Refetch the record from Shopify first" in html


def test_the_plan_is_paginated_and_filtered_by_decision_and_kind(client_as, support_user, shop):
    entries = [
        {"event_id": 1, "webhook_id": f"wh-{i}", "shop": shop.domain, "topic": "orders/paid", "job": "sync_order",
         "decision": "run" if i % 5 == 0 else "skip", "reason": f"reason number {i:03d}",
         "kind": "run" if i % 5 == 0 else "succeeded"}
        for i in range(250)
    ]  # fmt: skip
    replay = ReplayRequest.objects.create(
        requested_label="x", kind="selection", selection={"event_ids": [1]}, plan=entries, plan_hash="a" * 64
    )
    client = client_as(support_user)
    url = reverse("replays:detail", args=[replay.pk])
    first = client.get(url).content.decode()
    assert first.count('<tr class="plan-') == 100 and "reason number 099" in first and "reason number 100" not in first
    last = client.get(url, {"page": 3}).content.decode()
    assert last.count('<tr class="plan-') == 50 and "reason number 249" in last
    runs = client.get(url, {"decision": "run"}).content.decode()
    assert runs.count('<tr class="plan-run">') == 50 and '<tr class="plan-skip">' not in runs
    skips = client.get(url, {"kind": "succeeded", "page": 2}).content.decode()
    assert skips.count('<tr class="plan-skip">') == 100
    assert "decision=&amp;kind=succeeded&amp;page=1" in skips or "kind=succeeded&amp;page=1" in skips
    assert client.get(url, {"page": "nope"}).status_code == 200  # a bad page number is ignored


# --- Running it -------------------------------------------------------------------------------


def test_a_run_without_a_reason_is_refused_and_nothing_runs(client_as, support_user, failed_paid, drain):
    events = failed_paid()
    client = client_as(support_user)
    replay = dry_run(client, events)
    response = run(client, replay, reason="  ")
    assert response.status_code == 302
    replay.refresh_from_db()
    assert replay.status == Status.PLANNED and replay.reason == ""
    followed = client.get(response["Location"])
    assert any("Not run: say why" in m for m in page_messages(followed))
    drain()
    assert not ReplayItem.objects.exists()
    assert Job.objects.get(event=events[0], name="notify_fulfillment").status == Job.Status.FAILED
    assert not FulfillmentNotification.objects.exists()


def test_a_run_goes_through_and_the_progress_panel_reaches_done(client_as, support_user, failed_paid, drain):
    events = failed_paid(order(2001), order(2002))
    client = client_as(support_user)
    replay = dry_run(client, events)
    response = run(client, replay)
    replay.refresh_from_db()
    assert replay.status == Status.QUEUED and replay.reason == "warehouse is back" and replay.items_total == 2
    followed = client.get(response["Location"])
    assert any("Queued: 2 events" in m for m in page_messages(followed))
    html = followed.content.decode()
    assert 'id="replay-progress"' in html and 'hx-trigger="every 1s"' in html
    assert '<progress class="replay-bar" value="0" max="2"' in html
    assert AuditEntry.objects.for_object(replay).filter(verb="replay.request").exists()
    assert "replay.request" in html  # the audit entry is shown on the page

    polling = progress(client, replay).content.decode()
    assert 'hx-trigger="every 1s"' in polling and "0 of 2 events" in polling
    assert 'id="replay-actions"' not in polling and 'id="items"' not in polling  # only the panel, while it runs
    assert 'hx-swap-oob="true"' in polling  # the status pill in the page head follows

    drain()
    replay.refresh_from_db()
    assert replay.status == Status.DONE
    final = progress(client, replay).content.decode()
    assert "hx-trigger" not in final  # the polling stops
    assert "Done" in final and "2 of 2 events" in final and "100%" in final
    assert '<progress class="replay-bar" value="2" max="2"' in final
    assert re.search(r'class="count-ran">\s*4\s*<', final)  # notify_fulfillment and the tag, for both
    assert re.search(r'class="count-failed">\s*0\s*<', final)
    assert replay.outcome in final
    # The last poll also updates, out of band, what may be done next and each event's result.
    assert '<section id="replay-actions"' in final and "Cancel replay" not in final
    assert re.search(r'id="items"[^>]*hx-swap-oob="true"', final) and "notify_fulfillment: succeeded" in final
    assert FulfillmentNotification.objects.count() == 2
    detail = client.get(reverse("replays:detail", args=[replay.pk])).content.decode()
    assert detail.count('<tr id="item-') == 2 and "notify_fulfillment: succeeded" in detail


def test_a_plan_that_changed_before_the_run_is_not_run_and_the_new_one_is_shown(
    client_as, support_user, failed_paid, drain
):
    events = failed_paid()
    client = client_as(support_user)
    replay = dry_run(client, events)
    old_hash = replay.plan_hash
    Job.objects.filter(event=events[0], name="notify_fulfillment").update(attempt_count=5)  # someone retried it
    response = run(client, replay, plan_hash=old_hash)
    assert response["Location"] == reverse("replays:detail", args=[replay.pk]) + "?changed=1"
    replay.refresh_from_db()
    assert replay.status == Status.PLANNED and replay.plan_hash != old_hash
    followed = client.get(response["Location"])
    assert any("Not run: the events changed since the dry run" in m for m in page_messages(followed))
    html = followed.content.decode()
    assert "The plan changed" in html and "failed after 5 attempts" in html
    assert f'value="{replay.plan_hash}"' in html
    drain()
    assert not ReplayItem.objects.exists()


def test_a_stale_form_cannot_run_another_plan(client_as, support_user, failed_paid):
    client = client_as(support_user)
    replay = dry_run(client, failed_paid())
    run(client, replay, plan_hash="f" * 64)
    replay.refresh_from_db()
    assert replay.status == Status.PLANNED and not ReplayItem.objects.exists()


def test_a_plan_with_nothing_to_run_offers_no_confirm(client_as, support_user, shop, drain):
    event = receive(shop, "orders/create", order(3001))
    drain()
    client = client_as(support_user)
    replay = dry_run(client, [event])
    html = client.get(reverse("replays:detail", args=[replay.pk])).content.decode()
    assert "Nothing would run" in html and "Run this replay" not in html


# --- Approval ---------------------------------------------------------------------------------


@pytest.fixture
def approval_always(settings):
    settings.REPLAY_APPROVAL_EVENTS = 0


def test_over_the_limits_a_support_run_waits_for_another_admin(
    client, support_user, admin_user, failed_paid, drain, approval_always
):
    events = failed_paid()
    client.force_login(support_user)
    replay = dry_run(client, events)
    assert replay.needs_approval
    detail = client.get(reverse("replays:detail", args=[replay.pk])).content.decode()
    assert "Request this replay" in detail and "events to replay (more than 0)" in detail
    response = run(client, replay)
    replay.refresh_from_db()
    assert replay.status == Status.AWAITING_APPROVAL
    assert any("Waiting for an admin's approval" in m for m in page_messages(client.get(response["Location"])))
    drain()
    assert not ReplayItem.objects.exists()  # nothing runs before the approval
    # Support may not approve, whatever the page shows.
    assert client.post(reverse("replays:approve", args=[replay.pk]), {"plan_hash": replay.plan_hash}).status_code == 403
    html = client.get(reverse("replays:detail", args=[replay.pk])).content.decode()
    assert "Approve and run" not in html and "Waiting for an admin&#x27;s approval" in html

    client.force_login(admin_user)
    html = client.get(reverse("replays:detail", args=[replay.pk])).content.decode()
    assert "Approve and run" in html and "warehouse is back" in html and support_user.username in html
    response = client.post(reverse("replays:approve", args=[replay.pk]), {"plan_hash": replay.plan_hash})
    replay.refresh_from_db()
    assert replay.status == Status.QUEUED and replay.approved_by == admin_user
    assert any("Approved" in m for m in page_messages(client.get(response["Location"])))
    drain()
    replay.refresh_from_db()
    assert replay.status == Status.DONE
    html = client.get(reverse("replays:list")).content.decode()
    assert re.search(rf'id="replay-{replay.pk}".*?{admin_user.username}', html, re.S)


def test_the_admin_who_asked_cannot_approve_but_a_second_admin_can(
    client, admin_user, approver_user, failed_paid, drain, approval_always
):
    client.force_login(admin_user)
    replay = dry_run(client, failed_paid())
    run(client, replay)
    replay.refresh_from_db()
    assert replay.status == Status.AWAITING_APPROVAL
    html = client.get(reverse("replays:detail", args=[replay.pk])).content.decode()
    assert "Approve and run" not in html and "Waiting for another admin" in html
    response = client.post(reverse("replays:approve", args=[replay.pk]), {"plan_hash": replay.plan_hash})
    replay.refresh_from_db()
    assert replay.status == Status.AWAITING_APPROVAL and replay.approved_by is None
    assert any("another admin must approve it" in m for m in page_messages(client.get(response["Location"])))

    client.force_login(approver_user)
    client.post(reverse("replays:approve", args=[replay.pk]), {"plan_hash": replay.plan_hash})
    replay.refresh_from_db()
    assert replay.status == Status.QUEUED and replay.approved_by == approver_user
    drain()
    replay.refresh_from_db()
    assert replay.status == Status.DONE


def test_a_change_between_request_and_approval_voids_it(
    client, support_user, admin_user, failed_paid, drain, approval_always
):
    events = failed_paid()
    client.force_login(support_user)
    replay = dry_run(client, events)
    run(client, replay)
    replay.refresh_from_db()
    requested_hash = replay.plan_hash
    # Meanwhile someone else fixed it: the job succeeded.
    Job.objects.filter(event=events[0], name="notify_fulfillment").update(status=Job.Status.SUCCEEDED)

    client.force_login(admin_user)
    response = client.post(reverse("replays:approve", args=[replay.pk]), {"plan_hash": requested_hash})
    assert response["Location"].endswith("?changed=1")
    replay.refresh_from_db()
    assert replay.status == Status.PLANNED and replay.approved_by is None and replay.plan_hash != requested_hash
    followed = client.get(response["Location"])
    assert any("Not approved: the events changed" in m for m in page_messages(followed))
    html = followed.content.decode()
    assert "The plan changed" in html and "already succeeded" in html
    assert AuditEntry.objects.for_object(replay).filter(verb="replay.voided").exists()
    drain()
    assert not ReplayItem.objects.exists()


# --- Cancelling, dry-running again ------------------------------------------------------------


def test_cancel_needs_a_reason_and_stops_the_replay(client_as, support_user, failed_paid, drain):
    client = client_as(support_user)
    replay = dry_run(client, failed_paid(order(2001), order(2002)))
    run(client, replay)
    url = reverse("replays:cancel", args=[replay.pk])
    client.post(url, {"reason": ""})
    replay.refresh_from_db()
    assert replay.status == Status.QUEUED
    response = client.post(url, {"reason": "wrong events"})
    replay.refresh_from_db()
    assert replay.status == Status.CANCELLED and "wrong events" in replay.outcome
    assert set(replay.items.values_list("status", flat=True)) == {ReplayItem.Status.CANCELLED}
    assert any("Cancelled" in m for m in page_messages(client.get(response["Location"])))
    drain()
    assert not FulfillmentNotification.objects.exists()
    final = progress(client, replay).content.decode()
    assert "hx-trigger" not in final and "Cancelled" in final
    html = client.get(reverse("replays:detail", args=[replay.pk])).content.decode()
    assert "Cancel replay" not in html and "replay.cancel" in html
    # Cancelling again says why not.
    response = client.post(url, {"reason": "again"})
    assert any("already cancelled" in m for m in page_messages(client.get(response["Location"])))


def test_a_dry_run_can_be_cancelled_before_it_runs(client_as, support_user, failed_paid):
    client = client_as(support_user)
    replay = dry_run(client, failed_paid())
    client.post(reverse("replays:cancel", args=[replay.pk]), {"reason": "not needed"})
    replay.refresh_from_db()
    assert replay.status == Status.CANCELLED


def test_dry_run_again_makes_a_new_plan_of_the_same_selection(client_as, support_user, failed_paid):
    client = client_as(support_user)
    events = failed_paid()
    replay = dry_run(client, events, mode="refetch")
    response = client.post(reverse("replays:replan", args=[replay.pk]))
    again = ReplayRequest.objects.order_by("-id").first()
    assert again.pk != replay.pk and response["Location"] == reverse("replays:detail", args=[again.pk])
    assert again.selection == replay.selection and again.mode == "refetch" and again.status == Status.PLANNED
    replay.refresh_from_db()
    assert replay.status == Status.PLANNED


# --- Starting one: the event log, the list page -------------------------------------------------


def test_the_event_log_offers_a_checkbox_per_event_and_the_selection_form(client_as, support_user, failed_paid):
    events = failed_paid(order(2001), order(2002))
    client = client_as(support_user)
    html = client.get(reverse("events:list"), {"status": "failed", "topic": "orders/paid"}).content.decode()
    for event in events:
        assert re.search(
            rf'<input type="checkbox" class="replay-pick" name="event_ids" value="{event.pk}" form="replay-selection" '
            rf'aria-label="Select event {event.pk} \(orders/paid, failed\) for a replay">',
            html,
        )
    assert 'id="replay-selection"' in html and "Dry-run a replay of the selected events" in html
    assert "Dry-run a replay of every matching event" in html
    assert 'name="filter" value="status=failed&amp;topic=orders/paid"' in html

    # The selected events...
    response = client.post(
        reverse("replays:new"),
        {"event_ids": [events[0].pk], "scope": "selected", "filter": "status=failed&topic=orders/paid",
         "mode": "stored", "next": "/events/?status=failed"},
    )  # fmt: skip
    one = ReplayRequest.objects.order_by("-id").first()
    assert response["Location"] == reverse("replays:detail", args=[one.pk])
    assert one.selection == {"event_ids": [events[0].pk]} and one.kind == "one"
    # ...or every event matching the filters.
    client.post(
        reverse("replays:new"),
        {"event_ids": [events[0].pk], "scope": "filter", "filter": "status=failed&topic=orders/paid",
         "mode": "stored"},
    )  # fmt: skip
    matching = ReplayRequest.objects.order_by("-id").first()
    assert matching.kind == "filter" and matching.selection == {"filter": "status=failed&topic=orders/paid"}
    assert matching.summary["events"] == 2


def test_nothing_selected_goes_back_to_the_event_log_with_a_message(client_as, support_user, failed_paid):
    failed_paid()
    client = client_as(support_user)
    response = client.post(
        reverse("replays:new"), {"scope": "selected", "mode": "stored", "next": "/events/?status=failed"}
    )
    assert response["Location"] == "/events/?status=failed"
    assert any("Nothing selected" in m for m in page_messages(client.get(response["Location"])))
    assert not ReplayRequest.objects.exists()
    # An address elsewhere is not followed.
    response = client.post(reverse("replays:new"), {"scope": "selected", "next": "https://evil.example/"})
    assert response["Location"] == reverse("replays:list")


def test_a_bad_filter_is_explained_and_kept_on_the_list_page(client_as, support_user):
    client = client_as(support_user)
    response = client.post(
        reverse("replays:new"), {"filter": "colour=red", "mode": "refetch", "next": reverse("replays:list")}
    )
    assert response["Location"].startswith(reverse("replays:list") + "?")
    followed = client.get(response["Location"])
    assert any("unknown filter key 'colour'" in m for m in page_messages(followed))
    html = followed.content.decode()
    assert 'value="colour=red"' in html and re.search(r'value="refetch"[^>]*checked', html)
    assert not ReplayRequest.objects.exists()


def test_a_filter_that_matches_nothing_says_so(client_as, support_user, shop):
    client = client_as(support_user)
    response = client.post(reverse("replays:new"), {"filter": f"shop={shop.domain}&status=failed", "mode": "stored"})
    assert any("no such events" in m for m in page_messages(client.get(response["Location"])))


def test_the_event_page_offers_replay_this_event(client_as, support_user, failed_paid):
    event = failed_paid()[0]
    client = client_as(support_user)
    html = client.get(reverse("events:detail", args=[event.pk])).content.decode()
    assert "Replay this event" in html and f'name="event_ids" value="{event.pk}"' in html
    response = client.post(reverse("replays:new"), {"event_ids": event.pk, "mode": "refetch"})
    replay = ReplayRequest.objects.get()
    assert response["Location"] == reverse("replays:detail", args=[replay.pk]) and replay.mode == "refetch"


def test_without_the_right_to_replay_the_event_log_offers_no_replay(client, failed_paid):
    event = failed_paid()[0]
    viewer = UserFactory(username="only-views")
    viewer.user_permissions.add(Permission.objects.get(codename="view_event"))
    client.force_login(viewer)
    html = client.get(reverse("events:list")).content.decode()
    assert f'id="event-{event.pk}"' in html
    assert "replay-selection" not in html and 'name="event_ids"' not in html
    html = client.get(reverse("events:detail", args=[event.pk])).content.decode()
    assert "Replay this event" not in html


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, "status=failed"),
        ({"topic": "orders"}, "topic=orders"),
        ({"topic": "orders/paid", "direction": "inbound"}, "topic=orders/paid"),
        ({"received_from": "2026-05-04T10:00", "received_to": "2026-05-05T10:00", "status": "failed"},
         "since=2026-05-04T10:00:00Z&status=failed&until=2026-05-05T10:00:00Z"),
        ({"status": "held"}, "status=held"),
        ({}, ""),  # no filter: not every event there is
        ({"q": "wh-1", "status": "failed"}, ""),  # the search box has no replay equivalent
        ({"topic": "orders/pa"}, ""),  # a beginning of a topic, not a topic
        ({"direction": "outbound", "status": "failed"}, ""),
        ({"status": "rejected"}, ""),
        ({"status": "failed", "received_from": "garbage"}, ""),  # invalid filters: not what is shown
    ],
)  # fmt: skip
def test_event_log_filters_convert_to_a_replay_filter(db, params, expected):
    from integrations.eventlog import selectors

    form = EventFilterForm(params or None)
    kind = selectors.build_log_query(form.filters()).kind
    assert filter_from_event_log(form, kind) == expected


def test_event_log_shop_filter_converts_to_the_shop_domain(db):
    shop = ShopFactory(domain="north.myshopify.com")
    form = EventFilterForm({"shop": shop.domain, "status": "failed"})
    assert filter_from_event_log(form, "events") == "shop=north.myshopify.com&status=failed"


def test_the_list_shows_each_replay_and_filters_by_status(client_as, support_user, failed_paid):
    client = client_as(support_user)
    events = failed_paid()
    planned = dry_run(client, events)
    queued = dry_run(client, events)
    run(client, queued, reason=f"because {XSS}")
    html = client.get(reverse("replays:list")).content.decode()
    assert html.index(f'id="replay-{queued.pk}"') < html.index(f'id="replay-{planned.pk}"')  # newest first
    assert escape(f"because {XSS}") in html and XSS not in html
    assert "Queued for the worker" in html and "0/1 (0%)" in html and f"event {events[0].pk}" in html
    assert support_user.username in html and "<time datetime=" in html and 'class="rel"' in html
    only = client.get(reverse("replays:list"), {"status": "planned"}).content.decode()
    assert f'id="replay-{planned.pk}"' in only and f'id="replay-{queued.pk}"' not in only
    assert "Dry-run a replay by filter" in html and "<code>since</code>" in html


def test_the_empty_list_says_how_to_start_one(client_as, support_user):
    html = client_as(support_user).get(reverse("replays:list")).content.decode()
    assert "No replays yet" in html and "manage.py events replay" in html and "--dry-run" in html


# --- Who may do what --------------------------------------------------------------------------


def test_customer_service_gets_403_everywhere(client, service_user, support_user, failed_paid):
    client.force_login(support_user)
    replay = dry_run(client, failed_paid())
    client.force_login(service_user)
    for name in ("list", "detail", "progress"):
        url = reverse(f"replays:{name}", args=[] if name == "list" else [replay.pk])
        assert client.get(url).status_code == 403, name
    assert client.post(reverse("replays:new"), {"event_ids": [1], "mode": "stored"}).status_code == 403
    for name in ("run", "approve", "cancel", "replan"):
        response = client.post(reverse(f"replays:{name}", args=[replay.pk]), {"reason": "x", "plan_hash": "y"})
        assert response.status_code == 403, name
    replay.refresh_from_db()
    assert replay.status == Status.PLANNED and ReplayRequest.objects.count() == 1


def test_actions_are_post_only(client_as, support_user, failed_paid):
    client = client_as(support_user)
    replay = dry_run(client, failed_paid())
    for name in ("run", "approve", "cancel", "replan"):
        assert client.get(reverse(f"replays:{name}", args=[replay.pk])).status_code == 405
    assert client.get(reverse("replays:new")).status_code == 405


# --- Query counts -------------------------------------------------------------------------------


def _queries(client, url, **params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params).status_code == 200
    return len(ctx.captured_queries)


def _replay_with(n_entries: int, *, status=Status.PLANNED, items=0, requested_by=None, approved_by=None):
    shop = ShopFactory()
    events = [EventFactory(shop=shop, status=Event.Status.PROCESSED) for _ in range(max(items, 1))]
    plan = [
        {"event_id": events[i % len(events)].pk, "webhook_id": f"wh-{i}", "shop": shop.domain,
         "topic": "orders/paid", "job": "sync_order", "decision": "run", "reason": "never ran", "kind": "run"}
        for i in range(n_entries)
    ]  # fmt: skip
    replay = ReplayRequest.objects.create(
        requested_by=requested_by, requested_label="someone", kind="selection", reason="r", status=status,
        selection={"event_ids": [e.pk for e in events]}, plan=plan, plan_hash="b" * 64,
        summary={"events": len(events), "jobs_to_run": n_entries}, approved_by=approved_by,
        items_total=items,
    )  # fmt: skip
    ReplayItem.objects.bulk_create(
        [ReplayItem(replay=replay, event=event, shop=shop, jobs=["sync_order"]) for event in events[:items]]
    )
    return replay


def test_list_queries_do_not_grow_with_replays(client_as, support_user, admin_user, approver_user):
    client = client_as(support_user)
    _replay_with(1, status=Status.QUEUED, requested_by=admin_user, approved_by=approver_user)
    client.get(reverse("replays:list"))  # warm the per-process caches
    one = _queries(client, reverse("replays:list"))
    for _ in range(30):
        _replay_with(3, status=Status.QUEUED, requested_by=admin_user, approved_by=approver_user)
    assert _queries(client, reverse("replays:list")) == one
    assert _queries(client, reverse("replays:list"), status="queued") == one


def test_detail_queries_do_not_grow_with_the_plan_or_the_items(client_as, support_user):
    client = client_as(support_user)
    small = _replay_with(1, status=Status.RUNNING, items=1)
    big = _replay_with(20_000, status=Status.RUNNING, items=150)
    client.get(reverse("replays:detail", args=[small.pk]))  # warm the per-process caches (content types)
    counts = {replay.pk: _queries(client, reverse("replays:detail", args=[replay.pk])) for replay in (small, big)}
    assert counts[small.pk] == counts[big.pk]
    assert _queries(client, reverse("replays:detail", args=[big.pk]), page=200, items_page=2) == counts[big.pk]
    assert _queries(client, reverse("replays:progress", args=[big.pk])) == _queries(
        client, reverse("replays:progress", args=[small.pk])
    )
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("replays:progress", args=[big.pk]), headers={"HX-Request": "true"})
    assert not any('."plan"' in query["sql"] for query in ctx.captured_queries)  # polled every second: no plan
    html = client.get(reverse("replays:detail", args=[big.pk])).content.decode()
    assert html.count('<tr class="plan-run">') == 100 and "page 1 of 200" in html
    assert html.count('<tr id="item-') == 100 and "page 1 of 2" in html


def test_a_planned_replay_detail_needs_few_queries(client_as, support_user, django_assert_max_num_queries):
    client = client_as(support_user)
    replay = _replay_with(5_000)
    with django_assert_max_num_queries(12):
        client.get(reverse("replays:detail", args=[replay.pk]))


def test_times_are_absolute_utc_beside_relative(client_as, support_user):
    replay = _replay_with(1)
    ReplayRequest.objects.filter(pk=replay.pk).update(created_at=datetime(2026, 5, 4, 10, 0, tzinfo=UTC))
    html = client_as(support_user).get(reverse("replays:list")).content.decode()
    assert "2026-05-04 10:00:00 UTC" in html


def test_services_error_reaches_the_page_as_a_message(client_as, support_user, failed_paid):
    """A ReplayError from the service (here: running what is no longer a dry run) is shown."""
    client = client_as(support_user)
    replay = dry_run(client, failed_paid())
    services.cancel_replay(replay, by=support_user, reason="stop")
    response = run(client, replay)
    assert any("only a dry run can be run" in m for m in page_messages(client.get(response["Location"])))
