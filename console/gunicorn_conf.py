"""gunicorn settings for the console's web processes:

    gunicorn -c python:console.gunicorn_conf console.wsgi --workers 5 --bind 0.0.0.0:8000

Options on the command line still apply; this file only adds what a command line cannot.
"""

import os


def child_exit(server, worker) -> None:
    """prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR): a worker that exited
    counts no longer in the live gauges. Its counters stay, as they must (counts never go back)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
