"""A shop's Admin API version: the one it asks for, the one Shopify answered with, how long that
version stays supported, and the deprecated things Shopify said our calls used.

Shopify ships a stable version each quarter (YYYY-01, -04, -07, -10) at 17:00 UTC on the quarter's
first day and supports each for at least 12 months; a retired version is served as the oldest
supported one ("fall forward") without an error, which shows only in `X-Shopify-API-Version`
(facts file, section 6). `X-Shopify-API-Deprecated-Reason` lists the deprecated fields a request
used. The sender records both on every call (`record_answer`); `version_state` reads them.
"""

import re
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.utils import timezone

from console.audit import record_action
from integrations.models import ApiNotice, HealthCheck, Shop

UNSTABLE = "unstable"
SUPPORT_MONTHS = 12
WARN_DAYS = 90  # warn when the version leaves support within this many days
DEPRECATION_WARN_DAYS = 30  # a deprecation seen this recently is a warning; older ones are history
RELEASE_HOUR_UTC = 17
_VERSION = re.compile(r"^(\d{4})-(01|04|07|10)$")


def support_window(version: str) -> tuple[datetime | None, datetime | None]:
    """(released, supported_until) of a quarterly version, both UTC datetimes; (None, None) for
    `unstable` or anything that is not a quarterly version. `supported_until` is the release plus
    12 months: Shopify's minimum (it has retired versions some days later, never earlier)."""
    match = _VERSION.match(version or "")
    if not match:
        return None, None
    year, month = int(match[1]), int(match[2])
    released = datetime(year, month, 1, RELEASE_HOUR_UTC, tzinfo=UTC)
    return released, released.replace(year=year + SUPPORT_MONTHS // 12)


def version_state(shop: Shop, now=None) -> dict:
    """What the shop's version means now, without calling Shopify:

    {"requested": str, "answered": str ("" until a call was answered), "released": datetime|None,
     "supported_until": datetime|None, "days_left": int|None, "fell_forward": bool,
     "deprecations": [{"notice", "api_version", "times", "first_seen", "last_seen", "last_call", "recent"}],
     "warnings": [str, ...]}

    The window is that of the answered version when known (what the shop's calls really use),
    else of the requested one. Warnings: `unstable`; a version within WARN_DAYS of leaving support
    or past it; a request that fell forward; a deprecation seen in the last DEPRECATION_WARN_DAYS.
    """
    now = now or timezone.now()
    requested, answered = shop.api_version, shop.answered_api_version
    effective = answered or requested
    released, supported_until = support_window(effective)
    days_left = (supported_until - now).days if supported_until else None
    warnings: list[str] = []
    if UNSTABLE in (requested, answered):
        warnings.append(
            "the shop uses the unstable API version, which changes without notice and is not for production"
        )
    fell_forward = bool(answered and requested and answered != requested)
    if fell_forward:
        warnings.append(
            f"the shop requests {requested} but Shopify answered with {answered}: {requested} is not served (retired "
            f"or not released), so calls fell forward; set the shop to a supported version"
        )
    if supported_until is not None:
        if supported_until <= now:
            warnings.append(f"{effective} left support on {supported_until:%Y-%m-%d}; move the shop to a newer version")
        elif days_left is not None and days_left <= WARN_DAYS:
            warnings.append(
                f"{effective} leaves support around {supported_until:%Y-%m-%d} ({days_left} days): move the shop to a "
                "newer version before then"
            )
    elif effective != UNSTABLE:
        warnings.append(f"{effective!r} is not a quarterly API version (YYYY-01, -04, -07 or -10)")
    recent_since = now - timedelta(days=DEPRECATION_WARN_DAYS)
    deprecations = [
        {
            "notice": notice.notice,
            "api_version": notice.api_version,
            "times": notice.times,
            "first_seen": notice.first_seen,
            "last_seen": notice.last_seen,
            "last_call": notice.last_call_id,
            "recent": notice.last_seen >= recent_since,
        }
        for notice in ApiNotice.objects.filter(shop=shop).order_by("-last_seen", "notice")
    ]
    recent = [item for item in deprecations if item["recent"]]
    if recent:
        used = ", ".join(
            f"{item['notice']} ({item['times']} times, last {item['last_seen']:%Y-%m-%d})" for item in recent
        )
        warnings.append(f"our calls used deprecated API features that a later version may remove: {used}")
    return {
        "requested": requested,
        "answered": answered,
        "released": released,
        "supported_until": supported_until,
        "days_left": days_left,
        "fell_forward": fell_forward,
        "deprecations": deprecations,
        "warnings": warnings,
    }


def check_version(shop: Shop, *, triggered_by: str, now=None) -> dict:
    """`version_state`, recorded as a HealthCheck(kind="version") (ok = no warnings). Returns the state."""
    state = version_state(shop, now=now)
    HealthCheck.objects.create(
        shop=shop,
        kind=HealthCheck.Kind.VERSION,
        ok=not state["warnings"],
        problems=[f"API version: {warning}." for warning in state["warnings"]],
        details=_jsonable(state),
        triggered_by=triggered_by[:100],
    )
    return state


def _jsonable(value):
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def deprecation_notices(header: str) -> list[str]:
    """The separate deprecations in an `X-Shopify-API-Deprecated-Reason` value ("Product.bodyHtml,
    Order.totalPrice"; older versions send one documentation URL), each once, in order."""
    notices: list[str] = []
    for part in (header or "").split(","):
        part = part.strip()[:500]
        if part and part not in notices:
            notices.append(part)
    return notices


def record_answer(shop: Shop, *, api_version: str, deprecation: str, call_id: int | None = None, now=None) -> None:
    """Note what one answer from Shopify said about versions: the version that answered (written to
    the shop only when it changed, so nothing per call) and each deprecation it reported (one
    INSERT … ON CONFLICT for all of them, counting repeats). Updates `shop` in place."""
    now = now or timezone.now()
    if api_version and api_version != shop.answered_api_version:
        previous = shop.answered_api_version
        changed = (
            Shop.objects.filter(pk=shop.pk)
            .exclude(answered_api_version=api_version)
            .update(answered_api_version=api_version)
        )
        shop.answered_api_version = api_version
        if changed and previous:  # a change, not the first answer: it belongs on the lifecycle timeline
            record_action(
                actor=None,
                verb="shop.api_version_changed",
                target=shop,
                before={"answered_api_version": previous},
                after={"answered_api_version": api_version, "requested": shop.api_version},
                reason=f"Shopify answered with {api_version} (was {previous}; the shop requests {shop.api_version})",
            )
    notices = deprecation_notices(deprecation)
    if notices:
        _upsert_notices(shop.pk, notices, api_version, call_id, now)


def _upsert_notices(shop_id: int, notices: list[str], api_version: str, call_id: int | None, now) -> None:
    quote = connection.ops.quote_name
    table = quote(ApiNotice._meta.db_table)
    names = ["shop_id", "notice", "api_version", "first_seen", "last_seen", "times", "last_call_id"]
    field = ApiNotice._meta.get_field("last_seen")
    when = field.get_db_prep_save(now, connection)
    values: list = []
    for notice in notices:
        values += [shop_id, notice, api_version[:16], when, when, 1, call_id]
    rows = ", ".join(["(" + ", ".join(["%s"] * len(names)) + ")"] * len(notices))
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(name) for name in names)}) VALUES {rows} "  # noqa: S608
        f"ON CONFLICT ({quote('shop_id')}, {quote('notice')}) DO UPDATE SET "
        f"{quote('times')} = {table}.{quote('times')} + 1, "
        f"{quote('last_seen')} = EXCLUDED.{quote('last_seen')}, "
        f"{quote('api_version')} = EXCLUDED.{quote('api_version')}, "
        f"{quote('last_call_id')} = EXCLUDED.{quote('last_call_id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)


__all__ = ["check_version", "deprecation_notices", "record_answer", "support_window", "version_state"]
