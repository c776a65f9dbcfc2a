"""django-q2 with a real qcluster worker: results are stored and failures are kept, not dropped."""

import pytest
from django_q.models import Failure, Success
from django_q.tasks import async_task

from tests.processes import running, wait_for


@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_tasks_and_keeps_failures():
    ok_id = async_task("math.sqrt", 16, sync=False)
    failing_id = async_task("math.sqrt", -1, sync=False)  # ValueError: math domain error
    with running(["qcluster"]) as worker:
        wait_for(
            lambda: Success.objects.filter(id=ok_id).exists() and Failure.objects.filter(id=failing_id).exists(),
            timeout=60,
            message="the worker to finish both tasks",
        )
        assert worker.poll() is None
    assert Success.objects.get(id=ok_id).result == 4.0
    failure = Failure.objects.get(id=failing_id)
    assert "math domain error" in str(failure.result)
