"""The webhook receiver: `POST /webhooks/shopify`, one URL for every topic.

Every request becomes a Delivery row before we answer. A verified request also upserts its Event
(unique per shop and X-Shopify-Webhook-Id) in the same database round trip; nothing is parsed or
processed here, so the receiver answers fast even when the worker is down or backlogged.
Answers: 200 stored (new or duplicate), 401 rejected (unknown shop, missing header, bad
signature), 413 too large, 405 wrong method, 411 a chunked body this server cannot read, 503 when
we could not store it in time (so Shopify retries).

Whatever a request carries is recorded: every value is made storable first (`values`): text cut
to its column, sizes clamped, a time out of range left empty (the raw headers keep it), an
over-long webhook id mapped to a distinct stand-in. Anyone can post here, so a request that did
not verify keeps only the start of its body (WEBHOOK_REJECTED_BODY_PREFIX_BYTES), with the whole
body's size and hash.
"""

import base64
import functools
import hashlib
import hmac
import logging
import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from console import logcontext, metrics
from integrations.inbound.storage import receiver_time_limit, store_verified_delivery
from integrations.inbound.values import (
    fit_text,
    parse_storable_datetime,
    storable_ip,
    storable_size,
    storable_text,
)
from integrations.models import Delivery, Event, Shop
from integrations.models.inbound import storable_webhook_id

logger = logging.getLogger(__name__)

# Header names as Shopify sends them; the "Events" developer preview drops the X- prefix.
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
REQUIRED_HEADERS = ("X-Shopify-Topic", "X-Shopify-Shop-Domain", "X-Shopify-Webhook-Id", HMAC_HEADER)
REDACTED_HEADERS = {"authorization", "proxy-authorization", "cookie", "x-shopify-access-token"}
MAX_HEADER_VALUE = 1000
# Kept whole in the stored headers: an over-long webhook id is stored as a stand-in (see
# storable_webhook_id), and support needs the id Shopify sent.
WHOLE_HEADERS = {"x-shopify-webhook-id", "shopify-webhook-id"}


@dataclass(frozen=True)
class ShopSecrets:
    id: int
    secrets: tuple[str, ...]


class _ShopCache:
    """Shop id and verifying secrets by domain, for a few seconds: saves a query per delivery."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, ShopSecrets]] = {}
        self._lock = threading.Lock()

    def get(self, domain: str, deadline: float | None = None) -> ShopSecrets | None:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(domain)
        if hit and hit[0] > now:
            return hit[1]
        shop = Shop.objects.filter(domain=domain).only(
            "id", "webhook_secret", "previous_webhook_secret", "previous_secret_retire_at"
        )
        with receiver_time_limit(deadline):
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


@functools.cache
def _meta_keys(name: str) -> tuple[str, str]:
    key = "HTTP_" + name.upper().replace("-", "_")
    return key, key.replace("HTTP_X_", "HTTP_", 1)


def raw_header(request: HttpRequest, name: str) -> str:
    # Straight from the WSGI environ: request.headers would build a case-insensitive copy first.
    with_prefix, without_prefix = _meta_keys(name)
    return (request.META.get(with_prefix) or request.META.get(without_prefix) or "").strip()


def header(request: HttpRequest, name: str) -> str:
    return storable_text(raw_header(request, name)[:MAX_HEADER_VALUE])


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
        kept = value if lowered in WHOLE_HEADERS else value[:MAX_HEADER_VALUE]
        headers[storable_text(name[:MAX_HEADER_VALUE])] = "[redacted]" if secretish else storable_text(kept)
    return headers


def kept_body(body: bytes | None) -> dict:
    """What a Delivery that did not verify keeps of its body: the first
    WEBHOOK_REJECTED_BODY_PREFIX_BYTES, and the whole body's SHA-256."""
    if body is None:
        return {"body": None}
    prefix = max(settings.WEBHOOK_REJECTED_BODY_PREFIX_BYTES, 0)
    return {
        "body": body[:prefix],
        "body_truncated": len(body) > prefix,
        "body_sha256": hashlib.sha256(body).hexdigest(),
    }


@csrf_exempt
@login_not_required
def receive_webhook(request: HttpRequest) -> HttpResponse:
    started = time.perf_counter()
    # Everything the receiver waits on the database for (shop lookup, insert) ends by this.
    deadline = started + settings.WEBHOOK_DB_TIMEOUT_SECONDS
    received_at = timezone.now()
    limit = settings.WEBHOOK_MAX_BODY_BYTES
    base = fit_text(
        Delivery,
        {
            "received_at": received_at,
            "shop_domain": header(request, "X-Shopify-Shop-Domain").lower(),
            "topic": header(request, "X-Shopify-Topic"),
            "webhook_id": storable_webhook_id(raw_header(request, "X-Shopify-Webhook-Id")),
            "headers": redacted_headers(request),
            "source_ip": storable_ip(request.META.get("REMOTE_ADDR")),
        },
    )
    logcontext.add(shop=base["shop_domain"], webhook_id=base["webhook_id"])

    def reject(status: int, outcome: str, reason: str, body: bytes | None, size: int, **extra) -> JsonResponse:
        row = Delivery(
            **fit_text(
                Delivery,
                {
                    **base,
                    **extra,
                    **kept_body(body),
                    "body_size": storable_size(size),
                    "outcome": outcome,
                    "response_status": status,
                    "reason": storable_text(reason),
                    "duration_ms": (time.perf_counter() - started) * 1000,
                },
            )
        )
        try:
            with receiver_time_limit(deadline):
                row.save(force_insert=True)
        except DatabaseError:
            logger.exception("could not record a rejected webhook delivery")
            return _unavailable()
        if logger.isEnabledFor(logging.INFO):
            logger.info(
                "webhook rejected (%d): %s", status, reason[:1000], extra={"outcome": outcome, "reason": reason[:1000]}
            )
        metrics.webhook_received("rejected", base["topic"], base["shop_domain"] if extra.get("shop_id") else None)
        return JsonResponse({"error": reason[:1000]}, status=status)

    declared = _content_length(request)
    if declared is not None and declared > limit:
        sent = request.META["CONTENT_LENGTH"].strip()
        reason = f"body of {sent[:40]}{'…' if len(sent) > 40 else ''} bytes exceeds the {limit}-byte limit"
        return reject(413, Delivery.Outcome.TOO_LARGE, reason, None, declared)
    read = request.read
    if declared is None and "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # No Content-Length: Django reads no body at all. A server that decodes chunked bodies
        # says so (gunicorn does); with any other, the length is unknowable.
        if not request.META.get("wsgi.input_terminated"):
            reason = "chunked body without Content-Length, which this server cannot read: send Content-Length"
            return reject(411, Delivery.Outcome.REJECTED, reason, None, 0)
        read = functools.partial(_read_to_end, request.META["wsgi.input"])
    try:
        body = read(limit + 1)
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
        shop = shop_cache.get(base["shop_domain"], deadline)
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

    event_fields = fit_text(
        Event,
        {
            "shop_id": shop.id,
            "webhook_id": base["webhook_id"],
            "event_id": header(request, "X-Shopify-Event-Id"),
            "topic": base["topic"],
            "api_version": header(request, "X-Shopify-API-Version"),
            "triggered_at": parse_storable_datetime(header(request, "X-Shopify-Triggered-At")),
            "received_at": received_at,
            "last_delivery_at": received_at,
        },
    )
    delivery_fields = {
        **base,
        "shop_id": shop.id,
        "body": body,
        "body_size": storable_size(len(body)),
        "signature_valid": True,
        "response_status": 200,
        "duration_ms": (time.perf_counter() - started) * 1000,
    }
    try:
        event_id, outcome = store_verified_delivery(event_fields, delivery_fields, deadline=deadline)
    except DatabaseError:
        logger.exception("could not store a verified webhook; answering 503 so Shopify retries")
        shop_cache.clear()  # in case the shop itself changed under the cache
        return _unavailable()
    logcontext.add(event_id=event_id)
    if logger.isEnabledFor(logging.INFO):
        logger.info("webhook %s: %s, event %d", outcome, base["topic"], event_id, extra={"outcome": outcome})
    metrics.webhook_received(outcome, base["topic"], base["shop_domain"])
    # The same JSON JsonResponse would write, without its encoder on the hot path.
    return HttpResponse(
        b'{"status": "%s", "event": %d}' % (outcome.encode(), event_id), content_type="application/json"
    )


def _content_length(request: HttpRequest) -> int | None:
    """The declared body size, None when absent or not a number. A number too long to convert
    (Python refuses over 4300 digits) is larger than any limit anyway."""
    declared = (request.META.get("CONTENT_LENGTH") or "").strip()
    if not (declared.isascii() and declared.isdigit()):
        return None
    return int(declared) if len(declared) <= 100 else 10**100


def _read_to_end(stream, size: int) -> bytes:
    """Up to `size` bytes of a stream the server ends itself (a decoded chunked body)."""
    chunks, remaining = [], size
    while remaining > 0:
        chunk = stream.read(min(remaining, 64 * 1024))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _unavailable() -> JsonResponse:
    metrics.webhook_unavailable()
    response = JsonResponse({"error": "temporarily unable to store webhooks"}, status=503)
    response["Retry-After"] = "5"
    return response
