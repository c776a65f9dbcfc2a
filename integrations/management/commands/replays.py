"""Replays from the command line.

    manage.py replays list [--status S] [--json]
    manage.py replays show ID [--json]
    manage.py replays approve ID --user ADMIN [--plan-hash H] [--json]
    manage.py replays cancel ID [--reason R] [--user U] [--json]

`approve` is refused for the requester, for anyone but an admin, and when a fresh dry run differs
from the plan requested (the replay goes back to a dry run: request it again). Start a replay with
`manage.py events replay`.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from integrations.models import ReplayRequest
from integrations.replay import services
from integrations.replay.commands import print_replay, user_named


class Command(BaseCommand):
    help = "List, show, approve or cancel replays (start one with `events replay`)."

    def add_arguments(self, parser):
        subcommands = parser.add_subparsers(dest="subcommand", required=True)
        listing = subcommands.add_parser("list", help="Recent replays, newest first.")
        listing.add_argument("--status", choices=ReplayRequest.Status.values)
        listing.add_argument("--limit", type=int, default=50)
        listing.add_argument("--json", dest="as_json", action="store_true")
        show = subcommands.add_parser("show", help="One replay: its plan, progress and outcome.")
        show.add_argument("replay_id", type=int)
        show.add_argument("--json", dest="as_json", action="store_true")
        approve = subcommands.add_parser("approve", help="Approve a replay someone else requested (admins).")
        approve.add_argument("replay_id", type=int)
        approve.add_argument("--user", required=True, help="The approving admin's username.")
        approve.add_argument("--plan-hash", help="The plan hash you checked (default: the one stored).")
        approve.add_argument("--json", dest="as_json", action="store_true")
        cancel = subcommands.add_parser("cancel", help="Stop a replay: items not yet run are cancelled.")
        cancel.add_argument("replay_id", type=int)
        cancel.add_argument("--reason", default="cancelled from the command line")
        cancel.add_argument("--user", help="Who cancels it (default: the command line).")
        cancel.add_argument("--json", dest="as_json", action="store_true")

    def handle(self, *args, subcommand: str, **options):
        if subcommand == "list":
            return self.list(options)
        replay = ReplayRequest.objects.filter(pk=options["replay_id"]).first()
        if replay is None:
            raise CommandError(f"No replay {options['replay_id']}.")
        try:
            if subcommand == "approve":
                by = user_named(options["user"], "integrations.approve_replay")
                replay = services.approve_replay(replay, by=by, plan_hash=options["plan_hash"])
            elif subcommand == "cancel":
                by = user_named(options["user"])
                services.cancel_replay(replay, by=by, reason=options["reason"])
        except services.ReplayError as exc:
            raise CommandError(str(exc)) from exc
        replay.refresh_from_db()
        print_replay(self, replay, as_json=options["as_json"])

    def list(self, options) -> None:
        replays = ReplayRequest.objects.order_by("-id")
        if options["status"]:
            replays = replays.filter(status=options["status"])
        replays = list(replays.select_related("approved_by")[: max(1, min(options["limit"], 1000))])
        if options["as_json"]:
            self.stdout.write(json.dumps([services.replay_json(r, with_plan=False) for r in replays], default=str))
            return
        if not replays:
            self.stdout.write("No replays yet. Dry-run one: manage.py events replay WEBHOOK_ID --dry-run")
        for r in replays:
            self.stdout.write(
                f"{r.pk}\t{r.status}\t{r.created_at:%Y-%m-%d %H:%M}\t{r.requested_label}\t"
                f"{r.summary.get('events', 0)} events\t{r.items_done}/{r.items_total}\t{r.reason[:60]}"
            )
