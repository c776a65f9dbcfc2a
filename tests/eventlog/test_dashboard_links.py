"""Dashboard figures link to the lists they count, and "Failed tasks" to a page support and admins
can open (django-q2's failures, read-only)."""

import re
import uuid
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse
from django.utils import timezone
from django_q.models import Failure, Task

from integrations.eventlog import views
from tests.factories import DeliveryFactory, EventFactory

pytestmark = pytest.mark.django_db


def links(html: str) -> dict[str, str]:
    """Link text -> href, for links whose text is a figure or a legend entry."""
    return {
        text.strip(): href.replace("&amp;", "&") for href, text in re.findall(r'<a href="([^"]+)">([^<]+)</a>', html)
    }


def failed_task(n: int = 0, **fields) -> Task:
    now = timezone.now()
    values = {
        "id": uuid.uuid4().hex,
        "name": f"pump-{n}",
        "func": "integrations.tasks.run_event_pump",
        "started": now - timedelta(seconds=n + 2),
        "stopped": now - timedelta(seconds=n),
        "success": False,
        "result": f"Traceback (most recent call last):\n  ...\nOperationalError: database is locked <{n}>",
        "args": (),
        "kwargs": {},
        "attempt_count": 1,
    }
    return Task.objects.create(**{**values, **fields})


def test_event_figures_link_to_their_lists(client, support_user):
    from tests.factories import OutboundCallFactory

    now = timezone.now()
    EventFactory(status="queued")
    EventFactory(status="claimed")
    EventFactory(status="retry_wait")
    failed = EventFactory(status="failed")
    # Calls in the statuses webhooks have too: the inbound figures' lists leave them out.
    OutboundCallFactory(status="queued")
    OutboundCallFactory(status="failed", shop=failed.shop)
    DeliveryFactory(event=None, received_at=now - timedelta(minutes=10))
    DeliveryFactory(event=None, received_at=now - timedelta(hours=5))
    client.force_login(support_user)
    html = client.get(reverse("dashboard")).content.decode()
    for status in ("claimed", "retry_wait"):
        assert f'<a href="/events/?status={status}">1</a>' in html
    queued = re.search(r'<a href="(/events/\?direction=inbound&amp;status=queued)">1</a>', html).group(1)
    listed = client.get(queued.replace("&amp;", "&"))
    assert listed.context["log"].kind == "events" and len(listed.context["page"].rows) == 1
    rejected = re.findall(r'<a href="(/events/\?status=rejected&amp;received_from=[^"]+)">(\d+)</a>', html)
    assert [n for _, n in rejected] == ["1", "2"]  # last hour, last 24 h
    for href, n in rejected:
        listed = client.get(href.replace("&amp;", "&"))
        assert listed.status_code == 200 and not listed.context["form"].errors
        assert len(listed.context["page"].rows) == int(n)
    legend = links(html)
    assert "failed 1" in legend
    params = parse_qs(urlsplit(legend["failed 1"]).query)
    assert params["status"] == ["failed"] and params["received_from"] and params["direction"] == ["inbound"]
    assert client.get(legend["failed 1"]).context["page"].rows == [failed]
    shop_link = links(html)[failed.shop.domain]
    assert parse_qs(urlsplit(shop_link).query)["direction"] == ["inbound"]
    assert client.get(shop_link).context["page"].rows == [failed]


def test_failed_tasks_on_the_dashboard_link_to_their_page(client, admin_user):
    failed_task()
    client.force_login(admin_user)
    html = client.get(reverse("dashboard")).content.decode()
    assert f'<a href="{reverse("events:failed_tasks")}">1</a>' in html


@pytest.mark.parametrize("who", ["admin_user", "support_user"])
def test_admins_and_support_can_read_failed_tasks(client, request, who):
    task = failed_task(func="integrations.tasks.<script>x</script>")
    Task.objects.create(
        id=uuid.uuid4().hex, name="ok", func="f", started=timezone.now(), stopped=timezone.now(), success=True
    )
    client.force_login(request.getfixturevalue(who))
    response = client.get(reverse("events:failed_tasks"))
    assert response.status_code == 200
    html = response.content.decode()
    assert f'id="task-{task.id}"' in html and html.count('<tr id="task-') == 1  # failures only
    assert "OperationalError: database is locked" in html
    assert "&lt;script&gt;" in html and "<script>x" not in html
    assert "<form" not in html.split("<h1>Failed tasks</h1>")[1]  # read-only


def test_customer_service_cannot(client, service_user):
    client.force_login(service_user)
    assert client.get(reverse("events:failed_tasks")).status_code == 403


def test_failed_tasks_are_newest_first_and_capped(client, support_user, monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr(views, "FAILED_TASKS_SHOWN", 3)
    tasks = [failed_task(n) for n in range(5)]
    client.force_login(support_user)
    with django_assert_max_num_queries(8):
        html = client.get(reverse("events:failed_tasks")).content.decode()
    assert re.findall(r'id="task-(\w+)"', html) == [t.id for t in tasks[:3]]
    assert "5 failed tasks; showing the newest 3" in html
    assert Failure.objects.count() == 5


def test_no_failed_tasks(client, support_user):
    client.force_login(support_user)
    assert "No failed tasks." in client.get(reverse("events:failed_tasks")).content.decode()
