"""Upgrading a database the old spine wrote: rows in states that no longer exist land in the new
ones, and the new check constraints then hold."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

OLD = [("integrations", "0005_leaner_intake_indexes")]


@pytest.mark.django_db(transaction=True)
def test_upgrade_moves_old_rows_into_the_new_states():
    executor = MigrationExecutor(connection)
    # Every app's latest migration: going back unapplies the apps that depend on integrations too
    # (worksheets), and they must come back for the tests after this one.
    latest = executor.loader.graph.leaf_nodes()
    executor.migrate(OLD)
    old = executor.loader.project_state(OLD).apps
    Shop, Event, Job, Attempt = (old.get_model("integrations", name) for name in ("Shop", "Event", "Job", "Attempt"))
    PrivacyRequest, TriageNote = (
        old.get_model("integrations", "PrivacyRequest"),
        old.get_model("integrations", "TriageNote"),
    )
    now = timezone.now()
    shop = Shop.objects.create(domain="old.myshopify.com", webhook_secret="s")

    def event(webhook_id, **fields):
        return Event.objects.create(shop=shop, webhook_id=webhook_id, topic="orders/create", **fields)

    claimed = event("claimed", status="processing", claimed_at=now)
    waiting = event("waiting", status="processing")
    retry_at = now + timezone.timedelta(minutes=3)
    Job.objects.create(event=waiting, name="sync_order", status="retry_wait", next_attempt_at=retry_at)
    done = event("done", status="processed", processed_count=1, processed_at=now)
    job = Job.objects.create(event=done, name="sync_order", status="running")
    Attempt.objects.create(job=job, number=1, outcome="running")
    Attempt.objects.create(job=job, number=2, outcome="succeeded", finished_at=now, replay=True)
    TriageNote.objects.create(event=done, action="acknowledge", note="kept")
    privacy = event("privacy")
    PrivacyRequest.objects.create(
        shop=shop, event=privacy, kind="customers/redact", due_at=now, state="completed", proof={"orders": 2}
    )

    executor = MigrationExecutor(connection)
    executor.migrate(latest)
    new = executor.loader.project_state(latest).apps
    Event, Job, Attempt = (new.get_model("integrations", name) for name in ("Event", "Job", "Attempt"))
    PrivacyProof, EventHistory = (
        new.get_model("integrations", "PrivacyProof"),
        new.get_model("integrations", "EventHistory"),
    )

    assert Event.objects.get(pk=claimed.pk).status == "queued"  # no pump holds it after the upgrade
    upgraded = Event.objects.get(pk=waiting.pk)
    assert (upgraded.status, upgraded.next_attempt_at) == ("retry_wait", retry_at)
    assert Job.objects.get(pk=job.pk).status == "pending"
    assert list(Attempt.objects.filter(job_id=job.pk).order_by("number").values_list("outcome", "trigger")) == [
        ("failed", "recovery"),
        ("succeeded", "replay"),
    ]
    assert EventHistory.objects.get(event_id=done.pk).note == "kept"
    assert PrivacyProof.objects.get().counts == {"orders": 2}
    completed = new.get_model("integrations", "PrivacyRequest").objects.get()
    assert completed.completed_at is not None
