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
from django.db.models import OuterRef, Q, Subquery
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


def _event_state(event: tuple | None, item: tuple | None) -> tuple[str, str]:
    """From the event (id, status, triage_state) and its newest replay item (replay_id, status)."""
    if event is None:
        return State.WAITING, "its event is no longer stored"
    pk, status, triage = event
    if triage in (Event.Triage.RESOLVED, Event.Triage.IGNORED) and status != Event.Status.PROCESSED:
        return State.REPAIRED, f"event {pk} was {Event.Triage(triage).label.lower()} by support"
    if item is not None:
        replay_id, item_status = item
        words = ReplayItem.Status(item_status).label.lower()
        if item_status in (ReplayItem.Status.FAILED, ReplayItem.Status.SKIPPED):
            return State.NEEDS_MANUAL, f"replay {replay_id}: {words}"
        if item_status == ReplayItem.Status.DONE and status == Event.Status.PROCESSED:
            return State.REPAIRED, f"replay {replay_id} succeeded"
        if item_status != ReplayItem.Status.CANCELLED:
            return State.REPLAYED, f"replay {replay_id}: {words}"
    if status == Event.Status.PROCESSED:
        return State.REPAIRED, f"event {pk} processed"
    return State.WAITING, f"event {pk} {Event.Status(status).label.lower()}"


def _row_state(row: tuple) -> tuple[str, str]:
    """From the worksheet row (worksheet_id, result, proposal, kind)."""
    from incidents.worksheets.models import WorksheetRow

    worksheet_id, result, proposal, kind = row
    R = WorksheetRow.Result
    if result == R.APPLIED:
        return State.REPAIRED, f"worksheet {worksheet_id} applied"
    if result in (R.FAILED, R.STALE) or proposal == WorksheetRow.Proposal.NEEDS_PERSON:
        words = R(result).label.lower() if result else "needs a person"
        return State.NEEDS_MANUAL, f"worksheet {worksheet_id}: {words}"
    if result == R.SENDING:
        return State.REPLAYED, f"worksheet {worksheet_id}: queued to Shopify"
    if kind == WorksheetRow.Kind.SAME:
        return State.REPAIRED, f"worksheet {worksheet_id}: both sides agree"
    return State.WAITING, f"worksheet {worksheet_id}: not applied yet"


def derive(event_id: int | None, event: tuple | None, item: tuple | None, row: tuple | None) -> tuple[str, str]:
    """A record's repair state from its sources: a worksheet row decides when there is one, else its event."""
    if row is not None:
        state, note = _row_state(row)
        if state != State.WAITING or event_id is None:
            return state, note
    if event_id is None:
        return State.WAITING, "no event or worksheet row says more"
    return _event_state(event, item)


def refresh(records) -> int:
    """Recompute the repair state of `records` (a queryset) from their sources, read in one query
    (each record joined to its event and worksheet row, its event's newest replay item by a
    subquery); only the records whose state changed are written. Returns how many."""
    newest_item = ReplayItem.objects.filter(event_id=OuterRef("event_id")).order_by("-id")
    rows = (
        records.filter(set_by_person=False)
        .annotate(
            item_replay=Subquery(newest_item.values("replay_id")[:1]),
            item_status=Subquery(newest_item.values("status")[:1]),
        )
        .order_by()  # any order: sorting by id would make PostgreSQL walk the whole primary key
        .values_list(
            "id",
            "event_id",
            "event__status",
            "event__triage_state",
            "item_replay",
            "item_status",
            "worksheet_row_id",
            "worksheet_row__worksheet_id",
            "worksheet_row__result",
            "worksheet_row__proposal",
            "worksheet_row__kind",
            "repair_state",
            "repair_note",
        )
    )
    now = timezone.now()
    changed, total = [], 0
    # A plain fetch, not a server-side cursor (.iterator()): PostgreSQL plans a cursor for its first
    # rows, several times slower here. An incident's records are bounded by its links (10,000 events).
    for values in rows:
        pk, event_id, status, triage, replay_id, item_status, row_id, ws, result, proposal, kind, was, note_was = values
        event = (event_id, status, triage) if status is not None else None
        item = (replay_id, item_status) if item_status is not None else None
        row = (ws, result, proposal, kind) if row_id is not None else None
        state, note = derive(event_id, event, item, row)
        if (state, note[:255]) != (was, note_was):
            changed.append(AffectedRecord(pk=pk, repair_state=state, repair_note=note[:255], updated_at=now))
        if len(changed) >= BATCH:
            total += _write_states(changed)
            changed = []
    return total + _write_states(changed)


def _write_states(changed: list[AffectedRecord]) -> int:
    AffectedRecord.objects.bulk_update(changed, ["repair_state", "repair_note", "updated_at"], batch_size=BATCH)
    return len(changed)


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
