"""A replay-only worker process: runs replay items (never live events) at a lower CPU priority.

    manage.py replay_lane [--pumps N] [--nice 19] [--no-idle]

With REPLAY_LANE=process the workers' event pumps leave replays to these processes; the operating
system then schedules them behind the live pumps, the receiver and everything else at normal
priority (SCHED_IDLE and nice 19 by default, its session's scheduling group and, when PostgreSQL
runs on this machine, its database server processes too: integrations.replay.priority), so a bulk
replay uses what live traffic leaves of the CPU. Stop it with SIGTERM/SIGINT: the pumps finish
their batch and give back what they hold.
"""

import logging
import os
import signal
import threading

from django.core.management.base import BaseCommand
from django.db import connection
from django.db.backends.signals import connection_created

from integrations.processing.pump import Pump
from integrations.replay.priority import Priority

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run replay items only, at a lower CPU priority (for REPLAY_LANE=process)."

    def add_arguments(self, parser):
        parser.add_argument("--pumps", type=int, default=1, help="Replay pump threads in this process (default 1).")
        parser.add_argument("--nice", type=int, default=19, help="CPU niceness to run at, 0 to 19 (default 19).")
        parser.add_argument(
            "--no-idle", dest="idle", action="store_false",
            help="Do not use Linux's SCHED_IDLE policy (run only on otherwise idle cores); niceness only.",
        )  # fmt: skip

    def handle(self, *args, pumps: int, nice: int, idle: bool, **options):
        self.priority = Priority(nice=max(0, min(nice, 19)), idle=idle)
        if self.priority.nice or self.priority.idle:
            self.priority.lower()
            connection_created.connect(self._lower_backend, weak=False)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        threads = [
            threading.Thread(target=self._run, args=(f"replay{n}", stop), name=f"replay-{n}", daemon=True)
            for n in range(1, max(1, pumps) + 1)
        ]
        for thread in threads:
            thread.start()
        policy = ", SCHED_IDLE" if self.priority.idle else ""
        self.stdout.write(f"replay lane: {len(threads)} pump(s) at nice {os.nice(0)}{policy}; stop with Ctrl-C")
        stop.wait()
        for thread in threads:
            thread.join(30)

    def _lower_backend(self, sender, connection, **kwargs) -> None:
        why_not = self.priority.lower_database_backend(connection)
        if why_not:
            log.warning("replay lane: %s; its queries run at normal priority", why_not)

    def _run(self, tag: str, stop: threading.Event) -> None:
        try:
            Pump(tag=tag, live=False).run_forever(stop)
        finally:
            connection.close()
