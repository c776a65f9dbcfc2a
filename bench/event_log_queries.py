"""Event-log page timings at 10,000 and 1,000,000 events on PostgreSQL.

    .venv/bin/python bench/event_log_queries.py [--small 10000] [--large 1000000] [--repeat 30]

Creates a scratch database `<name>_eventlog`, fills it with SQL (generate_series) to the small
size, times each page through Django's full request path (test client, logged in as support),
grows the table to the large size and times the same pages again. Prints p50/p95 per page and
the large/small ratio. Targets: p95 under 150 ms at the large size, within 2x of the small size.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, bench_env, print_page_table, scratch_database, time_pages

TOPICS = [
    "orders/create",
    "orders/updated",
    "orders/paid",
    "products/update",
    "inventory_levels/update",
    "customers/update",
]
STATUSES = ["processed"] * 90 + ["failed"] * 4 + ["queued"] * 3 + ["ignored"] * 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()

    url = scratch_database("eventlog")
    os.environ.update(bench_env(url))
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env=os.environ, cwd=ROOT, check=True)

    import django

    django.setup()
    from django.contrib.auth.models import Group, User
    from django.db import connection
    from django.test import Client

    from integrations.models import Shop

    shops = [
        Shop.objects.create(domain=f"bench-{n}.myshopify.com", webhook_secret=f"secret-{n}-xxxxxxxx") for n in range(20)
    ]
    user = User.objects.create(username="bench-support")
    user.groups.add(Group.objects.get(name="support"))
    client = Client()
    client.force_login(user)

    results = {}
    for size in (args.small, args.large):
        started = time.monotonic()
        _fill(connection, shops, size)
        print(f"filled to {size:,} events in {time.monotonic() - started:.0f}s", flush=True)
        results[size] = _time_pages(client, shops, size, args.repeat)

    print_page_table(results[args.small], results[args.large])
    print(
        f"\nsmall = {args.small:,} events, large = {args.large:,} events; {args.repeat} requests per page; PostgreSQL"
    )


def _fill(connection, shops, size: int) -> None:
    """Insert events (and 1% rejected deliveries) with ids continuing from what is there."""
    shop_ids = [shop.id for shop in shops]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM integrations_event")
        have = cursor.fetchone()[0]
        if have >= size:
            return
        cursor.execute(
            """
            INSERT INTO integrations_event (
                shop_id, webhook_id, event_id, topic, api_version, triggered_at, received_at, last_delivery_at,
                delivery_count, status, status_reason, processed_count, resource_gid, resource_id, resource_label,
                resource_updated_at, redaction_note, triage_state, tags, claimed_by, processed_at)
            SELECT
                (%(shops)s::bigint[])[1 + (i %% %(nshops)s)],
                md5(i::text), 'ev-' || i, (%(topics)s::text[])[1 + (i %% 6)], '2026-10',
                now() - ((%(size)s - i) || ' seconds')::interval,
                now() - ((%(size)s - i) || ' seconds')::interval,
                now() - ((%(size)s - i) || ' seconds')::interval,
                1 + (i %% 50 = 0)::int,
                (%(statuses)s::text[])[1 + (i %% 100)],
                '', 1, 'gid://shopify/Order/' || (5500000000000 + i / 3), (5500000000000 + i / 3)::text,
                '#' || (1000 + i / 3), now(), '', 'open', '', '',
                CASE WHEN (%(statuses)s::text[])[1 + (i %% 100)] = 'processed' THEN now() END
            FROM generate_series(%(start)s, %(end)s) AS i
            """,
            {
                "shops": shop_ids,
                "nshops": len(shop_ids),
                "topics": TOPICS,
                "statuses": STATUSES,
                "size": size,
                "start": have + 1,
                "end": size,
            },
        )
        cursor.execute(
            """
            INSERT INTO integrations_delivery (
                received_at, shop_id, shop_domain, topic, webhook_id, headers, body, body_size, source_ip,
                signature_valid, outcome, response_status, reason, duration_ms, body_sha256, body_truncated)
            SELECT now() - ((%(size)s - i) || ' seconds')::interval, NULL, 'unknown-' || (i %% 7) || '.myshopify.com',
                   'orders/create', 'rejected-' || i, '{}'::jsonb, 'x'::bytea, 1, '127.0.0.1', NULL,
                   'rejected', 401, 'unknown shop', 0.5, '', false
            FROM generate_series(%(start)s, %(end)s) AS i WHERE i %% 100 = 0
            """,
            {"size": size, "start": have + 1, "end": size},
        )
        cursor.execute("ANALYZE integrations_event; ANALYZE integrations_delivery")


def _time_pages(client, shops, size: int, repeat: int) -> dict:
    from integrations.models import Event

    newest = Event.objects.order_by("-id").values_list("id", "webhook_id", "resource_label", "resource_id").first()
    middle = Event.objects.filter(id=size // 2).values_list("webhook_id", "resource_label").first()
    rejected_id = f"rejected-{size // 2 // 100 * 100}"  # one of the rejected deliveries _fill makes
    # The list shows both directions, so its cursor is a position in both: take the one it links.
    first_page = client.get("/events/").content.decode()
    page_two = re.search(r'[?&]cursor=([^"&]+)', first_page).group(1)
    hour_ago = time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() - 3600))
    pages = {
        "list, newest first": "/events/",
        "list, second page (keyset)": f"/events/?cursor={page_two}",
        # The shop filter takes the domain (a pk is a form error, and the list unfiltered).
        "filter: shop": f"/events/?shop={shops[3].domain}",
        "filter: topic": "/events/?topic=orders/paid",
        "filter: topic prefix (orders)": "/events/?topic=orders",
        "filter: topic prefix (customers)": "/events/?topic=customers",
        "filter: status failed": "/events/?status=failed",
        "filter: shop + status failed": f"/events/?shop={shops[3].domain}&status=failed",
        "filter: rejected deliveries": "/events/?status=rejected",
        "filter: last hour": f"/events/?received_from={hour_ago}",
        "search: webhook id (old row)": f"/events/?q={middle[0]}",
        "search: webhook id prefix (8 chars)": f"/events/?q={middle[0][:8]}",
        "search: webhook id prefix, status failed": f"/events/?q={middle[0][:12]}&status=failed",
        "search: rejected webhook id, any status": f"/events/?q={rejected_id}",
        "search: order name": f"/events/?q={middle[1].replace('#', '%23')}",
        "search: resource id": f"/events/?q={newest[3]}",
        "live poll (nothing new)": f"/events/poll/?after={newest[0]}",
        "event detail": f"/events/{newest[0]}/",
    }
    return time_pages({name: (client, path) for name, path in pages.items()}, repeat)


if __name__ == "__main__":
    main()
