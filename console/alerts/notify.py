"""Telling people about an alert: e-mail to its audience's incident notification list for its
severity (`incidents.notifications.recipients`, through Django's mail backend), and a post to the
Slack-compatible incoming webhook ALERT_SLACK_WEBHOOK_URL when one is set. Each attempt is kept as
an AlertNotice; a failure is recorded on the alert and logged, never raised, so one broken channel
cannot stop an evaluation or the other channel."""

import logging
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.mail import EmailMessage
from django.utils import timezone

from console.alerts.models import Alert, AlertNotice
from incidents.models import Audience

logger = logging.getLogger(__name__)
# (connect, read) seconds: a slow chat service must not hold the evaluation up.
SLACK_TIMEOUT = (3.05, 5.0)


def compose(alert: Alert, kind: str) -> tuple[str, str]:
    what = "FIRING" if kind == AlertNotice.Kind.FIRING else "RESOLVED"
    subject = f"{settings.INCIDENT_MAIL_PREFIX} [{what}] {alert.title}: {alert.subject}"[:255]
    lines = [
        f"{alert.title} ({alert.severity.upper()}) — {alert.subject}",
        "",
        alert.summary,
        "",
        f"Firing since {timezone.localtime(alert.first_fired_at):%Y-%m-%d %H:%M:%S %Z}.",
    ]
    if kind == AlertNotice.Kind.RESOLVED and alert.resolved_at:
        lines.append(
            f"Resolved at {timezone.localtime(alert.resolved_at):%Y-%m-%d %H:%M:%S %Z}: the condition cleared."
        )
    lines += ["", "The console's Alerts page lists it; silence it there or with `manage.py alerts silence`."]
    return subject, "\n".join(lines)


def send(alert: Alert, kind: str) -> list[AlertNotice]:
    """Send one notice about `alert` on every channel. Returns the notices recorded."""
    from incidents.notifications import recipients

    subject, body = compose(alert, kind)
    notices = []
    to = recipients(alert.audience, alert.severity)
    if to:
        error = ""
        try:
            EmailMessage(subject, body, settings.DEFAULT_FROM_EMAIL, to=to).send(fail_silently=False)
        except Exception as exc:  # noqa: BLE001 - any failure of the mail backend is kept and shown
            error = f"{type(exc).__name__}: {exc}"[:2000]
            logger.warning("alert %s: %s e-mail failed: %s", alert.pk, kind, error)
        notices.append(_record(alert, kind, AlertNotice.Channel.EMAIL, to, error))
    else:
        label = Audience(alert.audience).label.lower() if alert.audience in Audience.values else alert.audience
        error = f"nobody is on the {label} list for {alert.severity.upper()}"
        logger.warning("alert %s: no %s e-mail sent: %s", alert.pk, kind, error)
        notices.append(_record(alert, kind, AlertNotice.Channel.EMAIL, [], error))
    url = settings.ALERT_SLACK_WEBHOOK_URL
    if url:
        error = post_slack(url, f"{subject}\n{alert.summary}")
        notices.append(_record(alert, kind, AlertNotice.Channel.SLACK, [], error))
    failures = [f"{notice.get_channel_display()}: {notice.error}" for notice in notices if not notice.ok]
    Alert.objects.filter(pk=alert.pk).update(notice_error="; ".join(failures)[:2000])
    return notices


def post_slack(url: str, text: str) -> str:
    """POST {"text": text} to a Slack-compatible incoming webhook. Returns "" or what went wrong."""
    try:
        response = requests.post(url, json={"text": text}, timeout=SLACK_TIMEOUT)
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
    else:
        if 200 <= response.status_code < 300:
            return ""
        error = f"HTTP {response.status_code}: {response.text[:200]}"
    # The URL is a secret (its path is the token): never store or log it.
    path = urlsplit(url).path
    error = error.replace(url, "[webhook URL]")
    if len(path) > 1:
        error = error.replace(path, "[webhook path]")
    logger.warning("alert Slack webhook failed: %s", error)
    return error


def _record(alert: Alert, kind: str, channel: str, to: list[str], error: str) -> AlertNotice:
    return AlertNotice.objects.create(alert=alert, kind=kind, channel=channel, recipients=to, ok=not error, error=error)
