"""Webhook receiver throughput and latency under gunicorn + PostgreSQL, against a bare view.

    .venv/bin/python bench/receiver_throughput.py [--duration 10] [--rounds 5] [--connections 16] [--workers 4]

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
import statistics
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
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--requests", type=int, default=25000, help="pre-signed unique webhooks per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating bare/receiver rounds")
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
    requests_files = [_signed_requests(args.requests, offset=round_ * args.requests) for round_ in range(args.rounds)]
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
    rounds = []
    try:
        _wait_until_up(port)
        base = f"http://127.0.0.1:{port}"
        common = ["-t", str(args.threads), "-c", str(args.connections), "-d", f"{args.duration}s", "--latency"]
        _wrk([*common[:4], "-d", "3s", "--latency", f"{base}/bench/bare"])  # warm-up
        # Bare and receiver alternate, round by round, so a slow patch of this shared VM hits
        # both sides of a ratio rather than only one of them.
        for requests_file in requests_files:
            bare = _wrk([*common, f"{base}/bench/bare"])
            stored_before = _count_deliveries(bench_url)
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
            receiver["stored_rate"] = (_count_deliveries(bench_url) - stored_before) / receiver["seconds"]
            rounds.append((bare, receiver))
    finally:
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=20)
        for requests_file in requests_files:
            os.unlink(requests_file)

    print(
        f"machine: {os.cpu_count()} cores; gunicorn {args.workers} sync workers; "
        f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s; {args.rounds} alternating rounds"
    )
    ratios = []
    for number, (bare, receiver) in enumerate(rounds, 1):
        ratio = receiver["stored_rate"] / bare["rps"]
        ratios.append(ratio)
        print(
            f"round {number}: bare {bare['rps']:7.1f} req/s (p50 {bare['p50']:5.2f} / p99 {bare['p99']:5.2f} ms) | "
            f"receiver {receiver['rps']:6.1f} answered, {receiver['stored_rate']:6.1f}/s stored, "
            f"{receiver['non2xx']} non-2xx (p50 {receiver['p50']:5.2f} / p99 {receiver['p99']:5.2f} ms) | ratio {ratio:.1%}"
        )
    worst_p99 = max(receiver["p99"] for _, receiver in rounds)
    print(
        f"median ratio stored receiver / bare view: {statistics.median(ratios):.1%}; "
        f"worst receiver p99 {worst_p99:.2f} ms  (targets: >= 35%, p99 < 50 ms)"
    )


def _count_deliveries(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM integrations_delivery WHERE response_status = 200").fetchone()[0]


def _signed_requests(count: int, offset: int = 0) -> str:
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
        for number in range(offset, offset + count):
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
