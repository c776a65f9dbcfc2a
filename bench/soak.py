"""Soak (issue 15): steady webhook traffic at half the processing capacity measured in the same
run, for 10 minutes, with the worker processing and sending outbound calls, on gunicorn + qcluster
+ PostgreSQL.

    .venv/bin/python bench/soak.py [--minutes 10] [--fraction 0.5] [--events 10000] [--workers 4]
        [--q-workers 2] [--quick]

Needs PostgreSQL (DATABASE_URL, default postgres://console:console@127.0.0.1:5432/console) and `wrk`.
Reuses bench/processing_throughput.py's store activity, receiver intake and drain:

1. capacity: --events signed webhooks stored through the real receiver with wrk (no worker), then
   two qcluster processes drain that backlog, sending the outbound calls it makes as in the soak;
   capacity = the lower of the intake rate and that 2-process drain rate.
2. soak: on a fresh copy of the migrated database, gunicorn and two qclusters whose workers also
   send outbound calls (OUTBOUND_SENDER_THREADS=1) to a real simulator process (`manage.py
   shopify_simulator`) that the shop's Admin API URL points at. Webhooks go out at --fraction x
   capacity, each at its own scheduled moment from 8 sender threads whatever the answers'
   latency, for --minutes. Every 10 s: the backlog (events not finished; outbound calls queued,
   waiting or running) and the resident memory (RSS) of the web processes (gunicorn's master and
   workers) and of the worker processes (each qcluster with its children).

Reported: throughput (webhooks answered/s, events processed/s, outbound calls settled), the intake
latency p50/p99 (the receiver's answer, measured by the sender), received-to-processed p50/p99,
the backlog over time with its least-squares slope and first-minute against last-minute means, and
memory at the start (after a 30 s warm-up at the soak rate) and at the end. Targets: no backlog
growth (last minute's mean backlog not above the first minute's by more than a second's worth of
traffic) and memory growth under 10%.

The generated orders exist only in the webhooks, not in the simulated store, so the push jobs'
calls are answered "not found" (non-retryable, one try each): the sender, throttle and call
records run as in production, the simulated store's records stay as they were. The simulated shop
has a Shopify Plus GraphQL bucket (--restore 1000 points/s, --bucket 20000): on the Standard
plan's 100 points/s one shop may take 10 tag calls/s, fewer than this traffic's paid orders ask
for, and its calls would queue however fast the console is (a first run showed exactly that).
"""

import argparse
import http.client
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import SimulatorControl, bench_env, scratch_database
from bench.processing_throughput import (
    DOMAIN,
    PYTHON,
    SECRET,
    UNFINISHED_SQL,
    Processes,
    ShopActivity,
    Webhook,
    _copy_database,
    _free_port,
    _run,
    _sibling_url,
    drain_backlog,
    store_backlog,
)

TOKEN = "shpat_soak_token_0123456789"
SAMPLE_SECONDS = 10
WARM_UP_SECONDS = 30
PENDING_CALLS_SQL = "SELECT count(*) FROM integrations_outboundcall WHERE status IN ('queued', 'waiting', 'running')"


@dataclass
class Sample:
    at: float
    events_unfinished: int
    calls_pending: int
    web_mb: float
    worker_mb: float


@dataclass
class Soak:
    rate: float
    seconds: float
    answers: dict = field(default_factory=dict)
    intake_ms: list[float] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    start_memory: tuple[float, float] = (0.0, 0.0)
    processed: int = 0
    latencies: list[float] = field(default_factory=list)
    calls: dict = field(default_factory=dict)
    sent_span: float = 0.0


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB (from /proc)."""
    total, todo, seen = 0, [pid], set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                todo.extend(int(child) for child in children)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 1024


def paced_send(port: int, webhooks: list[Webhook], rate: float, clients: int, answers: dict, latencies: list) -> float:
    """Each webhook at its own moment (start + i / rate) from `clients` threads; records each
    answer's status and latency (ms). Returns how long it took (s)."""
    lock = threading.Lock()
    state = {"next": 0, "last": 0.0}
    start = time.monotonic() + 0.1

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                index = state["next"]
                state["next"] += 1
            if index >= len(webhooks):
                break
            due = start + index / rate
            if (wait := due - time.monotonic()) > 0:
                time.sleep(wait)
            webhook = webhooks[index]
            sent = time.monotonic()
            try:
                conn.request("POST", "/webhooks/shopify", body=webhook.body, headers=webhook.headers())
                response = conn.getresponse()
                response.read()
                answer = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                answer = type(exc).__name__
            took = (time.monotonic() - sent) * 1000
            with lock:
                answers[answer] = answers.get(answer, 0) + 1
                latencies.append(took)
                state["last"] = max(state["last"], time.monotonic())
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return state["last"] - start


def soak(empty_url: str, activity: ShopActivity, rate: float, args, procs: Processes) -> Soak:
    url = _copy_database(empty_url, _sibling_url(empty_url.removesuffix("_empty"), "soak"))
    total_seconds = WARM_UP_SECONDS + args.minutes * 60
    webhooks = activity.mixed(max(1, round(rate * total_seconds)))
    warm = round(rate * WARM_UP_SECONDS)
    workers = procs.qclusters(url, 2, args.q_workers, "soak", senders=1)
    gunicorn, port = procs.gunicorn(url, args.workers, "soak")
    result = Soak(rate=rate, seconds=args.minutes * 60)
    answers: dict = {}
    latencies: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        base_id = conn.execute("SELECT coalesce(max(id), 0) FROM integrations_event").fetchone()[0]
        sender = threading.Thread(
            target=lambda: setattr(result, "sent_span", paced_send(port, webhooks, rate, 8, answers, latencies)),
            daemon=True,
        )
        began = time.monotonic()
        sender.start()
        time.sleep(WARM_UP_SECONDS)
        measured_from = len(latencies)
        result.start_memory = (rss_mb(gunicorn.pid), sum(rss_mb(w.pid) for w in workers))
        tick = 0
        while sender.is_alive():
            tick += 1
            sender.join(timeout=max(0.0, began + WARM_UP_SECONDS + tick * SAMPLE_SECONDS - time.monotonic()))
            result.samples.append(
                Sample(
                    at=time.monotonic() - began - WARM_UP_SECONDS,
                    events_unfinished=conn.execute(
                        f"SELECT count(*) FROM integrations_event WHERE {UNFINISHED_SQL}"  # noqa: S608
                    ).fetchone()[0],
                    calls_pending=conn.execute(PENDING_CALLS_SQL).fetchone()[0],
                    web_mb=rss_mb(gunicorn.pid),
                    worker_mb=sum(rss_mb(w.pid) for w in workers),
                )
            )
            last = result.samples[-1]
            print(
                f"  {last.at:5.0f} s: {last.events_unfinished} events, {last.calls_pending} calls waiting; "
                f"web {last.web_mb:.0f} MB, workers {last.worker_mb:.0f} MB",
                flush=True,
            )
        deadline = time.monotonic() + 120
        while conn.execute(f"SELECT count(*) FROM integrations_event WHERE {UNFINISHED_SQL}").fetchone()[0]:  # noqa: S608
            if time.monotonic() > deadline:
                break
            time.sleep(0.5)
        rows = conn.execute(
            "SELECT extract(epoch FROM processed_at - received_at) FROM integrations_event "
            "WHERE id > %s AND status = 'processed' ORDER BY id OFFSET %s",
            [base_id, warm],
        ).fetchall()
        result.latencies = [float(r[0]) for r in rows if r[0] is not None]
        result.processed = len(rows)
        result.calls = dict(
            conn.execute("SELECT status, count(*) FROM integrations_outboundcall GROUP BY 1").fetchall()
        )
    procs.stop([*workers, gunicorn])
    result.answers = answers
    result.intake_ms = latencies[measured_from:]
    return result


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def slope(samples: list[Sample]) -> float:
    """Least-squares slope of the backlog (events + calls) in items per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [s.at / 60 for s in samples]
    ys = [s.events_unfinished + s.calls_pending for s in samples]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def report(result: Soak, capacity: float) -> None:
    s = result.samples
    first = [x.events_unfinished + x.calls_pending for x in s if x.at <= 60]
    last = [x.events_unfinished + x.calls_pending for x in s if x.at >= s[-1].at - 60] if s else []
    end_memory = (s[-1].web_mb, s[-1].worker_mb) if s else (0.0, 0.0)
    ok = result.answers.get(200, 0)
    print("\nsoak results")
    print(
        f"  rate {result.rate:.1f} webhooks/s = {result.rate / capacity:.2f} x capacity {capacity:.1f}/s, {result.seconds:.0f} s"
    )
    print(f"  answers: {dict(sorted(result.answers.items(), key=str))}; {ok / result.sent_span:.1f} answered 200/s")
    print(f"  events processed after warm-up: {result.processed}; outbound calls by status: {result.calls}")
    print(
        f"  intake latency (receiver's answer) p50 {percentile(result.intake_ms, 0.5):.1f} ms, "
        f"p99 {percentile(result.intake_ms, 0.99):.1f} ms, max {max(result.intake_ms, default=0):.1f} ms"
    )
    print(
        f"  received -> processed p50 {percentile(result.latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(result.latencies, 0.99) * 1000:.0f} ms"
    )
    growth = (statistics.mean(last) - statistics.mean(first)) if first and last else float("nan")
    print(
        f"  backlog (events + calls): first minute mean {statistics.mean(first) if first else 0:.1f}, last minute mean "
        f"{statistics.mean(last) if last else 0:.1f} (growth {growth:+.1f}; one second of traffic is {result.rate:.0f}), "
        f"max {max((x.events_unfinished + x.calls_pending for x in s), default=0)}, slope {slope(s):+.2f}/min"
    )
    web0, work0 = result.start_memory
    web1, work1 = end_memory
    print(
        f"  memory: web {web0:.1f} -> {web1:.1f} MB ({(web1 / web0 - 1) * 100 if web0 else 0:+.1f}%), "
        f"workers {work0:.1f} -> {work1:.1f} MB ({(work1 / work0 - 1) * 100 if work0 else 0:+.1f}%)"
    )
    backlog_ok = growth <= result.rate
    memory_ok = web1 <= web0 * 1.10 and work1 <= work0 * 1.10
    print(
        f"  target: no backlog growth {'MET' if backlog_ok else 'MISSED'}; memory growth < 10% {'MET' if memory_ok else 'MISSED'}"
    )
    print("\n  backlog and memory every 10 s (s, events, calls, web MB, workers MB):")
    print(
        "  "
        + "; ".join(f"{x.at:.0f} {x.events_unfinished} {x.calls_pending} {x.web_mb:.0f} {x.worker_mb:.0f}" for x in s)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fraction", type=float, default=0.5, help="of the measured capacity (default 0.5)")
    parser.add_argument("--events", type=int, default=10000, help="webhooks for the capacity phase (default 10000)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--q-workers", type=int, default=2, help="Q_WORKERS per qcluster (default 2)")
    parser.add_argument("--drain-timeout", type=float, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--bucket", type=float, default=20000.0, help="the shop's GraphQL maximum (default 20000)")
    parser.add_argument("--restore", type=float, default=1000.0, help="its restore rate, points/s (default 1000, Plus)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 events, 1 minute")
    args = parser.parse_args()
    if args.quick:
        args.events, args.minutes = 2000, 1.0
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    workdir = Path(tempfile.mkdtemp(prefix="soak-bench-"))
    procs = Processes(workdir)
    try:
        # The simulated store first: the console's shop points its Admin API at it.
        sim_port = _free_port()
        sim = procs._start(
            [PYTHON, "manage.py", "shopify_simulator", "--host", "127.0.0.1", "--port", str(sim_port)],
            bench_env("sqlite:///:memory:"), "simulator.log",  # the simulator uses no database
        )  # fmt: skip
        control = SimulatorControl(sim_port)
        control.wait_ready(sim)
        # A Shopify Plus store's GraphQL bucket by default (restore 1,000 points/s: 100 tag calls/s):
        # on the Standard plan's 100 points/s the shop's own bucket, not the console, caps its
        # outbound calls at 10/s, below what this traffic's paid orders ask for.
        control.control(
            "POST",
            "/shops",
            json={"domain": DOMAIN, "token": TOKEN, "webhook_secret": SECRET, "records": 50,
                  "graphql_maximum": args.bucket, "graphql_restore_rate": args.restore},
        )  # fmt: skip
        url = scratch_database("soak")
        env = bench_env(url)
        _run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env)
        _run(
            [PYTHON, "manage.py", "shops", "add", DOMAIN, "--webhook-secret", SECRET, "--access-token", TOKEN,
             "--api-url", f"{control.url}/{DOMAIN}"],
            env,
        )  # fmt: skip
        empty_url = _copy_database(url, _sibling_url(url, "empty"))
        activity = ShopActivity(
            random.Random(args.seed), products=max(10, args.events // 40), customers=max(20, args.events // 20)
        )
        intake = store_backlog(url, activity.mixed(args.events), args, procs, workdir)
        # Capacity as the soak runs: two qclusters that process and send the calls it makes.
        drain = drain_backlog(_copy_database(url, _sibling_url(url, "drain2")), 2, args, procs, senders=1)
        capacity = min(intake.rate, drain.rate)
        print(
            f"capacity: intake {intake.rate:.1f}/s, 2-process drain {drain.rate:.1f}/s -> {capacity:.1f}/s", flush=True
        )
        result = soak(empty_url, activity, capacity * args.fraction, args, procs)
        report(result, capacity)
    finally:
        procs.stop_all()
    print(f"process logs in {workdir}")


if __name__ == "__main__":
    main()
