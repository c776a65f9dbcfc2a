"""Running replays: exactly the plan shown, in the replay lane, behind live events, waiting for a
paused shop, approved by a second admin above the limits, cancellable, audited."""

import pytest
from django.utils import timezone

from console.models import AuditEntry
from integrations.models import (
    Attempt,
    Event,
    FulfillmentNotification,
    Job,
    OutboundCall,
    ReplayItem,
    ReplayRequest,
    WorkerHeartbeat,
)
from integrations.outbound.queue import pause_shop, resume_shop
from integrations.processing.pump import Pump
from integrations.replay import services
from integrations.replay.runner import waiting_counts
from integrations.replay.selection import for_events, for_filter
from tests.webhooks import order, receive

pytestmark = pytest.mark.django_db


def run(replay: ReplayRequest, by=None, reason: str = "warehouse is back") -> ReplayRequest:
    return services.do_replay(replay, by=by, reason=reason, plan_hash=replay.plan_hash)


def test_a_replay_runs_exactly_the_failed_jobs_once_and_says_so(shop, drain, failed_paid, support_user):
    [paid] = failed_paid()
    calls_before = OutboundCall.objects.count()
    replay = run(services.check_replay(selection=for_events([paid.pk]), by=support_user), by=support_user)
    assert replay.status == "queued" and replay.items_total == 1

    drain()

    replay.refresh_from_db()
    assert replay.status == "done" and replay.jobs_ran == 2 and replay.jobs_failed == 0
    assert FulfillmentNotification.objects.count() == 1
    attempts = Attempt.objects.filter(job__event=paid, trigger=Attempt.Trigger.REPLAY)
    assert sorted(a.job.name for a in attempts) == ["notify_fulfillment", "tag_notified_order"]
    assert {a.replay_id for a in attempts} == {replay.pk}
    # sync_order and tag_buyer had succeeded: not run again.
    assert not Attempt.objects.filter(job__event=paid, job__name__in=["sync_order", "tag_buyer"], number__gt=1)
    new_calls = OutboundCall.objects.order_by("id")[calls_before:]
    assert [(c.operation, c.lane, c.origin) for c in new_calls] == [("order.add_tags", "replay", "replay")]
    assert f"replay {replay.pk}" in new_calls[0].origin_ref
    paid.refresh_from_db()
    assert paid.status == Event.Status.PROCESSED and paid.processed_count == 1
    verbs = list(AuditEntry.objects.filter(target_id=str(replay.pk)).values_list("verb", flat=True))
    assert verbs == ["replay.request", "replay.done"]

    # Replaying again: everything already succeeded, nothing runs.
    again = run(services.check_replay(selection=for_events([paid.pk])))
    assert again.status == "done" and "nothing to run" in again.outcome
    assert FulfillmentNotification.objects.count() == 1


def test_a_real_run_needs_a_reason_and_the_plan_that_was_shown(shop, failed_paid, drain):
    [paid] = failed_paid()
    replay = services.check_replay(selection=for_events([paid.pk]))
    with pytest.raises(services.ReplayError, match="needs a reason"):
        services.do_replay(replay, by=None, reason="  ", plan_hash=replay.plan_hash)
    with pytest.raises(services.PlanChanged):
        services.do_replay(replay, by=None, reason="go", plan_hash="0" * 64)
    # The state changes after the dry run: the run is refused and the request gets the new plan.
    Job.objects.filter(event=paid, name="notify_fulfillment").update(attempt_count=3)
    old_hash = replay.plan_hash
    with pytest.raises(services.PlanChanged, match="changed since the dry run"):
        run(replay)
    replay.refresh_from_db()
    assert replay.status == "planned" and replay.plan_hash != old_hash
    assert not ReplayItem.objects.exists()
    # Looked at again and run: fine.
    assert run(replay).status == "queued"


def test_live_events_go_first_and_replays_use_what_is_left(shop, failed_paid, monkeypatch):
    events = failed_paid(3)
    replay = run(services.check_replay(selection=for_events([e.pk for e in events])))
    for i in range(4):
        receive(shop, "orders/create", order(order_id=5000 + i, financial_status="pending"))
    pump = Pump(tag="priority", batch_size=2)

    pump.run_once()  # a full live batch: no replay this pass
    assert Event.objects.filter(status=Event.Status.QUEUED).count() == 2
    assert ReplayItem.objects.filter(replay=replay, status="pending").count() == 3
    pump.run_once()  # the last two live events, a full batch again
    assert not Event.objects.filter(status=Event.Status.QUEUED).exists()
    assert ReplayItem.objects.filter(status="pending").count() == 3
    pump.run_once()  # the live queue is drained: the replay lane runs
    assert ReplayItem.objects.filter(status="pending").count() == 0
    replay.refresh_from_db()
    assert replay.status == "done"


def test_a_replay_for_a_paused_shop_waits_and_runs_after_resume(shop, drain, failed_paid, support_user):
    [paid] = failed_paid()
    pause_shop(shop, by=support_user, reason="Shopify incident")
    replay = run(services.check_replay(selection=for_events([paid.pk])))

    drain()

    replay.refresh_from_db()
    assert replay.status == "queued" and replay.items_done == 0
    assert waiting_counts(replay)["paused_shop"] == 1
    assert not FulfillmentNotification.objects.exists()

    resume_shop(shop, by=support_user, reason="incident over")
    drain()

    replay.refresh_from_db()
    assert replay.status == "done" and replay.jobs_ran == 2
    assert FulfillmentNotification.objects.count() == 1
    call = OutboundCall.objects.get(lane="replay")
    assert call.status == OutboundCall.Status.QUEUED  # released with the shop: the senders take it


def test_a_big_replay_needs_a_second_admin_for_exactly_the_plan_shown(
    shop, drain, failed_paid, settings, admin_user, approver_user, support_user
):
    settings.REPLAY_APPROVAL_EVENTS = 2
    failed_paid(3)
    replay = services.check_replay(selection=for_filter(f"shop={shop.domain}&status=failed"), by=admin_user)
    assert replay.needs_approval and "3 events to replay (more than 2)" in replay.approval_reasons[0]
    replay = run(replay, by=admin_user)
    assert replay.status == "awaiting_approval"
    drain()
    assert not FulfillmentNotification.objects.exists()  # nothing runs unapproved

    with pytest.raises(services.ReplayError, match="another admin must approve"):
        services.approve_replay(replay, by=admin_user)
    with pytest.raises(services.ReplayError, match="Only an admin"):
        services.approve_replay(replay, by=support_user)

    # A fourth failed event now matches the filter: the selection changed, the approval is void.
    failed_paid(1, start=2001)
    with pytest.raises(services.PlanChanged, match="approval would not cover"):
        services.approve_replay(replay, by=approver_user)
    replay.refresh_from_db()
    assert replay.status == "planned" and replay.summary["events"] == 4 and replay.approved_by is None
    assert AuditEntry.objects.filter(verb="replay.voided", target_id=str(replay.pk)).exists()

    replay = run(replay, by=admin_user, reason="all four")
    services.approve_replay(replay, by=approver_user, plan_hash=replay.plan_hash)
    drain()
    replay.refresh_from_db()
    assert replay.status == "done" and replay.approved_by == approver_user and replay.items_done == 4
    assert FulfillmentNotification.objects.count() == 4


def test_approving_needs_the_hash_shown(shop, failed_paid, settings, admin_user, approver_user):
    settings.REPLAY_APPROVAL_EVENTS = 0
    [paid] = failed_paid()
    replay = run(services.check_replay(selection=for_events([paid.pk]), by=admin_user), by=admin_user)
    with pytest.raises(services.PlanChanged):
        services.approve_replay(replay, by=approver_user, plan_hash="f" * 64)
    assert ReplayRequest.objects.get(pk=replay.pk).status == "awaiting_approval"


def test_a_cancelled_replay_runs_nothing_more(shop, drain, failed_paid, support_user):
    events = failed_paid(3)
    replay = run(services.check_replay(selection=for_events([e.pk for e in events])))
    assert services.cancel_replay(replay, by=support_user, reason="wrong shop")
    drain()
    replay.refresh_from_db()
    assert replay.status == "cancelled" and replay.items_done == 3
    assert set(replay.items.values_list("status", flat=True)) == {"cancelled"}
    assert not FulfillmentNotification.objects.exists()
    with pytest.raises(services.ReplayError, match="already"):
        services.cancel_replay(replay, by=support_user, reason="again")


def test_an_event_another_pump_holds_is_waited_for_not_run_twice(shop, drain, failed_paid):
    [paid] = failed_paid()
    replay = run(services.check_replay(selection=for_events([paid.pk])))
    # Another pump, alive, holds the event right now.
    WorkerHeartbeat.objects.create(name="other:1:pump", beat_at=timezone.now())
    Event.objects.filter(pk=paid.pk).update(
        status=Event.Status.CLAIMED, claimed_by="other:1:pump", claimed_at=timezone.now()
    )
    Pump(tag="replayer").run_once()
    item = ReplayItem.objects.get(replay=replay)
    assert item.status == "pending" and "processed elsewhere" in item.waiting_for
    assert not FulfillmentNotification.objects.exists()
    Event.objects.filter(pk=paid.pk).update(status=Event.Status.FAILED, claimed_by="", claimed_at=None)
    ReplayItem.objects.filter(pk=item.pk).update(not_before=None)
    drain()
    assert ReplayItem.objects.get(pk=item.pk).status == "done"
    assert FulfillmentNotification.objects.count() == 1


def test_a_job_made_pointless_after_the_dry_run_is_skipped_at_run_time(shop, drain, failed_paid):
    [paid] = failed_paid()
    replay = run(services.check_replay(selection=for_events([paid.pk])))
    # Between the request and the run, someone else's replay (or a person) made it succeed.
    Job.objects.filter(event=paid, name__in=["notify_fulfillment", "tag_notified_order"]).update(
        status="succeeded", finished_at=timezone.now()
    )
    drain()
    replay.refresh_from_db()
    item = replay.items.get()
    assert item.status == "skipped" and "changed since the dry run" in item.result
    assert replay.status == "done" and replay.jobs_ran == 0 and replay.jobs_skipped == 2
    assert not FulfillmentNotification.objects.exists()
    assert not Attempt.objects.filter(trigger=Attempt.Trigger.REPLAY).exists()


def test_the_replay_lane_gives_way_while_live_events_wait_or_another_batch_runs(shop, failed_paid, settings):
    from datetime import timedelta

    from integrations.replay.runner import replay_pass

    events = failed_paid(2)
    replay = run(services.check_replay(selection=for_events([e.pk for e in events])))
    pump = Pump(tag="lane")
    # A live event has waited longer than REPLAY_YIELD_MS: the live pumps are behind, no replay.
    waiting = receive(shop, "orders/create", order(order_id=9000, financial_status="pending"))
    Event.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - timedelta(seconds=1))
    assert replay_pass(pump) == 0
    Event.objects.filter(pk=waiting.pk).update(status=Event.Status.IGNORED)
    # Live webhooks are arriving and another pump runs a replay batch: one batch at a time.
    ReplayItem.objects.filter(replay=replay, event=events[0]).update(
        status="claimed", claimed_by="other:1:pump", claimed_at=timezone.now()
    )
    assert replay_pass(pump) == 0
    # No live traffic for a while: every pump may replay.
    Event.objects.update(received_at=timezone.now() - timedelta(minutes=5))
    assert replay_pass(pump) == 1
    assert ReplayItem.objects.get(replay=replay, event=events[1]).status == "done"


def test_a_replay_only_pump_behind_live_work_replays_while_live_events_wait(shop, failed_paid):
    from datetime import timedelta

    from django.db import connection

    from integrations.replay.priority import BEHIND_LIVE
    from integrations.replay.runner import replay_pass

    events = failed_paid(2)
    replay = run(services.check_replay(selection=for_events([e.pk for e in events])))
    waiting = receive(shop, "orders/create", order(order_id=9000, financial_status="pending"))
    Event.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - timedelta(seconds=1))
    pump = Pump(tag="lane", live=False)
    # At normal priority a replay-only pump still gives way to the waiting live event...
    assert replay_pass(pump, 1, shared=False) == 0
    # ...but one the kernel runs behind live work (SCHED_IDLE, with its database process) does not.
    setattr(connection, BEHIND_LIVE, True)
    try:
        assert replay_pass(pump, 1, shared=False) == 1
    finally:
        delattr(connection, BEHIND_LIVE)
    assert ReplayItem.objects.filter(replay=replay, status="done").count() == 1
    assert Event.objects.get(pk=waiting.pk).status == Event.Status.QUEUED


def test_a_replay_only_pump_leaves_live_events_alone(shop, failed_paid):
    [paid] = failed_paid()
    replay = run(services.check_replay(selection=for_events([paid.pk])))
    live = receive(shop, "orders/create", order(order_id=9100, financial_status="pending"))
    Pump(tag="replay-only", live=False).run_once()
    replay.refresh_from_db()
    assert replay.status == "done"
    assert Event.objects.get(pk=live.pk).status == Event.Status.QUEUED
    Pump(tag="live-only", replay=False).run_once()
    assert Event.objects.get(pk=live.pk).status == Event.Status.PROCESSED
