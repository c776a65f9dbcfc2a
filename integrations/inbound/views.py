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
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from integrations.inbound.storage import store_verified_delivery
from integrations.models import Delivery, Shop

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
