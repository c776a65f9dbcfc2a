"""Outbound calls against the simulator's GraphQL cost bucket: sustained rate and throttled share
of the console's senders next to a naive client, and live-call waits with lanes next to a single
FIFO queue, all in one run.

    .venv/bin/python bench/outbound_throughput.py [--calls 200] [--workers 2] [--bucket 200]
        [--restore 50] [--bulk 100] [--live 20] [--live-every 0.5] [--naive-sleep 1.0]
        [--database-url postgres://...] [--quick]

Sets Django up itself on a throwaway SQLite database in a temporary directory (or, with
--database-url, on a scratch PostgreSQL database `<name>_outbound` next to the one given), starts
the real simulator process (`manage.py shopify_simulator`) on a free port and one real
`manage.py qcluster` with --workers worker processes: each runs one outbound sender thread, as in
production. Every phase gets its own simulated shop (a fresh bucket of --bucket points restoring
--restore per second; every mutation costs 10 points) and its own console Shop pointed at it.

1. naive: --workers threads in this process fire `tagsAdd` mutations (the console's own document)
   with requests as fast as they can; on a THROTTLED answer or a 429 a thread sleeps
   --naive-sleep seconds and tries again.
2. console: --calls `order.add_tags` calls on distinct orders (so per-record ordering does not
   serialize them) are enqueued and the qcluster's senders send them.
3. lanes: --bulk reconcile-lane calls saturate the bucket; once their burst is spent, --live
   live-lane calls are enqueued one every --live-every seconds. Each live call's wait is the time
   from its enqueue (created_at) to the start of its first try (OutboundAttempt.started_at).
4. FIFO: the same, but every call in one lane (live), so the queue is strictly first in, first
   out, with no reserve.

Rates: the bucket starts full, so its first bucket/cost calls can go at once; after that nothing
can go faster than restore/cost calls/s (the theoretical rate). Sustained rate = (calls -
bucket/cost) / (start of the last call - start of the first): the calls beyond the initial burst
per second, which cannot exceed the theoretical rate. The whole-run figure is calls x cost /
(bucket + restore x (last start - first start)): the share of every point the bucket could give
between the first and the last call. Throttled share = throttled answers / all requests. Every
call is checked on the simulator (its order carries its tag) and in the console (succeeded, with
exactly one try that was not throttled: a throttled try is refused before anything runs).
"""

import argparse
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import SimulatorControl  # noqa: E402
from console.processes import stop_processes  # noqa: E402

PYTHON = sys.executable
TOKEN = "shpat_outbound_bench"
SECRET = "outbound-bench-webhook-secret"
COST = 10  # every mutation, requested and actual, in the simulator
API_VERSION = "2026-10"
TARGET_SHARE = 0.90
TARGET_THROTTLED = 0.01


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(message, flush=True)


# --- setup --------------------------------------------------------------------------------------


def configure(database_url: str | None, workdir: Path) -> str:
    """Environment for this process and its children, Django set up and migrated; returns the URL."""
    if database_url:
        os.environ["DATABASE_URL"] = database_url
        from bench.common import scratch_database

        url = scratch_database("outbound")
    else:
        url = f"sqlite:///{workdir / 'outbound.sqlite3'}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        DATABASE_URL=url,
        DEBUG="false",
        SECRET_KEY="bench-outbound-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return url


def start(command: list[str], logfile: Path, **env: str) -> subprocess.Popen:
    out = logfile.open("w")
    return subprocess.Popen(
        [PYTHON, str(ROOT / "manage.py"), *command],
        env={**os.environ, **env},
        cwd=ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


class Simulator(SimulatorControl):
    def create_shop(self, domain: str, *, records: int, bucket: float, restore: float) -> list[str]:
        """A fresh simulated shop; returns its order gids."""
        self.control(
            "POST",
            "/shops",
            json={
                "domain": domain,
                "token": TOKEN,
                "webhook_secret": SECRET,
                "records": records,
                "seed": 11,
                "graphql_maximum": bucket,
                "graphql_restore_rate": restore,
            },
        )
        return [order["admin_graphql_api_id"] for order in self.orders(domain)]

    def orders(self, domain: str) -> list[dict]:
        items, offset = [], 0
        while True:
            page = self.control("GET", f"/shops/{domain}/records/orders", params={"limit": 1000, "offset": offset})
            items += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items

    def missing_tags(self, domain: str, expected: dict[str, str]) -> int:
        """How many orders (gid -> tag) do not carry their tag."""
        tags = {order["admin_graphql_api_id"]: order.get("tags") or "" for order in self.orders(domain)}
        return sum(1 for gid, tag in expected.items() if tag not in [t.strip() for t in tags.get(gid, "").split(",")])


def console_shop(domain: str, simulator: Simulator):
    from integrations.models import Shop

    return Shop.objects.create(
        domain=domain, api_url=f"{simulator.url}/{domain}", access_token=TOKEN, webhook_secret=SECRET
    )


# --- figures ------------------------------------------------------------------------------------


@dataclass
class Throughput:
    name: str
    calls: int
    starts: list[float]  # when each call's applied try started (epoch seconds), sorted
    requests: int
    throttled: int
    missing: int  # calls whose effect is not on the simulator
    not_once: int  # calls not applied exactly once (console: tries that were not throttled != 1)

    def sustained(self, burst: int) -> float | None:
        """Calls beyond the bucket's initial burst per second, first start to last."""
        if len(self.starts) <= burst + 1:
            return None
        return (len(self.starts) - burst) / (self.starts[-1] - self.starts[0])

    def whole_run(self, bucket: float, restore: float) -> float | None:
        if len(self.starts) < 2:
            return None
        span = self.starts[-1] - self.starts[0]
        return len(self.starts) * COST / (bucket + restore * span)

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0

    def verdict(self) -> str:
        if not self.missing and not self.not_once and len(self.starts) == self.calls:
            return "yes"
        return f"NO: {self.calls - len(self.starts)} not applied, {self.missing} missing, {self.not_once} not once"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[rank]


# --- phase 1: the naive client ------------------------------------------------------------------


def run_naive(simulator: Simulator, domain: str, orders: list[str], workers: int, sleep: float) -> Throughput:
    from integrations.outbound.operations import get_operation

    document = get_operation("order.add_tags").document
    url = f"{simulator.url}/{domain}/admin/api/{API_VERSION}/graphql.json"
    work = list(enumerate(orders))
    lock = threading.Lock()
    starts: list[float] = []
    counts = {"requests": 0, "throttled": 0, "errors": 0}
    expected = {gid: f"bench-naive-{n}" for n, gid in work}

    def worker() -> None:
        session = requests.Session()
        headers = {"X-Shopify-Access-Token": TOKEN, "Content-Type": "application/json"}
        while True:
            with lock:
                if not work:
                    return
                n, gid = work.pop(0)
            body = {"query": document, "variables": {"id": gid, "tags": [f"bench-naive-{n}"]}}
            while True:
                started = time.time()
                response = session.post(url, json=body, headers=headers, timeout=10)
                codes = [
                    (error.get("extensions") or {}).get("code")
                    for error in (response.json().get("errors") or [])
                    if isinstance(error, dict)
                ]
                with lock:
                    counts["requests"] += 1
                if response.status_code == 429 or "THROTTLED" in codes:
                    with lock:
                        counts["throttled"] += 1
                    time.sleep(sleep)
                    continue
                with lock:
                    if response.status_code == 200 and not codes:
                        starts.append(started)
                    else:
                        counts["errors"] += 1
                break

    threads = [threading.Thread(target=worker, name=f"naive-{k}") for k in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = Throughput(
        name=f"naive client ({workers} threads, {sleep:g} s sleep on 429)",
        calls=len(orders),
        starts=sorted(starts),
        requests=counts["requests"],
        throttled=counts["throttled"],
        missing=simulator.missing_tags(domain, expected),
        not_once=counts["errors"],
    )
    return result


# --- phase 2: the console -----------------------------------------------------------------------


def enqueue_tags(shop, orders: list[str], phase: str, lane: str) -> dict[str, str]:
    from integrations.outbound.queue import enqueue

    expected = {}
    for n, gid in enumerate(orders):
        tag = f"bench-{phase}-{n}"
        enqueue(
            shop, "order.add_tags", {"id": gid, "tags": [tag]}, origin="job", origin_ref=f"bench-{phase}", lane=lane
        )
        expected[gid] = tag
    return expected


def wait_finished(shop, timeout: float, cluster: subprocess.Popen) -> None:
    from integrations.models import OutboundCall

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cluster.poll() is not None:
            raise SystemExit("qcluster exited")
        if not OutboundCall.objects.filter(shop=shop, status__in=OutboundCall.ACTIVE).exists():
            return
        time.sleep(0.25)
    raise SystemExit(f"calls of {shop.domain} not finished after {timeout:.0f} s")


def console_figures(name: str, shop, simulator: Simulator, expected: dict[str, str]) -> Throughput:
    from integrations.models import OutboundAttempt, OutboundCall

    attempts = list(
        OutboundAttempt.objects.filter(call__shop=shop).values_list("call_id", "started_at", "throttled", "outcome")
    )
    applied: dict[int, int] = {}
    starts = []
    for call_id, started, throttled, outcome in attempts:
        if not throttled:
            applied[call_id] = applied.get(call_id, 0) + 1
        if outcome == OutboundAttempt.Outcome.SUCCEEDED:
            starts.append(started.timestamp())
    calls = list(OutboundCall.objects.filter(shop=shop).values_list("id", "status"))
    not_once = sum(1 for call_id, status in calls if status != "succeeded" or applied.get(call_id) != 1)
    return Throughput(
        name=name,
        calls=len(calls),
        starts=sorted(starts),
        requests=len(attempts),
        throttled=sum(1 for a in attempts if a[2]),
        missing=simulator.missing_tags(shop.domain, expected),
        not_once=not_once,
    )


# --- phases 3 and 4: live calls while a bulk lane saturates the bucket -------------------------


@dataclass
class LiveWaits:
    name: str
    waits: list[float]
    backlog_at_last_live: int  # bulk calls not yet sent when the last live call was enqueued
    window_rate: float  # calls/s (bulk and live) started while live calls were being enqueued
    everything: Throughput
    durations_ms: list[int]

    def p(self, fraction: float) -> float:
        return percentile(self.waits, fraction)


def run_lanes(
    name: str,
    shop,
    simulator: Simulator,
    orders: list[str],
    *,
    bulk: int,
    live: int,
    every: float,
    fifo: bool,
    cluster: subprocess.Popen,
    burst_calls: int,
    timeout: float,
) -> LiveWaits:
    from integrations.models import OutboundAttempt, OutboundCall
    from integrations.outbound.queue import enqueue

    bulk_lane = OutboundCall.Lane.LIVE if fifo else OutboundCall.Lane.RECONCILE
    phase = "fifo" if fifo else "lanes"
    expected = enqueue_tags(shop, orders[:bulk], f"{phase}-bulk", bulk_lane)
    # Start the live calls once the bulk lane has spent the bucket's burst and is paced by it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = OutboundCall.objects.filter(shop=shop, status=OutboundCall.Status.SUCCEEDED).count()
        if done >= burst_calls + 5:
            break
        time.sleep(0.1)
    live_ids = []
    next_at = time.monotonic()
    window_from = time.time()
    for n, gid in enumerate(orders[bulk : bulk + live]):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += every
        tag = f"bench-{phase}-live-{n}"
        call, _ = enqueue(
            shop,
            "order.add_tags",
            {"id": gid, "tags": [tag]},
            origin="job",
            origin_ref=f"bench-{phase}-live",
            lane=OutboundCall.Lane.LIVE,
        )
        live_ids.append(call.pk)
        expected[gid] = tag
    window_to = time.time()
    backlog = OutboundCall.objects.filter(
        shop=shop, status__in=OutboundCall.ACTIVE, origin_ref=f"bench-{phase}-bulk"
    ).count()
    wait_finished(shop, timeout, cluster)
    created = dict(OutboundCall.objects.filter(pk__in=live_ids).values_list("id", "created_at"))
    first_try: dict[int, float] = {}
    for call_id, started in OutboundAttempt.objects.filter(call_id__in=live_ids).values_list("call_id", "started_at"):
        first_try[call_id] = min(first_try.get(call_id, math.inf), started.timestamp())
    waits = [first_try[pk] - created[pk].timestamp() for pk in live_ids if pk in first_try]
    everything = console_figures(name, shop, simulator, expected)
    in_window = sum(1 for started in everything.starts if window_from <= started < window_to)
    durations = list(OutboundAttempt.objects.filter(call__shop=shop).values_list("duration_ms", flat=True))
    return LiveWaits(name, waits, backlog, in_window / (window_to - window_from), everything, durations)


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="calls in the throughput phases (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="qcluster worker processes = senders (default 2)")
    parser.add_argument("--bucket", type=float, default=200.0, help="GraphQL bucket maximum, points (default 200)")
    parser.add_argument("--restore", type=float, default=50.0, help="restore rate, points/s (default 50)")
    parser.add_argument("--bulk", type=int, default=100, help="bulk-lane calls in the lane phases (default 100)")
    parser.add_argument("--live", type=int, default=20, help="live calls in the lane phases (default 20)")
    parser.add_argument("--live-every", type=float, default=0.5, help="seconds between live calls (default 0.5)")
    parser.add_argument("--naive-sleep", type=float, default=1.0, help="naive client's sleep on 429 (default 1 s)")
    parser.add_argument("--database-url", help="PostgreSQL server to use (a scratch database is made on it)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 calls, 50 bulk, 8 live")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (database, logs)")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.bulk, args.live = 60, 50, 8

    workdir = Path(tempfile.mkdtemp(prefix="outbound-bench-"))
    database = configure(args.database_url, workdir)
    from django.conf import settings

    from integrations.outbound import sender as sender_module

    theory = args.restore / COST
    burst = int(args.bucket // COST)
    reserve = settings.OUTBOUND_LIVE_RESERVE
    needed = max(args.calls, args.bulk + args.live)
    records = min(50_000, math.ceil(needed / 0.4) + 100)  # 40% of the seeded records are orders
    log(
        f"bucket {args.bucket:g} points, restore {args.restore:g}/s, {COST} points a call: theoretical "
        f"{theory:g} calls/s after a burst of {burst}; {args.workers} senders; "
        f"database {'SQLite' if database.startswith('sqlite') else 'PostgreSQL'}; work dir {workdir}"
    )

    processes: list[subprocess.Popen] = []
    try:
        port = free_port()
        sim_process = start(["shopify_simulator", "--host", "127.0.0.1", "--port", str(port)], workdir / "sim.log")
        processes.append(sim_process)
        simulator = Simulator(port)
        simulator.wait_ready(sim_process)
        shops = {}
        for phase in ("naive", "console", "lanes", "fifo"):
            domain = f"bench-{phase}.myshopify.com"
            orders = simulator.create_shop(domain, records=records, bucket=args.bucket, restore=args.restore)
            if len(orders) < needed:
                raise SystemExit(f"{domain} has {len(orders)} orders, {needed} needed")
            shops[phase] = (domain, orders)

        # 1. Naive client, alone on the machine.
        domain, orders = shops["naive"]
        log(f"\n[1/4] naive client: {args.calls} calls from {args.workers} threads ...")
        naive = run_naive(simulator, domain, orders[: args.calls], args.workers, args.naive_sleep)

        # 2. The console: enqueue, then start the qcluster whose workers send.
        domain, orders = shops["console"]
        shop = console_shop(domain, simulator)
        expected = enqueue_tags(shop, orders[: args.calls], "console", "live")
        log(f"[2/4] console: {args.calls} calls enqueued, qcluster with {args.workers} workers sending ...")
        cluster = start(
            ["qcluster"], workdir / "qcluster.log", Q_WORKERS=str(args.workers), OUTBOUND_SENDER_THREADS="1"
        )
        processes.append(cluster)
        timeout = 60 + 3 * args.calls / theory
        wait_finished(shop, timeout, cluster)
        console = console_figures(f"console ({args.workers} qcluster workers)", shop, simulator, expected)

        # 3 and 4. Live calls while a bulk lane saturates the bucket: lanes, then one FIFO queue.
        lane_timeout = 60 + 3 * (args.bulk + args.live) / theory
        results = []
        for phase, fifo in (("lanes", False), ("fifo", True)):
            domain, orders = shops[phase]
            shop = console_shop(domain, simulator)
            label = (
                f"lanes: bulk in reconcile, reserve {reserve:.0%}" if not fifo else "one FIFO queue (all calls live)"
            )
            log(
                f"[{3 if not fifo else 4}/4] {label}: {args.bulk} bulk calls, {args.live} live every {args.live_every:g} s ..."
            )
            results.append(
                run_lanes(
                    label,
                    shop,
                    simulator,
                    orders,
                    bulk=args.bulk,
                    live=args.live,
                    every=args.live_every,
                    fifo=fifo,
                    cluster=cluster,
                    burst_calls=burst,
                    timeout=lane_timeout,
                )
            )
    finally:
        stop_processes(processes)
    lanes, fifo = results

    # --- report ---------------------------------------------------------------------------------
    worker_log = (workdir / "qcluster.log").read_text(errors="replace").splitlines()
    sender_problems = [
        line for line in worker_log if "integrations.outbound" in line and ("ERROR" in line or "WARNING" in line)
    ]
    print()
    print(f"Theoretical sustained rate: restore / cost = {args.restore:g} / {COST} = {theory:g} calls/s.")
    print(
        f"Sustained = (calls - {burst}) / (last start - first start): calls beyond the {burst}-call burst a full "
        f"bucket allows, per second. Whole run = calls x {COST} / ({args.bucket:g} + {args.restore:g} x (last start - "
        "first start)): the share of all the points the bucket gave."
    )
    print()
    print(
        f"{'':44} {'calls':>5} {'requests':>8} {'throttled':>9} {'share':>6} {'sustained/s':>11} {'of theory':>9} "
        f"{'whole run':>9}  applied once"
    )
    for run in (console, naive):
        sustained = run.sustained(burst) or math.nan
        whole = run.whole_run(args.bucket, args.restore) or math.nan
        print(
            f"{run.name:44} {run.calls:>5} {run.requests:>8} {run.throttled:>9} {run.throttled_share:>6.1%} "
            f"{sustained:>11.2f} {sustained / theory:>9.1%} {whole:>9.1%}  {run.verdict()}"
        )
    sustained_console = console.sustained(burst) or 0.0
    met = sustained_console / theory >= TARGET_SHARE and console.throttled_share <= TARGET_THROTTLED
    print(
        f"console / naive: sustained {sustained_console / (naive.sustained(burst) or math.nan):.2f}x, "
        f"throttled share {console.throttled_share:.1%} vs {naive.throttled_share:.1%}"
    )
    print(
        f"target >= {TARGET_SHARE:.0%} of theoretical with <= {TARGET_THROTTLED:.0%} throttled: "
        f"{'MET' if met else 'NOT MET'} ({sustained_console / theory:.1%}, {console.throttled_share:.1%})"
    )

    print()
    call_p95 = percentile([float(d) for d in lanes.durations_ms + fifo.durations_ms], 0.95) / 1000
    idle = sender_module.IDLE_SLEEP
    reserve_points = reserve * args.bucket
    print(
        f"Live-call wait (enqueued -> its first try starts): {args.live} live calls, one every {args.live_every:g} s, "
        f"while {args.bulk} bulk calls saturate the bucket."
    )
    print(
        f"{'':44} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'bulk left':>9} {'calls/s':>7} {'throttled':>9}  applied once"
    )
    for run in (lanes, fifo):
        print(
            f"{run.name:44} {run.p(0.5):>7.3f} {run.p(0.95):>7.3f} {max(run.waits, default=math.nan):>7.3f} "
            f"{run.backlog_at_last_live:>9} {run.window_rate:>7.2f} {run.everything.throttled:>9}  "
            f"{run.everything.verdict()}"
        )
    print(
        "(bulk left: bulk calls still unsent when the last live call was enqueued; calls/s: bulk and live calls "
        "started while live calls were being enqueued)"
    )
    print(f"FIFO / lanes: p95 {fifo.p(0.95) / lanes.p(0.95):.0f}x, p50 {fifo.p(0.5) / lanes.p(0.5):.0f}x")
    print(
        f"What the reserve allows: bulk calls leave {reserve_points:g} points ({reserve_points / COST:g} calls) to live "
        f"calls and restoring refills that first; live calls ask {COST / args.live_every:g} points/s of the "
        f"{args.restore:g} restored, so a live call finds its points at once and waits only for a sender to look: "
        f"a sender waiting for bulk room sleeps at most IDLE_SLEEP = {idle:g} s, plus at worst one call in flight "
        f"(p95 {call_p95 * 1000:.0f} ms): about {idle + call_p95:.2f} s."
    )
    print(f"Sender errors and warnings in the qcluster log: {len(sender_problems)}")
    for line in sender_problems[:5]:
        print(f"  {line[:200]}")
    if args.keep:
        print(f"kept {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
