"""Worksheet services: what the pages, the commands and the worker tasks call.

create → compare (worker) → review (edit rows) → submit → approve / reject (an admin who did not
prepare it) → apply (worker: stale guard, then write) → rollback (a new worksheet, same path).
Every refusal is a WorksheetError (or PermissionDenied) with the reason in words; every state
change goes through `_move` (a conditional UPDATE plus a WorksheetStep row) and the audit trail.
"""

import csv
import hashlib
import io
import json
import time
from collections import Counter
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from console import metrics
from console.audit import acting_user, actor_label, record_action
from incidents.worksheets.compare import changed_fields, compare_record, rules_for
from incidents.worksheets.models import Worksheet, WorksheetRow, WorksheetStep
from incidents.worksheets.resources import KINDS, ResourceKind, parse_ids
from integrations.models import Event, OutboundCall, Shop
from integrations.outbound.client import AdminClient
from integrations.outbound.queue import QueueError, enqueue
from integrations.outbound.throttle import throttle
from integrations.shops.ownership import ownership_map

State = Worksheet.State
Row = WorksheetRow
PREPARE = "worksheets.prepare_worksheet"
APPROVE = "worksheets.approve_worksheet"
APPLY = "worksheets.apply_worksheet"
ROW_CHUNK = 500  # rows read at a time when hashing, counting or exporting
STALLED_AFTER = timedelta(minutes=5)  # a compare without progress this long may be started again


class WorksheetError(Exception):
    """An action refused, with the reason."""


def _require(user, perm: str, what: str) -> None:
    if user is not None and not user.has_perm(perm):
        raise PermissionDenied(f"You may not {what} (needs {perm.split('.')[1].replace('_', ' ')}).")


def _move(worksheet: Worksheet, target: str, *, by, comment: str = "", sources=None, **changes) -> None:
    """One state change: a conditional UPDATE from the states that may lead to `target`, a step
    row, and `worksheet` refreshed. Raises WorksheetError when it lost a race (someone else moved it)."""
    sources = sources or Worksheet.STATES.sources_of(target)
    source = worksheet.state
    moved = Worksheet.STATES.move(
        Worksheet.objects.filter(pk=worksheet.pk, state=source), source=sources, target=target, **changes
    )
    if not moved:
        worksheet.refresh_from_db()
        raise WorksheetError(
            f"Worksheet #{worksheet.pk} is {worksheet.get_state_display().lower()} now, so it cannot become {target}."
        )
    worksheet.refresh_from_db()
    WorksheetStep.objects.create(
        worksheet=worksheet, source=source, target=target, actor=acting_user(by),
        actor_label=actor_label(by, nobody="worker"), comment=comment, plan_hash=worksheet.plan_hash,
    )  # fmt: skip


def kind_of(worksheet: Worksheet) -> ResourceKind:
    return KINDS[worksheet.resource]


# --- create -----------------------------------------------------------------------------------


def keys_from_events(kind: ResourceKind, filter_text: str) -> list[str]:
    """The records the events matching an event-log filter touched (e.g. a subscription gap's
    window), as gids in the order first touched."""
    from integrations.processing.runner import parse_payload
    from integrations.replay.selection import SelectionError, parse_filter

    try:
        query = parse_filter(filter_text)
    except SelectionError as error:
        raise WorksheetError(str(error)) from error
    events = Event.objects.filter(query).order_by("id")
    prefix = f"gid://shopify/{'Product' if kind.name == 'variants' else kind.gid_type}/"
    gids: dict[str, None] = {}
    limit = settings.WORKSHEET_MAX_RECORDS
    if kind.name != "variants":
        for gid in events.filter(resource_gid__startswith=prefix).values_list("resource_gid", flat=True).iterator():
            gids.setdefault(gid, None)
            if len(gids) > limit:
                break
        return list(gids)
    # A product's webhook carries its variants.
    for body in events.filter(resource_gid__startswith=prefix).values_list("body", flat=True).iterator():
        try:
            payload = parse_payload(body)
        except ValueError:
            continue
        for variant in payload.get("variants") or []:
            if isinstance(variant, dict) and variant.get("id"):
                gids.setdefault(
                    variant.get("admin_graphql_api_id") or f"gid://shopify/ProductVariant/{variant['id']}", None
                )
        if len(gids) > limit:
            break
    return list(gids)


def keys_from_incident(kind: ResourceKind, incident, shop: Shop | None = None) -> list[str]:
    """An incident's affected records: those of its linked events and of the events its replays
    covered (of one shop, when given)."""
    from incidents.affected import incident_event_ids

    prefix = f"gid://shopify/{kind.gid_type}/"
    events = Event.objects.filter(pk__in=incident_event_ids(incident), resource_gid__startswith=prefix)
    if shop is not None:
        events = events.filter(shop=shop)
    return list(dict.fromkeys(events.order_by("id").values_list("resource_gid", flat=True)))


def create_worksheet(
    *,
    shop: Shop,
    resource: str,
    by,
    fields: list[str] | None = None,
    ids_text: str | None = None,
    events_filter: str | None = None,
    incident=None,
    link_incident=None,
    title: str = "",
    request=None,
) -> Worksheet:
    """A draft worksheet from a controlled list: pasted/uploaded ids, the records of the events
    matching a filter, or an incident's affected records (`incident`). Never "all records". It is
    linked to `link_incident` if given (a list of ids can belong to an incident too), else to the
    incident it was built from."""
    _require(by, PREPARE, "prepare worksheets")
    if resource not in KINDS:
        raise WorksheetError(f"resource must be one of {', '.join(KINDS)}")
    kind = KINDS[resource]
    fields = list(fields or kind.field_names)
    unknown = [name for name in fields if name not in kind.field_names]
    if unknown:
        raise WorksheetError(f"{resource} has no field {', '.join(unknown)}: choose from {', '.join(kind.field_names)}")
    if not fields:
        raise WorksheetError("Choose at least one field to compare.")
    sources = [s for s in (ids_text is not None and ids_text.strip(), events_filter, incident) if s]
    if len(sources) != 1:
        raise WorksheetError("Build a worksheet from exactly one list: ids, an event filter, or an incident.")
    if ids_text:
        try:
            keys = parse_ids(kind, ids_text)
        except ValueError as error:
            raise WorksheetError(f"Some ids could not be read: {error}") from error
        source, detail = Worksheet.Source.IDS, f"{len(keys)} ids"
    elif events_filter:
        keys = keys_from_events(kind, events_filter)
        source, detail = Worksheet.Source.EVENTS, events_filter
    else:
        keys = keys_from_incident(kind, incident, shop)
        source, detail = Worksheet.Source.INCIDENT, f"incident #{incident.pk}"
    if not keys:
        raise WorksheetError(f"That list has no {kind.name.replace('_', ' ')}: nothing to compare.")
    if len(keys) > settings.WORKSHEET_MAX_RECORDS:
        raise WorksheetError(
            f"That list has more than {settings.WORKSHEET_MAX_RECORDS} records: split it (WORKSHEET_MAX_RECORDS)."
        )
    with transaction.atomic():
        worksheet = Worksheet.objects.create(
            shop=shop, resource=resource, fields=fields, source=source, source_detail=detail, incident=link_incident or incident,
            title=title.strip()[:200], prepared_by=acting_user(by) or _named_preparer(), progress_total=len(keys),
        )  # fmt: skip
        WorksheetRow.objects.bulk_create(
            [WorksheetRow(worksheet=worksheet, position=n, key=key) for n, key in enumerate(keys, start=1)],
            batch_size=1000,
        )
        WorksheetStep.objects.create(
            worksheet=worksheet, source="", target=State.DRAFT, actor=acting_user(by), actor_label=actor_label(by),
            comment=f"{len(keys)} {kind.name.replace('_', ' ')} from {worksheet.get_source_display().lower()}",
        )  # fmt: skip
        record_action(
            actor=by, verb="worksheet.create", target=worksheet, request=request,
            after={"shop": shop.domain, "resource": resource, "fields": fields, "records": len(keys), "source": detail},
        )  # fmt: skip
    return worksheet


def _named_preparer():
    """Worksheets are prepared by a person: the maker-checker rule compares them with the approver."""
    raise WorksheetError("Say who prepares the worksheet (--user): the maker-checker rule needs a person.")


# --- compare ----------------------------------------------------------------------------------


def start_compare(worksheet: Worksheet, *, by, request=None) -> Worksheet:
    """Queue the compare on the worker (again, for a compared or rejected worksheet: its rows are
    read afresh and every decision is reset)."""
    _require(by, PREPARE, "compare worksheets")
    if worksheet.state not in (State.DRAFT, State.COMPARED, State.REJECTED):
        raise WorksheetError(f"A {worksheet.get_state_display().lower()} worksheet cannot be compared again.")
    if (
        worksheet.state == State.DRAFT
        and worksheet.progress_step == "compare"
        and worksheet.progress_at
        and timezone.now() - worksheet.progress_at < STALLED_AFTER
    ):
        raise WorksheetError("It is being compared already: see its progress.")
    if worksheet.source == Worksheet.Source.ROLLBACK and worksheet.state != State.DRAFT:
        raise WorksheetError("A rollback's rows come from the worksheet it rolls back: roll that back again instead.")
    with transaction.atomic():
        if worksheet.state != State.DRAFT:
            _move(worksheet, State.DRAFT, by=by, comment="compare again", approved_by=None, approved_at=None,
                  approved_hash="", plan_hash="")  # fmt: skip
            # Read every record afresh; every decision made on the old values goes with them.
            worksheet.rows.update(
                kind=Row.Kind.PENDING, proposal="", reason="", fields=[], shopify_values=None, platform_values=None,
                shopify_updated_at=None, platform_synced_at=None, money=None, decision=Row.Decision.ACCEPT,
                override_side="", override_values=None, note="", decided_by=None,
            )  # fmt: skip
        Worksheet.objects.filter(pk=worksheet.pk).update(
            progress_step="compare",
            progress_done=0,
            progress_total=worksheet.rows.count(),
            progress_note="queued",
            progress_at=timezone.now(),
        )
        record_action(actor=by, verb="worksheet.compare", target=worksheet, request=request)
        transaction.on_commit(lambda: _queue("incidents.worksheets.tasks.compare_task", worksheet.pk))
    worksheet.refresh_from_db()
    return worksheet


def _queue(func: str, *args) -> None:
    from django_q.tasks import async_task

    async_task(func, *args, task_name=f"{func.rsplit('.', 1)[-1]}-{args[0]}-{time.time_ns()}")


class ReadFailed(Exception):
    pass


def read_shopify(worksheet: Worksheet, gids: list[str], client: AdminClient | None = None) -> dict[str, dict | None]:
    """gid -> the node's values (None when Shopify has no such record), for one batch, through the
    shop's throttle in the reconcile lane: the read waits until the bucket holds its cost above the
    live reserve, so it never takes what live calls need. Raises ReadFailed with the reason."""
    kind = kind_of(worksheet)
    client = client or AdminClient(worksheet.shop)
    bucket = throttle()
    cost = float(len(gids) * node_cost(kind))
    for _try in range(8):
        wait = bucket.reserve(worksheet.shop_id, cost, bulk=True)
        while wait > 0:
            time.sleep(min(wait, 2.0))
            wait = bucket.reserve(worksheet.shop_id, cost, bulk=True)
        started = time.time()
        reply = client.graphql(kind.document, {"ids": gids})
        bucket.report(worksheet.shop_id, reply, call_id=0, started=started)
        if reply.retry_after or reply.http_status == 429 or "THROTTLED" in reply.error_codes:
            bucket.block(worksheet.shop_id, reply.retry_after or 1.0, throttled=True)
            continue
        if (reply.http_status and reply.http_status >= 500) or reply.transport_error:
            time.sleep(1.0)
            continue
        failure = reply.failure()
        nodes = reply.data.get("nodes")
        if failure or not isinstance(nodes, list):
            raise ReadFailed(failure or "Shopify's answer had no nodes")
        return {gid: (kind.shopify_values(node) | {"_updated_at": node.get("updatedAt")} if isinstance(node, dict) and node else None)
                for gid, node in zip(gids, nodes, strict=False)}  # fmt: skip
    raise ReadFailed("Shopify kept throttling or failing the read: try again later")


def node_cost(kind: ResourceKind) -> int:
    """The query cost of one node of the worksheet read (its object fields count one each)."""
    return 1 + kind.selection.count("{")


def _parse_time(value):
    from django.utils.dateparse import parse_datetime

    return parse_datetime(value) if value else None


def run_compare(worksheet_id: int, *, deadline: float | None = None) -> bool:
    """Compare the rows not compared yet, batch by batch, until done or `deadline` (monotonic
    time; then returns False and the caller hands on to a fresh task). Returns True when done."""
    worksheet = Worksheet.objects.select_related("shop").get(pk=worksheet_id)
    if worksheet.state != State.DRAFT or worksheet.progress_step != "compare":
        return True
    kind = kind_of(worksheet)
    rules = rules_for(worksheet.resource)
    owners = ownership_map(worksheet.shop)
    client = AdminClient(worksheet.shop)
    batch = max(1, min(250, settings.WORKSHEET_READ_BATCH))
    while True:
        rows = list(
            worksheet.rows.filter(kind=Row.Kind.PENDING)
            .order_by("position")
            .only("id", "worksheet", "key", "position")[:batch]
        )
        if not rows:
            break
        gids = [row.key for row in rows]
        try:
            shopify = read_shopify(worksheet, gids, client)
        except ReadFailed as error:
            for row in rows:
                row.kind, row.proposal, row.reason = Row.Kind.UNREADABLE, Row.Proposal.NEEDS_PERSON, f"Shopify: {error}"
            _update_rows(rows, ["kind", "proposal", "reason"])
            _progress(worksheet, len(rows), f"a read failed: {error}")
            continue
        platform = kind.platform_records(worksheet.shop, gids)
        now = timezone.now()
        for row in rows:
            node, record = shopify.get(row.key), platform.get(row.key)
            platform_values = kind.platform_values(record) if record is not None else None
            shopify_updated_at = _parse_time(node.pop("_updated_at", None)) if node else None
            result = compare_record(
                kind, worksheet.fields, shopify=node, platform=platform_values, owners=owners,
                shopify_updated_at=shopify_updated_at,
                platform_shopify_updated_at=record.shopify_updated_at if record is not None else None,
                platform_synced_at=record.synced_at if record is not None else None, rules=rules, now=now,
            )  # fmt: skip
            row.kind, row.proposal, row.reason, row.fields = result.kind, result.proposal, result.reason, result.fields
            row.shopify_values, row.platform_values = node, _jsonable(platform_values)
            row.shopify_updated_at = shopify_updated_at
            row.platform_synced_at = record.synced_at if record is not None else None
            row.label = (kind.label(node or platform_values or {}) or "")[:255]
            row.money = _money_of(kind, node, platform_values)
            row.decision, row.override_side, row.override_values, row.note, row.decided_by = (
                Row.Decision.ACCEPT,
                "",
                None,
                "",
                None,
            )
        _update_rows(
            rows,
            ["kind", "proposal", "reason", "fields", "shopify_values", "platform_values", "shopify_updated_at",
             "platform_synced_at", "label", "money", "decision", "override_side", "override_values", "note", "decided_by"],
        )  # fmt: skip
        _progress(worksheet, len(rows))
        if deadline is not None and time.monotonic() > deadline:
            return False
    with transaction.atomic():
        Worksheet.objects.filter(pk=worksheet.pk).update(
            plan_hash=plan_hash(worksheet), compared_at=timezone.now(), progress_step="", progress_note=""
        )
        worksheet.refresh_from_db()
        counts = Counter(worksheet.rows.values_list("proposal", flat=True))
        _move(
            worksheet,
            State.COMPARED,
            by=None,
            comment=", ".join(f"{n} {p.replace('_', ' ')}" for p, n in sorted(counts.items())),
        )
        record_action(actor=None, verb="worksheet.compared", target=worksheet, after=dict(counts))
    return True


def _update_rows(rows: list[WorksheetRow], fields: list[str]) -> None:
    """Write these fields of each row: one UPDATE statement run for every row (executemany), in
    one transaction. bulk_update's CASE WHEN per field and row took most of a compare's time."""
    from django.db import connection

    meta = WorksheetRow._meta
    specs = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    sql = (
        f"UPDATE {quote(meta.db_table)} SET "  # noqa: S608 (names from the model's _meta, values as parameters)
        + ", ".join(f"{quote(f.column)} = %s" for f in specs)
        + f" WHERE {quote(meta.pk.column)} = %s"
    )
    params = [[f.get_db_prep_save(getattr(row, f.attname), connection) for f in specs] + [row.pk] for row in rows]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _progress(worksheet: Worksheet, done: int, note: str = "") -> None:
    from django.db.models import F

    Worksheet.objects.filter(pk=worksheet.pk).update(
        progress_done=F("progress_done") + done, progress_note=note[:300], progress_at=timezone.now()
    )


def _jsonable(values: dict | None) -> dict | None:
    if values is None:
        return None
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def _money_of(kind: ResourceKind, node: dict | None, platform: dict | None) -> Decimal | None:
    if kind.name != "orders":
        return None
    for values in (node, platform):
        try:
            if values and values.get("total_price") not in (None, ""):
                return Decimal(str(values["total_price"]))
        except InvalidOperation:
            continue
    return None


# --- the plan ---------------------------------------------------------------------------------


def _row_plan(row) -> list:
    return [
        row.key,
        row.kind,
        row.proposal,
        row.decision,
        row.side,
        row.values_to_write(),
        row.shopify_values,
        row.platform_values,
    ]


def plan_hash(worksheet: Worksheet) -> str:
    """A hash of what apply would do: each row's proposal, decision, values to write and the
    snapshot the stale guard compares with. Any edit changes it."""
    digest = hashlib.sha256(f"{worksheet.pk}|{worksheet.resource}|{','.join(worksheet.fields)}".encode())
    for row in _rows_in_chunks(worksheet):
        digest.update(json.dumps(_row_plan(row), sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _rows_in_chunks(worksheet: Worksheet, queryset=None):
    queryset = (queryset if queryset is not None else worksheet.rows.all()).order_by("position")
    last = 0
    while True:
        chunk = list(queryset.filter(position__gt=last)[:ROW_CHUNK])
        if not chunk:
            return
        yield from chunk
        last = chunk[-1].position


def blast_radius(worksheet: Worksheet) -> dict:
    """What apply would write: rows and fields per side, records, customers and orders, money."""
    sides = Counter()
    fields = {"write_shopify": Counter(), "write_platform": Counter()}
    money = Decimal("0")
    proposals = Counter()
    for row in _rows_in_chunks(worksheet):
        proposals[row.proposal or "pending"] += 1
        side = row.side
        if not side:
            continue
        sides[side] += 1
        for name in row.values_to_write():
            fields[side][name] += 1
        if row.money:
            money += row.money
    return {
        "rows_write_shopify": sides["write_shopify"],
        "rows_write_platform": sides["write_platform"],
        "fields_write_shopify": dict(fields["write_shopify"]),
        "fields_write_platform": dict(fields["write_platform"]),
        "shops": 1 if sides else 0,
        "customers": sum(sides.values()) if worksheet.resource == "customers" else 0,
        "orders": sum(sides.values()) if worksheet.resource == "orders" else 0,
        "money": str(money),
        "proposals": dict(proposals),
    }


# --- review -----------------------------------------------------------------------------------


def _back_to_review(worksheet: Worksheet, *, by, why: str) -> None:
    """An edit after submission or approval: the approval no longer covers the plan."""
    if worksheet.state in (State.SUBMITTED, State.APPROVED, State.REJECTED):
        voids = " (voids the approval)" if worksheet.state == State.APPROVED else ""
        _move(
            worksheet, State.COMPARED, by=by, comment=why + voids, approved_by=None, approved_at=None, approved_hash=""
        )


def decide_row(row: WorksheetRow, *, by, decision: str, note: str = "", override_side: str = "",
               override_values: dict | None = None, request=None) -> WorksheetRow:  # fmt: skip
    """Support's decision on one row: accept the proposal, skip it, or override the value (with a
    note). An edit after submission or approval sends the worksheet back to review."""
    _require(by, PREPARE, "review worksheets")
    worksheet = row.worksheet
    if worksheet.state not in Worksheet.EDITABLE:
        raise WorksheetError(f"A {worksheet.get_state_display().lower()} worksheet's rows cannot be changed.")
    if decision not in Row.Decision.values:
        raise WorksheetError(f"decision must be one of {', '.join(Row.Decision.values)}")
    kind = kind_of(worksheet)
    if decision == Row.Decision.ACCEPT and row.proposal == Row.Proposal.NEEDS_PERSON:
        raise WorksheetError("This row needs a person: skip it, or override the value (say which side and why).")
    if decision == Row.Decision.OVERRIDE:
        if override_side not in (Row.Proposal.WRITE_SHOPIFY, Row.Proposal.WRITE_PLATFORM):
            raise WorksheetError("An override says which side to write: write_shopify or write_platform.")
        if not note.strip():
            raise WorksheetError("An override needs a note saying why this value is right.")
        values = {}
        for name, value in (override_values or {}).items():
            if name not in worksheet.fields:
                raise WorksheetError(f"{name} is not a field of this worksheet")
            values[name] = kind.field(name).normalise(value)
        if not values:
            raise WorksheetError("An override gives at least one field's value.")
        if override_side == Row.Proposal.WRITE_SHOPIFY and (bad := kind.unwritable_in_shopify(values)):
            raise WorksheetError(f"Shopify's API cannot write {', '.join(bad)}.")
        if row.kind in (
            Row.Kind.MISSING_IN_SHOPIFY,
            Row.Kind.MISSING_IN_PLATFORM,
            Row.Kind.UNREADABLE,
            Row.Kind.PENDING,
        ):
            raise WorksheetError("Only a record both sides have can be written from a worksheet.")
        override_values = values
    else:
        override_side, override_values = "", None
    before = {
        "decision": row.decision,
        "override_side": row.override_side,
        "override_values": row.override_values,
        "note": row.note,
    }
    with transaction.atomic():
        WorksheetRow.objects.filter(pk=row.pk).update(
            decision=decision, override_side=override_side, override_values=override_values, note=note.strip(),
            decided_by=acting_user(by),
        )  # fmt: skip
        row.refresh_from_db()
        worksheet.refresh_from_db()
        _back_to_review(worksheet, by=by, why=f"row {row.key} changed to {decision}")
        Worksheet.objects.filter(pk=worksheet.pk).update(plan_hash=plan_hash(worksheet))
        record_action(
            actor=by, verb="worksheet.row", target=worksheet, request=request, before=before,
            after={"row": row.key, "decision": decision, "override_side": override_side,
                   "override_values": override_values, "note": note.strip()},
        )  # fmt: skip
    return row


def submit(worksheet: Worksheet, *, by, request=None) -> Worksheet:
    _require(by, PREPARE, "submit worksheets")
    if worksheet.state != State.COMPARED:
        raise WorksheetError(
            f"Only a compared worksheet can be submitted; this one is {worksheet.get_state_display().lower()}."
        )
    with transaction.atomic():
        Worksheet.objects.filter(pk=worksheet.pk).update(plan_hash=plan_hash(worksheet))
        worksheet.refresh_from_db()
        _move(worksheet, State.SUBMITTED, by=by, submitted_by=acting_user(by), submitted_at=timezone.now())
        record_action(
            actor=by,
            verb="worksheet.submit",
            target=worksheet,
            after={"plan_hash": worksheet.plan_hash},
            request=request,
        )
    return worksheet


def approve(
    worksheet: Worksheet, *, by, comment: str = "", plan_hash_seen: str | None = None, request=None
) -> Worksheet:
    """An admin other than the preparer approves exactly the plan shown (its hash)."""
    if by is None or not getattr(by, "is_authenticated", False):
        raise WorksheetError("Approval needs a named admin (--user).")
    _require(by, APPROVE, "approve worksheets")
    if worksheet.prepared_by_id == by.pk:
        raise PermissionDenied("The preparer cannot approve their own worksheet: another admin must.")
    if worksheet.state != State.SUBMITTED:
        raise WorksheetError(
            f"Only a submitted worksheet can be approved; this one is {worksheet.get_state_display().lower()}."
        )
    current = plan_hash(worksheet)
    if current != worksheet.plan_hash or (plan_hash_seen and plan_hash_seen != current):
        raise WorksheetError("The plan changed since it was shown: reload it and review it again before approving.")
    with transaction.atomic():
        _move(worksheet, State.APPROVED, by=by, comment=comment.strip(), approved_by=by, approved_at=timezone.now(),
              approved_hash=current, review_comment=comment.strip())  # fmt: skip
        record_action(
            actor=by,
            verb="worksheet.approve",
            target=worksheet,
            after={"plan_hash": current},
            reason=comment.strip(),
            request=request,
        )
    return worksheet


def reject(worksheet: Worksheet, *, by, comment: str, request=None) -> Worksheet:
    if by is None or not getattr(by, "is_authenticated", False):
        raise WorksheetError("Rejection needs a named admin (--user).")
    _require(by, APPROVE, "reject worksheets")
    if worksheet.prepared_by_id == by.pk:
        raise PermissionDenied("The preparer cannot review their own worksheet: another admin must.")
    if not comment.strip():
        raise WorksheetError("Say why it is rejected (--comment): the preparer needs to know what to change.")
    if worksheet.state != State.SUBMITTED:
        raise WorksheetError(
            f"Only a submitted worksheet can be rejected; this one is {worksheet.get_state_display().lower()}."
        )
    with transaction.atomic():
        _move(worksheet, State.REJECTED, by=by, comment=comment.strip(), review_comment=comment.strip())
        record_action(actor=by, verb="worksheet.reject", target=worksheet, reason=comment.strip(), request=request)
    return worksheet


# --- apply ------------------------------------------------------------------------------------


def start_apply(worksheet: Worksheet, *, by, request=None) -> Worksheet:
    """Apply an approved worksheet (or retry the failed rows of a partially applied one) on the worker."""
    if by is None or not getattr(by, "is_authenticated", False):
        raise WorksheetError("Applying needs a named person (--user).")
    _require(by, APPLY, "apply worksheets")
    if worksheet.state not in (State.APPROVED, State.PARTIALLY_APPLIED):
        raise WorksheetError(
            f"Only an approved worksheet can be applied; this one is {worksheet.get_state_display().lower()}."
        )
    if worksheet.state == State.APPROVED and plan_hash(worksheet) != worksheet.approved_hash:
        raise WorksheetError("The plan changed since it was approved: it needs a new review and approval.")
    with transaction.atomic():
        retry = worksheet.state == State.PARTIALLY_APPLIED
        if retry:
            failed = worksheet.rows.filter(result=Row.Result.FAILED)
            if not failed.exists():
                raise WorksheetError("No failed rows to retry.")
            failed.update(result="", result_detail="")
        todo = worksheet.rows.filter(result="").count()
        _move(worksheet, State.APPLYING, by=by, comment="retry the failed rows" if retry else "",
              applied_by=by, apply_started_at=timezone.now(), progress_step="apply", progress_done=0,
              progress_total=todo, progress_note="queued")  # fmt: skip
        record_action(
            actor=by, verb="worksheet.apply", target=worksheet, after={"rows": todo, "retry": retry}, request=request
        )
        transaction.on_commit(lambda: _queue("incidents.worksheets.tasks.apply_task", worksheet.pk))
    return worksheet


def run_apply(worksheet_id: int, *, deadline: float | None = None) -> bool:
    """Write the approved rows not written yet, batch by batch: re-read the side being written,
    skip a row as stale if it changed since the snapshot, else write it (the platform's record
    here, Shopify's through the outbound queue in the reconcile lane, keyed per row and try).
    Returns True when every row is settled (then the worksheet is applied or partially applied)."""
    worksheet = Worksheet.objects.select_related("shop", "approved_by", "applied_by").get(pk=worksheet_id)
    if worksheet.state != State.APPLYING:
        return True
    kind = kind_of(worksheet)
    client = AdminClient(worksheet.shop)
    batch = max(1, min(250, settings.WORKSHEET_READ_BATCH))
    while True:
        rows = list(worksheet.rows.filter(result="").order_by("position")[:batch])
        if not rows:
            break
        shopify_rows = [row for row in rows if row.side == Row.Proposal.WRITE_SHOPIFY]
        current = {}
        if shopify_rows:
            try:
                current = read_shopify(worksheet, [row.key for row in shopify_rows], client)
            except ReadFailed as error:
                for row in shopify_rows:
                    _settle_row(row, Row.Result.FAILED, f"could not re-read it in Shopify: {error}")
                shopify_rows = []
        for row in rows:
            side = row.side
            if not side:
                _settle_row(
                    row,
                    Row.Result.SKIPPED,
                    "skipped in review" if row.decision == Row.Decision.SKIP else "nothing to write",
                )
            elif side == Row.Proposal.WRITE_PLATFORM:
                _write_platform(worksheet, kind, row)
            elif row in shopify_rows:
                _write_shopify(worksheet, kind, row, current.get(row.key))
        _progress(worksheet, len(rows))
        if deadline is not None and time.monotonic() > deadline:
            return False
    return settle(worksheet)


def _settle_row(row: WorksheetRow, result: str, detail: str, *, was: str = "", **changes) -> bool:
    """Give a row its result, if it still has the result `was` (a conditional UPDATE: two settles
    at once, from the page and the sweep, settle it once). Returns whether this call did."""
    settled = bool(
        WorksheetRow.objects.filter(pk=row.pk, result=was).update(
            result=result, result_detail=detail[:2000], applied_at=timezone.now(), **changes
        )
    )
    if settled:
        metrics.worksheet_row_settled(result)
    return settled


def _write_platform(worksheet: Worksheet, kind: ResourceKind, row: WorksheetRow) -> None:
    values = row.values_to_write()
    with transaction.atomic():
        record = (
            kind.model.objects.select_for_update().filter(shop=worksheet.shop, **kind.platform_key(row.key)).first()
        )
        now_values = kind.platform_values(record) if record is not None else None
        changed = changed_fields(kind, worksheet.fields, row.platform_values, now_values)
        if changed:
            _settle_row(
                row,
                Row.Result.STALE,
                "The platform's record changed since the snapshot, so it was left alone: " + "; ".join(changed),
            )
            return
        before = {name: kind.field(name).normalise(now_values.get(name)) for name in values}
        kind.model.objects.filter(pk=record.pk).update(
            **{name: kind.field(name).for_platform(value) for name, value in values.items()}, synced_at=timezone.now()
        )
        _settle_row(row, Row.Result.APPLIED, "written to the platform", before=before, after=values)
        record_action(actor=worksheet.applied_by, verb="worksheet.write_platform", target=worksheet,
                      before={"row": row.key, **before}, after={"row": row.key, **values})  # fmt: skip


def _write_shopify(worksheet: Worksheet, kind: ResourceKind, row: WorksheetRow, current: dict | None) -> None:
    values = row.values_to_write()
    changed = changed_fields(kind, worksheet.fields, row.shopify_values, current)
    if changed:
        _settle_row(
            row,
            Row.Result.STALE,
            "Shopify's record changed since the snapshot, so it was left alone: " + "; ".join(changed),
        )
        return
    before = {name: kind.field(name).normalise(current.get(name)) for name in values}
    operation, variables = kind.shopify_write(row.key, values, row.shopify_values or {})
    attempt = row.attempts + 1
    override = None
    if row.decision == Row.Decision.OVERRIDE:
        override = (
            f"worksheet #{worksheet.pk}, row {row.key}: {row.note} (approved by {actor_label(worksheet.approved_by)})"
        )
    try:
        call, _created = enqueue(
            worksheet.shop, operation, variables, origin=OutboundCall.Origin.WORKSHEET,
            origin_ref=f"worksheet #{worksheet.pk} row {row.position}", lane=OutboundCall.Lane.RECONCILE,
            key=f"worksheet-{worksheet.pk}-row-{row.pk}-try-{attempt}",
            why=f"Worksheet #{worksheet.pk}: {row.reason}"[:300], label=row.label[:100],
            by=worksheet.approved_by if override else worksheet.applied_by, override_reason=override,
        )  # fmt: skip
    except (QueueError, PermissionDenied) as error:
        _settle_row(row, Row.Result.FAILED, f"not sent: {error}", attempts=attempt, before=before)
        return
    WorksheetRow.objects.filter(pk=row.pk).update(
        result=Row.Result.SENDING, result_detail=f"queued as outbound call #{call.pk}", call=call, attempts=attempt,
        before=before, after=values,
    )  # fmt: skip


def settle(worksheet: Worksheet) -> bool:
    """Rows queued to Shopify take their call's outcome; when none is left, the worksheet is
    applied (every written row applied) or partially applied. Returns True when finished."""
    worksheet.refresh_from_db()
    if worksheet.state != State.APPLYING:
        return True
    sending = list(worksheet.rows.filter(result=Row.Result.SENDING).select_related("call"))
    for row in sending:
        call = row.call
        sending = {"was": Row.Result.SENDING}
        if call is None:
            _settle_row(row, Row.Result.FAILED, "its outbound call is gone", **sending)
        elif call.status == OutboundCall.Status.SUCCEEDED:
            if _settle_row(row, Row.Result.APPLIED, f"written to Shopify (outbound call #{call.pk})", **sending):
                record_action(actor=worksheet.applied_by, verb="worksheet.write_shopify", target=worksheet,
                              before={"row": row.key, **(row.before or {})}, after={"row": row.key, **(row.after or {})})  # fmt: skip
        elif call.status == OutboundCall.Status.FAILED:
            result = Row.Result.STALE if call.failure_kind == "stale" else Row.Result.FAILED
            _settle_row(row, result, f"outbound call #{call.pk}: {call.reason}", **sending)
    if worksheet.rows.filter(result__in=["", Row.Result.SENDING]).exists():
        return False
    with transaction.atomic():
        counts = Counter(worksheet.rows.values_list("result", flat=True))
        target = State.PARTIALLY_APPLIED if counts.get(Row.Result.FAILED) else State.APPLIED
        try:
            _move(worksheet, target, by=None, comment=", ".join(f"{n} {r}" for r, n in sorted(counts.items())),
                  applied_at=timezone.now(), progress_step="", progress_note="")  # fmt: skip
        except WorksheetError:
            return True  # another settle finished it
        record_action(actor=None, verb=f"worksheet.{target}", target=worksheet, after=dict(counts))
    return True


# --- rollback ---------------------------------------------------------------------------------


def rollback(worksheet: Worksheet, *, by, request=None) -> Worksheet:
    """A new worksheet writing back the recorded before-values of every applied row, on the side
    it was written, guarded by the after-values (a record changed since is skipped as stale). It
    goes through review, submission and approval like any other."""
    _require(by, PREPARE, "prepare worksheets")
    if worksheet.state not in (State.APPLIED, State.PARTIALLY_APPLIED):
        raise WorksheetError("Only an applied or partially applied worksheet can be rolled back.")
    applied = list(worksheet.rows.filter(result=Row.Result.APPLIED).order_by("position"))
    if not applied:
        raise WorksheetError("No row of it was applied: nothing to roll back.")
    with transaction.atomic():
        back = Worksheet.objects.create(
            shop=worksheet.shop, resource=worksheet.resource, fields=worksheet.fields, source=Worksheet.Source.ROLLBACK,
            source_detail=f"worksheet #{worksheet.pk}", incident=worksheet.incident, rollback_of=worksheet,
            title=f"Rollback of #{worksheet.pk}" + (f": {worksheet.title}" if worksheet.title else ""),
            prepared_by=acting_user(by) or _named_preparer(), state=State.DRAFT, compared_at=timezone.now(),
        )  # fmt: skip
        rows = []
        for n, row in enumerate(applied, start=1):
            side = row.side
            snapshot_key = "shopify_values" if side == Row.Proposal.WRITE_SHOPIFY else "platform_values"
            expected = dict(getattr(row, snapshot_key) or {})
            expected.update(row.after or {})  # what the record holds if nothing changed since
            fields = [
                {
                    **f,
                    "differs": f["name"] in (row.before or {}),
                    "write": side if f["name"] in (row.before or {}) else None,
                }
                for f in row.fields
            ]
            rows.append(
                WorksheetRow(
                    worksheet=back, position=n, key=row.key, label=row.label, kind=Row.Kind.DIFFERS, proposal=side,
                    reason=f"Roll back worksheet #{worksheet.pk}: write back what it replaced.", fields=fields,
                    shopify_values=expected if side == Row.Proposal.WRITE_SHOPIFY else row.shopify_values,
                    platform_values=expected if side == Row.Proposal.WRITE_PLATFORM else row.platform_values,
                    money=row.money, decision=Row.Decision.OVERRIDE, override_side=side,
                    override_values=row.before, note=f"rollback of worksheet #{worksheet.pk}", decided_by=acting_user(by),
                )
            )  # fmt: skip
        WorksheetRow.objects.bulk_create(rows, batch_size=1000)
        WorksheetStep.objects.create(worksheet=back, source="", target=State.DRAFT, actor=acting_user(by),
                                     actor_label=actor_label(by), comment=f"rollback of worksheet #{worksheet.pk}")  # fmt: skip
        Worksheet.objects.filter(pk=back.pk).update(
            plan_hash=plan_hash(back), progress_total=len(rows), progress_done=len(rows)
        )
        back.refresh_from_db()
        _move(back, State.COMPARED, by=by, comment="rows from the applied rows' before-values")
        record_action(
            actor=by,
            verb="worksheet.rollback",
            target=worksheet,
            after={"rollback": back.pk, "rows": len(rows)},
            request=request,
        )
    return back


# --- reading it -------------------------------------------------------------------------------


def worksheet_json(worksheet: Worksheet, *, rows: bool = True, blast: bool = True) -> dict:
    """The worksheet as the commands print it. `blast` adds the blast radius (it reads every row:
    leave it out for lists)."""
    data = {
        "id": worksheet.pk,
        "state": worksheet.state,
        "shop": worksheet.shop.domain,
        "resource": worksheet.resource,
        "fields": worksheet.fields,
        "title": worksheet.title,
        "source": worksheet.source,
        "source_detail": worksheet.source_detail,
        "incident": worksheet.incident_id,
        "rollback_of": worksheet.rollback_of_id,
        "prepared_by": worksheet.prepared_by.get_username(),
        "submitted_by": worksheet.submitted_by.get_username() if worksheet.submitted_by else None,
        "approved_by": worksheet.approved_by.get_username() if worksheet.approved_by else None,
        "approved_at": worksheet.approved_at.isoformat() if worksheet.approved_at else None,
        "review_comment": worksheet.review_comment,
        "plan_hash": worksheet.plan_hash,
        "approved_hash": worksheet.approved_hash,
        "progress": {
            "step": worksheet.progress_step,
            "done": worksheet.progress_done,
            "total": worksheet.progress_total,
            "note": worksheet.progress_note,
        },
        "created_at": worksheet.created_at.isoformat(),
        "applied_at": worksheet.applied_at.isoformat() if worksheet.applied_at else None,
    }
    if blast and worksheet.state != State.DRAFT:
        data["blast_radius"] = blast_radius(worksheet)
    if rows:
        data["rows"] = [row_json(row) for row in _rows_in_chunks(worksheet)]
    return data


def row_json(row: WorksheetRow) -> dict:
    return {
        "key": row.key,
        "label": row.label,
        "kind": row.kind,
        "proposal": row.proposal,
        "reason": row.reason,
        "fields": [
            {
                "name": f["name"],
                "shopify": f["shopify"],
                "platform": f["platform"],
                "owner": f["owner"],
                "differs": f["differs"],
            }
            for f in row.fields
        ],
        "decision": row.decision,
        "override_side": row.override_side or None,
        "override_values": row.override_values,
        "note": row.note,
        "result": row.result or None,
        "result_detail": row.result_detail,
        "before": row.before,
        "after": row.after,
        "call": row.call_id,
    }


def export_csv(worksheet: Worksheet) -> str:
    """The worksheet and its results, one line per row and field."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["worksheet", "state", "key", "label", "kind", "proposal", "reason", "decision", "field", "owner",
                     "shopify", "platform", "differs", "written", "before", "after", "result", "result_detail"])  # fmt: skip
    for row in _rows_in_chunks(worksheet):
        written = row.values_to_write()
        for f in row.fields or [{"name": "", "owner": "", "shopify": "", "platform": "", "differs": False}]:
            name = f["name"]
            writer.writerow([
                worksheet.pk, worksheet.state, row.key, row.label, row.kind, row.proposal, row.reason, row.decision, name,
                f["owner"], _cell(f["shopify"]), _cell(f["platform"]), "yes" if f["differs"] else "",
                _cell(written.get(name)) if name in written else "", _cell((row.before or {}).get(name)),
                _cell((row.after or {}).get(name)), row.result, row.result_detail,
            ])  # fmt: skip
    return out.getvalue()


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    text = str(value)
    # A spreadsheet runs a cell that starts with one of these as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
