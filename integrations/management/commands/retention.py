"""Retention from the command line: the same run the worker's schedule makes, and what it would do.

    manage.py retention run [--dry-run] [--batch-size N] [--max-batches N] [--json]
    manage.py retention status [--runs N] [--json]

`run` purges payloads past PAYLOAD_RETENTION_DAYS, thins the attempts of jobs (and tries of calls)
that succeeded before ATTEMPT_RETENTION_DAYS, and deletes rejected deliveries past
WEBHOOK_REJECTED_RETENTION_DAYS, in batches (each its own transaction, at most --max-batches per
step), and records a RetentionRun; a backlog takes several runs. `--dry-run` changes nothing and
says what a run would do now. `status` shows the settings, what a run would purge now, when the
worker runs it next and the latest runs.

Exit status 1 (CommandError) when a run recorded errors (they are printed) or a number is not positive.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from integrations.inbound import retention
from integrations.models import RetentionRun

STEP_WORDS = {
    "payloads": "events' payloads purged",
    "attempts": "job attempts deleted",
    "outbound_attempts": "call tries deleted",
    "rejected_deliveries": "rejected deliveries deleted",
}


class Command(BaseCommand):
    help = "Purge old payloads and thin old attempts now (run), or say what would be purged (status)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        run = sub.add_parser("run", help="Run retention now, as the worker's schedule does (recorded).")
        run.add_argument("--dry-run", action="store_true", help="Change nothing: say what a run would do now.")
        run.add_argument("--batch-size", type=int, default=retention.BATCH_SIZE, help="Rows per transaction.")
        run.add_argument(
            "--max-batches", type=int, default=retention.MAX_BATCHES, help="Transactions per step in this run."
        )
        run.add_argument("--json", action="store_true", help="Print JSON.")
        status = sub.add_parser("status", help="The settings, what a run would purge now, the latest runs.")
        status.add_argument("--runs", type=int, default=5, help="How many recent runs to list.")
        status.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args, action, **options):
        self.as_json = options["json"]
        if action == "run":
            self._run(options["dry_run"], options["batch_size"], options["max_batches"])
        else:
            self._status(options["runs"])

    def _print(self, data, lines: list[str]) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str) if self.as_json else "\n".join(lines))

    def _run(self, dry_run: bool, batch_size: int, max_batches: int) -> None:
        if batch_size < 1 or max_batches < 1:
            raise CommandError("--batch-size and --max-batches must be at least 1.")
        run = retention.run_retention(
            batch_size=batch_size, max_batches=max_batches, trigger=RetentionRun.Trigger.COMMAND, dry_run=dry_run
        )
        data = {**retention.run_json(run), "dry_run": dry_run}
        head = "Dry run: a run now would do this (nothing was changed)." if dry_run else f"Retention run {run.pk}:"
        self._print(data, [head, *_step_lines(run.steps, dry_run=dry_run)])
        if run.errors:
            raise CommandError(f"retention run {run.pk} had errors:\n{run.errors}")

    def _status(self, runs: int) -> None:
        data = retention.status(runs=max(runs, 0))
        lines = ["Settings: " + ", ".join(f"{key}={value}" for key, value in data["settings"].items())]
        lines += ["A run now would do:", *_step_lines(data["would"], dry_run=True)]
        lines.append(f"Next run due: {data['next_due'] or 'not scheduled'}")
        lines.append("Latest runs:" if data["runs"] else "Latest runs: none yet")
        for run in data["runs"]:
            done = ", ".join(f"{name}={step.get('done', 0)}" for name, step in run["steps"].items())
            errors = f"  errors: {len(run['errors'])}" if run["errors"] else ""
            lines.append(f"  {run['id']}  {run['started_at']:%Y-%m-%d %H:%M:%S}  {run['trigger']:<8}  {done}{errors}")
        self._print(data, lines)


def _step_lines(steps: dict, *, dry_run: bool) -> list[str]:
    lines = []
    for name, step in steps.items():
        words = STEP_WORDS.get(name, name)
        if step.get("skipped"):
            lines.append(f"  {words}: none ({step['skipped']})")
            continue
        line = f"  {words}: {step.get('done', 0)} in {step.get('batches', 0)} batches"
        if dry_run and "backlog" in step:
            line += f" (due in all: {step['backlog']})"
        if step.get("more"):
            line += "; more left for the next runs"
        if step.get("error"):
            line += f"; failed: {step['error']}"
        lines.append(line)
    return lines
