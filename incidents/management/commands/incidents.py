"""Incidents from the command line: the same services as the pages, with the same permission
checks for the real user named by --user (every change is recorded for that person).

    manage.py incidents open --title T [--direction inbound|outbound|both] [--shop S ...]
                             [--from-events FILTER] [--events 1,2,3] [--calls 4,5] [--from-calls FILTER]
                             [--summary TEXT] [--public-title T] [--impact T] [--advice T] [--workaround T]
                             [RUBRIC ANSWERS] [--severity sevN --severity-reason R] [--lead U2] [--detected ISO]
                             --user U [--json]
    manage.py incidents show ID [--json]
    manage.py incidents list [--open | --all] [--limit N] [--json]
    manage.py incidents update ID --body B --audience engineering|customer_service|fulfilment|operations
                               [--confirmed] [--next-update ISO] --user U [--json]
    manage.py incidents confirm ID UPDATE_ID --user U [--json]
    manage.py incidents status ID STATUS [--note N] [--override-reason R] --user U [--json]
    manage.py incidents severity ID [RUBRIC ANSWERS] [--override sevN --reason R] --user U [--json]
    manage.py incidents strategy ID STRATEGY [--reason R] --user U [--json]
    manage.py incidents action ID --kind containment|remediation --title T [--owner U2] [--due ISO] --user U [--json]
    manage.py incidents action-done ID ACTION_ID [--reopen] --user U [--json]
    manage.py incidents resolve ID [--override-reason R] --user U [--json]
    manage.py incidents link ID [--events 1,2] [--from-events FILTER] [--calls 4,5] [--from-calls FILTER]
                             [--shop S ...] --user U [--json]
    manage.py incidents replay ID --user U [--json]                      (controlled replay: a dry run)
    manage.py incidents pause ID --reason R --user U [--json]            (pause the linked shops' queues)
    manage.py incidents disable-handler ID JOB [--shop S] --reason R --user U [--json]
    manage.py incidents rollback ID WORKSHEET_ID --user U [--json]
    manage.py incidents correct ID [--resource orders|customers] [--shop S] --user U [--json]
    manage.py incidents watch ID --topic T [--shop S] [--minutes N] [--remind ISO] --user U [--json]
    manage.py incidents summary ID [--json]                               (the Markdown post-incident summary)
    manage.py incidents lookup ORDER_NAME_OR_EMAIL [--resolved-days N] [--json]
    manage.py incidents edit ID [--title T] [--summary S] [--public-title T] [--impact T] [--advice T]
                             [--workaround T] [--direction D] [--lead U2] --user U [--json]
    manage.py incidents repair-state ID order|customer KEY waiting|replayed|repaired|needs_manual [--shop S]
                             [--note N] --user U [--json]
    manage.py incidents send-again ID NOTIFICATION_ID --user U [--json]
    manage.py incidents follow-ups [--owner U] [--json]
    manage.py incidents lists [--json]                                    (who is notified, per audience and severity)
    manage.py incidents list-set AUDIENCE SEVERITY [--users U1,U2] [--emails A,B] --user ADMIN [--json]

RUBRIC ANSWERS (each optional; a question not answered keeps the answer the linked data suggests,
or for `severity` the incident's current answer): --orders blocked|delayed|no,
--fulfilment/--no-fulfilment, --money-or-stock/--no-money-or-stock,
--customer-visible/--no-customer-visible, --has-workaround/--no-workaround, --records N,
--shops-affected N. (`open --workaround T` is the text customer service reads, not an answer.)

FILTER is the replay filter syntax: `shop=S&topic=T&status=failed&since=ISO` for events and
`shop=S&operation=O&status=failed&since=ISO` for outbound calls. Times are ISO 8601
(2026-12-01T15:00Z; without an offset they are in the console's time zone).

The incident JSON is `services.incident_json` with `measured` (what the linked data says) and
`notifications` (each e-mail with its audience, recipients and status) added.

Exit status: 0 done; 1 refused (unknown user, incident, shop, action or update; a transition the
status table does not allow; resolving while a containment action is open, or while the data is not
repaired without --override-reason; a time that cannot be read; a role that may not), with the
reason on stderr and, with --json, `{"error": reason}` on stdout.
"""

import json
from datetime import datetime, time

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from incidents import affected, notifications, rubric, services
from incidents.models import (
    SEVERITY_FOR_CUSTOMERS,
    AffectedRecord,
    Audience,
    Direction,
    Incident,
    IncidentAction,
    IncidentUpdate,
    NotificationList,
)
from integrations.models import Event, OutboundCall, Shop

AFFECTED_SHOWN = 20
RUBRIC_FLAGS = ("orders", "fulfilment_affected", "money_or_stock_wrong", "customer_visible", "workaround")


class Command(BaseCommand):
    help = (
        "Incidents: open, show, list, update, confirm, status, severity, strategy, action, action-done, resolve, "
        "link, replay, pause, disable-handler, rollback, correct, watch, summary, lookup."
    )

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)

        def add(name: str, help_text: str, *, with_id: bool = True, user: str | None = None):
            command = sub.add_parser(name, help=help_text)
            if with_id:
                command.add_argument("incident_id", type=int, help="The incident's id (the number in its URL).")
            if user:
                command.add_argument("--user", default=None, help=user)
            command.add_argument("--json", dest="as_json", action="store_true", help="Print JSON.")
            return command

        def links(command, *, shops_help: str):
            command.add_argument(
                "--shop", dest="shops", action="append", default=[], metavar="S", help=shops_help + " (repeatable)"
            )
            command.add_argument("--events", action="append", default=[], metavar="1,2,3", help="Event ids.")
            command.add_argument("--from-events", metavar="FILTER", help='The events matching "shop=S&topic=T&..."')
            command.add_argument("--calls", action="append", default=[], metavar="4,5", help="Outbound call ids.")
            command.add_argument(
                "--from-calls", metavar="FILTER", help='The outbound calls matching "shop=S&operation=O&..."'
            )

        def answers(command):
            command.add_argument(
                "--orders", choices=[rubric.ORDERS_BLOCKED, rubric.ORDERS_DELAYED, rubric.ORDERS_FINE], default=None
            )
            for flag, dest, yes, no in (
                ("fulfilment", "fulfilment_affected", "Fulfilment timing is affected.", "It is not."),
                ("money-or-stock", "money_or_stock_wrong", "Money or stock is wrong.", "It is not."),
                ("customer-visible", "customer_visible", "Customers can see it.", "They cannot."),
            ):
                command.add_argument(f"--{flag}", dest=dest, action="store_true", default=None, help=yes)
                command.add_argument(f"--no-{flag}", dest=dest, action="store_false", default=None, help=no)
            command.add_argument(
                "--has-workaround", dest="workaround", action="store_true", default=None, help="A workaround exists."
            )
            command.add_argument(
                "--no-workaround", dest="workaround", action="store_false", default=None, help="None exists."
            )
            command.add_argument("--records", type=int, default=None, help="How many records are affected.")
            command.add_argument("--shops-affected", type=int, default=None, help="How many shops are affected.")

        opening = add(
            "open", "Open an incident (by hand, or from events and calls).", with_id=False, user="Who opens it."
        )
        opening.add_argument("--title", required=True, help="Internal: engineering's name for it.")
        opening.add_argument("--direction", choices=Direction.values, default="", help="Default: from the links.")
        links(opening, shops_help="An affected shop, its domain or id")
        opening.add_argument("--summary", default="", help="Internal: what is known.")
        opening.add_argument("--public-title", default="", help="For customer service: a plain-language name.")
        opening.add_argument("--impact", default="", help="What merchants or shoppers may notice.")
        opening.add_argument("--advice", default="", help="What customer service should tell them.")
        opening.add_argument(
            "--workaround", dest="workaround_text", default="", metavar="T", help="What customers can do meanwhile."
        )
        answers(opening)
        opening.add_argument("--severity", choices=Incident.Severity.values, default="", help="Override the rubric.")
        opening.add_argument("--severity-reason", default="", help="Why the override (required with --severity).")
        opening.add_argument("--lead", default=None, help="The lead's username (default: --user).")
        opening.add_argument("--detected", default=None, metavar="ISO", help="When it was noticed (default: now).")

        add("show", "One incident: severity and why, actions, updates, affected records, what blocks resolving.")
        listing = add("list", "Incidents, newest first (open ones by default).", with_id=False)
        which = listing.add_mutually_exclusive_group()
        which.add_argument("--open", dest="only_open", action="store_true", default=True, help="Open ones (default).")
        which.add_argument("--all", dest="only_open", action="store_false", help="Resolved ones too.")
        listing.add_argument("--limit", type=int, default=50)

        update = add("update", "Post a status update for one audience.", user="Who writes it.")
        update.add_argument("--body", required=True, help="The update's text.")
        update.add_argument("--audience", required=True, choices=Audience.values)
        update.add_argument("--confirmed", action="store_true", help="Stable enough to share (it is sent).")
        update.add_argument("--next-update", default=None, metavar="ISO", help="When the next update is promised.")
        confirm = add("confirm", "Confirm an update still being established (it is sent).", user="Who confirms it.")
        confirm.add_argument("update_id", type=int)

        status = add("status", "Move the incident along its status table.", user="Who moves it.")
        status.add_argument("status", metavar="|".join(Incident.Status.values))
        status.add_argument("--note", default="", help="Kept on the timeline.")
        status.add_argument("--override-reason", default="", help="Resolving while the data is not repaired.")

        severity = add("severity", "Answer the rubric again (and override its severity with a reason).", user="Who.")
        answers(severity)
        severity.add_argument(
            "--override", choices=Incident.Severity.values, default="", help="Instead of the rubric's."
        )
        severity.add_argument("--reason", default="", help="Why the override (required with --override).")

        strategy = add("strategy", "Choose and record the response strategy.", user="Who chooses it.")
        strategy.add_argument("strategy", metavar="|".join(Incident.Strategy.values))
        strategy.add_argument("--reason", default="")

        action = add("action", "Add a containment or remediation action.", user="Who adds it.")
        action.add_argument("--kind", required=True, choices=IncidentAction.Kind.values)
        action.add_argument("--title", required=True)
        action.add_argument("--owner", default=None, help="The owner's username.")
        action.add_argument("--due", default=None, metavar="ISO", help="When it is due.")
        done = add("action-done", "Mark an action done (or --reopen it).", user="Who.")
        done.add_argument("action_id", type=int)
        done.add_argument("--reopen", action="store_true", help="Open it again.")

        resolving = add("resolve", "Resolve (refused while containment is open).", user="Who resolves it.")
        resolving.add_argument(
            "--override-reason", default="", help="Resolve although the data is not repaired yet, saying why."
        )

        linking = add("link", "Link more events, outbound calls or shops.", user="Who links them.")
        links(linking, shops_help="A shop, its domain or id")

        add("replay", "Controlled replay: a dry run of the linked failing events (nothing runs).", user="Who.")
        pause = add("pause", "Pause the linked shops' outbound queues (containment, recorded done).", user="Who.")
        pause.add_argument("--reason", default="", help="Why (default: the incident).")
        disable = add("disable-handler", "Disable a misbehaving handler (its events are held).", user="Who.")
        disable.add_argument("job", help="The handler (job type).")
        disable.add_argument("--shop", default=None, help="Only for this shop (default: every shop).")
        disable.add_argument("--reason", default="", help="Why (default: the incident).")
        back = add("rollback", "A worksheet writing back what a linked worksheet changed.", user="Who prepares it.")
        back.add_argument("worksheet_id", type=int)
        correct = add("correct", "Manual correction: a draft worksheet of the affected records.", user="Who.")
        correct.add_argument("--resource", default="orders", choices=["orders", "customers"])
        correct.add_argument("--shop", default=None, help="Which shop (needed when several are linked).")
        watch = add("watch", "Monitored wait: watch a topic's failure rate, with a reminder.", user="Who.")
        watch.add_argument("--topic", required=True, help="The topic (orders/create) or outbound operation.")
        watch.add_argument("--shop", default=None)
        watch.add_argument("--minutes", type=int, default=15, help="The window failures are counted in.")
        watch.add_argument("--remind", default=None, metavar="ISO", help="When to look again (default: by severity).")

        edit = add(
            "edit", "Change the words: title, summary, direction, lead, what customer service reads.", user="Who."
        )
        for flag, dest in (("--title", "title"), ("--summary", "summary"), ("--public-title", "public_title"),
                           ("--impact", "customer_impact"), ("--advice", "customer_advice"),
                           ("--workaround", "workaround")):  # fmt: skip
            edit.add_argument(flag, dest=f"edit_{dest}", default=None)
        edit.add_argument("--direction", dest="edit_direction", default=None, choices=Direction.values)
        edit.add_argument("--lead", dest="edit_lead", default=None, help="The lead's username.")
        repair = add(
            "repair-state", "Say how far an affected record's repair has got (kept by refreshes).", user="Who."
        )
        repair.add_argument("kind", choices=AffectedRecord.Kind.values)
        repair.add_argument("key", help="The order name (#1001) or the customer's e-mail.")
        repair.add_argument("state", choices=AffectedRecord.RepairState.values)
        repair.add_argument("--shop", default=None, help="The shop, when the record is in several.")
        repair.add_argument("--note", default="")
        again = add("send-again", "Send a failed notification again (to its recorded recipients).", user="Who.")
        again.add_argument("notification_id", type=int)
        follow = add("follow-ups", "Open remediation actions across incidents, resolved ones included.", with_id=False)
        follow.add_argument("--owner", default=None, help="Only this owner's (a username).")
        add("summary", "The post-incident summary in Markdown.")
        add("lists", "Who is notified: each audience's list for each severity.", with_id=False)
        set_list = add("list-set", "Set one notification list (admins).", with_id=False, user="The admin.")
        set_list.add_argument("audience", choices=[a.value for a in Audience])
        set_list.add_argument("severity", choices=[s.value for s in Incident.Severity])
        set_list.add_argument("--users", default="", metavar="U1,U2", help="Usernames (replaces the list's users).")
        set_list.add_argument("--emails", default="", metavar="A,B", help="Plain addresses (replaces them).")
        lookup = add("lookup", "Does an open incident affect this order or customer?", with_id=False)
        lookup.add_argument("text", metavar="ORDER_NAME_OR_EMAIL")
        lookup.add_argument(
            "--resolved-days", type=int, default=7, help="Include incidents resolved this many days ago (default 7)."
        )

    # --- dispatch ------------------------------------------------------------------------------

    def handle(self, *args, subcommand: str, **options):
        self.as_json = options["as_json"]
        self.username = options.get("user")
        try:
            getattr(self, "do_" + subcommand.replace("-", "_"))(options)
        except services.ResolveRefused as exc:
            reason = str(exc)
            if exc.needs_override:
                reason += " Add --override-reason R to resolve anyway (kept on the incident and in the audit trail)."
            self.refuse(reason)
        except services.IncidentError as exc:
            self.refuse(str(exc))
        except PermissionDenied as exc:
            self.refuse(f"{self.username or 'nobody'}: {exc or 'not allowed'}")
        except CommandError as exc:
            self.refuse(str(exc), returncode=exc.returncode)

    def refuse(self, reason: str, returncode: int = 1):
        if self.as_json:
            self.stdout.write(json.dumps({"error": reason}))
        raise CommandError(reason, returncode=returncode)

    # --- look-ups ------------------------------------------------------------------------------

    def user(self, options, what: str):
        """The active user --user names; every change needs one (it is recorded for that person)."""
        username = options.get("user")
        if not username:
            raise CommandError(f"Say who {what} with --user U (the change is recorded for that person).")
        return self.named(username)

    @staticmethod
    def named(username: str, flag: str = "--user"):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r} ({flag}).")
        return user

    def incident(self, options) -> Incident:
        incident = Incident.objects.select_related("lead").filter(pk=options["incident_id"]).first()
        if incident is None:
            raise CommandError(f"No incident {options['incident_id']}.")
        return incident

    @staticmethod
    def shop(text: str) -> Shop:
        text = (text or "").strip()
        query = Q(domain=text.lower()) | (Q(pk=int(text)) if text.isdigit() else Q(pk__in=[]))
        shop = Shop.objects.filter(query).first()
        if shop is None:
            raise CommandError(f"No shop {text}.")
        return shop

    @staticmethod
    def ids(values: list[str], flag: str) -> list[int]:
        found = []
        for value in values:
            for part in value.replace(" ", ",").split(","):
                part = part.strip()
                if not part:
                    continue
                if not part.isdigit():
                    raise CommandError(f"{flag}: {part!r} is not an id (give numbers, comma-separated).")
                found.append(int(part))
        return found

    @staticmethod
    def when(value: str | None, flag: str) -> datetime | None:
        """An ISO 8601 time (or a date: its midnight); naive ones in the console's time zone."""
        if value is None:
            return None
        text = value.strip()
        try:
            parsed = parse_datetime(text)
            if parsed is None and (day := parse_date(text)) is not None:
                parsed = datetime.combine(day, time())
        except ValueError:
            parsed = None
        if parsed is None:
            raise CommandError(
                f"{flag}: {value!r} is not a date and time; use ISO 8601, e.g. 2026-12-01T15:00Z or 2026-12-01 15:00."
            )
        return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed

    def linked(self, options) -> tuple[list[int], list[int], list[Shop]]:
        """Event ids, call ids and shops from --events/--from-events/--calls/--from-calls/--shop."""
        event_ids = self.ids(options["events"], "--events")
        if options.get("from_events"):
            event_ids += services.events_for_filter(options["from_events"])
        call_ids = self.ids(options["calls"], "--calls")
        if options.get("from_calls"):
            call_ids += services.calls_for_filter(options["from_calls"])
        shops = [self.shop(text) for text in options["shops"]]
        return list(dict.fromkeys(event_ids)), list(dict.fromkeys(call_ids)), shops

    @staticmethod
    def given_answers(options) -> dict:
        given = {name: options[name] for name in RUBRIC_FLAGS if options.get(name) is not None}
        if options.get("records") is not None:
            given["records"] = options["records"]
        if options.get("shops_affected") is not None:
            given["shops"] = options["shops_affected"]
        return given

    # --- subcommands ---------------------------------------------------------------------------

    def do_open(self, options) -> None:
        by = self.user(options, "opens it")
        lead = self.named(options["lead"], "--lead") if options["lead"] else None
        detected = self.when(options["detected"], "--detected")
        event_ids, call_ids, shops = self.linked(options)
        given = self.given_answers(options)
        answers = None
        if given:
            # The questions not answered keep what the linked data suggests.
            measured = services.measure_links(event_ids, call_ids)
            linked_shops = {shop.pk for shop in shops}
            if event_ids:
                linked_shops |= set(Event.objects.filter(pk__in=event_ids).values_list("shop_id", flat=True))
            if call_ids:
                linked_shops |= set(OutboundCall.objects.filter(pk__in=call_ids).values_list("shop_id", flat=True))
            measured.shops = len(linked_shops)
            answers = {**measured.suggested_answers().as_dict(), **given}
        incident = services.open_incident(
            title=options["title"], by=by, direction=options["direction"], shops=shops, event_ids=event_ids,
            call_ids=call_ids, summary=options["summary"], answers=answers, severity=options["severity"],
            severity_reason=options["severity_reason"], public_title=options["public_title"],
            customer_impact=options["impact"], customer_advice=options["advice"],
            workaround=options["workaround_text"], lead=lead, detected_at=detected,
        )  # fmt: skip
        self.print_incident(incident, opened=True)

    def do_show(self, options) -> None:
        self.print_incident(self.incident(options))

    def do_list(self, options) -> None:
        incidents = Incident.objects.order_by("-opened_at", "-id")
        if options["only_open"]:
            incidents = incidents.filter(status__in=Incident.OPEN)
        incidents = list(
            incidents.annotate(n_shops=Count("shops", distinct=True))[: max(1, min(options["limit"], 1000))]
        )
        if self.as_json:
            self.stdout.write(json.dumps([services.incident_json(i) for i in incidents], default=str))
            return
        if not incidents:
            self.stdout.write(
                ("No open incidents." if options["only_open"] else "No incidents.")
                + " Open one: manage.py incidents open --title T --from-events FILTER --user U"
            )
        for i in incidents:
            self.stdout.write(
                f"{i.pk}\t{i.severity_label}\t{i.status}\t{i.opened_at:%Y-%m-%d %H:%M}\t{i.n_shops} shop(s)\t"
                f"{i.title[:80]}" + ("\tUPDATE OVERDUE" if i.update_overdue else "")
            )

    def do_update(self, options) -> None:
        by = self.user(options, "writes the update")
        incident = self.incident(options)
        update = services.post_update(
            incident, body=options["body"], audience=options["audience"], by=by, confirmed=options["confirmed"],
            next_update_at=self.when(options["next_update"], "--next-update"),
        )  # fmt: skip
        self.print_update(update)

    def do_confirm(self, options) -> None:
        by = self.user(options, "confirms the update")
        incident = self.incident(options)
        update = incident.updates.filter(pk=options["update_id"]).first()
        if update is None:
            raise CommandError(f"No update {options['update_id']} on incident {incident.pk}.")
        self.print_update(services.confirm_update(update, by=by))

    def do_status(self, options) -> None:
        by = self.user(options, "changes the status")
        incident = services.change_status(
            self.incident(options),
            options["status"].strip().lower(),
            by=by,
            note=options["note"],
            override_reason=options["override_reason"],
        )
        self.print_incident(incident)

    def do_severity(self, options) -> None:
        by = self.user(options, "answers the rubric")
        incident = self.incident(options)
        # Questions not answered keep the incident's current answers; records and shops the larger
        # of those and what the linked data measures now (more may have been linked since).
        measured = services.measure(incident)
        current = {**measured.suggested_answers().as_dict(), **(incident.rubric or {})}
        current["records"] = max(int(current.get("records") or 0), measured.records)
        current["shops"] = max(int(current.get("shops") or 0), measured.shops)
        incident = services.set_severity(
            incident,
            by=by,
            answers={**current, **self.given_answers(options)},
            override=options["override"],
            reason=options["reason"],
        )
        self.print_incident(incident)

    def do_strategy(self, options) -> None:
        by = self.user(options, "chooses the response")
        incident = services.choose_strategy(
            self.incident(options), options["strategy"].strip().lower(), by=by, reason=options["reason"]
        )
        self.print_incident(incident)
        if not self.as_json:
            self.stdout.write(strategy_hint(incident))

    def do_action(self, options) -> None:
        by = self.user(options, "adds the action")
        incident = self.incident(options)
        owner = self.named(options["owner"], "--owner") if options["owner"] else None
        action = services.add_action(
            incident, kind=options["kind"], title=options["title"], by=by, owner=owner,
            due_at=self.when(options["due"], "--due"),
        )  # fmt: skip
        self.print_action(action)

    def do_action_done(self, options) -> None:
        by = self.user(options, "marks the action")
        incident = self.incident(options)
        action = incident.actions.filter(pk=options["action_id"]).first()
        if action is None:
            raise CommandError(f"No action {options['action_id']} on incident {incident.pk}.")
        self.print_action(services.complete_action(action, by=by, done=not options["reopen"]))

    def do_resolve(self, options) -> None:
        by = self.user(options, "resolves it")
        incident = services.resolve(self.incident(options), by=by, override_reason=options["override_reason"])
        self.print_incident(incident)

    def do_link(self, options) -> None:
        by = self.user(options, "links them")
        incident = self.incident(options)
        event_ids, call_ids, shops = self.linked(options)
        if not (event_ids or call_ids or shops):
            raise CommandError(
                "Nothing to link: give --events, --from-events, --calls, --from-calls or --shop "
                "(a filter that matches nothing links nothing)."
            )
        counts = services.link(incident, by=by, event_ids=event_ids, call_ids=call_ids, shops=shops)
        self.print_incident(incident, extra={"linked": counts})

    def do_replay(self, options) -> None:
        by = self.user(options, "dry-runs the replay")
        replay = services.start_controlled_replay(self.incident(options), by=by)
        summary = replay.summary or {}
        url = reverse("replays:detail", args=[replay.pk])
        if self.as_json:
            data = {
                "replay": replay.pk, "status": replay.status, "events": summary.get("events", 0),
                "summary": summary, "plan_hash": replay.plan_hash, "needs_approval": replay.needs_approval,
                "incident": replay.incident_id, "url": url,
            }  # fmt: skip
            self.stdout.write(json.dumps(data, default=str))
            return
        self.stdout.write(
            f"Replay {replay.pk} ({replay.get_status_display()}), a dry run for incident {replay.incident_id}: "
            f"{summary.get('events', 0)} events, {summary.get('jobs_to_run', 0)} jobs to run, "
            f"{summary.get('jobs_to_skip', 0)} to skip, {summary.get('outbound_calls', 0)} outbound calls "
            f"(replay lane).\nPlan hash {replay.plan_hash}\n"
            + (
                "Needs an admin's approval: " + "; ".join(replay.approval_reasons) + "\n"
                if replay.needs_approval
                else ""
            )
            + f"Nothing ran. Check the plan and run it from the console: {url}"
        )

    def do_pause(self, options) -> None:
        by = self.user(options, "pauses the queues")
        incident = self.incident(options)
        paused = services.pause_queues(incident, by=by, reason=options["reason"])
        shops = [{"shop": shop.domain, "held": held} for shop, held in paused]
        self.print_incident(incident, extra={"paused": shops})

    def do_disable_handler(self, options) -> None:
        by = self.user(options, "disables the handler")
        incident = self.incident(options)
        shop = self.shop(options["shop"]) if options["shop"] else None
        services.disable_handler(incident, job=options["job"], shop=shop, by=by, reason=options["reason"])
        self.print_incident(
            incident, extra={"disabled": {"job": options["job"], "shop": shop.domain if shop else None}}
        )

    def do_rollback(self, options) -> None:
        from incidents.worksheets.models import Worksheet

        by = self.user(options, "prepares the rollback")
        incident = self.incident(options)
        worksheet = Worksheet.objects.filter(pk=options["worksheet_id"]).first()
        if worksheet is None:
            raise CommandError(f"No worksheet {options['worksheet_id']}.")
        back = services.rollback_worksheet(incident, worksheet, by=by)
        self.print_incident(incident, extra={"worksheet": back.pk})
        if not self.as_json:
            self.stdout.write(f"Rollback worksheet {back.pk}: next, manage.py worksheets compare {back.pk} --wait")

    def do_correct(self, options) -> None:
        by = self.user(options, "prepares the worksheet")
        incident = self.incident(options)
        shop = self.shop(options["shop"]) if options["shop"] else None
        worksheet = services.start_manual_correction(incident, by=by, resource=options["resource"], shop=shop)
        self.print_incident(incident, extra={"worksheet": worksheet.pk})
        if not self.as_json:
            self.stdout.write(f"Worksheet {worksheet.pk}: next, manage.py worksheets compare {worksheet.pk} --wait")

    def do_watch(self, options) -> None:
        by = self.user(options, "starts the watch")
        incident = self.incident(options)
        shop = self.shop(options["shop"]) if options["shop"] else None
        incident = services.start_watch(
            incident, by=by, topic=options["topic"], shop=shop, minutes=options["minutes"],
            remind_at=self.when(options["remind"], "--remind"),
        )  # fmt: skip
        status = services.watch_status(incident) or {}
        watch = {
            "topic": status.get("topic"), "shop": shop.domain if shop else None, "minutes": status.get("minutes"),
            "failures": status.get("failures"), "before": status.get("before"), "trend": status.get("trend"),
            "remind_at": incident.watch_remind_at.isoformat() if incident.watch_remind_at else None,
        }  # fmt: skip
        self.print_incident(incident, extra={"watch": watch})

    def do_lists(self, options) -> None:
        lists = {(one.audience, one.severity): one for one in NotificationList.objects.prefetch_related("users")}
        rows = [
            {"audience": audience, "severity": severity, **notifications.list_state(lists.get((audience, severity))),
             "recipients": lists[(audience, severity)].addresses() if (audience, severity) in lists else []}
            for audience in Audience.values
            for severity in Incident.Severity.values
        ]  # fmt: skip
        if self.as_json:
            self.stdout.write(json.dumps(rows))
            return
        for row in rows:
            who = ", ".join(row["recipients"]) or "nobody"
            self.stdout.write(f"{row['audience']}\t{row['severity']}\t{who}")

    def do_list_set(self, options) -> None:
        by = self.user(options, "edits the list")
        names = [name.strip() for name in options["users"].split(",") if name.strip()]
        users = [self.named(name, "--users") for name in names]
        try:
            one = notifications.set_list(
                audience=options["audience"], severity=options["severity"], users=users, emails=options["emails"], by=by
            )
        except notifications.AddressError as exc:
            raise CommandError(f"Nothing saved: {exc}.") from exc
        state = {"audience": one.audience, "severity": one.severity, **notifications.list_state(one),
                 "recipients": one.addresses()}  # fmt: skip
        self.stdout.write(json.dumps(state) if self.as_json else f"{one}: {', '.join(state['recipients']) or 'nobody'}")

    def do_edit(self, options) -> None:
        by = self.user(options, "edits it")
        incident = self.incident(options)
        fields = {
            name[len("edit_") :]: value
            for name, value in options.items()
            if name.startswith("edit_") and value is not None
        }
        if "lead" in fields:
            fields["lead"] = self.named(fields["lead"], "--lead")
        if not fields:
            raise CommandError("Nothing to change: give --title, --summary, --public-title, --impact, --advice, "
                               "--workaround, --direction or --lead.")  # fmt: skip
        self.print_incident(services.edit(incident, by=by, **fields))

    def do_repair_state(self, options) -> None:
        by = self.user(options, "sets the state")
        incident = self.incident(options)
        key = (
            affected.order_key(options["key"])
            if options["kind"] == AffectedRecord.Kind.ORDER
            else options["key"].lower()
        )
        records = incident.affected.filter(kind=options["kind"], key=key)
        if options["shop"]:
            records = records.filter(shop=self.shop(options["shop"]))
        found = list(records[:2])
        if not found:
            raise CommandError(f"Incident {incident.pk} has no affected {options['kind']} {key}.")
        if len(found) > 1:
            raise CommandError(f"{key} is affected in several shops: name one with --shop.")
        record = services.set_repair_state(found[0], options["state"], by=by, note=options["note"])
        data = {"kind": record.kind, "key": record.key, "shop": record.shop.domain, "repair_state": record.repair_state,
                "note": record.repair_note}  # fmt: skip
        self.stdout.write(
            json.dumps(data) if self.as_json else f"{record.kind} {record.key}: {record.get_repair_state_display()}"
        )

    def do_send_again(self, options) -> None:
        self.user(options, "sends it again")
        incident = self.incident(options)
        notification = incident.notifications.filter(pk=options["notification_id"]).first()
        if notification is None:
            raise CommandError(f"No notification {options['notification_id']} on incident {incident.pk}.")
        if not notifications.send_again(notification):
            raise CommandError(f"Notification {notification.pk} is {notification.get_status_display().lower()}: "
                               "only a failed one is sent again.")  # fmt: skip
        notification.refresh_from_db()
        data = {"id": notification.pk, "status": notification.status, "error": notification.error,
                "recipients": notification.recipients}  # fmt: skip
        self.stdout.write(
            json.dumps(data) if self.as_json else f"notification {notification.pk}: {notification.status}"
        )

    def do_follow_ups(self, options) -> None:
        actions = services.follow_ups()
        if options["owner"]:
            actions = actions.filter(owner=self.named(options["owner"], "--owner"))
        rows = [
            {"incident": a.incident_id, "incident_status": a.incident.status, "id": a.pk, "title": a.title,
             "owner": a.owner.get_username() if a.owner else None, "due_at": a.due_at.isoformat() if a.due_at else None,
             "overdue": a.overdue}
            for a in actions[:500]
        ]  # fmt: skip
        if self.as_json:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("No open follow-ups.")
        for row in rows:
            due = row["due_at"] or "no due date"
            self.stdout.write(f"#{row['incident']}\t{row['id']}\t{row['owner'] or '-'}\t{due}"
                              f"{'  OVERDUE' if row['overdue'] else ''}\t{row['title']}")  # fmt: skip

    def do_summary(self, options) -> None:
        incident = self.incident(options)
        text = services.summary_markdown(incident)
        if self.as_json:
            self.stdout.write(json.dumps({"id": incident.pk, "markdown": text}))
        else:
            self.stdout.write(text, ending="")

    def do_lookup(self, options) -> None:
        text = options["text"].strip()
        if not text:
            raise CommandError("Give an order number (#1001 or 1001) or a customer's e-mail.")
        records = affected.lookup(text, include_resolved_days=max(0, options["resolved_days"]))
        latest = latest_shared_updates({r.incident_id for r in records})
        found = [lookup_json(r, latest.get(r.incident_id)) for r in records]
        if self.as_json:
            self.stdout.write(json.dumps(found))
            return
        if not found:
            self.stdout.write(f"No open incident affects {text}.")
            return
        for row in found:
            fixed = "fixed" if row["fixed"] else "not fixed yet"
            self.stdout.write(
                f"{row['kind']} {row['key']} ({row['shop']}): incident {row['incident']} “{row['title']}” "
                f"({row['incident_status']}) — {row['repair_state_label'].lower()}, {fixed}. Tell them: {row['advice']}"
                + (f" Workaround: {row['workaround']}" if row["workaround"] else "")
            )

    # --- output --------------------------------------------------------------------------------

    def incident_data(self, incident: Incident) -> tuple[dict, rubric.Measured]:
        # Repair states are derived from the events, replays and worksheet rows: bring them up to
        # date first (the measures count the records not yet repaired).
        affected.refresh(AffectedRecord.objects.filter(incident=incident))
        measured = services.measure(incident)
        data = services.incident_json(incident)
        data["measured"] = measured.as_dict()
        data["notifications"] = [
            {
                "id": n.pk,
                "kind": n.kind,
                "audience": n.audience,
                "recipients": n.recipients,
                "status": n.status,
                "error": n.error,
                "created_at": n.created_at.isoformat(),
                "sent_at": n.sent_at.isoformat() if n.sent_at else None,
            }
            for n in incident.notifications.order_by("created_at", "id")
        ]
        return data, measured

    def print_incident(self, incident: Incident, *, extra: dict | None = None, opened: bool = False) -> None:
        incident.refresh_from_db()
        data, measured = self.incident_data(incident)
        data.update(extra or {})
        if self.as_json:
            self.stdout.write(json.dumps(data, default=str))
            return
        lines = describe(incident, data, measured)
        if opened:
            lines.append(
                f"Next: choose a response (manage.py incidents strategy {incident.pk} STRATEGY --user U) and post "
                f"an update (manage.py incidents update {incident.pk} --body B --audience A --user U)."
            )
        self.stdout.write("\n".join(lines))

    def print_action(self, action: IncidentAction) -> None:
        action.refresh_from_db()
        data = {
            "id": action.pk, "kind": action.kind, "title": action.title, "done": action.done,
            "owner": action.owner.get_username() if action.owner else None,
            "due_at": action.due_at.isoformat() if action.due_at else None, "incident": action.incident_id,
            "done_at": action.done_at.isoformat() if action.done_at else None,
            "done_by": action.done_by.get_username() if action.done_by else None,
        }  # fmt: skip
        if self.as_json:
            self.stdout.write(json.dumps(data))
            return
        owner = f", owner {data['owner']}" if data["owner"] else ""
        due = f", due {action.due_at:%Y-%m-%d %H:%M %Z}" if action.due_at else ""
        state = f"done by {data['done_by'] or 'someone'}" if action.done else "open"
        self.stdout.write(
            f"Action {action.pk} ({action.get_kind_display().lower()}, {state}) on incident {action.incident_id}: "
            f"{action.title}{owner}{due}"
        )

    def print_update(self, update: IncidentUpdate) -> None:
        update.refresh_from_db()
        incident = update.incident
        incident.refresh_from_db()
        notices = [
            {"audience": n.audience, "status": n.status, "recipients": n.recipients, "error": n.error}
            for n in incident.notifications.filter(update=update).order_by("id")
        ]
        data = {
            "id": update.pk, "incident": incident.pk, "audience": update.audience, "confirmed": update.confirmed,
            "body": update.body, "author": update.author.get_username(),
            "confirmed_by": update.confirmed_by.get_username() if update.confirmed_by else None,
            "confirmed_at": update.confirmed_at.isoformat() if update.confirmed_at else None,
            "created_at": update.created_at.isoformat(),
            "next_update_at": update.next_update_at.isoformat() if update.next_update_at else None,
            "next_update_due_at": incident.next_update_due_at.isoformat() if incident.next_update_due_at else None,
            "notifications": notices,
        }  # fmt: skip
        if self.as_json:
            self.stdout.write(json.dumps(data))
            return
        state = f"confirmed by {data['confirmed_by']}" if update.confirmed else "still being established (not sent)"
        lines = [
            f"Update {update.pk} on incident {incident.pk} for {update.get_audience_display()}, {state}:",
            f"  {update.body}",
            f"Next update due {when_text(incident.next_update_due_at)}.",
        ]
        lines += [
            f"E-mail to {n['audience']}: {n['status']} ({len(n['recipients'])} recipients)"
            + (f" — {n['error']}" if n["error"] else "")
            for n in notices
        ]
        if not update.confirmed:
            lines.append(
                f"Confirm it once it is stable: manage.py incidents confirm {incident.pk} {update.pk} --user U"
            )
        self.stdout.write("\n".join(lines))


# --- human output ------------------------------------------------------------------------------


def when_text(at) -> str:
    return timezone.localtime(at).strftime("%Y-%m-%d %H:%M %Z") if at else "—"


def describe(incident: Incident, data: dict, measured: rubric.Measured) -> list[str]:
    lines = [
        f"Incident {incident.pk} · {incident.severity_label} · {incident.get_status_display()}: {incident.title}",
        f"Direction {incident.direction}; shops: {', '.join(data['shops']) or '—'}; {data['linked_events']} linked "
        f"events, {data['linked_calls']} outbound calls; lead {data['lead'] or '—'}",
        f"Severity {incident.severity_label}{' (overridden)' if incident.severity_overridden else ''}: "
        f"{incident.severity_reasoning}",
        f"Measured: {measured.orders_unsynced} orders not repaired ({measured.orders_unfulfilled} unfulfilled), "
        f"money at risk {measured.money_text()}, {measured.customers} customers, {measured.shops} shops, "
        f"{measured.failed_events} failing events, {measured.failed_calls} failed calls",
    ]
    if incident.strategy:
        lines.append(
            f"Response: {incident.get_strategy_display()}"
            + (f" — {incident.strategy_reason}" if incident.strategy_reason else "")
        )
    else:
        lines.append(f"Response: none chosen yet (manage.py incidents strategy {incident.pk} STRATEGY --user U)")
    if incident.public_title or incident.customer_impact or incident.customer_advice or incident.workaround:
        lines.append(f"For customer service: “{incident.board_title}”")
        for label, text in (
            ("impact", incident.customer_impact),
            ("tell them", incident.customer_advice),
            ("workaround", incident.workaround),
        ):
            if text:
                lines.append(f"  {label}: {text}")
    if incident.is_open:
        lines.append(
            f"Next update due {when_text(incident.next_update_due_at)}"
            + (" — OVERDUE" if incident.update_overdue else "")
        )
    else:
        lines.append(
            f"Resolved {when_text(incident.resolved_at)}"
            + (f" with an override: {incident.resolve_override_reason}" if incident.resolve_override_reason else "")
        )
    for kind, heading in (("containment", "Containment"), ("remediation", "Remediation")):
        actions = [a for a in data["actions"] if a["kind"] == kind]
        lines.append(f"{heading}:" if actions else f"{heading}: none")
        for a in actions:
            extra = ", ".join(
                p for p in (a["owner"] and f"owner {a['owner']}", a["due_at"] and f"due {a['due_at']}") if p
            )
            lines.append(f"  [{'x' if a['done'] else ' '}] {a['id']}: {a['title']}" + (f" ({extra})" if extra else ""))
    lines.append("Updates:" if data["updates"] else "Updates: none yet")
    for u in data["updates"]:
        state = "confirmed" if u["confirmed"] else "unconfirmed"
        lines.append(f"  {u['id']} · {u['created_at'][:16]} · {u['audience']} · {state}: {u['body']}")
    failed = [n for n in data["notifications"] if n["status"] == "failed"]
    if data["notifications"]:
        counts = {}
        for n in data["notifications"]:
            counts[n["status"]] = counts.get(n["status"], 0) + 1
        lines.append("E-mails: " + ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in sorted(counts.items())))
        lines += [f"  FAILED to send to {n['audience']} ({n['kind']}): {n['error']}" for n in failed]
    records = data["affected"]
    if records:
        states: dict[str, int] = {}
        for r in records:
            states[r["repair_state"]] = states.get(r["repair_state"], 0) + 1
        lines.append(
            f"Affected records ({len(records)}): "
            + ", ".join(f"{AffectedRecord.RepairState(k).label.lower()} {v}" for k, v in sorted(states.items()))
        )
        lines += [f"  {r['kind']} {r['key']} ({r['shop']}): {r['repair_state']}" for r in records[:AFFECTED_SHOWN]]
        if len(records) > AFFECTED_SHOWN:
            lines.append(f"  ... and {len(records) - AFFECTED_SHOWN} more (use --json for all)")
    if data["replays"]:
        lines.append("Replays: " + ", ".join(map(str, data["replays"])))
    if data["worksheets"]:
        lines.append("Worksheets: " + ", ".join(map(str, data["worksheets"])))
    blockers = data["resolve_blockers"]
    if blockers is not None:
        gate = []
        if blockers["open_containment"]:
            gate.append(f"{len(blockers['open_containment'])} containment action(s) open (must be done)")
        if blockers["unapplied_rows"]:
            gate.append(f"{blockers['unapplied_rows']} worksheet rows not applied (needs --override-reason)")
        if blockers["unrepaired_events"]:
            gate.append(
                f"{blockers['unrepaired_events']} failed events not replayed or resolved (needs --override-reason)"
            )
        lines.append("To resolve: " + ("; ".join(gate) if gate else "nothing stands in the way"))
    return lines


def strategy_hint(incident: Incident) -> str:
    pk, S = incident.pk, Incident.Strategy
    return "Carry it out: " + {
        S.ROLLBACK: f"manage.py incidents rollback {pk} WORKSHEET_ID --user U (revert a linked worksheet), or "
        f"manage.py incidents disable-handler {pk} JOB [--shop S] --user U",
        S.CONTROLLED_REPLAY: f"manage.py incidents replay {pk} --user U (a dry run of the linked events)",
        S.QUEUE_PAUSE: f"manage.py incidents pause {pk} --reason R --user U",
        S.MANUAL_CORRECTION: f"manage.py incidents correct {pk} [--resource orders|customers] --user U",
        S.MONITORED_WAIT: f"manage.py incidents watch {pk} --topic T [--minutes N] --user U",
    }.get(incident.strategy, f"manage.py incidents show {pk}")


# --- the customer-service lookup ---------------------------------------------------------------


def latest_shared_updates(incident_ids: set[int]) -> dict[int, IncidentUpdate]:
    """The newest confirmed customer-service update of each incident (what customer service may read)."""
    latest: dict[int, IncidentUpdate] = {}
    shared = IncidentUpdate.objects.filter(
        incident_id__in=incident_ids, confirmed=True, audience=Audience.CUSTOMER_SERVICE
    ).order_by("created_at", "id")
    for update in shared:
        latest[update.incident_id] = update
    return latest


def lookup_json(record: AffectedRecord, update: IncidentUpdate | None) -> dict:
    """A looked-up record as customer service may read it: the incident's public name, never its
    internal title, summary, notes or unconfirmed updates."""
    incident = record.incident
    return {
        "incident": incident.pk,
        "incident_status": incident.status,
        "title": incident.board_title,
        "severity": incident.severity,
        "kind": record.kind,
        "key": record.key,
        "shop": record.shop.domain,
        "repair_state": record.repair_state,
        "repair_state_label": record.get_repair_state_display(),
        "fixed": record.repair_state == AffectedRecord.RepairState.REPAIRED,
        "advice": incident.customer_advice or SEVERITY_FOR_CUSTOMERS[incident.severity],
        "impact": incident.customer_impact,
        "workaround": incident.workaround,
        "latest_update": update.body if update else None,
        "latest_update_at": update.created_at.isoformat() if update else None,
    }
