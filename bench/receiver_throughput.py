"""Webhook receiver throughput and latency under gunicorn + PostgreSQL, against a bare view.

    .venv/bin/python bench/receiver_throughput.py [--duration 15] [--connections 16] [--workers 4]

Needs PostgreSQL (DATABASE_URL, default postgres://console:console@127.0.0.1:5432/console) and
`wrk` (apt-get install -y wrk). It creates and migrates a scratch database `<name>_bench`, starts
gunicorn with bench.settings (the console plus /bench/bare), loads the bare view and then the
receiver with wrk (pre-signed webhooks, a unique X-Shopify-Webhook-Id each), and counts only the
deliveries that are actually stored in the database. Prints throughput, p50/p99, and the ratio.
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, bench_env, scratch_database

PYTHON = sys.executable
DOMAIN = "bench-store.myshopify.com"
SECRET = "bench-webhook-secret-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--requests", type=int, default=60000, help="pre-signed unique webhooks to prepare")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    bench_url = scratch_database("bench")
    env = bench_env(bench_url)
    _run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env)
    _run(
        [PYTHON, "manage.py", "shops", "add", DOMAIN, "--webhook-secret", SECRET, "--api-url", "http://127.0.0.1:1/x"],
        env,
    )
    requests_file = _signed_requests(args.requests)
    port = _free_port()
    gunicorn = subprocess.Popen(
        [
            str(Path(PYTHON).parent / "gunicorn"),
            "console.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--worker-class",
            "sync",
            "--keep-alive",
            "5",
            "--log-level",
            "error",
        ],
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        _wait_until_up(port)
        base = f"http://127.0.0.1:{port}"
        common = ["-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s", "--latency"]
        _wrk([*common, "-d", "3s", f"{base}/bench/bare"])  # warm-up
        bare = _wrk([*common, f"{base}/bench/bare"])
        stored_before = _count_deliveries(bench_url)
        started = time.monotonic()
        receiver = _wrk(
            [
                *common,
                "-s",
                str(ROOT / "bench" / "wrk_webhooks.lua"),
                f"{base}/webhooks/shopify",
                "--",
                requests_file,
                DOMAIN,
                str(args.threads),
            ]
        )
        elapsed = time.monotonic() - started
        stored = _count_deliveries(bench_url) - stored_before
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=20)
        os.unlink(requests_file)

    stored_rate = stored / receiver["seconds"]
    print(
        f"machine: {os.cpu_count()} cores; gunicorn {args.workers} sync workers; wrk -t{args.threads} -c{args.connections} -d{args.duration}s"
    )
    print(f"bare view : {bare['rps']:8.1f} req/s   p50 {bare['p50']:6.2f} ms   p99 {bare['p99']:6.2f} ms")
    print(
        f"receiver  : {receiver['rps']:8.1f} req/s answered, {stored_rate:8.1f}/s durably stored "
        f"({stored} rows, {receiver['requests']} responses, {receiver['non2xx']} non-2xx)   "
        f"p50 {receiver['p50']:6.2f} ms   p99 {receiver['p99']:6.2f} ms"
    )
    print(f"ratio stored receiver / bare view: {stored_rate / bare['rps']:.1%}  (target >= 35%, p99 < 50 ms)")
    print(f"wall time of the receiver run: {elapsed:.1f}s")


def _count_deliveries(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM integrations_delivery WHERE response_status = 200").fetchone()[0]


def _signed_requests(count: int) -> str:
    template = {
        "admin_graphql_api_id": "gid://shopify/Order/0",
        "name": "#1042",
        "order_number": 1042,
        "email": "ana@example.com",
        "created_at": "2026-05-04T10:15:02-04:00",
        "updated_at": "2026-05-04T10:15:04-04:00",
        "financial_status": "pending",
        "total_price": "48.20",
        "currency": "USD",
        "line_items": [
            {"id": 14001234567, "variant_id": 4401234567, "sku": "MUG-BLUE", "quantity": 2, "price": "20.00"}
        ],
    }
    handle, path = tempfile.mkstemp(prefix="webhooks-", suffix=".tsv")
    with os.fdopen(handle, "w") as out:
        for number in range(count):
            body = json.dumps({**template, "id": 5500000000000 + number}, separators=(",", ":")).encode()
            signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
            out.write(f"{uuid.uuid4()}\t{signature}\t{body.decode()}\n")
    return path


def _wrk(args: list[str]) -> dict:
    output = subprocess.run(["wrk", *args], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests_line = re.search(r"(\d+) requests in ([\d.]+)(\w+)", output)
    seconds = float(requests_line.group(2)) * {"s": 1, "m": 60, "ms": 0.001}[requests_line.group(3)]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": rps,
        "requests": int(requests_line.group(1)),
        "seconds": seconds,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "p50": _latency(output, "50%"),
        "p99": _latency(output, "99%"),
    }


def _latency(output: str, percentile: str) -> float:
    value, unit = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)", output).groups()
    return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]


def _run(command: list[str], env: dict) -> None:
    subprocess.run(command, env=env, cwd=ROOT, check=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit("gunicorn did not start")


if __name__ == "__main__":
    main()
