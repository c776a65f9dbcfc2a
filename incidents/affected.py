"""The orders and customers an incident affects, and how far each one's repair has got.

They are collected from the incident's linked events, the events its replays covered and the
rows of its order and customer worksheets, and their repair state is derived from those sources:

waiting       its event failed (or is held) and nothing has repaired it yet;
replayed      a replay covering it is queued or running, or ran but the event is not processed yet;
repaired      its event is processed again (a replay, or Shopify's own retry), someone resolved
              the event, or its worksheet row was applied;
needs_manual  the replay failed or skipped it, or its worksheet row failed, went stale or needs a person.

A state a person set (`set_by_person`) is kept by later refreshes.
"""

import json
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents.models import AffectedRecord, Incident
from integrations.models import Delivery, Event, ReplayItem

State = AffectedRecord.RepairState
BATCH = 500
ORDER_TOPICS = ("orders/", "fulfillments/")
CUSTOMER_TOPICS = ("customers/",)


def order_key(text: str) -> str:
    """An order name as stored: "#1001" whether typed as 1001 or #1001."""
    text = (text or "").strip()
    return f"#{text}" if text.isdigit() else text


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if value not in (None, "") else None
    except (InvalidOperation, ValueError):
        return None


def _payloads(event_ids: list[int]) -> dict[int, dict]:
    """The first stored body of each event, parsed (events whose body is gone or unreadable are left out)."""
    found: dict[int, dict] = {}
    for start in range(0, len(event_ids), BATCH):
        chunk = event_ids[start : start + BATCH]
        rows = (
            Delivery.objects.filter(event_id__in=chunk, body__isnull=False)
            .order_by("event_id", "id")
            .values_list("event_id", "body")
        )
        for event_id, body in rows:
            if event_id in found:
                continue
            try:
                data = json.loads(bytes(body))
            except (ValueError, TypeError, RecursionError):
                continue
            if isinstance(data, dict):
                found[event_id] = data
    return found


def incident_event_ids(incident: Incident) -> list[int]:
    linked = Event.objects.filter(incidents=incident).values_list("id", flat=True)
    replayed = ReplayItem.objects.filter(replay__incident=incident).values_list("event_id", flat=True)
    return sorted(set(linked) | set(replayed))


def from_events(ids: list[int]) -> dict[tuple, dict]:
    """(shop_id, kind, key) -> what the events' payloads say of each order and customer."""
    records: dict[tuple, dict] = {}
    events = {}
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        q = (
            Q(topic__startswith=ORDER_TOPICS[0])
            | Q(topic__startswith=ORDER_TOPICS[1])
            | Q(topic__startswith="customers/")
        )
        for event in Event.objects.filter(q, pk__in=chunk).only(
            "id", "shop_id", "topic", "resource_id", "resource_label"
        ):
            events[event.pk] = event
    payloads = _payloads(sorted(events))
    for event_id in sorted(events):
        event, payload = events[event_id], payloads.get(event_id, {})
        if event.topic.startswith(ORDER_TOPICS):
            order = (
                payload
                if event.topic.startswith("orders/")
                else {"name": payload.get("name"), "id": payload.get("order_id")}
            )
            name = order_key(str(order.get("name") or event.resource_label or ""))
            if not name:
                continue
            email = str(order.get("email") or (order.get("customer") or {}).get("email") or "").strip().lower()
            records[(event.shop_id, AffectedRecord.Kind.ORDER, name)] = {
                "shopify_id": str(order.get("id") or event.resource_id or "")[:40],
                "email": email[:255],
                "total": _decimal(order.get("total_price")),
                "currency": str(order.get("currency") or "")[:8],
                "unfulfilled": order.get("fulfillment_status") in (None, "", "unfulfilled", "partial")
                and event.topic.startswith("orders/"),
                "event_id": event_id,
            }
            if email:
                records.setdefault((event.shop_id, AffectedRecord.Kind.CUSTOMER, email), {"event_id": event_id})
        elif event.topic.startswith(CUSTOMER_TOPICS):
            email = str(payload.get("email") or "").strip().lower()
            if email:
                records[(event.shop_id, AffectedRecord.Kind.CUSTOMER, email[:255])] = {
                    "shopify_id": str(payload.get("id") or "")[:40],
                    "event_id": event_id,
                }
    return records


def _from_worksheets(incident: Incident) -> dict[tuple, dict]:
    from incidents.worksheets.models import Worksheet, WorksheetRow

    records: dict[tuple, dict] = {}
    rows = (
        WorksheetRow.objects.filter(
            worksheet__incident=incident,
            worksheet__resource__in=[Worksheet.Resource.ORDERS, Worksheet.Resource.CUSTOMERS],
        )
        .select_related("worksheet")
        .only(
            "id",
            "key",
            "label",
            "shopify_values",
            "platform_values",
            "money",
            "worksheet__shop_id",
            "worksheet__resource",
        )
        .order_by("id")
    )
    for row in rows.iterator(chunk_size=BATCH):
        values = {**(row.platform_values or {}), **(row.shopify_values or {})}
        shopify_id = row.key.rsplit("/", 1)[-1][:40]
        if row.worksheet.resource == Worksheet.Resource.ORDERS:
            name = order_key(str(values.get("name") or row.label or ""))
            if not name:
                continue
            records[(row.worksheet.shop_id, AffectedRecord.Kind.ORDER, name)] = {
                "shopify_id": shopify_id,
                "email": str(values.get("email") or "").lower()[:255],
                "total": row.money if row.money is not None else _decimal(values.get("total_price")),
                "worksheet_row_id": row.pk,
            }
        else:
            email = str(values.get("email") or "").strip().lower()
            if email:
                records[(row.worksheet.shop_id, AffectedRecord.Kind.CUSTOMER, email[:255])] = {
                    "shopify_id": shopify_id,
                    "worksheet_row_id": row.pk,
                }
    return records


def collect(incident: Incident) -> int:
    """Add the incident's affected records not yet kept, fill in what is new, then refresh every
    state. Returns how many records the incident affects."""
    found = from_events(incident_event_ids(incident))
    for key, data in _from_worksheets(incident).items():
        found.setdefault(key, {}).update({k: v for k, v in data.items() if v not in (None, "")})
    existing = {(r.shop_id, r.kind, r.key): r for r in AffectedRecord.objects.filter(incident=incident)}
    new, changed = [], []
    for (shop_id, kind, key), data in found.items():
        record = existing.get((shop_id, kind, key))
        if record is None:
            new.append(AffectedRecord(incident=incident, shop_id=shop_id, kind=kind, key=key[:255], **data))
            continue
        dirty = False
        for name, value in data.items():
            if value not in (None, "") and getattr(record, name) != value:
                setattr(record, name, value)
                dirty = True
        if dirty:
            changed.append(record)
    with transaction.atomic():
        AffectedRecord.objects.bulk_create(new, batch_size=BATCH, ignore_conflicts=True)
        if changed:
            AffectedRecord.objects.bulk_update(
                changed,
                ["shopify_id", "email", "total", "currency", "unfulfilled", "event", "worksheet_row"],
                batch_size=BATCH,
            )
    refresh(AffectedRecord.objects.filter(incident=incident))
    return AffectedRecord.objects.filter(incident=incident).count()


def _event_state(event: Event | None, item: ReplayItem | None) -> tuple[str, str]:
    if event is None:
        return State.WAITING, "its event is no longer stored"
    if event.triage_state in (Event.Triage.RESOLVED, Event.Triage.IGNORED) and event.status != Event.Status.PROCESSED:
        return State.REPAIRED, f"event {event.pk} was {event.get_triage_state_display().lower()} by support"
    if item is not None:
        if item.status in (ReplayItem.Status.FAILED, ReplayItem.Status.SKIPPED):
            return State.NEEDS_MANUAL, f"replay {item.replay_id}: {item.get_status_display().lower()}"
        if item.status == ReplayItem.Status.DONE and event.status == Event.Status.PROCESSED:
            return State.REPAIRED, f"replay {item.replay_id} succeeded"
        if item.status != ReplayItem.Status.CANCELLED:
            return State.REPLAYED, f"replay {item.replay_id}: {item.get_status_display().lower()}"
    if event.status == Event.Status.PROCESSED:
        return State.REPAIRED, f"event {event.pk} processed"
    return State.WAITING, f"event {event.pk} {event.get_status_display().lower()}"


def _row_state(row) -> tuple[str, str]:
    R = row.Result
    if row.result == R.APPLIED:
        return State.REPAIRED, f"worksheet {row.worksheet_id} applied"
    if row.result in (R.FAILED, R.STALE) or row.proposal == row.Proposal.NEEDS_PERSON:
        return (
            State.NEEDS_MANUAL,
            f"worksheet {row.worksheet_id}: {row.get_result_display().lower() if row.result else 'needs a person'}",
        )
    if row.result == R.SENDING:
        return State.REPLAYED, f"worksheet {row.worksheet_id}: queued to Shopify"
    if row.kind == row.Kind.SAME:
        return State.REPAIRED, f"worksheet {row.worksheet_id}: both sides agree"
    return State.WAITING, f"worksheet {row.worksheet_id}: not applied yet"


def derive(record: AffectedRecord, event: Event | None, item: ReplayItem | None, row) -> tuple[str, str]:
    """A record's repair state from its sources: a worksheet row decides when there is one, else its event."""
    if row is not None:
        state, note = _row_state(row)
        if state != State.WAITING or record.event_id is None:
            return state, note
    if record.event_id is None:
        return State.WAITING, "no event or worksheet row says more"
    return _event_state(event, item)


def refresh(records) -> int:
    """Recompute the repair state of `records` (a queryset) from their sources, in a few queries
    per batch. Returns how many changed."""
    from incidents.worksheets.models import WorksheetRow

    changed_total = 0
    todo = list(records.filter(set_by_person=False).order_by("id"))
    for start in range(0, len(todo), BATCH):
        batch = todo[start : start + BATCH]
        event_ids = {r.event_id for r in batch if r.event_id}
        row_ids = {r.worksheet_row_id for r in batch if r.worksheet_row_id}
        events = Event.objects.only("id", "status", "triage_state").in_bulk(event_ids)
        rows = WorksheetRow.objects.only("id", "worksheet_id", "result", "proposal", "kind").in_bulk(row_ids)
        latest: dict[int, ReplayItem] = {}
        for item in (
            ReplayItem.objects.filter(event_id__in=event_ids)
            .only("id", "event_id", "replay_id", "status")
            .order_by("id")
        ):
            latest[item.event_id] = item  # the newest replay of each event decides
        changed = []
        for record in batch:
            state, note = derive(
                record, events.get(record.event_id), latest.get(record.event_id), rows.get(record.worksheet_row_id)
            )
            if (state, note[:255]) != (record.repair_state, record.repair_note):
                record.repair_state, record.repair_note, record.updated_at = state, note[:255], timezone.now()
                changed.append(record)
        AffectedRecord.objects.bulk_update(changed, ["repair_state", "repair_note", "updated_at"], batch_size=BATCH)
        changed_total += len(changed)
    return changed_total


def lookup(text: str, *, include_resolved_days: int = 7):
    """Affected records matching an order name (#1001 or 1001) or an e-mail, in open incidents and
    those resolved in the last `include_resolved_days`, states refreshed. Newest incident first."""
    text = (text or "").strip()
    if not text:
        return []
    if "@" in text:
        match = Q(kind=AffectedRecord.Kind.CUSTOMER, key=text.lower()) | Q(
            kind=AffectedRecord.Kind.ORDER, email=text.lower()
        )
    else:
        match = Q(kind=AffectedRecord.Kind.ORDER, key=order_key(text))
    since = timezone.now() - timezone.timedelta(days=include_resolved_days)
    records = AffectedRecord.objects.filter(match).filter(
        Q(incident__status__in=Incident.OPEN) | Q(incident__resolved_at__gte=since)
    )
    refresh(records)
    return list(records.select_related("incident", "shop").order_by("-incident__opened_at", "kind", "key")[:50])
