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


def time_pages(pages: dict, repeat: int) -> dict:
    """p50 and p95 (ms) of each page: `pages` maps a name to (client, path); three warm-up requests
    first; every answer must be 200."""
    import statistics

    timings = {}
    for name, (client, path) in pages.items():
        samples = []
        for _ in range(repeat + 3):
            start = time.perf_counter()
            response = client.get(path)
            samples.append((time.perf_counter() - start) * 1000)
            assert response.status_code == 200, (path, response.status_code)
        samples = sorted(samples[3:])  # the first three warm caches
        timings[name] = {"p50": statistics.median(samples), "p95": samples[max(0, int(len(samples) * 0.95) - 1)]}
    return timings


def print_page_table(small: dict, large: dict, width: int = 34) -> None:
    """The timings at two sizes side by side, with the large/small p95 ratio."""
    print(
        f"\n{'page':<{width}}{'p50 @small':>12}{'p95 @small':>12}{'p50 @large':>12}{'p95 @large':>12}{'p95 ratio':>11}"
    )
    for page in small:
        s, b = small[page], large[page]
        print(
            f"{page:<{width}}{s['p50']:>10.1f}ms{s['p95']:>10.1f}ms{b['p50']:>10.1f}ms{b['p95']:>10.1f}ms"
            f"{b['p95'] / s['p95']:>10.2f}x"
        )
