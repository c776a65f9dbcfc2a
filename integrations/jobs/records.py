"""Writing platform records: one conditional upsert per record, keyed on Shopify's `updated_at`.

`INSERT … ON CONFLICT … DO UPDATE … WHERE ours.shopify_updated_at < theirs` makes "create, or
update only if newer" one atomic statement: two pumps writing the same record at the same moment
still leave the newest state (PostgreSQL re-checks the WHERE against the row the other
transaction committed), and a second run of the same event writes nothing. A redacted record
never gets its personal fields back (and a redacted customer is not written at all).
"""

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import connection
from django.utils import timezone

from integrations.jobs.fields import Resource
from integrations.models import Event


@dataclass(frozen=True)
class Written:
    """What an upsert did: "created", "updated", "stale" (ours is as new or newer) or "redacted"."""

    outcome: str
    ours_updated_at: datetime | None = None  # for stale: the version we already hold
    theirs_updated_at: datetime | None = None

    def __str__(self) -> str:
        if self.outcome == "stale":
            return (
                f"stale: we already hold the version of {_iso(self.ours_updated_at)}, as new as or newer than "
                f"this event's {_iso(self.theirs_updated_at)}; nothing written"
            )
        if self.outcome == "redacted":
            return "redacted: the record's personal data was removed, so it is not written again"
        return self.outcome


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else "?"


@dataclass(frozen=True)
class _Plan:
    sql: str
    columns: tuple[str, ...]  # attnames, in VALUES order
    key: tuple[str, ...]
    table: str


@cache
def _plan(resource: Resource, vendor: str) -> _Plan:
    model = resource.model
    quote = connection.ops.quote_name
    table = model._meta.db_table
    key = ("shop_id", *resource.key)
    mapped = tuple(f.platform for f in resource.fields)
    columns = (*key, *(model._meta.get_field(name).attname for name in mapped), "shopify_updated_at", "synced_at")
    columns += ("last_event_id",)
    personal = {f.platform for f in resource.personal_fields} if resource.has_redaction else set()

    def assignment(name: str) -> str:
        column = quote(model._meta.get_field(name).column)
        if name in personal:
            return f"{column} = CASE WHEN {table}.redacted_at IS NULL THEN excluded.{column} ELSE {table}.{column} END"
        return f"{column} = excluded.{column}"

    updates = [assignment(name) for name in (*mapped, "shopify_updated_at", "synced_at", "last_event")]
    condition = f"{table}.shopify_updated_at < excluded.shopify_updated_at"
    if resource.frozen_when_redacted:
        condition += f" AND {table}.redacted_at IS NULL"
    returning = "id, (xmax = 0)" if vendor == "postgresql" else "id"
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - names from model metadata
        f"VALUES ({', '.join(['%s'] * len(columns))}) "
        f"ON CONFLICT ({', '.join(quote(c) for c in key)}) DO UPDATE SET {', '.join(updates)} "
        f"WHERE {condition} RETURNING {returning}"
    )
    return _Plan(sql, columns, key, table)


def upsert_newer(resource: Resource, *, event: Event, key: dict, values: dict, updated_at: datetime) -> Written:
    """Create the record, or update it only if `updated_at` is newer than the stored version."""
    plan = _plan(resource, connection.vendor)
    model = resource.model
    row = {"shop_id": event.shop_id, **key, **values}
    row.update(shopify_updated_at=updated_at, synced_at=timezone.now(), last_event_id=event.pk)
    params = []
    for attname in plan.columns:
        params.append(model._meta.get_field(attname).get_db_prep_save(row[attname], connection))
    lookup = {"shop_id": event.shop_id, **key}
    existed = None
    if connection.vendor != "postgresql":
        # SQLite has no xmax to tell an insert from an update; one indexed read instead.
        existed = model.objects.filter(**lookup).exists()
    with connection.cursor() as cursor:
        cursor.execute(plan.sql, params)
        returned = cursor.fetchone()
    if returned is not None:
        inserted = returned[1] if existed is None else not existed
        return Written("created" if inserted else "updated")
    ours = model.objects.filter(**lookup).values(
        "shopify_updated_at", *(["redacted_at"] if resource.has_redaction else [])
    )
    ours = ours.first() or {}
    if resource.frozen_when_redacted and ours.get("redacted_at"):
        return Written("redacted")
    return Written("stale", ours.get("shopify_updated_at"), updated_at)
