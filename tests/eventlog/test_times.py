"""Times people can compare: every time on the event pages is absolute, with its zone, beside the
relative one, and the delay from Shopify triggering a webhook to our receiving it is shown."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.template import Context, Template
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from console import timefmt
from integrations.models import Attempt, Job, WorkerHeartbeat
from tests.factories import AttemptFactory, DeliveryFactory, EventFactory, JobFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 27, 14, 3, 12, 250000, tzinfo=UTC)
ABSOLUTE = re.compile(
    r"<time datetime=\"[^\"]+\">(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Z]{2,5})</time> <span class=\"rel\">"
)


@pytest.fixture
def support(client, support_user):
    client.force_login(support_user)
    return client


def render(source: str, **context) -> str:
    return Template("{% load console_tags %}" + source).render(Context(context))


# --- The pieces ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "words"),
    [
        (timedelta(0), "0 ms"),
        (timedelta(milliseconds=4), "4 ms"),
        (timedelta(milliseconds=999), "999 ms"),
        (timedelta(seconds=1.24), "1.2 s"),
        (timedelta(seconds=59.96), "1 min"),
        (timedelta(seconds=184), "3 min 4 s"),
        (timedelta(hours=2, minutes=5, seconds=9), "2 h 5 min"),
        (timedelta(days=3, hours=2), "3 d 2 h"),
        (timedelta(seconds=-0.3), "-300 ms"),
    ],
)
def test_durations_in_short_words(delta, words):
    assert timefmt.duration(delta) == words


@pytest.mark.parametrize(
    ("ago", "words"),
    [
        (timedelta(seconds=5), "just now"),
        (timedelta(minutes=4, seconds=30), "4 min ago"),
        (timedelta(hours=3), "3 h ago"),
        (timedelta(days=2), "2 d ago"),
        (timedelta(days=800), "2 y ago"),
        (-timedelta(minutes=10), "in 10 min"),
    ],
)
def test_relative_times_are_compact(ago, words):
    assert timefmt.ago(T0 - ago, now=T0) == words


def test_abstime_shows_the_zone_and_the_relative_time():
    html = render("{% abstime t %}", t=T0)
    assert html.startswith('<time datetime="2026-11-27T14:03:12.250000+00:00">2026-11-27 14:03:12 UTC</time>')
    assert '<span class="rel">' in html and "ago" in html
    assert render("{% abstime t %}", t=None) == "—"


@override_settings(TIME_ZONE="Europe/Paris")
def test_abstime_is_in_the_console_time_zone():
    assert ">2026-11-27 15:03:12 CET</time>" in render("{% abstime t %}", t=T0)
    assert ">2026-07-01 14:00:00 CEST</time>" in render("{% abstime t %}", t=datetime(2026, 7, 1, 12, tzinfo=UTC))


def test_lag_from_trigger_to_receipt():
    html = render("{% lag a b %}", a=T0, b=T0 + timedelta(seconds=1.4))
    assert ">+1.4 s</span>" in html
    assert 'title="Triggered at Shopify 2026-11-27 14:03:12 UTC, received 2026-11-27 14:03:13 UTC: 1.4 s later"' in html
    assert render("{% lag a b words=True %}", a=T0, b=T0 + timedelta(seconds=1.4)) == "1.4 s after Shopify triggered it"
    skew = render("{% lag a b %}", a=T0, b=T0 - timedelta(milliseconds=300))
    assert "lag-skew" in skew and "\u2212300 ms" in skew and "the clocks disagree" in skew
    assert render("{% lag a b %}", a=None, b=T0) == ""


# --- On the pages ----------------------------------------------------------------------------------


def test_the_list_shows_absolute_times_and_the_delay(support):
    received = timezone.now().replace(microsecond=0)
    event = EventFactory(triggered_at=received - timedelta(seconds=2.5), received_at=received)
    DeliveryFactory(event=None, received_at=received)
    html = support.get(reverse("events:list")).content.decode()
    row = re.search(rf'id="event-{event.pk}".*?</tr>', html, re.S).group(0)
    assert ABSOLUTE.search(row).group(1) == timefmt.absolute(received)
    assert ">+2.5 s</span>" in row
    rejected = support.get(reverse("events:list"), {"status": "rejected"}).content.decode()
    assert ABSOLUTE.search(rejected)


def test_the_event_page_shows_trigger_receipt_and_processing_times(support):
    received = timezone.now().replace(microsecond=0) - timedelta(minutes=3)
    event = EventFactory(
        status="processed",
        triggered_at=received - timedelta(seconds=1.2),
        received_at=received,
        last_delivery_at=received + timedelta(seconds=30),
        processed_at=received + timedelta(seconds=2),
    )
    DeliveryFactory(event=event, received_at=received)
    job = JobFactory(event=event, name="sync_order", status=Job.Status.SUCCEEDED, attempt_count=1)
    AttemptFactory(
        job=job,
        number=1,
        started_at=received + timedelta(milliseconds=800),
        finished_at=received + timedelta(milliseconds=812),
        message="updated",
    )
    html = support.get(reverse("events:detail", args=[event.pk])).content.decode()
    assert f'Triggered at Shopify</dt><dd><time datetime="{(received - timedelta(seconds=1.2)).isoformat()}">' in html
    assert "1.2 s after Shopify triggered it" in html
    assert "2.0 s after we received it" in html  # processed
    assert timefmt.absolute(received + timedelta(seconds=30)) in html  # last delivery, in the answers
    timeline = re.search(r'<ol class="timeline">(.*?)</ol>', html, re.S).group(1)
    assert timeline.count('<span class="tl-when"><time datetime=') == 3
    assert "800 ms after we received it" in timeline and "took 12 ms" in timeline
    assert "after 0" not in html and "0 minutes" not in html


def test_the_rejected_request_page_shows_shopifys_trigger_time(support):
    received = timezone.now().replace(microsecond=0)
    delivery = DeliveryFactory(
        event=None,
        received_at=received,
        headers={"X-Shopify-Triggered-At": (received - timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.123456789Z")},
    )
    html = support.get(reverse("events:delivery", args=[delivery.pk])).content.decode()
    assert "Triggered at Shopify" in html and "2.9 s after Shopify triggered it" in html
    assert ABSOLUTE.search(html)
    for garbage in ("yesterday", "9999-99-99T99:99:99Z", "", "²"):
        delivery.headers = {"X-Shopify-Triggered-At": garbage}
        delivery.save()
        page = support.get(reverse("events:delivery", args=[delivery.pk]))
        assert page.status_code == 200 and "Triggered at Shopify" not in page.content.decode()


def test_the_dashboard_shows_absolute_times(support):
    now = timezone.now()
    WorkerHeartbeat.objects.create(name="host:1:pump1", beat_at=now - timedelta(seconds=20))
    EventFactory(status="queued", received_at=now - timedelta(minutes=7))
    html = support.get(reverse("dashboard")).content.decode()
    assert re.search(r"Last heartbeat: " + ABSOLUTE.pattern, html)
    assert re.search(r"waiting <strong[^>]*>7 min( \d+ s)?</strong> since " + ABSOLUTE.pattern, html)


def test_attempts_that_failed_still_show_their_error(support):
    event = EventFactory(status="failed")
    job = JobFactory(event=event, status=Job.Status.FAILED, attempt_count=1)
    AttemptFactory(job=job, number=1, outcome=Attempt.Outcome.FAILED, error_class="Boom", message="503 upstream")
    html = support.get(reverse("events:detail", args=[event.pk])).content.decode()
    assert '<code class="bad">Boom</code> 503 upstream' in html
