"""Worksheet compare (issue 13): 10,000 records compared against the simulator with throttling on
at Shopify's standard GraphQL rates, wall time as a multiple of the minimum the rate limit
allows, and peak memory at 1,000 and 10,000 records.

    .venv/bin/python bench/worksheet_compare.py [--records 10000] [--small 1000] [--scale 5]
        [--bucket 2000] [--restore 100] [--resource products|customers] [--batch N]
        [--database-url postgres://...] [--quick] [--keep]
        [--row-writes bulk_update|per-row|executemany] [--report-lag]   # what-ifs

Sets Django up itself on a throwaway SQLite file in a temporary directory (or, with
--database-url, a scratch PostgreSQL database `<name>_worksheets` next to the one given), starts
the real simulator process (`manage.py shopify_simulator`) on a free port and creates one
simulated store holding at least --records products (the simulator seeds 30% of its records as
products, 30% customers, 40% orders). The platform's copy is built from the simulator's own
records, as tests/worksheets/conftest.py does (integrations.jobs.fields.RESOURCES), with
divergences on purpose: every 50th record has another title, every 50th another vendor, every
50th its tags in another order (equal once normalised), every 100th is missing on the platform,
and every 200th worksheet key is a record Shopify does not have (a platform-only row).

The compare runs in this process, as the worker runs it: `create_worksheet` by an admin, then
`start_compare` (with the queue call stubbed out) and `services.run_compare(worksheet_id)`,
timed around run_compare only. Each size runs on a fresh worksheet.

Phases, all in one run, against the same simulated store:

1. machine baseline, throttling off: (a) the same `nodes(ids:)` reads, batch by batch, through the
   console's AdminClient and nothing else; (b) the whole compare of --records records. Both show
   what the machine does when the rate limit costs nothing.
2. rate-limited, timed: the store's GraphQL bucket is Shopify's standard one, --bucket points
   (2000), and its restore rate --restore x --scale points/s (100 x 5 = 500/s: the run is --scale
   times shorter than at Shopify's real 100/s). Only the restore rate is scaled: the bucket and
   every query's cost stay Shopify's, so the share of the run the initial burst covers is the same
   as in production (scaling the maximum too would let a 40,000-point bucket hold the whole
   10,000-point run). The console's throttle model starts from the settings (2000 / 100) and
   learns the real restore rate from the first throttleStatus, as in production. The compare runs
   for --small and for --records records.
3. memory: the same two compares again with tracemalloc started just before run_compare and
   stopped just after (tracemalloc slows Python down, so these runs are not the timed ones).

The rate-limit minimum of a run: the compare's reads cost C points (the sum of the simulator's
actualQueryCost over the answers); the bucket starts full, and the reconcile lane may use it down
to OUTBOUND_LIVE_RESERVE of its maximum, so U = maximum x (1 - reserve) points go at once and the
rest restores at R points/s: minimum = max(0, C - U) / R. Reported: wall / minimum (target <=
1.25x); the same against the whole bucket (C - maximum) / R for reference; records/s next to the
machine baseline; and where the time went (waiting for the throttle, HTTP, the rest of the loop).

What-if options (patched in this process only; services.py itself is not changed), see the docs
section for what they showed:
  --row-writes bulk_update|per-row  how run_compare writes a batch's rows: the default is what
      services.py does since 53aada0 (executemany: one parametrised UPDATE statement executed for
      every row of the batch, in one transaction); bulk_update is what it did before (one CASE
      WHEN per field and row), per-row one queryset UPDATE per row.
  --report-lag  the throttle model takes Shopify's reported level as of halfway through the
      request instead of when the answer was read.
"""

import argparse
import gc
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import SimulatorControl  # noqa: E402
from console.processes import stop_processes  # noqa: E402

PYTHON = sys.executable
TOKEN = "shpat_worksheet_bench"
SECRET = "worksheet-bench-webhook-secret"
DOMAIN = "bench-worksheets.myshopify.com"
TARGET_RATIO = 1.25
TARGET_MEMORY_GROWTH = 1.25  # "flat": the 10,000-record peak within 1.25x of the 1,000-record one
REST_KINDS = {"products": "product", "customers": "customer"}
GHOST_EVERY = 200  # every 200th key: a record Shopify does not have


def log(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_average() -> str:
    try:
        return "/".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# --- setup --------------------------------------------------------------------------------------


def configure(database_url: str | None, workdir: Path) -> str:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
        from bench.common import scratch_database

        url = scratch_database("worksheets")
    else:
        url = f"sqlite:///{workdir / 'worksheets.sqlite3'}"
    os.environ.update(
        DJANGO_SETTINGS_MODULE="console.settings",
        DATABASE_URL=url,
        DEBUG="false",
        SECRET_KEY="bench-worksheets-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        # The simulator's records are dated 2025: none is within the minimum age anyway.
        WORKSHEET_MIN_AGE_SECONDS="0",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    return url


class Simulator(SimulatorControl):
    control_timeout = 300  # listing 30,000 records a page at a time

    def records(self, kind: str) -> list[dict]:
        items, offset = [], 0
        while True:
            page = self.control("GET", f"/shops/{DOMAIN}/records/{kind}", params={"limit": 1000, "offset": offset})
            items += page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                return items

    def limits(self, **body) -> dict:
        return self.control("PUT", f"/shops/{DOMAIN}/limits", json=body)


def build_platform(shop, kind_name: str, records: list[dict], count: int) -> list[str]:
    """The platform's copy of the first records, made to diverge; returns the worksheet keys."""
    from django.utils import timezone
    from django.utils.dateparse import parse_datetime

    from integrations.jobs.fields import RESOURCES

    resource_map = RESOURCES[REST_KINDS[kind_name]]
    gid_type = resource_map.gid_type
    ghosts = count // GHOST_EVERY
    real = records[: count - ghosts]
    if len(real) < count - ghosts:
        raise SystemExit(f"the simulator has {len(records)} {kind_name}, {count - ghosts} needed")
    synced = timezone.now() - timedelta(hours=1)
    rows, keys = [], []
    top = max(int(r["id"]) for r in records)
    real_iter = iter(enumerate(real))
    for position in range(1, count + 1):
        if position % GHOST_EVERY == 0:
            # Shopify has no such record; the platform has one (a copy of a real one, another id).
            source = real[position % len(real)]
            ghost_id = top + 1_000_000 + position
            values = resource_map.values(source, None)
            values["gid"] = f"gid://shopify/{gid_type}/{ghost_id}"
            rows.append(
                resource_map.model(
                    shop=shop, shopify_id=ghost_id, shopify_updated_at=synced, synced_at=synced, **values
                )
            )
            keys.append(f"gid://shopify/{gid_type}/{ghost_id}")
            continue
        n, record = next(real_iter)
        keys.append(record["admin_graphql_api_id"])
        if n % 100 == 4:
            continue  # missing on the platform
        values = resource_map.values(record, None)
        if n % 50 == 1:
            if "title" in values:
                values["title"] = f"{values['title']} (old)"
            else:
                values["first_name"] = f"{values.get('first_name') or ''}x"
        elif n % 50 == 2:
            values["tags"] = ", ".join(reversed([t.strip() for t in (values.get("tags") or "").split(",")]))
        elif n % 50 == 3:
            if "vendor" in values:
                values["vendor"] = "Another Vendor"
            else:
                values["last_name"] = f"{values.get('last_name') or ''}y"
        updated = parse_datetime(record.get("updated_at") or "") or synced
        rows.append(
            resource_map.model(
                shop=shop, shopify_updated_at=updated, synced_at=synced, **resource_map.key_of(record), **values
            )
        )
    resource_map.model.objects.bulk_create(rows, batch_size=1000)
    return keys


# --- instrumentation ----------------------------------------------------------------------------


@dataclass
class Stats:
    requests: int = 0
    throttled: int = 0
    requested: int = 0
    actual: int = 0
    http: float = 0.0  # seconds in AdminClient.graphql
    slept: float = 0.0  # seconds read_shopify slept waiting for the throttle
    waits: int = 0  # reservations refused (each followed by a sleep)
    reserve: float = 0.0  # seconds in the throttle's reserve/report (database round trips)
    finish: float = 0.0  # seconds in plan_hash (after the loop)
    writes: float = 0.0  # seconds writing the compared rows (services._update_rows)
    first_request: float | None = None
    last_answer: float | None = None
    sleeps: list[float] = field(default_factory=list)


STATS = Stats()


class TimeAt:
    """The time module, except that time() answers a fixed moment."""

    def __init__(self, at: float) -> None:
        self.at = at

    def time(self) -> float:
        return self.at

    def __getattr__(self, name):
        return getattr(time, name)


def per_row_update(model, objs, fields) -> int:
    from django.db import router, transaction

    specs = [model._meta.get_field(name) for name in fields]
    with transaction.atomic(using=router.db_for_write(model), savepoint=False):
        for obj in objs:
            model.objects.filter(pk=obj.pk).update(**{f.attname: getattr(obj, f.attname) for f in specs})
    return len(objs)


def instrument(report_lag: bool, row_writes: str) -> None:
    """Wrap what run_compare calls so the run can say where its time went (class-level wrappers
    in this process; nothing is written to services.py)."""
    from incidents.worksheets import services
    from integrations.outbound import client as client_module
    from integrations.outbound import throttle as throttle_module

    graphql = client_module.AdminClient.graphql

    def timed_graphql(self, document, variables=None):
        started = time.perf_counter()
        if STATS.first_request is None:
            STATS.first_request = started
        reply = graphql(self, document, variables)
        STATS.last_answer = time.perf_counter()
        STATS.http += STATS.last_answer - started
        STATS.requests += 1
        if reply.http_status == 429 or "THROTTLED" in reply.error_codes:
            STATS.throttled += 1
        else:
            STATS.requested += int(reply.requested_cost or 0)
            STATS.actual += int(reply.actual_cost or 0)
        return reply

    client_module.AdminClient.graphql = timed_graphql

    reserve = throttle_module.DatabaseThrottle.reserve
    report = throttle_module.DatabaseThrottle.report

    def timed_reserve(self, shop_id, cost, *, bulk):
        started = time.perf_counter()
        wait = reserve(self, shop_id, cost, bulk=bulk)
        STATS.reserve += time.perf_counter() - started
        if wait > 0:
            STATS.waits += 1
        return wait

    def timed_report(self, shop_id, reply, *, call_id, started):
        t = time.perf_counter()
        if report_lag:
            # What-if: the level Shopify reports was measured while the request ran, not when the
            # answer was read. Taking the report as of halfway between the request's start and
            # now (the model restores from there) halves the lag the round trip adds.
            midpoint = (started + time.time()) / 2
            throttle_module.time = TimeAt(midpoint)
            try:
                report(self, shop_id, reply, call_id=call_id, started=started)
            finally:
                throttle_module.time = time
        else:
            report(self, shop_id, reply, call_id=call_id, started=started)
        STATS.reserve += time.perf_counter() - t

    throttle_module.DatabaseThrottle.reserve = timed_reserve
    throttle_module.DatabaseThrottle.report = timed_report

    class Clock:
        """services.time: the time module, with sleep counted."""

        def __getattr__(self, name):
            return getattr(time, name)

        def sleep(self, seconds):
            STATS.slept += seconds
            STATS.sleeps.append(seconds)
            time.sleep(seconds)

    services.time = Clock()

    plan_hash = services.plan_hash

    def timed_plan_hash(worksheet):
        started = time.perf_counter()
        try:
            return plan_hash(worksheet)
        finally:
            STATS.finish += time.perf_counter() - started

    services.plan_hash = timed_plan_hash

    from incidents.worksheets.models import WorksheetRow

    update_rows = services._update_rows  # what services.py does: one executemany UPDATE a batch
    writer = {"executemany": update_rows,
              "bulk_update": lambda objs, fields: WorksheetRow.objects.bulk_update(objs, fields),
              "per-row": lambda objs, fields: per_row_update(WorksheetRow, objs, fields)}[row_writes]  # fmt: skip

    def timed_update_rows(objs, fields):
        started = time.perf_counter()
        try:
            return writer(objs, fields)
        finally:
            STATS.writes += time.perf_counter() - started

    services._update_rows = timed_update_rows
    services._queue = lambda *args: None  # run_compare is called here, not on the worker


def reset_stats() -> None:
    global STATS
    STATS = Stats()


# --- runs ---------------------------------------------------------------------------------------


@dataclass
class Run:
    label: str
    records: int
    wall: float
    stats: Stats
    proposals: dict
    rss_growth_kb: int
    peak_bytes: int | None = None

    @property
    def rate(self) -> float:
        return self.records / self.wall if self.wall else math.nan


def compare(shop, user, kind_name: str, keys: list[str], label: str, *, memory: bool = False) -> Run:
    from collections import Counter

    from incidents.worksheets import services
    from incidents.worksheets.models import Worksheet

    worksheet = services.create_worksheet(
        shop=shop, resource=kind_name, by=user, ids_text="\n".join(keys), title=f"bench {label}"
    )
    services.start_compare(worksheet, by=user)
    reset_stats()
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if memory:
        tracemalloc.start()
    started = time.perf_counter()
    done = services.run_compare(worksheet.pk)
    wall = time.perf_counter() - started
    peak = None
    if memory:
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    worksheet.refresh_from_db()
    if not done or worksheet.state != Worksheet.State.COMPARED:
        raise SystemExit(f"{label}: compare did not finish ({worksheet.state}, {worksheet.progress_note})")
    proposals = dict(Counter(worksheet.rows.values_list("kind", flat=True)))
    return Run(label, len(keys), wall, STATS, proposals, rss_growth, peak)


def raw_reads(shop, kind_name: str, keys: list[str], batch: int) -> tuple[float, Stats]:
    """The compare's reads alone: the same nodes(ids:) documents through AdminClient, one after another."""
    from incidents.worksheets.resources import KINDS
    from integrations.outbound.client import AdminClient

    kind = KINDS[kind_name]
    client = AdminClient(shop)
    reset_stats()
    started = time.perf_counter()
    for at in range(0, len(keys), batch):
        reply = client.graphql(kind.document, {"ids": keys[at : at + batch]})
        if reply.failure():
            raise SystemExit(f"raw read failed: {reply.failure()}")
    return time.perf_counter() - started, STATS


def fresh_throttle(shop, simulator: Simulator, bucket: float, restore: float, throttling: bool) -> None:
    """Before a run: the store's bucket full (waited for), the console's model back to its start."""
    from integrations.models import ShopThrottle

    simulator.limits(graphql_maximum=bucket, graphql_restore_rate=restore, throttling=throttling)
    if throttling:
        deadline = time.monotonic() + bucket / restore + 30
        while time.monotonic() < deadline:
            status = simulator.control("GET", f"/shops/{DOMAIN}")
            available = (status.get("graphql_bucket") or {}).get("currentlyAvailable")
            if available is None:
                time.sleep(bucket / restore + 0.2)
                break
            if available >= bucket - 1:
                break
            time.sleep(0.1)
    ShopThrottle.objects.filter(pk=shop.pk).delete()


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=10_000, help="records in the large compare (default 10000)")
    parser.add_argument("--small", type=int, default=1_000, help="records in the small compare (default 1000)")
    parser.add_argument("--scale", type=float, default=5.0, help="restore rate multiplier (default 5)")
    parser.add_argument("--bucket", type=float, default=2000.0, help="GraphQL bucket maximum (default 2000)")
    parser.add_argument("--restore", type=float, default=100.0, help="Shopify's restore rate, points/s (default 100)")
    parser.add_argument("--resource", choices=sorted(REST_KINDS), default="products")
    parser.add_argument("--batch", type=int, help="WORKSHEET_READ_BATCH for the run (default: the setting)")
    parser.add_argument("--database-url", help="PostgreSQL server to use (a scratch database is made on it)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3,000 and 1,000 records")
    parser.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    parser.add_argument(
        "--row-writes",
        choices=["bulk_update", "per-row", "executemany"],
        default="executemany",
        help="what-if: how the compared rows are written (default: executemany, as services.py)",
    )
    parser.add_argument("--report-lag", action="store_true", help="what-if: take the reported level as of mid-request")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (database, log)")
    args = parser.parse_args()
    if args.quick:
        args.records, args.small = 3_000, 1_000

    load_start = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="worksheet-bench-"))
    database = configure(args.database_url, workdir)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from console import roles
    from incidents.worksheets.resources import KINDS
    from incidents.worksheets.services import node_cost
    from integrations.models import Shop

    if args.batch:
        settings.WORKSHEET_READ_BATCH = args.batch
    settings.WORKSHEET_MAX_RECORDS = max(settings.WORKSHEET_MAX_RECORDS, args.records)
    batch = max(1, min(250, settings.WORKSHEET_READ_BATCH))
    instrument(args.report_lag, args.row_writes)
    kind = KINDS[args.resource]
    per_record = node_cost(kind)
    restore = args.restore * args.scale
    reserve = settings.OUTBOUND_LIVE_RESERVE
    usable = args.bucket * (1 - reserve)
    db_name = "SQLite" if database.startswith("sqlite") else "PostgreSQL"
    log(
        f"{args.records:,} and {args.small:,} {args.resource} ({per_record} point{'s' * (per_record != 1)} a record, {batch} a read = "
        f"{batch * per_record} points); bucket {args.bucket:g} points, restore {args.restore:g}/s x {args.scale:g} = "
        f"{restore:g}/s; live reserve {reserve:.0%} (the reconcile lane may use {usable:g} of a full bucket at once)"
    )
    log(
        f"machine: {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}, {db_name}; "
        f"load average {load_start} at start; work dir {workdir}"
    )
    what_if = [name for name, on in (
        (f"row writes {args.row_writes}", args.row_writes != "executemany"),
        ("throttle report as of mid-request", args.report_lag),
    ) if on]  # fmt: skip
    log(f"what-if patches: {', '.join(what_if) if what_if else 'none (services.py as it is)'}")

    processes: list[subprocess.Popen] = []
    try:
        port = free_port()
        out = (workdir / "sim.log").open("w")
        sim_process = subprocess.Popen(
            [PYTHON, str(ROOT / "manage.py"), "shopify_simulator", "--host", "127.0.0.1", "--port", str(port)],
            env=os.environ.copy(),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        processes.append(sim_process)
        simulator = Simulator(port)
        simulator.wait_ready(sim_process)

        t = time.perf_counter()
        needed = args.records - args.records // GHOST_EVERY
        seeded = math.ceil(needed / 0.3) + 100  # 30% of the seeded records are products (and 30% customers)
        simulator.control(
            "POST",
            "/shops",
            json={"domain": DOMAIN, "token": TOKEN, "webhook_secret": SECRET, "records": seeded, "seed": 13,
                  "graphql_maximum": args.bucket, "graphql_restore_rate": restore, "throttling": False},
        )  # fmt: skip
        records = simulator.records(args.resource)
        shop = Shop.objects.create(
            domain=DOMAIN, api_url=f"{simulator.url}/{DOMAIN}", access_token=TOKEN, webhook_secret=SECRET
        )
        keys = build_platform(shop, args.resource, records, args.records)
        del records
        user = get_user_model().objects.create_user("bench-admin", "bench-admin@example.com", "x")
        user.groups.add(Group.objects.get(name=roles.ADMIN))
        log(
            f"store: {seeded:,} records seeded ({len(keys) - len(keys) // GHOST_EVERY:,} of its {args.resource} in the "
            f"worksheet, {len(keys) // GHOST_EVERY} keys Shopify lacks); platform copy built in "
            f"{time.perf_counter() - t:.1f} s"
        )

        # 1. The machine, throttling off.
        fresh_throttle(shop, simulator, args.bucket, restore, throttling=False)
        log(f"\n[1/3] machine baseline, throttling off: {len(keys):,} records read, then compared ...")
        raw_wall, raw_stats = raw_reads(shop, args.resource, keys, batch)
        fresh_throttle(shop, simulator, args.bucket, restore, throttling=False)
        machine = compare(shop, user, args.resource, keys, "unthrottled")

        # 2. Rate-limited, timed.
        timed = []
        for size in (args.small, args.records):
            fresh_throttle(shop, simulator, args.bucket, restore, throttling=True)
            log(f"[2/3] throttled compare of {size:,} records ...")
            timed.append(compare(shop, user, args.resource, keys[:size], f"throttled {size}"))

        # 3. Memory.
        memory = []
        if not args.no_memory:
            for size in (args.small, args.records):
                fresh_throttle(shop, simulator, args.bucket, restore, throttling=True)
                log(f"[3/3] throttled compare of {size:,} records under tracemalloc ...")
                memory.append(compare(shop, user, args.resource, keys[:size], f"memory {size}", memory=True))
    finally:
        stop_processes(processes)
    load_end = load_average()

    # --- report ---------------------------------------------------------------------------------
    def minimum(run: Run, whole: bool = False) -> float:
        initial = args.bucket if whole else usable
        return max(0.0, run.stats.actual - initial) / restore

    allowed = restore / per_record  # records/s the restore rate allows once the burst is spent
    print()
    print(
        f"Raw reads, throttling off: {len(keys):,} records in {raw_stats.requests} nodes(ids:) reads, "
        f"{raw_wall:.2f} s = {len(keys) / raw_wall:,.0f} records/s ({raw_wall / raw_stats.requests * 1000:.1f} ms a read)"
    )
    print(
        f"Compare, throttling off: {machine.records:,} records in {machine.wall:.2f} s = {machine.rate:,.0f} records/s "
        f"(HTTP {machine.stats.http:.2f} s, row writes {machine.stats.writes:.2f} s, throttle model "
        f"{machine.stats.reserve:.2f} s, plan hash {machine.stats.finish:.2f} s, the rest "
        f"{machine.wall - machine.stats.http - machine.stats.writes - machine.stats.finish - machine.stats.reserve:.2f} s)"
    )
    print(
        f"Rate limit: {restore:g} points/s restore / {per_record} point{'s' * (per_record != 1)} a record = {allowed:,.0f} records/s once the "
        f"burst of {usable:g} points is spent; the machine does {machine.rate / allowed:.1f}x that."
    )
    if machine.rate < 1.5 * allowed:
        print(
            f"NOTE: the unthrottled compare is less than 1.5x the rate the scaled limit allows, so the throttled runs "
            f"measure this machine more than the pacing: at Shopify's own {args.restore:g}/s (--scale 1) the limit "
            f"allows {args.restore / per_record:,.0f} records/s."
        )
    print()
    print(
        f"{'':22} {'records':>7} {'wall s':>7} {'points':>7} {'minimum s':>9} {'wall/min':>8} {'whole bkt':>9} "
        f"{'records/s':>9} {'slept s':>7} {'waits':>5} {'HTTP s':>6} {'writes s':>8} {'hash s':>6} {'throttled':>9}"
    )
    for run in timed:
        low, whole = minimum(run), minimum(run, whole=True)
        ratio_cell = f"{run.wall / low:.3f}x" if low else "burst"
        whole_cell = f"{run.wall / whole:.3f}x" if whole else "burst"
        print(
            f"{run.label:22} {run.records:>7,} {run.wall:>7.2f} {run.stats.actual:>7,} {low:>9.2f} {ratio_cell:>8} "
            f"{whole_cell:>9} {run.rate:>9,.0f} {run.stats.slept:>7.2f} {run.stats.waits:>5} {run.stats.http:>6.2f} "
            f"{run.stats.writes:>8.2f} {run.stats.finish:>6.2f} {run.stats.throttled:>9}"
        )
    print(
        "(points: actualQueryCost summed over the answers; minimum = (points - "
        f"{usable:g}) / {restore:g}: the bucket above the live reserve at once, the rest as it restores; whole bkt: "
        f"wall / ((points - {args.bucket:g}) / {restore:g}); burst: the whole run fits in the initial burst)"
    )
    big = timed[-1]
    big_min = minimum(big)
    ratio = big.wall / big_min if big_min else math.nan
    loop_other = big.wall - big.stats.slept - big.stats.http - big.stats.writes - big.stats.finish - big.stats.reserve
    print(
        f"{big.records:,} records: {big.wall:.2f} s = {ratio:.3f}x the rate-limit minimum {big_min:.2f} s; "
        f"{big.rate:,.0f} records/s against {allowed:,.0f} allowed and {machine.rate:,.0f} unthrottled "
        f"(throttled / unthrottled wall {big.wall / machine.wall:.2f}x); the time: slept {big.stats.slept:.2f} s, "
        f"HTTP {big.stats.http:.2f} s, row writes {big.stats.writes:.2f} s, throttle model {big.stats.reserve:.2f} s, plan hash {big.stats.finish:.2f} s, "
        f"the rest of the loop {loop_other:.2f} s"
    )
    met_time = ratio <= TARGET_RATIO
    print(f"target wall <= {TARGET_RATIO}x the rate-limit minimum: {'MET' if met_time else 'NOT MET'} ({ratio:.3f}x)")
    print(f"rows: {dict(sorted(big.proposals.items()))}")

    met_memory = None
    if memory:
        small_mem, big_mem = memory
        growth = big_mem.peak_bytes / small_mem.peak_bytes
        met_memory = growth <= TARGET_MEMORY_GROWTH
        print()
        print(f"{'':22} {'records':>7} {'tracemalloc peak':>16} {'maxrss growth':>13}")
        for run in memory:
            print(
                f"{run.label:22} {run.records:>7,} {run.peak_bytes / 1e6:>13.2f} MB {run.rss_growth_kb / 1024:>10.1f} MB"
            )
        print(
            f"peak {big_mem.records:,} / {small_mem.records:,}: {growth:.2f}x; target flat (<= {TARGET_MEMORY_GROWTH}x): "
            f"{'MET' if met_memory else 'NOT MET'}"
        )
    print(f"load average {load_start} at start, {load_end} at the end")

    # --- summary for docs/benchmarks.md ---------------------------------------------------------
    print("\n--- summary (markdown) ---")
    print(
        f"- {args.resource}, batch {batch}, bucket {args.bucket:g}, restore {args.restore:g}/s x {args.scale:g} = "
        f"{restore:g}/s, {db_name}, what-if: {', '.join(what_if) or 'none'}, load {load_start} → {load_end}"
    )
    print("| run | records | wall | points | rate-limit minimum | wall / minimum | records/s | throttled |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(
        f"| unthrottled compare | {machine.records:,} | {machine.wall:.2f} s | {machine.stats.actual:,} | - | - | "
        f"{machine.rate:,.0f} | - |"
    )
    print(f"| unthrottled raw reads | {len(keys):,} | {raw_wall:.2f} s | {raw_stats.actual:,} | - | - | "
          f"{len(keys) / raw_wall:,.0f} | - |")  # fmt: skip
    for run in timed:
        low = minimum(run)
        cell = f"**{run.wall / low:.3f}x**" if low else "within the burst"
        print(
            f"| throttled | {run.records:,} | {run.wall:.2f} s | {run.stats.actual:,} | {low:.2f} s | {cell} | "
            f"{run.rate:,.0f} | {run.stats.throttled} |"
        )
    if memory:
        print(
            f"- tracemalloc peak around run_compare: {memory[0].peak_bytes / 1e6:.2f} MB at {memory[0].records:,}, "
            f"{memory[1].peak_bytes / 1e6:.2f} MB at {memory[1].records:,} ({growth:.2f}x)"
        )
    print(
        f"- targets: wall ≤ {TARGET_RATIO}x minimum {'met' if met_time else 'NOT met'} ({ratio:.3f}x); memory flat "
        f"{'met' if met_memory else 'not measured' if met_memory is None else 'NOT met'}"
    )
    if args.keep:
        print(f"kept {workdir}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
