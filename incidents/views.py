from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from console.access import require_perm
from incidents.models import SEVERITY_FOR_CUSTOMERS, Incident
from incidents.selectors import board_incidents


@require_GET
@require_perm("incidents.view_status_board")
def status_board(request: HttpRequest) -> HttpResponse:
    """Read-only: open incidents that have something confirmed to say, with only those updates."""
    template = "incidents/_status_board.html" if request.htmx else "incidents/status_board.html"
    context = {"incidents": board_incidents(), "severities": SEVERITY_FOR_CUSTOMERS}
    return render(request, template, context)


@require_GET
@require_perm("incidents.view_status_board")
def incident_list(request: HttpRequest) -> HttpResponse:
    """Support's list of incidents; customer service, who may only read the board, goes there."""
    if not request.user.has_perm("incidents.view_incident"):
        return redirect("incidents:status_board")
    incidents = Incident.objects.select_related("opened_by").prefetch_related(
        Prefetch("updates", to_attr="all_updates")
    )
    context = {
        "open": incidents.exclude(status=Incident.Status.RESOLVED).order_by("severity", "-opened_at"),
        "resolved": incidents.filter(status=Incident.Status.RESOLVED).order_by("-resolved_at", "-id")[:20],
    }
    return render(request, "incidents/list.html", context)
