"""Comparing one record field by field, and the proposal that follows (plain functions: no I/O).

The owner of each field (the shop's ownership map) holds the truth:
- Shopify owns it and the values differ: write the platform (it keeps a copy);
- the platform owns it: write Shopify, unless Shopify changed the record after the platform last
  synced it (both sides changed since the last sync: a person decides);
- shared or another system: a person decides;
- a field Shopify's API cannot write, owned by the platform: a person decides.
A record changed on either side within the resource's minimum age is still in flight (its
webhook may not have been processed yet): listed as such, not as wrong.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings

from incidents.worksheets.models import WorksheetRow
from incidents.worksheets.resources import ResourceKind
from integrations.jobs.ownership import PLATFORM, SHOPIFY

Kind = WorksheetRow.Kind
Proposal = WorksheetRow.Proposal


@dataclass(frozen=True)
class Rules:
    """Per resource type: values within `tolerances` are equal, `ignored` fields are never
    compared, and a record changed less than `min_age` ago is in flight."""

    min_age: timedelta
    ignored: frozenset[str] = frozenset()
    tolerances: dict[str, Decimal] = field(default_factory=dict)

    def equal(self, name: str, left: Any, right: Any) -> bool:
        if left == right:
            return True
        tolerance = self.tolerances.get(name)
        if tolerance is None or left is None or right is None:
            return False
        try:
            return abs(Decimal(str(left)) - Decimal(str(right))) <= tolerance
        except ArithmeticError:
            return False


def rules_for(resource: str) -> Rules:
    """The rules of a resource type: WORKSHEET_RULES overrides the defaults per resource."""
    defaults = {
        "variants": {"tolerances": {"price": "0.00"}},
        "orders": {"tolerances": {"total_price": "0.00"}},
    }
    rule = {**defaults.get(resource, {}), **settings.WORKSHEET_RULES.get(resource, {})}
    return Rules(
        min_age=timedelta(seconds=rule.get("min_age_seconds", settings.WORKSHEET_MIN_AGE_SECONDS)),
        ignored=frozenset(rule.get("ignored", ())),
        tolerances={name: Decimal(str(value)) for name, value in rule.get("tolerances", {}).items()},
    )


@dataclass
class Comparison:
    kind: str
    proposal: str
    reason: str
    fields: list[dict]


def _seconds(when: datetime | None) -> datetime | None:
    return when.replace(microsecond=0) if when else None


def compare_record(
    resource: ResourceKind,
    names: list[str],
    *,
    shopify: dict | None,
    platform: dict | None,
    owners: dict[tuple[str, str], str],
    shopify_updated_at: datetime | None,
    platform_shopify_updated_at: datetime | None,
    platform_synced_at: datetime | None,
    rules: Rules,
    now: datetime,
) -> Comparison:
    """The row for one record: its kind, the proposal and why, and each field's values and owner."""
    if shopify is None and platform is None:
        return Comparison(
            Kind.MISSING_IN_SHOPIFY, Proposal.NEEDS_PERSON, "Neither Shopify nor the platform has it: check the id.", []
        )
    if shopify is None:
        return Comparison(
            Kind.MISSING_IN_SHOPIFY,
            Proposal.NEEDS_PERSON,
            "Shopify has no such record (deleted there, or never created) while the platform still has it: "
            "decide whether the platform's copy should go.",
            _fields(resource, names, None, platform, owners, rules),
        )
    if platform is None:
        return Comparison(
            Kind.MISSING_IN_PLATFORM,
            Proposal.NEEDS_PERSON,
            "The platform never stored it: its webhook was lost or failed. Replay that webhook (Replays) or "
            "resubscribe, rather than writing the record here.",
            _fields(resource, names, shopify, None, owners, rules),
        )
    fields = _fields(resource, names, shopify, platform, owners, rules)
    recent = [
        (side, when)
        for side, when in (("Shopify", shopify_updated_at), ("the platform", platform_synced_at))
        if when and now - when < rules.min_age
    ]
    if recent:
        side, when = max(recent, key=lambda pair: pair[1])
        age = int((now - when).total_seconds())
        return Comparison(
            Kind.IN_FLIGHT,
            Proposal.NO_CHANGE,
            f"Changed in {side} {age} s ago (under the {int(rules.min_age.total_seconds())} s minimum age): its "
            "webhook may still be on its way. Compare again later.",
            fields,
        )
    differing = [f for f in fields if f["differs"]]
    if not differing:
        return Comparison(Kind.SAME, Proposal.NO_CHANGE, "Every compared field matches.", fields)

    shopify_changed_since_sync = bool(
        shopify_updated_at
        and platform_shopify_updated_at
        and _seconds(shopify_updated_at) > _seconds(platform_shopify_updated_at)
    )
    sides, people = set(), []
    for f in differing:
        owner = f["owner"]
        if owner == SHOPIFY:
            f["write"] = Proposal.WRITE_PLATFORM
        elif owner == PLATFORM:
            if shopify_changed_since_sync:
                people.append(
                    f"{f['name']}: both sides changed since the last sync (Shopify's record is newer than the "
                    "platform's copy of it)"
                )
                continue
            if not resource.field(f["name"]).shopify_input:
                people.append(f"{f['name']}: owned by the platform, but Shopify's API cannot write it")
                continue
            f["write"] = Proposal.WRITE_SHOPIFY
        else:
            people.append(f"{f['name']}: ownership {'shared' if owner == 'shared' else f'is {owner}'}, so neither "
                          "side's value wins by itself")  # fmt: skip
            continue
        sides.add(f["write"])
    if people or len(sides) > 1:
        for f in differing:
            f.pop("write", None)
        if len(sides) > 1 and not people:
            people.append("the fields that differ are owned by different systems: split the change")
        return Comparison(Kind.DIFFERS, Proposal.NEEDS_PERSON, "Needs a person: " + "; ".join(people) + ".", fields)
    side = sides.pop()
    names_written = ", ".join(f["name"] for f in differing)
    if side == Proposal.WRITE_PLATFORM:
        reason = f"Shopify owns {names_written}: copy Shopify's value to the platform."
    else:
        reason = f"The platform owns {names_written}: push the platform's value to Shopify."
    return Comparison(Kind.DIFFERS, side, reason, fields)


def _fields(resource, names, shopify, platform, owners, rules) -> list[dict]:
    out = []
    for name in names:
        spec = resource.field(name)
        left = spec.normalise(shopify.get(name)) if shopify is not None else None
        right = spec.normalise(platform.get(name)) if platform is not None else None
        owner = owners.get((resource.ownership, name)) or owners.get((resource.ownership, ""), SHOPIFY)
        differs = (
            shopify is not None
            and platform is not None
            and name not in rules.ignored
            and not rules.equal(name, left, right)
        )
        out.append({"name": name, "shopify": left, "platform": right, "owner": owner, "differs": differs,
                    "ignored": name in rules.ignored})  # fmt: skip
    return out


def changed_fields(resource: ResourceKind, names, snapshot: dict | None, current: dict | None) -> list[str]:
    """What changed between the snapshot and a fresh read, as "field: before → now" lines."""
    if current is None:
        return ["the record is gone"]
    lines = []
    for name in names:
        spec = resource.field(name)
        before = spec.normalise((snapshot or {}).get(name))
        now = spec.normalise(current.get(name))
        if before != now:
            lines.append(f"{name}: {before!r} → {now!r}")
    return lines
