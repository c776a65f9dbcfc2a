"""Whether this console can do its work now: the checks of GET /readyz, from the command line.

    manage.py readiness [--json]

Prints each check (ok, failed or skipped, with its ages and thresholds); with --json the same
object /readyz answers. Exit status: 0 ready; 1 not ready, naming the failing checks on stderr.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from console import readiness


class Command(BaseCommand):
    help = "Check the database, migrations, worker heartbeat and backlogs, as GET /readyz does; exit 1 if not ready."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the /readyz JSON")

    def handle(self, *args, **options):
        result = readiness.report()
        if options["json"]:
            self.stdout.write(json.dumps(result, indent=2))
        else:
            for name, check in result["checks"].items():
                state = "ok" if check["ok"] else "skipped" if "skipped" in check else "FAILED"
                details = ", ".join(f"{key}={_text(value)}" for key, value in check.items() if key != "ok")
                self.stdout.write(f"{name:<17} {state:<8} {details}")
            self.stdout.write(f"status: {result['status']}")
        if result["status"] != "ok":
            raise CommandError(f"not ready: {', '.join(result['failing']) or 'checks skipped'}")


def _text(value) -> str:
    if isinstance(value, dict):
        return " ".join(f"{key}:{item}" for key, item in value.items())
    return "-" if value is None else str(value)
