"""Who owns the truth of each Shopify resource (and of some of their fields) by default, declared
next to the field maps (`fields`); and ownership drift, which the sync jobs note as they write.

Owners:
- "shopify": Shopify is the source of truth; the platform keeps a copy and does not write it.
- "platform": the platform is the source of truth and pushes it to Shopify; a webhook that is not
  an echo of our own call and changes it means something else wrote it (ownership drift).
- "shared": both add to it and neither overwrites it. Only tags are shared: merchants and other
  apps tag orders and customers in Shopify, and the platform adds its own tags
  (`fulfillment-notified`, `buyer`) with `tagsAdd`, which adds to the list and never removes or
  replaces anyone's tag. So the platform may add tags, a write that replaces the whole list
  (`customer.update` with `tags`) is blocked like a non-owner write, and a tag changed in Shopify
  is not drift.
- any other name ("erp", "pim", another app): that system owns it; the platform does not write
  it and does not report drift on it.

A shop's OwnershipRule rows override these (`integrations.shops.ownership`): a rule for a field,
else a rule for the whole resource, else the field's default here, else the resource's.

Drift is noted only for resources with platform-owned fields the platform stores, only for
webhooks that are not echoes, and only when the event is newer than the stored record (an older
one is not written anyway): one indexed SELECT by the records' unique key before the upsert, and
one INSERT … ON CONFLICT (event, field) DO NOTHING when a value differs, so a replay adds nothing.
"""

import json
import threading
import weakref
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from integrations.jobs.fields import RESOURCES, Field, Resource
from integrations.models import Event, OwnershipDrift, OwnershipRule, Shop

SHOPIFY = "shopify"
PLATFORM = "platform"
SHARED = "shared"
KNOWN_OWNERS = (SHOPIFY, PLATFORM, SHARED)

# (resource, field) -> (owner, why); field "" is the whole resource.
DEFAULTS: dict[tuple[str, str], tuple[str, str]] = {
    ("order", ""): (SHOPIFY, "Orders are placed and changed in Shopify (checkout, admin); the platform keeps a copy."),
    ("order", "tags"): (
        SHARED,
        "Merchants tag orders in Shopify; the platform only adds its own tag (fulfillment-notified).",
    ),
    ("customer", ""): (SHOPIFY, "Customers sign up and are edited in Shopify; the platform keeps a copy."),
    ("customer", "tags"): (SHARED, "Merchants tag customers in Shopify; the platform only adds its own tag (buyer)."),
    ("product", ""): (SHOPIFY, "Handles, status, vendor and tags are managed in Shopify."),
    ("product", "title"): (PLATFORM, "The platform is the catalogue: it owns product content."),
    ("product", "body_html"): (PLATFORM, "The platform is the catalogue: it owns product descriptions."),
    ("variant", ""): (SHOPIFY, "Prices and SKUs are managed in Shopify."),
    # The warehouse sets counts (compare-guarded), Shopify lowers them with every sale: both write,
    # neither blindly overwrites, and a sale is not drift. A shop whose warehouse must be the only
    # writer sets inventory_level.available -> platform.
    ("inventory_level", ""): (
        SHARED,
        "The warehouse sets counts (compare-guarded); Shopify lowers them with each sale.",
    ),
    ("inventory_level", "available"): (
        SHARED,
        "The warehouse sets counts (compare-guarded); Shopify lowers them with each sale, which is not drift.",
    ),
}

# Fields an operation can write that the platform does not store (so drift on them is not seen).
UNSTORED_FIELDS: dict[str, tuple[str, ...]] = {"product": ("body_html",), "customer": ("note",)}


def stored_fields(resource: Resource) -> tuple[Field, ...]:
    """The fields of a resource that can have an owner: every mapped field but its gid."""
    return tuple(f for f in resource.fields if f.platform != "gid")


def field_names(resource_name: str) -> tuple[str, ...]:
    """Every field of the resource an owner can be set for: stored ones, then unstored ones."""
    resource = RESOURCES[resource_name]
    return (*(f.platform for f in stored_fields(resource)), *UNSTORED_FIELDS.get(resource_name, ()))


def default_owner(resource: str, field: str = "") -> str:
    """The code default: the field's, else the resource's, else Shopify's."""
    found = DEFAULTS.get((resource, field)) or DEFAULTS.get((resource, "")) or (SHOPIFY, "")
    return found[0]


def default_reason(resource: str, field: str = "") -> str:
    found = DEFAULTS.get((resource, field)) or DEFAULTS.get((resource, "")) or (SHOPIFY, "")
    return found[1]


Rules = dict[tuple[str, str], str]


def resolve(rules: Rules, resource: str, field: str = "") -> str:
    """A field's rule, else the resource's rule, else the code default."""
    if field and (resource, field) in rules:
        return rules[(resource, field)]
    if (resource, "") in rules:
        return rules[(resource, "")]
    return default_owner(resource, field)


def rules_of(shop_id: int) -> Rules:
    """The shop's rules, one indexed query (int_owner_unique starts with shop)."""
    rows = OwnershipRule.objects.filter(shop_id=shop_id).values_list("resource", "field", "owner")
    return {(resource, field): owner for resource, field, owner in rows}


# Per thread: the transaction block the rules were read in (a weak reference: it dies with the
# block) and shop id -> (the shop's updated_at they were read for, rules). A pump runs a batch's
# jobs in one block, so a shop's rules are read once per batch, not per event, and a change
# (`set_owner`, which also touches the shop's updated_at) is seen by the next batch.
_local = threading.local()


def cached_rules(shop: Shop) -> Rules:
    """The shop's rules, read once per shop per transaction block (a pump's batch). Outside a
    transaction nothing is kept: one query."""
    blocks = connection.atomic_blocks
    if not blocks:
        return rules_of(shop.pk)
    block = blocks[-1]
    cache = getattr(_local, "cache", None)
    if cache is None or cache[0]() is not block:
        cache = _local.cache = (weakref.ref(block), {})
    hit = cache[1].get(shop.pk)
    if hit is not None and hit[0] == shop.updated_at:
        return hit[1]
    rules = rules_of(shop.pk)
    cache[1][shop.pk] = (shop.updated_at, rules)
    return rules


def forget_cached_rules() -> None:
    _local.cache = None


def platform_owned_stored(rules: Rules, resource: Resource) -> tuple[Field, ...]:
    """The resource's stored fields the platform owns under these rules (drift is watched on them)."""
    return tuple(f for f in stored_fields(resource) if resolve(rules, resource.name, f.platform) == PLATFORM)


# --- drift ----------------------------------------------------------------------------------


def watched_fields(event: Event, resource: Resource) -> tuple[Field, ...]:
    """The fields whose change by this event would be drift: none for an echo of our own call, or
    when the shop's platform owns none of the resource's stored fields (no query either way)."""
    if event.echo_of_id is not None:
        return ()
    return platform_owned_stored(cached_rules(event.shop), resource)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def note_drift(
    resource: Resource,
    event: Event,
    rows: list[tuple[dict, dict, datetime, str]],
    watched: tuple[Field, ...],
) -> int:
    """Before the upsert: for each (key, values, updated_at, gid) the event will write, compare the
    watched fields with the record the platform holds and record each difference as drift. One
    SELECT for all the rows, one INSERT for all the differences. Returns the drifts inserted."""
    if not rows or not watched:
        return 0
    model = resource.model
    key_names = tuple(resource.key)
    if len(key_names) == 1:
        lookup = Q(**{f"{key_names[0]}__in": [key[key_names[0]] for key, *_ in rows]})
    else:
        lookup = Q()
        for key, *_ in rows:
            lookup |= Q(**key)
    extra = ["redacted_at"] if resource.has_redaction else []
    names = [f.platform for f in watched]
    held = {
        tuple(row[k] for k in key_names): row
        for row in model.objects.filter(lookup, shop_id=event.shop_id).values(
            *key_names, *names, "shopify_updated_at", *extra
        )
    }
    now = timezone.now()
    found = []
    for key, values, updated_at, gid in rows:
        ours = held.get(tuple(key[k] for k in key_names))
        if ours is None or ours["shopify_updated_at"] >= updated_at:
            continue  # nothing held to compare with, or the event is not newer: nothing is written
        redacted = bool(ours.get("redacted_at"))
        if redacted and resource.frozen_when_redacted:
            continue
        for f in watched:
            if redacted and f.personal:
                continue
            column = model._meta.get_field(f.platform)
            before, after = column.to_python(ours[f.platform]), column.to_python(values[f.platform])
            if before != after:
                found.append((f.platform, gid[:255], _text(before), _text(after)))
    if not found:
        return 0
    return _insert(event, resource.name, found, now)


def _insert(event: Event, resource_name: str, found: list[tuple[str, str, str, str]], now: datetime) -> int:
    quote = connection.ops.quote_name
    table = quote(OwnershipDrift._meta.db_table)
    observed = OwnershipDrift._meta.get_field("observed_at").get_db_prep_save(now, connection)
    columns = ("shop_id", "resource", "field", "record_gid", "event_id", "before", "after", "observed_at")
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - names from model metadata
        f"VALUES {', '.join(['(%s, %s, %s, %s, %s, %s, %s, %s)'] * len(found))} "
        f"ON CONFLICT ({quote('event_id')}, {quote('field')}) DO NOTHING"
    )
    params: list = []
    for field, gid, before, after in found:
        params += [event.shop_id, resource_name, field, gid, event.pk, before, after, observed]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return max(cursor.rowcount, 0)
