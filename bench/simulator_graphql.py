"""Benchmark: GraphQL reads per second against the store simulator, throttling disabled.

Starts the real `manage.py shopify_simulator` process (its own interpreter, as in production use)
with a seeded shop, then fires GraphQL reads over keep-alive HTTP from client threads for a
fixed time: a `products(first: 10)` page with variants, and a `node` lookup. Prints requests/s,
p50/p99 latency, and the ratio to the 500 req/s target.

    .venv/bin/python bench/simulator_graphql.py [--seconds 10] [--threads 4] [--records 2000]
"""

import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

BASE_DIR = Path(__file__).resolve().parent.parent
TARGET = 500.0
DOMAIN = "bench-store.myshopify.com"
TOKEN = "shpat_bench"
PRODUCTS = """query Products($after: String) {
  products(first: 10, after: $after) {
    edges { cursor node { id title handle status updatedAt variants(first: 3) { nodes { id sku price inventoryQuantity } } } }
    pageInfo { hasNextPage endCursor }
  }
}"""
NODE = "query Node($id: ID!) { node(id: $id) { id ... on Product { title vendor updatedAt } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_simulator(port: int, records: int) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": os.environ.get("DEBUG", "true")}
    command = [
        sys.executable,
        str(BASE_DIR / "manage.py"),
        "shopify_simulator",
        "--port",
        str(port),
        "--shop",
        DOMAIN,
        "--token",
        TOKEN,
        "--webhook-secret",
        "bench-secret",
        "--records",
        str(records),
        "--seed",
        "1",
        "--no-throttling",
    ]
    return subprocess.Popen(
        command, env=env, cwd=BASE_DIR, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )


def process_cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process (Linux /proc), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"simulator exited: {process.stdout.read().decode()}")
        try:
            if requests.get(f"{url}/_simulator/health", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit("simulator did not start")


class RequestsClient:
    """requests.Session: what a typical Python client (and the console) pays per call."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.session = requests.Session()

    def post(self, body: dict) -> tuple[int, dict]:
        response = self.session.post(self.endpoint, json=body, headers={"X-Shopify-Access-Token": TOKEN}, timeout=10)
        return response.status_code, response.json()


class RawClient:
    """http.client on one kept-alive connection: the cheapest client, so the server is measured."""

    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        self.path = parts.path
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        self.headers = {"X-Shopify-Access-Token": TOKEN, "Content-Type": "application/json"}

    def post(self, body: dict) -> tuple[int, dict]:
        self.connection.request("POST", self.path, body=json.dumps(body), headers=self.headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read())


CLIENTS = {"http.client": RawClient, "requests": RequestsClient}


def client(
    kind: str,
    endpoint: str,
    product_ids: list[str],
    stop_at: float,
    latencies: list[float],
    errors: list[str],
    seed: int,
) -> None:
    rng = random.Random(seed)
    http_client = CLIENTS[kind](endpoint)
    cursor = None
    n = 0
    while time.perf_counter() < stop_at:
        if n % 2 == 0:
            body = {"query": PRODUCTS, "variables": {"after": cursor}}
        else:
            body = {"query": NODE, "variables": {"id": rng.choice(product_ids)}}
        started = time.perf_counter()
        status, data = http_client.post(body)
        latencies.append(time.perf_counter() - started)
        if status != 200 or "errors" in data:
            errors.append(f"{status} {str(data)[:200]}")
        elif n % 2 == 0:
            page = data["data"]["products"]["pageInfo"]
            cursor = page["endCursor"] if page["hasNextPage"] else None
        n += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--client", choices=sorted(CLIENTS), default="http.client", help="HTTP client library for the load."
    )
    args = parser.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_simulator(port, args.records)
    try:
        wait_until_up(url, process)
        endpoint = f"{url}/{DOMAIN}/admin/api/2026-10/graphql.json"
        products = requests.get(
            f"{url}/_simulator/shops/{DOMAIN}/records/products", params={"limit": 1000}, timeout=10
        ).json()["items"]
        product_ids = [p["admin_graphql_api_id"] for p in products]
        # Warm up (document cache, connections), then measure.
        client(args.client, endpoint, product_ids, time.perf_counter() + args.warmup, [], [], 0)
        latencies: list[float] = []
        errors: list[str] = []
        cpu_before = process_cpu_seconds(process.pid)
        started = time.perf_counter()
        stop_at = started + args.seconds
        threads = [
            threading.Thread(target=client, args=(args.client, endpoint, product_ids, stop_at, latencies, errors, i))
            for i in range(args.threads)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        cpu_after = process_cpu_seconds(process.pid)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)

    rate = len(latencies) / elapsed
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(
        f"requests: {len(latencies)} in {elapsed:.1f}s from {args.threads} {args.client} client threads (keep-alive), "
        f"errors: {len(errors)}"
    )
    print(f"throughput: {rate:.0f} GraphQL reads/s")
    print(f"latency: p50 {quantiles[49] * 1000:.2f} ms, p99 {quantiles[98] * 1000:.2f} ms")
    if cpu_before is not None and cpu_after is not None:
        per_request = (cpu_after - cpu_before) / len(latencies)
        print(
            f"simulator CPU: {per_request * 1000:.2f} ms per request, {(cpu_after - cpu_before) / elapsed:.0%} of one core "
            f"(about {1 / per_request:.0f} req/s if it had a core to itself)"
        )
    print(f"target {TARGET:.0f} req/s: ratio {rate / TARGET:.2f}x")
    if errors:
        print("first error:", errors[0])
        raise SystemExit(1)


if __name__ == "__main__":
    main()
