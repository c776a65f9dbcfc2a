"""Storage plans for the webhook receiver: one round trip and one commit per delivery.

On PostgreSQL one prepared statement (a CTE) upserts the Event and inserts the Delivery; on
SQLite two statements run in one transaction. Plans are built once per process from the models'
metadata, so a field added with a default needs no change here.

Shopify gives up on a webhook after 5 s, so the receiver's database work runs under a deadline
(`receiver_time_limit`, WEBHOOK_DB_TIMEOUT_SECONDS): SQLite's busy timeout and PostgreSQL's
statement and lock timeouts are set to what is left of it and restored afterwards. A database
that cannot answer in time costs a 503, which Shopify retries.
"""

import contextlib
import sys
import time
from collections.abc import Iterator

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, transaction
from psycopg import sql

from integrations.models import Delivery, Event


def store_verified_delivery(
    event_fields: dict, delivery_fields: dict, *, deadline: float | None = None
) -> tuple[int, str]:
    """Upsert the Event and insert the Delivery atomically; returns (event id, outcome).

    A first delivery creates the Event (outcome "accepted"); a later one with the same
    (shop, webhook id) raises its delivery_count (outcome "duplicate") and is never processed
    again. The unique constraint makes this hold for concurrent duplicates too. With a
    `deadline` (a time.perf_counter() value), waiting on the database past it raises DatabaseError.
    """
    db = connections[DEFAULT_DB_ALIAS]  # `connection` is a proxy: resolved once, not per use
    if db.vendor == "postgresql":
        db.close_if_health_check_failed()  # what Django's own cursor() would check
        db.ensure_connection()
        plan = _insert_plan(db)
        timeout = None if deadline is None else _remaining_ms(deadline)
        try:
            return _execute_postgres(db, plan, plan.params(event_fields, delivery_fields), timeout)
        except DatabaseError:
            # Whatever failed (an outage, a timeout, or a prepared statement a migration made
            # stale), the next webhook starts on a fresh connection rather than failing the same way.
            db.close()
            raise
    plan = _insert_plan(db)
    with receiver_time_limit(deadline), transaction.atomic(using=db.alias), db.cursor() as cursor:
        cursor.execute(plan.upsert, plan.event.params(event_fields))
        event_id, count = cursor.fetchone()
        outcome = "accepted" if count == 1 else "duplicate"
        cursor.execute(
            plan.delivery_insert,
            [*plan.delivery.params(delivery_fields), event_id, outcome, "" if count == 1 else DUPLICATE_REASON],
        )
    return event_id, outcome


DUPLICATE_REASON = "already received: not processed again"

_SET_TIMEOUTS = "SELECT set_config('statement_timeout', %s, false), set_config('lock_timeout', %s, false)"
_LOCAL_TIMEOUTS = "SELECT set_config('statement_timeout', %s, true), set_config('lock_timeout', %s, true)"
_RESETS = ("RESET statement_timeout", "RESET lock_timeout")


def _remaining_ms(deadline: float) -> int:
    # At least 1 ms: 0 would mean "no limit" to both databases.
    return max(int((deadline - time.perf_counter()) * 1000), 1)


@contextlib.contextmanager
def receiver_time_limit(deadline: float | None) -> Iterator[None]:
    """Statements in the block wait on the database (a lock, a slow disk) no longer than until
    `deadline` (a time.perf_counter() value); past it they raise DatabaseError. SQLite: the
    connection's busy timeout; PostgreSQL: statement_timeout and lock_timeout. Both are put back
    afterwards, so the rest of the request (and the next one on this connection) is unaffected."""
    if deadline is None:
        yield
        return
    db = connections[DEFAULT_DB_ALIAS]
    db.ensure_connection()  # bounded by the connect timeout (settings: DATABASE_CONNECT_TIMEOUT)
    if db.vendor == "sqlite":
        raw = db.connection
        previous = int(raw.execute("PRAGMA busy_timeout").fetchone()[0])
        # Never longer than the connection's own timeout (SQLITE_BUSY_TIMEOUT) either.
        raw.execute(f"PRAGMA busy_timeout = {min(_remaining_ms(deadline), previous or sys.maxsize)}")
        try:
            yield
        finally:
            raw.execute(f"PRAGMA busy_timeout = {previous}")
        return
    if db.vendor != "postgresql":
        yield
        return
    ms = str(_remaining_ms(deadline))
    with db.cursor() as cursor:
        cursor.execute(_SET_TIMEOUTS, [ms, ms])
    try:
        yield
    finally:
        try:
            with db.cursor() as cursor:
                cursor.execute("; ".join(_RESETS))
        except DatabaseError:
            db.close()  # the timeouts must not outlive the block; a new connection starts without them


def _execute_postgres(db, plan: "_PostgresPlan", params: dict, timeout_ms: int | None = None) -> tuple[int, str]:
    raw = db.connection
    # A server-side prepared statement: PostgreSQL parses and plans it once per connection, not
    # once per webhook (that was most of its database time). Django opens connections with
    # psycopg's preparation off (prepare_threshold=None), which also ignores prepare=True, so
    # it is switched on around this one execute only: left on, psycopg would keep a count of
    # every other query on the connection, keyed by its full text with the values inlined.
    # Pointless when every request opens a new connection (CONN_MAX_AGE=0).
    prepare = settings.WEBHOOK_PREPARED_STATEMENT and db.settings_dict["CONN_MAX_AGE"] != 0
    previous = raw.prepare_threshold
    if prepare and previous is None:
        raw.prepare_threshold = sys.maxsize  # explicit prepare=True only, never automatic
    try:
        with db.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            if timeout_ms is None:
                cursor.execute(plan.statement, params, prepare=prepare)
            elif raw.autocommit and timeout_ms >= _full_limit_ms() - KEPT_LIMIT_SLACK_MS:
                # The common case: the limit is set once per connection and kept for the
                # webhooks that follow; a page served on this connection drops it first
                # (drop_receiver_limits). Setting it per webhook cost a third of the throughput.
                _keep_receiver_limits(db, raw)
                cursor.execute(plan.statement, params, prepare=prepare)
            else:
                # The timeouts and the statement in one pipeline: still one round trip, and one
                # implicit transaction, which the transaction-local timeouts end with. Inside an
                # outer transaction (a caller's atomic block) they would outlast the statement,
                # so there they are reset in the same pipeline.
                with psycopg.Cursor(raw) as limits, raw.pipeline():
                    limits.execute(_LOCAL_TIMEOUTS, [str(timeout_ms)] * 2, prepare=prepare)
                    cursor.execute(plan.statement, params, prepare=prepare)
                    if not raw.autocommit:
                        for reset in _RESETS:
                            limits.execute(reset)
            event_id, outcome = cursor.fetchone()
    finally:
        raw.prepare_threshold = previous
    return event_id, outcome


# When the request has used no more than this of its time before the insert (the usual case: the
# shop came from the cache), the full limit kept on the connection is close enough to what is left.
KEPT_LIMIT_SLACK_MS = 250


def _full_limit_ms() -> int:
    return max(int(settings.WEBHOOK_DB_TIMEOUT_SECONDS * 1000), 1)


def _keep_receiver_limits(db, raw) -> None:
    limit = str(_full_limit_ms())
    mark = (id(raw), limit)
    if getattr(db, "_receiver_limits", None) != mark:
        with psycopg.Cursor(raw) as cursor:
            cursor.execute(_SET_TIMEOUTS, [limit, limit])
        db._receiver_limits = mark


def drop_receiver_limits(sender=None, environ=None, **kwargs) -> None:
    """`request_started`: a request other than a webhook must not run under the receiver's
    statement and lock timeouts left on the connection by an earlier webhook."""
    if environ is not None and environ.get("PATH_INFO", "").startswith("/webhooks/"):
        return
    db = connections[DEFAULT_DB_ALIAS]
    mark = getattr(db, "_receiver_limits", None)
    if mark is None:
        return
    db._receiver_limits = None
    raw = db.connection
    if raw is None or id(raw) != mark[0]:
        return  # that connection is gone; a new one starts without the limits
    try:
        with db.wrap_database_errors, psycopg.Cursor(raw) as cursor:
            for reset in _RESETS:
                cursor.execute(reset)
    except DatabaseError:
        db.close()


def _has_callable_default(field: models.Field) -> bool:
    return field.has_default() and callable(field.default)


class _Columns:
    """Every concrete column of a model but the primary key (and `exclude`), with the given value
    or the field's default, prepared for the database: raw SQL that stays right when a field with
    a default is added. Built once per process; only the per-request values are prepared each time."""

    def __init__(self, model: type[models.Model], exclude: tuple[str, ...] = ()) -> None:
        self.fields = [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in exclude]
        self.names = [connection.ops.quote_name(f.column) for f in self.fields]
        self.placeholders = ", ".join(["%s"] * len(self.fields))
        self._static = {
            f.attname: f.get_db_prep_save(f.get_default(), connection)
            for f in self.fields
            if not _has_callable_default(f)
        }

    def params(self, values: dict) -> list:
        params = []
        for field in self.fields:
            if field.attname in values:
                params.append(field.get_db_prep_save(values[field.attname], connection))
            elif field.attname in self._static:
                params.append(self._static[field.attname])
            else:
                params.append(field.get_db_prep_save(field.get_default(), connection))
        return params


class _LiteralColumns:
    """PostgreSQL's version of _Columns: a column the receiver supplies, or whose default is
    computed (e.g. a time), is a named parameter; every other column is its default rendered as a
    SQL literal once, so each webhook binds only what varies (about a third of the columns)."""

    def __init__(self, db, model: type[models.Model], supplied: set[str], prefix: str, exclude: tuple[str, ...] = ()):
        fields = [f for f in model._meta.concrete_fields if not f.primary_key and f.name not in exclude]
        if unknown := supplied - {f.attname for f in fields}:  # e.g. a renamed field
            raise ValueError(f"{model.__name__} has no column for {sorted(unknown)}")
        self.names = [db.ops.quote_name(f.column) for f in fields]
        self.supplied = frozenset(supplied)
        self.bound = [f for f in fields if f.attname in supplied or _has_callable_default(f)]
        self.prefix = prefix
        self.values_sql = ", ".join(
            f"%({prefix}{f.attname})s" if f in self.bound else self._literal(db, f) for f in fields
        )
        # psycopg takes Python's str, int, float, bool, bytes and aware datetimes as they are;
        # only JSON needs Django's adaptation.
        self._json = {f.attname for f in self.bound if isinstance(f, models.JSONField)}
        self._db = db

    @staticmethod
    def _literal(db, field: models.Field) -> str:
        if field.db_default is not models.NOT_PROVIDED:
            raise ValueError(f"{field} has a database default: supply its value to the insert plan")
        literal = sql.Literal(field.get_db_prep_save(field.get_default(), db)).as_string(db.connection)
        return literal.replace("%", "%%")  # the statement also carries %(name)s placeholders

    def bind(self, values: dict, params: dict) -> None:
        if not values.keys() <= self.supplied:  # a value the statement would silently drop
            raise ValueError(f"not bound by the insert plan: {sorted(values.keys() - self.supplied)}")
        for field in self.bound:
            name = field.attname
            value = values[name] if name in values else field.get_default()
            params[self.prefix + name] = field.get_db_prep_save(value, self._db) if name in self._json else value


EVENT_SUPPLIED = {
    "shop_id", "webhook_id", "event_id", "topic", "api_version", "triggered_at", "received_at", "last_delivery_at",
}  # fmt: skip
DELIVERY_SUPPLIED = {
    "received_at", "shop_id", "shop_domain", "topic", "webhook_id", "headers", "source_ip", "body", "body_size",
    "signature_valid", "response_status", "duration_ms",
}  # fmt: skip


def _event_upsert_sql(column_names: list[str], values_sql: str) -> str:
    """Insert the Event, or count one more delivery of it; returns its id and delivery count."""
    table = Event._meta.db_table
    return (
        f"INSERT INTO {table} ({', '.join(column_names)}) VALUES ({values_sql}) "  # noqa: S608
        f"ON CONFLICT (shop_id, webhook_id) DO UPDATE SET delivery_count = {table}.delivery_count + 1, "
        f"last_delivery_at = excluded.last_delivery_at "
        f"RETURNING id, delivery_count"
    )


class _PostgresPlan:
    """One statement: a CTE upserts the Event and the outer INSERT adds the Delivery."""

    def __init__(self, db) -> None:
        event = _LiteralColumns(db, Event, EVENT_SUPPLIED, "e_")
        delivery = _LiteralColumns(db, Delivery, DELIVERY_SUPPLIED, "d_", exclude=("event", "outcome", "reason"))
        self._columns = (event, delivery)
        # Identifiers come from model metadata and literals from field defaults; every value a
        # webhook carries is a bound parameter.
        self.statement = (
            f"WITH ev AS ({_event_upsert_sql(event.names, event.values_sql)}) "  # noqa: S608
            f"INSERT INTO {Delivery._meta.db_table} ({', '.join(delivery.names)}, event_id, outcome, reason) "
            f"SELECT {delivery.values_sql}, ev.id, "
            f"CASE WHEN ev.delivery_count = 1 THEN 'accepted' ELSE 'duplicate' END, "
            f"CASE WHEN ev.delivery_count = 1 THEN '' ELSE '{DUPLICATE_REASON}' END FROM ev "
            f"RETURNING event_id, outcome"
        )

    def params(self, event_fields: dict, delivery_fields: dict) -> dict:
        params: dict = {}
        self._columns[0].bind(event_fields, params)
        self._columns[1].bind(delivery_fields, params)
        return params


class _SQLitePlan:
    """Two statements in one transaction: SQLite has no INSERT in a CTE."""

    def __init__(self) -> None:
        self.event = _Columns(Event)
        self.delivery = _Columns(Delivery, exclude=("event", "outcome", "reason"))
        self.upsert = _event_upsert_sql(self.event.names, self.event.placeholders)
        self.delivery_insert = (
            f"INSERT INTO {Delivery._meta.db_table} ({', '.join(self.delivery.names)}, event_id, outcome, reason) "  # noqa: S608
            f"VALUES ({self.delivery.placeholders}, %s, %s, %s)"
        )


_plans: dict[str, _PostgresPlan | _SQLitePlan] = {}


def _insert_plan(db) -> _PostgresPlan | _SQLitePlan:
    # Per database vendor: tests switch between SQLite and PostgreSQL in one interpreter.
    plan = _plans.get(db.vendor)
    if plan is None:
        plan = _plans[db.vendor] = _PostgresPlan(db) if db.vendor == "postgresql" else _SQLitePlan()
    return plan
