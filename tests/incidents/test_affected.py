"""Affected records and customer service's lookup: the orders and customers an incident affects,
from its linked events, replays and worksheets, each with its repair state; an order linked to an
open incident is found by its number or its customer's e-mail, and turns to repaired when its
replay succeeds."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from incidents import affected, services
from incidents.models import AffectedRecord, Incident, IncidentStep
from incidents.worksheets.models import Worksheet, WorksheetRow
from integrations.eventlog.triage import resolve_event
from integrations.models import Event, ReplayItem
from integrations.processing.pump import Pump
from integrations.replay import services as replays
from integrations.replay.selection import for_events
from tests.incidents.conftest import make_order_event
from tests.replay.helpers import failing
from tests.webhooks import receive

pytestmark = pytest.mark.django_db

State = AffectedRecord.RepairState


def drain(passes: int = 20) -> int:
    """Run pump passes in this process (live events and the replay lane) until nothing is left."""
    pump = Pump(tag="test")
    total = 0
    for _ in range(passes):
        handled = pump.run_once()
        total += handled
        if not handled:
            break
    return total


def states(text: str) -> list[tuple]:
    return [(r.incident_id, r.kind, r.key, r.repair_state) for r in affected.lookup(text)]


def replay_incident(incident: Incident, by) -> "replays.ReplayRequest":
    dry_run = services.start_controlled_replay(incident, by=by)
    return replays.do_replay(dry_run, by=by, reason="ERP token rotated", plan_hash=dry_run.plan_hash)


@pytest.fixture
def order_incident(shop, support_user):
    event = make_order_event(shop, 1001, email="Ana@Example.com", total="120.00")
    incident = services.open_incident(title="Orders not syncing", by=support_user, event_ids=[event.pk])
    return incident, event


def test_an_order_of_an_open_incident_is_found_and_turns_repaired_when_its_replay_succeeds(
    order_incident, support_user
):
    incident, event = order_incident
    for text in ("#1001", "1001", " 1001 ", "ana@example.com", "ANA@example.com"):
        found = [r for r in affected.lookup(text) if r.kind == AffectedRecord.Kind.ORDER]
        assert [(r.incident, r.key, r.repair_state) for r in found] == [(incident, "#1001", State.WAITING)], text
    [order] = affected.lookup("#1001")
    assert order.repair_note == f"event {event.pk} failed"
    assert (order.shop.domain, order.email, str(order.total), order.currency, order.unfulfilled) == (
        "north-shop.myshopify.com",
        "ana@example.com",
        "120.00",
        "EUR",
        True,
    )
    assert order.shopify_id == "5001001"
    # The e-mail finds the customer too.
    assert states("ana@example.com") == [
        (incident.pk, "customer", "ana@example.com", State.WAITING),
        (incident.pk, "order", "#1001", State.WAITING),
    ]
    assert affected.lookup("#1002") == [] and affected.lookup("bo@example.com") == [] and affected.lookup("") == []

    replay = replay_incident(incident, support_user)
    assert replay.status == "queued" and replay.incident_id == incident.pk
    [(_, _, _, state)] = states("#1001")
    assert state == State.REPLAYED
    assert affected.lookup("#1001")[0].repair_note == f"replay {replay.pk}: waiting to run"

    drain()

    event.refresh_from_db()
    assert event.status == Event.Status.PROCESSED
    [order] = affected.lookup("#1001")
    assert order.repair_state == State.REPAIRED
    assert order.repair_note == f"replay {replay.pk} succeeded"
    assert states("ana@example.com")[0][3] == State.REPAIRED
    # Repaired orders are no longer money at risk, and the data gate opens.
    measured = services.measure(incident)
    assert measured.orders_unsynced == 0 and measured.money_at_risk == {}
    assert services.resolve(incident, by=support_user).status == Incident.Status.RESOLVED


def test_a_failed_replay_item_needs_manual_action(order_incident, support_user, monkeypatch):
    incident, event = order_incident
    replay = replay_incident(incident, support_user)
    failing(monkeypatch, "sync_order", "ERP still refuses the order")
    drain()
    assert ReplayItem.objects.get(replay=replay).status == ReplayItem.Status.FAILED
    event.refresh_from_db()
    assert event.status == Event.Status.FAILED
    [order] = affected.lookup("#1001")
    assert order.repair_state == State.NEEDS_MANUAL
    assert order.repair_note == f"replay {replay.pk}: a replayed job failed"


def test_an_event_processed_by_its_own_retry_is_repaired(shop, support_user):
    event = make_order_event(shop, 1001, status=Event.Status.RETRY_WAIT)
    Event.objects.filter(pk=event.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    incident = services.open_incident(title="Orders retrying", by=support_user, event_ids=[event.pk])
    assert affected.lookup("#1001")[0].repair_note == f"event {event.pk} waiting to retry"
    drain()
    [order] = affected.lookup("#1001")
    assert (order.incident, order.repair_state, order.repair_note) == (
        incident,
        State.REPAIRED,
        f"event {event.pk} processed",
    )


def test_an_event_resolved_by_support_is_repaired(order_incident, support_user):
    incident, event = order_incident
    assert resolve_event(event=event, by=support_user, note="merchant re-entered it")
    [order] = affected.lookup("#1001")
    assert order.incident == incident
    assert order.repair_state == State.REPAIRED
    assert order.repair_note == f"event {event.pk} was resolved by support"


def test_a_state_a_person_set_sticks_across_refreshes(order_incident, support_user):
    incident, event = order_incident
    record = incident.affected.get(kind=AffectedRecord.Kind.ORDER)
    services.set_repair_state(record, State.NEEDS_MANUAL, by=support_user, note="customer asked for a refund")
    # The event is processed meanwhile: a refresh would say repaired, but a person decided.
    Event.objects.filter(pk=event.pk).update(
        status=Event.Status.PROCESSED, processed_count=1, processed_at=timezone.now()
    )
    assert affected.collect(incident) == 2
    [order] = affected.lookup("#1001")
    assert (order.repair_state, order.repair_note, order.set_by_person) == (
        State.NEEDS_MANUAL,
        "customer asked for a refund",
        True,
    )
    step = incident.steps.filter(kind=IncidentStep.Kind.EDIT).get()
    assert step.text == "Order #1001: waiting → needs_manual. customer asked for a refund"
    with pytest.raises(services.IncidentError, match="repair state must be one of"):
        services.set_repair_state(record, "fixed", by=support_user)
    # The customer record (not set by a person) follows its event.
    assert incident.affected.get(kind=AffectedRecord.Kind.CUSTOMER).repair_state == State.REPAIRED


def test_customers_come_from_order_emails_and_customer_events(shop, support_user):
    order = make_order_event(shop, 1001, email="Ana@Example.com")
    fulfilment = receive(shop, "fulfillments/create", {"id": 88, "order_id": 5_001_002, "name": "#1002.1"})
    customer = receive(shop, "customers/update", {"id": 7001, "email": " Bo@Example.com ", "first_name": "Bo"})
    nameless = receive(shop, "customers/update", {"id": 7002, "first_name": "No e-mail"})
    noise = receive(shop, "products/update", {"id": 1, "title": "Mug"})
    incident = services.open_incident(
        title="Customer sync", by=support_user, event_ids=[order.pk, fulfilment.pk, customer.pk, nameless.pk, noise.pk]
    )
    records = list(incident.affected.order_by("kind", "key").values_list("kind", "key", "shopify_id", "event_id"))
    assert records == [
        ("customer", "ana@example.com", "", order.pk),
        ("customer", "bo@example.com", "7001", customer.pk),
        ("order", "#1001", "5001001", order.pk),
        ("order", "#1002.1", "5001002", fulfilment.pk),
    ]
    assert states("bo@example.com") == [(incident.pk, "customer", "bo@example.com", State.WAITING)]
    assert not incident.affected.get(key="#1002.1").unfulfilled  # a fulfilment event is not an unfulfilled order


def test_the_events_a_linked_replay_covered_are_affected_too(shop, order_incident, support_user):
    incident, _ = order_incident
    other = make_order_event(shop, 1002)
    dry_run = replays.check_replay(selection=for_events([other.pk]), by=support_user)
    replay = replays.do_replay(dry_run, by=support_user, reason="try one", plan_hash=dry_run.plan_hash)
    assert affected.lookup("#1002") == []
    services.link(incident, by=support_user, replay=replay)
    assert states("#1002") == [(incident.pk, "order", "#1002", State.REPLAYED)]
    drain()
    assert states("#1002") == [(incident.pk, "order", "#1002", State.REPAIRED)]


def worksheet(incident, shop, user, resource=Worksheet.Resource.ORDERS) -> Worksheet:
    return Worksheet.objects.create(
        shop=shop, resource=resource, source=Worksheet.Source.INCIDENT, prepared_by=user,
        state=Worksheet.State.APPROVED,
    )  # fmt: skip


def row(sheet, position, key, label, values, *, result="", money=None) -> WorksheetRow:
    return WorksheetRow.objects.create(
        worksheet=sheet, position=position, key=key, label=label, kind=WorksheetRow.Kind.DIFFERS,
        proposal=WorksheetRow.Proposal.WRITE_PLATFORM, result=result, shopify_values=values, platform_values={},
        money=money,
    )  # fmt: skip


def test_worksheet_rows_add_their_records_and_applied_rows_are_repaired(order_incident, shop, support_user):
    incident, event = order_incident
    orders = worksheet(incident, shop, support_user)
    waiting = row(
        orders, 1, "gid://shopify/Order/6002001", "#2001", {"name": "#2001", "email": "Cleo@Example.com"}, money=30
    )
    row(orders, 2, "gid://shopify/Order/6002002", "#2002", {"name": "#2002", "total_price": "45.5"}, result="applied")
    row(orders, 3, "gid://shopify/Order/6002003", "#2003", {"name": "#2003"}, result="failed")
    # The linked event's order is on the worksheet too, and its row was applied.
    row(orders, 4, "gid://shopify/Order/5001001", "#1001", {"name": "#1001"}, result="applied")
    customers = worksheet(incident, shop, support_user, Worksheet.Resource.CUSTOMERS)
    row(customers, 1, "gid://shopify/Customer/9001", "Dee", {"email": "Dee@Example.com"})
    services.link(incident, by=support_user, worksheet=orders)
    services.link(incident, by=support_user, worksheet=customers)

    records = {
        r.key: (r.repair_state, r.repair_note, r.shopify_id, r.total)
        for r in incident.affected.exclude(key="ana@example.com")
    }
    assert records == {
        "#1001": (State.REPAIRED, f"worksheet {orders.pk} applied", "5001001", Decimal("120.00")),
        "#2001": (State.WAITING, f"worksheet {orders.pk}: not applied yet", "6002001", Decimal("30.00")),
        "#2002": (State.REPAIRED, f"worksheet {orders.pk} applied", "6002002", Decimal("45.50")),
        "#2003": (State.NEEDS_MANUAL, f"worksheet {orders.pk}: failed", "6002003", None),
        "dee@example.com": (State.WAITING, f"worksheet {customers.pk}: not applied yet", "9001", None),
    }
    assert states("cleo@example.com") == [(incident.pk, "order", "#2001", State.WAITING)]

    WorksheetRow.objects.filter(pk=waiting.pk).update(result=WorksheetRow.Result.APPLIED)
    assert states("2001") == [(incident.pk, "order", "#2001", State.REPAIRED)]
    assert affected.lookup("#1001")[0].event_id == event.pk


def test_a_lookup_leaves_out_incidents_resolved_more_than_a_week_ago(shop, support_user):
    events = {n: make_order_event(shop, n, email="same@example.com") for n in (1001, 1002, 1003)}
    opened = services.open_incident(title="open", by=support_user, event_ids=[events[1001].pk])
    recent = services.open_incident(title="recent", by=support_user, event_ids=[events[1002].pk])
    old = services.open_incident(title="old", by=support_user, event_ids=[events[1003].pk])
    for incident, days in ((recent, 2), (old, 8)):
        services.resolve(incident, by=support_user, override_reason="fixed by hand")
        Incident.objects.filter(pk=incident.pk).update(resolved_at=timezone.now() - timedelta(days=days))
    assert states("#1003") == []
    assert [key for _i, kind, key, _s in states("same@example.com") if kind == "order"] == ["#1002", "#1001"]
    assert {i for i, _k, _key, _s in states("same@example.com")} == {opened.pk, recent.pk}
    assert states("#1002") == [(recent.pk, "order", "#1002", State.WAITING)]


def test_the_same_order_in_two_incidents_is_found_in_both_newest_first(shop, support_user):
    event = make_order_event(shop, 1001)
    first = services.open_incident(title="first", by=support_user, event_ids=[event.pk])
    Incident.objects.filter(pk=first.pk).update(opened_at=timezone.now() - timedelta(hours=2))
    second = services.open_incident(title="second", by=support_user, event_ids=[event.pk])
    assert [i for i, *_ in states("#1001")] == [second.pk, first.pk]


def refresh_queries(incident, django_assert_max_num_queries, bound: int) -> tuple[int, list[str]]:
    with django_assert_max_num_queries(bound) as captured:
        changed = affected.refresh(AffectedRecord.objects.filter(incident=incident))
    return changed, [q["sql"].split()[0] for q in captured.captured_queries]


@pytest.mark.parametrize("orders", [20, 200])
def test_refreshing_records_takes_the_same_few_queries_however_many(
    shop, support_user, django_assert_max_num_queries, orders
):
    events = [make_order_event(shop, 3000 + n, email="bulk@example.com") for n in range(orders)]
    incident = services.open_incident(title="Many", by=support_user, event_ids=[e.pk for e in events])
    assert incident.affected.count() == orders + 1  # the orders and their one buyer
    Event.objects.filter(pk__in=[e.pk for e in events]).update(
        status=Event.Status.PROCESSED, processed_count=1, processed_at=timezone.now()
    )
    # One read (the records joined to their events, worksheet rows and newest replay items) and the
    # changed states written in bulk (SQLite's parameter limit splits 200 in two).
    changed, queries = refresh_queries(incident, django_assert_max_num_queries, 3)
    assert changed == orders + 1
    assert queries[:1] == ["SELECT"] and set(queries[1:]) == {"UPDATE"}
    assert set(incident.affected.values_list("repair_state", flat=True)) == {State.REPAIRED}
    # Nothing changed: no update at all.
    assert refresh_queries(incident, django_assert_max_num_queries, 1) == (0, ["SELECT"])
    with django_assert_max_num_queries(5):
        found = affected.lookup("bulk@example.com")
    assert len(found) == min(50, orders + 1) and found[0].kind == "customer"
    with django_assert_max_num_queries(14):
        assert affected.collect(incident) == orders + 1
