"""Access scopes: what the console needs (declared in code on each outbound operation and each job
type), what Shopify granted a shop, and the holds that keep back the calls needing a missing scope.

A missing scope holds only the operations that need it (an `OutboundHold(kind="scope")`), never the
whole shop: the calls stay queued, unsent, and run once a scope check finds the scope granted
again. Shopify's write_X implies read_X (facts file, section 5), so a granted write scope counts
for its read scope too.
"""

from django.db import transaction
from django.utils import timezone

from integrations.models import HealthCheck, OutboundHold, Shop
from integrations.outbound.client import AdminClient, Reply

SCOPES_QUERY = "{ currentAppInstallation { accessScopes { handle } } }"


def implied(scopes) -> set[str]:
    """The scopes, with the read scope each write scope implies."""
    result = set(scopes)
    for scope in scopes:
        for prefix in ("write_", "unauthenticated_write_"):
            if scope.startswith(prefix):
                result.add(prefix.replace("write_", "read_") + scope[len(prefix) :])
    return result


def required_scopes() -> dict[str, list[str]]:
    """Every scope something in the console needs -> who needs it ("operation order.add_tags",
    "job tag_notified_order"), sorted by scope."""
    from integrations.jobs.registry import JOB_TYPES
    from integrations.outbound.operations import OPERATIONS

    needs: dict[str, list[str]] = {}
    for name, operation in sorted(OPERATIONS.items()):
        for scope in operation.scopes:
            needs.setdefault(scope, []).append(f"operation {name}")
    for name, job_type in sorted(JOB_TYPES.items()):
        for scope in job_type.scopes:
            needs.setdefault(scope, []).append(f"job {name}")
    return dict(sorted(needs.items()))


def operations_needing(scope: str) -> list[str]:
    from integrations.outbound.operations import OPERATIONS

    return sorted(name for name, operation in OPERATIONS.items() if scope in operation.scopes)


def read_granted_scopes(shop: Shop) -> tuple[list[str] | None, str, Reply]:
    """(granted handles as Shopify lists them, "" ) or (None, why not, reply): one Admin API read."""
    reply = AdminClient(shop).graphql(SCOPES_QUERY)
    problem = reply.failure()
    if problem:
        return None, problem, reply
    installation = reply.data.get("currentAppInstallation")
    scopes = installation.get("accessScopes") if isinstance(installation, dict) else None
    if not isinstance(scopes, list):
        return None, "Shopify's answer has no currentAppInstallation.accessScopes", reply
    return (
        sorted({str(item.get("handle")) for item in scopes if isinstance(item, dict) and item.get("handle")}),
        "",
        reply,
    )


def check_scopes(shop: Shop, *, triggered_by: str) -> dict:
    """Read the scopes Shopify granted the shop, compare with what the console needs, record a
    HealthCheck(kind="scopes") and open or clear the scope holds. Returns (and stores as the check's
    details, without `checked_at`):

    {"granted": [scope, ...], "required": [scope, ...], "required_by": {scope: ["operation x", "job y"]},
     "missing": [scope, ...], "extra": [scope, ...], "ok": bool, "error": str,
     "held": [scopes whose hold this check opened], "released": [scopes whose hold it cleared],
     "checked_at": datetime}

    `extra` is granted but not needed (a read scope implied by a needed write scope is needed).
    When the scopes cannot be read (`error` set, `granted` empty) the holds are left as they are.
    A 401 on a shop with a refresh token refreshes it once and reads again.
    """
    from integrations.shops.tokens import has_token_hold, refresh_token
    from integrations.shops.versions import record_answer

    needs = required_scopes()
    granted, error, reply = read_granted_scopes(shop)
    if reply.http_status == 401 and shop.refresh_token and not has_token_hold(shop):
        ok, message = refresh_token(shop, reason=f"HTTP 401 on the scope check ({triggered_by})")
        if ok:
            granted, error, reply = read_granted_scopes(shop)
        else:
            error = f"{error}; refreshing the token failed: {message}"
    record_answer(shop, api_version=reply.api_version, deprecation=reply.deprecation)
    result = {
        "granted": granted or [],
        "required": sorted(needs),
        "required_by": needs,
        "missing": [],
        "extra": [],
        "ok": False,
        "error": error,
        "held": [],
        "released": [],
    }
    problems: list[str] = []
    with transaction.atomic():
        if granted is None:
            problems.append(f"The granted scopes could not be read: {error}.")
        else:
            have = implied(granted)
            missing = [scope for scope in needs if scope not in have]
            needed = implied(needs)
            result["missing"] = missing
            result["extra"] = [scope for scope in granted if scope not in needed]
            result["ok"] = not missing
            for scope in missing:
                operations = operations_needing(scope)
                held = (
                    f"; calls of {', '.join(operations)} are held until it is granted"
                    if operations
                    else "; no outbound call needs it, so none is held"
                )
                problems.append(
                    f"The app lacks {scope}, needed by {', '.join(needs[scope])}: ask the merchant to approve it{held}."
                )
            result["held"] = open_scope_holds(shop, missing, reason=f"missing on the scope check ({triggered_by})")
            result["released"] = clear_scope_holds(
                shop, keep=missing, reason=f"granted on the scope check ({triggered_by})"
            )
        check = HealthCheck.objects.create(
            shop=shop,
            kind=HealthCheck.Kind.SCOPES,
            ok=result["ok"],
            problems=problems,
            details=result,
            triggered_by=triggered_by[:100],
        )
    return {**result, "checked_at": check.checked_at}


def open_scope_holds(shop: Shop, scopes, *, reason: str) -> list[str]:
    """Open a hold for each scope that has none open. Returns the scopes newly held."""
    scopes = sorted(set(scopes))
    if not scopes:
        return []
    already = set(
        OutboundHold.objects.filter(
            shop=shop, kind=OutboundHold.Kind.SCOPE, scope__in=scopes, cleared_at__isnull=True
        ).values_list("scope", flat=True)
    )
    new = [scope for scope in scopes if scope not in already]
    # ignore_conflicts: another sender or check may open the same hold at the same moment
    # (int_hold_one_open allows one open hold per shop and scope).
    OutboundHold.objects.bulk_create(
        [
            OutboundHold(shop=shop, kind=OutboundHold.Kind.SCOPE, scope=scope, reason=f"{scope}: {reason}"[:2000])
            for scope in new
        ],
        ignore_conflicts=True,
    )
    return new


def clear_scope_holds(shop: Shop, *, keep=(), reason: str) -> list[str]:
    """Clear the shop's open scope holds except those for `keep`. Returns the scopes released."""
    holds = OutboundHold.objects.filter(shop=shop, kind=OutboundHold.Kind.SCOPE, cleared_at__isnull=True).exclude(
        scope__in=list(keep)
    )
    released = sorted(holds.values_list("scope", flat=True))
    if released:
        holds.filter(scope__in=released).update(cleared_at=timezone.now(), cleared_reason=reason[:2000])
    return released


__all__ = [
    "check_scopes",
    "clear_scope_holds",
    "implied",
    "open_scope_holds",
    "operations_needing",
    "read_granted_scopes",
    "required_scopes",
]
