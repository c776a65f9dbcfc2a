"""Every parameter of the event log's pages is validated: bad input is a form error (the list, a
saved view) or a 400 (cursor, live poll, CSV export), a missing object a 404, never a 500.

Each test sweeps a class of values, not one example: non-ASCII digits, integers beyond 64 bits
(SQLite raises OverflowError if one reaches it), NUL and other control characters, text over the
field's length, undecodable bytes, dates at the ends of the calendar.
"""

from urllib.parse import quote

import pytest
from django.test import override_settings
from django.urls import reverse

from integrations.models import Event, EventHistory, SavedView
from tests.factories import DeliveryFactory, EventFactory

pytestmark = pytest.mark.django_db

LIST, POLL, EXPORT = reverse("events:list"), reverse("events:poll"), reverse("events:export")
BEYOND_64_BITS = ["9" * 20, str(2**63), str(2**64 + 1), "9" * 300]
# Superscripts, Arabic-Indic, fullwidth, NKo and mathematical digits: str.isdigit() is True for all.
NON_ASCII_DIGITS = ["²", "²³", "١٢٣", "\uff11\uff12\uff13", "߁", "\U0001d7d8\U0001d7d9"]
TEXT = [
    *NON_ASCII_DIGITS,
    *BEYOND_64_BITS,
    *(f"#{n}" for n in BEYOND_64_BITS),
    "#²",
    "a\x00b",
    "\x00",
    "\x1b[31m",
    "x" * 2000,
    "%",
    "_",
    "\\",
    "' OR 1=1 --",
    "gid://",
    "gid://shopify/Order/²",
    "\U0010ffff",
    "wh-\U0010ffff-prefix",
]
INTEGERS = [*NON_ASCII_DIGITS, *BEYOND_64_BITS, "-1", "+5", " 5", "1e3", "0x10", "5.0", "abc", "\x00"]
DATES = ["0001-01-01T00:00", "9999-12-31T23:59", "2026-13-45T99:99", "²", "1899-12-31T23:59", "9" * 30]


@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    client.raise_request_exception = False  # a 500 is an answer to check, not an exception here
    return client


@pytest.fixture(autouse=True)
def rows():
    event = EventFactory(webhook_id="b54557e4-bdd9-4b37-8a5f-bf7d70bcd043", resource_label="#1042")
    DeliveryFactory(event=event)
    DeliveryFactory(event=None, webhook_id="c0ffee00-0000-4000-8000-000000000000")
    return event


def _get(client, url, params):
    response = client.get(url, params)
    if hasattr(response, "streaming_content"):
        response.body = b"".join(response.streaming_content)  # a failure inside the stream is a 500 too
    return response


@pytest.mark.parametrize("name", ["q", "topic", "shop"])
@pytest.mark.parametrize("value", TEXT)
@pytest.mark.parametrize("status", ["", "rejected", "failed"])
def test_text_filters_never_fail_on_any_page(support, name, value, status):
    params = {name: value, "status": status}
    list_page = _get(support, LIST, params)
    assert list_page.status_code == 200, (name, value)
    for url in (POLL, EXPORT):
        # Valid text (a search for "²" finds nothing) answers 200; text a field refuses (NUL, too
        # long, an unknown shop) is a 400 naming the field, never the whole log instead.
        response = _get(support, url, params)
        assert response.status_code in (200, 400), (url, name, value, response.status_code)
        if response.status_code == 400:
            assert list_page.context["form"].errors, "refused by the poll or export, accepted by the list"


@pytest.mark.parametrize("q", NON_ASCII_DIGITS)
@pytest.mark.parametrize("status", ["", "rejected", "failed"])
def test_non_ascii_digits_are_text_not_numbers(support, q, status):
    """ "²" is not a number: no int() of it (a 500 before), and fullwidth 123 does not find event 123."""
    response = support.get(LIST, {"q": q, "status": status})
    assert response.status_code == 200
    assert not response.context["page"].rows
    rows = b"".join(support.get(EXPORT, {"q": q, "status": status}).streaming_content).decode().splitlines()
    assert len(rows) == 1  # the header only


@pytest.mark.parametrize("value", [*INTEGERS, "0"])
@pytest.mark.parametrize("direction", ["", "inbound", "outbound"])
def test_a_bad_cursor_is_400(support, value, direction):
    for headers in ({}, {"HX-Request": "true"}):
        response = support.get(LIST, {"cursor": value, "direction": direction}, headers=headers)
        assert response.status_code == 400, (value, response.status_code)


@pytest.mark.parametrize("value", INTEGERS)
def test_a_bad_poll_position_is_400(support, value):
    assert support.get(POLL, {"after": value}).status_code == 400
    assert support.get(POLL, {"after": "0", "after_call": value}).status_code == 400


def test_good_positions_still_work(support, rows):
    # A list of one kind pages by id; both directions by a position in each (test_both_directions.py).
    for direction in ("inbound", "outbound"):
        assert support.get(LIST, {"direction": direction, "cursor": str(2**63 - 1)}).status_code == 200
    assert support.get(LIST, {"status": "rejected", "cursor": str(2**63 - 1)}).status_code == 200
    assert support.get(LIST, {"cursor": "i1.1_o1.1"}).status_code == 200
    assert support.get(LIST, {"cursor": ""}).status_code == 200
    assert support.get(POLL, {"after": "0"}).status_code == 200
    assert support.get(POLL, {"after": str(2**63 - 1)}).status_code == 200
    assert support.get(POLL, {"after": "0", "after_call": str(2**63 - 1)}).status_code == 200


@pytest.mark.parametrize("value", DATES)
@pytest.mark.parametrize("name", ["received_from", "received_to"])
def test_dates_out_of_range_are_form_errors(support, name, value):
    response = support.get(LIST, {name: value})
    assert response.status_code == 200
    assert name in response.context["form"].errors
    assert "not applied" in response.content.decode()
    assert support.get(POLL, {name: value}).status_code == 400
    assert support.get(EXPORT, {name: value}).status_code == 400


@override_settings(TIME_ZONE="Asia/Tokyo")
@pytest.mark.parametrize("value", ["0001-01-01T00:00", "9999-12-31T23:59"])
def test_calendar_ends_in_a_zone_far_from_utc(support, value):
    """Converting year 1 (or 9999) to UTC overflows: refused before any query."""
    assert support.get(LIST, {"received_from": value}).status_code == 200
    assert support.get(EXPORT, {"received_to": value}).status_code == 400


def test_received_before_must_follow_received_from(support):
    response = support.get(LIST, {"received_from": "2026-05-02T10:00", "received_to": "2026-05-01T10:00"})
    assert "received_to" in response.context["form"].errors
    assert (
        support.get(EXPORT, {"received_from": "2026-05-02T10:00", "received_to": "2026-05-01T10:00"}).status_code == 400
    )


@pytest.mark.parametrize(("name", "value"), [("status", "bogus"), ("status", "²"), ("direction", "sideways")])
def test_unknown_choices_are_form_errors(support, name, value):
    response = support.get(LIST, {name: value})
    assert response.status_code == 200 and name in response.context["form"].errors
    assert support.get(EXPORT, {name: value}).status_code == 400


@pytest.mark.parametrize("raw", ["q=%ED%A0%80", "q=%FF%FE", "topic=%C0%AF", "shop=%00", "cursor=%EF%BC%91"])
def test_undecodable_query_strings(support, raw):
    response = support.get(f"{LIST}?{raw}")
    assert response.status_code in (200, 400)
    assert support.get(f"{EXPORT}?{raw}").status_code in (200, 400)


def test_export_refuses_invalid_filters_rather_than_exporting_everything(support):
    response = support.get(EXPORT, {"shop": "nope.myshopify.com"})
    assert response.status_code == 400
    assert b"Shop" in response.content


@pytest.mark.parametrize("pk", ["9" * 20, str(2**63), "9" * 100])
def test_ids_in_paths_beyond_64_bits_are_404(support, pk):
    for url in (f"/events/{pk}/", f"/events/deliveries/{pk}/"):
        assert support.get(url).status_code == 404, url
    for url in (
        f"/events/{pk}/resolve/",
        f"/events/{pk}/assign/",
        f"/events/{pk}/tags/",
        f"/events/views/{pk}/delete/",
    ):
        assert support.post(url).status_code == 404, url
    assert support.post(f"/events/{pk}/mark-failed/", {"reason": "x"}).status_code == 404


@pytest.mark.parametrize("value", ["²", "9" * 25, "-1", "\x00", "abc"])
def test_assign_to_a_bad_user_id_is_a_form_error(support, value):
    event = EventFactory(status=Event.Status.FAILED)
    response = support.post(reverse("events:assign", args=[event.pk]), {"assignee": value}, follow=True)
    assert response.status_code == 200
    assert "Pick a member of support or admin" in response.content.decode()
    assert not EventHistory.objects.filter(event=event).exists()


# --- Saved views --------------------------------------------------------------------------------


@pytest.mark.parametrize("q", ["²", "١٢٣", "9" * 25, "#" + "9" * 25])
@pytest.mark.parametrize("status", ["", "rejected"])
def test_a_saved_view_holding_odd_search_text_opens(support, support_user, q, status):
    query = f"q={quote(q)}" + (f"&status={status}" if status else "")
    assert support.post(reverse("events:save_view"), {"name": "odd", "query": query}).status_code == 302
    view = SavedView.objects.get(user=support_user, name="odd")
    response = support.get(f"{LIST}?{view.query}")
    assert response.status_code == 200
    assert f'href="{LIST}?{view.query}"'.replace("&", "&amp;") in response.content.decode()


@pytest.mark.parametrize(
    "query",
    ["received_from=0001-01-01T00:00", "status=bogus", "shop=nope.myshopify.com", "q=a%00b", f"q={'x' * 300}"],
)
def test_a_saved_view_with_invalid_filters_is_refused(support, support_user, query):
    response = support.post(reverse("events:save_view"), {"name": "bad", "query": query}, follow=True)
    assert response.status_code == 200
    assert "Not saved:" in response.content.decode()
    assert not SavedView.objects.filter(user=support_user).exists()


@pytest.mark.parametrize(
    "query", ["cursor=" + "9" * 30, "received_from=0001-01-01T00:00", "q=%C2%B2&status=rejected", "status=bogus"]
)
def test_a_saved_view_stored_before_validation_still_opens(support, support_user, query):
    """Rows written by older code (or by hand) hold anything: the list validates them like any link."""
    view = SavedView.objects.create(user=support_user, name="old", query=query)
    assert support.get(LIST).status_code == 200  # lists the view
    # The link keeps only filters; a cursor in it answers 400 (it is not a filter).
    assert support.get(f"{LIST}?{view.query}").status_code in (200, 400)
    assert support.get(f"{LIST}?{view.query}").status_code != 500


@pytest.mark.parametrize("name", ["", "x" * 81, "a\x00b"])
def test_a_saved_view_needs_a_proper_name(support, support_user, name):
    response = support.post(reverse("events:save_view"), {"name": name, "query": "status=failed"}, follow=True)
    assert response.status_code == 200
    assert not SavedView.objects.filter(user=support_user).exists()
