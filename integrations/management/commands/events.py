"""Event log from the command line.

    manage.py events trace <webhook-id> [--shop DOMAIN] [--json]

`trace` answers the five support questions for one webhook in plain words, or as one JSON object
with --json (the same shape the console uses). Exit status 1 when the webhook id is unknown.
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

    def handle(self, *args, subcommand: str, **options):
        if subcommand == "trace":
            self.trace(options["webhook_id"], shop=options["shop"], as_json=options["as_json"])

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
