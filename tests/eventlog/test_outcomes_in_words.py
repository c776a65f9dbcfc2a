"""What a job did, said in words: a run that wrote nothing says why (we already hold a version as
new, or newer, with both times), and an event that arrived after a newer change to its record is
flagged "out of order" in the list, on its page, in its timeline and in the five answers."""

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse

from integrations.eventlog import selectors
from integrations.eventlog.trace import describe_result, plain_words, trace_event
from integrations.models import Attempt, Event, Job
from integrations.processing.pump import process_pending
from tests.factories import AttemptFactory, EventFactory, JobFactory, ShopFactory
from tests.webhooks import order, receive

pytestmark = pytest.mark.django_db

OURS = datetime(2026, 5, 4, 14, 5, tzinfo=UTC)
THEIRS = datetime(2026, 5, 4, 14, 0, tzinfo=UTC)


def stale(ours=OURS, theirs=THEIRS) -> str:
    """The message integrations.jobs.records.Written gives a run that wrote nothing."""
    return (
        f"stale: we already hold the version of {ours.isoformat()}, as new as or newer than this "
        f"event's {theirs.isoformat()}; nothing written"
    )


@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    return client


# --- describe_result ---------------------------------------------------------------------------------


def test_a_newer_version_held_is_out_of_order_with_both_times():
    result = describe_result(stale())
    assert (result.kind, result.did_nothing, result.out_of_order) == ("stale", True, True)
    assert result.words.startswith("Nothing written: we already hold a newer version of this record")
    assert "2026-05-04 14:05:00 UTC" in result.words and "2026-05-04 14:00:00 UTC" in result.words
    assert "arrived out of order" in result.words
    assert "stale" not in result.words


def test_the_same_version_held_is_nothing_to_do_but_not_out_of_order():
    result = describe_result(stale(ours=THEIRS))
    assert result.did_nothing and not result.out_of_order
    assert "this very version" in result.words and "2026-05-04 14:00:00 UTC" in result.words


@pytest.mark.parametrize(
    ("message", "kind", "words"),
    [
        ("stale", "stale", "Nothing written: we already held a version as new as or newer"),
        (  # as records.py writes it when it could not read our version back
            "stale: we already hold the version of ?, as new as or newer than this event's ?; nothing written",
            "stale",
            "as new as or newer than this event's",
        ),
        ("redacted: the record's personal data was removed, so it is not written again", "redacted", "redacted"),
        ("created", "created", "Created the record"),
        ("updated", "updated", "Updated the record to this event's version"),
        ("notified", "notified", "Told the fulfillment queue"),
        ("not paid (pending): nothing to fulfil", "other", "Not paid (pending): nothing to fulfil"),
    ],
)
def test_every_outcome_in_words(message, kind, words):
    result = describe_result(message)
    assert result.kind == kind
    assert words in result.words
    assert not result.out_of_order


def test_a_product_and_its_variants():
    result = describe_result(stale() + "; variants: 2 stale, 1 updated")
    assert result.out_of_order
    assert result.words.endswith("Variants: 2 already up to date, 1 updated.")
    assert describe_result("updated; variants: 3 created").words.endswith("Variants: 3 created.")


# --- Through the real pump -----------------------------------------------------------------------------


def test_an_older_update_processed_after_a_newer_one_is_flagged(support):
    shop = ShopFactory()
    newer = receive(shop, "orders/updated", order(updated="2026-05-04T10:05:00-04:00"), "wh-newer-0001")
    process_pending()
    older = receive(shop, "orders/updated", order(updated="2026-05-04T10:00:00-04:00"), "wh-older-0001")
    process_pending()
    older.refresh_from_db()
    assert older.status == Event.Status.PROCESSED

    listed = support.get(reverse("events:list")).content.decode()
    older_row = re.search(rf'id="event-{older.pk}".*?</tr>', listed, re.S).group(0)
    newer_row = re.search(rf'id="event-{newer.pk}".*?</tr>', listed, re.S).group(0)
    assert ">out of order</span>" in older_row and "out of order" not in newer_row

    page = support.get(reverse("events:detail", args=[older.pk])).content.decode()
    assert page.count('class="pill pill-ooo"') >= 2  # the heading and the attempt
    assert "Succeeded: nothing to write" in page
    assert "we already hold a newer version of this record (changed at Shopify 2026-05-04 14:05:00 UTC)" in page
    assert "than the one this event carries (2026-05-04 14:00:00 UTC)" in page
    assert "It arrived out of order" in page  # the five answers
    assert "stale:" not in page.split('<ol class="timeline">')[1].split("title=")[0]  # words, not the code
    assert "after 0 minutes" not in page and "Succeeded after" not in page

    words = dict(plain_words(trace_event(older)))
    assert "It changed nothing" in words["Processed?"] and "out of order" in words["Processed?"]
    assert "sync_order: Nothing written: we already hold a newer version" in words["Which jobs?"]


def test_the_same_change_twice_is_nothing_to_do_not_out_of_order(support):
    shop = ShopFactory()
    receive(shop, "orders/updated", order(updated="2026-05-04T10:00:00-04:00"), "wh-first-0001")
    again = receive(shop, "orders/updated", order(updated="2026-05-04T10:00:00-04:00"), "wh-again-0001")
    process_pending()
    page = support.get(reverse("events:detail", args=[again.pk])).content.decode()
    assert "this very version of the record" in page
    assert "pill-ooo" not in page
    assert "pill-ooo" not in support.get(reverse("events:list")).content.decode()


def test_the_command_says_it_in_words_too():
    shop = ShopFactory()
    receive(shop, "orders/updated", order(updated="2026-05-04T10:05:00-04:00"), "wh-cmd-newer")
    process_pending()
    receive(shop, "orders/updated", order(updated="2026-05-04T10:00:00-04:00"), "wh-cmd-older")
    process_pending()
    out = StringIO()
    call_command("events", "trace", "wh-cmd-older", stdout=out)
    assert "It arrived out of order" in out.getvalue()
    assert "Nothing written: we already hold a newer version" in out.getvalue()
    out = StringIO()
    call_command("events", "trace", "wh-cmd-older", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["out_of_order"] is True and data["jobs"][0]["did_nothing"] is True


# --- What counts as out of order -------------------------------------------------------------------------


def _event_with(*attempts) -> Event:
    event = EventFactory(status=Event.Status.PROCESSED)
    job = JobFactory(event=event, name="sync_order", status=Job.Status.SUCCEEDED, attempt_count=len(attempts))
    for number, (message, trigger, *outcome) in enumerate(attempts, start=1):
        AttemptFactory(
            job=job, number=number, message=message, trigger=trigger, outcome=outcome[0] if outcome else "succeeded"
        )
    return event


def test_only_the_first_processing_decides():
    first = Attempt.Trigger.FIRST
    replay = Attempt.Trigger.REPLAY
    flagged = _event_with((stale(), first))
    replayed_later = _event_with(("updated", first), (stale(), replay))  # in order when it arrived
    retried = _event_with(("503", first, Attempt.Outcome.FAILED), (stale(), Attempt.Trigger.RETRY))
    same = _event_with((stale(ours=THEIRS), first))
    rows = [flagged, replayed_later, retried, same]
    selectors.mark_out_of_order(rows)
    assert [row.out_of_order for row in rows] == [True, False, True, False]
    for event, expected in zip(rows, [True, False, True, False], strict=True):
        assert trace_event(event)["out_of_order"] is expected


def test_marking_rows_is_one_query_whatever_their_number(django_assert_num_queries):
    events = [_event_with((stale(), Attempt.Trigger.FIRST)) for _ in range(12)]
    with django_assert_num_queries(1):
        selectors.mark_out_of_order(events)
    with django_assert_num_queries(0):
        selectors.mark_out_of_order([])


def test_a_timeline_entry_carries_the_words_and_its_timing():
    event = _event_with((stale(), Attempt.Trigger.FIRST))
    loaded = selectors.events_for_detail().get(pk=event.pk)
    (attempt,) = [entry for entry in selectors.timeline(loaded) if entry.kind == "attempt"]
    assert attempt.result.out_of_order and attempt.since is not None
    assert attempt.since >= timedelta(0) - timedelta(seconds=1)
