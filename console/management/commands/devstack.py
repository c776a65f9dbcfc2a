"""Run the whole console locally: web server, django-q2 worker, and (when present) the store
simulator. Ctrl-C stops every process; if one dies, the others are stopped too."""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connection

from console.management.commands.seed_demo import DEMO_USERS
from console.processes import stop_processes


class Command(BaseCommand):
    help = "Start the web server, the worker and the store simulator together (local use)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--simulator-port", type=int, default=8001)
        parser.add_argument("--no-simulator", action="store_true")
        parser.add_argument("--password-hint", default="", help="Password to print beside the demo logins.")

    def handle(self, *args, host, port, simulator_port, no_simulator, password_hint, **options):
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = {
            "web": [*manage, "runserver", f"{host}:{port}", "--noreload"],
            "worker": [*manage, "qcluster"],
        }
        if not no_simulator and _simulator_available():
            commands["simulator"] = [
                *manage,
                "shopify_simulator",
                "--host",
                host,
                "--port",
                str(simulator_port),
                "--demo",
                "--webhook-url",
                f"http://{host}:{port}/webhooks/shopify",
            ]
        processes: dict[str, subprocess.Popen] = {}
        stopping = False

        def stop(*_):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        env = os.environ.copy()
        if connection.vendor == "sqlite":
            # SQLite serialises writes: one worker process (so one event pump) is enough.
            env.setdefault("Q_WORKERS", "1")
        # Metrics: every process counts into one directory and /metrics adds them up; open to this
        # machine unless the .env says otherwise.
        env["PROMETHEUS_MULTIPROC_DIR"] = fresh_metrics_dir(env.get("PROMETHEUS_MULTIPROC_DIR"))
        if settings.DEBUG and not env.get("METRICS_TOKEN") and not env.get("METRICS_ALLOWED_IPS"):
            env["METRICS_ALLOWED_IPS"] = "127.0.0.1,::1"
        for name, command in commands.items():
            # Own process group: Ctrl-C reaches us once and we stop the children in order.
            processes[name] = subprocess.Popen(command, env=env, start_new_session=True)
        self._banner(host, port, list(commands), password_hint)
        exit_code = 0
        try:
            while not stopping:
                for name, process in processes.items():
                    if process.poll() is not None:
                        self.stderr.write(f"{name} exited with code {process.returncode}; stopping the rest.")
                        exit_code = process.returncode or 1
                        stopping = True
                        break
                time.sleep(0.3)
        finally:
            stop_processes(processes.values())
            self.stdout.write("All console processes stopped.")
        if exit_code:
            sys.exit(exit_code)

    def _banner(self, host, port, names, password_hint):
        self.stdout.write(self.style.SUCCESS(f"\nConsole running at http://{host}:{port}/  ({', '.join(names)})"))
        logins = ", ".join(f"{username} ({role})" for username, role, _ in DEMO_USERS)
        self.stdout.write(f"Demo logins: {logins}")
        if password_hint:
            self.stdout.write(f"Password: {password_hint}")
        self.stdout.write("Press Ctrl-C to stop everything.\n")
        self.stdout.flush()


def fresh_metrics_dir(path: str | None = None) -> str:
    """PROMETHEUS_MULTIPROC_DIR for the processes about to start (var/prometheus unless given),
    created, and emptied of earlier runs' counts as prometheus_client requires."""
    directory = Path(path or settings.BASE_DIR / "var" / "prometheus")
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink(missing_ok=True)
    return str(directory)


def _simulator_available() -> bool:
    return importlib.util.find_spec("integrations.management.commands.shopify_simulator") is not None
