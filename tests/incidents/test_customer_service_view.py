"""Customer service sees only what the status board shows them, on every page they can open: an
incident's public name and plain-language fields, and the confirmed updates written for them, never
an internal title, summary, severity reasoning, internal or unconfirmed update, payload, repair
note, shop secret, traceback or notification error. The board says in words what a severity means
and flags an update that is late."""

import json
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from incidents import services
from incidents.models import SEVERITY_FOR_CUSTOMERS, AffectedRecord, Incident, IncidentUpdate, Notification
from tests.factories import (
    AttemptFactory,
    DeliveryFactory,
    EventFactory,
    IncidentActionFactory,
    IncidentFactory,
    IncidentUpdateFactory,
    JobFactory,
    OutboundCallFactory,
    ShopFactory,
)
from tests.incidents.conftest import order_payload

pytestmark = pytest.mark.django_db

CS = IncidentUpdate.Audience.CUSTOMER_SERVICE

# What must never reach customer service.
INTERNAL_TITLE = "Refund webhook drops VIP orders INTERNAL-TITLE-7f3a"
SUMMARY = "Handler sync_order raises KeyError on INTERNAL-SUMMARY-91c2"
REASONING = "INTERNAL-REASONING-55d0"
ENGINEERING_UPDATE = "Rolled back deploy INTERNAL-ENG-UPDATE-0b8e"
UNCONFIRMED_UPDATE = "Maybe payments too? INTERNAL-UNCONFIRMED-4e11"
FULFILMENT_UPDATE = "Warehouse hold INTERNAL-FULFILMENT-c3d9"
REPAIR_NOTE = "replayed by hand INTERNAL-REPAIR-NOTE-a6f0"
PAYLOAD = "INTERNAL-PAYLOAD-2b7c"
STATUS_REASON = "INTERNAL-STATUS-REASON-8d14"
TRACEBACK = "Traceback (most recent call last): INTERNAL-TRACEBACK-e902"
NOTICE_ERROR = "SMTPServerDisconnected: INTERNAL-NOTICE-ERROR-f1a7"
SECOND_TITLE = "Stock job crash INTERNAL-SECOND-TITLE-3c5b"
SHOP_SECRET = "whsec-INTERNAL-SECRET-77aa"
SHOP_TOKEN = "shpat_INTERNAL-TOKEN-99bb"
INTERNAL = [
    INTERNAL_TITLE, SUMMARY, REASONING, ENGINEERING_UPDATE, UNCONFIRMED_UPDATE, FULFILMENT_UPDATE, REPAIR_NOTE,
    PAYLOAD, STATUS_REASON, TRACEBACK, NOTICE_ERROR, SECOND_TITLE, SHOP_SECRET, SHOP_TOKEN,
]  # fmt: skip

# What customer service should read.
PUBLIC_TITLE = "Order confirmations delayed"
IMPACT = "Order confirmation e-mails may arrive up to an hour late."
ADVICE = "Tell them their order is placed and safe; the e-mail will follow."
WORKAROUND = "They can see the order under My account."
SHARED_UPDATE = "Confirmations are catching up; most arrive within 20 minutes."
BUYER = "vip.buyer@example.com"


@pytest.fixture
def world(support_user):
    """An incident with something of every kind, internal and public, linked to a failed order."""
    shop = ShopFactory(domain="north-shop.myshopify.com", webhook_secret=SHOP_SECRET, access_token=SHOP_TOKEN)
    body = {**order_payload(1001, email=BUYER), "note": PAYLOAD}
    event = EventFactory(
        shop=shop, topic="orders/create", status="failed", status_reason=STATUS_REASON,
        resource_gid=body["admin_graphql_api_id"], resource_id=str(body["id"]), resource_label="#1001",
    )  # fmt: skip
    DeliveryFactory(event=event, body=json.dumps(body).encode())
    job = JobFactory(event=event, status="failed", last_error=TRACEBACK)
    AttemptFactory(job=job, outcome="failed", traceback=TRACEBACK, error_class="KeyError")
    call = OutboundCallFactory(shop=shop, status="failed", reason=TRACEBACK)
    incident = services.open_incident(
        title=INTERNAL_TITLE, summary=SUMMARY, by=support_user, event_ids=[event.pk], call_ids=[call.pk],
        public_title=PUBLIC_TITLE, customer_impact=IMPACT, customer_advice=ADVICE, workaround=WORKAROUND,
    )  # fmt: skip
    Incident.objects.filter(pk=incident.pk).update(severity_reasoning=f"Orders blocked. {REASONING}")
    services.post_update(incident, body=ENGINEERING_UPDATE, audience="engineering", confirmed=True, by=support_user)
    services.post_update(incident, body=UNCONFIRMED_UPDATE, audience=CS, confirmed=False, by=support_user)
    services.post_update(incident, body=FULFILMENT_UPDATE, audience="fulfilment", confirmed=True, by=support_user)
    shared = services.post_update(incident, body=SHARED_UPDATE, audience=CS, confirmed=True, by=support_user)
    record = AffectedRecord.objects.get(incident=incident, kind="order", key="#1001")
    services.set_repair_state(record, AffectedRecord.RepairState.NEEDS_MANUAL, note=REPAIR_NOTE, by=support_user)
    notice = Notification.objects.create(
        incident=incident, kind="opened", audience="engineering", recipients=["eng@example.com"],
        subject=f"[integrations] {INTERNAL_TITLE}", body=SUMMARY, status="failed", error=NOTICE_ERROR,
    )  # fmt: skip
    action = IncidentActionFactory(incident=incident, title=f"Fix {SUMMARY}")
    # A second incident with a confirmed update but no public name: the board names it generically.
    second = IncidentFactory(title=SECOND_TITLE, summary=SUMMARY, opened_by=support_user)
    IncidentUpdateFactory(incident=second, body="We are looking into stock levels.", audience=CS, confirmed=True)
    return {
        "shop": shop, "event": event, "call": call, "incident": incident, "second": second, "record": record,
        "notice": notice, "action": action, "update": shared, "job": job,
    }  # fmt: skip


def _patterns(patterns, namespace=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _patterns(pattern.url_patterns, inner)
        elif isinstance(pattern, URLPattern) and pattern.name:
            yield f"{namespace}{pattern.name}", pattern


def every_url(world) -> list[tuple[str, str]]:
    """Every named URL of the project, its arguments filled with the ids of the objects made."""
    ids_by_namespace = {
        "incidents": world["incident"].pk, "events": world["event"].pk, "outbound": world["call"].pk,
        "integrations": world["shop"].pk,
    }  # fmt: skip
    ids_by_name = {
        "action_id": world["action"].pk, "update_id": world["update"].pk, "notification_id": world["notice"].pk,
        "record_id": world["record"].pk, "shop_id": world["shop"].pk, "row_pk": 1,
    }  # fmt: skip
    strings = {"app_label": "incidents", "model": "incident", "object_id": str(world["incident"].pk)}
    urls = []
    for name, pattern in _patterns(get_resolver().url_patterns):
        namespace = name.split(":", 1)[0] if ":" in name else ""
        kwargs = {}
        for arg, converter in pattern.pattern.converters.items():
            kind = type(converter).__name__
            if kind == "IntConverter":
                kwargs[arg] = ids_by_name.get(arg, ids_by_namespace.get(namespace, world["incident"].pk))
            elif kind == "SlugConverter":
                kwargs[arg] = "replay"
            else:
                kwargs[arg] = strings.get(arg, "x")
        urls.append((name, reverse(name, kwargs=kwargs or None)))
    lookup = reverse("incidents:lookup")
    urls += [(f"lookup {q}", f"{lookup}?{urlencode({'q': q})}") for q in ("#1001", "1001", BUYER, BUYER.upper())]
    return urls


def _text(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def test_customer_service_never_sees_an_internal_field_on_any_url(client_as, service_user, world):
    client = client_as(service_user)
    opened = {}
    for name, url in every_url(world):
        for headers in ({}, {"HX-Request": "true"}):
            response = client.get(url, follow=True, headers=headers)
            html = _text(response)
            leaked = [marker for marker in INTERNAL if marker in html]
            assert leaked == [], f"{name} ({url}, {response.status_code}) shows {leaked}"
            if response.status_code == 200 and not headers:
                opened[name] = html
    assert {"dashboard", "incidents:status_board", "incidents:lookup", "lookup #1001", f"lookup {BUYER}"} <= set(opened)
    board = opened["incidents:status_board"]
    for public in (PUBLIC_TITLE, IMPACT, ADVICE, WORKAROUND, SHARED_UPDATE, SEVERITY_FOR_CUSTOMERS["sev4"]):
        assert public in board, public
    assert "Integration issue under investigation" in board and "We are looking into stock levels." in board
    for name in ("lookup #1001", "lookup 1001", f"lookup {BUYER}", f"lookup {BUYER.upper()}"):
        found = opened[name]
        assert PUBLIC_TITLE in found and ADVICE in found and WORKAROUND in found and SHARED_UPDATE in found, name
        assert "Being fixed by hand" in found, name
    assert PUBLIC_TITLE in opened["dashboard"] and "Integration issue under investigation" in opened["dashboard"]
    # Support reaches the incident itself from the same pages; customer service is given no link.
    assert reverse("incidents:detail", args=[world["incident"].pk]) not in board + opened["lookup #1001"]


def test_support_reads_the_same_board_with_a_link_to_the_incident(client_as, support_user, world):
    client = client_as(support_user)
    board = client.get(reverse("incidents:status_board")).content.decode()
    found = client.get(reverse("incidents:lookup"), {"q": "#1001"}).content.decode()
    detail = reverse("incidents:detail", args=[world["incident"].pk])
    assert detail in board and detail in found
    assert INTERNAL_TITLE not in board and REPAIR_NOTE not in found  # the same page: public fields only
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert INTERNAL_TITLE in dashboard and SECOND_TITLE in dashboard  # support's dashboard names them


def test_support_sees_every_open_incident(client_as, support_user):
    titles = ["Refund webhook drops orders", "Maybe a payment gateway issue", "Stock levels delayed"]
    for title in titles:
        IncidentFactory(title=title, opened_by=support_user)
    client = client_as(support_user)
    dashboard = client.get(reverse("dashboard")).content.decode()
    listing = client.get(reverse("incidents:list")).content.decode()
    for title in titles:
        assert title in dashboard and title in listing


def test_customer_service_is_sent_from_the_incident_list_to_the_board(client_as, service_user):
    response = client_as(service_user).get(reverse("incidents:list"))
    assert response.status_code == 302 and response["Location"] == reverse("incidents:status_board")


def test_the_board_explains_each_severity_in_customer_words(client_as, service_user, support_user):
    incident = IncidentFactory(title="Stock", public_title="Stock levels delayed", severity="sev2")
    IncidentUpdateFactory(incident=incident, body="Stock may lag 15 minutes.", audience=CS, confirmed=True)
    html = client_as(service_user).get(reverse("incidents:status_board")).content.decode()
    card = html[html.index("Stock levels delayed") : html.index("</article>")]
    assert SEVERITY_FOR_CUSTOMERS["sev2"] in card  # the incident's own severity, in words
    for words in SEVERITY_FOR_CUSTOMERS.values():
        assert words in html  # and the legend


def test_an_update_is_flagged_once_its_time_passes(client_as, service_user, support_user):
    incident = services.open_incident(title="Order sync delayed", public_title="Order updates delayed", by=support_user)
    services.post_update(
        incident, body="Next update within 30 minutes.", audience=CS, confirmed=True, by=support_user,
        next_update_at=timezone.now() + timedelta(minutes=30),
    )  # fmt: skip
    client = client_as(service_user)
    html = client.get(reverse("incidents:status_board")).content.decode()
    assert "Next update due by" in html and "overdue" not in html
    Incident.objects.filter(pk=incident.pk).update(next_update_due_at=timezone.now() - timedelta(minutes=11))
    html = client.get(reverse("incidents:status_board"), headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in html  # the refresh gets the board alone
    assert 'class="card incident overdue"' in html and "Next update overdue" in html and "11" in html
    # A new update sets the next time by severity: no longer overdue.
    services.post_update(incident, body="Catching up now.", audience=CS, confirmed=True, by=support_user)
    html = client.get(reverse("incidents:status_board")).content.decode()
    assert "Next update overdue" not in html and "Catching up now." in html


def test_the_board_refreshes_itself(client_as, service_user):
    html = client_as(service_user).get(reverse("incidents:status_board")).content.decode()
    assert f'hx-get="{reverse("incidents:status_board")}"' in html and 'hx-trigger="every 30s"' in html
