"""A support person replays failed events from the event log: ticks them, reads the dry run (what
runs, what is skipped, and why), confirms it with a reason, and watches the progress bar fill
while the worker's replay lane runs it, without reloading the page: in Debian's Chromium, against
a live server, under the Content-Security-Policy."""

import dataclasses
import re
import threading

import pytest
from django.db import connection
from playwright.sync_api import expect

from console import roles
from integrations.jobs.registry import JOB_TYPES
from integrations.models import Event, FulfillmentNotification, ReplayRequest
from integrations.processing.pump import Pump
from tests.browser.test_csp_browser import WATCH_VIOLATIONS, assert_no_violations
from tests.factories import ShopFactory, UserFactory
from tests.webhooks import order, receive

pytestmark = pytest.mark.browser


@pytest.fixture
def watched(page):
    messages = []
    page.on("console", lambda msg: messages.append(msg.text) if msg.type in ("error", "warning") else None)
    page.add_init_script(WATCH_VIOLATIONS)
    page.csp_messages = messages
    return page


def failed_orders(shop, monkeypatch, count: int) -> list[Event]:
    """orders/paid events whose notify_fulfillment failed: the warehouse refused them."""
    real = JOB_TYPES["notify_fulfillment"]

    def warehouse_down(event, payload):
        raise ValueError("warehouse API refused the order")

    monkeypatch.setitem(JOB_TYPES, "notify_fulfillment", dataclasses.replace(real, run=warehouse_down))
    events = [receive(shop, "orders/paid", order(5001 + i)) for i in range(count)]
    pump = Pump(tag="browser")
    while pump.run_once():
        pass
    monkeypatch.setitem(JOB_TYPES, "notify_fulfillment", real)
    assert set(Event.objects.filter(pk__in=[e.pk for e in events]).values_list("status", flat=True)) == {"failed"}
    return events


class PumpThread(threading.Thread):
    """The worker's event pump, pass after pass, until stopped (the replay lane runs in it)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop = threading.Event()

    def run(self) -> None:
        pump = Pump(tag="browser")
        try:
            while not self.stop.is_set():
                if not pump.run_once():
                    self.stop.wait(0.2)
        finally:
            connection.close()


def test_replay_failed_events_from_the_event_log_and_watch_it_finish(watched, login, monkeypatch):
    page = watched
    shop = ShopFactory(domain="replay-north.myshopify.com")
    events = failed_orders(shop, monkeypatch, 3)
    processed = receive(shop, "orders/create", order(5100))  # not failed: not listed
    UserFactory(username="browser-replay-support", role=roles.SUPPORT)
    login("browser-replay-support")

    page.goto("/events/?status=failed")
    expect(page.locator("#log-rows tr.log-row")).to_have_count(3)
    expect(page.locator(f"#event-{processed.pk}")).to_have_count(0)
    for event in events:
        page.get_by_label(f"Select event {event.pk} (orders/paid, failed) for a replay").check()
    page.get_by_role("button", name="Dry-run a replay of the selected events").click()
    page.wait_for_url(re.compile(r"/replays/\d+/$"))
    replay = ReplayRequest.objects.get()
    assert replay.status == ReplayRequest.Status.PLANNED

    # The dry run: per event, notify_fulfillment and the tag that waited for it run; the jobs that
    # already succeeded are skipped, each with its reason. Nothing has run.
    expect(page.get_by_text("Dry run: nothing has run.")).to_be_visible()
    plan = page.get_by_role("region", name=re.compile(r"^The plan"))
    expect(plan.locator("tr.plan-run")).to_have_count(6)
    expect(plan.locator("tr.plan-skip")).to_have_count(6)
    first_notify = plan.locator("tr.plan-run", has_text="notify_fulfillment").first
    expect(first_notify).to_contain_text("Run")
    expect(first_notify).to_contain_text("failed after 1 attempt (warehouse API refused the order)")
    expect(plan.locator("tr.plan-skip").first).to_contain_text("already succeeded")
    summary = page.get_by_role("region", name="What it would do")
    expect(summary).to_contain_text("Jobs to run")
    assert not FulfillmentNotification.objects.exists()

    actions = page.get_by_role("region", name="Run it")
    actions.get_by_label("Reason for the replay").fill("the warehouse API is back")
    actions.get_by_role("button", name="Run this replay").click()
    page.wait_for_url(re.compile(rf"/replays/{replay.pk}/$"))
    expect(page.get_by_role("status")).to_contain_text("Queued: 3 events")
    progress = page.get_by_role("region", name="Progress", exact=True)
    expect(progress).to_contain_text("0 of 3 events")
    expect(page.locator("#replay-status")).to_have_text("Queued for the worker")

    # The worker runs it; the panel polls itself (htmx, every second) until it is done.
    page.evaluate("window.__same_page = true")
    worker = PumpThread()
    worker.start()
    try:
        expect(progress).to_contain_text("Done", timeout=30_000)
        expect(progress).to_contain_text("3 of 3 events, 100%")
        expect(progress.locator(".count-ran")).to_have_text("6")
        expect(progress.locator(".count-failed")).to_have_text("0")
        expect(progress.locator(".count-skipped")).to_have_text("0")
        expect(progress.locator("progress.replay-bar")).to_have_attribute("value", "3")
        expect(progress.locator("progress.replay-bar")).to_have_attribute("max", "3")
        expect(progress.locator(".replay-outcome")).to_contain_text("3 events: 6 jobs ran, 0 failed")
        expect(page.locator("#replay-status")).to_have_text("Done")  # the page head follows (out of band)
    finally:
        worker.stop.set()
        worker.join(timeout=10)
    assert page.evaluate("window.__same_page") is True  # no reload
    # Done: the panel stopped polling; the actions and each event's result followed.
    expect(progress).not_to_have_attribute("hx-trigger", re.compile("every"))
    expect(page.get_by_role("button", name="Cancel replay")).to_have_count(0)
    expect(page.get_by_role("region", name="Events in the run").locator("tr.item-done")).to_have_count(3)
    assert FulfillmentNotification.objects.count() == 3
    assert_no_violations(page)
