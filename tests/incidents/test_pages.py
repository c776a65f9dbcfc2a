"""Support's incident pages through the test client: opening one from failing events or a failing
outbound call (the rubric prefilled from what the links measure), the severity again and its
override, the status workflow and the resolve gates, the one-click responses, actions, updates,
notifications (a failing mail backend is shown), the summary, and bounded query counts."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from incidents import services
from incidents.models import (
    AffectedRecord,
    Incident,
    IncidentAction,
    IncidentStep,
    IncidentUpdate,
    Notification,
    NotificationList,
    SeverityChange,
)
from integrations.models import Event, ReplayRequest
from tests.factories import IncidentFactory, OutboundCallFactory, ShopFactory, UserFactory
from tests.incidents.conftest import make_order_event

pytestmark = pytest.mark.django_db


def filled_in(response) -> dict:
    """What a browser would submit for the form on the page, as prefilled (its initial values)."""
    form = response.context["form"]
    data = {}
    for bound in form:
        value = bound.value()
        if bound.field.__class__.__name__ == "BooleanField":
            if value:
                data[bound.name] = "on"
        elif value not in (None, ""):
            data[bound.name] = value
    return data


def message_texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def opened(support_user, *, events=(), calls=(), answers=None, title="Orders not syncing") -> Incident:
    return services.open_incident(
        title=title, by=support_user, event_ids=[e.pk for e in events], call_ids=[c.pk for c in calls], answers=answers
    )


def detail(incident) -> str:
    return reverse("incidents:detail", args=[incident.pk])


# --- Opening ------------------------------------------------------------------------------------


def test_open_from_a_filter_of_failing_events_prefills_and_creates_with_links(
    client_as, support_user, shop, failing_orders
):
    make_order_event(shop, 1004, status=Event.Status.PROCESSED)  # not failing: not linked
    other = ShopFactory(domain="south-shop.myshopify.com")
    make_order_event(other, 2001)  # another shop: not linked
    client = client_as(support_user)
    text = f"shop={shop.domain}&topic=orders/create&status=failed"
    page = client.get(reverse("incidents:new") + "?" + urlencode({"filter": text}))
    assert page.status_code == 200
    html = page.content.decode()
    assert "300.00 EUR" in html and shop.domain in html and "Inbound" in html
    initial = page.context["form"].initial
    assert initial["orders"] == "delayed" and initial["fulfilment_affected"] is True
    assert initial["records"] >= 3 and initial["shops"] == 1 and initial["events_filter"] == text
    assert page.context["candidate"]["event_count"] == 3
    assert "autofocus" in html and 'type="submit"' in html

    data = filled_in(page)
    data.update(title="Order sync failing for north", public_title="Some orders are slow to appear")
    response = client.post(reverse("incidents:new"), data)
    incident = Incident.objects.get()
    assert response.status_code == 302 and response["Location"] == detail(incident)
    assert sorted(incident.events.values_list("id", flat=True)) == sorted(e.pk for e in failing_orders)
    assert list(incident.shops.all()) == [shop] and incident.direction == "inbound"
    # delayed orders with fulfilment timing affected: SEV2 by the rubric, its reasoning kept
    assert incident.severity == "sev2" and not incident.severity_overridden
    assert "fulfilment timing is affected" in incident.severity_reasoning
    assert incident.rubric["orders"] == "delayed" and incident.rubric["fulfilment_affected"] is True
    assert set(incident.affected.filter(kind="order").values_list("key", flat=True)) == {"#1001", "#1002", "#1003"}
    assert any("opened as SEV2" in m for m in message_texts(response))


def test_an_unencoded_filter_in_the_query_string_is_read_whole(client_as, support_user, shop, failing_orders):
    page = client_as(support_user).get(
        reverse("incidents:new") + f"?filter=shop={shop.domain}&topic=orders/create&status=failed"
    )
    assert page.context["candidate"]["event_count"] == 3
    assert page.context["form"].initial["events_filter"] == f"shop={shop.domain}&topic=orders/create&status=failed"


def test_a_filter_that_cannot_be_read_is_shown_and_nothing_is_opened(client_as, support_user, shop, failing_orders):
    client = client_as(support_user)
    page = client.get(reverse("incidents:new") + "?" + urlencode({"filter": "shop=nowhere.myshopify.com"}))
    assert "The event filter cannot be used" in page.content.decode()
    data = filled_in(page)
    data["title"] = "Something"
    response = client.post(reverse("incidents:new"), data)
    assert response.status_code == 200 and "The event filter cannot be used" in response.content.decode()
    assert response.context["form"]["title"].value() == "Something"  # nothing lost
    assert not Incident.objects.exists()


def test_open_from_one_event_and_from_a_list(client_as, support_user, failing_orders):
    client = client_as(support_user)
    one = client.get(reverse("incidents:new") + f"?event={failing_orders[0].pk}")
    assert one.context["candidate"]["event_count"] == 1 and one.context["form"].initial["event_ids"] == [
        failing_orders[0].pk
    ]
    ids = ",".join(str(e.pk) for e in failing_orders[:2])
    two = client.get(reverse("incidents:new") + f"?events={ids}")
    assert two.context["candidate"]["event_ids"] == [e.pk for e in failing_orders[:2]]
    assert client.get(reverse("incidents:new") + "?event=999999").status_code == 404


def test_open_from_a_failing_outbound_call_is_outbound(client_as, support_user, shop):
    call = OutboundCallFactory(shop=shop, status="failed", reason="Shopify refused the tags")
    client = client_as(support_user)
    page = client.get(reverse("incidents:new") + f"?call={call.pk}")
    assert page.status_code == 200
    assert page.context["form"].initial["direction"] == "outbound"
    assert page.context["measured"].failed_calls == 1
    data = filled_in(page)
    data["title"] = "Tagging orders fails"
    response = client.post(reverse("incidents:new"), data)
    incident = Incident.objects.get()
    assert response.status_code == 302
    assert incident.direction == "outbound" and list(incident.outbound_calls.all()) == [call]
    assert list(incident.shops.all()) == [shop]


def test_open_from_a_calls_filter(client_as, support_user, shop):
    calls = [OutboundCallFactory(shop=shop, status="failed") for _ in range(2)]
    OutboundCallFactory(shop=shop, status="succeeded")
    client = client_as(support_user)
    text = f"shop={shop.domain}&operation=order.add_tags&status=failed"
    page = client.get(reverse("incidents:new") + "?" + urlencode({"calls_filter": text}))
    assert page.context["candidate"]["call_count"] == 2
    data = filled_in(page)
    data["title"] = "Tags"
    client.post(reverse("incidents:new"), data)
    assert sorted(Incident.objects.get().outbound_calls.values_list("id", flat=True)) == [c.pk for c in calls]


def test_open_by_hand_and_errors_keep_what_was_typed(client_as, support_user):
    client = client_as(support_user)
    page = client.get(reverse("incidents:new"))
    assert "Nothing linked" in page.content.decode()
    data = filled_in(page)
    data.update(title="Slow admin", summary="typed at 3 a.m.", orders="blocked", severity="sev4")
    response = client.post(reverse("incidents:new"), data)  # an override without its reason
    assert response.status_code == 200 and "needs a reason" in response.content.decode()
    assert response.context["form"]["summary"].value() == "typed at 3 a.m."
    assert not Incident.objects.exists()
    data["severity_reason"] = "only the internal admin is blocked"
    response = client.post(reverse("incidents:new"), data)
    incident = Incident.objects.get()
    assert incident.severity == "sev4" and incident.severity_overridden and incident.direction == "inbound"


def test_the_preview_says_what_the_answers_give(client_as, support_user):
    client = client_as(support_user)
    data = {"orders": "blocked", "records": "5", "shops": "1"}
    partial = client.post(reverse("incidents:new"), {**data, "preview": "1"}, HTTP_HX_REQUEST="true")
    html = partial.content.decode()
    assert partial.status_code == 200 and "<html" not in html
    assert "SEV1" in html and "Orders are blocked and there is no workaround." in html
    partial = client.post(
        reverse("incidents:new"), {**data, "has_workaround": "on", "preview": "1"}, HTTP_HX_REQUEST="true"
    )
    assert "SEV2" in partial.content.decode()
    assert not Incident.objects.exists()


# --- Severity ------------------------------------------------------------------------------------


def rubric_data(**answers) -> dict:
    data = {"orders": "no", "records": "3", "shops": "1"}
    data.update({k: ("on" if v is True else v) for k, v in answers.items() if v is not False})
    return data


def test_answering_the_rubric_again_changes_severity_and_keeps_history(client_as, support_user, failing_orders):
    incident = opened(support_user, events=failing_orders, answers={"orders": "no", "records": 3, "shops": 1})
    assert incident.severity == "sev4"
    client = client_as(support_user)
    response = client.post(reverse("incidents:severity", args=[incident.pk]), rubric_data(orders="blocked"))
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (
        incident.severity == "sev1" and "Orders are blocked and there is no workaround." in incident.severity_reasoning
    )
    changes = list(SeverityChange.objects.filter(incident=incident).order_by("id"))
    assert [(c.source, c.target) for c in changes] == [("", "sev4"), ("sev4", "sev1")]
    page = client.get(detail(incident)).content.decode()
    assert "History (2 changes)" in page and "SEV4 → <strong>SEV1</strong>" in page


def test_an_override_without_a_reason_is_refused_with_a_message(client_as, support_user, failing_orders):
    incident = opened(support_user, events=failing_orders, answers={"orders": "blocked", "records": 3, "shops": 1})
    client = client_as(support_user)
    url = reverse("incidents:severity", args=[incident.pk])
    response = client.post(url, rubric_data(orders="blocked", severity="sev3"), follow=True)
    assert "The rubric gives SEV1; choosing SEV3 instead needs a reason." in response.content.decode()
    incident.refresh_from_db()
    assert incident.severity == "sev1" and incident.severity_changes.count() == 1
    client.post(url, rubric_data(orders="blocked", severity="sev3", severity_reason="a test shop only"))
    incident.refresh_from_db()
    assert incident.severity == "sev3" and incident.severity_overridden
    assert incident.severity_changes.order_by("-id").first().override_reason == "a test shop only"


# --- Status and resolving ---------------------------------------------------------------------


def test_status_transitions_allowed_and_refused(client_as, support_user):
    incident = opened(support_user)
    client = client_as(support_user)
    url = reverse("incidents:status", args=[incident.pk])
    page = client.get(detail(incident)).content.decode()
    assert 'value="identified"' in page and 'value="contained"' in page
    client.post(url, {"status": "identified"})
    incident.refresh_from_db()
    assert incident.status == "identified" and incident.identified_at is not None
    client.post(url, {"status": "contained"})
    response = client.post(url, {"status": "investigating"}, follow=True)  # contained cannot go back to investigating
    assert "cannot become investigating" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == "contained"
    assert list(incident.steps.filter(kind=IncidentStep.Kind.STATUS).values_list("target", flat=True)) == [
        "identified",
        "contained",
    ]


def test_resolve_is_refused_while_containment_is_open_then_gated_on_the_data(client_as, support_user, failing_orders):
    incident = opened(support_user, events=failing_orders)
    action = services.add_action(incident, kind="containment", title="Pause north's queue", by=support_user)
    client = client_as(support_user)
    resolve = reverse("incidents:resolve", args=[incident.pk])
    page = client.get(detail(incident)).content.decode()
    assert "Resolving is refused" in page and "Pause north&#x27;s queue" in page

    response = client.post(resolve, {}, follow=True)
    assert "containment action(s) still open" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == "investigating"

    client.post(reverse("incidents:action_done", args=[incident.pk, action.pk]), {"done": "1"})
    action.refresh_from_db()
    assert action.done
    page = client.get(detail(incident)).content.decode()
    assert "3 linked failed events were neither replayed nor resolved" in page and 'name="override_reason"' in page
    response = client.post(resolve, {}, follow=True)  # the data gate: needs an override with a reason
    assert "The data is not repaired yet" in response.content.decode()
    incident.refresh_from_db()
    assert incident.status == "investigating"
    client.post(resolve, {"override_reason": "Shopify resent them; checked by hand"})
    incident.refresh_from_db()
    assert incident.status == "resolved" and incident.resolve_override_reason == "Shopify resent them; checked by hand"


def test_an_action_can_be_reopened_and_actions_of_another_incident_are_404(client_as, support_user):
    incident, other = opened(support_user), opened(support_user, title="Other")
    action = services.add_action(other, kind="remediation", title="Add idempotency", by=support_user)
    client = client_as(support_user)
    assert client.post(reverse("incidents:action_done", args=[incident.pk, action.pk])).status_code == 404
    client.post(reverse("incidents:action_done", args=[other.pk, action.pk]))
    client.post(reverse("incidents:action_done", args=[other.pk, action.pk]), {"done": "0"})
    action.refresh_from_db()
    assert not action.done and action.done_at is None


def test_add_an_action_with_owner_and_due(client_as, support_user):
    incident = opened(support_user)
    owner = UserFactory(username="olga-support", role="support")
    client = client_as(support_user)
    page = client.get(detail(incident)).content.decode()
    assert "olga-support" in page  # an active person who can change incidents
    due = (timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    client.post(
        reverse("incidents:action_add", args=[incident.pk]),
        {"kind": "containment", "title": "Disable the tagger", "owner": owner.pk, "due_at": due},
    )
    action = IncidentAction.objects.get(incident=incident)
    assert action.owner == owner and action.kind == "containment" and action.due_at is not None and action.overdue
    page = client.get(detail(incident)).content.decode()
    assert "Disable the tagger" in page and "overdue" in page


# --- Responses ------------------------------------------------------------------------------------


def test_controlled_replay_lands_on_a_dry_run_of_exactly_the_failing_events(
    client_as, support_user, shop, failing_orders
):
    done = make_order_event(shop, 1009, status=Event.Status.PROCESSED)
    incident = opened(support_user, events=[*failing_orders, done])
    client = client_as(support_user)
    response = client.post(reverse("incidents:respond", args=[incident.pk, "replay"]), {"mode": "stored"})
    replay = ReplayRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("replays:detail", args=[replay.pk])
    assert replay.incident == incident and replay.status == ReplayRequest.Status.PLANNED
    assert sorted(replay.selection["event_ids"]) == sorted(e.pk for e in failing_orders)
    assert client.get(response["Location"]).status_code == 200
    incident.refresh_from_db()
    assert incident.strategy == Incident.Strategy.CONTROLLED_REPLAY  # carrying it out recorded it
    page = client.get(detail(incident)).content.decode()
    assert reverse("replays:detail", args=[replay.pk]) in page


def test_pause_response_pauses_the_shop_and_records_done_containment(client_as, support_user, shop, failing_orders):
    incident = opened(support_user, events=failing_orders)
    client = client_as(support_user)
    url = reverse("incidents:respond", args=[incident.pk, "pause"])
    response = client.post(url, {"reason": ""}, follow=True)
    assert "needs a reason" in response.content.decode()
    shop.refresh_from_db()
    assert not shop.queue_paused
    client.post(url, {"reason": "stop tagging until the fix ships"})
    shop.refresh_from_db()
    assert shop.queue_paused
    action = IncidentAction.objects.get(incident=incident)
    assert action.kind == "containment" and action.done and "Paused the outbound queue" in action.title


def test_disable_and_watch_responses(client_as, support_user, shop, failing_orders):
    from integrations.jobs.registry import JOB_TYPES
    from integrations.models import HandlerSwitch

    incident = opened(support_user, events=failing_orders)
    client = client_as(support_user)
    job = sorted(JOB_TYPES)[0]
    client.post(reverse("incidents:respond", args=[incident.pk, "disable"]), {"job": job, "shop": shop.pk})
    assert HandlerSwitch.objects.get(job=job, shop=shop).disabled
    client.post(
        reverse("incidents:respond", args=[incident.pk, "watch"]),
        {"topic": "orders/create", "shop": shop.pk, "minutes": "30"},
    )
    incident.refresh_from_db()
    assert incident.watch_topic == "orders/create" and incident.watch_minutes == 30 and incident.watch_shop == shop
    page = client.get(detail(incident)).content.decode()
    assert "3 failures in the last 30 min" in page
    assert client.post(reverse("incidents:respond", args=[incident.pk, "nonsense"])).status_code == 404


def test_manual_correction_opens_a_worksheet_of_the_affected_orders(client_as, support_user, failing_orders):
    incident = opened(support_user, events=failing_orders)
    response = client_as(support_user).post(
        reverse("incidents:respond", args=[incident.pk, "worksheet"]), {"resource": "orders"}
    )
    worksheet = incident.worksheets.get()
    assert response["Location"] == reverse("worksheets:detail", args=[worksheet.pk])


# --- Updates and notifications ------------------------------------------------------------------


def test_post_an_update_then_confirm_it(client_as, support_user, mailoutbox):
    incident = opened(support_user)
    NotificationList.objects.create(audience="customer_service", severity=incident.severity, emails="cs@example.com")
    client = client_as(support_user)
    client.post(
        reverse("incidents:update_post", args=[incident.pk]),
        {"body": "Some orders reach the warehouse late.", "audience": "customer_service"},
    )
    update = IncidentUpdate.objects.get(incident=incident)
    assert not update.confirmed and not mailoutbox
    page = client.get(detail(incident)).content.decode()
    assert "still being established" in page and "Confirm: it may be shared" in page
    client.post(reverse("incidents:update_confirm", args=[incident.pk, update.pk]))
    update.refresh_from_db()
    assert update.confirmed and update.confirmed_by == support_user and update.confirmed_at is not None
    assert [m.bcc for m in mailoutbox] == [["cs@example.com"]]
    assert "Some orders reach the warehouse late." in mailoutbox[0].body
    response = client.post(reverse("incidents:update_confirm", args=[incident.pk, update.pk]), follow=True)
    assert "already confirmed" in response.content.decode()


def test_a_failed_notification_is_shown_with_its_error_and_can_be_sent_again(
    client_as, support_user, settings, mailoutbox
):
    settings.EMAIL_BACKEND = "tests.incidents.failing_mail.Backend"
    NotificationList.objects.create(audience="engineering", severity="sev4", emails="oncall@example.com")
    client = client_as(support_user)
    page = client.get(reverse("incidents:new"))
    data = filled_in(page)
    data["title"] = "Duplicate log line"
    client.post(reverse("incidents:new"), data)
    incident = Incident.objects.get()
    failed = Notification.objects.get(incident=incident, audience="engineering")
    assert failed.status == Notification.Status.FAILED and failed.recipients == ["oncall@example.com"]
    html = client.get(detail(incident)).content.decode()
    assert "ConnectionRefusedError: SMTP server refused the connection" in html
    assert "oncall@example.com" in html and "Send again" in html

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    client.post(reverse("incidents:send_again", args=[incident.pk, failed.pk]))
    failed.refresh_from_db()
    assert failed.status == Notification.Status.SENT and len(mailoutbox) == 1
    response = client.post(reverse("incidents:send_again", args=[incident.pk, failed.pk]), follow=True)
    assert "Only a notification that failed to send can be sent again." in response.content.decode()
    other = opened(support_user, title="Other")
    assert client.post(reverse("incidents:send_again", args=[other.pk, failed.pk])).status_code == 404


# --- Links, affected records, words, summary ---------------------------------------------------


def test_link_more_events_and_set_a_repair_state(client_as, support_user, shop, failing_orders):
    incident = opened(support_user, events=failing_orders[:1])
    client = client_as(support_user)
    client.post(
        reverse("incidents:link", args=[incident.pk]), {"event_ids": f"{failing_orders[1].pk}, {failing_orders[2].pk}"}
    )
    assert incident.events.count() == 3 and incident.affected.filter(kind="order").count() == 3
    response = client.post(reverse("incidents:link", args=[incident.pk]), {}, follow=True)
    assert "Give event ids" in response.content.decode()
    record = incident.affected.get(kind="order", key="#1002")
    client.post(
        reverse("incidents:affected_set", args=[incident.pk, record.pk]),
        {"repair_state": "needs_manual", "note": "customer asked to cancel"},
    )
    record.refresh_from_db()
    assert record.repair_state == AffectedRecord.RepairState.NEEDS_MANUAL and record.set_by_person
    page = client.get(detail(incident)).content.decode()  # the refresh on view keeps a person's state
    record.refresh_from_db()
    assert record.repair_state == "needs_manual" and "customer asked to cancel" in page
    assert reverse("events:detail", args=[failing_orders[0].pk]) in page
    other = opened(support_user, title="Other")
    url = reverse("incidents:affected_set", args=[other.pk, record.pk])
    assert client.post(url, {"repair_state": "repaired"}).status_code == 404


def test_edit_the_words(client_as, support_user):
    incident = opened(support_user)
    client_as(support_user).post(
        reverse("incidents:edit", args=[incident.pk]),
        {
            "title": "Order sync stalls",
            "direction": "both",
            "public_title": "Orders slow to appear",
            "lead": support_user.pk,
        },
    )
    incident.refresh_from_db()
    assert incident.title == "Order sync stalls" and incident.direction == "both"
    assert incident.public_title == "Orders slow to appear" and incident.lead == support_user
    client = client_as(support_user)
    client.post(reverse("incidents:edit", args=[incident.pk]), {"title": "<script>x()</script>", "direction": "both"})
    page = client.get(detail(incident)).content.decode()
    assert "&lt;script&gt;x()&lt;/script&gt;" in page and "<script>x()" not in page
    response = client.post(
        reverse("incidents:edit", args=[incident.pk]), {"title": "", "direction": "both"}, follow=True
    )
    assert "Title: This field is required." in response.content.decode()


def test_summary_downloads_as_markdown(client_as, support_user, failing_orders):
    incident = opened(support_user, events=failing_orders)
    response = client_as(support_user).get(reverse("incidents:summary", args=[incident.pk]))
    assert response.status_code == 200 and response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == f'attachment; filename="incident-{incident.pk}.md"'
    body = response.content.decode()
    assert body.startswith(f"# Incident #{incident.pk}: Orders not syncing") and "## Timeline" in body
    assert "300.00 EUR" in body


def test_the_overdue_update_is_flagged(client_as, support_user):
    incident = opened(support_user)
    Incident.objects.filter(pk=incident.pk).update(next_update_due_at=timezone.now() - timedelta(minutes=5))
    client = client_as(support_user)
    assert "The next status update is overdue" in client.get(detail(incident)).content.decode()
    listing = client.get(reverse("incidents:list")).content.decode()
    assert "overdue" in listing and "Open an incident" in listing and reverse("incidents:follow_ups") in listing


# --- Query counts ---------------------------------------------------------------------------------


def test_the_list_has_a_fixed_number_of_queries(client_as, support_user, django_assert_max_num_queries):
    for n in range(20):
        incident = IncidentFactory(opened_by=support_user, lead=support_user, status="investigating" if n % 3 else "resolved",
                                   resolved_at=None if n % 3 else timezone.now())  # fmt: skip
        IncidentAction.objects.create(incident=incident, kind="containment", title=f"contain {n}")
        IncidentAction.objects.create(incident=incident, kind="remediation", title=f"fix {n}")
    client = client_as(support_user)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("incidents:list"))
    assert response.status_code == 200 and len(response.context["open"]) == 13
    assert all(incident.open_containment == 1 for incident in response.context["open"])


def test_the_detail_page_has_a_bounded_number_of_queries(client_as, support_user, shop, django_assert_max_num_queries):
    events = [make_order_event(shop, 3000 + n) for n in range(40)]
    incident = opened(support_user, events=events)
    for n in range(25):
        services.add_action(incident, kind="containment" if n % 2 else "remediation", title=f"action {n}", by=support_user,
                            owner=support_user, due_at=timezone.now() + timedelta(hours=n))  # fmt: skip
        services.post_update(
            incident, body=f"update {n}", audience="engineering", by=support_user, confirmed=bool(n % 2)
        )
    services.start_watch(incident, by=support_user, topic="orders/create", shop=shop)
    assert incident.steps.count() > 50 and incident.affected.count() == 80
    client = client_as(support_user)
    with django_assert_max_num_queries(50):
        response = client.get(detail(incident))
    assert response.status_code == 200
    html = response.content.decode()
    assert "action 24" in html and "update 24" in html and "#3000" in html
    # 80 records: the first 50 are shown, with the count in each state and a way to see the others.
    assert len(response.context["affected_records"]) == 50 and "The first 50 are shown" in html
    assert "Waiting for repair (80)" in html
    services.set_repair_state(incident.affected.get(key="#3039"), "needs_manual", by=support_user)
    html = client.get(detail(incident)).content.decode()
    assert "#3039" in html  # needing someone comes first
    only = client.get(detail(incident) + "?affected=needs_manual").context["affected_records"]
    assert [record.key for record in only] == ["#3039"]


# --- Roles ---------------------------------------------------------------------------------------


def test_customer_service_gets_403_on_every_incident_page_and_change(
    client_as, service_user, support_user, failing_orders
):
    incident = opened(support_user, events=failing_orders)
    action = services.add_action(incident, kind="containment", title="x", by=support_user)
    update = services.post_update(incident, body="y", audience="engineering", by=support_user)
    notice = Notification.objects.filter(incident=incident).first() or Notification.objects.create(
        incident=incident, kind="opened", audience="engineering", subject="s", body="b", status="failed"
    )
    record = incident.affected.first()
    pk = incident.pk
    posts = {
        "incidents:new": [],
        "incidents:edit": [pk],
        "incidents:severity": [pk],
        "incidents:status": [pk],
        "incidents:resolve": [pk],
        "incidents:strategy": [pk],
        "incidents:respond": [pk, "replay"],
        "incidents:link": [pk],
        "incidents:action_add": [pk],
        "incidents:action_done": [pk, action.pk],
        "incidents:update_post": [pk],
        "incidents:update_confirm": [pk, update.pk],
        "incidents:send_again": [pk, notice.pk],
        "incidents:affected_set": [pk, record.pk],
    }
    client = client_as(service_user)
    for name, args in posts.items():
        assert client.post(reverse(name, args=args), {"status": "resolved", "done": "1"}).status_code == 403, name
    for name, args in (("incidents:detail", [pk]), ("incidents:new", []), ("incidents:summary", [pk])):
        assert client.get(reverse(name, args=args)).status_code == 403, name
    incident.refresh_from_db()
    assert incident.status == "investigating" and not ReplayRequest.objects.exists()


def test_unknown_incidents_are_404(client_as, support_user):
    client = client_as(support_user)
    assert client.get(reverse("incidents:detail", args=[999999])).status_code == 404
    assert client.post(reverse("incidents:status", args=[999999]), {"status": "identified"}).status_code == 404


def test_a_response_needs_the_tools_own_permission(client_as, support_user, shop, failing_orders):
    from django.contrib.auth.models import Permission

    incident = opened(support_user, events=failing_orders)
    clerk = UserFactory(username="ivy-incidents-only")
    clerk.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="incidents", codename__in=["view_incident", "change_incident"]
        )
    )
    response = client_as(clerk).post(reverse("incidents:respond", args=[incident.pk, "pause"]), {"reason": "stop"})
    assert response.status_code == 403
    shop.refresh_from_db()
    incident.refresh_from_db()
    assert not shop.queue_paused and incident.strategy == "" and not incident.actions.exists()


def test_the_severity_box_previews_and_prefills_from_the_answers(client_as, support_user, failing_orders):
    incident = opened(
        support_user, events=failing_orders, answers={"orders": "blocked", "workaround": True, "records": 3, "shops": 1}
    )
    client = client_as(support_user)
    page = client.get(detail(incident))
    form = page.context["severity_form"]
    assert form.initial["orders"] == "blocked" and form.initial["has_workaround"] is True
    partial = client.post(
        reverse("incidents:severity", args=[incident.pk]),
        {**rubric_data(orders="delayed"), "preview": "1"},
        HTTP_HX_REQUEST="true",
    )
    assert "SEV3" in partial.content.decode() and "<html" not in partial.content.decode()
    incident.refresh_from_db()
    assert incident.severity == "sev2" and incident.severity_changes.count() == 1
