"""The webhook receiver: `POST /webhooks/shopify`, one URL for every topic.

Every request becomes a Delivery row before we answer. A verified request also upserts its Event
(unique per shop and X-Shopify-Webhook-Id) in the same database round trip; nothing is parsed or
processed here, so the receiver answers fast even when the worker is down or backlogged.
Answers: 200 stored (new or duplicate), 401 rejected (unknown shop, missing header, bad
signature), 413 too large, 405 wrong method, 503 when we could not store it (so Shopify retries).
"""

import base64
import functools
import hashlib
import hmac
import logging
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, models, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt
from psycopg import sql

from integrations.models import Delivery, Event, Shop

logger = logging.getLogger(__name__)

# Header names as Shopify sends them; the "Events" developer preview drops the X- prefix.
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
REQUIRED_HEADERS = ("X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id", HMAC_HEADER)
REDACTED_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-shopify-access-token"}
MAX_HEADER_VALUE = 1000


@dataclass(frozen=True)
class ShopSecrets:
    id: int
    secrets: tuple[str, ...]


class _ShopCache:
    """Shop id and verifying secrets by domain, for a few seconds: saves a query per delivery."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ShopSecrets]] = {}
        self._lock = threading.Lock()

    def get(self, domain: str) -> ShopSecrets | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(domain)
        if hit and hit[0] > now:
            return hit[1]
        shop = Shop.objects.filter(domain=domain).only(
            "id", "webhook_secret", "previous_webhook_secret", "previous_secret_retire_at"
        )
        shop = shop.first()
        if shop is None:
            return None  # unknown shops are not cached: registering one takes effect at once
        entry = ShopSecrets(id=shop.id, secrets=tuple(shop.verifying_secrets()))
        # Never cache past the moment the previous secret retires.
        ttl = settings.WEBHOOK_SHOP_CACHE_SECONDS
        retire_at = shop.previous_secret_retire_at
        if retire_at is not None and retire_at > timezone.now():
            ttl = min(ttl, (retire_at - timezone.now()).total_seconds())
        with self._lock:
            self._entries[domain] = (now + ttl, entry)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


shop_cache = _ShopCache()


def _storable(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a hostile header must still be recorded, not crash us.
    return value.replace("\x00", "\ufffd")


@functools.cache
def _meta_keys(name: str) -> tuple[str, str]:
    key = "HTTP_" + name.upper().replace("-", "_")
    return key, key.replace("HTTP_X_", "HTTP_", 1)


def header(request: HttpRequest, name: str) -> str:
    # Straight from the WSGI environ: request.headers would build a case-insensitive copy first.
    with_prefix, without_prefix = _meta_keys(name)
    value = request.META.get(with_prefix) or request.META.get(without_prefix) or ""
    return _storable(value.strip()[:MAX_HEADER_VALUE])


def signature_matches(body: bytes, signature: str, secrets: tuple[str, ...]) -> bool:
    """Base64 HMAC-SHA256 of the raw body, compared in constant time against each secret."""
    for secret in secrets:
        digest = base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")
        if hmac.compare_digest(digest.encode("ascii"), signature.encode("utf-8", "replace")):
            return True
    return False


def redacted_headers(request: HttpRequest) -> dict[str, str]:
    headers = {}
    for name, value in request.headers.items():
        lowered = name.lower()
        secretish = lowered in REDACTED_HEADERS or "secret" in lowered or "token" in lowered
        headers[_storable(name)] = "[redacted]" if secretish else _storable(value[:MAX_HEADER_VALUE])
    return headers


def _parse_triggered_at(value: str) -> datetime | None:
    if not value:
        return None
    # Shopify sends nanoseconds (…57.290670248Z); Python keeps microseconds.
    trimmed = value
    if "." in value:
        head, _, tail = value.partition(".")
        digits = "".join(ch for ch in tail if ch.isdigit())
        zone = tail[len(digits) :]
        trimmed = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = parse_datetime(trimmed.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


@csrf_exempt
@login_not_required
def receive_webhook(request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    received_at = timezone.now()
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    base = {
        "received_at": received_at,
        "shop_domain": header(request, "X-Shopify-Shop-Domain").lower()[:255],
        "topic": header(request, "X-Shopify-Topic")[:100],
        "webhook_id": header(request, "X-Shopify-Webhook-Id")[:100],
        "headers": redacted_headers(request),
        "source_ip": request.META.get("REMOTE_ADDR") or None,
    }

    def reject(status: int, outcome: str, reason: str, body: bytes | None, size: int, **extra) -> JsonResponse:
        row = Delivery(
            **base,
            **extra,
            body=body,
            body_size=size,
            outcome=outcome,
            response_status=status,
            reason=reason,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        try:
            row.save(force_insert=True)
        except DatabaseError:
            logger.exception("could not record a rejected webhook delivery")
            return _unavailable()
        return JsonResponse({"error": reason}, status=status)

    declared = _content_length(request)
    if declared is not None and declared > limit:
        return reject(
            413, Delivery.Outcome.TOO_LARGE, f"body of {declared} bytes exceeds the {limit}-byte limit", None, declared
        )
    try:
        body = request.read(limit + 1)
    except OSError:
        logger.warning("client went away while sending a webhook body")
        return reject(400, Delivery.Outcome.REJECTED, "could not read the request body", None, 0)
    if len(body) > limit:
        return reject(413, Delivery.Outcome.TOO_LARGE, f"body exceeds the {limit}-byte limit", None, len(body))
    if request.method != "POST":
        return reject(
            405, Delivery.Outcome.REJECTED, f"method {request.method} not allowed; Shopify POSTs", body, len(body)
        )

    signature = header(request, HMAC_HEADER)
    present = {
        "X-Shopify-Topic": base["topic"],
        "X-Shopify-Shop-Domain": base["shop_domain"],
        "X-Shopify-Webhook-Id": base["webhook_id"],
        HMAC_HEADER: signature,
    }
    missing = [name for name in REQUIRED_HEADERS if not present[name]]
    if missing:
        return reject(401, Delivery.Outcome.REJECTED, f"missing header {', '.join(missing)}", body, len(body))
    try:
        shop = shop_cache.get(base["shop_domain"])
    except DatabaseError:
        logger.exception("shop lookup failed while receiving a webhook")
        return _unavailable()
    if shop is None:
        return reject(401, Delivery.Outcome.REJECTED, f"unknown shop {base['shop_domain']}", body, len(body))
    if not body:
        return reject(401, Delivery.Outcome.REJECTED, "empty body", body, 0, shop_id=shop.id)
    if not signature_matches(body, signature, shop.secrets):
        return reject(
            401,
            Delivery.Outcome.REJECTED,
            "HMAC signature does not match",
            body,
            len(body),
            shop_id=shop.id,
            signature_valid=False,
        )

    event_fields = {
        "shop_id": shop.id,
        "webhook_id": base["webhook_id"],
        "event_id": header(request, "X-Shopify-Event-Id")[:100],
        "topic": base["topic"],
        "api_version": header(request, "X-Shopify-API-Version")[:16],
        "triggered_at": _parse_triggered_at(header(request, "X-Shopify-Triggered-At")),
        "received_at": received_at,
        "last_delivery_at": received_at,
    }
    delivery_fields = {
        **base,
        "shop_id": shop.id,
        "body": body,
        "body_size": len(body),
        "signature_valid": True,
        "response_status": 200,
        "duration_ms": (time.perf_counter() - started) * 1000,
    }
    try:
        event_id, outcome = store_verified_delivery(event_fields, delivery_fields)
    except DatabaseError:
        logger.exception("could not store a verified webhook; answering 503 so Shopify retries")
        shop_cache.clear()  # in case the shop itself changed under the cache
        return _unavailable()
    # The same JSON JsonResponse would write, without its encoder on the hot path.
    return HttpResponse(
        b'{"status": "%s", "event": %d}' % (outcome.encode(), event_id), content_type="application/json"
    )


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


def _unavailable() -> JsonResponse:
    response = JsonResponse({"error": "temporarily unable to store webhooks"}, status=503)
    response["Retry-After"] = "5"
    return response


# --- Storage: one round trip, one commit -----------------------------------------------------


def store_verified_delivery(event_fields: dict, delivery_fields: dict) -> tuple[int, str]:
    """Upsert the Event and insert the Delivery atomically; returns (event id, outcome).

    A first delivery creates the Event (outcome "accepted"); a later one with the same
    (shop, webhook id) raises its delivery_count (outcome "duplicate") and is never processed
    again. The unique constraint makes this hold for concurrent duplicates too.
    """
    db = connections[DEFAULT_DB_ALIAS]  # `connection` is a proxy: resolved once, not per use
    if db.vendor == "postgresql":
        db.close_if_health_check_failed()  # what Django's own cursor() would check
        db.ensure_connection()
        plan = _insert_plan(db)
        try:
            return _execute_postgres(db, plan, plan.params(event_fields, delivery_fields))
        except DatabaseError:
            # Whatever failed (an outage, or a prepared statement a migration made stale), the
            # next webhook starts on a fresh connection rather than failing the same way.
            db.close()
            raise
    plan = _insert_plan(db)
    with transaction.atomic(using=db.alias), db.cursor() as cursor:
        cursor.execute(plan.upsert, plan.event.params(event_fields))
        event_id, count = cursor.fetchone()
        outcome = "accepted" if count == 1 else "duplicate"
        cursor.execute(
            plan.delivery_insert,
            [*plan.delivery.params(delivery_fields), event_id, outcome, "" if count == 1 else DUPLICATE_REASON],
        )
    return event_id, outcome


DUPLICATE_REASON = "already received: not processed again"


def _execute_postgres(db, plan: "_PostgresPlan", params: dict) -> tuple[int, str]:
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
            cursor.execute(plan.statement, params, prepare=prepare)
            event_id, outcome = cursor.fetchone()
    finally:
        raw.prepare_threshold = previous
    return event_id, outcome


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
