"""The worksheet pages: who may see them, the list's filters and query count, the detail page's
rows (paginated, escaped), the actions refused on the server (the preparer approving, a non-admin
approving, a POST without its CSRF token), and the whole path over HTTP against the simulator."""

import csv
import io
import re

import pytest
from django.test import Client
from django.urls import reverse

from incidents.worksheets import services
from incidents.worksheets.models import Worksheet, WorksheetRow
from integrations.models import PlatformProduct
from tests.factories import IncidentFactory, ShopFactory
from tests.worksheets.conftest import copy_to_platform, send_outbound

State = Worksheet.State
Row = WorksheetRow


def make_worksheet(shop, by, *, rows: int = 3, state: str = State.COMPARED, **values) -> Worksheet:
    """A compared worksheet of products built directly (no simulator): row n's title differs."""
    worksheet = Worksheet.objects.create(
        shop=shop, resource="products", fields=["title", "vendor"], source=Worksheet.Source.IDS,
        source_detail=f"{rows} ids", prepared_by=by, state=state, progress_total=rows, progress_done=rows, **values,
    )  # fmt: skip
    Row.objects.bulk_create(
        [
            Row(
                worksheet=worksheet,
                position=n,
                key=f"gid://shopify/Product/{1000 + n}",
                label=f"Product {n}",
                kind=Row.Kind.DIFFERS,
                proposal=Row.Proposal.WRITE_SHOPIFY,
                reason="The platform owns title.",
                fields=[
                    {
                        "name": "title",
                        "shopify": f"Old {n}",
                        "platform": f"New {n}",
                        "owner": "platform",
                        "differs": True,
                        "write": "write_shopify",
                    },
                    {
                        "name": "vendor",
                        "shopify": "Acme",
                        "platform": "Acme",
                        "owner": "shopify",
                        "differs": False,
                        "write": None,
                    },
                ],
                shopify_values={"title": f"Old {n}", "vendor": "Acme"},
                platform_values={"title": f"New {n}", "vendor": "Acme"},
            )
            for n in range(1, rows + 1)
        ]
    )
    Worksheet.objects.filter(pk=worksheet.pk).update(plan_hash=services.plan_hash(worksheet))
    worksheet.refresh_from_db()
    return worksheet


def detail(worksheet) -> str:
    return reverse("worksheets:detail", args=[worksheet.pk])


def act(worksheet, name: str) -> str:
    return reverse(f"worksheets:{name}", args=[worksheet.pk])


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


# --- Who sees what --------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_render_for_support_and_admin_and_not_for_customer_service(
    client, support_user, admin_user, service_user
):
    worksheet = make_worksheet(ShopFactory(), admin_user)
    pages = [
        reverse("worksheets:list"),
        reverse("worksheets:new"),
        detail(worksheet),
        act(worksheet, "progress"),
        act(worksheet, "export"),
    ]
    for user in (support_user, admin_user):
        client.force_login(user)
        for url in pages:
            assert client.get(url).status_code == 200, (user, url)
        html = client.get(reverse("dashboard")).content.decode()
        assert f'href="{reverse("worksheets:list")}">Worksheets</a>' in html
    client.force_login(service_user)
    for url in pages:
        assert client.get(url).status_code == 403, url
    assert client.post(act(worksheet, "submit")).status_code == 403
    assert "Worksheets" not in client.get(reverse("dashboard")).content.decode()


@pytest.mark.django_db
def test_the_list_is_filtered_newest_first_and_its_queries_do_not_grow_with_it(
    client, support_user, admin_user, django_assert_max_num_queries
):
    north, south = ShopFactory(domain="north.myshopify.com"), ShopFactory(domain="south.myshopify.com")
    incident = IncidentFactory(title="Vendors wiped")
    for n in range(30):
        make_worksheet(north if n % 2 else south, admin_user, rows=4, incident=incident if n % 3 == 0 else None)
    submitted = make_worksheet(north, admin_user, rows=2, state=State.SUBMITTED, title="Needs an approver")
    client.force_login(support_user)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("worksheets:list"))
    html = response.content.decode()
    ids = [int(pk) for pk in re.findall(r'<tr id="worksheet-(\d+)">', html)]
    assert len(ids) == 31 and ids == sorted(ids, reverse=True)  # newest first
    assert ids[0] == submitted.pk
    Row.objects.filter(worksheet=submitted, position=1).update(kind=Row.Kind.SAME)
    cells = re.search(
        rf'<tr id="worksheet-{submitted.pk}">(.*?)</tr>', client.get(reverse("worksheets:list")).content.decode(), re.S
    )
    assert re.findall(r'<td class="num">(\d+)</td>', cells.group(1)) == ["2", "1"]  # records, not the same
    assert re.search(
        r"<time datetime=[^>]+>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC</time> <span class=\"rel\">just now", html
    )

    # Twice as many worksheets, as many queries (and the list pages at 50).
    for _n in range(40):
        make_worksheet(north, admin_user, rows=6)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("worksheets:list"))
    assert len(re.findall(r'<tr id="worksheet-\d+">', response.content.decode())) == 50
    assert "Older worksheets" in response.content.decode()

    def listed(**params):
        return {
            int(pk)
            for pk in re.findall(
                r'<tr id="worksheet-(\d+)">', client.get(reverse("worksheets:list"), params).content.decode()
            )
        }

    assert listed(state="submitted") == {submitted.pk}
    assert listed(shop="south.myshopify.com") == set(Worksheet.objects.filter(shop=south).values_list("pk", flat=True))
    assert listed(incident=incident.pk) == set(incident.worksheets.values_list("pk", flat=True))
    assert len(listed(incident=incident.pk)) == 10
    empty = client.get(reverse("worksheets:list"), {"state": "applied"}).content.decode()
    assert "No worksheet matches these filters" in empty
    bad = client.get(reverse("worksheets:list"), {"shop": "nowhere.myshopify.com"})
    assert bad.status_code == 200 and "(not applied)" in bad.content.decode()


@pytest.mark.django_db
def test_the_empty_list_says_how_to_start(client, support_user):
    client.force_login(support_user)
    html = client.get(reverse("worksheets:list")).content.decode()
    assert "No worksheets yet" in html and reverse("worksheets:new") in html


@pytest.mark.django_db
def test_detail_rows_are_paginated_with_both_sides_and_the_differences_marked(
    client, support_user, admin_user, django_assert_max_num_queries
):
    worksheet = make_worksheet(ShopFactory(), admin_user, rows=120)
    client.force_login(support_user)
    with django_assert_max_num_queries(15):
        html = client.get(detail(worksheet)).content.decode()
    rows = re.findall(r'<tbody id="row-(\d+)"', html)
    assert len(rows) == 50
    assert "Rows 1\N{EN DASH}50 of 120" in html and "page 1 of 3" in html
    assert "<mark>Old 1</mark>" in html and "<mark>New 1</mark>" in html  # the title differs
    assert "<mark>Acme</mark>" not in html  # the vendor does not
    assert "Rows writing Shopify" in html and worksheet.plan_hash[:12] in html
    last = client.get(detail(worksheet), {"page": 3}).content.decode()
    assert len(re.findall(r'<tbody id="row-\d+"', last)) == 20 and "Product 120" in last
    Row.objects.filter(worksheet=worksheet, position__lte=5).update(kind=Row.Kind.SAME, proposal=Row.Proposal.NO_CHANGE)
    same = client.get(detail(worksheet), {"kind": "same"}).content.decode()
    assert len(re.findall(r'<tbody id="row-\d+"', same)) == 5


@pytest.mark.django_db
def test_user_values_are_escaped(client, support_user, admin_user):
    worksheet = make_worksheet(ShopFactory(), admin_user, rows=1, title="<b>bold</b>")
    row = worksheet.rows.get()
    row.label = "<script>x</script>"
    row.fields[0]["platform"] = "<script>x</script>"
    row.reason = "<img src=x onerror=alert(1)>"
    row.save()
    client.force_login(support_user)
    html = client.get(detail(worksheet)).content.decode()
    assert "<script>x</script>" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "<img src=x" not in html and "<b>bold</b>" not in html


# --- Refused on the server ------------------------------------------------------------------


@pytest.mark.django_db
def test_the_preparer_cannot_approve_by_posting_and_a_non_admin_cannot_either(
    client, admin_user, approver_user, support_user
):
    worksheet = make_worksheet(ShopFactory(), admin_user, state=State.SUBMITTED)
    form = {"plan_hash": worksheet.plan_hash, "comment": "looks fine"}

    client.force_login(admin_user)  # the preparer: the page offers no approval...
    page = client.get(detail(worksheet)).content.decode()
    assert act(worksheet, "approve") not in page and "Waiting for another admin" in page
    response = client.post(act(worksheet, "approve"), form)  # ...and the server refuses it
    assert response.status_code == 403
    assert "The preparer cannot approve their own worksheet" in response.content.decode()
    assert client.post(act(worksheet, "reject"), {"comment": "no"}).status_code == 403

    client.force_login(support_user)
    assert client.post(act(worksheet, "approve"), form).status_code == 403
    assert client.post(act(worksheet, "reject"), {"comment": "no"}).status_code == 403
    worksheet.refresh_from_db()
    assert worksheet.state == State.SUBMITTED and worksheet.approved_by is None

    client.force_login(approver_user)
    page = client.get(detail(worksheet)).content.decode()
    assert act(worksheet, "approve") in page and f'value="{worksheet.plan_hash}"' in page
    # The plan shown is not the plan now: refused, with the reason.
    response = client.post(act(worksheet, "approve"), {**form, "plan_hash": "0" * 64}, follow=True)
    assert any("The plan changed since it was shown" in m for m in messages_of(response))
    worksheet.refresh_from_db()
    assert worksheet.state == State.SUBMITTED
    response = client.post(act(worksheet, "approve"), form)
    assert response.status_code == 302
    worksheet.refresh_from_db()
    assert worksheet.state == State.APPROVED and worksheet.approved_by == approver_user
    assert worksheet.review_comment == "looks fine"


@pytest.mark.django_db
def test_reject_needs_a_comment(client, admin_user, approver_user):
    worksheet = make_worksheet(ShopFactory(), admin_user, state=State.SUBMITTED)
    client.force_login(approver_user)
    response = client.post(act(worksheet, "reject"), {"comment": "  "}, follow=True)
    assert any("say why it is rejected" in m for m in messages_of(response))
    assert Worksheet.objects.get(pk=worksheet.pk).state == State.SUBMITTED
    client.post(act(worksheet, "reject"), {"comment": "vendor is wrong on row 2"})
    worksheet.refresh_from_db()
    assert worksheet.state == State.REJECTED and worksheet.review_comment == "vendor is wrong on row 2"
    assert "vendor is wrong on row 2" in client.get(detail(worksheet)).content.decode()


@pytest.mark.django_db
def test_apply_before_approval_is_refused_with_the_reason(client, admin_user):
    worksheet = make_worksheet(ShopFactory(), admin_user, state=State.SUBMITTED)
    client.force_login(admin_user)
    response = client.post(act(worksheet, "apply"), follow=True)
    assert any("only an approved worksheet can be applied" in m for m in messages_of(response))
    assert Worksheet.objects.get(pk=worksheet.pk).state == State.SUBMITTED


@pytest.mark.django_db
def test_actions_out_of_their_state_are_refused_with_the_reason(client, admin_user):
    approved = make_worksheet(ShopFactory(), admin_user, state=State.APPROVED)
    client.force_login(admin_user)
    page = client.get(detail(approved)).content.decode()
    assert (
        act(approved, "apply") in page and act(approved, "retry") not in page and act(approved, "compare") not in page
    )
    for name, words in (
        ("retry", "only a partially applied worksheet has failed rows"),
        ("compare", "cannot be compared again"),
        ("submit", "Only a compared worksheet can be submitted"),
        ("rollback", "Only an applied or partially applied worksheet can be rolled back"),
    ):
        response = client.post(act(approved, name), follow=True)
        assert any(words in m for m in messages_of(response)), name
    assert Worksheet.objects.get(pk=approved.pk).state == State.APPROVED
    assert Worksheet.objects.count() == 1


@pytest.mark.django_db
def test_a_post_without_the_csrf_token_is_refused(admin_user):
    worksheet = make_worksheet(ShopFactory(), admin_user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post(act(worksheet, "submit")).status_code == 403
    assert Worksheet.objects.get(pk=worksheet.pk).state == State.COMPARED
    # With the token the page carries, the same POST goes through.
    page = client.get(detail(worksheet)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    assert client.post(act(worksheet, "submit"), {"csrfmiddlewaretoken": token}).status_code == 302
    assert Worksheet.objects.get(pk=worksheet.pk).state == State.SUBMITTED


@pytest.mark.django_db
def test_a_row_decision_swaps_the_row_and_says_why_it_is_refused(client, admin_user, approver_user):
    worksheet = make_worksheet(ShopFactory(), admin_user, state=State.SUBMITTED)
    row = worksheet.rows.get(position=2)
    url = reverse("worksheets:decide", args=[worksheet.pk, row.pk])
    client.force_login(admin_user)
    # An override without a note: refused, in the row, and nothing changed.
    response = client.post(
        url, {"decision": "override", "override_side": "write_platform", "value_title": "Mine"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert f'<tbody id="row-{row.pk}"' in html and "An override needs a note" in html
    row.refresh_from_db()
    assert row.decision == Row.Decision.ACCEPT
    # A skip after submission: the row, and the worksheet back in review (out of band).
    response = client.post(url, {"decision": "skip", "note": "catalogue team"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert "Saved." in html and 'id="ws-state" hx-swap-oob="true"' in html and "Compared (in review)" in html
    row.refresh_from_db()
    worksheet.refresh_from_db()
    assert row.decision == Row.Decision.SKIP and worksheet.state == State.COMPARED
    # Without htmx: back to the page, with a message.
    response = client.post(url, {"decision": "accept"}, follow=True)
    assert any("Row 2: accept the proposal" in m for m in messages_of(response))


@pytest.mark.django_db
def test_the_new_page_says_what_is_wrong_with_the_list(client, support_user):
    shop = ShopFactory(domain="north.myshopify.com")
    client.force_login(support_user)
    url = reverse("worksheets:new")
    base = {"shop": shop.domain, "resource": "products"}
    html = client.post(url, {**base}).content.decode()
    assert "Give the list of records" in html
    html = client.post(url, {**base, "ids": "123", "events_filter": "status=failed"}).content.decode()
    assert "Build it from one list only" in html
    html = client.post(url, {**base, "ids": "123\nnot-an-id"}).content.decode()
    assert "Some ids could not be read" in html and "line 2" in html
    html = client.post(url, {**base, "ids": "123", "compared_fields": ["price"]}).content.decode()
    assert "Select a valid choice" in html
    assert not Worksheet.objects.exists()
    # The resource's fields, for the resource picked (htmx).
    fields = client.get(url, {"resource": "variants"}, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="ws-fields"' in fields and 'value="price"' in fields and 'value="vendor"' not in fields


# --- The whole path against the simulator ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_whole_path_over_http(client, store, admin_user, approver_user):
    shop, sim = store
    copy_to_platform(shop, sim, "products")
    a, b, c, *_rest = PlatformProduct.objects.filter(shop=shop).order_by("shopify_id")
    PlatformProduct.objects.filter(pk=a.pk).update(title="<script>x</script>")  # the platform owns titles
    PlatformProduct.objects.filter(pk=b.pk).update(vendor="Stale vendor")  # Shopify owns vendors
    PlatformProduct.objects.filter(pk=c.pk).update(title="Skip me")
    client.force_login(admin_user)
    ids = f"{a.shopify_id}\n{b.shopify_id}, gid://shopify/Product/{c.shopify_id}"
    response = client.post(
        reverse("worksheets:new"),
        {"shop": shop.domain, "resource": "products", "compared_fields": ["title", "vendor"], "ids": ids,
         "title": "Titles after the PIM bug"},
    )  # fmt: skip
    worksheet = Worksheet.objects.get()
    assert response.status_code == 302 and response["Location"] == detail(worksheet)
    worksheet.refresh_from_db()
    assert worksheet.state == State.COMPARED and worksheet.fields == ["title", "vendor"]

    html = client.get(detail(worksheet)).content.decode()
    assert "<script>x</script>" not in html and "<mark>&lt;script&gt;x&lt;/script&gt;</mark>" in html
    assert "Write Shopify" in html and "Write the platform" in html and "Submit for approval" in html

    row_c = worksheet.rows.get(key=f"gid://shopify/Product/{c.shopify_id}")
    client.post(
        reverse("worksheets:decide", args=[worksheet.pk, row_c.pk]), {"decision": "skip"}, HTTP_HX_REQUEST="true"
    )
    client.post(act(worksheet, "submit"))
    worksheet.refresh_from_db()
    assert worksheet.state == State.SUBMITTED

    client.force_login(approver_user)
    page = client.get(detail(worksheet)).content.decode()
    shown = re.search(r'name="plan_hash" value="([0-9a-f]{64})"', page).group(1)
    client.post(act(worksheet, "approve"), {"plan_hash": shown, "comment": "checked"})
    client.post(act(worksheet, "apply"))
    worksheet.refresh_from_db()
    assert worksheet.state == State.APPLYING  # a's title waits in Shopify's queue
    send_outbound()
    progress = client.get(act(worksheet, "progress"), {"polling": "1"}, HTTP_HX_REQUEST="true")
    assert progress.headers.get("HX-Refresh") == "true"  # settled there: the page reloads
    worksheet.refresh_from_db()
    assert worksheet.state == State.APPLIED
    assert sim.record("products", a.shopify_id)["title"] == "<script>x</script>"
    assert PlatformProduct.objects.get(pk=b.pk).vendor == b.vendor

    html = client.get(detail(worksheet)).content.decode()
    assert "Roll back (2 applied rows)" in html and "Before" in html and "Stale vendor" in html

    export = client.get(act(worksheet, "export"))
    assert export["Content-Type"].startswith("text/csv")
    assert f'filename="worksheet-{worksheet.pk}-applied.csv"' in export["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(export.content.decode())))
    by = {(line["key"].rsplit("/", 1)[1], line["field"]): line for line in lines}
    title_a = by[(str(a.shopify_id), "title")]
    assert (title_a["result"], title_a["before"], title_a["after"]) == ("applied", a.title, "<script>x</script>")
    vendor_b = by[(str(b.shopify_id), "vendor")]
    assert (vendor_b["result"], vendor_b["before"], vendor_b["after"]) == ("applied", "Stale vendor", b.vendor)
    assert by[(str(c.shopify_id), "title")]["result"] == "skipped"

    client.force_login(admin_user)
    response = client.post(act(worksheet, "rollback"))
    back = Worksheet.objects.get(rollback_of=worksheet)
    assert response["Location"] == detail(back) and back.state == State.COMPARED
    assert "Rolls back" in client.get(detail(back)).content.decode()
    assert f"Worksheet #{back.pk}" in client.get(detail(worksheet)).content.decode()
