"""The alert rules. Each is a plain function of `now` returning what breaches right now, as
`Breach(subject, summary, details)`; `services.evaluate` opens, keeps and resolves alerts from
them. Thresholds come from settings (`ALERT_*`, documented in .env.example). Every query is
bounded by a time window on an indexed column or served by a partial index, so a rule costs the
size of the window or of the backlog, never of the history.

A rule's `details` may carry "severity" to override the rule's own (an overdue incident is as
severe as the incident)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, Max, Min, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from console.models import AuditEntry
from integrations.models import Delivery, Event, HealthCheck, OutboundCall, Shop, WorkerHeartbeat

ENGINEERING = "engineering"
OPERATIONS = "operations"
SETTLED = (Event.Status.PROCESSED, Event.Status.FAILED, Event.Status.IGNORED)
# Subjects a rule names in its summary when many are involved.
NAMED = 5


@dataclass(frozen=True)
class Breach:
    subject: str
    summary: str
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    key: str
    title: str
    audience: str
    severity: str
    check: Callable[[datetime], list[Breach]]
    help: str


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


# --- the rules ----------------------------------------------------------------------------------


def failure_rate(now: datetime) -> list[Breach]:
    """A shop's topic whose settled events in the window failed more often than
    ALERT_FAILURE_RATE, with at least ALERT_FAILURE_MIN_EVENTS settled (a range of
    int_event_received_idx)."""
    minutes = settings.ALERT_WINDOW_MINUTES
    rate, least = settings.ALERT_FAILURE_RATE, settings.ALERT_FAILURE_MIN_EVENTS
    rows = (
        Event.objects.filter(received_at__gte=now - timedelta(minutes=minutes), status__in=SETTLED)
        .values("shop__domain", "topic")
        .annotate(settled=Count("id"), failed=Count("id", filter=Q(status=Event.Status.FAILED)))
        .filter(settled__gte=max(least, 1))
        .order_by()
    )
    found = []
    for row in rows:
        share = row["failed"] / row["settled"]
        if share > rate:
            found.append(
                Breach(
                    f"{row['shop__domain']} {row['topic']}",
                    f"{row['failed']} of {row['settled']} {row['topic']} webhooks from {row['shop__domain']} "
                    f"received in the last {minutes} minutes failed ({share:.0%}; the limit is {rate:.0%}).",
                    {
                        "shop": row["shop__domain"],
                        "topic": row["topic"],
                        "failed": row["failed"],
                        "settled": row["settled"],
                        "rate": round(share, 4),
                        "limit": rate,
                        "window_minutes": minutes,
                    },
                )
            )
    return found


def backlog_age(now: datetime) -> list[Breach]:
    """The oldest queued event, and the oldest outbound call due to be sent, older than
    ALERT_BACKLOG_SECONDS. Calls of a paused shop or held by a missing scope or token are left
    out: their own alerts say why they wait."""
    from integrations.outbound.queue import held_by_holds

    limit = settings.ALERT_BACKLOG_SECONDS
    cutoff = now - timedelta(seconds=limit)
    found = []
    # The oldest queued event by id: one row of the partial index int_event_queued_idx.
    oldest = Event.objects.filter(status=Event.Status.QUEUED).order_by("id").values("id", "received_at").first()
    if oldest and oldest["received_at"] < cutoff:
        waiting = Event.objects.filter(status=Event.Status.QUEUED, received_at__lt=cutoff).count()
        age = (now - oldest["received_at"]).total_seconds()
        found.append(
            Breach(
                "events",
                f"The oldest queued webhook event has waited {_age(age)} (limit {_age(limit)}); "
                f"{waiting} queued {'event is' if waiting == 1 else 'events are'} older than that limit. Are the workers "
                "running and keeping up?",
                {
                    "oldest_event_id": oldest["id"],
                    "oldest_received_at": _iso(oldest["received_at"]),
                    "age_seconds": round(age),
                    "older_than_limit": waiting,
                    "limit_seconds": limit,
                },
            )
        )
    # Unfinished calls are a range of int_call_due_idx; a call is due from its next try, else its creation.
    due = (
        OutboundCall.objects.filter(status__in=[OutboundCall.Status.QUEUED, OutboundCall.Status.WAITING])
        .filter(shop__queue_paused=False)
        .annotate(due_since=Coalesce("next_attempt_at", "created_at"))
        .filter(due_since__lt=cutoff)
    )
    held = held_by_holds()
    if held is not None:
        due = due.exclude(held)
    calls = due.aggregate(n=Count("id"), oldest=Min("due_since"))
    if calls["n"]:
        age = (now - calls["oldest"]).total_seconds()
        found.append(
            Breach(
                "outbound calls",
                f"{calls['n']} calls to Shopify have been due for longer than {_age(limit)}; the oldest for "
                f"{_age(age)}. Are the senders running, or is a shop's throttle exhausted?",
                {
                    "due_calls": calls["n"],
                    "oldest_due_at": _iso(calls["oldest"]),
                    "age_seconds": round(age),
                    "limit_seconds": limit,
                },
            )
        )
    return found


def rejected_spike(now: datetime) -> list[Breach]:
    """More than ALERT_REJECTED_SPIKE webhooks refused for their signature or headers in the
    window (a range of the partial index int_delivery_rejected_idx): a flood of forged posts, or a
    shop whose secret no longer matches ours."""
    minutes, limit = settings.ALERT_WINDOW_MINUTES, settings.ALERT_REJECTED_SPIKE
    rejected = Delivery.objects.filter(
        event__isnull=True, received_at__gte=now - timedelta(minutes=minutes), outcome=Delivery.Outcome.REJECTED
    )
    count = rejected.count()
    if count <= limit:
        return []
    top = list(rejected.values_list("shop_domain").annotate(n=Count("id")).order_by("-n", "shop_domain")[:NAMED])
    named = ", ".join(f"{domain or 'no shop header'} ({n})" for domain, n in top)
    return [
        Breach(
            "webhooks",
            f"{count} webhooks were rejected in the last {minutes} minutes (limit {limit}), most from: {named}. "
            "A shop whose webhook secret no longer matches, or forged requests.",
            {"rejected": count, "limit": limit, "window_minutes": minutes, "by_shop": [list(pair) for pair in top]},
        )
    ]


def _latest_checks(kind: str) -> list[tuple[str, HealthCheck]]:
    """Each installed shop's latest check of `kind` (one probe of int_health_shop_idx per shop)."""
    latest = HealthCheck.objects.filter(shop=OuterRef("pk"), kind=kind).order_by("-id").values("id")[:1]
    pairs = list(
        Shop.objects.filter(state=Shop.State.INSTALLED)
        .annotate(check_id=Subquery(latest))
        .filter(check_id__isnull=False)
        .values_list("domain", "check_id")
    )
    checks = HealthCheck.objects.in_bulk([check_id for _, check_id in pairs])
    return [(domain, checks[check_id]) for domain, check_id in pairs if check_id in checks]


def missing_scopes(now: datetime) -> list[Breach]:
    """An installed shop whose latest scope check found scopes the console needs and lacks."""
    found = []
    for domain, check in _latest_checks(HealthCheck.Kind.SCOPES):
        missing = (check.details or {}).get("missing") or []
        if missing:
            found.append(
                Breach(
                    domain,
                    f"{domain} has not granted {', '.join(missing)}; the calls that need them are held until the "
                    "merchant approves them.",
                    {"shop": domain, "missing": missing, "check_id": check.pk, "checked_at": _iso(check.checked_at)},
                )
            )
    return found


def missing_subscriptions(now: datetime) -> list[Breach]:
    """An installed shop whose latest subscription check found webhook topics not subscribed:
    their changes are not reaching us."""
    found = []
    for domain, check in _latest_checks(HealthCheck.Kind.SUBSCRIPTIONS):
        missing = (check.details or {}).get("missing") or []
        if missing:
            found.append(
                Breach(
                    domain,
                    f"{domain} has no webhook subscription for {', '.join(missing)}: those changes are not reaching "
                    "us. Re-subscribe on the shop's health page, then reconcile the gap.",
                    {"shop": domain, "missing": missing, "check_id": check.pk, "checked_at": _iso(check.checked_at)},
                )
            )
    return found


def paused_since(shop: Shop) -> datetime:
    """When the shop's current pause began: the first `outbound.pause` after its last
    `outbound.resume` in the audit trail (pause_shop records every pause), else its last change."""
    entries = (
        AuditEntry.objects.filter(
            target_type=ContentType.objects.get_for_model(Shop),
            target_id=str(shop.pk),
            verb__in=("outbound.pause", "outbound.resume"),
        )
        .order_by("-id")
        .values_list("verb", "created_at")[:50]
    )
    since = None
    for verb, created_at in entries:
        if verb == "outbound.resume":
            break
        since = created_at
    return since or shop.updated_at


def paused_shops(now: datetime) -> list[Breach]:
    """A shop whose outbound queue has been paused longer than ALERT_PAUSED_MINUTES: its calls
    to Shopify are held until someone resumes it."""
    limit = settings.ALERT_PAUSED_MINUTES
    found = []
    for shop in Shop.objects.filter(queue_paused=True).order_by("domain"):
        since = paused_since(shop)
        if since <= now - timedelta(minutes=limit):
            held = OutboundCall.objects.filter(shop=shop, status=OutboundCall.Status.PAUSED).count()
            found.append(
                Breach(
                    shop.domain,
                    f"{shop.domain}'s outbound queue has been paused for {_age((now - since).total_seconds())} "
                    f"(limit {limit} min); {held} calls to Shopify are held. Resume it when the cause is fixed.",
                    {"shop": shop.domain, "paused_since": _iso(since), "held_calls": held, "limit_minutes": limit},
                )
            )
    return found


def overdue_incident_updates(now: datetime) -> list[Breach]:
    """An open incident whose next status update is overdue."""
    from incidents.services import overdue_incidents

    return [
        Breach(
            f"incident #{incident.pk}",
            f"Incident #{incident.pk} “{incident.title}” ({incident.severity.upper()}) was due a status update "
            f"{_age((now - incident.next_update_due_at).total_seconds())} ago.",
            {
                "incident": incident.pk,
                "title": incident.title,
                "due_at": _iso(incident.next_update_due_at),
                "severity": incident.severity,
            },
        )
        for incident in overdue_incidents()[:100]
    ]


def worker_heartbeat(now: datetime) -> list[Breach]:
    """Fewer event pumps beating within ALERT_HEARTBEAT_SECONDS than ALERT_MIN_PUMPS (default 1:
    the newest beat is older than that). Evaluated on a worker, so it speaks when some pumps of
    several die; when every worker is down nothing evaluates, and the dashboard says so instead
    (`services.heartbeat_gone`, at request time)."""
    limit, wanted = settings.ALERT_HEARTBEAT_SECONDS, settings.ALERT_MIN_PUMPS
    cutoff = now - timedelta(seconds=limit)
    beats = WorkerHeartbeat.objects.aggregate(alive=Count("id", filter=Q(beat_at__gte=cutoff)), newest=Max("beat_at"))
    if beats["alive"] >= wanted:
        return []
    stopped = list(
        WorkerHeartbeat.objects.filter(beat_at__lt=cutoff).order_by("-beat_at").values_list("name", "beat_at")[:NAMED]
    )
    newest = beats["newest"]
    if beats["alive"] == 0:
        summary = (
            f"No event pump has beaten for {_age((now - newest).total_seconds())} (limit {_age(limit)}): webhooks "
            "are not being processed."
            if newest
            else "No event pump is recorded (none has beaten in the last day): webhooks are not being processed."
        )
    else:
        summary = f"Only {beats['alive']} event pumps are beating; {wanted} are expected (ALERT_MIN_PUMPS)."
    if stopped:
        summary += " Last heard from: " + ", ".join(f"{name} at {beat:%H:%M:%S}" for name, beat in stopped) + "."
    return [
        Breach(
            "event pumps",
            summary,
            {
                "alive": beats["alive"],
                "expected": wanted,
                "newest_beat_at": _iso(newest),
                "limit_seconds": limit,
                "stopped": [[name, _iso(beat)] for name, beat in stopped],
            },
        )
    ]


RULES: dict[str, Rule] = {
    rule.key: rule
    for rule in (
        Rule("failure_rate", "Webhook failure rate", ENGINEERING, "sev3", failure_rate,
             "A shop's topic fails more than ALERT_FAILURE_RATE of its events in the window."),
        Rule("backlog_age", "Backlog too old", ENGINEERING, "sev2", backlog_age,
             "The oldest queued event or due outbound call is older than ALERT_BACKLOG_SECONDS."),
        Rule("rejected_spike", "Rejected webhooks spike", ENGINEERING, "sev3", rejected_spike,
             "More than ALERT_REJECTED_SPIKE webhooks rejected in the window."),
        Rule("missing_scopes", "Missing access scopes", ENGINEERING, "sev3", missing_scopes,
             "A shop's latest scope check found scopes missing."),
        Rule("missing_subscriptions", "Missing webhook subscriptions", ENGINEERING, "sev3", missing_subscriptions,
             "A shop's latest subscription check found topics not subscribed."),
        Rule("queue_paused", "Outbound queue paused too long", OPERATIONS, "sev3", paused_shops,
             "A shop's outbound queue has been paused longer than ALERT_PAUSED_MINUTES."),
        Rule("incident_update_overdue", "Incident update overdue", ENGINEERING, "sev3", overdue_incident_updates,
             "An open incident's next status update is overdue."),
        Rule("worker_heartbeat", "Worker heartbeat gone", ENGINEERING, "sev2", worker_heartbeat,
             "Fewer than ALERT_MIN_PUMPS event pumps beat within ALERT_HEARTBEAT_SECONDS."),
    )
}  # fmt: skip
