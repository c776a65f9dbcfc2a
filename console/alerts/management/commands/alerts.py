"""Alerts from the command line: the same services as the Alerts page, with the same permission
check for the real user named by --user (silences are recorded for that person).

    manage.py alerts list [--all] [--json]              (firing, silences in force; --all: resolved in the last day too)
    manage.py alerts evaluate [--json]                  (run every rule now, as the worker does each minute)
    manage.py alerts silence RULE [--subject S] --minutes N --reason R --user U [--json]
    manage.py alerts unsilence ID [--reason R] --user U [--json]

RULE is one of the rule keys `alerts list` shows (failure_rate, backlog_age, rejected_spike,
missing_scopes, missing_subscriptions, queue_paused, incident_update_overdue, worker_heartbeat);
without --subject the silence covers every subject of the rule.

Exit status: 0 done; 1 refused (unknown user, rule or silence, a silence no longer in force, a
duration outside 1..10080 minutes, no reason, a role that may not), with the reason on stderr and,
with --json, `{"error": reason}` on stdout.
"""

import json

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError

from console.alerts import services
from console.alerts.rules import RULES


class Command(BaseCommand):
    help = "Alerts: list, evaluate, silence, unsilence."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True)

        def add(name: str, help_text: str):
            command = sub.add_parser(name, help=help_text)
            command.add_argument("--json", dest="as_json", action="store_true", help="Print JSON.")
            return command

        listing = add("list", "Firing alerts and silences in force.")
        listing.add_argument("--all", action="store_true", help="Also the alerts resolved in the last day.")
        add("evaluate", "Run every rule now (the worker does it every minute).")
        silencing = add("silence", "Silence a rule (for one subject, or all) for a time, with a reason.")
        silencing.add_argument("rule", help=f"One of: {', '.join(RULES)}.")
        silencing.add_argument("--subject", default="", help="As the alert names it; default: every subject.")
        silencing.add_argument("--minutes", type=int, required=True, help="How long, 1 to 10080.")
        silencing.add_argument("--reason", required=True, help="Why (kept in the audit trail).")
        silencing.add_argument("--user", required=True, help="Who silences it.")
        lifting = add("unsilence", "Lift a silence now.")
        lifting.add_argument("silence_id", type=int, help="The silence's id (alerts list shows it).")
        lifting.add_argument("--reason", default="", help="Why (kept in the audit trail).")
        lifting.add_argument("--user", required=True, help="Who lifts it.")

    def handle(self, *args, subcommand: str, **options):
        self.as_json = options["as_json"]
        try:
            getattr(self, "do_" + subcommand)(options)
        except services.SilenceError as exc:
            self.refuse(str(exc))
        except PermissionDenied as exc:
            self.refuse(f"{options.get('user') or 'nobody'}: {exc or 'not allowed'}")
        except CommandError as exc:
            self.refuse(str(exc), returncode=exc.returncode)

    def refuse(self, reason: str, returncode: int = 1):
        if self.as_json:
            self.stdout.write(json.dumps({"error": reason}))
        raise CommandError(reason, returncode=returncode)

    @staticmethod
    def named(username: str):
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active user {username!r} (--user).")
        return user

    def do_list(self, options):
        overview = services.overview()
        data = {
            "firing": [services.alert_json(alert) for alert in overview["firing"]],
            "silences": [services.silence_json(one) for one in overview["silences"]],
            "worker_heartbeat_gone": overview["heartbeat"]["gone"],
        }
        if options["all"]:
            data["resolved"] = [services.alert_json(alert) for alert in overview["resolved"]]
        if self.as_json:
            self.stdout.write(json.dumps(data))
            return
        if data["worker_heartbeat_gone"]:
            self.stdout.write("No worker heartbeat: nothing evaluates the rules or sends their notices.")
        self.stdout.write(f"Firing: {len(data['firing'])}")
        for alert in data["firing"]:
            quiet = f" (silenced by {alert['silenced_by']})" if alert["silenced_by"] else ""
            self.stdout.write(
                f"  #{alert['id']} {alert['severity'].upper()} {alert['rule']} · {alert['subject']}{quiet}: "
                f"{alert['summary']}"
            )
        self.stdout.write(f"Silences in force: {len(data['silences'])}")
        for one in data["silences"]:
            self.stdout.write(
                f"  {one['id']}: {one['rule']} · {one['subject'] or 'every subject'} until {one['until']} "
                f"by {one['by']}: {one['reason']}"
            )
        if options["all"]:
            self.stdout.write(f"Resolved in the last day: {len(data['resolved'])}")
            for alert in data["resolved"]:
                self.stdout.write(f"  #{alert['id']} {alert['rule']} · {alert['subject']} at {alert['resolved_at']}")

    def do_evaluate(self, options):
        result = services.evaluate()
        if self.as_json:
            self.stdout.write(json.dumps(result))
            return
        self.stdout.write(
            f"Firing {result['firing']}; opened {len(result['opened'])}, resolved {len(result['resolved'])}, "
            f"notices sent {result['notified']}."
        )
        for line in result["opened"]:
            self.stdout.write(f"  opened {line}")
        for line in result["resolved"]:
            self.stdout.write(f"  resolved {line}")
        for rule, error in result["errors"].items():
            self.stderr.write(f"  rule {rule} failed: {error}")

    def do_silence(self, options):
        user = self.named(options["user"])
        one = services.silence(
            rule=options["rule"], subject=options["subject"], minutes=options["minutes"], reason=options["reason"],
            by=user,
        )  # fmt: skip
        data = services.silence_json(one)
        self.stdout.write(
            json.dumps(data)
            if self.as_json
            else f"Silence {one.pk}: {one.rule} · {one.subject or 'every subject'} until {data['until']}."
        )

    def do_unsilence(self, options):
        user = self.named(options["user"])
        one = services.unsilence(options["silence_id"], by=user, reason=options["reason"])
        data = services.silence_json(one)
        self.stdout.write(json.dumps(data) if self.as_json else f"Silence {one.pk} lifted.")
