"""A bulk replay while live webhooks arrive at a steady rate, on gunicorn + qcluster + PostgreSQL.

    .venv/bin/python bench/replay_under_load.py [--events 5000] [--seconds 60] [--live-fraction 0.15]
        [--qclusters 2] [--q-workers 2] [--replay-processes 2] [--quick]

Needs PostgreSQL (DATABASE_URL, default postgres://console:console@127.0.0.1:5432/console) and `wrk`.
Reuses bench/processing_throughput.py's machinery (store activity, signed webhooks, wrk intake,
real `manage.py qcluster` processes, the paced sender). In one run, on scratch databases
`<name>_replay*`:

1. held events: the shop's handlers notify_fulfillment, tag_notified_order and tag_buyer are
   disabled (integrations.replay.switches), --events orders/paid webhooks are stored through the
   receiver (wrk) and processed by qclusters, so each ends "held" with three held jobs; the
   handlers are enabled again. That database is the template of the replay phases.
2. live capacity C_live: on a copy of the empty database, a backlog of --live-backlog mixed
   webhooks (processing_throughput's topic mix) is stored through the receiver (the intake rate)
   and drained by the qclusters (processing_throughput.drain_backlog): events/s after the first
   event was done (the workers' start-up left out, as C_replay is measured on running pumps).
3. replay capacity C_replay: on a copy of the held database, with the qclusters running and no
   live traffic, a replay of every held event (the dry run `check_replay`, then `do_replay`);
   items_done / (finished_at - started_at).
4. live windows, on one more copy with one set of gunicorn + qcluster processes:
   a. idle: live webhooks at rate L for --seconds, no replay;
   b. under replay: the same replay queued (its dry run and do_replay just before), then the
      same rate L for the same time; what is left of it is then cancelled (--finish-replay:
      wait for it instead);
   c. idle again (after the replay has finished): the same rate and time, no replay, to see
      how much the machine's own load drifted during the run.
   Live latency is processed_at - received_at of the window's events (p50/p95/p99). The replay's
   throughput R is its items/s while the live traffic ran (or over its own duration if it
   finished first). L is --live-fraction of min(C_live, intake rate).

The replay runs in --replay-processes `manage.py replay_lane` processes (REPLAY_LANE=process, at
SCHED_IDLE and nice 19 with their PostgreSQL server processes: integrations.replay.priority);
--replay-processes 0 runs it in the qclusters' event pumps instead (REPLAY_LANE=pumps).

Targets: live p95 under replay <= 1.5 x the idle figure (window a), and R >= 80% of the capacity
left over by live traffic. That leftover is measured: the machine's CPU (/proc/stat) left idle
in window a, divided by the CPU the replay took per event when it ran alone (phase 3):
C_replay x (1 - busy in a) / busy in phase 3. The load generator, the receiver, the pumps and
PostgreSQL share the cores, and a trickle of live webhooks costs far more per event than a drained
backlog (batches of one or two, and the receiver's work, which the drain does not include), so the
formula C_replay x (1 - L / C_live) (also printed) counts only a fraction of what live traffic
uses.
Prints every figure, then a summary block for docs/benchmarks.md. --quick is a smoke run (about
2.5 minutes); a default run takes about 10 minutes on a 2-vCPU machine.
"""

import argparse
import json
import math
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, bench_env, scratch_database
from bench.processing_throughput import (
    DOMAIN,
    POLL_SECONDS,
    PYTHON,
    SECRET,
    Drain,
    Intake,
    Processes,
    ShopActivity,
    Steady,
    _copy_database,
    _git_state,
    _paced_send,
    _run,
    _s,
    _sibling_url,
    _statuses,
    _statuses_text,
    drain_backlog,
    report_drain,
    report_intake,
    store_backlog,
)

HELD_JOBS = ("notify_fulfillment", "tag_notified_order", "tag_buyer")
IN_FLIGHT_SQL = "status IN ('queued', 'claimed', 'retry_wait')"
# Replays here are far over the default approval limits (5,000 events, thousands of records and
# of dollars): the bench raises them so that do_replay queues the replay at once.
APPROVAL_ENV = {
    "REPLAY_APPROVAL_EVENTS": "1000000000",
    "REPLAY_APPROVAL_RECORDS": "1000000000",
    "REPLAY_APPROVAL_SHOPS": "1000",
    "REPLAY_APPROVAL_MONEY": "1000000000000",
}

# The calls into the console's replay services, run in a child process against one database
# (each phase has its own database; the benchmark process itself never sets Django up).
DJANGO_HELPER = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
import django
django.setup()
from integrations.models import Shop
from integrations.replay import services, switches
from integrations.replay.selection import for_filter

action, domain, jobs = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
shop = Shop.objects.get(domain=domain)
if action == "cancel":
    from integrations.models import ReplayRequest
    replay = ReplayRequest.objects.get(pk=int(sys.argv[4]))
    done = replay.status in ReplayRequest.FINISHED or services.cancel_replay(
        replay, by=None, reason="bench: the live window is over")
    print(json.dumps({"cancelled": bool(done)}))
if action in ("disable", "enable"):
    for job in jobs:
        switches.set_handler(job=job, shop=shop, disabled=action == "disable", by=None,
                             reason="bench: replay under live load")
    print(json.dumps({"held": switches.held_events(jobs[0], shop).count()}))
elif action == "replay":
    started = time.monotonic()
    replay = services.check_replay(selection=for_filter(switches.held_filter(jobs[0], shop)), mode="stored", by=None)
    planned = time.monotonic()
    replay = services.do_replay(replay, by=None, reason="bench: replay under live load", plan_hash=replay.plan_hash)
    print(json.dumps({
        "id": replay.pk, "status": replay.status, "items_total": replay.items_total,
        "summary": replay.summary, "dry_run_s": planned - started, "do_replay_s": time.monotonic() - planned,
    }))
"""


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


@dataclass
class Cpu:
    """The machine's CPU time (/proc/stat, every core) over a stretch: the busy share of it, and
    the share spent in niced processes (the replay_lane processes and their reniced database
    server processes, with --replay-processes)."""

    busy: float = 0.0
    niced: float = 0.0

    @staticmethod
    def ticks() -> list[int]:
        # user nice system idle iowait irq softirq steal (guest time is already in user and nice)
        return [int(n) for n in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]

    @classmethod
    def between(cls, before: list[int], after: list[int]) -> "Cpu":
        delta = [b - a for a, b in zip(before, after, strict=True)]
        total = sum(delta) or 1
        return cls(busy=(total - delta[3] - delta[4]) / total, niced=delta[1] / total)

    def __str__(self) -> str:
        return f"CPU {self.busy:.0%} busy ({self.niced:.0%} niced)"


def django_call(url: str, action: str, *extra: str) -> dict:
    env = {**bench_env(url), **APPROVAL_ENV}
    done = subprocess.run(
        [PYTHON, "-c", DJANGO_HELPER, action, DOMAIN, ",".join(HELD_JOBS), *extra],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if done.returncode:
        sys.exit(f"the replay helper ({action}) failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def replay_workers(procs: Processes, url: str, args, label: str) -> list[subprocess.Popen]:
    """The qclusters, and with --replay-processes N the `manage.py replay_lane` processes (the
    qclusters' pumps then run live events only: REPLAY_LANE=process)."""
    os.environ["REPLAY_LANE"] = "process" if args.replay_processes else "pumps"
    workers = procs.qclusters(url, args.qclusters, args.q_workers, label)
    for n in range(1, args.replay_processes + 1):
        env = {**bench_env(url), "REPLAY_LANE": "process"}
        workers.append(
            procs._start([PYTHON, "manage.py", "replay_lane", "--nice", str(args.replay_nice),
                          *(["--no-idle"] if args.replay_no_idle else [])], env, f"{label}-replay-lane-{n}.log")
        )  # fmt: skip
    return workers


def wait_for_pumps(conn: psycopg.Connection, pumps: int, timeout: float = 60) -> float:
    """Until `pumps` pumps have beaten within the last 3 s; returns how long it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        alive = conn.execute(
            "SELECT count(*) FROM integrations_workerheartbeat WHERE beat_at > clock_timestamp() - interval '3 s'"
        ).fetchone()[0]
        if alive >= pumps:
            return time.monotonic() - started
        time.sleep(POLL_SECONDS)
    sys.exit(f"only {alive} of {pumps} event pumps started within {timeout:.0f} s")


@dataclass
class ReplayState:
    status: str
    items_done: int
    items_total: int
    started_at: datetime | None
    finished_at: datetime | None
    now: datetime
    jobs_ran: int = 0
    jobs_failed: int = 0
    jobs_skipped: int = 0

    @property
    def duration(self) -> float | None:
        """started_at to finished_at, or to now while it runs."""
        if self.started_at is None:
            return None
        return ((self.finished_at or self.now) - self.started_at).total_seconds()

    @property
    def rate(self) -> float:
        duration = self.duration
        return self.items_done / duration if duration else 0.0


def replay_state(conn: psycopg.Connection, replay_id: int) -> ReplayState:
    row = conn.execute(
        "SELECT status, items_done, items_total, started_at, finished_at, clock_timestamp(), jobs_ran, jobs_failed, "
        "jobs_skipped FROM integrations_replayrequest WHERE id = %s",
        [replay_id],
    ).fetchone()
    return ReplayState(*row)


def wait_replay(conn: psycopg.Connection, replay_id: int, timeout: float) -> tuple[ReplayState, bool]:
    """Until the replay is done (or cancelled), printing its progress every 30 s."""
    started = time.monotonic()
    shown = started
    while True:
        state = replay_state(conn, replay_id)
        if state.status in ("done", "cancelled"):
            return state, False
        if time.monotonic() - started > timeout:
            return state, True
        if time.monotonic() - shown >= 30:
            shown = time.monotonic()
            print(
                f"    {state.items_done} of {state.items_total} items done ({state.rate:.1f}/s); load {loadavg()}",
                flush=True,
            )
        time.sleep(POLL_SECONDS)


def item_statuses(conn: psycopg.Connection, replay_id: int) -> Counter:
    query = "SELECT status, count(*) FROM integrations_replayitem WHERE replay_id = %s GROUP BY status"
    return Counter(dict(conn.execute(query, [replay_id]).fetchall()))


# --- 1. Held events -------------------------------------------------------------------------


@dataclass
class Held:
    intake: Intake
    seconds: float
    statuses: Counter
    held_jobs: Counter


def hold_events(url: str, webhooks, args, procs: Processes, workdir: Path) -> Held:
    django_call(url, "disable")
    intake = store_backlog(url, webhooks, args, procs, workdir)
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        workers = procs.qclusters(url, args.qclusters, args.q_workers, "hold")
        try:
            while conn.execute(f"SELECT count(*) FROM integrations_event WHERE {IN_FLIGHT_SQL}").fetchone()[0]:  # noqa: S608
                if time.monotonic() - started > args.drain_timeout:
                    print("  holding timed out", flush=True)
                    break
                time.sleep(POLL_SECONDS)
            seconds = time.monotonic() - started
        finally:
            procs.stop(workers)
        statuses = _statuses(conn)
        held_jobs = Counter(
            dict(conn.execute("SELECT name, count(*) FROM integrations_job WHERE status = 'held' GROUP BY name"))
        )
    django_call(url, "enable")
    return Held(intake, seconds, statuses, held_jobs)


# --- 3. Replay capacity ---------------------------------------------------------------------


@dataclass
class Capacity:
    state: ReplayState
    timed_out: bool
    items: Counter
    plan: dict
    wall: float  # from do_replay's return to done, as the poll saw it
    pumps_ready: float
    cpu: Cpu

    @property
    def rate(self) -> float:
        return self.state.rate


def replay_capacity(url: str, args, procs: Processes) -> Capacity:
    workers = replay_workers(procs, url, args, "capacity")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            ready = wait_for_pumps(conn, args.qclusters * args.q_workers + args.replay_processes)
            plan = django_call(url, "replay")
            started, ticks = time.monotonic(), Cpu.ticks()
            state, timed_out = wait_replay(conn, plan["id"], args.replay_timeout)
            wall, cpu = time.monotonic() - started, Cpu.between(ticks, Cpu.ticks())
            items = item_statuses(conn, plan["id"])
    finally:
        procs.stop(workers)
    return Capacity(state, timed_out, items, plan, wall, ready, cpu)


# --- 4. Live windows ------------------------------------------------------------------------


@dataclass
class Window:
    label: str
    steady: Steady
    received: list[float] = field(default_factory=list)  # epoch of each event's received_at, as latencies
    replay_samples: list[tuple[float, int]] = field(default_factory=list)  # (s into the window, items done)
    replay_at_end: ReplayState | None = None
    cpu: Cpu = field(default_factory=Cpu)  # while the sender ran

    def latencies_between(self, start: datetime | None, end: datetime | None) -> list[float]:
        lo = start.timestamp() if start else -math.inf
        hi = end.timestamp() if end else math.inf
        return [lat for at, lat in zip(self.received, self.steady.latencies, strict=True) if lo <= at <= hi]


def percentile(values: list[float], q: float) -> float | None:
    # Steady.percentile's nearest-rank definition, on any list.
    return Steady(0, 0, 0, Counter(), 0, 0, 0, latencies=values).percentile(q)


def live_window(conn, port: int, label: str, webhooks, rate: float, args, replay_id: int | None = None) -> Window:
    """The steady window of processing_throughput.steady_load (copied, because that function
    owns its database and processes): send at `rate`, sample the live backlog every 5 s (and the
    replay's progress), wait until the window's events are done, read their latencies."""
    base_id = conn.execute("SELECT coalesce(max(id), 0) FROM integrations_event").fetchone()[0]
    backlog_sql = f"SELECT count(*) FROM integrations_event WHERE id > %s AND {IN_FLIGHT_SQL}"  # noqa: S608
    sent: list = []
    sender = threading.Thread(target=lambda: sent.extend(_paced_send(port, webhooks, rate, args.clients)), daemon=True)
    window_start, ticks = time.monotonic(), Cpu.ticks()
    sender.start()
    samples, replay_samples, tick = [], [], 0
    while sender.is_alive():
        sender.join(timeout=max(0.0, window_start + (tick + 1) * 5 - time.monotonic()))
        if sender.is_alive() or time.monotonic() - window_start >= (tick + 1) * 5 - 0.5:
            tick += 1
            samples.append((tick * 5.0, conn.execute(backlog_sql, [base_id]).fetchone()[0]))
            if replay_id is not None:
                replay_samples.append((tick * 5.0, replay_state(conn, replay_id).items_done))
    cpu = Cpu.between(ticks, Cpu.ticks())
    at_end = replay_state(conn, replay_id) if replay_id is not None else None
    deadline = time.monotonic() + args.drain_timeout
    while conn.execute(backlog_sql, [base_id]).fetchone()[0] and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
    last_id = conn.execute("SELECT coalesce(max(id), 0) FROM integrations_event").fetchone()[0]
    rows = conn.execute(
        "SELECT status, extract(epoch FROM received_at), extract(epoch FROM processed_at - received_at) "
        "FROM integrations_event WHERE id > %s AND id <= %s ORDER BY id",
        [base_id, last_id],
    ).fetchall()
    steady = Steady(
        rate=rate,
        seconds=args.seconds,
        sent=len(webhooks),
        answered=sent[0],
        achieved_rate=sent[1],
        max_late=sent[2],
        duration=sent[3],
        samples=samples,
        latencies=[float(lat) if lat is not None else math.inf for _, _, lat in rows],
        statuses=Counter(status for status, _, _ in rows),
    )
    return Window(label, steady, [float(at) for _, at, _ in rows], replay_samples, at_end, cpu)


@dataclass
class LiveRun:
    idle: Window
    replay: Window
    after: Window | None
    plan: dict
    final: ReplayState
    timed_out: bool
    items: Counter
    pumps_ready: float
    load: dict[str, str]
    cancelled: bool = False

    @property
    def replay_rate(self) -> float:
        """Items/s while the live traffic ran, or over the replay's own duration if it finished first."""
        end = self.replay.replay_at_end
        if end is None or end.started_at is None:
            return 0.0
        if end.finished_at is not None:
            return end.items_done / end.duration if end.duration else 0.0
        return end.rate

    def under_replay_latencies(self) -> list[float]:
        """Live events received while the replay ran (all of window b if it outlasted it)."""
        return self.replay.latencies_between(self.final.started_at, self.final.finished_at)


def live_windows(url: str, activity: ShopActivity, rate: float, args, procs: Processes) -> LiveRun:
    count = max(1, round(rate * args.seconds))
    idle_hooks, replay_hooks = activity.mixed(count), activity.mixed(count)
    after_hooks = activity.mixed(count) if not args.no_idle_after else []
    warm_up = activity.mixed(20)
    workers = replay_workers(procs, url, args, "live")
    gunicorn, port = procs.gunicorn(url, args.workers, "live")
    load = {}
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            ready = wait_for_pumps(conn, args.qclusters * args.q_workers + args.replay_processes)
            _paced_send(port, warm_up, rate=20, clients=2)
            while conn.execute(f"SELECT count(*) FROM integrations_event WHERE {IN_FLIGHT_SQL}").fetchone()[0]:  # noqa: S608
                time.sleep(POLL_SECONDS)
            load["idle"] = loadavg()
            print(f"  window a (no replay): {count} webhooks at {rate:.1f}/s; load {load['idle']}", flush=True)
            idle = live_window(conn, port, "idle", idle_hooks, rate, args)
            print(f"  window a: p95 {_s(idle.steady.percentile(0.95))}", flush=True)
            plan = django_call(url, "replay")
            load["replay"] = loadavg()
            print(
                f"  replay {plan['id']} queued: {plan['items_total']} items (dry run {plan['dry_run_s']:.1f} s, "
                f"do_replay {plan['do_replay_s']:.1f} s); window b: {count} webhooks at {rate:.1f}/s; "
                f"load {load['replay']}",
                flush=True,
            )
            under = live_window(conn, port, "replay", replay_hooks, rate, args, replay_id=plan["id"])
            print(f"  window b: p95 {_s(under.steady.percentile(0.95))}", flush=True)
            cancelled = False
            if not args.finish_replay and replay_state(conn, plan["id"]).status != "done":
                # Window c wants an idle replay lane: stop the rest (the items being run finish).
                cancelled = django_call(url, "cancel", str(plan["id"]))["cancelled"]
                print(f"  replay {plan['id']} cancelled after window b", flush=True)
                while conn.execute(
                    "SELECT count(*) FROM integrations_replayitem WHERE replay_id = %s AND status = 'claimed'",
                    [plan["id"]],
                ).fetchone()[0]:
                    time.sleep(POLL_SECONDS)
            final, timed_out = wait_replay(conn, plan["id"], args.replay_timeout)
            items = item_statuses(conn, plan["id"])
            after = None
            if after_hooks:
                load["after"] = loadavg()
                print(f"  window c (no replay, after it): load {load['after']}", flush=True)
                after = live_window(conn, port, "after", after_hooks, rate, args)
    finally:
        procs.stop([*workers, gunicorn])
    return LiveRun(idle, under, after, plan, final, timed_out, items, ready, load, cancelled)


# --- Reporting ------------------------------------------------------------------------------


def _pcts(values: list[float]) -> str:
    return " / ".join(_s(percentile(values, q)) for q in (0.5, 0.95, 0.99))


def _window_line(window: Window) -> str:
    s = window.steady
    return (
        f"{s.sent} webhooks asked at {s.rate:.1f}/s, sent {s.achieved_rate:.1f}/s over {s.duration:.1f} s (worst "
        f"send {s.max_late * 1000:.0f} ms late; answers {dict(s.answered)}); backlog every 5 s: "
        + " ".join(str(b) for _, b in s.samples)
        + f"; received -> processed p50/p95/p99 {_pcts(s.latencies)}; statuses {_statuses_text(s.statuses)}; "
        f"{window.cpu} while sending"
    )


@dataclass
class Result:
    capacity: Capacity
    drain: Drain
    intake: Intake
    live: LiveRun

    @property
    def live_rate(self) -> float:  # L: the rate achieved while the replay ran
        return self.live.replay.steady.achieved_rate

    @property
    def c_live(self) -> float:
        """The drain rate after the first event was done: without the workers' start-up, as
        C_replay is measured on running pumps (from the replay's started_at)."""
        return self.drain.rate_after_first or self.drain.rate

    @property
    def live_share(self) -> float:
        return self.live_rate / self.c_live if self.c_live else 1.0

    @property
    def leftover(self) -> float:
        return self.capacity.rate * max(0.0, 1 - self.live_share)

    @property
    def throughput_ratio(self) -> float:
        return self.live.replay_rate / self.leftover if self.leftover else 0.0

    @property
    def leftover_cpu(self) -> float:
        """The leftover as measured on the machine: the replay's cost in CPU (the busy share of the
        machine while it ran alone at C_replay) against the share live traffic left idle in window a
        (receiver, pumps, database and load generator all counted, as they share the cores)."""
        cap = self.capacity
        if not cap.cpu.busy:
            return 0.0
        return cap.rate * max(0.0, 1 - self.live.idle.cpu.busy) / cap.cpu.busy

    @property
    def throughput_ratio_cpu(self) -> float:
        return self.live.replay_rate / self.leftover_cpu if self.leftover_cpu else 0.0

    @property
    def p95_idle(self) -> float | None:
        return self.live.idle.steady.percentile(0.95)

    @property
    def p95_replay(self) -> float | None:
        return percentile(self.live.under_replay_latencies(), 0.95)

    @property
    def p95_ratio(self) -> float | None:
        idle, under = self.p95_idle, self.p95_replay
        if not idle or under is None:
            return None
        return under / idle


def report(result: Result) -> None:
    cap, live = result.capacity, result.live
    print(
        f"replay capacity, no live traffic: {cap.state.items_done} of {cap.state.items_total} items in "
        f"{_s(cap.state.duration)} (started_at -> finished_at) = {cap.rate:.1f} events/s"
        f"{' (TIMED OUT)' if cap.timed_out else ''}; {cap.wall:.1f} s from do_replay's return to done as polled; "
        f"jobs ran {cap.state.jobs_ran}, failed {cap.state.jobs_failed}, skipped {cap.state.jobs_skipped}; "
        f"items {dict(cap.items)}; dry run {cap.plan['dry_run_s']:.1f} s, do_replay {cap.plan['do_replay_s']:.1f} s; "
        f"{cap.cpu}",
        flush=True,
    )
    print(f"live windows, pumps ready after {live.pumps_ready:.1f} s:")
    print(f"  a. no replay:    {_window_line(live.idle)}")
    print(f"  b. under replay: {_window_line(live.replay)}")
    inside = live.under_replay_latencies()
    print(
        f"     of which received while the replay ran: {len(inside)} events, p50/p95/p99 {_pcts(inside)}; "
        f"replay items done every 5 s: " + " ".join(str(n) for _, n in live.replay.replay_samples)
    )
    if live.after:
        print(f"  c. idle again:   {_window_line(live.after)}")
    end = live.replay.replay_at_end
    ended = "cancelled after window b" if live.cancelled else "finished"
    print(
        f"replay under live load: {live.final.items_total} items, {live.items.get('done', 0)} done, started_at -> "
        f"{ended} {_s(live.final.duration)}{' (TIMED OUT)' if live.timed_out else ''}; at the end of window b "
        f"{end.items_done if end else 0} done ({end.status if end else 'n/a'}); R = {live.replay_rate:.1f} events/s "
        f"({'its own duration' if end and end.finished_at else 'while the live traffic ran'}); jobs ran "
        f"{live.final.jobs_ran}, failed {live.final.jobs_failed}, skipped {live.final.jobs_skipped}; items "
        f"{dict(live.items)}",
        flush=True,
    )
    print(
        f"leftover capacity: C_replay x (1 - L / C_live) = {cap.rate:.1f} x (1 - {result.live_rate:.1f} / "
        f"{result.c_live:.1f}) = {result.leftover:.1f} events/s; R / leftover = {result.throughput_ratio:.2f} "
        f"(for comparison: counts only the pumps' share of live traffic)"
    )
    print(
        f"leftover capacity, measured: C_replay x (1 - CPU busy in window a) / CPU busy at C_replay = "
        f"{cap.rate:.1f} x (1 - {live.idle.cpu.busy:.2f}) / {cap.cpu.busy:.2f} = {result.leftover_cpu:.1f} "
        f"events/s; R / leftover = {result.throughput_ratio_cpu:.2f} "
        f"(target >= 0.80: {'met' if result.throughput_ratio_cpu >= 0.8 else 'NOT met'})"
    )
    ratio = result.p95_ratio
    print(
        f"live p95: {_s(result.p95_replay)} under replay / {_s(result.p95_idle)} idle = "
        f"{'n/a' if ratio is None else f'{ratio:.2f}x'} (target <= 1.5: "
        f"{'met' if ratio is not None and ratio <= 1.5 else 'NOT met'})",
        flush=True,
    )


def print_summary(facts: str, result: Result, held: Held, load_end: str) -> None:
    cap, live = result.capacity, result.live
    ratio = result.p95_ratio
    print("\n----- summary (for docs/benchmarks.md) -----")
    print(f"{facts}\nLoad average at the end: {load_end}.\n")
    print("| measure | figure |")
    print("| --- | --- |")
    print(
        f"| held events (setup) | {held.statuses.get('held', 0)} held of {sum(held.statuses.values())}; held jobs "
        + ", ".join(f"{n} {name}" for name, n in sorted(held.held_jobs.items()))
        + " |"
    )
    print(f"| intake, no worker running | {result.intake.rate:.0f} stored/s |")
    print(
        f"| C_live: drain of {result.drain.total}, {result.drain.qclusters} qclusters | {result.c_live:.1f} events/s "
        f"after the first event ({result.drain.rate:.1f}/s from the workers' start) |"
    )
    print(
        f"| C_replay: replay of {cap.state.items_total}, no live traffic | {cap.rate:.1f} events/s "
        f"({_s(cap.state.duration)}{', timed out' if cap.timed_out else ''}; {cap.state.jobs_ran} jobs ran, "
        f"{cap.state.jobs_failed} failed; {cap.cpu}) |"
    )
    for name, window in (("a. live, no replay", live.idle), ("b. live, under replay", live.replay),
                         ("c. live, idle again", live.after)):  # fmt: skip
        if window is None:
            continue
        s = window.steady
        print(
            f"| {name}: {s.rate:.1f}/s asked for {s.seconds:.0f} s (sent {s.achieved_rate:.1f}/s) | received → "
            f"processed p50 / p95 / p99 {_pcts(s.latencies)}; {window.cpu} |"
        )
    inside = live.under_replay_latencies()
    print(f"| b. live events received while the replay ran ({len(inside)}) | p50 / p95 / p99 {_pcts(inside)} |")
    end = live.replay.replay_at_end
    if end is not None and end.finished_at is not None:
        how = f"all {end.items_total} in {_s(end.duration)}, before window b ended"
    else:
        how = (
            f"{end.items_done if end else 0} of {live.final.items_total} done in the {_s(end.duration if end else None)} "
            f"from its start to the end of window b"
            + ("; the rest cancelled" if live.cancelled else f"; all done after {_s(live.final.duration)}")
        )
    print(f"| R: replay under live load | {live.replay_rate:.1f} events/s ({how}) |")
    print(
        f"| leftover by formula = C_replay x (1 - L / C_live) | {cap.rate:.1f} x (1 - {result.live_rate:.1f} / "
        f"{result.c_live:.1f}) = {result.leftover:.1f} events/s |"
    )
    print(f"| R / that leftover (for comparison) | {result.throughput_ratio:.2f} |")
    print(
        f"| leftover, measured = C_replay x (1 - CPU busy in a) / CPU busy at C_replay | {cap.rate:.1f} x (1 - "
        f"{live.idle.cpu.busy:.2f}) / {cap.cpu.busy:.2f} = {result.leftover_cpu:.1f} events/s |"
    )
    print(
        f"| R / measured leftover (target ≥ 0.80) | **{result.throughput_ratio_cpu:.2f}** "
        f"({'met' if result.throughput_ratio_cpu >= 0.8 else 'not met'}) |"
    )
    print(
        f"| live p95 under replay / idle (target ≤ 1.5) | **{'n/a' if ratio is None else f'{ratio:.2f}x'}** "
        f"({_s(result.p95_replay)} / {_s(result.p95_idle)}; "
        f"{'met' if ratio is not None and ratio <= 1.5 else 'not met'}) |"
    )


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, help="held orders/paid events to replay (default 5000; --quick 500)")
    parser.add_argument("--seconds", type=float, help="length of each live window (default 60; --quick 15)")
    parser.add_argument(
        "--live-backlog", type=int, help="mixed webhooks for the C_live drain (default 4000; quick 1000)"
    )
    parser.add_argument("--live-fraction", type=float, default=0.15, help="L = this x min(C_live, intake) (0.15)")
    parser.add_argument("--live-rate", type=float, help="live webhooks/s (instead of the fraction)")
    parser.add_argument("--qclusters", type=int, default=2, help="qcluster processes (default 2)")
    parser.add_argument(
        "--replay-processes", type=int, default=2,
        help="run replays in this many `manage.py replay_lane` processes (REPLAY_LANE=process; default 2); "
        "0: in the qclusters' pumps (REPLAY_LANE=pumps)",
    )  # fmt: skip
    parser.add_argument("--replay-nice", type=int, default=19, help="niceness of the replay_lane processes (19)")
    parser.add_argument(
        "--replay-no-idle", action="store_true", help="replay_lane processes without SCHED_IDLE (niceness only)"
    )
    parser.add_argument("--q-workers", type=int, default=2, help="Q_WORKERS per qcluster, one pump each (default 2)")
    parser.add_argument("--replay-batch-size", type=int, help="REPLAY_BATCH_SIZE for the workers (default: settings')")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections for the intake (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads for the intake (default 2)")
    parser.add_argument("--clients", type=int, default=8, help="sender threads in the live windows (default 8)")
    parser.add_argument("--drain-timeout", type=float, help="give a drain up after this many s (default 200; quick 90)")
    parser.add_argument("--replay-timeout", type=float, default=900, help="give a replay up after this many s (900)")
    parser.add_argument(
        "--finish-replay",
        action="store_true",
        help="after window b, wait for the replay to finish (default: cancel what is left of it)",
    )
    parser.add_argument("--no-idle-after", action="store_true", help="skip window c (idle again, after the replay)")
    parser.add_argument("--seed", type=int, default=1, help="for the generated store activity (default 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500 events, 15 s windows")
    args = parser.parse_args()
    args.events = args.events or (500 if args.quick else 5000)
    args.seconds = args.seconds or (15 if args.quick else 60)
    args.live_backlog = args.live_backlog or (1000 if args.quick else 4000)
    args.drain_timeout = args.drain_timeout or (90 if args.quick else 200)
    return args


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    # Every process started from here on (bench_env copies os.environ) sees these.
    os.environ.update(APPROVAL_ENV)
    os.environ["REPLAY_MAX_EVENTS"] = str(max(10000, args.events))
    if args.replay_batch_size:
        os.environ["REPLAY_BATCH_SIZE"] = str(args.replay_batch_size)
    load_start = loadavg()
    url = scratch_database("replay")
    with psycopg.connect(url, autocommit=True) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    facts = (
        f"Machine: {os.cpu_count()} cores, load average {load_start} at the start; Python "
        f"{platform.python_version()}, PostgreSQL {pg_version} (synchronous_commit {sync_commit}); "
        f"{datetime.now(UTC):%Y-%m-%d}; code {_git_state()}.\n"
        f"Parameters: {args.events} held orders/paid events (jobs {', '.join(HELD_JOBS)}); {args.qclusters} "
        f"qclusters x Q_WORKERS={args.q_workers} (one pump each, no outbound senders); REPLAY_BATCH_SIZE "
        f"{os.environ.get('REPLAY_BATCH_SIZE', '5 (default)')}, REPLAY_YIELD_MS "
        f"{os.environ.get('REPLAY_YIELD_MS', '50 (default)')}, replay lane "
        + (
            f"{args.replay_processes} replay_lane processes at nice {args.replay_nice}"
            + ("" if args.replay_no_idle else ", SCHED_IDLE")
            if args.replay_processes
            else "in the pumps"
        )
        + ", EVENT_BATCH_SIZE "
        f"{os.environ.get('EVENT_BATCH_SIZE', '100 (default)')}; gunicorn {args.workers} sync workers; live "
        f"windows of {args.seconds:.0f} s at "
        + (f"{args.live_rate}/s" if args.live_rate else f"{args.live_fraction} x min(C_live, intake)")
        + f" from {args.clients} sender threads; C_live from a {args.live_backlog}-webhook backlog."
    )
    print(facts, flush=True)

    env = bench_env(url)
    _run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env)
    _run(
        [PYTHON, "manage.py", "shops", "add", DOMAIN, "--webhook-secret", SECRET, "--api-url", "http://127.0.0.1:1/x"],
        env,
    )
    empty_url = _copy_database(url, _sibling_url(url, "empty"))

    # One store: the orders to replay are paid first, then forgotten by the generator, so the live
    # traffic (new orders, products, stock, customers) never touches them: no live event makes a
    # replayed job stale (the replay would skip it, and do less work).
    activity = ShopActivity(
        random.Random(args.seed),
        products=max(10, args.events // 40),
        customers=max(20, args.events // 5),
        orders=args.events,
    )
    paid = [activity.webhook("orders/paid") for _ in range(args.events)]
    activity.orders, activity.unpaid = [], []
    live_backlog = activity.mixed(args.live_backlog)

    workdir = Path(tempfile.mkdtemp(prefix="replay-bench-"))
    procs = Processes(workdir)
    try:
        print(f"1. holding {args.events} orders/paid events; load {loadavg()}", flush=True)
        held = hold_events(url, paid, args, procs, workdir)
        print(
            f"  stored at {held.intake.rate:.0f}/s; processed in {held.seconds:.1f} s; statuses "
            f"{dict(held.statuses)}; held jobs {dict(held.held_jobs)}",
            flush=True,
        )
        if held.statuses.get("held", 0) != args.events:
            sys.exit(f"expected {args.events} held events; see {workdir}")
        held_url = _copy_database(url, _sibling_url(url, "held"))

        print(f"2. live capacity: {args.live_backlog} mixed webhooks; load {loadavg()}", flush=True)
        drain_url = _copy_database(empty_url, _sibling_url(url, "drain"))
        intake = store_backlog(drain_url, live_backlog, args, procs, workdir)
        report_intake(intake)
        drain = drain_backlog(drain_url, args.qclusters, args, procs)
        report_drain(drain, intake)

        print(f"3. replay capacity, no live traffic; load {loadavg()}", flush=True)
        capacity = replay_capacity(_copy_database(held_url, _sibling_url(url, "capacity")), args, procs)
        print(f"  {capacity.rate:.1f} events/s", flush=True)

        c_live = drain.rate_after_first or drain.rate
        ceiling = min(c_live, intake.rate)
        rate = args.live_rate or max(1.0, ceiling * args.live_fraction)
        print(
            f"4. live windows at L = {rate:.1f}/s"
            + (
                ""
                if args.live_rate
                else f" ({args.live_fraction} x min(C_live {c_live:.1f}, intake {intake.rate:.1f}))"
            )
            + f"; load {loadavg()}",
            flush=True,
        )
        live = live_windows(_copy_database(held_url, _sibling_url(url, "live")), activity, rate, args, procs)
    finally:
        procs.stop_all()
    load_end = loadavg()
    result = Result(capacity, drain, intake, live)
    print()
    report(result)
    print(f"load average at the start {load_start}, at the end {load_end}; by phase {live.load}")
    troubled = [
        path.name
        for path in sorted(workdir.glob("*.log"))
        if re.search(r"Traceback|ERROR|CRITICAL", path.read_text(errors="replace"))
    ]
    print(f"process logs in {workdir}" + (f"; errors logged by {', '.join(troubled)}" if troubled else ""))
    print_summary(facts, result, held, load_end)


if __name__ == "__main__":
    main()
