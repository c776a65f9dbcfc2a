"""Shared by the benchmark scripts: a scratch PostgreSQL database, the environment for it, and the
simulator process's control API."""

import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://console:console@127.0.0.1:5432/console"


def scratch_database(suffix: str) -> str:
    """Drop and create `<DATABASE_URL's name>_<suffix>`; return its URL."""
    parts = urlsplit(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    name = f"{parts.path.lstrip('/')}_{suffix}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def bench_env(database_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": database_url,
        "DEBUG": "False",
        "SECRET_KEY": "bench-" + "k" * 50,
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "SECURE_SSL_REDIRECT": "False",
        "LOG_LEVEL": "ERROR",
        "PYTHONPATH": str(ROOT),
    }


class SimulatorControl:
    """A `manage.py shopify_simulator` process started by a benchmark: wait for it, then call its
    control API (`control_timeout` per call)."""

    control_timeout = 30

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.http = requests.Session()

    def wait_ready(self, process: subprocess.Popen, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit("the simulator exited at start")
            try:
                if self.http.get(f"{self.url}/_simulator/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise SystemExit("the simulator did not start")

    def control(self, method: str, path: str, **kwargs):
        response = self.http.request(method, f"{self.url}/_simulator{path}", timeout=self.control_timeout, **kwargs)
        response.raise_for_status()
        return response.json()
