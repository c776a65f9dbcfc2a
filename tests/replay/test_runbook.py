"""The runbook page: generated from the job registry and the planner, readable by support and
admins, and as fast with many jobs and events as with few."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.html import escape

from integrations.jobs import registry
from integrations.jobs.registry import JOB_TYPES, TOPIC_JOBS, Decision
from integrations.models import Event, Job
from integrations.replay import planner, runbook
from tests.factories import EventFactory, JobFactory, ShopFactory

URL = reverse("replays:runbook")


def _fake_predicate(event, job):
    """The parcel has not left the warehouse yet."""
    return Decision(True, "not shipped")


@pytest.fixture
def fake_job(monkeypatch):
    """A job type registered at test time, on a topic of its own."""
    fake = registry.JobType(
        name="fake_reindex",
        run=lambda event, payload: "ok",
        decision=registry.conditional("Safe while the search index has not caught up.", _fake_predicate),
        description="Reindex the order in the search service.",
        scopes=("read_search",),
        effect="Overwrites the search document keyed by the order id: a second run writes the same document.",
        writes=(("platform", "search_document", ""),),
        supersedable=False,
    )
    monkeypatch.setitem(JOB_TYPES, fake.name, fake)
    monkeypatch.setitem(TOPIC_JOBS, "orders/reindexed", ("fake_reindex",))
    return fake


def test_it_lists_every_topic_and_every_job_with_what_it_declares(client_as, support_user):
    page = client_as(support_user).get(URL)
    assert page.status_code == 200
    html = page.content.decode()
    for topic in TOPIC_JOBS:
        assert f"<code>{escape(topic)}</code>" in html
    for name, job_type in JOB_TYPES.items():
        assert f'id="job-{name}"' in html
        assert escape(job_type.replay_reason) in html
        assert escape(runbook.KIND_WORDS[job_type.replay]) in html
        assert escape(job_type.effect) in html
        for scope in job_type.scopes:
            assert f"<code>{scope}</code>" in html
        if job_type.description:
            assert escape(job_type.description) in html


def test_each_job_section_holds_its_own_declarations(client_as, admin_user):
    html = client_as(admin_user).get(URL).content.decode()
    for name, job_type in JOB_TYPES.items():
        start = html.index(f'id="job-{name}"')
        section = html[start : html.index("</section>", start)]
        assert escape(job_type.replay_reason) in section
        assert escape(runbook.KIND_WORDS[job_type.replay]) in section
        assert escape(job_type.effect) in section


def test_it_says_who_owns_what_a_job_writes(client_as, support_user):
    html = client_as(support_user).get(URL).content.decode()
    tag = html[html.index('id="job-tag_buyer"') :]
    tag = tag[: tag.index("</section>")]
    # ("shopify", "customer", "tags"): a call through the outbound queue; tags are shared.
    assert "customer: tags" in tag
    assert "through the outbound queue" in tag
    assert "Shared: both add to it, neither overwrites it" in tag
    notify = html[html.index('id="job-notify_fulfillment"') :]
    notify = notify[: notify.index("</section>")]
    assert escape(runbook.OWN_RECORD) in notify  # no ownership default: the platform's own record
    sync_product = html[html.index('id="job-sync_product"') :]
    sync_product = sync_product[: sync_product.index("</section>")]
    assert "Except title: The platform owns it" in sync_product


def test_the_checks_are_the_planners(client_as, support_user):
    html = client_as(support_user).get(URL).content.decode()
    checks, otherwise = runbook.replay_checks()
    numbered = [line for line in planner.__doc__.splitlines() if line[:2].rstrip(".").isdigit()]
    assert len(checks) == len(numbered) >= 8
    for check in checks:
        assert escape(check.text) in html
    assert escape(otherwise) in html
    assert "The handler is disabled for the shop" in html
    for kind, label in planner.KINDS.items():
        if kind != "run":
            assert escape(label) in html


def test_containment_steps_link_to_where_they_are_done(client_as, support_user):
    html = client_as(support_user).get(URL).content.decode()
    for name in ("outbound:index", "integrations:shop_list", "replays:handlers", "replays:list", "events:list"):
        assert f'href="{reverse(name)}"' in html
    # The runbook has no worksheet step yet (issue 13); the main navigation does link to them.
    assert "worksheet" not in html[html.index("<main") :].lower()


def test_a_job_registered_now_appears_too(client_as, support_user, fake_job):
    html = client_as(support_user).get(URL).content.decode()
    assert 'id="job-fake_reindex"' in html
    assert "<code>orders/reindexed</code>" in html
    section = html[html.index('id="job-fake_reindex"') :]
    section = section[: section.index("</section>")]
    assert "Safe while a condition holds" in section
    assert "Safe while the search index has not caught up." in section
    assert "The parcel has not left the warehouse yet." in section  # the predicate's docstring
    assert "<code>read_search</code>" in section
    assert "Reindex the order in the search service." in section
    assert escape(fake_job.effect) in section
    assert "search document (the whole record)" in section
    assert escape(runbook.OWN_RECORD) in section
    assert "every event is its own request" in section


def test_it_counts_held_and_failed_jobs(client_as, support_user):
    shop = ShopFactory()
    for _ in range(2):
        JobFactory(event=EventFactory(shop=shop, status=Event.Status.HELD), name="tag_buyer", status=Job.Status.HELD)
    JobFactory(event=EventFactory(shop=shop, status=Event.Status.FAILED), name="sync_order", status=Job.Status.FAILED)
    assert runbook.job_counts() == {"tag_buyer": {"held": 2}, "sync_order": {"failed": 1}}
    html = client_as(support_user).get(URL).content.decode()
    assert "2 held" in html
    assert "1 failed" in html
    assert "job=sync_order&amp;status=failed" in html


@pytest.mark.parametrize("role", ["service_user"])
def test_customer_service_may_not_read_it(client_as, role, request):
    assert client_as(request.getfixturevalue(role)).get(URL).status_code == 403


def test_anonymous_goes_to_login(client, db):
    page = client.get(URL)
    assert page.status_code == 302
    assert reverse("login") in page["Location"]


def test_query_count_does_not_grow_with_jobs_or_events(client_as, support_user, monkeypatch):
    client = client_as(support_user)
    client.get(URL)  # warm up: session, content types
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    shop = ShopFactory()
    for name in ("sync_order", "tag_buyer", "notify_fulfillment"):
        for status in (Job.Status.HELD, Job.Status.FAILED):
            event = EventFactory(shop=shop, status=Event.Status.HELD if status == Job.Status.HELD else "failed")
            JobFactory(event=event, name=name, status=status)
    for n in range(5):
        fake = registry.JobType(
            name=f"fake_{n}",
            run=lambda event, payload: "ok",
            decision=registry.always("Writes nothing twice."),
            description="A fake.",
            effect="Nothing.",
        )
        monkeypatch.setitem(JOB_TYPES, fake.name, fake)
        monkeypatch.setitem(TOPIC_JOBS, f"fake/{n}", (fake.name,))
    with CaptureQueriesContext(connection) as many:
        page = client.get(URL)
    assert page.status_code == 200
    assert 'id="job-fake_4"' in page.content.decode()
    assert len(many) == len(few)
