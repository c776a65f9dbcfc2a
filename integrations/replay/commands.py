"""The replay verbs of the command line (`events replay`, `replays ...`), sharing the services the
pages call, with the same permission checks."""

import json
import time

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from integrations.models import ReplayRequest
from integrations.replay import services
from integrations.replay.selection import SelectionError, for_filter, for_webhook

WAITING_FOR_APPROVAL = 3


def user_named(username: str | None, perm: str | None = "integrations.request_replay"):
    if not username:
        return None
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"No active user {username!r}.")
    if perm and not user.has_perm(perm):
        raise CommandError(
            f"{username} may not do this (needs the {'admin' if 'approve' in perm else 'support'} role)."
        )
    return user


def run_replay_command(command, options) -> None:
    real = not options["dry_run"]
    if real and not options["reason"].strip():
        raise CommandError("A real replay needs --reason (why; kept in the audit trail). Use --dry-run to look first.")
    if bool(options["webhook_id"]) == bool(options["filter"]):
        raise CommandError("Give a webhook id or --filter (one of them).")
    by = user_named(options["user"])
    incident = None
    if options.get("incident"):
        from incidents.models import Incident

        incident = Incident.objects.filter(pk=options["incident"]).first()
        if incident is None:
            raise CommandError(f"No incident {options['incident']}.")
    mode = ReplayRequest.Mode.REFETCH if options["refetch"] else ReplayRequest.Mode.STORED
    try:
        if options["filter"]:
            selection = for_filter(options["filter"])
        else:
            selection = for_webhook(options["webhook_id"], options["shop"])
        replay = services.check_replay(selection=selection, mode=mode, by=by, incident=incident)
        if real:
            replay = services.do_replay(replay, by=by, reason=options["reason"], plan_hash=replay.plan_hash)
    except (SelectionError, services.ReplayError) as exc:
        raise CommandError(str(exc)) from exc
    if real and options["wait"]:
        replay = follow(command, replay, quiet=options["as_json"])
    print_replay(command, replay, as_json=options["as_json"], dry_run=not real)
    if replay.status == ReplayRequest.Status.AWAITING_APPROVAL:
        command.stderr.write(
            f"Replay {replay.pk} needs an admin's approval ({'; '.join(replay.approval_reasons)}): "
            f"manage.py replays approve {replay.pk} --user ADMIN"
        )
        raise SystemExit(WAITING_FOR_APPROVAL)


def follow(command, replay: ReplayRequest, *, quiet: bool, timeout: float = 24 * 3600) -> ReplayRequest:
    """Print the progress until the replay is done (the worker runs it)."""
    from integrations.models import WorkerHeartbeat
    from integrations.processing.claims import lease

    deadline = time.monotonic() + timeout
    last = None
    while replay.status not in ReplayRequest.FINISHED and replay.status != ReplayRequest.Status.AWAITING_APPROVAL:
        if time.monotonic() > deadline:
            break
        from django.utils import timezone

        if not WorkerHeartbeat.objects.filter(beat_at__gte=timezone.now() - lease()).exists() and not quiet:
            command.stderr.write("No event pump is alive: start the worker (manage.py qcluster) to run the replay.")
        time.sleep(1.0)
        replay.refresh_from_db()
        progress = (replay.items_done, replay.items_total)
        if progress != last and not quiet:
            command.stderr.write(
                f"replay {replay.pk}: {replay.items_done}/{replay.items_total} ({replay.progress_percent}%)"
            )
            last = progress
    return replay


def print_replay(command, replay: ReplayRequest, *, as_json: bool, dry_run: bool = False) -> None:
    data = services.replay_json(replay)
    if as_json:
        command.stdout.write(json.dumps(data, default=str))
        return
    summary = replay.summary
    lines = [
        f"Replay {replay.pk} ({replay.get_status_display()}): {summary.get('events', 0)} events, "
        f"{summary.get('jobs_to_run', 0)} jobs to run, {summary.get('jobs_to_skip', 0)} to skip, "
        f"{summary.get('outbound_calls', 0)} outbound calls (replay lane)"
        + (f", {summary.get('refetch_reads')} records read from Shopify first" if replay.mode == "refetch" else ""),
        f"Plan hash {replay.plan_hash}",
    ]
    if replay.needs_approval:
        lines.append("Needs an admin's approval: " + "; ".join(replay.approval_reasons))
    for entry in replay.plan[:200]:
        lines.append(f"  {entry['decision']:4}  {entry['webhook_id']}  {entry['job'] or '-'}: {entry['reason']}")
    if len(replay.plan) > 200:
        lines.append(f"  ... and {len(replay.plan) - 200} more (use --json for all)")
    if dry_run:
        lines.append("Dry run: nothing ran. Run it with --reason R (without --dry-run).")
    elif replay.status in (ReplayRequest.Status.QUEUED, ReplayRequest.Status.RUNNING):
        lines.append(f"Queued for the worker's replay lane: manage.py replays show {replay.pk}")
    elif replay.outcome:
        lines.append(replay.outcome)
    command.stdout.write("\n".join(lines))
