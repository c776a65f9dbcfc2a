"""Reconciliation worksheets from the command line: the same services as the pages, the same
maker-checker rules (checked by the services for the real user named by --user).

    manage.py worksheets create --shop S --resource R (--ids FILE | --from-events FILTER | --incident N) [--link-incident N]
                                [--fields a,b,c] --user U [--title T] [--json]
    manage.py worksheets compare ID [--wait] [--timeout S] [--user U] [--json]
    manage.py worksheets show ID [--rows N] [--json]
    manage.py worksheets list [--state S] [--shop S] [--incident N] [--limit N] [--json]
    manage.py worksheets submit ID --user U [--json]
    manage.py worksheets approve ID --user ADMIN [--comment C] [--plan-hash H] [--json]
    manage.py worksheets reject ID --user ADMIN --comment C [--json]
    manage.py worksheets apply ID --user U [--wait] [--timeout S] [--json]
    manage.py worksheets rollback ID --user U [--json]
    manage.py worksheets export ID [--output FILE] [--json]

`--ids FILE` reads Shopify numeric ids or gids (one per line or comma-separated, a CSV's first
column); `-` reads them from stdin. `create` only creates the draft: `compare` reads both sides on
the worker; `--wait` follows the progress (on stderr) until it is done. `apply --wait` also settles
the rows queued to Shopify as their calls finish. The worksheet JSON is `services.worksheet_json`.

Exit status: 0 done; 1 refused (unknown user, shop, incident or worksheet; approval by the preparer
or by a non-admin; apply before approval; reject without a comment; ...), with the reason on stderr
and, with --json, `{"error": reason}` on stdout; 4 when --wait gave up before the worker finished
(the worksheet is printed as it stands; the worker carries on).
"""

import json
import sys
import time
from collections import Counter
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from incidents.worksheets import services
from incidents.worksheets.models import Worksheet
from incidents.worksheets.resources import KINDS
from integrations.models import Shop

STILL_RUNNING = 4
FINISHED_APPLY = (Worksheet.State.APPLIED, Worksheet.State.PARTIALLY_APPLIED)
ROWS_SHOWN = 20
POLL_SECONDS = 0.5
STALL_WARNING_SECONDS = 10  # no progress this long and no live worker: say so (once)


class Command(BaseCommand):
    help = "Reconciliation worksheets: create, compare, show, list, submit, approve, reject, apply, rollback, export."
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)

        def add(name: str, help_text: str, *, with_id: bool = True, user: str | None = None):
            command = sub.add_parser(name, help=help_text)
            if with_id:
                command.add_argument("worksheet_id", type=int, help="The worksheet's id (the number in its URL).")
            if user:
                command.add_argument("--user", default=None, help=user)
            command.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object.")
            return command

        create = add(
            "create",
            "A draft worksheet from a controlled list (ids, an event filter or an incident).",
            with_id=False,
            user="Who prepares it (required; a support or admin username).",
        )
        create.add_argument("--shop", required=True, help="The shop's domain.")
        create.add_argument("--resource", required=True, metavar="|".join(KINDS), help="The resource type compared.")
        create.add_argument("--ids", metavar="FILE", help="A file of Shopify ids or gids ('-': stdin).")
        create.add_argument("--from-events", metavar="FILTER", help='The records of the events matching "shop=S&..."')
        create.add_argument("--incident", type=int, help="The affected records of this incident (its id).")
        create.add_argument(
            "--link-incident", type=int, help="Link it to this incident (a list of ids can be its too)."
        )
        create.add_argument("--fields", help="Fields to compare, comma-separated (default: all of the resource's).")
        create.add_argument("--title", default="", help="A title shown in the list.")

        for name, help_text in (
            ("compare", "Read both sides on the worker and propose a write per row (again: resets decisions)."),
            ("apply", "Write the approved rows on the worker (a partially applied one: retry its failed rows)."),
        ):
            command = add(
                name,
                help_text,
                user="Who does it (required for apply)." if name == "apply" else "Who does it (default: nobody named).",
            )
            command.add_argument("--wait", action="store_true", help="Follow the progress (on stderr) until done.")
            command.add_argument(
                "--timeout", type=float, default=3600.0, help="Seconds --wait follows it before giving up (exit 4)."
            )

        show = add("show", "One worksheet: its state, counts, blast radius and rows.")
        show.add_argument("--rows", type=int, default=None, help=f"Rows to list (default {ROWS_SHOWN}; JSON: all).")

        listing = add("list", "Worksheets, newest first.", with_id=False)
        listing.add_argument("--state", choices=Worksheet.State.values)
        listing.add_argument("--shop", help="Only this shop's (its domain).")
        listing.add_argument("--incident", type=int, help="Only those of this incident.")
        listing.add_argument("--limit", type=int, default=50)

        add("submit", "Submit a compared worksheet for approval.", user="Who submits it (required).")
        approve = add("approve", "Approve exactly the plan shown (an admin who did not prepare it).", user="The admin.")
        approve.add_argument("--comment", default="", help="Kept in the worksheet's history and the audit trail.")
        approve.add_argument("--plan-hash", default=None, help="The plan hash you checked (default: the one stored).")
        reject = add(
            "reject", "Reject a submitted worksheet, saying why (an admin who did not prepare it).", user="The admin."
        )
        reject.add_argument("--comment", default="", help="Why (required): the preparer needs to know what to change.")
        add("rollback", "A new worksheet writing back the applied rows' before-values.", user="Who prepares it.")
        export = add("export", "The worksheet and its results as CSV, one line per row and field.")
        export.add_argument("--output", metavar="FILE", help="Write the CSV here (default: stdout).")

    # --- dispatch ------------------------------------------------------------------------------

    def handle(self, *args, subcommand: str, **options):
        self.as_json = options["as_json"]
        self.stdin = options.get("stdin") or sys.stdin
        try:
            getattr(self, f"do_{subcommand}")(options)
        except (services.WorksheetError, PermissionDenied) as exc:
            self.refuse(str(exc))
        except CommandError as exc:
            self.refuse(str(exc), returncode=exc.returncode)

    def refuse(self, reason: str, returncode: int = 1):
        if self.as_json:
            self.stdout.write(json.dumps({"error": reason}))
        raise CommandError(reason, returncode=returncode)

    # --- look-ups ------------------------------------------------------------------------------

    def user(self, options, *, required: str | None = None):
        username = options.get("user")
        if not username:
            if required:
                raise CommandError(f"Say who {required} with --user U (the action is recorded for that person).")
            return None
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        return user

    def worksheet(self, options) -> Worksheet:
        worksheet = (
            Worksheet.objects.select_related("shop", "prepared_by", "submitted_by", "approved_by")
            .filter(pk=options["worksheet_id"])
            .first()
        )
        if worksheet is None:
            raise CommandError(f"No worksheet {options['worksheet_id']}.")
        return worksheet

    def shop(self, domain: str) -> Shop:
        shop = Shop.objects.filter(domain=domain.strip().lower()).first()
        if shop is None:
            raise CommandError(f"No shop {domain}.")
        return shop

    def incident(self, incident_id: int):
        from incidents.models import Incident

        incident = Incident.objects.filter(pk=incident_id).first()
        if incident is None:
            raise CommandError(f"No incident {incident_id}.")
        return incident

    def read_ids(self, path: str) -> str:
        if path == "-":
            text = self.stdin.read()
        else:
            try:
                text = Path(path).read_text(encoding="utf-8-sig")
            except OSError as exc:
                raise CommandError(f"Cannot read the ids file {path}: {exc.strerror or exc}") from exc
            except UnicodeDecodeError as exc:
                raise CommandError(f"The ids file {path} is not UTF-8 text.") from exc
        if not text.strip():
            raise CommandError(f"The ids file {path} holds no ids." if path != "-" else "No ids on stdin.")
        return text

    # --- subcommands ---------------------------------------------------------------------------

    def do_create(self, options) -> None:
        by = self.user(options, required="prepares it")
        shop = self.shop(options["shop"])
        chosen = [flag for flag in ("ids", "from_events", "incident") if options.get(flag) not in (None, "")]
        if len(chosen) != 1:
            raise CommandError(
                "Build a worksheet from exactly one list: --ids FILE, --from-events FILTER or --incident N."
            )
        fields = None
        if options["fields"]:
            fields = [name.strip() for name in options["fields"].split(",") if name.strip()]
        worksheet = services.create_worksheet(
            shop=shop,
            resource=options["resource"].strip(),
            by=by,
            fields=fields,
            ids_text=self.read_ids(options["ids"]) if options["ids"] else None,
            events_filter=options["from_events"] or None,
            incident=self.incident(options["incident"]) if options["incident"] is not None else None,
            link_incident=self.incident(options["link_incident"]) if options["link_incident"] is not None else None,
            title=options["title"],
        )
        self.print_worksheet(worksheet)

    def do_compare(self, options) -> None:
        worksheet = services.start_compare(self.worksheet(options), by=self.user(options))
        if options["wait"]:
            worksheet = self.follow(worksheet, "compare", timeout=options["timeout"])
        self.print_worksheet(worksheet)
        if options["wait"] and self.comparing(worksheet):
            self.still_running(worksheet, "compare")

    def do_apply(self, options) -> None:
        by = self.user(options, required="applies it")
        worksheet = services.start_apply(self.worksheet(options), by=by)
        if options["wait"]:
            worksheet = self.follow(worksheet, "apply", timeout=options["timeout"])
        self.print_worksheet(worksheet)
        if options["wait"] and worksheet.state not in FINISHED_APPLY:
            self.still_running(worksheet, "apply")

    def do_show(self, options) -> None:
        self.print_worksheet(self.worksheet(options), rows=options["rows"])

    def do_list(self, options) -> None:
        worksheets = Worksheet.objects.select_related("shop", "prepared_by", "submitted_by", "approved_by")
        if options["state"]:
            worksheets = worksheets.filter(state=options["state"])
        if options["shop"]:
            worksheets = worksheets.filter(shop=self.shop(options["shop"]))
        if options["incident"] is not None:
            worksheets = worksheets.filter(incident_id=options["incident"])
        worksheets = list(worksheets.order_by("-created_at", "-id")[: max(1, min(options["limit"], 1000))])
        if self.as_json:
            self.stdout.write(
                json.dumps([services.worksheet_json(w, rows=False, blast=False) for w in worksheets], default=str)
            )
            return
        if not worksheets:
            self.stdout.write(
                "No worksheets. Create one: manage.py worksheets create --shop S --resource R --ids FILE --user U"
            )
        for w in worksheets:
            self.stdout.write(
                f"{w.pk}\t{w.state}\t{w.created_at:%Y-%m-%d %H:%M}\t{w.shop.domain}\t{w.resource}\t"
                f"{w.rows.count()} records\tby {w.prepared_by.get_username()}"
                + (f"\tincident #{w.incident_id}" if w.incident_id else "")
                + (f"\t{w.title[:60]}" if w.title else "")
            )

    def do_submit(self, options) -> None:
        by = self.user(options, required="submits it")
        self.print_worksheet(services.submit(self.worksheet(options), by=by))

    def do_approve(self, options) -> None:
        by = self.user(options, required="approves it")
        worksheet = services.approve(
            self.worksheet(options), by=by, comment=options["comment"], plan_hash_seen=options["plan_hash"]
        )
        self.print_worksheet(worksheet)

    def do_reject(self, options) -> None:
        by = self.user(options, required="rejects it")
        self.print_worksheet(services.reject(self.worksheet(options), by=by, comment=options["comment"]))

    def do_rollback(self, options) -> None:
        by = self.user(options, required="prepares the rollback")
        back = services.rollback(self.worksheet(options), by=by)
        self.print_worksheet(back)

    def do_export(self, options) -> None:
        worksheet = self.worksheet(options)
        text = services.export_csv(worksheet)
        lines = max(0, text.count("\n") - 1)
        if options["output"]:
            try:
                with open(options["output"], "w", encoding="utf-8", newline="") as output:
                    output.write(text)  # the csv module's own line endings
            except OSError as exc:
                raise CommandError(f"Cannot write {options['output']}: {exc.strerror or exc}") from exc
            if self.as_json:
                self.stdout.write(json.dumps({"id": worksheet.pk, "output": options["output"], "lines": lines}))
            else:
                self.stdout.write(f"Worksheet {worksheet.pk}: {lines} lines written to {options['output']}")
        elif self.as_json:
            self.stdout.write(json.dumps({"id": worksheet.pk, "output": None, "lines": lines, "csv": text}))
        else:
            self.stdout.write(text, ending="")

    # --- waiting for the worker ----------------------------------------------------------------

    @staticmethod
    def comparing(worksheet: Worksheet) -> bool:
        return worksheet.state == Worksheet.State.DRAFT and worksheet.progress_step == "compare"

    def follow(self, worksheet: Worksheet, step: str, *, timeout: float) -> Worksheet:
        """Poll until the worker finished `step` (or `timeout` seconds), progress on stderr. An apply
        is settled at each poll, so rows queued to Shopify get their outcome without waiting for
        the minute sweep."""
        deadline = time.monotonic() + max(0.0, timeout)
        last, warned, moved_at = None, False, time.monotonic()
        while True:
            worksheet.refresh_from_db()
            if step == "apply" and worksheet.state == Worksheet.State.APPLYING:
                services.settle(worksheet)
                worksheet.refresh_from_db()
            done = not self.comparing(worksheet) if step == "compare" else worksheet.state in FINISHED_APPLY
            sending = worksheet.rows.filter(result="sending").count() if step == "apply" and not done else 0
            progress = (
                worksheet.state,
                worksheet.progress_done,
                worksheet.progress_total,
                worksheet.progress_note,
                sending,
            )
            if progress != last:
                notes = [worksheet.progress_note] if worksheet.progress_note else []
                notes += [f"{sending} queued to Shopify, waiting for the outbound sender"] if sending else []
                note = f" ({'; '.join(notes)})" if notes else ""
                self.stderr.write(
                    f"worksheet {worksheet.pk}: {step} {worksheet.progress_done}/{worksheet.progress_total} "
                    f"({worksheet.progress_percent}%){note}"
                )
                last, moved_at = progress, time.monotonic()
            if done or time.monotonic() >= deadline:
                return worksheet
            if not warned and time.monotonic() - moved_at > STALL_WARNING_SECONDS and not worker_alive():
                self.stderr.write("No worker seems alive: start one (manage.py qcluster) to run the worksheet.")
                warned = True
            time.sleep(POLL_SECONDS)

    def still_running(self, worksheet: Worksheet, step: str) -> None:
        self.stderr.write(
            f"Worksheet {worksheet.pk}: the {step} is still running ({worksheet.progress_done}/"
            f"{worksheet.progress_total}); follow it with: manage.py worksheets show {worksheet.pk}"
        )
        raise SystemExit(STILL_RUNNING)

    # --- output --------------------------------------------------------------------------------

    def print_worksheet(self, worksheet: Worksheet, *, rows: int | None = None) -> None:
        worksheet.refresh_from_db()
        if self.as_json:
            data = services.worksheet_json(worksheet)
            if rows is not None:
                data["rows_total"] = len(data["rows"])
                data["rows"] = data["rows"][: max(0, rows)]
            self.stdout.write(json.dumps(data, default=str))
            return
        self.stdout.write("\n".join(describe(worksheet, rows=ROWS_SHOWN if rows is None else max(0, rows))))


def worker_alive() -> bool:
    from django.utils import timezone

    from integrations.models import WorkerHeartbeat
    from integrations.processing.claims import lease

    return WorkerHeartbeat.objects.filter(beat_at__gte=timezone.now() - lease()).exists()


def counted(counter: Counter) -> str:
    ordered = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return ", ".join(f"{n} {name.replace('_', ' ')}" for name, n in ordered) or "none"


def describe(worksheet: Worksheet, *, rows: int) -> list[str]:
    """A compact summary: who did what, counts by kind, proposal and result, the blast radius, the
    first rows and the next command."""
    w, State = worksheet, Worksheet.State
    records = w.rows.count()
    lines = [
        f"Worksheet {w.pk} ({w.get_state_display()}): {records} {w.resource.replace('_', ' ')} of {w.shop.domain}"
        + (f" — {w.title}" if w.title else ""),
        f"Fields: {', '.join(w.fields)}. From {w.get_source_display().lower()}"
        + (f" ({w.source_detail})" if w.source_detail else "")
        + (f"; incident #{w.incident_id}" if w.incident_id else "")
        + (f"; rolls back worksheet {w.rollback_of_id}" if w.rollback_of_id else ""),
        "Prepared by "
        + w.prepared_by.get_username()
        + (f"; submitted by {w.submitted_by.get_username()}" if w.submitted_by else "")
        + (f"; approved by {w.approved_by.get_username()}" if w.approved_by else "")
        + (f" ({w.review_comment})" if w.review_comment else ""),
    ]
    if w.plan_hash:
        lines.append(f"Plan hash {w.plan_hash}")
    if w.progress_step:
        note = f": {w.progress_note}" if w.progress_note else ""
        lines.append(f"Progress: {w.progress_step} {w.progress_done}/{w.progress_total} ({w.progress_percent}%){note}")
    if w.state != State.DRAFT:
        values = list(w.rows.values_list("kind", "proposal", "result"))
        lines.append(f"Kinds: {counted(Counter(kind for kind, _p, _r in values))}")
        lines.append(f"Proposals: {counted(Counter(p or 'pending' for _k, p, _r in values))}")
        results = Counter(r for _k, _p, r in values if r)
        if results:
            lines.append(f"Results: {counted(results)}")
        radius = services.blast_radius(w)
        lines.append(
            f"Blast radius: rows to write: {radius['rows_write_shopify']} in Shopify"
            + fields_of(radius["fields_write_shopify"])
            + f", {radius['rows_write_platform']} in the platform"
            + fields_of(radius["fields_write_platform"])
            + f"; {radius['shops']} shop(s), {radius['customers']} customer(s), {radius['orders']} order(s)"
            + (f", money {radius['money']}" if w.resource == "orders" else "")
        )
        shown = list(w.rows.order_by("position")[:rows]) if rows else []
        if shown:
            lines.append(f"Rows ({len(shown)} of {records}):" if records > len(shown) else "Rows:")
        for row in shown:
            decision = f" [{row.decision}]" if row.decision != "accept" else ""
            result = f" -> {row.result}" if row.result else ""
            label = f" {row.label!r}" if row.label else ""
            lines.append(f"  {row.key}{label}  {row.kind}  {row.proposal or '-'}{decision}{result}: {row.reason}")
    lines.append(next_step(w))
    return lines


def fields_of(fields: dict) -> str:
    return f" ({', '.join(f'{name} x{n}' for name, n in sorted(fields.items()))})" if fields else ""


def next_step(w: Worksheet) -> str:
    State, cmd = Worksheet.State, f"manage.py worksheets {{}} {w.pk}"
    return {
        State.DRAFT: f"Next: {cmd.format('compare')} --wait",
        State.COMPARED: f"Next: review the rows in the console, then {cmd.format('submit')} --user U",
        State.SUBMITTED: f"Next: an admin who did not prepare it: {cmd.format('approve')} --user ADMIN "
        f"(or {cmd.format('reject')} --user ADMIN --comment C)",
        State.APPROVED: f"Next: {cmd.format('apply')} --wait --user U",
        State.REJECTED: "Rejected: change its rows in the console (or compare it again), then submit it again",
        State.APPLYING: f"Applying on the worker: {cmd.format('show')}",
        State.APPLIED: f"Applied. To undo: {cmd.format('rollback')} --user U",
        State.PARTIALLY_APPLIED: f"Some rows failed: retry them with {cmd.format('apply')} --wait --user U, "
        f"or undo with {cmd.format('rollback')} --user U",
    }.get(w.state, "")
