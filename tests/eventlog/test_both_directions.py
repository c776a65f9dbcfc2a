"""The event log's "All directions": inbound events and outbound calls in one list, newest first
by time, each row with its own template and badge; pages that visit every row once; filters that
apply to both kinds or pick one; live rows of both kinds; one CSV of both; echoes marked in the
event rows; and a fixed number of queries whatever the number of rows."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from integrations.eventlog import export, selectors
from integrations.models import Event, OutboundCall
from tests.factories import DeliveryFactory, EventFactory, OutboundCallFactory, ShopFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST, POLL, EXPORT = reverse("events:list"), reverse("events:poll"), reverse("events:export")
Status = OutboundCall.Status
ROW = re.compile(r'<tr class="log-row[^"]*" id="(event|call)-(\d+)"')


def listed(response) -> list[tuple[str, int]]:
    """("event" | "call", id) of each row, in the order the page lists them."""
    return [(kind, int(pk)) for kind, pk in ROW.findall(response.content.decode())]


def row_html(response, kind: str, pk: int) -> str:
    return re.search(rf'<tr[^>]*id="{kind}-{pk}".*?</tr>', response.content.decode(), re.S).group(0)


def older_link(response) -> str | None:
    match = re.search(r'hx-get="([^"]*cursor=[^"]+)"', response.content.decode())
    return match.group(1).replace("&amp;", "&") if match else None


def by_time(*rows) -> list[tuple[str, int]]:
    """The rows newest first, as the list orders them: by time, calls first at the same time, then id."""

    def key(row):
        if isinstance(row, Event):
            return (row.received_at, False, row.pk)
        return (row.created_at, True, row.pk)

    return [("event" if isinstance(r, Event) else "call", r.pk) for r in sorted(rows, key=key, reverse=True)]


@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def now():
    """A whole minute in the past (the time filters go to the minute)."""
    return timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)


# --- One list, by time ------------------------------------------------------------------------


def test_all_directions_interleaves_events_and_calls_by_time_with_their_badges(support, now):
    # Created in an order unlike their times: the list follows the times, not the ids.
    old_call = OutboundCallFactory(created_at=now - timedelta(minutes=50), target_label="#1001")
    new_event = EventFactory(received_at=now - timedelta(minutes=1), topic="orders/paid")
    mid_event = EventFactory(received_at=now - timedelta(minutes=30))
    new_call = OutboundCallFactory(created_at=now - timedelta(minutes=10), status=Status.FAILED, attempt_count=3)
    old_event = EventFactory(received_at=now - timedelta(hours=2))

    response = support.get(LIST)
    assert listed(response) == [
        ("event", new_event.pk),
        ("call", new_call.pk),
        ("event", mid_event.pk),
        ("call", old_call.pk),
        ("event", old_event.pk),
    ]
    html = response.content.decode()
    assert "Topic · operation" in html and "Webhook id · call" in html  # one header for both kinds
    event_row = row_html(response, "event", new_event.pk)
    assert '<span class="dir dir-inbound"' in event_row and "IN ← webhook" in event_row
    assert "OUT → Shopify" not in event_row and "orders/paid" in event_row
    assert f'href="{reverse("events:detail", args=[new_event.pk])}"' in event_row
    call_row = row_html(response, "call", new_call.pk)
    assert '<span class="dir dir-outbound"' in call_row and "OUT → Shopify" in call_row
    assert "IN ← webhook" not in call_row and "order.add_tags" in call_row and "Failed" in call_row
    assert f'href="{reverse("outbound:detail", args=[new_call.pk])}"' in call_row
    assert f"call #{new_call.pk}" in call_row and re.search(r'<td class="num"[^>]*>3</td>', call_row)
    # Every row has the table's nine cells.
    for kind, pk in listed(response):
        assert row_html(response, kind, pk).count("<td") == 9, (kind, pk)
    assert "#1001" in row_html(response, "call", old_call.pk)


def test_inbound_only_and_outbound_only_are_still_choices(support, now):
    event = EventFactory(received_at=now)
    call = OutboundCallFactory(created_at=now)
    assert listed(support.get(LIST, {"direction": "inbound"})) == [("event", event.pk)]
    assert listed(support.get(LIST, {"direction": "outbound"})) == [("call", call.pk)]
    assert listed(support.get(LIST)) == [("call", call.pk), ("event", event.pk)]  # same time: the call first
    html = support.get(LIST).content.decode()
    assert '<option value="" selected>All directions</option>' in html
    assert '<option value="inbound">Inbound (webhooks)</option>' in html


def _interleaved(now, events: int = 30, calls: int = 25) -> list[tuple[str, int]]:
    """Events every 2 minutes, calls every 2 minutes a minute apart from them, and ties: two events
    at one time, and a call at the same time as an event. Returns the list's order."""
    shop = ShopFactory()
    rows = [EventFactory(shop=shop, received_at=now - timedelta(minutes=2 * i)) for i in range(events)]
    rows += [OutboundCallFactory(shop=shop, created_at=now - timedelta(minutes=2 * i + 1)) for i in range(calls)]
    rows.append(EventFactory(shop=shop, received_at=now - timedelta(minutes=10)))  # same time as another event
    rows.append(OutboundCallFactory(shop=shop, created_at=now - timedelta(minutes=20)))  # same as an event
    return by_time(*rows)


@pytest.mark.parametrize("page_size", [7, 50])
def test_paging_visits_every_row_once_in_order(support, now, monkeypatch, page_size):
    monkeypatch.setattr(selectors, "PAGE_SIZE", page_size)
    expected = _interleaved(now)
    assert len(expected) == 57

    first = support.get(LIST)
    seen, pages = listed(first), 1
    assert len(seen) == page_size
    link = older_link(first)
    while link:
        assert "cursor=" in link
        page = support.get(link, headers={"HX-Request": "true"})
        assert page.status_code == 200 and "<table" not in page.content.decode()  # rows appended in place
        assert 'id="live-poll"' not in page.content.decode()  # older pages do not poll
        rows = listed(page)
        assert 0 < len(rows) <= page_size
        seen += rows
        pages += 1
        link = older_link(page)
    assert seen == expected  # every row once, newest first by time
    assert pages == -(-len(expected) // page_size)
    # Without htmx an older page is a whole page that starts where the cursor says.
    if page_size == 7:
        cursor = older_link(first).split("cursor=")[1]
        whole = support.get(LIST, {"cursor": cursor})
        assert "<table" in whole.content.decode() and listed(whole) == expected[7:14]


def test_a_page_cursor_holds_the_position_in_each_stream(now):
    """A stream none of whose rows a page took keeps its position (or starts from its newest)."""
    events = [EventFactory(received_at=now - timedelta(minutes=i)) for i in range(5)]
    calls = [OutboundCallFactory(created_at=now - timedelta(hours=1, minutes=i)) for i in range(5)]
    log = selectors.build_log_query({})
    first = selectors.mixed_page(log, None, per_page=3)
    assert [row.pk for row in first.rows] == [e.pk for e in events[:3]]
    assert first.next_cursor.startswith("i") and "_o" not in first.next_cursor  # no call taken yet
    second = selectors.mixed_page(log, first.next_cursor, per_page=3)
    assert [row.pk for row in second.rows] == [events[3].pk, events[4].pk, calls[0].pk]
    third = selectors.mixed_page(log, second.next_cursor, per_page=3)
    assert [row.pk for row in third.rows] == [c.pk for c in calls[1:4]]
    last = selectors.mixed_page(log, third.next_cursor, per_page=3)
    assert [row.pk for row in last.rows] == [calls[4].pk] and last.next_cursor is None
    assert (
        selectors.MixedCursor.parse(third.next_cursor).events == selectors.MixedCursor.parse(second.next_cursor).events
    )


@pytest.mark.parametrize(
    "cursor",
    [
        "0",
        "123",
        "i",
        "i1.0",
        "i1.",
        "i.5",
        "x1.5",
        "i1.5_i2.6",
        "o1.5_o2.6",
        "i1.5_o2.6_i3.7",
        "i1.5_",
        "_o1.5",
        "i1.5 ",
        "i1,5",
        f"i1.{2**63}",
        f"i{'9' * 19}.5",
        "i9" + "9" * 17 + ".5",
        "i-" + "9" * 18 + ".5",
        "i\uff11.5",
        "i1.5\x00",
    ],
)
def test_a_bad_cursor_for_both_directions_is_400(support, cursor):
    EventFactory()
    for headers in ({}, {"HX-Request": "true"}):
        assert support.get(LIST, {"cursor": cursor}, headers=headers).status_code == 400, cursor


def test_good_cursors_for_both_directions(support, now):
    event = EventFactory(received_at=now)
    assert listed(support.get(LIST, {"cursor": "i1.1"})) == []  # before 1970: nothing older
    position = (now + timedelta(seconds=1) - selectors._EPOCH) // timedelta(microseconds=1)
    assert listed(support.get(LIST, {"cursor": f"i{position}.{2**63 - 1}"})) == [("event", event.pk)]
    assert listed(support.get(LIST, {"cursor": f"o{position}.1"})) == [("event", event.pk)]


# --- Filters ----------------------------------------------------------------------------------


@pytest.fixture
def both(now):
    """Two shops, each with events and calls in several statuses, interleaved in time."""
    a, b = ShopFactory(), ShopFactory()
    t = iter(range(100))

    def at():
        return now - timedelta(minutes=next(t))

    rows = {
        "a_event_failed": EventFactory(shop=a, status=Event.Status.FAILED, topic="orders/paid", received_at=at()),
        "a_call_failed": OutboundCallFactory(shop=a, status=Status.FAILED, created_at=at(), target_label="#1042"),
        "b_event_processed": EventFactory(
            shop=b, status=Event.Status.PROCESSED, topic="orders/create", resource_label="#1042", received_at=at()
        ),
        "b_call_queued": OutboundCallFactory(shop=b, created_at=at(), operation="product.update"),
        "a_event_queued": EventFactory(shop=a, topic="products/update", received_at=at()),
        "b_call_succeeded": OutboundCallFactory(shop=b, status=Status.SUCCEEDED, created_at=at()),
        "b_event_failed": EventFactory(shop=b, status=Event.Status.FAILED, received_at=at()),
        "a_call_waiting": OutboundCallFactory(
            shop=a, status=Status.WAITING, created_at=at(), operation="customer.add_tags"
        ),
    }
    rows["shops"] = (a, b)
    return rows


def _expect(both, *names) -> list[tuple[str, int]]:
    """The rows named, as the list of both directions orders them (by time)."""
    return by_time(*(both[name] for name in names))


def _one_kind(both, *names) -> list[tuple[str, int]]:
    """The rows named, as a list of one kind orders them: newest first by id (the order they came in)."""
    rows = sorted((both[name] for name in names), key=lambda row: row.pk, reverse=True)
    return [("event" if isinstance(row, Event) else "call", row.pk) for row in rows]


def test_shop_and_shared_statuses_filter_both_kinds(support, both):
    a, b = both["shops"]
    assert listed(support.get(LIST, {"shop": a.domain})) == _expect(
        both, "a_event_failed", "a_call_failed", "a_event_queued", "a_call_waiting"
    )
    # "failed" and "queued" mean the same in both directions: both kinds, in one list.
    response = support.get(LIST, {"status": "failed"})
    assert listed(response) == _expect(both, "a_event_failed", "a_call_failed", "b_event_failed")
    assert "direction=" not in response.context["query"]
    assert listed(support.get(LIST, {"status": "queued"})) == _expect(both, "b_call_queued", "a_event_queued")
    assert listed(support.get(LIST, {"status": "failed", "shop": b.domain})) == _expect(both, "b_event_failed")


def test_a_status_only_one_kind_has_lists_that_kind(support, both):
    # Only webhooks are processed: the inbound list, in its own columns.
    response = support.get(LIST, {"status": "processed"})
    assert listed(response) == _one_kind(both, "b_event_processed")
    assert response.context["log"].kind == "events" and "Topic · operation" not in response.content.decode()
    # Only calls succeed: the outbound list, and its links say so.
    response = support.get(LIST, {"status": "succeeded"})
    assert listed(response) == _one_kind(both, "b_call_succeeded")
    assert response.context["log"].kind == "outbound" and "direction=outbound" in response.context["query"]


@pytest.mark.parametrize(
    ("topic", "names", "kind"),
    [
        ("order.add_tags", ["a_call_failed", "b_call_succeeded"], "outbound"),  # an operation: calls only
        ("customer.", ["a_call_waiting"], "outbound"),  # an operation's beginning
        ("product.update", ["b_call_queued"], "outbound"),
        ("orders/paid", ["a_event_failed"], "events"),  # a topic: events only
        ("orders", ["a_event_failed", "b_event_processed", "b_event_failed"], "events"),  # a topic's beginning
        ("products", ["a_event_queued"], "events"),
    ],
)
def test_the_topic_box_takes_a_topic_or_an_operation(support, both, topic, names, kind):
    response = support.get(LIST, {"topic": topic})
    assert listed(response) == _one_kind(both, *names)
    assert response.context["log"].kind == kind
    assert ("direction=outbound" in response.context["query"]) == (kind == "outbound")


def test_an_operation_under_direction_inbound_is_reported(support, both):
    response = support.get(LIST, {"direction": "inbound", "topic": "order.add_tags"})
    assert "topic" in response.context["form"].errors and "operation of outbound calls" in response.content.decode()
    assert support.get(EXPORT, {"direction": "inbound", "topic": "order.add_tags"}).status_code == 400
    # An operation with a status only webhooks have: the status is reported, the calls listed.
    response = support.get(LIST, {"topic": "order.add_tags", "status": "processed"})
    assert "status" in response.context["form"].errors
    assert listed(response) == _one_kind(both, "a_call_failed", "b_call_succeeded")


def test_search_finds_events_and_calls_alike(support, both):
    # "#1042" is an event's order name and a call's label: both are listed.
    assert listed(support.get(LIST, {"q": "#1042"})) == _expect(both, "a_call_failed", "b_event_processed")
    assert listed(support.get(LIST, {"q": "1042"})) == _expect(both, "a_call_failed", "b_event_processed")
    call = both["b_call_succeeded"]
    assert ("call", call.pk) in listed(support.get(LIST, {"q": call.idempotency_key}))
    event = both["b_event_failed"]
    assert listed(support.get(LIST, {"q": event.webhook_id})) == [("event", event.pk)]
    assert listed(support.get(LIST, {"q": "#1042", "shop": both["shops"][1].domain})) == _expect(
        both, "b_event_processed"
    )


def test_search_in_both_directions_uses_equality_lookups_only(both):
    for q in ("1042", "#1042", "gid://shopify/Order/1", "abc-def", "job:1:x"):
        log = selectors.build_log_query({"q": q})
        assert log.kind == "mixed"
        for _, queryset in log.streams:
            assert "LIKE" not in str(queryset.query).upper(), q


def test_the_time_range_applies_to_both(support, both, now):
    fmt = "%Y-%m-%dT%H:%M"
    since, until = (now - timedelta(minutes=5)).strftime(fmt), (now - timedelta(minutes=1)).strftime(fmt)
    # From 5 minutes ago (included) to 1 minute ago (excluded), whichever the kind.
    assert listed(support.get(LIST, {"received_from": since, "received_to": until})) == _expect(
        both, "b_event_processed", "b_call_queued", "a_event_queued", "b_call_succeeded"
    )


def test_a_webhook_id_finds_its_rejected_requests_in_both_directions(support):
    rejected = DeliveryFactory(event=None, webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    OutboundCallFactory()
    response = support.get(LIST, {"q": "b54557e4"})
    assert response.context["log"].kind == "mixed" and listed(response) == []
    assert f'id="delivery-{rejected.pk}"' in response.content.decode()
    assert "Rejected requests with this webhook id" in response.content.decode()


# --- Live rows --------------------------------------------------------------------------------


def test_poll_in_both_directions_returns_new_events_and_calls(support, now):
    shop = ShopFactory()
    seen_event = EventFactory(shop=shop, received_at=now - timedelta(minutes=5))
    seen_call = OutboundCallFactory(shop=shop, created_at=now - timedelta(minutes=4))
    html = support.get(LIST, {"shop": shop.domain}).content.decode()
    poll = re.search(r'<tr id="live-poll"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert f"after={seen_event.pk}" in poll and f"after_call={seen_call.pk}" in poll

    new_call = OutboundCallFactory(shop=shop)
    new_event = EventFactory(shop=shop)
    OutboundCallFactory()  # another shop
    EventFactory()  # another shop
    response = support.get(poll)
    assert listed(response) == [("event", new_event.pk), ("call", new_call.pk)]  # newest first by time
    body = response.content.decode()
    assert body.strip().startswith('<tr id="live-poll"') and body.count("fresh") == 2
    assert f"after={new_event.pk}" in body and f"after_call={new_call.pk}" in body
    assert row_html(response, "call", new_call.pk).count("<td") == 9  # the list's columns

    again = re.search(r'hx-get="([^"]+)"', body).group(1).replace("&amp;", "&")
    assert listed(support.get(again)) == []
    # Only a call arrives: the event position stays where it was.
    newest = OutboundCallFactory(shop=shop)
    body = support.get(again).content.decode()
    assert re.findall(r'id="call-(\d+)"', body) == [str(newest.pk)]
    assert f"after={new_event.pk}&amp;after_call={newest.pk}" in body


@pytest.mark.parametrize("value", ["-1", "x", "²", str(2**63), "1.5"])
def test_a_bad_call_position_is_400(support, value):
    assert support.get(POLL, {"after": "0", "after_call": value}).status_code == 400


def test_first_page_positions_start_from_each_kind_even_if_one_is_not_shown(support, now):
    """A page full of calls still polls from the newest event there is, not from nothing."""
    event = EventFactory(received_at=now - timedelta(days=1))
    calls = [OutboundCallFactory(created_at=now - timedelta(minutes=i)) for i in range(3)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(selectors, "PAGE_SIZE", 2)
        html = support.get(LIST).content.decode()
    assert re.findall(r'id="(?:event|call)-(\d+)"', html) == [str(calls[0].pk), str(calls[1].pk)]
    assert f"after={event.pk}&amp;after_call={calls[2].pk}" in html
    poll = re.search(r'<tr id="live-poll"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert listed(support.get(poll)) == []  # nothing is new


# --- Export -----------------------------------------------------------------------------------


def read_csv(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_csv_of_both_directions_has_both_kinds_in_one_file(support, both):
    response = support.get(EXPORT, {"status": "failed"})
    assert response["Content-Disposition"].startswith('attachment; filename="events-and-calls-')
    rows = read_csv(response)
    assert rows[0] == [name for name, _, _ in export.MIXED_COLUMNS]
    assert rows[0][:4] == ["direction", "id", "time", "shop"]
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    expected = _expect(both, "a_event_failed", "a_call_failed", "b_event_failed")
    assert [(r["direction"], int(r["id"])) for r in records] == [
        ("inbound" if kind == "event" else "outbound", pk) for kind, pk in expected
    ]
    event, call = records[0], records[1]
    assert event["topic"] == "orders/paid" and event["operation"] == "" and event["webhook_id"]
    assert event["status"] == "failed" and event["time"] == both["a_event_failed"].received_at.isoformat()
    assert call["operation"] == "order.add_tags" and call["topic"] == "" and call["webhook_id"] == ""
    assert call["record"] == "#1042" and call["idempotency_key"] == both["a_call_failed"].idempotency_key
    assert call["time"] == both["a_call_failed"].created_at.isoformat() and call["shop"] == both["shops"][0].domain


def test_csv_of_both_directions_is_capped_on_the_total(support, now, monkeypatch):
    monkeypatch.setattr(export, "EXPORT_MAX_ROWS", 3)
    expected = _interleaved(now, events=3, calls=3)
    rows = read_csv(support.get(EXPORT))
    assert [("event" if r[0] == "inbound" else "call", int(r[1])) for r in rows[1:4]] == expected[:3]
    assert rows[-1][0].startswith("# capped at 3 rows") and len(rows) == 5


def test_the_inbound_and_outbound_exports_keep_their_columns(support, both):
    inbound = read_csv(support.get(EXPORT, {"direction": "inbound"}))
    assert inbound[0] == [name for name, _ in export.EVENT_COLUMNS] and len(inbound) == 5
    outbound = read_csv(support.get(EXPORT, {"direction": "outbound"}))
    assert outbound[0] == [name for name, _ in export.OUTBOUND_COLUMNS] and len(outbound) == 5


# --- Echoes -----------------------------------------------------------------------------------


def test_an_echo_is_marked_in_its_event_row_with_a_link_to_the_call(support, now):
    call = OutboundCallFactory(status=Status.SUCCEEDED, created_at=now - timedelta(minutes=1))
    echo = EventFactory(shop=call.shop, topic="orders/updated", echo_of=call, received_at=now)
    plain = EventFactory(shop=call.shop, received_at=now - timedelta(minutes=2))
    call_url = reverse("outbound:detail", args=[call.pk])
    for params in ({}, {"direction": "inbound"}, {"topic": "orders/updated"}):
        response = support.get(LIST, params)
        row = row_html(response, "event", echo.pk)
        assert f'<a class="pill pill-echo" href="{call_url}"' in row and f"echo of call #{call.pk}" in row, params
    assert "pill-echo" not in row_html(support.get(LIST), "event", plain.pk)


def test_without_the_right_to_see_calls_the_echo_is_named_not_linked(client, now):
    user = UserFactory(username="events-only")
    user.user_permissions.set(Permission.objects.filter(codename="view_event"))
    client.force_login(user)
    call = OutboundCallFactory()
    echo = EventFactory(shop=call.shop, echo_of=call)
    row = row_html(client.get(LIST), "event", echo.pk)
    assert f"echo of call #{call.pk}" in row and reverse("outbound:detail", args=[call.pk]) not in row


# --- Rights -----------------------------------------------------------------------------------


def test_without_the_right_to_see_calls_all_directions_lists_webhooks(client, now):
    user = UserFactory(username="events-only")
    user.user_permissions.set(Permission.objects.filter(codename="view_event"))
    client.force_login(user)
    event = EventFactory(received_at=now)
    OutboundCallFactory(created_at=now)
    response = client.get(LIST)
    assert response.status_code == 200 and listed(response) == [("event", event.pk)]
    assert response.context["log"].kind == "events" and "OUT → Shopify" not in response.content.decode()
    poll = client.get(POLL, {"after": 0})
    assert poll.status_code == 200 and listed(poll) == [("event", event.pk)]
    rows = read_csv(client.get(EXPORT))
    assert rows[0] == [name for name, _ in export.EVENT_COLUMNS] and len(rows) == 2
    # A filter only calls have still asks for calls: refused.
    for params in ({"topic": "order.add_tags"}, {"status": "succeeded"}):
        for url in (LIST, POLL, EXPORT):
            assert client.get(url, params).status_code == 403, (url, params)


def test_the_list_of_both_directions_has_no_inline_code(client, admin_user, now):
    from tests.test_security import inline_code

    call = OutboundCallFactory(shop=ShopFactory(queue_paused=True), created_at=now, classification="retryable")
    EventFactory(shop=call.shop, echo_of=call, received_at=now)
    client.force_login(admin_user)
    for url in (LIST, f"{POLL}?after=0&after_call=0"):
        response = client.get(url)
        assert response.status_code == 200 and inline_code(response.content.decode()) == [], url


# --- Query counts -----------------------------------------------------------------------------


def _rows(n: int, now) -> None:
    shops = [ShopFactory(queue_paused=i == 1) for i in range(3)]
    for i in range(n):
        call = OutboundCallFactory(
            shop=shops[i % 3],
            status=[Status.QUEUED, Status.FAILED, Status.SUCCEEDED][i % 3],
            created_at=now - timedelta(minutes=2 * i + 1),
            target_label=f"#{1000 + i}",
        )
        EventFactory(
            shop=shops[i % 3],
            status=[Event.Status.FAILED, Event.Status.PROCESSED, Event.Status.QUEUED][i % 3],
            received_at=now - timedelta(minutes=2 * i),
            resource_label=f"#{1000 + i}",
            echo_of=call if i % 2 else None,
        )


def _count_queries(client, params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(LIST, params).status_code == 200
    return len(ctx.captured_queries)


# Measured: session, user, 2 permission loads, events, calls, which events arrived out of order,
# nav groups, saved views, shop choices (10); a search also reads the shop ids once for both kinds
# and the rejected requests with that webhook id.
@pytest.mark.parametrize(
    ("params", "most"), [({}, 10), ({"status": "failed"}, 10), ({"q": "#1003"}, 10), ({"q": "1003"}, 12)]
)
def test_query_count_of_both_directions_does_not_grow_with_rows(
    support, django_assert_max_num_queries, now, params, most
):
    _rows(5, now)
    few = _count_queries(support, params)
    _rows(50, now - timedelta(days=1))
    with django_assert_max_num_queries(most) as captured:
        response = support.get(LIST, params)
    assert len(captured) == few
    if not params:
        kinds = [kind for kind, _ in listed(response)]
        assert len(kinds) == 50 and kinds.count("call") == 25  # both kinds, alternating in time
        with django_assert_max_num_queries(most):  # an older page costs no more
            assert len(listed(support.get(older_link(response), headers={"HX-Request": "true"}))) == 50


def test_poll_query_count_does_not_grow_with_rows(support, django_assert_num_queries, now):
    _rows(3, now)
    with CaptureQueriesContext(connection) as ctx:
        support.get(POLL, {"after": 0, "after_call": 0})
    _rows(40, now - timedelta(days=1))
    with django_assert_num_queries(len(ctx.captured_queries)):
        response = support.get(POLL, {"after": 0, "after_call": 0})
    assert len(listed(response)) == 86


# --- PostgreSQL plans -------------------------------------------------------------------------


def _plan(queryset) -> str:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE integrations_event")
        cursor.execute("ANALYZE integrations_outboundcall")
        cursor.execute("SET LOCAL enable_seqscan = off")  # inside the test's transaction
    return queryset.explain()


@pytest.mark.parametrize(
    ("kind", "index"), [("events", "int_event_received_idx"), ("outbound", "int_call_created_idx")]
)
def test_an_older_page_of_each_stream_is_a_range_of_its_time_index(kind, index, now):
    """Deep pages cost what the first does: the cursor's time is the index condition, no sort of the table."""
    if connection.vendor != "postgresql":
        pytest.skip("planner behaviour is PostgreSQL's")
    _rows(30, now)
    log = selectors.build_log_query({})
    queryset = dict(log.streams)[kind]
    field = selectors.TIME_FIELD[kind]
    position = selectors.StreamPosition(now - timedelta(minutes=20), 10)
    plan = _plan(selectors.older_than(queryset, field, position)[:51])
    assert "Seq Scan" not in plan, plan
    assert index in plan, plan
    conditions = [line for line in plan.splitlines() if "Index Cond" in line and field in line]
    assert conditions and "<=" in conditions[0], plan


@pytest.mark.parametrize("per_shop", [True, False], ids=["shop page", "dashboard"])
def test_call_counts_read_the_backlog_and_the_recent_failures_not_the_history(per_shop):
    if connection.vendor != "postgresql":
        pytest.skip("planner behaviour is PostgreSQL's")
    shop = ShopFactory()
    now = timezone.now()
    OutboundCall.objects.bulk_create(
        OutboundCall(
            shop=shop,
            operation="order.add_tags",
            input={},
            origin="job",
            idempotency_key=f"k{n}",
            status=Status.FAILED if n % 10 == 0 else Status.SUCCEEDED,
            finished_at=now,
            created_at=now - timedelta(hours=n % 2000),
        )
        for n in range(4000)
    )
    calls = selectors.counted_calls(now - timedelta(hours=24), shop if per_shop else None)
    plan = _plan(calls.values_list("status").annotate(n=Count("id")).order_by())
    # The failures are a range of the partial index on failed calls' created_at, not the history.
    assert "Seq Scan" not in plan and "int_call_failed_idx" in plan, plan
    failed = [line for line in plan.splitlines() if "int_call_failed_idx" in line]
    cond = plan.split(failed[0], 1)[1].splitlines()[1]
    assert "Index Cond" in cond and "created_at >=" in cond, plan
