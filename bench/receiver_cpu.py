"""Where a webhook's CPU goes in the web process: in process, no HTTP server, no load generator.

    .venv/bin/python bench/receiver_cpu.py [--requests 3000] [--rounds 10]

Needs PostgreSQL (DATABASE_URL, default postgres://console:console@127.0.0.1:5432/console); creates
and migrates a scratch database `<name>_cpu`. Calls Django's WSGI handler directly and measures
process CPU time (user + system) per request, rounds interleaved so a slow patch of the machine
hits every variant alike:

- bare: the bench's bare view (same middleware, no work);
- receiver without storage: the webhook view with `store_verified_delivery` replaced by a stub;
- receiver: the real view, one prepared statement per webhook;
then the storage call alone: building its parameters, the prepared execute, and a prepared
`SELECT 1` on the same connection as the floor of one round trip.
"""

import argparse
import base64
import hashlib
import hmac
import io
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, bench_env, scratch_database

DOMAIN = "bench-store.myshopify.com"
SECRET = "bench-webhook-secret-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="requests per variant per round")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    url = scratch_database("cpu")
    env = bench_env(url)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=env, cwd=ROOT, check=True)
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shops",
            "add",
            DOMAIN,
            "--webhook-secret",
            SECRET,
            "--api-url",
            "http://127.0.0.1:1/x",
        ],
        env=env,
        cwd=ROOT,
        check=True,
    )
    os.environ.update(env, CONN_MAX_AGE="60", CONN_HEALTH_CHECKS="false")

    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.db import connections
    from django.utils import timezone

    import integrations.inbound.storage as storage_plans
    import integrations.inbound.views as receiver

    handler = WSGIHandler()
    body = json.dumps({"id": 5500000000000, "name": "#1042", "updated_at": "2026-05-04T10:15:04-04:00"}).encode()
    signature = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()

    def environ(post: bool) -> dict:
        env = {
            "REQUEST_METHOD": "POST" if post else "GET",
            "PATH_INFO": "/webhooks/shopify" if post else "/bench/bare",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "HTTP_HOST": "127.0.0.1",
            "REMOTE_ADDR": "127.0.0.1",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body if post else b""),
            "CONTENT_LENGTH": str(len(body)) if post else "",
        }
        if post:
            env.update(
                CONTENT_TYPE="application/json",
                HTTP_X_SHOPIFY_TOPIC="orders/create",
                HTTP_X_SHOPIFY_HMAC_SHA256=signature,
                HTTP_X_SHOPIFY_SHOP_DOMAIN=DOMAIN,
                HTTP_X_SHOPIFY_WEBHOOK_ID=str(uuid.uuid4()),
                HTTP_X_SHOPIFY_API_VERSION="2026-10",
            )
        return env

    statuses = []

    def start_response(status, headers):
        statuses.append(status)

    def cpu_per_request(post: bool, count: int) -> float:
        environs = [environ(post) for _ in range(count)]
        started = time.process_time()
        for env in environs:
            response = handler(env, start_response)
            b"".join(response)
            response.close()
        return (time.process_time() - started) / count * 1000

    real_store = receiver.store_verified_delivery

    def stub_store(event_fields, delivery_fields, **options):
        return 1, "accepted"

    cpu_per_request(False, 100)
    cpu_per_request(True, 100)
    figures = {"bare view": [], "receiver without storage": [], "receiver": []}
    for _ in range(args.rounds):
        figures["bare view"].append(cpu_per_request(False, args.requests))
        receiver.store_verified_delivery = stub_store
        figures["receiver without storage"].append(cpu_per_request(True, args.requests))
        receiver.store_verified_delivery = real_store
        figures["receiver"].append(cpu_per_request(True, args.requests))
    if any(not status.startswith("200") for status in statuses):
        sys.exit(f"unexpected answers: {sorted(set(statuses))}")

    db = connections["default"]
    db.ensure_connection()
    plan = storage_plans._insert_plan(db)
    storage = {"parameters": [], "prepared execute": [], "  with its time limit": [], "prepared SELECT 1": []}
    for _ in range(args.rounds):
        now = timezone.now()
        rows = []
        for _ in range(args.requests * 2):
            webhook_id = str(uuid.uuid4())
            rows.append(
                (
                    {"shop_id": 1, "webhook_id": webhook_id, "topic": "orders/create", "received_at": now},
                    {
                        "shop_id": 1,
                        "webhook_id": webhook_id,
                        "topic": "orders/create",
                        "received_at": now,
                        "shop_domain": DOMAIN,
                        "headers": {"X-Shopify-Topic": "orders/create", "X-Shopify-Webhook-Id": webhook_id},
                        "body": body,
                        "body_size": len(body),
                        "signature_valid": True,
                        "response_status": 200,
                    },
                )
            )
        started = time.process_time()
        params = [plan.params(event, delivery) for event, delivery in rows]
        built = time.process_time()
        for values in params[: args.requests]:
            storage_plans._execute_postgres(db, plan, values)
        executed = time.process_time()
        # What the view runs: statement and lock timeouts set and reset in the same pipeline.
        for values in params[args.requests :]:
            storage_plans._execute_postgres(db, plan, values, 3000)
        limited = time.process_time()
        raw = db.connection
        raw.prepare_threshold = sys.maxsize
        with raw.cursor() as cursor:
            for _ in range(args.requests):
                cursor.execute("SELECT 1", prepare=True)
                cursor.fetchone()
        raw.prepare_threshold = None
        done = time.process_time()
        storage["parameters"].append((built - started) / args.requests / 2 * 1000)
        storage["prepared execute"].append((executed - built) / args.requests * 1000)
        storage["  with its time limit"].append((limited - executed) / args.requests * 1000)
        storage["prepared SELECT 1"].append((done - limited) / args.requests * 1000)

    print(f"CPU per request in the web process, median of {args.rounds} interleaved rounds of {args.requests}:")
    for name, values in figures.items():
        print(f"  {name:28s} {statistics.median(values):.3f} ms")
    bare = statistics.median(figures["bare view"])
    print(f"  receiver / bare view         {statistics.median(figures['receiver']) / bare:.2f}x")
    print("the storage call alone:")
    for name, values in storage.items():
        print(f"  {name:28s} {statistics.median(values):.3f} ms")


if __name__ == "__main__":
    main()
