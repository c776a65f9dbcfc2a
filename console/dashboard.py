"""What the dashboard shows, by role. Each block is computed only for users allowed to see it."""

from urllib.parse import urlencode

from django.db.models import Count
from django.urls import reverse

from console.alerts import services as alert_services
from console.models import AuditEntry
from incidents import selectors as incident_selectors
from incidents import services as incident_services
from integrations.eventlog.dashboard import dashboard_stats
from integrations.inbound import retention
from integrations.models import Shop

OVERDUE_SHOWN = 10


def build(user) -> dict:
    context: dict = {}
    if user.has_perm("integrations.view_shop"):
        by_state = dict(Shop.objects.values_list("state").annotate(n=Count("id")).order_by())
        context["shops"] = {
            "installed": by_state.get(Shop.State.INSTALLED, 0),
            "uninstalled": by_state.get(Shop.State.UNINSTALLED, 0),
            "paused": Shop.objects.filter(queue_paused=True).count(),
        }
        context["queue"] = queue_health()
    if user.has_perm("integrations.view_event"):
        context["event_health"] = dashboard_stats()
        # Retention: its settings, the last run and the next (integrations.inbound.retention).
        context["retention"] = retention.dashboard_block()
    if user.has_perm("console.view_auditentry"):
        context["recent_audit"] = list(AuditEntry.objects.select_related("target_type").order_by("-id")[:8])
    if user.has_perm("incidents.view_status_board"):
        # Customer service sees exactly what the status board shows them, never an internal incident.
        context["open_incidents"] = incident_selectors.open_incidents_for(user)
    if user.has_perm("incidents.view_incident"):
        context["incident_health"] = incident_health()
    if user.has_perm("alerts.view_alert"):
        # Firing alerts, and whether a worker is alive to evaluate them (console.alerts).
        beat = {"newest_beat": context["event_health"]["worker"]["beat_at"]} if "event_health" in context else {}
        context["alerts"] = alert_services.dashboard_block(**beat)
    return context


def incident_health() -> dict:
    """Support's incident blocks: updates overdue, notifications that failed to send in the last
    day, and failure spikes no open incident covers yet (each with a link that opens one)."""
    failed_count, failed = incident_selectors.failed_notifications(hours=24)
    return {
        "overdue": list(incident_services.overdue_incidents()[:OVERDUE_SHOWN]),
        "failed_notifications": failed,
        "failed_notifications_count": failed_count,
        "spikes": [{**spike, "open_url": open_url(spike)} for spike in incident_services.spike_suggestions()],
    }


def open_url(spike: dict) -> str:
    """incidents:new prefilled with the spike's filter: inbound events, or outbound calls."""
    key = "filter" if spike["direction"] == "inbound" else "calls_filter"
    return f"{reverse('incidents:new')}?{urlencode({key: spike['filter']})}"


def queue_health() -> dict:
    """Queue depth and kept failures of django-q2. Failures are stored, never dropped silently."""
    from django_q.brokers import get_broker
    from django_q.models import Failure

    try:
        depth = get_broker().queue_size()
    except Exception:  # noqa: BLE001 - a broker outage is shown, not raised
        depth = None
    return {"depth": depth, "failed": Failure.objects.count()}
