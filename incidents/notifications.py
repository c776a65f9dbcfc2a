"""Who is told what about an incident, by e-mail through Django's mail backend, on the worker.

`notify` resolves each audience's list for the incident's severity into recipients at once (so
the record says who was meant to hear, even if the list changes later), stores a Notification
and queues its sending. The worker claims it (queued → sending, a conditional UPDATE, so two
workers never both send it), sends it and records sent or failed with the error; a failure is
shown on the incident and the dashboard and can be sent again. `send_due` (every minute) sends
anything a worker never picked up (a task lost with a broker outage, say).

Customer service's mail carries only what the status board shows: the public name, the impact,
what to tell customers, and the confirmed update written for them.
"""

import logging
import re
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db.models import Q
from django.utils import timezone

from incidents.models import Audience, Incident, IncidentStep, IncidentUpdate, Notification, NotificationList

logger = logging.getLogger(__name__)
ADDRESS = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")
EVERYONE = tuple(Audience.values)
STUCK_AFTER = timedelta(minutes=10)
UNPICKED_AFTER = timedelta(seconds=30)


class AddressError(ValueError):
    pass


def parse_addresses(text: str, *, strict: bool = False) -> list[str]:
    """Addresses from text, one per line or separated by commas/semicolons, lower case, sorted."""
    found, bad = set(), []
    for part in re.split(r"[\s,;]+", text or ""):
        if not part:
            continue
        if ADDRESS.match(part):
            found.add(part.lower())
        else:
            bad.append(part)
    if strict and bad:
        raise AddressError(f"not an e-mail address: {', '.join(bad[:5])}")
    return sorted(found)


def recipients(audience: str, severity: str) -> list[str]:
    lists = NotificationList.objects.filter(audience=audience, severity=severity).prefetch_related("users")
    return sorted({address for one in lists for address in one.addresses()})


def _public_text(incident: Incident, update: IncidentUpdate | None) -> str:
    lines = [
        f"{incident.board_title} ({incident.severity_label}, {incident.get_status_display().lower()})",
        "",
        incident.severity_for_customers,
    ]
    for label, value in (
        ("What customers may notice", incident.customer_impact),
        ("What to tell them", incident.customer_advice),
        ("Workaround", incident.workaround),
    ):
        if value:
            lines += ["", f"{label}: {value}"]
    if update is not None:
        lines += ["", "Update:", update.body]
    return "\n".join(lines)


def _internal_text(incident: Incident, kind: str, update: IncidentUpdate | None) -> str:
    lines = [
        f"Incident #{incident.pk}: {incident.title}",
        f"Severity {incident.severity_label}; status {incident.get_status_display().lower()}; "
        f"direction {incident.direction}.",
    ]
    if incident.severity_reasoning:
        lines.append(f"Why this severity: {incident.severity_reasoning}")
    if incident.summary:
        lines += ["", incident.summary]
    if update is not None:
        lines += ["", f"Update ({update.get_audience_display()}):", update.body]
    if kind == Notification.Kind.RESOLVED and incident.resolve_override_reason:
        lines += ["", f"Resolved with an override: {incident.resolve_override_reason}"]
    return "\n".join(lines)


SUBJECTS = {
    Notification.Kind.OPENED: "opened",
    Notification.Kind.SEVERITY: "severity now {sev}",
    Notification.Kind.UPDATE: "update",
    Notification.Kind.RESOLVED: "resolved",
    Notification.Kind.REMINDER: "reminder: the monitored wait is due for a look",
}


def compose(incident: Incident, kind: str, audience: str, update: IncidentUpdate | None = None) -> tuple[str, str]:
    what = SUBJECTS[kind].format(sev=incident.severity_label)
    public = audience == Audience.CUSTOMER_SERVICE
    name = incident.board_title if public else f"#{incident.pk} {incident.title}"
    subject = f"{settings.INCIDENT_MAIL_PREFIX} {incident.severity_label} {name}: {what}"[:255]
    body = _public_text(incident, update) if public else _internal_text(incident, kind, update)
    return subject, body


def notify(
    incident: Incident, kind: str, *, audiences=EVERYONE, update: IncidentUpdate | None = None
) -> list[Notification]:
    """One Notification per audience, its recipients resolved now, queued for the worker."""
    made = []
    for audience in audiences:
        to = recipients(audience, incident.severity)
        subject, body = compose(incident, kind, audience, update)
        status = Notification.Status.QUEUED if to else Notification.Status.NO_RECIPIENTS
        made.append(
            Notification.objects.create(
                incident=incident, update=update, kind=kind, audience=audience, recipients=to,
                subject=subject, body=body, status=status,
                error="" if to else f"nobody is on the {Audience(audience).label.lower()} list for {incident.severity_label}",
            )
        )  # fmt: skip
    for notification in made:
        if notification.status == Notification.Status.QUEUED:
            _queue(notification.pk)
    return made


def _queue(pk: int) -> None:
    """On the database broker the task is queued in the same transaction as the row (both or
    neither); on Redis only once the row is committed, so a worker never looks for it too early."""
    from django.db import transaction
    from django_q.tasks import async_task

    def queue() -> None:
        async_task("incidents.tasks.send_notification", pk, task_name=f"incident-notification-{pk}")

    if settings.Q_CLUSTER.get("redis"):
        transaction.on_commit(queue, robust=True)
    else:
        queue()


def send(pk: int) -> str:
    """Send one queued notification (claimed first, so it is sent once). Returns its status."""
    claimed = Notification.objects.filter(pk=pk, status=Notification.Status.QUEUED).update(
        status=Notification.Status.SENDING, error="", sent_at=timezone.now()
    )
    if not claimed:
        return Notification.objects.filter(pk=pk).values_list("status", flat=True).first() or "missing"
    notification = Notification.objects.select_related("incident").get(pk=pk)
    try:
        EmailMessage(
            notification.subject, notification.body, settings.DEFAULT_FROM_EMAIL, bcc=notification.recipients
        ).send(fail_silently=False)
    except Exception as error:  # noqa: BLE001 - any failure of the mail backend is kept and shown
        logger.warning("incident notification %s failed: %r", pk, error)
        Notification.objects.filter(pk=pk).update(
            status=Notification.Status.FAILED, error=f"{type(error).__name__}: {error}"[:2000], sent_at=None
        )
        IncidentStep.objects.create(
            incident=notification.incident, kind=IncidentStep.Kind.NOTIFICATION, actor_label="worker",
            text=f"Could not send “{notification.get_kind_display()}” to {notification.get_audience_display()} "
            f"({len(notification.recipients)} recipients): {type(error).__name__}: {error}"[:2000],
        )  # fmt: skip
        return Notification.Status.FAILED
    Notification.objects.filter(pk=pk).update(status=Notification.Status.SENT, sent_at=timezone.now())
    IncidentStep.objects.create(
        incident=notification.incident, kind=IncidentStep.Kind.NOTIFICATION, actor_label="worker",
        text=f"Sent “{notification.get_kind_display()}” to {notification.get_audience_display()}: "
        f"{', '.join(notification.recipients)}"[:2000],
    )  # fmt: skip
    return Notification.Status.SENT


def send_again(notification: Notification) -> bool:
    """Queue a failed notification again (its recipients as recorded)."""
    moved = Notification.objects.filter(pk=notification.pk, status=Notification.Status.FAILED).update(
        status=Notification.Status.QUEUED
    )
    if moved:
        _queue(notification.pk)
    return bool(moved)


def send_due() -> int:
    """The minute sweep: send what no worker picked up, and what a dead worker left half-sent."""
    now = timezone.now()
    Notification.objects.filter(status=Notification.Status.SENDING, sent_at__lt=now - STUCK_AFTER).update(
        status=Notification.Status.QUEUED
    )
    due = Notification.objects.filter(
        Q(status=Notification.Status.QUEUED) & Q(created_at__lt=now - UNPICKED_AFTER)
    ).values_list("pk", flat=True)[:200]
    return sum(1 for pk in list(due) if send(pk) == Notification.Status.SENT)


def list_state(one: NotificationList | None) -> dict:
    if one is None:
        return {"users": [], "emails": []}
    return {"users": sorted(u.get_username() for u in one.users.all()), "emails": parse_addresses(one.emails)}


def set_list(*, audience: str, severity: str, users, emails: str, by, request=None) -> NotificationList:
    """Who hears about `severity` incidents in `audience`: active users and plain addresses
    (refused whole if one address is not one). Admins only; audited with before and after."""
    from django.core.exceptions import PermissionDenied
    from django.db import transaction

    from console.audit import acting_user, record_action

    user = acting_user(by)
    if user is None or not user.has_perm("incidents.manage_notification_lists"):
        raise PermissionDenied("Only admins edit who is notified of incidents.")
    if audience not in Audience.values or severity not in Incident.Severity.values:
        raise AddressError(f"audience must be one of {', '.join(Audience.values)}; severity one of sev1..sev4")
    addresses = parse_addresses(emails, strict=True)
    with transaction.atomic():
        one, _ = NotificationList.objects.select_for_update().get_or_create(audience=audience, severity=severity)
        before = list_state(one)
        one.emails = "\n".join(addresses)
        one.save()
        one.users.set(users)
        after = list_state(NotificationList.objects.prefetch_related("users").get(pk=one.pk))
        record_action(
            actor=by, verb="incidents.notification_list", target=one, before=before, after=after, request=request
        )
    return one
