"""Data: rows written by the old spine moved into the new states (its own transaction, so the
constraints added by 0008 see committed rows)."""

from django.db import migrations


def split_statuses_and_keep_history(apps, schema_editor):
    """Bring rows written by the old spine into the new states before the constraints apply.

    "processing" meant two things: an event claimed by a worker (given back to the queue: no pump
    holds it now) and an event whose jobs wait for a retry (now retry_wait, due when its first job
    is). Jobs are never stored as running; an attempt left running was cut off by a lost worker.
    A privacy request's proof becomes its first append-only proof row.
    """
    from django.db.models import Min, Q
    from django.utils import timezone

    Event = apps.get_model("integrations", "Event")
    Job = apps.get_model("integrations", "Job")
    Attempt = apps.get_model("integrations", "Attempt")
    PrivacyRequest = apps.get_model("integrations", "PrivacyRequest")
    PrivacyProof = apps.get_model("integrations", "PrivacyProof")
    now = timezone.now()

    Event.objects.filter(status="processing").exclude(claimed_at=None).update(status="queued", claimed_at=None)
    for event in Event.objects.filter(status="processing").annotate(due=Min("jobs__next_attempt_at")).iterator():
        Event.objects.filter(pk=event.pk).update(status="retry_wait", next_attempt_at=event.due or now)
    for event in Event.objects.filter(status="processed", processed_at=None).only("id", "received_at"):
        Event.objects.filter(pk=event.pk).update(processed_at=event.received_at)
    Event.objects.filter(status="processed", processed_count=0).update(processed_count=1)

    Job.objects.filter(status="running").update(status="pending")
    Job.objects.filter(status="retry_wait", next_attempt_at=None).update(next_attempt_at=now)
    Job.objects.filter(status__in=["succeeded", "failed"], finished_at=None).update(finished_at=now)

    Attempt.objects.filter(outcome="running").update(
        outcome="failed",
        error_class="WorkerLost",
        message="the worker stopped during this attempt; its changes were rolled back",
        retryable=True,
        trigger="recovery",
    )
    Attempt.objects.filter(error_class="WorkerLost").update(trigger="recovery")
    Attempt.objects.filter(replay=True).update(trigger="replay")
    Attempt.objects.filter(replay=False, number__gt=1).filter(~Q(trigger="recovery")).update(trigger="retry")
    for attempt in Attempt.objects.filter(finished_at=None).only("id", "started_at"):
        Attempt.objects.filter(pk=attempt.pk).update(finished_at=attempt.started_at)

    for request in PrivacyRequest.objects.exclude(proof=None):
        PrivacyProof.objects.create(
            request_id=request.pk,
            event_id=request.event_id,
            recorded_at=request.completed_at or now,
            counts=request.proof,
        )
    PrivacyRequest.objects.filter(state="completed", completed_at=None).update(completed_at=now)


class Migration(migrations.Migration):
    dependencies = [("integrations", "0006_spine_state_machines")]

    operations = [migrations.RunPython(split_statuses_and_keep_history, migrations.RunPython.noop)]
