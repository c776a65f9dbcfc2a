"""What the dashboard shows, by role. Each block is computed only for users allowed to see it."""

from django.db.models import Count

from console.models import AuditEntry
from incidents.selectors import open_incidents_for
from integrations.eventlog.dashboard import dashboard_stats
from integrations.models import Shop


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
    if user.has_perm("console.view_auditentry"):
        context["recent_audit"] = list(AuditEntry.objects.select_related("target_type").order_by("-id")[:8])
    if user.has_perm("incidents.view_status_board"):
        # Customer service sees exactly what the status board shows them, never an internal incident.
        context["open_incidents"] = open_incidents_for(user)
    return context


def queue_health() -> dict:
    """Queue depth and kept failures of django-q2. Failures are stored, never dropped silently."""
    from django_q.brokers import get_broker
    from django_q.models import Failure

    try:
        depth = get_broker().queue_size()
    except Exception:  # noqa: BLE001 - a broker outage is shown, not raised
        depth = None
    return {"depth": depth, "failed": Failure.objects.count()}
