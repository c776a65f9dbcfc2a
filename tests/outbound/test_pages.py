"""The outbound pages: calls in the event log (filters, search, live poll, CSV), the call page
(state, next step, what we sent, why, every try, echoes), sending again, pausing and resuming a
shop's queue, and the dashboard's outbound figures. Data from factories; nothing is sent."""

import csv
import io
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from console.models import AuditEntry
from integrations.eventlog import export, selectors
from integrations.models import Event, OutboundCall
from integrations.outbound.classify import NEXT_STEPS
from tests.factories import EventFactory, OutboundAttemptFactory, OutboundCallFactory, ShopFactory, UserFactory

pytestmark = pytest.mark.django_db

LIST = reverse("events:list")
POLL = reverse("events:poll")
EXPORT = reverse("events:export")
OUT = {"direction": "outbound"}
Status = OutboundCall.Status


def calls_shown(response) -> list[int]:
    """Call ids in the order the log lists them."""
    return [int(pk) for pk in re.findall(r'id="call-(\d+)"', response.content.decode())]


def events_shown(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="event-(\d+)"', response.content.decode())]


def failed_call(**fields) -> OutboundCall:
    """A call that failed on its second try: a 503 first (retried), then 403 ACCESS_DENIED."""
    kind = "missing_scope"
    call = OutboundCallFactory(
        status=Status.FAILED,
        classification=OutboundCall.Classification.NON_RETRYABLE,
        failure_kind=kind,
        reason="access denied: Access denied for tagsAdd field. [ACCESS_DENIED]",
        next_step=NEXT_STEPS[kind][1],
        attempt_count=2,
        **fields,
    )
    OutboundAttemptFactory(
        call=call,
        number=1,
        outcome="retry",
        http_status=503,
        classification="retryable",
        failure_kind="server_error",
        message="Shopify answered HTTP 503: upstream unavailable",
        retry_after=2.5,
        response_excerpt='{"errors": "upstream unavailable"}',
        request_id="req-first-0001",
    )
    OutboundAttemptFactory(
        call=call,
        number=2,
        outcome="failed",
        http_status=403,
        error_codes=["ACCESS_DENIED"],
        classification="non_retryable",
        failure_kind=kind,
        message="access denied: Access denied for tagsAdd field. [ACCESS_DENIED]",
        requested_cost=10,
        actual_cost=1,
        bucket_available=1990.0,
        bucket_maximum=2000.0,
        restore_rate=100.0,
        deprecation="tagsAdd input.tags is deprecated",
        duration_ms=87,
    )
    return call


@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    return client


@pytest.fixture
def viewer(db):
    """Sees calls and tries, may not send, pause or resume (no role has exactly this; it shows the check)."""
    user = UserFactory(username="vic-viewer")
    perms = ["view_event", "view_shop", "view_outboundcall", "view_outboundattempt"]
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="integrations", codename__in=perms))
    return user


# --- The log --------------------------------------------------------------------------------


def test_outbound_log_lists_calls_with_their_badge_and_inbound_keeps_its_own(support):
    paused_shop = ShopFactory(queue_paused=True)
    event = EventFactory()
    first = OutboundCallFactory(target_label="#1001")
    second = failed_call(shop=paused_shop)

    response = support.get(LIST, OUT)
    html = response.content.decode()
    assert calls_shown(response) == [second.pk, first.pk]
    assert events_shown(response) == []
    row = re.search(rf'<tr[^>]*id="call-{second.pk}".*?</tr>', html, re.S).group(0)
    assert '<span class="dir dir-outbound"' in row and "OUT → Shopify" in row
    assert f'href="{reverse("outbound:detail", args=[second.pk])}"' in row
    assert '<span class="pill pill-paused">paused</span>' in row  # the shop's queue is paused
    assert "order.add_tags" in row and "Failed" in row and "not retryable" in row
    assert re.search(r'<td class="num">2</td>\s*</tr>', row)  # tries
    first_row = re.search(rf'<tr[^>]*id="call-{first.pk}".*?</tr>', html, re.S).group(0)
    assert "#1001" in first_row and "pill-paused" not in first_row and "Live" in first_row and "Job" in first_row
    assert 'datetime="' in first_row and 'class="rel"' in first_row  # absolute beside relative

    inbound = support.get(LIST, {"direction": "inbound"})
    assert events_shown(inbound) == [event.pk] and calls_shown(inbound) == []
    assert "IN ← webhook" in inbound.content.decode()
    assert "OUT → Shopify</span></td>" not in inbound.content.decode()
    assert "Outbound (API calls we make)" in inbound.content.decode()
    # All directions: both kinds in one list, each with its badge.
    both = support.get(LIST)
    assert events_shown(both) == [event.pk] and calls_shown(both) == [second.pk, first.pk]
    assert "OUT → Shopify</span></td>" in both.content.decode() and "IN ← webhook</span></td>" in both.content.decode()


def test_rejected_rows_carry_the_in_badge(support):
    from tests.factories import DeliveryFactory

    rejected = DeliveryFactory(event=None)
    html = support.get(LIST, {"status": "rejected"}).content.decode()
    row = re.search(rf'<tr[^>]*id="delivery-{rejected.pk}".*?</tr>', html, re.S).group(0)
    assert '<span class="dir dir-inbound"' in row and "IN ← webhook" in row


def test_empty_outbound_log_says_so(support):
    EventFactory()
    html = support.get(LIST, OUT).content.decode()
    assert "No outbound calls match these filters" in html
    assert "none recorded yet" not in html


def test_filters_by_shop_status_and_operation(support):
    shop_a, shop_b = ShopFactory(), ShopFactory()
    a_queued = OutboundCallFactory(shop=shop_a)
    a_failed = failed_call(shop=shop_a)
    b_failed = failed_call(shop=shop_b)
    b_waiting = OutboundCallFactory(shop=shop_b, status=Status.WAITING, operation="customer.add_tags")
    b_product = OutboundCallFactory(
        shop=shop_b, status=Status.SUCCEEDED, operation="product.update", target_gid="gid://shopify/Product/7"
    )

    assert calls_shown(support.get(LIST, {**OUT, "shop": shop_a.domain})) == [a_failed.pk, a_queued.pk]
    assert calls_shown(support.get(LIST, {**OUT, "status": "failed"})) == [b_failed.pk, a_failed.pk]
    assert calls_shown(support.get(LIST, {**OUT, "status": "failed", "shop": shop_b.domain})) == [b_failed.pk]
    assert calls_shown(support.get(LIST, {**OUT, "status": "waiting"})) == [b_waiting.pk]
    assert calls_shown(support.get(LIST, {**OUT, "topic": "product.update"})) == [b_product.pk]
    # An operation's beginning: every customer.… operation.
    assert calls_shown(support.get(LIST, {**OUT, "topic": "customer"})) == [b_waiting.pk]
    assert calls_shown(support.get(LIST, {**OUT, "topic": "order.add_tags", "shop": shop_a.domain})) == [
        a_failed.pk,
        a_queued.pk,
    ]


def test_failed_means_failed_in_both_directions(support):
    event = EventFactory(status=Event.Status.FAILED)
    EventFactory(status=Event.Status.PROCESSED)
    call = failed_call()
    OutboundCallFactory(status=Status.SUCCEEDED)

    inbound = support.get(LIST, {"direction": "inbound", "status": "failed"})
    assert events_shown(inbound) == [event.pk] and calls_shown(inbound) == []
    outbound = support.get(LIST, {**OUT, "status": "failed"})
    assert calls_shown(outbound) == [call.pk] and events_shown(outbound) == []
    both = support.get(LIST, {"status": "failed"})
    assert events_shown(both) == [event.pk] and calls_shown(both) == [call.pk]


def test_a_status_only_calls_have_picks_the_outbound_direction(support):
    done = OutboundCallFactory(status=Status.SUCCEEDED)
    OutboundCallFactory()
    response = support.get(LIST, {"status": "succeeded"})
    assert calls_shown(response) == [done.pk]
    assert "direction=outbound" in response.context["query"]
    # When the direction says otherwise, the status is reported and not applied.
    contrary = support.get(LIST, {"direction": "inbound", "status": "succeeded"})
    assert "status" in contrary.context["form"].errors and calls_shown(contrary) == []
    assert "status of outbound calls" in contrary.content.decode()
    rejected = support.get(LIST, {**OUT, "status": "rejected"})
    assert "status" in rejected.context["form"].errors
    assert support.get(EXPORT, {**OUT, "status": "rejected"}).status_code == 400


def test_outbound_filters_name_what_they_mean(support):
    html = support.get(LIST, OUT).content.decode()
    assert "Created from" in html and "Created before" in html and ">Operation" in html
    status_select = re.search(r'<select name="status".*?</select>', html, re.S).group(0)
    assert 'value="paused"' in status_select and 'value="retry_wait"' not in status_select
    assert '<option value="order.add_tags"' in html  # operations offered in the box's suggestions


def test_date_range_filters_on_when_the_call_was_made(support):
    now = timezone.now().replace(second=0, microsecond=0)
    old = OutboundCallFactory(created_at=now - timedelta(days=2))
    mid = OutboundCallFactory(created_at=now - timedelta(hours=5))
    new = OutboundCallFactory(created_at=now - timedelta(minutes=5))
    fmt = "%Y-%m-%dT%H:%M"
    since, until = (now - timedelta(days=1)).strftime(fmt), (now - timedelta(hours=1)).strftime(fmt)
    assert calls_shown(support.get(LIST, {**OUT, "received_from": since})) == [new.pk, mid.pk]
    assert calls_shown(support.get(LIST, {**OUT, "received_to": until})) == [mid.pk, old.pk]
    assert calls_shown(support.get(LIST, {**OUT, "received_from": since, "received_to": until})) == [mid.pk]


@pytest.fixture
def searchable():
    shop = ShopFactory()
    order = OutboundCallFactory(
        shop=shop,
        target_gid="gid://shopify/Order/820982911946154508",
        target_label="#1042",
        idempotency_key="job:sync_order:77:order.add_tags:abc123",
    )
    product = OutboundCallFactory(
        shop=shop,
        operation="product.update",
        target_gid="gid://shopify/Product/632910392",
        target_label="Winter hat",
        input={"product": {"id": "gid://shopify/Product/632910392", "title": "Winter hat"}},
        idempotency_key="person:ada:product.update:f00d",
    )
    other = OutboundCallFactory(shop=shop, target_gid="gid://shopify/Order/1", target_label="#1043")
    return order, product, other


@pytest.mark.parametrize(
    ("q", "which"),
    [
        ("#1042", "order"),  # order name
        ("1042", "order"),  # order name without '#'
        (" #1042 ", "order"),  # stray spaces
        ("gid://shopify/Order/820982911946154508", "order"),  # the record's gid
        ("820982911946154508", "order"),  # the record's id
        ("job:sync_order:77:order.add_tags:abc123", "order"),  # idempotency key
        ("product.update", "product"),  # operation name
        ("Winter hat", "product"),  # a label that is not an order name
        ("632910392", "product"),  # a product id
        ("person:ada:product.update:f00d", "product"),
    ],
)
def test_search_finds_the_right_call_and_no_other(support, searchable, q, which):
    order, product, _ = searchable
    expected = {"order": order, "product": product}[which]
    assert calls_shown(support.get(LIST, {**OUT, "q": q})) == [expected.pk]


def test_search_by_call_id_and_nothing_by_part_of_an_identifier(support, searchable):
    order, _, other = searchable
    assert calls_shown(support.get(LIST, {**OUT, "q": str(other.pk)})) == [other.pk]
    for partial in ("#104", "gid://shopify/Order/82098", "order.add", "job:sync_order", "Winter"):
        assert calls_shown(support.get(LIST, {**OUT, "q": partial})) == [], partial
    # The shop filter narrows a search too.
    assert calls_shown(support.get(LIST, {**OUT, "q": "#1042", "shop": ShopFactory().domain})) == []
    assert calls_shown(support.get(LIST, {**OUT, "q": "#1042", "shop": order.shop.domain})) == [order.pk]


def test_call_search_uses_equality_lookups_only():
    ShopFactory()
    for q in ("1042", "#1042", "gid://shopify/Order/1", "product.update", "job:1:x"):
        sql = str(selectors.build_log_query({"direction": "outbound", "q": q}).queryset.query)
        assert "LIKE" not in sql.upper(), q


@pytest.mark.parametrize(
    "filters",
    [
        {"q": "1042"},
        {"q": "#1042"},
        {"q": "gid://shopify/Order/1"},
        {"q": "job:1:order.add_tags:x"},
        {"status": "failed"},
        {"topic": "order"},
    ],
)
def test_call_queries_can_use_the_call_indexes(filters):
    """With sequential scans priced out, a plan that still scans the table has no index to use."""
    if connection.vendor != "postgresql":
        pytest.skip("planner behaviour is PostgreSQL's")
    ShopFactory.create_batch(3)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = selectors.build_log_query({"direction": "outbound", **filters}).queryset.order_by("-pk")[:51].explain()
    assert "Seq Scan on integrations_outboundcall" not in plan, plan


def test_dashboard_outbound_counts_can_use_the_status_index():
    if connection.vendor != "postgresql":
        pytest.skip("planner behaviour is PostgreSQL's")
    from integrations.eventlog import dashboard

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    since = timezone.now()
    plan = OutboundCall.objects.filter(dashboard.outbound_counted(since)).explain()
    assert "Seq Scan on integrations_outboundcall" not in plan, plan
    assert dashboard.outbound_stats(since)["failed"] == 0


def test_older_pages_of_calls(support):
    shop = ShopFactory()
    calls = [OutboundCallFactory(shop=shop) for _ in range(55)]
    html = support.get(LIST, {**OUT, "shop": shop.domain}).content.decode()
    assert len(re.findall(r'id="call-\d+"', html)) == 50
    older = re.search(r'hx-get="([^"]*cursor=\d+)"', html).group(1).replace("&amp;", "&")
    assert "direction=outbound" in older
    rest = support.get(older, headers={"HX-Request": "true"})
    assert calls_shown(rest) == [c.pk for c in reversed(calls[:5])]


# --- Live poll and export -------------------------------------------------------------------


def test_poll_returns_new_calls_only(support):
    shop = ShopFactory()
    seen = OutboundCallFactory(shop=shop)
    html = support.get(LIST, {**OUT, "shop": shop.domain}).content.decode()
    poll = re.search(r'<tr id="live-poll"[^>]*hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert "direction=outbound" in poll and f"after={seen.pk}" in poll

    newer = OutboundCallFactory(shop=shop)
    OutboundCallFactory()  # another shop: filtered out
    EventFactory(shop=shop)  # an event is not a call
    response = support.get(poll)
    assert calls_shown(response) == [newer.pk]
    body = response.content.decode()
    assert body.strip().startswith('<tr id="live-poll"') and f"after={newer.pk}" in body and "fresh" in body
    assert calls_shown(support.get(POLL, {**OUT, "shop": shop.domain, "after": newer.pk})) == []


def test_csv_export_of_outbound_calls(support):
    call = failed_call(target_label="=HYPERLINK(1)")
    OutboundCallFactory(status=Status.SUCCEEDED)
    EventFactory()  # not exported with the calls
    response = support.get(EXPORT, {**OUT, "status": "failed"})
    assert response.status_code == 200
    assert response["Content-Disposition"].startswith('attachment; filename="outbound-calls-')
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == [name for name, _ in export.OUTBOUND_COLUMNS]
    assert rows[0] == [
        "id", "created_at", "shop", "operation", "target", "label", "lane", "origin", "origin_ref",
        "idempotency_key", "status", "classification", "failure_kind", "attempts", "reason", "next_step",
    ]  # fmt: skip
    assert len(rows) == 2
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record["id"] == str(call.pk) and record["shop"] == call.shop.domain
    assert record["operation"] == "order.add_tags" and record["target"] == call.target_gid
    assert record["label"] == "'=HYPERLINK(1)"  # never a formula in a spreadsheet
    assert record["status"] == "failed" and record["classification"] == "non_retryable"
    assert record["failure_kind"] == "missing_scope" and record["attempts"] == "2"
    assert record["next_step"] == NEXT_STEPS["missing_scope"][1]
    assert record["idempotency_key"] == call.idempotency_key


# --- Rights on the log ----------------------------------------------------------------------


def test_outbound_log_needs_the_right_to_see_calls(client):
    user = UserFactory(username="only-events")
    user.user_permissions.set(Permission.objects.filter(codename="view_event"))
    client.force_login(user)
    assert client.get(LIST).status_code == 200
    for url in (LIST, POLL, EXPORT):
        assert client.get(url, OUT).status_code == 403, url


def test_customer_service_sees_no_outbound_page(client, service_user):
    call = failed_call()
    client.force_login(service_user)
    assert client.get(LIST, OUT).status_code == 403
    assert client.get(reverse("outbound:detail", args=[call.pk])).status_code == 403


def test_outbound_pages_have_no_inline_code(client, admin_user):
    """The policy allows no inline script or style: checked on the rendered pages, with data."""
    from tests.test_security import inline_code

    shop = ShopFactory(queue_paused=True)
    call = failed_call(shop=shop, origin_event=EventFactory(shop=shop))
    echo = EventFactory(shop=shop, echo_of=call, resource_gid=call.target_gid)
    client.force_login(admin_user)
    for url in (
        f"{LIST}?direction=outbound",
        reverse("outbound:detail", args=[call.pk]),
        reverse("events:detail", args=[echo.pk]),
        reverse("integrations:shop_detail", args=[shop.pk]),
        reverse("dashboard"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert inline_code(response.content.decode()) == [], url
        assert "no-store" in response["Cache-Control"], url


# --- Query counts ---------------------------------------------------------------------------


def _count_queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url, params or {}).status_code == 200
    return len(ctx.captured_queries)


def _calls(n: int) -> None:
    shops = [ShopFactory(queue_paused=i == 1) for i in range(3)]
    statuses = [Status.QUEUED, Status.WAITING, Status.FAILED, Status.SUCCEEDED, Status.PAUSED]
    for i in range(n):
        OutboundCallFactory(shop=shops[i % 3], status=statuses[i % len(statuses)], attempt_count=i % 4)


@pytest.mark.parametrize("params", [OUT, {**OUT, "q": "#1042"}, {**OUT, "status": "failed", "topic": "order"}])
def test_outbound_list_query_count_does_not_grow_with_calls(support, django_assert_num_queries, params):
    _calls(5)
    few = _count_queries(support, LIST, params)
    _calls(45)
    # session, user, 2 permission loads, shop ids (for a search), rows, nav groups, saved views, shop choices
    with django_assert_num_queries(few):
        response = support.get(LIST, params)
    if params == OUT:
        assert len(calls_shown(response)) == 50


def test_call_page_query_count_does_not_grow_with_tries(support, django_assert_num_queries):
    def build(tries: int) -> OutboundCall:
        call = OutboundCallFactory(status=Status.FAILED, attempt_count=tries, origin_event=EventFactory())
        for n in range(1, tries + 1):
            OutboundAttemptFactory(
                call=call, number=n, outcome="retry", user_errors=[{"field": ["id"], "message": "x"}]
            )
        EventFactory(shop=call.shop, echo_of=call)
        return call

    small, large = build(1), build(8)
    few = _count_queries(support, reverse("outbound:detail", args=[small.pk]))
    # session, user, 2 permission loads, the call (shop, origin event, requester), tries, echoes, nav groups
    with django_assert_num_queries(few) as captured:
        html = support.get(reverse("outbound:detail", args=[large.pk])).content.decode()
    assert html.count('<tr class="try try-retry"') == 8
    assert len(captured) <= 8


# --- The call page --------------------------------------------------------------------------


def test_call_page_answers_in_order_with_every_try(support):
    origin = EventFactory(topic="orders/paid")
    call = failed_call(
        target_label="#2001",
        origin_event=origin,
        why="tag paid orders vip",
        input={"id": "gid://shopify/Order/2001", "tags": ["<b>vip</b>"]},
    )
    html = support.get(reverse("outbound:detail", args=[call.pk])).content.decode()

    headings = ["Where it stands", "What to do", "What we sent", "Why it was made", "Tries and what Shopify said"]
    headings.append("Webhooks it caused (echoes)")
    positions = [html.index(f">{heading}</h2>") for heading in headings]
    assert positions == sorted(positions)
    state = html[positions[0] : positions[1]]
    assert "Not retryable" in state and "access denied: Access denied for tagsAdd field." in state
    next_step = re.search(r'<div class="next-step".*?</div>', state, re.S).group(0)
    assert "The app lacks a scope this call needs." in next_step
    assert 'action="{}"'.format(reverse("outbound:send_again", args=[call.pk])) in html[positions[1] : positions[2]]

    sent = html[positions[2] : positions[3]]
    assert "tagsAdd" in sent and call.idempotency_key in sent
    assert "&quot;&lt;b&gt;vip&lt;/b&gt;&quot;" in sent and "<b>vip</b>" not in sent  # the input, escaped
    assert "POST graphql.json tagsAdd" in sent  # the request summary
    why = html[positions[3] : positions[4]]
    assert "tag paid orders vip" in why and f'href="{reverse("events:detail", args=[origin.pk])}"' in why

    tries = html[positions[4] : positions[5]]
    first = re.search(r'<tr class="try try-retry" id="try-1">.*?</tr>', tries, re.S).group(0)
    second = re.search(r'<tr class="try try-failed" id="try-2">.*?</tr>', tries, re.S).group(0)
    assert ">503<" in first and "2.5 s" in first and "Will retry" in first and "upstream unavailable" in first
    assert ">403<" in second and "ACCESS_DENIED" in second and "Failed" in second
    assert "1990 / 2000" in second and "10 / 1" in second and "87 ms" in second
    assert "tagsAdd input.tags is deprecated" in second and "test-host:1:sender" in second
    assert "<details>" in tries and "req-first-0001" in tries and "{&quot;errors&quot;: &quot;upstream" in tries


def test_user_errors_are_shown_with_their_fields_and_escaped(support):
    call = OutboundCallFactory(status=Status.FAILED, attempt_count=1, failure_kind="invalid")
    OutboundAttemptFactory(
        call=call,
        number=1,
        outcome="failed",
        user_errors=[
            {"field": ["input", "tags", "0"], "message": "<script>alert(1)</script> is not a tag", "code": "INVALID"},
            "not even a dict <img src=x>",
        ],
        response_excerpt="<script>boom()</script>",
    )
    html = support.get(reverse("outbound:detail", args=[call.pk])).content.decode()
    assert "<script>alert(1)</script>" not in html and "<script>boom()" not in html and "<img src=x>" not in html
    assert (
        "<code>input.tags.0</code>: &lt;script&gt;alert(1)&lt;/script&gt; is not a tag <code>[INVALID]</code>" in html
    )
    assert "not even a dict &lt;img src=x&gt;" in html
    assert "&lt;script&gt;boom()&lt;/script&gt;" in html


def test_succeeded_call_says_nothing_to_do_and_offers_no_send_again(support):
    call = OutboundCallFactory(status=Status.SUCCEEDED, attempt_count=1, result={"id": "gid://shopify/Order/1"})
    OutboundAttemptFactory(call=call, number=1)
    html = support.get(reverse("outbound:detail", args=[call.pk])).content.decode()
    assert "Nothing to do: Shopify applied it." in html
    assert reverse("outbound:send_again", args=[call.pk]) not in html
    assert "What Shopify returned" in html


def test_paused_banner_with_resume_form_for_those_who_may(support, client, viewer):
    shop = ShopFactory(queue_paused=True)
    call = OutboundCallFactory(shop=shop, status=Status.PAUSED)
    url = reverse("outbound:detail", args=[call.pk])
    html = support.get(url).content.decode()
    assert "This shop's outbound queue is paused" in html
    assert f'action="{reverse("outbound:resume", args=[shop.pk])}"' in html
    client.force_login(viewer)
    html = client.get(url).content.decode()
    assert "This shop's outbound queue is paused" in html
    assert reverse("outbound:resume", args=[shop.pk]) not in html
    # Not paused: no banner.
    running = OutboundCallFactory()
    assert "outbound queue is paused" not in client.get(reverse("outbound:detail", args=[running.pk])).content.decode()


# --- Send again, pause, resume --------------------------------------------------------------


def test_send_again_with_a_reason_queues_the_call_and_audits_it(support, support_user):
    call = failed_call()
    url = reverse("outbound:send_again", args=[call.pk])
    response = support.post(url, {"reason": "merchant approved the write_orders scope"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("outbound:detail", args=[call.pk])
    assert "Queued again with the same idempotency key" in response.content.decode()
    call.refresh_from_db()
    assert call.status == Status.QUEUED
    entry = AuditEntry.objects.get(verb="outbound.send_again")
    assert entry.actor == support_user and entry.reason == "merchant approved the write_orders scope"
    assert entry.target_id == str(call.pk) and entry.before["status"] == "failed"
    # Only a failed call can be sent again.
    html = support.post(url, {"reason": "again"}, follow=True).content.decode()
    assert "Not sent again: the call is queued now, not failed." in html
    assert AuditEntry.objects.filter(verb="outbound.send_again").count() == 1


def test_send_again_needs_a_reason(support):
    call = failed_call()
    for data in ({}, {"reason": "   "}):
        response = support.post(reverse("outbound:send_again", args=[call.pk]), data, follow=True)
        assert "Not sent again: say why the call is sent again" in response.content.decode()
    call.refresh_from_db()
    assert call.status == Status.FAILED and not AuditEntry.objects.exists()


def test_send_again_is_refused_on_the_server_without_the_right(client, service_user, viewer):
    call = failed_call()
    url = reverse("outbound:send_again", args=[call.pk])
    for user in (service_user, viewer):
        client.force_login(user)
        assert client.post(url, {"reason": "let me"}).status_code == 403
    client.force_login(viewer)
    assert url not in client.get(reverse("outbound:detail", args=[call.pk])).content.decode()  # no form either
    call.refresh_from_db()
    assert call.status == Status.FAILED and not AuditEntry.objects.exists()


def test_pause_and_resume_hold_and_release_calls_with_audit(support, support_user):
    shop = ShopFactory()
    queued = OutboundCallFactory(shop=shop)
    done = OutboundCallFactory(shop=shop, status=Status.SUCCEEDED)
    detail = reverse("integrations:shop_detail", args=[shop.pk])

    response = support.post(reverse("outbound:pause", args=[shop.pk]), {"reason": "store frozen", "next": detail})
    assert response.status_code == 302 and response["Location"] == detail
    shop.refresh_from_db()
    queued.refresh_from_db()
    assert shop.queue_paused and queued.status == Status.PAUSED
    pause = AuditEntry.objects.get(verb="outbound.pause")
    assert pause.actor == support_user and pause.reason == "store frozen" and pause.after["held"] == 1
    assert "paused: 1 call held" in support.get(detail).content.decode()

    call_page = reverse("outbound:detail", args=[queued.pk])
    response = support.post(reverse("outbound:resume", args=[shop.pk]), {"reason": "unfrozen", "next": call_page})
    assert response["Location"] == call_page
    shop.refresh_from_db()
    queued.refresh_from_db()
    done.refresh_from_db()
    assert not shop.queue_paused and queued.status == Status.QUEUED and done.status == Status.SUCCEEDED
    resume = AuditEntry.objects.get(verb="outbound.resume")
    assert resume.reason == "unfrozen" and resume.after["released"] == 1


def test_pause_and_resume_need_a_reason(support):
    shop = ShopFactory()
    call = OutboundCallFactory(shop=shop)
    for action in ("pause", "resume"):
        response = support.post(reverse(f"outbound:{action}", args=[shop.pk]), {"reason": " "}, follow=True)
        assert f"Not changed: say why you {action} the outbound queue" in response.content.decode()
    shop.refresh_from_db()
    call.refresh_from_db()
    assert not shop.queue_paused and call.status == Status.QUEUED and not AuditEntry.objects.exists()


def test_pause_and_resume_are_refused_on_the_server_without_the_right(client, service_user, viewer):
    shop = ShopFactory()
    paused = ShopFactory(queue_paused=True)
    for user in (service_user, viewer):
        client.force_login(user)
        assert client.post(reverse("outbound:pause", args=[shop.pk]), {"reason": "r"}).status_code == 403
        assert client.post(reverse("outbound:resume", args=[paused.pk]), {"reason": "r"}).status_code == 403
    shop.refresh_from_db()
    paused.refresh_from_db()
    assert not shop.queue_paused and paused.queue_paused and not AuditEntry.objects.exists()


def test_pause_never_sends_you_off_the_site(support):
    shop = ShopFactory()
    for target in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        response = support.post(reverse("outbound:pause", args=[shop.pk]), {"reason": "r", "next": target})
        assert response["Location"] == reverse("integrations:shop_detail", args=[shop.pk]), target


# --- Echoes and the event page --------------------------------------------------------------


def test_echo_event_links_to_its_call_and_the_call_back(support):
    gid = "gid://shopify/Order/3001"
    call = OutboundCallFactory(status=Status.SUCCEEDED, target_gid=gid, input={"id": gid, "tags": ["vip"]})
    echo = EventFactory(
        shop=call.shop, topic="orders/updated", resource_gid=gid, echo_of=call, status=Event.Status.PROCESSED
    )
    older = OutboundCallFactory(shop=call.shop, target_gid=gid, operation="order.add_tags")
    OutboundCallFactory(target_gid=gid)  # same gid, another shop: not this record

    event_page = support.get(reverse("events:detail", args=[echo.pk])).content.decode()
    call_url = reverse("outbound:detail", args=[call.pk])
    assert f'<a href="{call_url}">Echo of our call #{call.pk} (order.add_tags)</a> — not written back' in event_page
    record_calls = event_page.split('id="record-calls-h"')[1].split("</section>")[0]
    assert re.findall(r'href="/outbound/(\d+)/"', record_calls) == [str(older.pk), str(call.pk)]

    call_page = support.get(call_url).content.decode()
    echoes = call_page.split('id="echoes-h"')[1]
    assert f'href="{reverse("events:detail", args=[echo.pk])}"' in echoes and "orders/updated" in echoes


def test_event_page_without_calls_or_echo(support):
    event = EventFactory(resource_gid="gid://shopify/Order/4", topic="orders/paid")
    html = support.get(reverse("events:detail", args=[event.pk])).content.decode()
    assert "Echo of our call" not in html
    assert "We have made no calls to Shopify for it." in html


# --- Shop page ------------------------------------------------------------------------------


def test_shop_page_counts_unfinished_calls_and_recent_failures_and_offers_pause(support, client, viewer, admin_user):
    shop = ShopFactory()
    failed_call(shop=shop)
    failed_call(shop=shop)
    failed_call(shop=shop, created_at=timezone.now() - timedelta(days=2))  # failed, but not in the last 24 h
    OutboundCallFactory(shop=shop, status=Status.SUCCEEDED)  # finished: not counted
    OutboundCallFactory(shop=shop)
    OutboundCallFactory()  # another shop
    url = reverse("integrations:shop_detail", args=[shop.pk])
    html = support.get(url).content.decode()
    counts = html.split('class="stats call-counts"')[1].split("</dl>")[0]
    assert "Succeeded" not in counts and "failed in the last 24 hours" in html
    failed = re.search(r"<dt>Failed \(24 h\)</dt><dd class=\"bad\"><a href=\"([^\"]*status=failed)\">2</a>", counts)
    assert failed and "received_from=" in failed.group(1)
    assert re.search(r"<dt>Queued</dt><dd><a href=\"[^\"]*status=queued\">1</a>", counts)
    labels = ["Queued", "Held: shop paused", "Waiting to retry", "Being sent", "Failed (24 h)"]
    assert re.findall(r"<dt>([^<]+)</dt>", counts) == labels
    # The figure's link lists the calls it counts.
    listed = support.get(failed.group(1).replace("&amp;", "&"))
    assert not listed.context["form"].errors and len(calls_shown(listed)) == 2
    log_link = f"{LIST}?direction=outbound&amp;shop={shop.domain}"
    assert f'href="{log_link}"' in html
    listed = support.get(LIST, {**OUT, "shop": shop.domain})
    assert len(calls_shown(listed)) == 5
    assert f'action="{reverse("outbound:pause", args=[shop.pk])}"' in html
    assert reverse("outbound:resume", args=[shop.pk]) not in html

    shop.queue_paused = True
    shop.save()
    client.force_login(admin_user)
    html = client.get(url).content.decode()
    assert f'action="{reverse("outbound:resume", args=[shop.pk])}"' in html
    client.force_login(viewer)
    html = client.get(url).content.decode()
    assert "call-counts" in html and reverse("outbound:resume", args=[shop.pk]) not in html


# --- Dashboard ------------------------------------------------------------------------------


def test_dashboard_counts_outbound_failures_apart_and_links_to_them(support):
    EventFactory(status=Event.Status.FAILED)
    failed_call()
    failed_call()
    failed_call(created_at=timezone.now() - timedelta(days=3))  # outside the day
    OutboundCallFactory(status=Status.WAITING)
    ShopFactory(domain="held.myshopify.com", queue_paused=True)
    html = support.get(reverse("dashboard")).content.decode()
    card = html.split('id="outbound-h"')[1].split("</section>")[0]
    assert "Outbound calls failed (24 h)" in card
    failed = re.search(r'<a href="([^"]*status=failed[^"]*)">(\d+)</a>', card)
    assert failed.group(2) == "2"
    listed = support.get(failed.group(1).replace("&amp;", "&"))
    assert not listed.context["form"].errors and len(calls_shown(listed)) == 2
    waiting = re.search(r'<a href="([^"]*status=waiting)">(\d+)</a>', card)
    assert waiting.group(2) == "1"
    assert len(calls_shown(support.get(waiting.group(1).replace("&amp;", "&")))) == 1
    assert "held.myshopify.com" in card
    # The inbound figures still count only webhooks, and their lists list only webhooks.
    assert '<a href="/events/?status=retry_wait">0</a>' in html
    assert '<a href="/events/?direction=inbound&amp;status=queued">0</a>' in html
