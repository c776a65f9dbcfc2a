"""Support runs an incident in a browser: opens it from the event log's filtered failing events, answers
the business-impact rubric and watches the severity follow, chooses a controlled replay and lands on
its dry run, posts a confirmed update that customer service then reads on the status board (and
nothing internal beside it), and is refused resolving while containment is open: in Debian's
Chromium, against a live server, under the Content-Security-Policy."""

import re

import pytest
from playwright.sync_api import expect

from console import roles
from incidents import services
from incidents.models import Incident, IncidentAction, IncidentUpdate
from integrations.models import Event, ReplayRequest
from tests.browser.test_csp_browser import WATCH_VIOLATIONS, assert_no_violations
from tests.factories import TEST_PASSWORD, ShopFactory, UserFactory
from tests.incidents.conftest import make_order_event

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOMAIN = "incident-north.myshopify.com"


@pytest.fixture
def watched(page):
    messages = []
    page.on("console", lambda msg: messages.append(msg.text) if msg.type in ("error", "warning") else None)
    page.add_init_script(WATCH_VIOLATIONS)
    page.csp_messages = messages
    return page


@pytest.fixture
def failing():
    """Three failed orders/create events of one shop (#1001 to #1003, 100 EUR each, unfulfilled),
    and beside them one processed event and one failure of another topic, which are not linked."""
    shop = ShopFactory(domain=DOMAIN)
    events = [make_order_event(shop, number) for number in (1001, 1002, 1003)]
    make_order_event(shop, 1004, status=Event.Status.PROCESSED)
    make_order_event(shop, 1005, topic="orders/paid")
    return shop, events


@pytest.fixture
def support():
    return UserFactory(username="browser-inc-support", role=roles.SUPPORT)


def opened(support, events, **words) -> Incident:
    return services.open_incident(
        title="orders/create failing for north", by=support, event_ids=[e.pk for e in events], **words
    )


def measured(region, term: str):
    """The <dd> beside a <dt> of a description list."""
    return region.locator("dt", has_text=term).locator("xpath=following-sibling::dd[1]")


def log_in(page, username: str) -> None:
    page.goto("/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"://[^/]+/$"))


def test_open_an_incident_from_failing_events_and_answer_the_rubric(watched, login, failing, support):
    page = watched
    shop, events = failing
    login(support.username)

    # The event log, filtered to the failing order syncs, offers to open an incident for them.
    page.goto(f"/events/?shop={DOMAIN}&topic=orders/create&status=failed")
    expect(page.locator("#log-rows tr.log-row")).to_have_count(3)
    page.get_by_role("link", name="Open an incident for every matching event").click()
    page.wait_for_url(re.compile(r"/incidents/new/\?"))
    expect(page.get_by_role("heading", name="Open an incident", level=1)).to_be_visible()

    # What the three events measure, and what will be linked.
    links = page.get_by_role("region", name="What will be linked")
    expect(measured(links, "Events")).to_contain_text("3")
    expect(measured(links, "Shops")).to_have_text(DOMAIN)
    impact = page.get_by_role("region", name="Measured impact")
    expect(measured(impact, "Orders not synced")).to_have_text("3")
    expect(measured(impact, "Of them unfulfilled")).to_have_text("3")
    expect(measured(impact, "Money at risk")).to_have_text("300.00 EUR")
    expect(measured(impact, "Customers")).to_have_text("3")

    # The rubric comes prefilled from that: orders delayed, fulfilment affected, so SEV2.
    rubric = page.get_by_role("group", name="Business impact")
    preview = page.locator(".severity-preview")
    expect(rubric.get_by_role("radio", name=re.compile(r"^Delayed"))).to_be_checked()
    expect(rubric.get_by_label("Fulfilment timing is affected")).to_be_checked()
    expect(rubric.get_by_label("Records affected")).to_have_value("3")
    expect(preview).to_contain_text("This gives SEV2")
    expect(preview).to_contain_text("fulfilment timing is affected")

    # Each answer asks for the severity again, in place (htmx), with the reasoning in words.
    page.evaluate("window.__same_page = true")
    rubric.get_by_role("radio", name=re.compile(r"^Blocked")).check()
    expect(preview).to_contain_text("This gives SEV1")
    expect(preview).to_contain_text("Orders are blocked and there is no workaround.")
    rubric.get_by_label("There is a workaround").check()
    expect(preview).to_contain_text("This gives SEV2")
    expect(preview).not_to_contain_text("there is no workaround")
    rubric.get_by_label("There is a workaround").uncheck()
    rubric.get_by_label("Customers can see it").check()
    expect(preview).to_contain_text("This gives SEV1")
    expect(preview).to_contain_text("Orders are blocked and there is no workaround.")
    assert page.evaluate("window.__same_page") is True
    assert not Incident.objects.exists()  # a preview opens nothing

    page.get_by_role("textbox", name=re.compile(r"^Title")).fill("Order sync failing for the north shop")
    page.get_by_role("button", name="Open the incident").click()
    page.wait_for_url(re.compile(r"/incidents/\d+/$"))

    incident = Incident.objects.get()
    assert page.url.endswith(f"/incidents/{incident.pk}/")
    assert incident.severity == "sev1"
    assert incident.rubric["orders"] == "blocked" and incident.rubric["customer_visible"] is True
    assert set(incident.events.values_list("pk", flat=True)) == {e.pk for e in events}
    assert list(incident.shops.all()) == [shop]
    expect(page.get_by_role("status")).to_contain_text(f"Incident #{incident.pk} opened as SEV1")
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Incident #{incident.pk}: Order sync failing for the north shop"
    )
    severity = page.get_by_role("region", name=re.compile(r"^Severity"))
    expect(severity.get_by_role("heading", level=2)).to_have_text("Severity SEV1")
    expect(severity.locator(".severity-reasoning")).to_contain_text("Orders are blocked and there is no workaround.")
    expect(severity).to_contain_text("As the rubric gives it.")
    linked = page.get_by_role("region", name="Linked")
    expect(linked.get_by_role("heading", name="Events (3)")).to_be_visible()
    expect(linked.locator("table.linked-events tbody tr")).to_have_count(3)
    for event in events:
        expect(linked.get_by_role("link", name=f"#{event.pk}", exact=True)).to_be_visible()
    assert_no_violations(page)


def test_choose_a_controlled_replay_and_land_on_its_prefilled_dry_run(watched, login, failing, support):
    page = watched
    _shop, events = failing
    incident = opened(support, events)
    login(support.username)
    page.goto(f"/incidents/{incident.pk}/")

    response = page.get_by_role("region", name="Response")
    expect(response).to_contain_text("No response chosen yet")
    response.get_by_role("radio", name="Controlled replay").check()
    response.get_by_label("Why this response").fill("the payloads are fine; the handler was fixed")
    response.get_by_role("button", name="Record the response").click()
    page.wait_for_url(re.compile(rf"/incidents/{incident.pk}/#response$"))
    expect(response.locator(".chosen-strategy")).to_have_text("Controlled replay")
    incident.refresh_from_db()
    assert incident.strategy == Incident.Strategy.CONTROLLED_REPLAY

    # The chosen response is open, with its one click to the tool.
    replay_box = response.locator("details.respond-controlled_replay")
    expect(replay_box).to_have_attribute("open", "")
    expect(replay_box).to_contain_text("A dry run of the 3 linked failing events")
    replay_box.get_by_role("button", name="Dry-run a controlled replay").click()
    page.wait_for_url(re.compile(r"/replays/\d+/$"))

    replay = ReplayRequest.objects.get()
    assert page.url.endswith(f"/replays/{replay.pk}/")
    assert replay.incident_id == incident.pk
    assert replay.status == ReplayRequest.Status.PLANNED  # nothing has run
    expect(page.get_by_text("Dry run: nothing has run.")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"Dry run #{replay.pk} of incident #{incident.pk}")
    summary = page.get_by_role("region", name="What it would do")
    expect(measured(summary, "Events")).to_have_text("3")
    plan = page.get_by_role("region", name=re.compile(r"^The plan"))
    shown = {int(text) for text in plan.locator("table.plan tbody td:first-child a").all_inner_texts()}
    assert shown == {e.pk for e in events}  # exactly the linked failing events, not the others
    expect(page.get_by_role("region", name="What it covers")).to_contain_text(str(incident))
    assert set(Event.objects.filter(pk__in=shown).values_list("status", flat=True)) == {Event.Status.FAILED}
    assert_no_violations(page)


def test_a_confirmed_update_is_read_on_the_status_board_by_customer_service(
    watched, login, failing, support, chromium, live_server
):
    page = watched
    _shop, events = failing
    UserFactory(username="browser-inc-service", role=roles.CUSTOMER_SERVICE)
    incident = opened(support, events)
    internal_title = incident.title
    login(support.username)
    page.goto(f"/incidents/{incident.pk}/")

    # What customer service may read, in the incident's words.
    edit = page.get_by_role("region", name="Edit the words")
    edit.get_by_text("Edit the words").first.click()
    edit.get_by_label("Name for customer service").fill("Some orders reach the warehouse late")
    edit.get_by_label("What merchants or shoppers may notice").fill("Orders placed since 03:00 UTC ship later.")
    edit.get_by_label("What customer service should tell them").fill("Their order is safe and will ship.")
    edit.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(rf"/incidents/{incident.pk}/$"))
    expect(page.get_by_role("status")).to_contain_text("Saved.")

    # First an engineering update (internal), then a confirmed one for customer service.
    updates = page.get_by_role("region", name="Status updates")
    engineering = "Handler raises KeyError on line_items; a fix is in review."
    for body, audience, confirm in (
        (engineering, "Engineering and support", True),
        ("Orders are being sent to the warehouse again; some ship a day late.", "Customer service", True),
        ("We may have it fixed by noon.", "Customer service", False),  # not confirmed: not shared
    ):
        updates.get_by_text("Post an update").click()
        updates.get_by_role("textbox", name=re.compile(r"^Update")).fill(body)
        updates.get_by_label("For").select_option(label=audience)
        confirmed = updates.get_by_role("checkbox", name=re.compile(r"^Confirmed: stable enough to share"))
        confirmed.check() if confirm else confirmed.uncheck()
        updates.get_by_role("button", name="Post the update").click()
        page.wait_for_url(re.compile(rf"/incidents/{incident.pk}/#updates$"))
        expect(page.get_by_role("status")).to_contain_text(f"Update for {audience} posted")
        expect(updates.locator("li.update", has_text=body)).to_be_visible()
    shared = IncidentUpdate.objects.get(incident=incident, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE,
                                        confirmed=True)  # fmt: skip
    assert shared.confirmed_by == support and shared.confirmed_at is not None
    expect(updates.locator("li.update", has_text=shared.body)).to_contain_text(f"confirmed by {support.username}")

    # Customer service, in a browser of their own.
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, base_url=live_server.url)
    try:
        board = context.new_page()
        board.set_default_timeout(10_000)
        board.add_init_script(WATCH_VIOLATIONS)
        board.csp_messages = []
        board.on(
            "console", lambda msg: board.csp_messages.append(msg.text) if msg.type in ("error", "warning") else None
        )
        log_in(board, "browser-inc-service")
        board.get_by_role("navigation", name="Main").get_by_role("link", name="Status board").click()
        board.wait_for_url(re.compile(r"/incidents/status/$"))
        card = board.locator("article.incident")
        expect(card).to_have_count(1)
        expect(card.get_by_role("heading", level=2)).to_contain_text("Some orders reach the warehouse late")
        expect(card).to_contain_text("Orders are being sent to the warehouse again; some ship a day late.")
        expect(card).to_contain_text("Orders placed since 03:00 UTC ship later.")
        expect(card).to_contain_text("Their order is safe and will ship.")
        for internal in (internal_title, engineering, "We may have it fixed by noon.", "KeyError", "line_items"):
            expect(board.get_by_text(internal)).to_have_count(0)
        body = board.locator("body").inner_text()
        assert internal_title not in body and engineering not in body
        assert incident.severity_reasoning not in body
        expect(card.get_by_role("link", name=re.compile("The incident"))).to_have_count(0)  # support's link only
        assert_no_violations(board)
    finally:
        context.close()


def test_resolve_is_refused_while_containment_is_open(watched, login, failing, support):
    page = watched
    _shop, events = failing
    incident = opened(support, events)
    login(support.username)
    page.goto(f"/incidents/{incident.pk}/")

    actions = page.get_by_role("region", name="Actions")
    actions.get_by_text("Add an action").click()
    actions.get_by_label("Kind").select_option(label="Containment")
    actions.get_by_label("What").fill("Pause the north shop's outbound queue")
    actions.get_by_role("button", name="Add the action").click()
    page.wait_for_url(re.compile(rf"/incidents/{incident.pk}/#actions$"))
    expect(page.get_by_role("status")).to_contain_text("Added containment action")
    action = IncidentAction.objects.get(incident=incident)
    assert action.kind == IncidentAction.Kind.CONTAINMENT and not action.done
    row = actions.locator("table.actions-containment tr.action", has_text=action.title)
    expect(row).to_contain_text("open")

    # The page says so before anyone tries; trying anyway is refused by the server, naming the action.
    workflow = page.get_by_role("region", name=re.compile(r"^Status:"))
    workflow.get_by_role("link", name="Resolve…").click()
    resolve = workflow.locator("#resolve")
    expect(resolve.locator(".resolve-blocked")).to_contain_text("Pause the north shop's outbound queue")
    expect(resolve.locator(".resolve-gate")).to_contain_text(
        "3 linked failed events were neither replayed nor resolved"
    )
    resolve.get_by_label("Override: why resolve although the data is not repaired").fill(
        "the merchant re-entered the three orders by hand"
    )
    resolve.get_by_role("button", name="Resolve with the override").click()
    page.wait_for_url(re.compile(rf"/incidents/{incident.pk}/#resolve$"))
    refusal = page.locator(".msg-error")
    expect(refusal).to_contain_text("Cannot resolve: 1 containment action(s) still open")
    expect(refusal).to_contain_text("Pause the north shop's outbound queue")
    incident.refresh_from_db()
    assert incident.status == Incident.Status.INVESTIGATING and incident.resolved_at is None
    expect(workflow.get_by_role("heading", level=2)).to_have_text("Status: Investigating")
    expect(page.locator(".pagehead .pill")).not_to_have_text("Resolved")

    # Containment done: resolving now only needs the override the data gate asks for.
    row.get_by_role("button", name="Mark done").click()
    page.wait_for_url(re.compile(rf"/incidents/{incident.pk}/#actions$"))
    expect(row).to_contain_text("done")
    expect(resolve.locator(".resolve-blocked")).to_have_count(0)
    workflow.get_by_role("link", name="Resolve…").click()
    reason = resolve.get_by_label("Override: why resolve although the data is not repaired")
    resolve.get_by_role("button", name="Resolve with the override").click()
    assert reason.evaluate("el => el.validity.valueMissing") is True  # the browser asks for the reason first
    expect(workflow.get_by_role("heading", level=2)).to_have_text("Status: Investigating")
    reason.fill("the merchant re-entered the three orders by hand")
    resolve.get_by_role("button", name="Resolve with the override").click()
    expect(page.get_by_role("status")).to_contain_text(f"Incident #{incident.pk} resolved with an override.")
    expect(workflow.get_by_role("heading", level=2)).to_have_text("Status: Resolved")
    expect(page.locator(".pagehead .pill")).to_have_text("Resolved")
    incident.refresh_from_db()
    assert incident.status == Incident.Status.RESOLVED
    assert incident.resolve_override_reason == "the merchant re-entered the three orders by hand"
    assert_no_violations(page)
