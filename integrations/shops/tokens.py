"""Expiring offline access tokens: refreshed before they expire, and once on a 401.

Shopify's expiring offline tokens last an hour and come with a refresh token; refreshing answers a
new access token and a rotated refresh token (the previous refresh token stays valid until the new
one is first used). Facts file, section 5.

The refresh request authenticates the app with its client id and client secret. The console keeps
no separate client secret: Shopify signs an app's webhooks with the app's client secret, so the
shop's `webhook_secret` *is* that secret, and it is what we send as `client_secret` (the simulator
checks the same). During a webhook-secret rotation the current secret is the app's new one.

A refresh Shopify refuses (400 `invalid_grant`: the refresh token was revoked, expired or replaced;
`invalid_client`) cannot pass by trying again: the shop gets `token_problem` and an
`OutboundHold(kind="token")` that keeps all its calls back until it has a working token (a
successful refresh clears it; so does `clear_token_hold`, for whoever sets a new token). A refresh
that failed for a passing reason (timeout, 5xx, 429) changes nothing but the audit trail.

Tokens and refresh tokens are never written anywhere in full: audit entries carry them masked.
"""

from datetime import timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from console.audit import record_action
from console.secrets import mask_secret
from integrations.models import OutboundHold, Shop
from integrations.outbound.client import AdminClient

TOKEN_FIELDS = (
    "access_token",
    "refresh_token",
    "access_token_expires_at",
    "refresh_token_expires_at",
    "token_refreshed_at",
    "token_problem",
)
PASSING_STATUSES = {429, 500, 502, 503, 504, 530, 540}


def _masked(shop: Shop) -> dict:
    return {
        "access_token": mask_secret(shop.access_token),
        "refresh_token": mask_secret(shop.refresh_token),
        "access_token_expires_at": _iso(shop.access_token_expires_at),
        "refresh_token_expires_at": _iso(shop.refresh_token_expires_at),
    }


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def has_token_hold(shop: Shop) -> bool:
    return OutboundHold.objects.filter(shop=shop, kind=OutboundHold.Kind.TOKEN, cleared_at__isnull=True).exists()


def refresh_token(shop: Shop, *, reason: str) -> tuple[bool, str]:
    """Exchange the shop's refresh token for a new access token now. Returns (ok, message): on
    success the new token, refresh token and expiries are stored (and set on `shop`), the
    token problem and any token hold are cleared, and "shop.token_refreshed" is audited; on a
    refusal the shop gets `token_problem` and a token hold, and "shop.token_refresh_failed" is
    audited. `reason` (why it is refreshed: the schedule, a 401 on call N) goes into the audit."""
    ok, message, _passing = refresh_token_outcome(shop, reason=reason)
    return ok, message


def refresh_token_outcome(shop: Shop, *, reason: str) -> tuple[bool, str, bool]:
    """`refresh_token`, also saying whether a failure may pass by itself (timeout, 5xx, 429: no
    hold is opened, a later try may work) — for the sender, which retries the call then."""
    if not shop.refresh_token:
        return False, "the shop has no refresh token (a non-expiring token, or none was stored)", False
    reply = AdminClient(shop).exchange_token(
        grant_type="refresh_token",
        client_id=shop.client_id,
        client_secret=shop.webhook_secret,
        refresh_token=shop.refresh_token,
    )
    body = reply.body if isinstance(reply.body, dict) else {}
    if reply.http_status == 200 and body.get("access_token"):
        return True, _store(shop, body, reason), False
    problem = reply.failure() or "Shopify's answer has no access_token"
    passing = bool(reply.transport_error) or (reply.http_status or 0) in PASSING_STATUSES
    message = f"refresh failed: {problem}"
    _refused(shop, message, reason, passing=passing)
    return False, message, passing


def _store(shop: Shop, body: dict, reason: str) -> str:
    now = timezone.now()
    before = _masked(shop)
    shop.access_token = str(body["access_token"])[:255]
    if body.get("refresh_token"):
        shop.refresh_token = str(body["refresh_token"])[:255]
    expires_in = _seconds(body.get("expires_in"))
    shop.access_token_expires_at = now + timedelta(seconds=expires_in) if expires_in is not None else None
    refresh_expires_in = _seconds(body.get("refresh_token_expires_in"))
    if refresh_expires_in is not None:
        shop.refresh_token_expires_at = now + timedelta(seconds=refresh_expires_in)
    shop.token_refreshed_at, shop.token_problem = now, ""
    with transaction.atomic():
        Shop.objects.filter(pk=shop.pk).update(**{name: getattr(shop, name) for name in TOKEN_FIELDS}, updated_at=now)
        clear_token_hold(shop, reason="the token was refreshed")
        record_action(
            actor=None, verb="shop.token_refreshed", target=shop, before=before, after=_masked(shop), reason=reason
        )
    if shop.access_token_expires_at:
        return f"token refreshed; it expires at {shop.access_token_expires_at:%Y-%m-%d %H:%M:%S} UTC"
    return "token refreshed (Shopify gave no expiry)"


def _seconds(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _refused(shop: Shop, message: str, reason: str, *, passing: bool) -> None:
    with transaction.atomic():
        if not passing:
            shop.token_problem = message
            Shop.objects.filter(pk=shop.pk).update(token_problem=message, updated_at=timezone.now())
            hold_token(shop, reason=f"the access token cannot be refreshed ({message})")
        record_action(
            actor=None,
            verb="shop.token_refresh_failed",
            target=shop,
            before=_masked(shop),
            after={"problem": message, "held": not passing},
            reason=reason,
        )


def hold_token(shop: Shop, *, reason: str) -> bool:
    """Hold all the shop's calls until it has a working token. False when a hold was already open."""
    if has_token_hold(shop):
        return False
    created = OutboundHold.objects.bulk_create(
        [OutboundHold(shop=shop, kind=OutboundHold.Kind.TOKEN, reason=reason[:2000])], ignore_conflicts=True
    )
    return bool(created)


def clear_token_hold(shop: Shop, *, reason: str) -> int:
    """Release the shop's calls held for its token and forget its token problem (a new token was
    set or refreshed). Returns the holds cleared (0 or 1)."""
    now = timezone.now()
    if shop.token_problem:
        shop.token_problem = ""
        Shop.objects.filter(pk=shop.pk).update(token_problem="", updated_at=now)
    return OutboundHold.objects.filter(shop=shop, kind=OutboundHold.Kind.TOKEN, cleared_at__isnull=True).update(
        cleared_at=now, cleared_reason=reason[:2000]
    )


def refresh_expiring_tokens(within: timedelta = timedelta(minutes=10), now=None) -> list[dict]:
    """Refresh every installed shop's token that expires within `within` (or has expired), for the
    worker's schedule. Shops with an open token hold are left out: their refresh was refused and
    needs a person, and asking again on every run would only repeat the refusal. Returns one
    {"shop": domain, "ok": bool, "message": str} per shop tried."""
    now = now or timezone.now()
    shops = (
        Shop.objects.filter(state=Shop.State.INSTALLED, access_token_expires_at__lte=now + within)
        .exclude(refresh_token="")
        .exclude(
            Exists(
                OutboundHold.objects.filter(shop=OuterRef("pk"), kind=OutboundHold.Kind.TOKEN, cleared_at__isnull=True)
            )
        )
        .order_by("access_token_expires_at")
    )
    results = []
    for shop in shops:
        expires = shop.access_token_expires_at
        ok, message = refresh_token(shop, reason=f"scheduled: the access token expires at {expires:%H:%M:%S} UTC")
        results.append({"shop": shop.domain, "ok": ok, "message": message})
    return results


def token_state(shop: Shop, now=None) -> dict:
    """The token as the health page and `shops check` show it (never the token itself):

    {"valid": bool, "expires_at": datetime|None, "refreshed_at": datetime|None, "problem": str,
     "expiring": bool, "refresh_expires_at": datetime|None, "masked": str, "refresh_masked": str,
     "held": bool}

    valid: the shop has a token, it has not expired, and no token hold is open. `problem` says
    why not ("" when valid)."""
    now = now or timezone.now()
    held = has_token_hold(shop)
    expires_at = shop.access_token_expires_at
    problem = ""
    if not shop.access_token:
        problem = "the shop has no access token"
    elif held:
        problem = shop.token_problem or "the token could not be refreshed; the shop's calls are held"
    elif expires_at is not None and expires_at <= now:
        problem = f"the access token expired at {expires_at:%Y-%m-%d %H:%M:%S} UTC" + (
            "" if shop.refresh_token else " and there is no refresh token"
        )
    return {
        "valid": bool(shop.access_token) and not held and (expires_at is None or expires_at > now),
        "expires_at": expires_at,
        "refreshed_at": shop.token_refreshed_at,
        "problem": problem,
        "expiring": expires_at is not None,
        "refresh_expires_at": shop.refresh_token_expires_at,
        "masked": mask_secret(shop.access_token),
        "refresh_masked": mask_secret(shop.refresh_token),
        "held": held,
    }


__all__ = [
    "clear_token_hold",
    "has_token_hold",
    "hold_token",
    "refresh_expiring_tokens",
    "refresh_token",
    "refresh_token_outcome",
    "token_state",
]
