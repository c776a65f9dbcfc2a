"""`manage.py replay_lane`: a real replay-only worker process at a lower CPU priority."""

import os
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from integrations.models import Event, FulfillmentNotification, ReplayRequest
from integrations.replay import services
from integrations.replay.priority import scheduling
from integrations.replay.selection import for_events
from tests.processes import child_env, running, wait_for
from tests.webhooks import order, receive

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_replay_lane_process_runs_replays_at_a_lower_cpu_priority(shop, failed_paid):
    [paid] = failed_paid()
    replay = services.check_replay(selection=for_events([paid.pk]))
    services.do_replay(replay, by=None, reason="warehouse back", plan_hash=replay.plan_hash)
    if connection.vendor != "postgresql" or os.geteuid() == 0:
        # It and its database process run at SCHED_IDLE, so a waiting live event (no live pump
        # runs here) does not hold it back: the kernel would run live work first.
        waiting = receive(shop, "orders/create", order(order_id=9000, financial_status="pending"))
        Event.objects.filter(pk=waiting.pk).update(received_at=timezone.now() - timedelta(seconds=5))
    with running(["replay_lane", "--nice", "10"], env=child_env(REPLAY_LANE="process")) as process:
        wait_for(
            lambda: ReplayRequest.objects.get(pk=replay.pk).status == ReplayRequest.Status.DONE,
            timeout=60,
            message="the replay lane process to finish the replay",
        )
        assert scheduling(process.pid) == (10, True)  # niceness 10, SCHED_IDLE
        if os.path.exists(f"/proc/{process.pid}/autogroup"):  # and its session's scheduling group
            with open(f"/proc/{process.pid}/autogroup") as group:
                assert group.read().split()[-1] == "10"
    assert FulfillmentNotification.objects.count() == 1


def test_its_database_server_process_runs_at_the_same_lower_priority(shop):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL server processes only")
    if os.geteuid() != 0:
        pytest.skip("only root (or the postgres user) may renice the database server's processes")
    others = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
    with connection.cursor() as cursor:
        cursor.execute(others)
        before = {pid for (pid,) in cursor.fetchall()}
    with running(["replay_lane", "--nice", "10"], env=child_env(REPLAY_LANE="process")):

        def lane_backends():
            with connection.cursor() as cursor:
                cursor.execute(others)
                return {pid for (pid,) in cursor.fetchall()} - before

        wait_for(lambda: lane_backends(), timeout=30, message="the replay lane to connect")
        wait_for(lambda: all(scheduling(pid) == (10, True) for pid in lane_backends()), timeout=10,
                 message="the replay lane's database process to run at its priority")  # fmt: skip
