"""Event processing throughput against webhook intake, on gunicorn + qcluster + PostgreSQL.

    .venv/bin/python bench/processing_throughput.py [--events 10000] [--workers 4] [--q-workers 2]
        [--steady-seconds 120] [--quick]

Needs PostgreSQL (DATABASE_URL, default postgres://console:console@127.0.0.1:5432/console) and `wrk`.
In one run, on scratch databases `<name>_proc*`:

1. intake: N signed webhooks of six topics (orders created, paid and edited, product, stock and
   customer updates over a few thousand records) are stored through the real receiver (gunicorn,
   bench.settings) with wrk while no worker runs; the rate is counted from the stored Events.
2. drain: real `manage.py qcluster` processes (1, then 2) each drain an identical copy of that
   backlog; events/s from the moment they start until no event is left unfinished.
3. statements: per topic, a few hundred events of that topic alone are processed in this process
   (drain_in_process below) while every SQL statement Django sends is counted.
4. steady load: webhooks at a constant rate for --steady-seconds with 2 qclusters running: the
   backlog every 5 s and received-to-processed latency percentiles. The rate is half the 2-process
   drain rate, or half the intake rate if that is lower (webhooks cannot arrive faster than the
   receiver takes them, and this machine's cores are shared by sender, receiver and workers).

Prints every figure, then a summary block for docs/benchmarks.md. --quick is a smoke run.
"""

import argparse
import base64
import functools
import hashlib
import hmac
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, bench_env, scratch_database
from console.processes import stop_processes


# The one call into the worker's code, kept at the top because it is the line that moves: the
# event pump is being rewritten. Change these few lines, not their callers, when it moves again.
def drain_in_process() -> int:
    """One pass of the event pump in this process; returns how many events it handled.

    The new entry point is `Pump().run_once()` (one long-lived pump, as a worker runs it, so its
    heartbeat and recovery cost what they cost per second and not per pass); until that exists,
    fall back to the old `process_pending()`.
    """
    try:
        pump = _pump()
    except ImportError as exc:
        if exc.name != "integrations.processing.pump":
            raise  # the new pump exists but does not import: say so rather than measure the old one
        from integrations.processing.engine import process_pending

        return process_pending()
    return pump.run_once()


@functools.cache
def _pump():
    from integrations.processing.pump import Pump

    return Pump()


def drain_entry_point() -> str:
    import importlib.util

    if importlib.util.find_spec("integrations.processing.pump") is not None:
        return "integrations.processing.pump.Pump().run_once()"
    return "integrations.processing.engine.process_pending()"


PYTHON = sys.executable
DOMAIN = "bench-store.myshopify.com"
SECRET = "bench-webhook-secret-0123456789"
API_VERSION = "2026-10"
# Shares of a busy store's webhook traffic: stock and order edits dominate.
TOPIC_MIX = {
    "orders/create": 0.18,
    "orders/paid": 0.12,
    "orders/updated": 0.25,
    "products/update": 0.10,
    "inventory_levels/update": 0.25,
    "customers/update": 0.10,
}
# Anything else (queued, processing, claimed, retry_wait, whatever the pump calls it) is unfinished.
DONE = ("processed", "failed", "ignored")
UNFINISHED_SQL = "status NOT IN ('processed', 'failed', 'ignored')"
IDLE_PROBES = 10
POLL_SECONDS = 0.2
STOP_GRACE_SECONDS = 20
SHOP_TZ = timezone(timedelta(hours=-4))


# --- Webhooks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    webhook_id: str
    topic: str
    event_id: str
    triggered_at: str
    signature: str
    body: bytes

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Shopify-Topic": self.topic,
            "X-Shopify-Hmac-Sha256": self.signature,
            "X-Shopify-Shop-Domain": DOMAIN,
            "X-Shopify-Webhook-Id": self.webhook_id,
            "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Event-Id": self.event_id,
            "X-Shopify-Triggered-At": self.triggered_at,
        }


FIRST_NAMES = ("Ana", "Ben", "Chloé", "Dmitri", "Esi", "Farah", "Goran", "Hana", "Idris", "Jun", "Kai", "Lena")
LAST_NAMES = ("Okafor", "Silva", "Novak", "Tanaka", "Müller", "Haddad", "Kowalski", "Reyes", "Lindqvist", "Chen")
PRODUCT_WORDS = ("Mug", "Tote", "Beanie", "Notebook", "Candle", "Poster", "Socks", "Bottle", "Apron", "Scarf")
COLOURS = ("Blue", "Sand", "Forest", "Rust", "Charcoal", "Cream")
CITIES = (("Portland", "OR", "97205"), ("Austin", "TX", "78701"), ("Boston", "MA", "02108"), ("Denver", "CO", "80202"))


class ShopActivity:
    """A store's activity over time: orders placed, paid and edited, products repriced, stock
    moving, customers editing their details. Every webhook advances the clock by 1-3 s, so a
    record's updated_at only ever grows (and is never equal: Shopify's precision is a second)."""

    def __init__(self, rng: random.Random, *, products: int, customers: int, orders: int = 0) -> None:
        self.rng = rng
        self.clock = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
        self.item_id = 14_000_000_000_000
        self.products = [self._new_product(n) for n in range(products)]
        self.variants = [variant for product in self.products for variant in product["variants"]]
        self.locations = (70_500_000_001, 70_500_000_002)
        self.customers = [self._new_customer(n) for n in range(customers)]
        self.order_number = 1000
        self.orders: list[dict] = []
        self.unpaid: list[dict] = []
        for _ in range(orders):
            self._new_order()
        self.touched: set[tuple[str, int]] = set()

    # Records.

    def _time(self) -> str:
        return self.clock.astimezone(SHOP_TZ).isoformat(timespec="seconds")

    def _new_product(self, n: int) -> dict:
        word = PRODUCT_WORDS[n % len(PRODUCT_WORDS)]
        product_id = 8_100_000_000_000 + n
        variants = []
        for k in range(self.rng.randint(1, 4)):
            variant_id = 44_000_000_000_000 + n * 10 + k
            variants.append(
                {
                    "id": variant_id,
                    "product_id": product_id,
                    "title": COLOURS[k % len(COLOURS)],
                    "sku": f"{word[:4].upper()}-{n:04d}-{k}",
                    "price": f"{self.rng.randint(8, 90)}.{self.rng.choice(('00', '50', '95'))}",
                    "inventory_item_id": 46_000_000_000_000 + n * 10 + k,
                    "updated_at": self._time(),
                }
            )
        return {
            "id": product_id,
            "title": f"{COLOURS[n % len(COLOURS)]} {word} {n}",
            "handle": f"{word.lower()}-{n}",
            "vendor": "Bench Goods",
            "product_type": word,
            "status": "active",
            "tags": "",
            "created_at": self._time(),
            "variants": variants,
        }

    def _new_customer(self, n: int) -> dict:
        first, last = FIRST_NAMES[n % len(FIRST_NAMES)], LAST_NAMES[(n * 7) % len(LAST_NAMES)]
        city, province, zip_code = CITIES[n % len(CITIES)]
        return {
            "id": 7_000_000_000_000 + n,
            "email": f"{first.lower()}.{last.lower()}.{n}@example.com",
            "first_name": first,
            "last_name": last,
            "phone": f"+1503555{n % 10000:04d}",
            "tags": "",
            "created_at": self._time(),
            "address": {"city": city, "province_code": province, "zip": zip_code},
        }

    def _new_order(self) -> dict:
        self.order_number += 1
        items = []
        for variant in self.rng.sample(self.variants, k=min(len(self.variants), self.rng.randint(1, 4))):
            self.item_id += 1
            items.append((self.item_id, variant, self.rng.randint(1, 3)))
        order = {
            "id": 5_500_000_000_000 + self.order_number,
            "number": self.order_number,
            "customer": self.rng.choice(self.customers),
            "items": items,
            "financial_status": "pending",
            "fulfillment_status": None,
            "tags": "",
            "note": None,
            "created_at": self._time(),
        }
        self.orders.append(order)
        self.unpaid.append(order)
        return order

    # Payloads, shaped like Shopify's (trimmed: real order webhooks carry more of the same).

    def _customer_payload(self, customer: dict) -> dict:
        address = customer["address"]
        return {
            "id": customer["id"],
            "admin_graphql_api_id": f"gid://shopify/Customer/{customer['id']}",
            "email": customer["email"],
            "first_name": customer["first_name"],
            "last_name": customer["last_name"],
            "phone": customer["phone"],
            "state": "enabled",
            "verified_email": True,
            "tags": customer["tags"],
            "currency": "USD",
            "created_at": customer["created_at"],
            "updated_at": self._time(),
            "default_address": {
                "customer_id": customer["id"],
                "first_name": customer["first_name"],
                "last_name": customer["last_name"],
                "address1": "12 Pine St",
                "city": address["city"],
                "province_code": address["province_code"],
                "country_code": "US",
                "zip": address["zip"],
                "default": True,
            },
        }

    def _order_payload(self, order: dict) -> dict:
        customer = order["customer"]
        lines = [
            {
                "id": item_id,
                "admin_graphql_api_id": f"gid://shopify/LineItem/{item_id}",
                "variant_id": variant["id"],
                "product_id": variant["product_id"],
                "sku": variant["sku"],
                "title": variant["sku"].split("-")[0].title(),
                "variant_title": variant["title"],
                "quantity": quantity,
                "price": variant["price"],
                "grams": 300,
                "requires_shipping": True,
                "taxable": True,
                "fulfillment_status": order["fulfillment_status"],
                "vendor": "Bench Goods",
            }
            for item_id, variant, quantity in order["items"]
        ]
        subtotal = sum(float(variant["price"]) * quantity for _, variant, quantity in order["items"])
        tax = round(subtotal * 0.06, 2)
        address = {
            "first_name": customer["first_name"],
            "last_name": customer["last_name"],
            "address1": "12 Pine St",
            "city": customer["address"]["city"],
            "province_code": customer["address"]["province_code"],
            "zip": customer["address"]["zip"],
            "country_code": "US",
        }
        return {
            "id": order["id"],
            "admin_graphql_api_id": f"gid://shopify/Order/{order['id']}",
            "name": f"#{order['number']}",
            "order_number": order["number"],
            "confirmation_number": f"BX{order['number']:07d}",
            "email": customer["email"],
            "contact_email": customer["email"],
            "created_at": order["created_at"],
            "processed_at": order["created_at"],
            "updated_at": self._time(),
            "financial_status": order["financial_status"],
            "fulfillment_status": order["fulfillment_status"],
            "currency": "USD",
            "presentment_currency": "USD",
            "subtotal_price": f"{subtotal:.2f}",
            "total_tax": f"{tax:.2f}",
            "total_discounts": "0.00",
            "total_price": f"{subtotal + tax + 5:.2f}",
            "taxes_included": False,
            "tags": order["tags"],
            "note": order["note"],
            "source_name": "web",
            "test": False,
            "customer": {
                "id": customer["id"],
                "admin_graphql_api_id": f"gid://shopify/Customer/{customer['id']}",
                "email": customer["email"],
                "first_name": customer["first_name"],
                "last_name": customer["last_name"],
                "state": "enabled",
                "verified_email": True,
            },
            "billing_address": address,
            "shipping_address": address,
            "line_items": lines,
            "shipping_lines": [{"code": "Standard", "price": "5.00", "title": "Standard"}],
            "tax_lines": [{"price": f"{tax:.2f}", "rate": 0.06, "title": "State tax"}],
        }

    # Topics.

    def orders_create(self) -> dict:
        order = self._new_order()
        self.touched.add(("order", order["id"]))
        return self._order_payload(order)

    def orders_paid(self) -> dict:
        pool = self.unpaid or self.orders
        order = pool.pop(self.rng.randrange(len(pool))) if pool is self.unpaid else self.rng.choice(pool)
        order["financial_status"] = "paid"
        self.touched.add(("order", order["id"]))
        return self._order_payload(order)

    def orders_updated(self) -> dict:
        order = self.rng.choice(self.orders)
        change = self.rng.random()
        if change < 0.4 and order["financial_status"] == "paid":
            order["fulfillment_status"] = "fulfilled"
        elif change < 0.7:
            order["tags"] = self.rng.choice(("", "gift", "vip", "wholesale, vip"))
        else:
            order["note"] = self.rng.choice((None, "Leave at the door", "Call on arrival"))
        self.touched.add(("order", order["id"]))
        return self._order_payload(order)

    def products_update(self) -> dict:
        product = self.rng.choice(self.products)
        if self.rng.random() < 0.5:
            variant = self.rng.choice(product["variants"])
            variant["price"] = f"{self.rng.randint(8, 90)}.{self.rng.choice(('00', '50', '95'))}"
            variant["updated_at"] = self._time()
        self.touched.add(("product", product["id"]))
        self.touched.update(("variant", variant["id"]) for variant in product["variants"])
        return {
            **{key: value for key, value in product.items() if key != "variants"},
            "admin_graphql_api_id": f"gid://shopify/Product/{product['id']}",
            "updated_at": self._time(),
            "published_scope": "global",
            "options": [{"name": "Colour", "position": 1, "values": [v["title"] for v in product["variants"]]}],
            "variants": [
                {
                    **variant,
                    "admin_graphql_api_id": f"gid://shopify/ProductVariant/{variant['id']}",
                    "position": position,
                    "inventory_policy": "deny",
                    "taxable": True,
                    "requires_shipping": True,
                }
                for position, variant in enumerate(product["variants"], 1)
            ],
            "images": [],
        }

    def inventory_levels_update(self) -> dict:
        variant = self.rng.choice(self.variants)
        location = self.rng.choice(self.locations)
        self.touched.add(("level", variant["inventory_item_id"] * 10 + self.locations.index(location)))
        gid = f"gid://shopify/InventoryLevel/{location}?inventory_item_id={variant['inventory_item_id']}"
        return {
            "inventory_item_id": variant["inventory_item_id"],
            "location_id": location,
            "available": self.rng.randint(0, 80),
            "updated_at": self._time(),
            "admin_graphql_api_id": gid,
        }

    def customers_update(self) -> dict:
        customer = self.rng.choice(self.customers)
        if self.rng.random() < 0.5:
            customer["tags"] = self.rng.choice(("", "newsletter", "vip"))
        else:
            customer["phone"] = f"+1503555{self.rng.randrange(10000):04d}"
        self.touched.add(("customer", customer["id"]))
        return self._customer_payload(customer)

    # Webhooks.

    def webhook(self, topic: str) -> Webhook:
        self.clock += timedelta(seconds=self.rng.uniform(1.0, 3.0))
        payload = getattr(self, topic.replace("/", "_"))()
        body = json.dumps(payload, separators=(",", ":")).encode()
        signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
        triggered = self.clock.strftime("%Y-%m-%dT%H:%M:%S.") + f"{self.rng.randrange(10**9):09d}Z"
        return Webhook(self._uuid(), topic, self._uuid(), triggered, signature, body)

    def mixed(self, count: int) -> list[Webhook]:
        topics, weights = list(TOPIC_MIX), list(TOPIC_MIX.values())
        webhooks = []
        for _ in range(count):
            topic = self.rng.choices(topics, weights)[0]
            if topic in ("orders/paid", "orders/updated") and not self.orders:
                topic = "orders/create"
            webhooks.append(self.webhook(topic))
        return webhooks

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def topic_only_activity(topic: str, count: int, seed: int) -> ShopActivity:
    """Records for `count` events of one topic: about half of them hit a record an earlier event
    created. Except orders/create (every order is new) and orders/paid (an order is paid once)."""
    rng = random.Random(f"{seed}-{topic}")
    half = max(1, count // 2)
    if topic == "orders/paid":
        return ShopActivity(rng, products=20, customers=50, orders=count)
    if topic == "orders/updated":
        return ShopActivity(rng, products=20, customers=50, orders=half)
    if topic == "products/update":
        return ShopActivity(rng, products=half, customers=1)
    if topic == "inventory_levels/update":  # 2.5 variants per product, 2 locations
        return ShopActivity(rng, products=max(1, count // 10), customers=1)
    if topic == "customers/update":
        return ShopActivity(rng, products=1, customers=half)
    return ShopActivity(rng, products=20, customers=50)


# --- wrk ------------------------------------------------------------------------------------

# Each thread sends its own slice of the file (lines n, n+T, n+2T ...) exactly once, then stops
# when all of its webhooks are answered; a connection that is free meanwhile asks for the bare
# view, whose answer is told apart by its body "ok". (wrk's own summary then covers a few bare
# requests too; the intake rate is counted from the database, not from wrk.)
WRK_LUA = r"""
local counter = 0

function setup(thread)
  thread:set("index", counter)
  counter = counter + 1
end

function init(args)
  local file, domain, version, nthreads = args[1], args[2], args[3], tonumber(args[4])
  local index = tonumber(wrk.thread:get("index"))
  queue, position, answered, primed = {}, 0, 0, false
  local n = 0
  for line in io.lines(file) do
    if n % nthreads == index then
      local id, topic, event_id, triggered, sig, body =
        line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t(.*)$")
      queue[#queue + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["X-Shopify-Topic"] = topic,
        ["X-Shopify-Hmac-Sha256"] = sig,
        ["X-Shopify-Shop-Domain"] = domain,
        ["X-Shopify-Webhook-Id"] = id,
        ["X-Shopify-API-Version"] = version,
        ["X-Shopify-Event-Id"] = event_id,
        ["X-Shopify-Triggered-At"] = triggered,
      }, body)
    end
    n = n + 1
  end
  filler = wrk.format("GET", "/bench/bare")
  if #queue == 0 then wrk.thread:stop() end
end

function request()
  -- wrk calls request() once on thread 1's state before sending anything, to check the script,
  -- and drops the answer: give every thread's first call the bare view, so no webhook is lost.
  if not primed then
    primed = true
    return filler
  end
  if position < #queue then
    position = position + 1
    return queue[position]
  end
  return filler
end

function response(status, headers, body)
  if body ~= "ok" then
    answered = answered + 1
    if answered >= #queue then wrk.thread:stop() end
  end
end
"""


def _write_requests(webhooks: list[Webhook], directory: Path) -> Path:
    path = directory / "webhooks.tsv"
    with path.open("w") as out:
        for w in webhooks:
            out.write(f"{w.webhook_id}\t{w.topic}\t{w.event_id}\t{w.triggered_at}\t{w.signature}\t{w.body.decode()}\n")
    return path


def _latency_ms(output: str, percentile: str) -> float | None:
    found = re.search(rf"{percentile}\s+([\d.]+)(us|ms|s)\b", output)
    if not found:
        return None
    return float(found.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[found.group(2)]


# --- Databases and processes ----------------------------------------------------------------


def _sibling_url(url: str, suffix: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path}_{suffix}"))


def _db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _admin_url(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def _copy_database(template_url: str, target_url: str) -> str:
    """(Re)create target as a copy of template, after ending every connection to the template.

    On PostgreSQL 15+ with FILE_COPY: it checkpoints before it returns, where the default
    (WAL_LOG) writes the whole copy into the WAL and leaves the flushing to a checkpoint that may
    fall in the middle of the next measurement."""
    template, target = _db_name(template_url), _db_name(target_url)
    with psycopg.connect(_admin_url(template_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [template],
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        strategy = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
        conn.execute(f'CREATE DATABASE "{target}" TEMPLATE "{template}"{strategy}')
    return target_url


def _statuses(conn: psycopg.Connection) -> Counter:
    return Counter(dict(conn.execute("SELECT status, count(*) FROM integrations_event GROUP BY status").fetchall()))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Processes:
    """Every process this run starts, so each is stopped whatever happens."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.running: list[subprocess.Popen] = []

    def gunicorn(self, url: str, workers: int, label: str) -> tuple[subprocess.Popen, int]:
        port = _free_port()
        command = [
            str(Path(PYTHON).parent / "gunicorn"),
            "console.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--worker-class",
            "sync",
            "--keep-alive",
            "5",
            "--log-level",
            "error",
        ]
        process = self._start(command, bench_env(url), f"{label}-gunicorn.log")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, port
            if process.poll() is not None:
                break
            time.sleep(0.2)
        sys.exit(f"gunicorn did not start; see {self.logs / f'{label}-gunicorn.log'}")

    def qclusters(
        self, url: str, count: int, q_workers: int, label: str, *, senders: int = 0
    ) -> list[subprocess.Popen]:
        # Event processing only by default: the calls the push jobs queue are not sent (the shops
        # here point at no Admin API; bench/outbound_throughput.py measures sending, bench/soak.py
        # runs both).
        env = {**bench_env(url), "Q_WORKERS": str(q_workers), "OUTBOUND_SENDER_THREADS": str(senders)}
        return [
            self._start([PYTHON, "manage.py", "qcluster"], env, f"{label}-qcluster-{n}.log")
            for n in range(1, count + 1)
        ]

    def _start(self, command: list[str], env: dict, log_name: str) -> subprocess.Popen:
        with (self.logs / log_name).open("ab") as log:
            process = subprocess.Popen(
                command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.running.append(process)
        return process

    def stop(self, processes: list[subprocess.Popen]) -> None:
        """SIGTERM each main process (qcluster stops its own children in order), SIGKILL the
        group of any still there after STOP_GRACE_SECONDS: devstack's and the tests' own way."""
        stop_processes(processes, timeout=STOP_GRACE_SECONDS)
        for process in processes:
            if process in self.running:
                self.running.remove(process)

    def stop_all(self) -> None:
        self.stop(list(self.running))


def _run(command: list[str], env: dict) -> None:
    subprocess.run(command, env=env, cwd=ROOT, check=True)


# --- 1. Intake ------------------------------------------------------------------------------


@dataclass
class Intake:
    sent: int
    stored: int
    rejected: int
    span: float  # first to last received_at
    busy: int  # events counted for the rate: all but the tail, when connections fall idle one by one
    busy_span: float
    wall: float
    p50_ms: float | None
    p99_ms: float | None
    non2xx: int
    socket_errors: str

    @property
    def rate(self) -> float:
        return self.busy / self.busy_span if self.busy_span > 0 else 0.0


def store_backlog(url: str, webhooks: list[Webhook], args, procs: Processes, workdir: Path) -> Intake:
    requests_file = _write_requests(webhooks, workdir)
    script = workdir / "webhooks.lua"
    script.write_text(WRK_LUA)
    gunicorn, port = procs.gunicorn(url, args.workers, "intake")
    base = f"http://127.0.0.1:{port}"
    try:
        subprocess.run(
            ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", "2s", f"{base}/bench/bare"],
            capture_output=True,
            check=True,
        )  # warm-up: every gunicorn worker has imported the views
        command = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", "3600s", "--latency"]
        command += ["-s", str(script), f"{base}/webhooks/shopify", "--", str(requests_file), DOMAIN, API_VERSION]
        command += [str(args.threads)]
        with psycopg.connect(url, autocommit=True) as conn:
            started = time.monotonic()
            wrk = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            stored, changed = 0, started
            while stored < len(webhooks) and wrk.poll() is None:
                time.sleep(POLL_SECONDS)
                count = conn.execute("SELECT count(*) FROM integrations_event").fetchone()[0]
                if count != stored:
                    stored, changed = count, time.monotonic()
                elif time.monotonic() - changed > 5:
                    print(f"  intake stalled at {stored} of {len(webhooks)} stored events", flush=True)
                    break
            wall = changed - started
            wrk.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
            output = wrk.communicate(timeout=30)[0]
            received = [row[0] for row in conn.execute("SELECT received_at FROM integrations_event ORDER BY 1")]
            rejected = conn.execute(
                "SELECT count(*) FROM integrations_delivery WHERE response_status <> 200"
            ).fetchone()
    finally:
        procs.stop([gunicorn])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: (.+)", output)
    # The last `connections` webhooks go out as connections fall idle, and one of them may wait
    # seconds for a TCP reconnect (sync gunicorn closes every connection; on loopback a new one
    # sometimes meets the old one's TIME_WAIT and the SYN is retried 1 s, 3 s later): only the
    # webhooks stored while every connection was busy make the rate.
    busy = max(0, len(received) - args.connections - 1)
    (workdir / "intake-wrk.txt").write_text(output)
    return Intake(
        sent=len(webhooks),
        stored=len(received),
        rejected=rejected[0],
        span=(received[-1] - received[0]).total_seconds() if received else 0.0,
        busy=busy,
        busy_span=(received[busy] - received[0]).total_seconds() if busy else 0.0,
        wall=wall,
        p50_ms=_latency_ms(output, "50%"),
        p99_ms=_latency_ms(output, "99%"),
        non2xx=int(non2xx.group(1)) if non2xx else 0,
        socket_errors=errors.group(1) if errors else "none",
    )


# --- 2. Draining the backlog ----------------------------------------------------------------


@dataclass
class Drain:
    qclusters: int
    total: int
    done: int
    elapsed: float
    first_done_after: float | None
    timed_out: bool
    statuses: Counter
    processed_span: float | None
    last_processed_after: float | None  # to the second's fraction, where `elapsed` is a poll tick

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def rate_after_first(self) -> float | None:
        if self.first_done_after is None or self.elapsed <= self.first_done_after:
            return None
        return self.done / (self.elapsed - self.first_done_after)


def drain_backlog(url: str, qclusters: int, args, procs: Processes, *, senders: int = 0) -> Drain:
    with psycopg.connect(url, autocommit=True) as conn:
        poll = f"SELECT count(*) FILTER (WHERE {UNFINISHED_SQL}), count(*) FROM integrations_event"  # noqa: S608
        unfinished, total = conn.execute(poll).fetchone()
        started, started_at = time.monotonic(), datetime.now(UTC)
        workers = procs.qclusters(url, qclusters, args.q_workers, f"drain{qclusters}", senders=senders)
        first_done_after, timed_out, tick = None, False, 0
        try:
            while unfinished:
                tick += 1
                time.sleep(max(0.0, started + tick * POLL_SECONDS - time.monotonic()))
                unfinished = conn.execute(poll).fetchone()[0]
                elapsed = time.monotonic() - started
                if first_done_after is None and unfinished < total:
                    first_done_after = elapsed
                if any(worker.poll() is not None for worker in workers):
                    print(f"  a qcluster exited early; see {procs.logs}", flush=True)
                    timed_out = True
                    break
                if unfinished and elapsed > args.drain_timeout:
                    timed_out = True
                    break
            elapsed = time.monotonic() - started
        finally:
            procs.stop(workers)
        statuses = _statuses(conn)
        first, last = conn.execute("SELECT min(processed_at), max(processed_at) FROM integrations_event").fetchone()
    return Drain(
        qclusters=qclusters,
        total=total,
        done=total - unfinished,
        elapsed=elapsed,
        first_done_after=first_done_after,
        timed_out=timed_out,
        statuses=statuses,
        processed_span=(last - first).total_seconds() if first and last else None,
        last_processed_after=(last - started_at).total_seconds() if last else None,
    )


# --- 3. Statements per event ----------------------------------------------------------------


@dataclass
class TopicStatements:
    topic: str
    events: int
    records: int
    done: int
    unfinished: int
    statements: Counter
    transactions: int | None
    seconds: float

    @property
    def commits_per_event(self) -> float:
        return self.transactions / self.done if self.done and self.transactions is not None else 0.0

    @property
    def ms_per_event(self) -> float:
        return self.seconds * 1000 / self.done if self.done else 0.0

    def per_event(self, *kinds: str) -> float:
        counted = sum(self.statements[k] for k in kinds) if kinds else sum(self.statements.values())
        return counted / self.done if self.done else 0.0


SAVEPOINT_KINDS = ("SAVEPOINT", "RELEASE", "ROLLBACK")


def _statement_kind(sql: str) -> str:
    word = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else "?"
    return word if word in ("SELECT", "INSERT", "UPDATE", "DELETE", *SAVEPOINT_KINDS) else "OTHER"


def _committed(admin_url: str, name: str) -> int:
    """pg_stat_database.xact_commit for a database, once the counter has settled (a backend
    reports its counts when it exits, a moment after the connection is closed)."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        query = "SELECT xact_commit FROM pg_stat_database WHERE datname = %s"
        value, deadline = conn.execute(query, [name]).fetchone()[0], time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.3)
            again = conn.execute(query, [name]).fetchone()[0]
            if again == value:
                break
            value = again
    return value


def count_statements(empty_url: str, per_topic: int, seed: int) -> list[TopicStatements]:
    url = _sibling_url(empty_url.removesuffix("_empty"), "stmt")
    _copy_database(empty_url, url)
    os.environ.update(bench_env(url))
    import django

    # whitenoise warns that collectstatic never ran; static files play no part here.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    django.setup()
    from django.db import connections
    from django.test import Client

    connection = connections["default"]
    admin, name = _admin_url(url), _db_name(url)
    results = []
    for topic in TOPIC_MIX:
        connections.close_all()
        _copy_database(empty_url, url)
        activity = topic_only_activity(topic, per_topic, seed)
        client = Client()
        for webhook in (activity.webhook(topic) for _ in range(per_topic)):
            response = client.post(
                "/webhooks/shopify", data=webhook.body, content_type="application/json", headers=webhook.headers()
            )
            if response.status_code != 200:
                sys.exit(f"the receiver answered {response.status_code} to a {topic} webhook: {response.content!r}")
        connections.close_all()
        before = _committed(admin, name)
        statements: Counter = Counter()

        def count(execute, sql, params, many, context, statements=statements):
            # An executemany runs one statement per row on the server (psycopg pipelines them into
            # one round trip): count each row, so the figure is what PostgreSQL executes.
            params = list(params) if many else params
            statements[_statement_kind(sql)] += len(params) if many else 1
            return execute(sql, params, many, context)

        started = time.perf_counter()
        with connection.execute_wrapper(count):
            idle = 0
            while idle < 2:  # two empty passes in a row: nothing is left that is due
                idle = 0 if drain_in_process() else idle + 1
        seconds = time.perf_counter() - started
        connections.close_all()
        transactions = _committed(admin, name) - before
        with psycopg.connect(url, autocommit=True) as conn:
            statuses = _statuses(conn)
        done = sum(statuses[status] for status in DONE)
        results.append(
            TopicStatements(
                topic=topic,
                events=per_topic,
                records=len(activity.touched),
                done=done,
                unfinished=sum(statuses.values()) - done,
                statements=statements,
                transactions=transactions,
                seconds=seconds,
            )
        )
    connections.close_all()
    return results


# --- 4. Steady load -------------------------------------------------------------------------


@dataclass
class Steady:
    rate: float
    seconds: float
    sent: int
    answered: Counter
    achieved_rate: float
    max_late: float
    duration: float
    samples: list[tuple[float, int]] = field(default_factory=list)
    ready_after: float | None = None
    latencies: list[float] = field(default_factory=list)  # inf: never processed
    statuses: Counter = field(default_factory=Counter)
    idle_latencies: list[float] = field(default_factory=list)  # one webhook at a time into idle pumps

    def third_means(self) -> tuple[float, float] | None:
        if not self.samples:
            return None
        third = max(1, len(self.samples) // 3)
        values = [backlog for _, backlog in self.samples]
        return statistics.fmean(values[:third]), statistics.fmean(values[-third:])

    @property
    def flat(self) -> bool | None:
        means = self.third_means()
        # Some slack: a backlog of a second's arrivals is noise, not growth.
        return None if means is None else means[1] <= means[0] * 1.5 + self.rate

    def slope(self) -> float | None:
        if len(self.samples) < 2:
            return None
        return statistics.linear_regression([t for t, _ in self.samples], [b for _, b in self.samples]).slope

    @property
    def p95_met(self) -> bool:
        p95 = self.percentile(0.95)
        return p95 is not None and p95 < 2

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _paced_send(port: int, webhooks: list[Webhook], rate: float, clients: int) -> tuple[Counter, float, float, float]:
    """Send each webhook at its own scheduled moment (start + i / rate) from `clients` threads,
    whatever the answers' latency; returns the answers, the achieved rate, the worst lateness and
    how long it took."""
    lock = threading.Lock()
    state = {"next": 0, "max_late": 0.0, "last": 0.0}
    answers: Counter = Counter()
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
            late = time.monotonic() - due
            webhook = webhooks[index]
            try:
                conn.request("POST", "/webhooks/shopify", body=webhook.body, headers=webhook.headers())
                response = conn.getresponse()
                response.read()
                answer = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                answer = type(exc).__name__
            with lock:
                answers[answer] += 1
                state["max_late"] = max(state["max_late"], late)
                state["last"] = max(state["last"], time.monotonic())
        conn.close()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    sent = sum(answers.values())
    span = state["last"] - start
    return answers, (sent / span if span > 0 else 0.0), state["max_late"], span


def steady_load(empty_url: str, activity: ShopActivity, rate: float, args, procs: Processes) -> Steady:
    url = _copy_database(empty_url, _sibling_url(empty_url.removesuffix("_empty"), "steady"))
    webhooks = activity.mixed(max(1, round(rate * args.steady_seconds)))
    warm_up = activity.mixed(20)
    workers = procs.qclusters(url, 2, args.q_workers, "steady")
    gunicorn, port = procs.gunicorn(url, args.workers, "steady")
    started = time.monotonic()
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            unfinished = f"SELECT count(*) FROM integrations_event WHERE {UNFINISHED_SQL}"  # noqa: S608

            def wait_until_done(timeout: float) -> bool:
                deadline = time.monotonic() + timeout
                while conn.execute(unfinished).fetchone()[0]:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(POLL_SECONDS)
                return True

            # Warm-up: the pumps are running and the web workers have served the receiver.
            _paced_send(port, warm_up, rate=20, clients=2)
            ready = wait_until_done(90)
            ready_after = time.monotonic() - started if ready else None
            base_id = conn.execute("SELECT coalesce(max(id), 0) FROM integrations_event").fetchone()[0]

            sent: list = []
            sender = threading.Thread(
                target=lambda: sent.extend(_paced_send(port, webhooks, rate, args.steady_clients)), daemon=True
            )
            window_start = time.monotonic()
            sender.start()
            samples, tick = [], 0
            while sender.is_alive():
                sender.join(timeout=max(0.0, window_start + (tick + 1) * 5 - time.monotonic()))
                if sender.is_alive() or time.monotonic() - window_start >= (tick + 1) * 5 - 0.5:
                    tick += 1
                    samples.append((tick * 5.0, conn.execute(unfinished).fetchone()[0]))
            wait_until_done(args.drain_timeout)
            last_id = conn.execute("SELECT coalesce(max(id), 0) FROM integrations_event").fetchone()[0]
            rows = conn.execute(
                "SELECT status, extract(epoch FROM processed_at - received_at) FROM integrations_event "
                "WHERE id > %s AND id <= %s",
                [base_id, last_id],
            ).fetchall()
            # Idle pumps: one webhook at a time, 1.5 s apart, each into an empty queue.
            idle = []
            for probe in activity.mixed(IDLE_PROBES):
                time.sleep(1.5)
                _paced_send(port, [probe], rate=1, clients=1)
                wait_until_done(10)
                latency = conn.execute(
                    "SELECT extract(epoch FROM processed_at - received_at) FROM integrations_event "
                    "ORDER BY id DESC LIMIT 1"
                ).fetchone()[0]
                idle.append(float(latency) if latency is not None else math.inf)
    finally:
        procs.stop([*workers, gunicorn])
    return Steady(
        rate=rate,
        seconds=args.steady_seconds,
        sent=len(webhooks),
        answered=sent[0],
        achieved_rate=sent[1],
        max_late=sent[2],
        duration=sent[3],
        samples=samples,
        ready_after=ready_after,
        latencies=[float(latency) if latency is not None else math.inf for _, latency in rows],
        statuses=Counter(status for status, _ in rows),
        idle_latencies=idle,
    )


# --- Reporting ------------------------------------------------------------------------------


def _git_state() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    revision = git("rev-parse", "--short", "HEAD") or "unknown"
    changed = git("status", "--porcelain", "--", "integrations", "console")
    if not changed:
        return revision
    return f"{revision} + {len(changed.splitlines())} uncommitted file(s) in integrations/, console/"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} ms"


def _s(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "never (unprocessed)" if math.isinf(value) else f"{value:.2f} s"


def _statuses_text(statuses: Counter) -> str:
    parts = [f"{statuses[s]} {s}" for s in DONE]
    parts += [f"{n} {s}" for s, n in sorted(statuses.items()) if s not in DONE]
    return ", ".join(parts)


def _ratio(drain: Drain, intake: Intake) -> float:
    return drain.rate / intake.rate if intake.rate else 0.0


def _plural(n: int) -> str:
    return f"{n} qcluster{'s' if n != 1 else ''}"


def report_intake(intake: Intake) -> None:
    print(
        f"intake (no worker): {intake.rate:.1f} stored/s ({intake.busy} events in {intake.busy_span:.2f} s of "
        f"received_at while all connections were busy); all {intake.stored} of {intake.sent} stored within "
        f"{intake.span:.2f} s, wall clock to the last one {intake.wall:.2f} s; "
        f"{intake.rejected} rejected deliveries, {intake.non2xx} non-2xx answers, wrk socket errors: "
        f"{intake.socket_errors}; wrk p50 {_ms(intake.p50_ms)} / p99 {_ms(intake.p99_ms)}",
        flush=True,
    )


def report_drain(drain: Drain, intake: Intake) -> None:
    after_first = f", {drain.rate_after_first:.1f}/s after it" if drain.rate_after_first else ""
    print(
        f"drain, {_plural(drain.qclusters)}: {drain.done} of {drain.total} events finished in {drain.elapsed:.1f} s"
        f"{' (TIMED OUT)' if drain.timed_out else ''} = {drain.rate:.1f} events/s from the workers' start; "
        f"first event after {_s(drain.first_done_after)}{after_first}; last processed_at "
        f"{_s(drain.last_processed_after)} after the start, {_s(drain.processed_span)} after the first; ratio to intake {_ratio(drain, intake):.2f} (target >= 0.5)\n"
        f"  final statuses: {_statuses_text(drain.statuses)}",
        flush=True,
    )


def report_statements(rows: list[TopicStatements]) -> None:
    print("statements per event, in process (Django's cursor; savepoint = SAVEPOINT + RELEASE + ROLLBACK TO):")
    for row in rows:
        print(
            f"  {row.topic:24} {row.per_event():5.1f} statements/event ({row.per_event(*SAVEPOINT_KINDS):4.1f} "
            f"savepoint, {row.per_event('SELECT'):4.1f} SELECT, {row.per_event('INSERT'):4.1f} INSERT, "
            f"{row.per_event('UPDATE'):4.1f} UPDATE, {row.per_event('DELETE'):3.1f} DELETE, "
            f"{row.per_event('OTHER'):3.1f} other); {row.commits_per_event:4.2f} commits/event; "
            f"{row.ms_per_event:5.2f} ms/event; {row.done} of {row.events} done over {row.records} records"
            + (f", {row.unfinished} UNFINISHED" if row.unfinished else ""),
            flush=True,
        )


def report_steady(steady: Steady) -> None:
    print(
        f"steady load: {steady.sent} webhooks at {steady.rate:.1f}/s for {steady.seconds:.0f} s with 2 qclusters "
        f"(achieved {steady.achieved_rate:.1f}/s over {steady.duration:.0f} s, worst send "
        f"{steady.max_late * 1000:.0f} ms late; answers "
        f"{dict(steady.answered)}); workers ready after {_s(steady.ready_after)}",
        flush=True,
    )
    if steady.achieved_rate < 0.95 * steady.rate:
        print("  NOTE: the sender fell behind its schedule (this process, gunicorn and the workers share the cores)")
    print("  backlog every 5 s: " + " ".join(str(backlog) for _, backlog in steady.samples))
    if means := steady.third_means():
        print(
            f"  backlog mean first third {means[0]:.1f}, last third {means[1]:.1f}, trend {steady.slope() or 0:+.2f} "
            f"events/s: {'flat' if steady.flat else 'GROWING'}"
        )
    print(
        f"  received -> processed for {len(steady.latencies)} events: p50 {_s(steady.percentile(0.5))}, "
        f"p95 {_s(steady.percentile(0.95))}, p99 {_s(steady.percentile(0.99))} (target p95 < 2 s: "
        f"{'met' if steady.p95_met else 'NOT met'}); statuses {_statuses_text(steady.statuses)}",
        flush=True,
    )
    if steady.idle_latencies:
        print(
            f"  idle pumps, {len(steady.idle_latencies)} single webhooks 1.5 s apart: received -> processed "
            f"median {_s(statistics.median(steady.idle_latencies))}, worst {_s(max(steady.idle_latencies))} "
            f"(target < 1 s: {'met' if max(steady.idle_latencies) < 1 else 'NOT met'})",
            flush=True,
        )


def print_summary(facts: str, args, intake: Intake, drains: list[Drain], rows: list[TopicStatements], steady) -> None:
    print("\n----- summary (for docs/benchmarks.md) -----")
    print(f"{facts}\n")
    print("| measure | figure |")
    print("| --- | --- |")
    print(
        f"| intake, no worker running | {intake.rate:.0f} stored/s while all {args.connections} connections were busy "
        f"({intake.stored} of {intake.sent} stored) |"
    )
    for drain in drains:
        print(
            f"| drain, {_plural(drain.qclusters)} | {drain.rate:.1f} events/s"
            f"{' (timed out)' if drain.timed_out else ''} = **{_ratio(drain, intake):.2f}x intake** (target >= 0.5); "
            f"first event after {_s(drain.first_done_after)}; {_statuses_text(drain.statuses)} |"
        )
    means = steady.third_means()
    backlog = f"{means[0]:.1f} → {means[1]:.1f} ({'flat' if steady.flat else 'growing'})" if means else "n/a"
    print(
        f"| steady load, {steady.rate:.1f}/s for {steady.seconds:.0f} s (achieved {steady.achieved_rate:.1f}/s), "
        f"2 qclusters | backlog {backlog}; received → processed p50 "
        f"{_s(steady.percentile(0.5))} / p95 {_s(steady.percentile(0.95))} / p99 {_s(steady.percentile(0.99))} "
        f"(p95 < 2 s: {'met' if steady.p95_met else 'not met'}) |"
    )
    if steady.idle_latencies:
        print(
            f"| idle pumps, {len(steady.idle_latencies)} single webhooks | received → processed median "
            f"{_s(statistics.median(steady.idle_latencies))}, worst {_s(max(steady.idle_latencies))} (< 1 s: "
            f"{'met' if max(steady.idle_latencies) < 1 else 'not met'}) |"
        )
    print()
    print("| topic | statements/event | savepoint | SELECT | INSERT | UPDATE | commits/event | ms/event in process |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row.topic} | {row.per_event():.1f} | {row.per_event(*SAVEPOINT_KINDS):.1f} | "
            f"{row.per_event('SELECT'):.1f} | {row.per_event('INSERT'):.1f} | {row.per_event('UPDATE'):.1f} | "
            f"{row.commits_per_event:.2f} | {row.ms_per_event:.2f} |"
        )


# --- Main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, help="webhooks in the backlog (default 10000; --quick 2000)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers (default 4)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections for the intake (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads for the intake (default 2)")
    parser.add_argument("--q-workers", type=int, default=2, help="Q_WORKERS per qcluster process (default 2)")
    parser.add_argument("--drain-timeout", type=float, help="give a drain up after this many s (default 200; quick 90)")
    parser.add_argument("--statement-events", type=int, help="events per topic, statements (default 300; quick 100)")
    parser.add_argument("--steady-seconds", type=float, help="length of the steady window (default 120; quick 20)")
    parser.add_argument(
        "--steady-fraction", type=float, default=0.5, help="of min(2-process drain rate, intake rate) (default 0.5)"
    )
    parser.add_argument("--steady-rate", type=float, help="webhooks/s in the steady window (instead of the fraction)")
    parser.add_argument("--steady-clients", type=int, default=8, help="sender threads in the steady window (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="for the generated store activity (default 1)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2,000 events, 20 s steady window")
    args = parser.parse_args()
    args.events = args.events or (2000 if args.quick else 10000)
    args.drain_timeout = args.drain_timeout or (90 if args.quick else 200)
    args.statement_events = args.statement_events or (100 if args.quick else 300)
    args.steady_seconds = args.steady_seconds or (20 if args.quick else 120)
    return args


def main() -> None:
    args = parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")
    load = os.getloadavg()
    url = scratch_database("proc")
    with psycopg.connect(url, autocommit=True) as conn:
        pg_version = conn.execute("SHOW server_version").fetchone()[0].split()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    health_checks = os.environ.get("CONN_HEALTH_CHECKS", "unset (on)")
    facts = (
        f"Machine: {os.cpu_count()} cores, load average {load[0]:.2f} at the start; Python "
        f"{platform.python_version()}, PostgreSQL {pg_version} (synchronous_commit {sync_commit}); "
        f"{datetime.now(UTC):%Y-%m-%d}; code {_git_state()}, in-process entry point {drain_entry_point()}.\n"
        f"Parameters: {args.events} webhooks; gunicorn {args.workers} sync workers, wrk -t{args.threads} "
        f"-c{args.connections}, CONN_HEALTH_CHECKS {health_checks}; qcluster Q_WORKERS={args.q_workers}; "
        f"{args.statement_events} events per topic for statements; steady window {args.steady_seconds:.0f} s at "
        + (f"{args.steady_rate}/s" if args.steady_rate else f"{args.steady_fraction} x min(2-process drain, intake)")
        + f", {args.steady_clients} sender threads."
    )
    print(facts, flush=True)

    env = bench_env(url)
    _run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], env)
    _run(
        [PYTHON, "manage.py", "shops", "add", DOMAIN, "--webhook-secret", SECRET, "--api-url", "http://127.0.0.1:1/x"],
        env,
    )
    empty_url = _copy_database(url, _sibling_url(url, "empty"))  # migrated, one shop, no events

    activity = ShopActivity(
        random.Random(args.seed), products=max(10, args.events // 40), customers=max(20, args.events // 20)
    )
    backlog = activity.mixed(args.events)
    topics = Counter(webhook.topic for webhook in backlog)
    sizes = [len(webhook.body) for webhook in backlog]
    kinds = Counter(kind for kind, _ in activity.touched)
    print(
        f"backlog: {len(backlog)} webhooks over {len(activity.touched)} distinct records ("
        + ", ".join(f"{n} {kind}s" for kind, n in sorted(kinds.items()))
        + f"); body median {statistics.median(sizes):.0f} B, max {max(sizes)} B\n  topics: "
        + ", ".join(f"{topic} {topics[topic]}" for topic in TOPIC_MIX),
        flush=True,
    )

    workdir = Path(tempfile.mkdtemp(prefix="processing-bench-"))
    procs = Processes(workdir)
    try:
        intake = store_backlog(url, backlog, args, procs, workdir)
        report_intake(intake)
        # Both rounds drain an identical copy of the stored backlog.
        copies = [(n, _copy_database(url, _sibling_url(url, f"drain{n}"))) for n in (1, 2)]
        drains = []
        for n, copy_url in copies:
            drains.append(drain_backlog(copy_url, n, args, procs))
            report_drain(drains[-1], intake)
        rows = count_statements(empty_url, args.statement_events, args.seed)
        report_statements(rows)
        capacity = min(drains[-1].rate, intake.rate)
        rate = args.steady_rate or max(1.0, capacity * args.steady_fraction)
        if not args.steady_rate:
            print(
                f"steady rate: {args.steady_fraction} x {capacity:.1f}/s (the lower of the 2-process drain rate "
                f"{drains[-1].rate:.1f}/s and the intake rate {intake.rate:.1f}/s) = {rate:.1f}/s",
                flush=True,
            )
        steady = steady_load(empty_url, activity, rate, args, procs)
        report_steady(steady)
    finally:
        procs.stop_all()
    troubled = [
        path.name
        for path in sorted(workdir.glob("*.log"))
        if re.search(r"Traceback|ERROR|CRITICAL", path.read_text(errors="replace"))
    ]
    print(f"process logs in {workdir}" + (f"; errors logged by {', '.join(troubled)}" if troubled else ""))
    print_summary(facts, args, intake, drains, rows, steady)


if __name__ == "__main__":
    main()
