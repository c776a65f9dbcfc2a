"""`manage.py replay_lane`: a real replay-only worker process at a lower CPU priority."""

import pytest

from integrations.models import FulfillmentNotification, ReplayRequest
from integrations.replay import services
from integrations.replay.selection import for_events
from tests.processes import child_env, running, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_replay_lane_process_runs_replays_at_a_lower_cpu_priority(shop, failed_paid):
    [paid] = failed_paid()
    replay = services.check_replay(selection=for_events([paid.pk]))
    services.do_replay(replay, by=None, reason="warehouse back", plan_hash=replay.plan_hash)
    with running(["replay_lane", "--nice", "10"], env=child_env(REPLAY_LANE="process")) as process:
        wait_for(
            lambda: ReplayRequest.objects.get(pk=replay.pk).status == ReplayRequest.Status.DONE,
            timeout=60,
            message="the replay lane process to finish the replay",
        )
        with open(f"/proc/{process.pid}/stat") as stat:
            assert int(stat.read().rsplit(")", 1)[1].split()[16]) == 10  # its niceness
    assert FulfillmentNotification.objects.count() == 1
