"""The ownership map of a shop: which system owns the truth of each resource and field (defaults
in code, `integrations.jobs.ownership`; admins change them per shop, audited), the check that
blocks a write to Shopify by a non-owner (an admin may override one call with a reason, audited),
and the drift report: changes made in Shopify by something else to fields the platform owns.

`check_write` runs in `outbound.queue.enqueue` (a fresh read of the shop's rules: one indexed
query) and `enqueue_for_event` (the rules cached per shop version: no query per event).
"""

import re
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, F, Max, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from console.audit import record_action
from integrations.jobs.fields import RESOURCES
from integrations.jobs.ownership import (
    DEFAULTS,
    KNOWN_OWNERS,
    PLATFORM,
    SHARED,
    Rules,
    default_owner,
    default_reason,
    field_names,
    forget_cached_rules,
    resolve,
    rules_of,
)
from integrations.jobs.ownership import cached_rules as cached_rules
from integrations.models import OwnershipDrift, OwnershipRule, Shop
from integrations.outbound.queue import QueueError

MANAGE = "integrations.manage_ownership"
RESET = "default"  # set_owner(..., owner="default") removes the shop's rule
OWNER_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
EVENTS_PER_GROUP = 20


class OwnershipError(QueueError):
    """A write the ownership map refuses, or an ownership change that cannot be made."""


# --- the map ----------------------------------------------------------------------------------


def ownership_map(shop: Shop, *, rules: Rules | None = None) -> dict[tuple[str, str], str]:
    """(resource, field) -> owner for every resource ("" field: the whole resource) and every
    field an owner can be set for, as the shop's rules and the defaults make it. One query."""
    rules = rules_of(shop.pk) if rules is None else rules
    owners = {}
    for resource in RESOURCES:
        owners[(resource, "")] = resolve(rules, resource)
        for field in field_names(resource):
            owners[(resource, field)] = resolve(rules, resource, field)
    return owners


def owner_of(shop: Shop, resource: str, field: str = "", *, rules: Rules | None = None) -> str:
    """Who owns the field (or, with field "", the resource) for this shop: the field's rule, else
    the resource's rule, else the code default. One query unless `rules` are given."""
    return resolve(rules_of(shop.pk) if rules is None else rules, resource, field)


def map_rows(shop: Shop) -> list[dict]:
    """The map as the page and `ownership show` list it: one row per resource and field.
    {resource, field, stored, default, default_why, rule, changed_at, changed_by, owner}."""
    rules = {
        (rule.resource, rule.field): rule
        for rule in OwnershipRule.objects.filter(shop=shop).select_related("changed_by")
    }
    owners = {key: rule.owner for key, rule in rules.items()}
    rows = []
    for name, resource in RESOURCES.items():
        stored = {f.platform for f in resource.fields}
        for field in ("", *field_names(name)):
            rule = rules.get((name, field))
            rows.append(
                {
                    "resource": name,
                    "field": field,
                    "stored": field == "" or field in stored,
                    "default": default_owner(name, field),
                    "default_why": default_reason(name, field),
                    "field_default": (name, field) in DEFAULTS,
                    "rule": rule.owner if rule else None,
                    "changed_at": rule.changed_at if rule else None,
                    "changed_by": rule.changed_by.get_username() if rule and rule.changed_by else None,
                    "owner": resolve(owners, name, field),
                }
            )
    return rows


def settable_targets() -> list[tuple[str, str]]:
    """(value, label) for every resource and field an owner can be set for: "product" or "product.title"."""
    choices = []
    for name in RESOURCES:
        choices.append((name, f"{name} (whole resource)"))
        choices += [(f"{name}.{field}", f"{name}.{field}") for field in field_names(name)]
    return choices


def set_owner(shop: Shop, resource: str, field: str, owner: str, *, by, reason: str, request=None) -> dict:
    """Make `owner` own the resource (field "") or one field of it for this shop; owner "default"
    removes the shop's rule. Admins only (manage_ownership); audited as `ownership.change`.
    Returns {resource, field, owner, before, rule, changed} (owner: the effective owner after;
    before: the effective owner before; rule: the rule's owner now or None)."""
    if by is None or not by.has_perm(MANAGE):
        raise PermissionDenied("Only an admin (manage_ownership) can change who owns which data.")
    resource, field, owner = resource.strip().lower(), (field or "").strip(), owner.strip().lower()
    if resource not in RESOURCES:
        raise OwnershipError(f"unknown resource {resource!r}; known: {', '.join(RESOURCES)}")
    if field and field not in field_names(resource):
        raise OwnershipError(
            f"{resource} has no field {field!r}; its fields: {', '.join(field_names(resource))} "
            "(or none, for the whole resource)"
        )
    if owner != RESET and not OWNER_NAME.match(owner):
        raise OwnershipError(
            f"the owner is {', '.join(KNOWN_OWNERS)} or another system's name (lowercase letters, digits, "
            "'-', '_' or '.'), or 'default' to go back to the code default"
        )
    if not (reason or "").strip():
        raise OwnershipError("Say why the owner changes (kept in the audit trail).")
    with transaction.atomic():
        Shop.objects.select_for_update().filter(pk=shop.pk).values_list("pk", flat=True).get()
        rules = rules_of(shop.pk)
        before = resolve(rules, resource, field)
        had = rules.get((resource, field))
        if owner == RESET:
            OwnershipRule.objects.filter(shop=shop, resource=resource, field=field).delete()
            rules.pop((resource, field), None)
        else:
            OwnershipRule.objects.update_or_create(
                shop=shop,
                resource=resource,
                field=field,
                defaults={"owner": owner, "changed_at": timezone.now(), "changed_by": by},
            )
            rules[(resource, field)] = owner
        now_rule = rules.get((resource, field))
        after = resolve(rules, resource, field)
        result = {
            "resource": resource,
            "field": field,
            "owner": after,
            "before": before,
            "rule": now_rule,
            "changed": had != now_rule,
        }
        if had == now_rule:
            return result
        # Pumps read a shop's rules once per version of the shop (`cached_rules`): touch it.
        Shop.objects.filter(pk=shop.pk).update(updated_at=timezone.now())
        record_action(
            actor=by,
            verb="ownership.change",
            target=shop,
            before={"resource": resource, "field": field, "owner": before, "rule": had},
            after={"resource": resource, "field": field, "owner": after, "rule": now_rule},
            reason=reason.strip(),
            request=request,
        )
    forget_cached_rules()
    return result


# --- checking a write -------------------------------------------------------------------------

# Operations that write a tag list by adding to it (tagsAdd): allowed on a shared field.
ADD = "add"
SET = "set"
GUARDED = "guarded"  # a set that a compare guard refuses when the value changed since we read it
# GraphQL input keys whose platform field name is not their snake_case.
_FIELD_NAMES = {"descriptionHtml": "body_html", "bodyHtml": "body_html"}


def _snake(key: str) -> str:
    return _FIELD_NAMES.get(key) or re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _input_fields(data) -> list[tuple[str, str]]:
    keys = sorted(data) if isinstance(data, dict) else []
    return [(_snake(key), SET) for key in keys if key != "id"]


def _inventory_fields(variables: dict) -> list[tuple[str, str]]:
    # inventory.set is always compare-guarded (changeFromQuantity, required by its operation): it
    # never overwrites a change made since we read the level, so on a shared field it is allowed
    # like an addition.
    name = str((variables.get("input") or {}).get("name") or "available")
    return [(name, GUARDED)]


# operation -> (resource, variables -> [(field, how)]). An operation not listed here writes no
# resource data the map covers (so it is not checked).
WRITES = {
    "inventory.set": ("inventory_level", _inventory_fields),
    "order.add_tags": ("order", lambda _variables: [("tags", ADD)]),
    "customer.add_tags": ("customer", lambda _variables: [("tags", ADD)]),
    "product.update": ("product", lambda variables: _input_fields(variables.get("product"))),
    "customer.update": ("customer", lambda variables: _input_fields(variables.get("input"))),
    "order.update": ("order", lambda variables: _input_fields(variables.get("input"))),
    "variant.update": ("variant", lambda variables: _variant_fields(variables)),
}


def _variant_fields(variables: dict) -> list[tuple[str, str]]:
    variant = (variables.get("variants") or [{}])[0]
    fields = _input_fields({key: value for key, value in variant.items() if key != "inventoryItem"})
    if "sku" in (variant.get("inventoryItem") or {}):
        fields.append(("sku", SET))
    return fields


def written_fields(operation: str, variables: dict) -> tuple[str, list[tuple[str, str]]]:
    """(resource, [(field, "add" | "set")]) the operation writes; ("", []) if none the map covers."""
    if operation not in WRITES:
        return "", []
    resource, read = WRITES[operation]
    return resource, read(variables)


def blocked_fields(shop: Shop, operation: str, variables: dict, *, rules: Rules | None = None) -> list[dict[str, str]]:
    """The fields of this write the platform may not write for this shop: [{resource, field,
    owner}]. The platform writes fields it owns, and adds to shared ones (tags)."""
    resource, fields = written_fields(operation, variables)
    if not fields:
        return []
    rules = rules_of(shop.pk) if rules is None else rules
    blocked = []
    for field, how in fields:
        owner = resolve(rules, resource, field)
        if owner == PLATFORM or (owner == SHARED and how in (ADD, GUARDED)):
            continue
        blocked.append({"resource": resource, "field": field, "owner": owner, "how": how})
    return blocked


def _refusal(shop: Shop, operation: str, blocked: list[dict[str, str]]) -> str:
    parts = []
    for item in blocked:
        name = f"{item['resource']}.{item['field']}"
        if item["owner"] == SHARED:
            parts.append(
                f"{name} is shared (Shopify and the platform both add to it), and {operation} would replace it "
                "rather than add to it"
            )
        else:
            parts.append(f"{name} is owned by {item['owner']}, not the platform")
    return (
        f"Not sent: {'; '.join(parts)} for {shop.domain}. The platform only writes what it owns. "
        "If the platform should own it, an admin changes the owner on the shop's ownership page "
        "(or `manage.py ownership set`); to write it this once, an admin overrides the call with a reason."
    )


def check_write(
    shop: Shop,
    operation_name: str,
    variables: dict,
    *,
    override_reason: str | None = None,
    by=None,
    rules: Rules | None = None,
    request=None,
) -> list[dict[str, str]]:
    """Refuse (OwnershipError, a QueueError) a write to fields the platform does not own for this
    shop, naming each field, its owner and how to override. With `override_reason`, an admin
    (manage_ownership) may write them this once: allowed and audited (`ownership.override`);
    anyone else gets PermissionDenied. Returns the fields overridden ([] when none needed it)."""
    blocked = blocked_fields(shop, operation_name, variables, rules=rules)
    if not blocked:
        return []
    if override_reason is None:
        raise OwnershipError(_refusal(shop, operation_name, blocked))
    if by is None or not by.has_perm(MANAGE):
        raise PermissionDenied("Only an admin (manage_ownership) can override who owns which data.")
    if not override_reason.strip():
        raise OwnershipError("Say why the owner's data is written this once (kept in the audit trail).")
    record_action(
        actor=by,
        verb="ownership.override",
        target=shop,
        before={"owners": {f"{b['resource']}.{b['field']}": b["owner"] for b in blocked}},
        after={"operation": operation_name, "fields": [f"{b['resource']}.{b['field']}" for b in blocked]},
        reason=override_reason.strip(),
        request=request,
    )
    return blocked


# --- drift --------------------------------------------------------------------------------------


def _drifts(shop: Shop | int | None, since: datetime, until: datetime | None, resource: str | None, field: str | None):
    # An echo linked after it was processed (`echo.link_early_echoes`) was our own write: not drift.
    drifts = OwnershipDrift.objects.filter(observed_at__gte=since, event__echo_of__isnull=True)
    if shop is not None:
        drifts = drifts.filter(shop_id=shop.pk if isinstance(shop, Shop) else shop)
    if until is not None:
        drifts = drifts.filter(observed_at__lt=until)
    if resource:
        drifts = drifts.filter(resource=resource)
    if field:
        drifts = drifts.filter(field=field)
    return drifts


def drift_report(
    shop: Shop | int | None = None,
    *,
    since: datetime,
    until: datetime | None = None,
    resource: str | None = None,
    field: str | None = None,
) -> list[dict]:
    """Drift per shop, resource and field in [since, until), most recent first:
    [{shop, shop_id, resource, field, count, records, last_seen, events: [event ids, newest first,
    at most 20], latest: {event, record_gid, before, after}}]. Two queries whatever the number."""
    drifts = _drifts(shop, since, until, resource, field)
    groups = list(
        drifts.values("shop_id", "resource", "field")
        .annotate(
            shop=F("shop__domain"),
            count=Count("id"),
            records=Count("record_gid", distinct=True),
            last_seen=Max("observed_at"),
        )
        .order_by("-last_seen", "shop_id", "resource", "field")
    )
    if not groups:
        return []
    ranked = drifts.annotate(
        rank=Window(RowNumber(), partition_by=[F("shop_id"), F("resource"), F("field")], order_by=[F("id").desc()])
    )
    latest: dict[tuple, list[dict]] = {}
    for row in ranked.filter(rank__lte=EVENTS_PER_GROUP).values(
        "shop_id", "resource", "field", "event_id", "record_gid", "before", "after"
    ):
        latest.setdefault((row["shop_id"], row["resource"], row["field"]), []).append(row)
    report = []
    for group in groups:
        rows = sorted(
            latest.get((group["shop_id"], group["resource"], group["field"]), []), key=lambda r: -r["event_id"]
        )
        newest = rows[0] if rows else {}
        report.append(
            {
                "shop": group["shop"],
                "shop_id": group["shop_id"],
                "resource": group["resource"],
                "field": group["field"],
                "count": group["count"],
                "records": group["records"],
                "last_seen": group["last_seen"],
                "events": [row["event_id"] for row in rows],
                "latest": {
                    "event": newest.get("event_id"),
                    "record_gid": newest.get("record_gid", ""),
                    "before": newest.get("before", ""),
                    "after": newest.get("after", ""),
                },
            }
        )
    return report


def drift_count(shop: Shop | int, days: int = 7) -> int:
    """Drifts observed for the shop in the last `days` days (int_drift_shop_idx)."""
    return _drifts(shop, timezone.now() - timedelta(days=days), None, None, None).count()


__all__ = [
    "OwnershipError",
    "cached_rules",
    "check_write",
    "drift_count",
    "drift_report",
    "map_rows",
    "owner_of",
    "ownership_map",
    "set_owner",
]
