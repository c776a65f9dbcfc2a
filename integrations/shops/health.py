"""A shop's API health in one place, for the health page, the `shops check` command and the
worker's schedule: token, access scopes (granted vs required), API version and deprecations,
webhook subscriptions, the outbound queue, the throttle, recent outbound failures by class,
ownership drift, and the app's lifecycle timeline.

`run_checks` asks Shopify (scopes, subscriptions) and records each check; `health_report` reads
what is known without calling Shopify, so the page is fast and works when Shopify does not.
"""

from datetime import timedelta

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Max, Min
from django.utils import timezone

from console.models import AuditEntry
from integrations.models import Event, HealthCheck, OutboundCall, OutboundHold, Shop, SubscriptionGap

LIFECYCLE_TOPICS = ("app/uninstalled", "app/scopes_update")
# Audit verbs that belong on a shop's lifecycle timeline, in words.
LIFECYCLE_VERBS = {
    "shop.register": "registered in the console",
    "shop.update": "settings changed",
    "shop.uninstalled": "app uninstalled",
    "shop.reinstalled": "app reinstalled",
    "shop.rotate_webhook_secret": "webhook secret rotated",
    "shop.retire_webhook_secret": "previous webhook secret retired",
    "shop.set_access_token": "access token set",
    "shop.token_refreshed": "access token refreshed",
    "shop.token_refresh_failed": "access token refresh failed",
    "shop.resubscribe": "webhook subscription re-created",
    "shop.api_version_changed": "Shopify answered with another API version",
    "outbound.pause": "outbound queue paused",
    "outbound.resume": "outbound queue resumed",
    "ownership.change": "data ownership changed",
    "ownership.override": "a non-owner write allowed once",
}


def run_checks(shop: Shop, *, triggered_by: str) -> dict:
    """Ask Shopify now (scopes, subscriptions), record the checks, and return the full report."""
    from integrations.shops.scopes import check_scopes
    from integrations.shops.subscriptions import check_subscriptions

    scopes = check_scopes(shop, triggered_by=triggered_by)
    subscriptions = check_subscriptions(shop, triggered_by=triggered_by)
    shop.refresh_from_db()
    return health_report(shop, scopes=scopes, subscriptions=subscriptions)


def _latest_check(shop: Shop, kind: str) -> HealthCheck | None:
    return HealthCheck.objects.filter(shop=shop, kind=kind).order_by("-id").first()


def health_report(shop: Shop, *, scopes: dict | None = None, subscriptions: dict | None = None, now=None) -> dict:
    """Everything known about the shop's API health; `problems` lists what needs a person."""
    from integrations.outbound.throttle import throttle
    from integrations.shops.ownership import drift_count
    from integrations.shops.tokens import token_state
    from integrations.shops.versions import version_state

    now = now or timezone.now()
    if scopes is None:
        check = _latest_check(shop, HealthCheck.Kind.SCOPES)
        scopes = {**(check.details if check else {}), "checked_at": check.checked_at if check else None}
    if subscriptions is None:
        check = _latest_check(shop, HealthCheck.Kind.SUBSCRIPTIONS)
        subscriptions = {**(check.details if check else {}), "checked_at": check.checked_at if check else None}
    token = token_state(shop)
    version = version_state(shop, now=now)
    queue = queue_state(shop, now=now)
    bucket = throttle().bucket(shop.pk)
    report = {
        "shop": shop.domain,
        "token": token,
        "scopes": scopes,
        "api_version": version,
        "subscriptions": subscriptions,
        "queue": queue,
        "throttle": {
            "available": round(bucket.available, 1),
            "maximum": bucket.maximum,
            "restore_rate": bucket.restore_rate,
        },
        "holds": list(
            OutboundHold.objects.filter(shop=shop, cleared_at__isnull=True).values("kind", "scope", "reason", "since")
        ),
        "gaps": list(SubscriptionGap.objects.filter(shop=shop, closed_at__isnull=True).order_by("topic")),
        "errors_by_class": errors_by_class(shop, now=now),
        "ownership_drift": drift_count(shop, days=7),
    }
    report["problems"] = problems(report, shop)
    return report


def problems(report: dict, shop: Shop) -> list[str]:
    found = []
    if shop.state == Shop.State.UNINSTALLED:
        found.append("The app is uninstalled from this shop.")
    token = report["token"]
    if not token.get("valid"):
        found.append(f"Access token: {token.get('problem') or 'missing or expired'}.")
    scopes = report["scopes"]
    if scopes.get("error"):
        found.append(f"Scopes could not be checked: {scopes['error']}")
    elif scopes.get("missing"):
        found.append(f"Missing access scopes: {', '.join(scopes['missing'])}.")
    elif not scopes.get("granted") and not scopes.get("checked_at"):
        found.append("Scopes have not been checked yet.")
    for warning in report["api_version"].get("warnings", []):
        found.append(f"API version: {warning}")
    subscriptions = report["subscriptions"]
    if subscriptions.get("error"):
        found.append(f"Webhook subscriptions could not be checked: {subscriptions['error']}")
    elif subscriptions.get("missing"):
        found.append(f"Missing webhook subscriptions: {', '.join(subscriptions['missing'])}.")
    if report["queue"]["paused"]:
        found.append(f"The outbound queue is paused: {report['queue']['reason'] or 'no reason recorded'}.")
    if report["ownership_drift"]:
        found.append(f"{report['ownership_drift']} changes to platform-owned data came from elsewhere in 7 days.")
    return found


def queue_state(shop: Shop, *, now=None) -> dict:
    """Paused (with the reason given), unfinished calls, and the age of the oldest one."""
    now = now or timezone.now()
    unfinished = OutboundCall.objects.filter(shop=shop, status__in=OutboundCall.ACTIVE).aggregate(
        depth=Count("id"), oldest=Min("created_at")
    )
    reason = ""
    if shop.queue_paused:
        last = (
            AuditEntry.objects.filter(
                target_type=ContentType.objects.get_for_model(Shop), target_id=str(shop.pk), verb="outbound.pause"
            )
            .order_by("-id")
            .values_list("reason", flat=True)
            .first()
        )
        reason = last or ""
    oldest = unfinished["oldest"]
    return {
        "paused": shop.queue_paused,
        "reason": reason,
        "depth": unfinished["depth"],
        "oldest_age_s": round((now - oldest).total_seconds(), 1) if oldest else None,
    }


def errors_by_class(shop: Shop, *, now=None, days: int = 7) -> list[dict]:
    """Failed calls of the last `days` by failure kind, each with its latest reason."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    rows = (
        OutboundCall.objects.filter(shop=shop, status=OutboundCall.Status.FAILED, created_at__gte=since)
        .values("failure_kind", "classification")
        .annotate(count=Count("id"), last_id=Max("id"))
        .order_by("-count")
    )
    rows = list(rows)
    reasons = dict(OutboundCall.objects.filter(pk__in=[r["last_id"] for r in rows]).values_list("pk", "reason"))
    return [{**row, "last_reason": reasons.get(row["last_id"], "")} for row in rows]


def lifecycle_timeline(shop: Shop, *, limit: int = 100) -> list[dict]:
    """Install, uninstall, reinstall, scope changes, token refreshes and failures, version
    changes, pauses, secret rotations, ownership changes: newest first, from the audit trail and
    the app's lifecycle webhooks."""
    entries = (
        AuditEntry.objects.filter(target_type=ContentType.objects.get_for_model(Shop), target_id=str(shop.pk))
        .filter(verb__in=list(LIFECYCLE_VERBS))
        .order_by("-id")[:limit]
    )
    items = []
    for entry in entries:
        what = LIFECYCLE_VERBS[entry.verb]
        if entry.verb == "shop.update":
            changed = sorted(set((entry.after or {}).keys()) | set((entry.before or {}).keys()))
            if "api_version" in changed:
                what = (
                    f"API version changed from {(entry.before or {}).get('api_version')} to "
                    f"{(entry.after or {}).get('api_version')}"
                )
            elif changed:
                what = f"settings changed: {', '.join(changed)}"
        items.append(
            {
                "at": entry.created_at,
                "what": what,
                "who": entry.actor_label,
                "reason": entry.reason,
                "source": "audit",
                "id": entry.pk,
            }
        )
    for event in Event.objects.filter(shop=shop, topic__in=LIFECYCLE_TOPICS).order_by("-id")[:limit]:
        what = "Shopify: app uninstalled" if event.topic == "app/uninstalled" else "Shopify: access scopes changed"
        items.append(
            {
                "at": event.received_at,
                "what": what,
                "who": "Shopify",
                "reason": event.status_reason,
                "source": "event",
                "id": event.pk,
            }
        )
    items.sort(key=lambda item: item["at"], reverse=True)
    return items[:limit]


def check_json(report: dict) -> dict:
    """The `shops check --json` object: the documented keys, plus the problems."""
    scopes, subscriptions, version = report["scopes"], report["subscriptions"], report["api_version"]
    token = report["token"]
    return {
        "shop": report["shop"],
        "ok": not report["problems"],
        "problems": report["problems"],
        "token": {
            "valid": token.get("valid"),
            "expires_at": _iso(token.get("expires_at")),
            "refreshed_at": _iso(token.get("refreshed_at")),
        },
        "scopes": {key: sorted(scopes.get(key) or []) for key in ("granted", "required", "missing", "extra")},
        "api_version": {
            "requested": version.get("requested"),
            "answered": version.get("answered"),
            "supported_until": _iso(version.get("supported_until")),
            "deprecations": version.get("deprecations", []),
        },
        "subscriptions": {key: sorted(subscriptions.get(key) or []) for key in ("expected", "actual", "missing")},
        "queue": report["queue"],
        "throttle": report["throttle"],
        "ownership_drift": report["ownership_drift"],
    }


def _iso(value):
    return value.isoformat() if hasattr(value, "isoformat") else value
