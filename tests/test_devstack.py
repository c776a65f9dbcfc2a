"""`manage.py devstack` (what `make run` ends with) serves the console with a worker beside it,
and Ctrl-C stops every process it started."""

import signal
import subprocess
import time

import pytest
import requests
from django.contrib.auth.hashers import make_password

from console import roles
from tests.factories import TEST_PASSWORD, UserFactory
from tests.processes import child_env, free_port, running, wait_for


def _children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _alive(pid: int) -> bool:
    return bool(subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip())


@pytest.mark.django_db(transaction=True)
def test_devstack_serves_login_and_dashboard_then_stops_on_ctrl_c():
    user = UserFactory(username="night-shift", role=roles.SUPPORT)
    # The child runs production hashers, which don't include the tests' fast MD5 one.
    user.password = make_password(TEST_PASSWORD, hasher="pbkdf2_sha256")
    user.save()
    port = free_port()
    started = time.monotonic()
    with running(["devstack", "--port", str(port), "--no-simulator"], env=child_env(DEBUG="true")) as stack:
        base = f"http://127.0.0.1:{port}"

        def login_page():
            try:
                return requests.get(f"{base}/login/", timeout=2).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(login_page, timeout=60, message="the login page")
        assert time.monotonic() - started < 60
        session = requests.Session()
        session.get(f"{base}/login/", timeout=5)
        response = session.post(
            f"{base}/login/",
            data={
                "username": "night-shift",
                "password": TEST_PASSWORD,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/login/"},
            timeout=5,
        )
        assert response.status_code == 200 and "<h1>Dashboard</h1>" in response.text
        children = wait_for(
            lambda: len(_children_of(stack.pid)) >= 2 and _children_of(stack.pid), message="web and worker"
        )
        stack.send_signal(signal.SIGINT)
        assert stack.wait(timeout=20) == 0
        output = stack.stdout.read()
    assert "Console running at" in output and "All console processes stopped." in output
    assert not any(_alive(pid) for pid in children)
