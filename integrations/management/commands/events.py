"""Event log from the command line.

    manage.py events trace <webhook-id> [--shop DOMAIN] [--json]
    manage.py events fail <event-id> --reason R --user U [--json]
    manage.py events ignore <event-id> --reason R --user U [--json]
    manage.py events pumps [--json]
    manage.py events replay WEBHOOK_ID [--shop DOMAIN] [--dry-run] [--refetch] --reason R [--user U] [--wait] [--json]
    manage.py events replay --filter "shop=S&topic=T&status=failed&since=ISO&until=ISO" [...same flags]

`trace` answers the five support questions for one webhook in plain words, or as one JSON object
with --json (the same shape the console uses). Exit status 1 when the webhook id is unknown.
`fail` and `ignore` set an event's status by hand, as the event page does (same service, same
audit entry, recorded for --user). `pumps` lists the event pumps and whether each is alive.
`replay` always makes the dry run first and prints it; with --dry-run that is all. Without, it runs
exactly that plan (a reason is required): queued for the worker's replay lane, or waiting for an
admin's approval when it is over the limits (`manage.py replays approve ID --user U`). --wait
follows the progress until it is done. Exit status: 1 refused (no reason, nothing replayable,
unknown webhook, a rejected delivery), 3 waiting for approval.
"""

import json

from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from integrations.eventlog.trace import plain_words, trace_webhook
from integrations.models import Event, webhook_id_match


class Command(BaseCommand):
    help = "Event log tools. `events trace <webhook-id>` says what became of a webhook."

    def add_arguments(self, parser):
        subcommands = parser.add_subparsers(dest="subcommand", required=True, metavar="{trace}")
        trace = subcommands.add_parser("trace", help="Received? verified? processed? which jobs? where did it fail?")
        trace.add_argument("webhook_id", help="X-Shopify-Webhook-Id of the delivery.")
        trace.add_argument("--shop", dest="shop", help="Shop domain, when the id could belong to several shops.")
        trace.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object.")

        for name, words in (("fail", "give up on it: the worker stops retrying"), ("ignore", "nothing needs doing")):
            parser_ = subcommands.add_parser(name, help=f"Mark an event {name}ed by hand ({words}).")
            parser_.add_argument("event_id", type=int, help="The console's event id (the number in its URL).")
            parser_.add_argument("--reason", required=True, help="Why (kept on the event and in the audit trail).")
            parser_.add_argument("--user", required=True, help="Who is doing it (a support or admin username).")
            parser_.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object.")
        pumps = subcommands.add_parser("pumps", help="The event pumps, their last heartbeat and events handled.")
        pumps.add_argument("--json", dest="as_json", action="store_true", help="Print a JSON list.")

        replay = subcommands.add_parser(
            "replay", help="Dry-run, then replay, one webhook or every event matching a filter."
        )
        replay.add_argument("webhook_id", nargs="?", help="X-Shopify-Webhook-Id of the event to replay.")
        replay.add_argument("--filter", dest="filter", help='e.g. "shop=S&topic=orders/create&status=failed&since=ISO"')
        replay.add_argument("--shop", dest="shop", help="Shop domain, when the webhook id was seen for several shops.")
        replay.add_argument("--dry-run", action="store_true", help="Only show the plan: nothing runs.")
        replay.add_argument(
            "--refetch", action="store_true", help="Read each record from Shopify first (stale payloads)."
        )
        replay.add_argument("--reason", default="", help="Why (required for a real replay; kept in the audit trail).")
        replay.add_argument("--user", help="Who asks (a support or admin username); default: the command line.")
        replay.add_argument("--wait", action="store_true", help="Follow the progress until the replay is done.")
        replay.add_argument("--incident", type=int, help="Link the replay to this incident (its id).")
        replay.add_argument("--json", dest="as_json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, subcommand: str, **options):
        if subcommand == "trace":
            self.trace(options["webhook_id"], shop=options["shop"], as_json=options["as_json"])
        elif subcommand in ("fail", "ignore"):
            self.set_status(
                subcommand,
                options["event_id"],
                reason=options["reason"],
                username=options["user"],
                as_json=options["as_json"],
            )
        elif subcommand == "pumps":
            self.pumps(as_json=options["as_json"])
        elif subcommand == "replay":
            self.replay(options)

    def replay(self, options) -> None:
        from integrations.replay.commands import run_replay_command

        run_replay_command(self, options)

    def set_status(self, verb: str, event_id: int, *, reason: str, username: str, as_json: bool) -> None:
        from django.contrib.auth import get_user_model

        from integrations.processing.interventions import mark_event_failed, mark_event_ignored

        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r}.")
        if not user.has_perm("integrations.triage_event"):
            raise CommandError(f"{username} may not change events (needs the support or admin role).")
        event = Event.objects.filter(pk=event_id).first()
        if event is None:
            raise CommandError(f"No event {event_id}.")
        service = mark_event_failed if verb == "fail" else mark_event_ignored
        try:
            changed = service(event=event, by=user, reason=reason)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if not changed:
            raise CommandError(f"Event {event_id} is {event.status}: it cannot be marked {verb}ed from there.")
        event.refresh_from_db()
        result = {"id": event.pk, "status": event.status, "status_reason": event.status_reason}
        self.stdout.write(json.dumps(result) if as_json else f"Event {event.pk} is now {event.status}.")

    def pumps(self, *, as_json: bool) -> None:
        from django.utils import timezone

        from integrations.models import WorkerHeartbeat
        from integrations.processing.claims import lease

        now = timezone.now()
        rows = [
            {
                "name": beat.name,
                "alive": beat.beat_at >= now - lease(),
                "started_at": beat.started_at.isoformat(),
                "beat_at": beat.beat_at.isoformat(),
                "processed_total": beat.processed_total,
                "holding": Event.objects.filter(status=Event.Status.CLAIMED, claimed_by=beat.name).count(),
            }
            for beat in WorkerHeartbeat.objects.order_by("-beat_at")[:100]
        ]
        if as_json:
            self.stdout.write(json.dumps(rows))
            return
        if not rows:
            self.stdout.write("No pump has run yet. Start the worker: manage.py qcluster")
        for row in rows:
            state = "alive" if row["alive"] else "stopped"
            self.stdout.write(
                f"{row['name']}\t{state}\tlast beat {row['beat_at']}\t{row['processed_total']} handled\t"
                f"holding {row['holding']}"
            )

    def trace(self, webhook_id: str, *, shop: str | None, as_json: bool) -> None:
        result = trace_webhook(webhook_id, shop)
        if result is None:
            where = f" for shop {shop}" if shop else ""
            raise CommandError(f"No delivery with webhook id {webhook_id!r}{where} was ever received.", returncode=1)
        if as_json:
            self.stdout.write(json.dumps(result, sort_keys=True))
            return
        if not shop and result["event_id"] is not None:
            other_shops = (
                Event.objects.filter(webhook_id_match(result["webhook_id"]))
                .exclude(pk=result["event_id"])
                .values_list("shop__domain", flat=True)
            )
            if other_shops:
                self.stderr.write(f"Also seen for: {', '.join(other_shops)} (pass --shop to pick one).")
        self.stdout.write("\n".join(describe(result)))


def describe(trace: dict) -> list[str]:
    """The trace as short plain sentences, one per question, with job details and times."""
    lines = [f"Webhook {trace['webhook_id']} ({trace['topic'] or 'unknown topic'}) for {trace['shop'] or '?'}"]
    for question, answer in plain_words(trace):
        lines.append(f"{question} {answer}")
        if question == "Received?":
            lines.append(f"  first {trace['first_received_at']}, last {trace['last_received_at']}")
        if question == "Which jobs?":
            for job in trace["jobs"]:
                attempts = "1 attempt" if job["attempts"] == 1 else f"{job['attempts']} attempts"
                error = f": {job['error']}" if job["error"] else ""
                lines.append(f"  - {job['name']}: {job['status']} after {attempts}{error}")
    if trace["event_id"] is not None:
        lines.append(f"In the console: {reverse('events:detail', args=[trace['event_id']])}")
    return lines
