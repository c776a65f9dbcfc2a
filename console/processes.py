"""Stopping the console's own child processes (web server, qcluster, simulator). Plain Python, no
Django, so devstack, the tests and the benchmark scripts share it before Django is set up."""

import contextlib
import os
import signal
import subprocess
import time


def stop_processes(processes, timeout: float = 15) -> None:
    """SIGTERM each main process (not its group: qcluster stops its own children in order and
    hangs if they are signalled behind its back), then SIGKILL the group of any that linger."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
