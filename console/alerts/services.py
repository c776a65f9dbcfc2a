"""Evaluating the rules into alerts, telling people, and silencing.

`evaluate` (every minute on the worker: `tasks.evaluate_alerts`) runs every rule. A breach with no
firing alert opens one: a plain INSERT that the partial unique constraint on (rule, subject) while
firing refuses for a second evaluator, which then keeps the winner's row. A firing alert still
breaching has its last_seen_at, summary and details refreshed. One whose condition cleared is
resolved through `Alert.STATES` (a conditional UPDATE: only the evaluator that moved it tells
anyone). A rule that raises is logged and skipped, and its alerts are left as they are.

Notices: a firing alert is announced once (its notified_at is claimed by a conditional UPDATE
before sending), and once more when it resolves if its firing was announced. While a silence
covers it, nothing is sent; an alert opened during a silence is announced when the silence ends if
it still fires, and a resolution within RESOLVED_NOTICE_WITHIN of the silence's end is announced
then too.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Max, Prefetch
from django.utils import timezone

from console.alerts import notify
from console.alerts.models import Alert, AlertNotice, AlertSilence
from console.alerts.rules import RULES
from console.audit import acting_user, actor_label, record_action
from integrations.models import WorkerHeartbeat

logger = logging.getLogger(__name__)

FIRING, RESOLVED = Alert.Status.FIRING, Alert.Status.RESOLVED
RESOLVED_NOTICE_WITHIN = timedelta(hours=1)
RECENTLY_RESOLVED = timedelta(hours=24)
MAX_SILENCE_MINUTES = 7 * 24 * 60
SCHEDULE_NAME = "alerts-evaluate"


class SilenceError(ValueError):
    """A silence that cannot be set or lifted as asked (said to the person, exit 1 in the command)."""


# --- evaluation ---------------------------------------------------------------------------------


def evaluate(now: datetime | None = None) -> dict:
    """Run every rule once and send the notices due. Returns {"opened": [...], "resolved": [...],
    "firing": n, "notified": n, "errors": {rule: error}} (alerts as "rule · subject")."""
    now = now or timezone.now()
    firing = {(alert.rule, alert.subject): alert for alert in Alert.objects.filter(status=FIRING)}
    result: dict = {"opened": [], "resolved": [], "firing": 0, "notified": 0, "errors": {}}
    for key, rule in RULES.items():
        try:
            breaches = {breach.subject[:255]: breach for breach in rule.check(now)}
        except Exception as exc:  # one broken rule must not stop the others
            logger.exception("alert rule %s failed; its alerts are left as they are", key)
            result["errors"][key] = f"{type(exc).__name__}: {exc}"[:500]
            continue
        for subject, breach in breaches.items():
            details = dict(breach.details)
            fields = {
                "summary": breach.summary,
                "details": details,
                "severity": details.get("severity", rule.severity),
                "audience": rule.audience,
            }
            current = firing.get((key, subject))
            if current is None and _open(key, subject, now, fields):
                result["opened"].append(f"{key} · {subject}")
            else:
                Alert.objects.filter(rule=key, subject=subject, status=FIRING).update(last_seen_at=now, **fields)
            result["firing"] += 1
        for (rule_key, subject), alert in firing.items():
            if rule_key == key and subject not in breaches and _resolve(alert, now):
                result["resolved"].append(f"{key} · {subject}")
    # A rule that no longer exists cannot clear its alerts: they end here.
    for (rule_key, subject), alert in firing.items():
        if rule_key not in RULES and _resolve(alert, now):
            result["resolved"].append(f"{rule_key} · {subject}")
    result["notified"] = send_due_notices(now)
    if result["opened"] or result["resolved"]:
        logger.info("alerts: opened %s; resolved %s", result["opened"] or "none", result["resolved"] or "none")
    return result


def _open(rule: str, subject: str, now: datetime, fields: dict) -> bool:
    """Open the alert; False when another evaluator opened it first (the constraint refused ours)."""
    try:
        with transaction.atomic():
            Alert.objects.create(rule=rule, subject=subject, first_fired_at=now, last_seen_at=now, **fields)
    except IntegrityError:
        return False
    return True


def _resolve(alert: Alert, now: datetime) -> bool:
    return bool(Alert.STATES.move(Alert.objects.filter(pk=alert.pk), source=FIRING, target=RESOLVED, resolved_at=now))


def send_due_notices(now: datetime | None = None) -> int:
    """Announce the firing alerts not yet announced and the resolutions of announced ones, except
    what a silence covers. Each notice is claimed first, so it goes out once. Returns notices sent."""
    now = now or timezone.now()
    silences = active_silences(now)
    sent = 0
    for alert in Alert.objects.filter(status=FIRING, notified_at__isnull=True).order_by("id"):
        if silence_for(silences, alert.rule, alert.subject) is None and (
            Alert.objects.filter(pk=alert.pk, status=FIRING, notified_at__isnull=True).update(notified_at=now)
        ):
            notify.send(alert, AlertNotice.Kind.FIRING)
            sent += 1
    resolved = Alert.objects.filter(
        status=RESOLVED,
        resolved_at__gte=now - RESOLVED_NOTICE_WITHIN,
        notified_at__isnull=False,
        resolved_notified_at__isnull=True,
    ).order_by("id")
    for alert in resolved:
        if silence_for(silences, alert.rule, alert.subject) is None and (
            Alert.objects.filter(pk=alert.pk, resolved_notified_at__isnull=True).update(resolved_notified_at=now)
        ):
            notify.send(alert, AlertNotice.Kind.RESOLVED)
            sent += 1
    return sent


# --- silences -----------------------------------------------------------------------------------


def active_silences(now: datetime | None = None) -> list[AlertSilence]:
    """Silences in force (few: served by alerts_silence_idx)."""
    return list(AlertSilence.objects.filter(lifted_at__isnull=True, until__gt=now or timezone.now()).order_by("until"))


def silence_for(silences: list[AlertSilence], rule: str, subject: str) -> AlertSilence | None:
    return next((one for one in silences if one.covers(rule, subject)), None)


def _check_allowed(by) -> None:
    user = acting_user(by)
    if user is None or not user.has_perm("alerts.silence_alert"):
        raise PermissionDenied("Only support and admins silence alerts.")


def silence(*, rule: str, subject: str = "", minutes: int, reason: str, by, request=None) -> AlertSilence:
    """Silence `rule` for `subject` (empty: every subject) for `minutes`: its alerts still open and
    resolve, but nobody is told. Audited ("alerts.silence")."""
    _check_allowed(by)
    subject = (subject or "").strip()
    if rule not in RULES:
        raise SilenceError(f"No alert rule {rule!r}; the rules are: {', '.join(RULES)}.")
    if not 1 <= minutes <= MAX_SILENCE_MINUTES:
        raise SilenceError(f"A silence lasts from 1 minute to {MAX_SILENCE_MINUTES} (7 days).")
    if not (reason or "").strip():
        raise SilenceError("Silencing an alert needs a reason (kept in the audit trail).")
    if len(subject) > 255:
        raise SilenceError("A subject is at most 255 characters.")
    now = timezone.now()
    with transaction.atomic():
        one = AlertSilence.objects.create(
            rule=rule,
            subject=subject,
            until=now + timedelta(minutes=minutes),
            reason=reason.strip(),
            created_by=acting_user(by),
            created_by_label=actor_label(by),
            created_at=now,
        )
        record_action(
            actor=by,
            verb="alerts.silence",
            target=one,
            after={
                "rule": rule,
                "subject": subject or "(every subject)",
                "minutes": minutes,
                "until": one.until.isoformat(),
            },
            reason=one.reason,
            request=request,
        )
    return one


def unsilence(silence_id: int, *, by, reason: str = "", request=None) -> AlertSilence:
    """Lift a silence now (notices due are sent at the next evaluation). Audited ("alerts.unsilence")."""
    _check_allowed(by)
    now = timezone.now()
    with transaction.atomic():
        one = AlertSilence.objects.select_for_update().filter(pk=silence_id).first()
        if one is None:
            raise SilenceError(f"No silence {silence_id}.")
        lifted = AlertSilence.objects.filter(pk=one.pk, lifted_at__isnull=True, until__gt=now).update(
            lifted_at=now, lifted_by_label=actor_label(by)
        )
        if not lifted:
            raise SilenceError(f"Silence {one.pk} is no longer in force (lifted, or ended {one.until:%Y-%m-%d %H:%M}).")
        record_action(
            actor=by,
            verb="alerts.unsilence",
            target=one,
            before={"until": one.until.isoformat()},
            after={"lifted_at": now.isoformat()},
            reason=(reason or "").strip(),
            request=request,
        )
    one.refresh_from_db()
    return one


# --- what the pages and the command read --------------------------------------------------------


_UNREAD = object()


def heartbeat_state(now: datetime | None = None, newest=_UNREAD) -> dict:
    """At request time, on the web side: has any event pump beaten within ALERT_HEARTBEAT_SECONDS?
    When none has, no worker evaluates the rules either, so no alert can say so. `newest`: the
    newest beat when the caller has read it already (the dashboard's event health has)."""
    now = now or timezone.now()
    if newest is _UNREAD:
        newest = WorkerHeartbeat.objects.aggregate(newest=Max("beat_at"))["newest"]
    gone = newest is None or newest < now - timedelta(seconds=settings.ALERT_HEARTBEAT_SECONDS)
    return {"gone": gone, "newest_beat_at": newest, "limit_seconds": settings.ALERT_HEARTBEAT_SECONDS}


def _mark_silenced(alerts: list[Alert], silences: list[AlertSilence]) -> list[Alert]:
    for alert in alerts:
        alert.silence = silence_for(silences, alert.rule, alert.subject)
    return alerts


def firing_alerts(silences: list[AlertSilence] | None = None, *, limit: int | None = None) -> list[Alert]:
    alerts = Alert.objects.filter(status=FIRING).order_by("severity", "first_fired_at", "id")
    alerts = alerts.prefetch_related(Prefetch("notices", queryset=AlertNotice.objects.order_by("id")))
    rows = list(alerts[:limit] if limit else alerts)
    return _mark_silenced(rows, active_silences() if silences is None else silences)


def overview(now: datetime | None = None, *, resolved_shown: int = 50) -> dict:
    """The Alerts page: firing (worst first), resolved in the last day, silences in force, and
    whether the worker that evaluates them is alive. A fixed number of queries."""
    from django_q.models import Schedule

    now = now or timezone.now()
    silences = active_silences(now)
    resolved = (
        Alert.objects.filter(status=RESOLVED, resolved_at__gte=now - RECENTLY_RESOLVED)
        .order_by("-resolved_at")
        .prefetch_related(Prefetch("notices", queryset=AlertNotice.objects.order_by("id")))[:resolved_shown]
    )
    return {
        "firing": firing_alerts(silences),
        "resolved": list(resolved),
        "silences": silences,
        "heartbeat": heartbeat_state(now),
        "next_run": Schedule.objects.filter(name=SCHEDULE_NAME).values_list("next_run", flat=True).first(),
        "rules": list(RULES.values()),
    }


def dashboard_block(now: datetime | None = None, *, shown: int = 10, newest_beat=_UNREAD) -> dict:
    """The dashboard's alerts: one query when nothing fires and the newest beat is given."""
    firing = list(Alert.objects.filter(status=FIRING).order_by("severity", "first_fired_at", "id")[: shown + 1])
    return {
        "firing": _mark_silenced(firing[:shown], active_silences(now) if firing else []),
        "more": len(firing) > shown,
        "heartbeat": heartbeat_state(now, newest_beat),
    }


def alert_json(alert: Alert) -> dict:
    silence = getattr(alert, "silence", None)
    return {
        "id": alert.pk,
        "rule": alert.rule,
        "title": alert.title,
        "subject": alert.subject,
        "status": alert.status,
        "severity": alert.severity,
        "audience": alert.audience,
        "summary": alert.summary,
        "details": alert.details,
        "first_fired_at": alert.first_fired_at.isoformat(),
        "last_seen_at": alert.last_seen_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "notified_at": alert.notified_at.isoformat() if alert.notified_at else None,
        "resolved_notified_at": alert.resolved_notified_at.isoformat() if alert.resolved_notified_at else None,
        "notice_error": alert.notice_error,
        "silenced_by": silence.pk if silence else None,
    }


def silence_json(one: AlertSilence) -> dict:
    return {
        "id": one.pk,
        "rule": one.rule,
        "subject": one.subject,
        "until": one.until.isoformat(),
        "reason": one.reason,
        "by": one.created_by_label,
        "created_at": one.created_at.isoformat(),
        "lifted_at": one.lifted_at.isoformat() if one.lifted_at else None,
        "lifted_by": one.lifted_by_label,
    }
