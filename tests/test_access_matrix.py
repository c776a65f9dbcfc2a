"""Role-by-view access for every URL the console has.

`ACCESS` must name every URL pattern (outside Django's admin, tested on its own below); a new page
that is not added here fails `test_every_url_is_in_the_matrix`, so nobody ships a page unchecked.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from console import roles
from console.alerts.models import AlertSilence
from console.audit import record_action
from incidents.models import AffectedRecord, Incident, IncidentAction, IncidentUpdate, Notification, NotificationList
from incidents.worksheets.models import Worksheet
from integrations.models import PrivacyRequest, ReplayRequest, SavedView
from tests.factories import (
    DeliveryFactory,
    EventFactory,
    IncidentActionFactory,
    IncidentFactory,
    IncidentUpdateFactory,
    OutboundCallFactory,
    ShopFactory,
)

ANON = "anonymous"
S, CS, A = roles.SUPPORT, roles.CUSTOMER_SERVICE, roles.ADMIN
LOGIN = "login-redirect"

# The incident's POST-only views (each changes it; support and admins may, customer service never).
INCIDENT_ACTIONS = (
    "edit", "severity", "status", "resolve", "strategy", "respond", "link", "action_add", "action_done",
    "update_post", "update_confirm", "send_again", "affected_set",
)  # fmt: skip

# url name -> expected GET status per audience ("login-redirect" = 302 to the login page)
ACCESS = {
    "dashboard": {ANON: LOGIN, S: 200, CS: 200, A: 200},
    "login": {ANON: 200, S: 302, CS: 302, A: 302},
    "logout": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only, so a link cannot log you out
    "healthz": {ANON: 200, S: 200, CS: 200, A: 200},
    "readyz": {ANON: 503, S: 503, CS: 503, A: 503},  # no login; 503: no worker heartbeat in this test
    "metrics": {ANON: 403, S: 403, CS: 403, A: 403},  # no login: a token or address list, unset here
    "webhook_receiver": {ANON: 405, S: 405, CS: 405, A: 405},  # no login: Shopify POSTs, signed
    "audit_list": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "login_lockouts": {ANON: LOGIN, S: 403, CS: 403, A: 200},
    "login_unlock": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "audit_history": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "integrations:shop_list": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "integrations:shop_detail": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "integrations:shop_create": {ANON: LOGIN, S: 403, CS: 403, A: 200},
    "integrations:shop_edit": {ANON: LOGIN, S: 403, CS: 403, A: 200},
    "integrations:ownership": {ANON: LOGIN, S: 200, CS: 403, A: 200},  # POST (change an owner): admins
    "integrations:drift": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "integrations:shop_health": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "integrations:shop_health_check": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "integrations:shop_resubscribe": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "integrations:shop_reinstall": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "integrations:shop_secrets": {ANON: LOGIN, S: 403, CS: 403, A: 200},
    "integrations:shop_retire_secret": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "incidents:status_board": {ANON: LOGIN, S: 200, CS: 200, A: 200},
    "incidents:lookup": {ANON: LOGIN, S: 200, CS: 200, A: 200},
    "incidents:list": {ANON: LOGIN, S: 200, CS: 302, A: 200},  # customer service goes to the board
    "incidents:new": {ANON: LOGIN, S: 200, CS: 403, A: 200},  # GET the form; POST opens one
    "incidents:detail": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "incidents:summary": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "incidents:follow_ups": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "incidents:notification_lists": {ANON: LOGIN, S: 200, CS: 403, A: 200},  # POST (edit a list): admins
    **{
        f"incidents:{name}": {ANON: LOGIN, S: 405, CS: 405, A: 405}  # POST only
        for name in INCIDENT_ACTIONS
    },
    "privacy:list": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "privacy:export": {ANON: LOGIN, S: 403, CS: 403, A: 404},  # admins only; 404: this one has no export
    "events:list": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "events:poll": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "events:export": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "events:detail": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "events:delivery": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "events:assign": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:tag": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:acknowledge": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:resolve": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:ignore": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:reopen": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:mark_failed": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:mark_ignored": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:save_view": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:delete_view": {ANON: LOGIN, S: 405, CS: 405, A: 405},
    "events:failed_tasks": {ANON: LOGIN, S: 200, CS: 403, A: 200},  # django-q2 failures, read-only
    "outbound:index": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "outbound:detail": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "outbound:send_again": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "outbound:pause": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "outbound:resume": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "replays:list": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "replays:new": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only: makes a dry run
    "replays:detail": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "replays:progress": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "replays:run": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "replays:approve": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only; admins
    "replays:cancel": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "replays:replan": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "replays:runbook": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "replays:handlers": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "replays:handler_switch": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "worksheets:list": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "worksheets:new": {ANON: LOGIN, S: 200, CS: 403, A: 200},  # GET the form; POST creates one
    "worksheets:detail": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "worksheets:progress": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "worksheets:export": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "worksheets:decide": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "worksheets:compare": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "worksheets:submit": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "worksheets:approve": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only; admins
    "worksheets:reject": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only; admins
    "worksheets:apply": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "worksheets:retry": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "worksheets:rollback": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "alerts:list": {ANON: LOGIN, S: 200, CS: 403, A: 200},
    "alerts:silence": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
    "alerts:unsilence": {ANON: LOGIN, S: 405, CS: 405, A: 405},  # POST only
}
WORKSHEET_PAGES = (
    "detail",
    "progress",
    "export",
    "compare",
    "submit",
    "approve",
    "reject",
    "apply",
    "retry",
    "rollback",
)
# Views that change something: a POST from a role without the right gets 403 and changes nothing.
ACTIONS = {
    "integrations:shop_create": {S: 403, CS: 403},
    "integrations:shop_edit": {S: 403, CS: 403},
    "integrations:ownership": {S: 403, CS: 403},
    "integrations:shop_resubscribe": {CS: 403},
    "integrations:shop_health_check": {CS: 403},
    "integrations:shop_reinstall": {S: 403, CS: 403},
    "integrations:shop_secrets": {S: 403, CS: 403},
    "integrations:shop_retire_secret": {S: 403, CS: 403},
    "login_unlock": {S: 403, CS: 403},
    "events:assign": {CS: 403},
    "events:tag": {CS: 403},
    "events:acknowledge": {CS: 403},
    "events:resolve": {CS: 403},
    "events:ignore": {CS: 403},
    "events:reopen": {CS: 403},
    "events:mark_failed": {CS: 403},
    "events:mark_ignored": {CS: 403},
    "events:save_view": {CS: 403},
    "events:delete_view": {CS: 403},
    "outbound:send_again": {CS: 403},
    "outbound:pause": {CS: 403},
    "outbound:resume": {CS: 403},
    "replays:new": {CS: 403},
    "replays:run": {CS: 403},
    "replays:approve": {S: 403, CS: 403},
    "replays:cancel": {CS: 403},
    "replays:replan": {CS: 403},
    "replays:handler_switch": {CS: 403},
    "worksheets:new": {CS: 403},
    "worksheets:decide": {CS: 403},
    "worksheets:compare": {CS: 403},
    "worksheets:submit": {CS: 403},
    "worksheets:approve": {S: 403, CS: 403},
    "worksheets:reject": {S: 403, CS: 403},
    "worksheets:apply": {CS: 403},
    "worksheets:retry": {CS: 403},
    "worksheets:rollback": {CS: 403},
    "incidents:new": {CS: 403},
    "incidents:notification_lists": {S: 403, CS: 403},
    **{f"incidents:{name}": {CS: 403} for name in INCIDENT_ACTIONS},
    "alerts:silence": {CS: 403},
    "alerts:unsilence": {CS: 403},
}


def _url_names(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _url_names(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}"


def test_every_url_is_in_the_matrix():
    assert set(_url_names(get_resolver().url_patterns)) == set(ACCESS)


@pytest.fixture
def url_for(db, admin_user):
    shop = ShopFactory()
    record_action(actor=admin_user, verb="shop.update", target=shop)
    event = EventFactory(shop=shop)
    rejected = DeliveryFactory(event=None)
    saved = SavedView.objects.create(user=admin_user, name="failed", query="status=failed")
    call = OutboundCallFactory(shop=shop, status="failed")
    privacy = PrivacyRequest.objects.create(
        shop=shop, event=EventFactory(shop=shop), kind=PrivacyRequest.Kind.CUSTOMER_REDACT, due_at=timezone.now()
    )
    replay = ReplayRequest.objects.create(
        requested_by=admin_user, requested_label=admin_user.username, kind="one",
        selection={"event_ids": [event.pk]}, plan_hash="0" * 64,
    )  # fmt: skip
    worksheet = Worksheet.objects.create(
        shop=shop, resource="products", fields=["title"], source="ids", prepared_by=admin_user, state="submitted"
    )
    row = worksheet.rows.create(position=1, key="gid://shopify/Product/1")
    incident = IncidentFactory(opened_by=admin_user)
    action = IncidentActionFactory(incident=incident)
    update = IncidentUpdateFactory(incident=incident)
    notification = Notification.objects.create(
        incident=incident, kind="opened", audience="engineering", subject="s", body="b", status="failed"
    )
    record = AffectedRecord.objects.create(incident=incident, shop=shop, kind="order", key="#1001")
    silence = AlertSilence.objects.create(
        rule="backlog_age", until=timezone.now() + timezone.timedelta(hours=1), reason="r", created_by_label="ada"
    )
    on_incident = {"pk": incident.pk}
    kwargs = {
        "audit_history": {"app_label": "integrations", "model": "shop", "object_id": str(shop.pk)},
        "events:detail": {"pk": event.pk},
        "events:delivery": {"pk": rejected.pk},
        "events:delete_view": {"pk": saved.pk},
        **{
            f"events:{action}": {"pk": event.pk}
            for action in ("assign", "tag", "acknowledge", "resolve", "ignore", "reopen", "mark_failed", "mark_ignored")
        },
        "integrations:shop_detail": {"pk": shop.pk},
        "integrations:shop_edit": {"pk": shop.pk},
        "integrations:ownership": {"pk": shop.pk},
        "integrations:shop_health": {"pk": shop.pk},
        "integrations:shop_health_check": {"pk": shop.pk},
        "integrations:shop_resubscribe": {"pk": shop.pk},
        "integrations:shop_reinstall": {"pk": shop.pk},
        "privacy:export": {"pk": privacy.pk},
        "integrations:shop_secrets": {"pk": shop.pk},
        "integrations:shop_retire_secret": {"pk": shop.pk},
        "outbound:detail": {"pk": call.pk},
        "outbound:send_again": {"pk": call.pk},
        "outbound:pause": {"shop_id": shop.pk},
        "outbound:resume": {"shop_id": shop.pk},
        **{
            f"replays:{name}": {"pk": replay.pk}
            for name in ("detail", "progress", "run", "approve", "cancel", "replan")
        },
        **{f"worksheets:{name}": {"pk": worksheet.pk} for name in WORKSHEET_PAGES},
        "worksheets:decide": {"pk": worksheet.pk, "row_pk": row.pk},
        **{
            f"incidents:{name}": on_incident
            for name in (
                "detail",
                "summary",
                "edit",
                "severity",
                "status",
                "resolve",
                "strategy",
                "link",
                "action_add",
                "update_post",
            )
        },
        "incidents:respond": {**on_incident, "response": "replay"},
        "incidents:action_done": {**on_incident, "action_id": action.pk},
        "incidents:update_confirm": {**on_incident, "update_id": update.pk},
        "incidents:send_again": {**on_incident, "notification_id": notification.pk},
        "incidents:affected_set": {**on_incident, "record_id": record.pk},
        "alerts:unsilence": {"pk": silence.pk},
    }
    return lambda name: reverse(name, kwargs=kwargs.get(name))


@pytest.mark.parametrize("name", sorted(ACCESS))
@pytest.mark.parametrize("audience", [ANON, S, CS, A])
def test_get_access(client, users_by_role, url_for, name, audience):
    if audience != ANON:
        client.force_login(users_by_role[audience])
    url = url_for(name)
    response = client.get(url)
    expected = ACCESS[name][audience]
    if expected == LOGIN:
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))
    else:
        assert response.status_code == expected, f"{audience} GET {url}"


@pytest.mark.parametrize(("name", "audience"), [(name, who) for name in sorted(ACTIONS) for who in ACTIONS[name]])
def test_actions_are_refused_on_the_server(client, users_by_role, url_for, name, audience):
    from console.models import AuditEntry
    from integrations.models import Event, EventHistory, Shop

    client.force_login(users_by_role[audience])

    def state():
        return (
            list(Shop.objects.values()),
            AuditEntry.objects.count(),
            list(Event.objects.values()),
            EventHistory.objects.count(),
            list(SavedView.objects.values()),
            list(Incident.objects.values()),
            list(IncidentAction.objects.values()),
            list(IncidentUpdate.objects.values()),
            list(Notification.objects.values()),
            list(NotificationList.objects.values()),
            list(AffectedRecord.objects.values()),
            list(AlertSilence.objects.values()),
        )

    before = state()
    response = client.post(
        url_for(name),
        {
            "domain": "new.myshopify.com",
            "webhook_secret": "x" * 20,
            "name": "Hijack",
            "new_webhook_secret": "y" * 20,
            "reason": "r",
            # What the incident forms read, so a missing check would change something.
            "title": "Hijack",
            "body": "Hijack",
            "audience": "engineering",
            "severity": "sev1",
            "emails": "hijack@example.com",
            "status": "resolved",
            "kind": "containment",
        },
    )
    assert response.status_code == ACTIONS[name][audience]
    assert state() == before


@pytest.mark.parametrize("audience", [S, CS])
def test_django_admin_is_for_staff_only(client, users_by_role, audience):
    client.force_login(users_by_role[audience])
    response = client.get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_anonymous_post_to_an_action_is_sent_to_login(client, url_for):
    response = client.post(url_for("integrations:shop_create"), {"domain": "x.myshopify.com"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
