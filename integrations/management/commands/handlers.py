"""Handler switches from the terminal: list them, disable a handler (a job type) for one shop or
every shop, enable it again. The same service as the page (`switches.set_handler`: checked and
audited). `enable` says how many events were held meanwhile and the command that dry-runs their
replay.

    manage.py handlers list [--json]
    manage.py handlers disable JOB [--shop DOMAIN] --reason R [--user U] [--json]
    manage.py handlers enable JOB [--shop DOMAIN] --reason R [--user U] [--json]

Exit status 1 (CommandError) on an unknown job or shop, a missing reason, or a user who may not.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from integrations.jobs.registry import JOB_TYPES
from integrations.models import Shop
from integrations.replay import runbook
from integrations.replay.commands import user_named
from integrations.replay.switches import SwitchError, set_handler


class Command(BaseCommand):
    help = "List, disable and enable handlers (job types), for one shop or every shop (audited)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="Every handler, where it is disabled, and its held events.")
        listing.add_argument("--json", action="store_true", help="Print JSON.")
        for name, verb in (("disable", "Stop"), ("enable", "Run again")):
            action = sub.add_parser(name, help=f"{verb} a handler, for one shop (--shop) or every shop (audited).")
            action.add_argument("job", help="The job type, e.g. tag_buyer (see: handlers list).")
            action.add_argument("--shop", default=None, help="The shop's domain (default: every shop).")
            action.add_argument("--reason", default="", help="Why (required; kept in the audit trail).")
            action.add_argument(
                "--user", default=None, help="Who is acting (support or admin); default: the command line."
            )
            action.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args, action, **options):
        self.as_json = options["json"]
        if action == "list":
            self._list()
        else:
            self._switch(disabled=action == "disable", **options)

    def _print(self, data, text: str) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str) if self.as_json else text)

    def _list(self) -> None:
        rows, _shops = runbook.handler_rows()
        data = [
            {
                "job": row.name,
                "replay": str(row.job_type.replay),
                "disabled_for": (["all shops"] if row.disabled_all else [])
                + [switch.shop.domain for switch in row.disabled_shops],
                "switches": [
                    _switch_json(switch)
                    for switch in [*([row.disabled_all] if row.disabled_all else []), *row.disabled_shops, *row.enabled]
                ],
                "held_events": row.held_total,
                "held_by_shop": {group.where: group.count for group in row.held},
            }
            for row in rows
        ]
        lines = []
        for item in data:
            where = ", ".join(item["disabled_for"]) or "-"
            held = f"  held={item['held_events']}" if item["held_events"] else ""
            lines.append(f"{item['job']:<28} {item['replay']:<12} disabled for: {where}{held}")
        self._print(data, "\n".join(lines))

    def _switch(self, *, disabled: bool, job, shop, reason, user, **_) -> None:
        if job not in JOB_TYPES:
            raise CommandError(f"No job named {job!r}; the handlers are: {', '.join(sorted(JOB_TYPES))}")
        if not reason.strip():
            raise CommandError("Say why with --reason R (kept in the audit trail and shown on every held event).")
        target = None
        if shop is not None:
            target = Shop.objects.filter(domain=shop.strip().lower()).first()
            if target is None:
                raise CommandError(f"No shop {shop}.")
        by = user_named(user)
        was = runbook.was_disabled(job, target)
        try:
            switch = set_handler(job=job, shop=target, disabled=disabled, by=by, reason=reason)
        except SwitchError as exc:
            raise CommandError(str(exc)) from exc
        outcome = runbook.after_switch(job, target, disabled=disabled, was=was)
        data = {**outcome.as_json(), "by": switch.changed_by_label, "reason": switch.reason, "at": switch.changed_at}
        lines = [outcome.sentence()]
        if outcome.held:
            lines.append(f"Dry-run their replay: {outcome.dry_run_command}")
        self._print(data, "\n".join(lines))


def _switch_json(switch) -> dict:
    return {
        "shop": switch.shop.domain if switch.shop else None,
        "disabled": switch.disabled,
        "by": switch.changed_by_label,
        "at": switch.changed_at,
        "disabled_at": switch.disabled_at,
        "reason": switch.reason,
    }
