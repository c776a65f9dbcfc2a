"""Incident pages at scale (issue 14): page timings with 10,000 and 1,000,000 events and affected
records, on PostgreSQL.

    .venv/bin/python bench/incident_pages.py [--small 10000] [--large 1000000] [--repeat 20]

Creates a scratch database `<name>_incidents`, fills events with SQL (as bench/event_log_queries.py
does), 200 incidents (one tenth open) with steps, updates and actions, and affected records spread
over them; one open "big" incident links 10,000 events (4% of them failed) and holds an affected order for
each at both sizes (what one incident can hold is bounded by the 10,000-link limit; the table around it grows).
Times each page through Django's full request path (test client; support or customer service as the
page needs) at the small size, grows events and affected records to the large size and times them
again. Prints p50/p95 per page and the large/small p95 ratio. Target: p95 under 150 ms at the large
size and within 2x of the small size, for every page.
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, bench_env, print_page_table, scratch_database, time_pages
from bench.event_log_queries import _fill as fill_events

INCIDENTS = 200
BIG = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()

    url = scratch_database("incidents")
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
    support = User.objects.create(username="bench-support", email="support@example.com")
    support.groups.add(Group.objects.get(name="support"))
    service = User.objects.create(username="bench-service")
    service.groups.add(Group.objects.get(name="customer_service"))
    clients = {}
    for name, user in (("support", support), ("service", service)):
        clients[name] = Client()
        clients[name].force_login(user)

    results = {}
    big = None
    for size in (args.small, args.large):
        started = time.monotonic()
        fill_events(connection, shops, size)
        if big is None:
            big = _incidents(support, shops)
        _fill_affected(connection, shops, size)
        print(f"filled to {size:,} events and affected records in {time.monotonic() - started:.0f}s", flush=True)
        results[size] = _time_pages(clients, big, size, args.repeat)

    print_page_table(results[args.small], results[args.large])
    print(
        f"\nsmall = {args.small:,}, large = {args.large:,} events and affected records; {INCIDENTS} incidents; "
        f"the big incident links {BIG:,} events and {BIG:,} records; {args.repeat} requests per page; PostgreSQL"
    )


def _incidents(user, shops):
    """200 incidents with a little of everything, and the big one."""
    from datetime import timedelta

    from django.utils import timezone

    from incidents.models import Incident, IncidentAction, IncidentStep, IncidentUpdate

    now = timezone.now()
    made = []
    for n in range(INCIDENTS):
        status = "investigating" if n % 10 == 0 else "resolved"
        made.append(
            Incident(
                title=f"Incident {n}",
                public_title=f"Public {n}",
                severity=f"sev{1 + n % 4}",
                status=status,
                opened_by=user,
                lead=user,
                opened_at=now - timedelta(hours=n),
                resolved_at=now if status == "resolved" else None,
                next_update_due_at=now - timedelta(minutes=5) if n % 20 == 0 else now + timedelta(hours=1),
            )
        )
    Incident.objects.bulk_create(made)
    incidents = list(Incident.objects.order_by("id"))
    for incident in incidents:
        incident.shops.add(shops[incident.pk % len(shops)])
    IncidentStep.objects.bulk_create(
        IncidentStep(incident=i, kind="status", actor=user, actor_label=user.username, text=f"step {k}")
        for i in incidents
        for k in range(10)
    )
    IncidentUpdate.objects.bulk_create(
        IncidentUpdate(incident=i, body=f"update {k}", audience="customer_service", confirmed=True, author=user)
        for i in incidents
        for k in range(5)
    )
    IncidentAction.objects.bulk_create(
        IncidentAction(incident=i, kind=("containment", "remediation")[k % 2], title=f"action {k}", owner=user)
        for i in incidents
        for k in range(4)
    )
    big = incidents[0]
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO incidents_incident_events (incident_id, event_id) "
            "SELECT %s, id FROM integrations_event ORDER BY id LIMIT %s",
            [big.pk, BIG],
        )
        cursor.execute(
            """
            INSERT INTO incidents_affectedrecord (incident_id, shop_id, kind, key, shopify_id, email, total, currency,
                unfulfilled, repair_state, repair_note, set_by_person, updated_at, event_id)
            SELECT %(big)s, e.shop_id, 'order', '#big' || e.id, e.id::text, 'big' || e.id || '@example.com',
                   10.00, 'EUR', true, 'waiting', '', false, now(), e.id
            FROM incidents_incident_events l JOIN integrations_event e ON e.id = l.event_id
            WHERE l.incident_id = %(big)s
            """,
            {"big": big.pk},
        )
    return big


def _fill_affected(connection, shops, size: int) -> None:
    """Affected records over the other 199 incidents (orders, with buyers' e-mails), up to `size`
    besides the big incident's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM incidents_affectedrecord WHERE key NOT LIKE '#big%%'")
        have = cursor.fetchone()[0]
        cursor.execute("SELECT min(id) FROM incidents_incident")
        first = cursor.fetchone()[0]
        if have >= size:
            return
        cursor.execute(
            """
            INSERT INTO incidents_affectedrecord (incident_id, shop_id, kind, key, shopify_id, email, total, currency,
                unfulfilled, repair_state, repair_note, set_by_person, updated_at, event_id)
            SELECT %(first)s + 1 + (i %% %(incidents)s), (%(shops)s::bigint[])[1 + (i %% 20)], 'order', '#' || (100000 + i),
                   i::text, 'buyer' || i || '@example.com', 25.00, 'EUR', (i %% 3 = 0),
                   (ARRAY['waiting','replayed','repaired','needs_manual'])[1 + (i %% 4)], '', false, now(), NULL
            FROM generate_series(%(start)s, %(end)s) AS i
            """,
            {
                "first": first,
                "incidents": INCIDENTS - 1,
                "shops": [s.pk for s in shops],
                "start": have + 1,
                "end": size,
            },
        )
        cursor.execute("ANALYZE incidents_affectedrecord; ANALYZE incidents_incident_events")


def _time_pages(clients, big, size: int, repeat: int) -> dict:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT key, email FROM incidents_affectedrecord WHERE key LIKE '#1%%' ORDER BY id DESC LIMIT 1")
        order, email = cursor.fetchone()
    pages = {
        "incident list": ("support", "/incidents/"),
        "incident detail (10k linked)": ("support", f"/incidents/{big.pk}/"),
        "follow-ups": ("support", "/incidents/follow-ups/"),
        "dashboard (support)": ("support", "/"),
        "status board (customer service)": ("service", "/incidents/status/"),
        "lookup: order (customer service)": ("service", f"/incidents/lookup/?q={order.replace('#', '%23')}"),
        "lookup: e-mail (customer service)": ("service", f"/incidents/lookup/?q={email}"),
        "lookup: no match": ("service", "/incidents/lookup/?q=%23999999999"),
    }
    return time_pages({name: (clients[who], path) for name, (who, path) in pages.items()}, repeat)


if __name__ == "__main__":
    main()
