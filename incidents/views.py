from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.access import require_perm
from incidents.models import Incident, IncidentUpdate


def shared_updates():
    """Updates customer service may read: confirmed, and written for them."""
    return IncidentUpdate.objects.filter(confirmed=True, audience=IncidentUpdate.Audience.CUSTOMER_SERVICE)


@require_GET
@require_perm("incidents.view_status_board")
def status_board(request: HttpRequest) -> HttpResponse:
    """Read-only: open incidents that have something confirmed to say, with only those updates."""
    incidents = (
        Incident.objects.exclude(status=Incident.Status.RESOLVED)
        .filter(pk__in=shared_updates().values("incident"))
        .prefetch_related(Prefetch("updates", queryset=shared_updates(), to_attr="shared_updates"))
        .order_by("severity", "-opened_at")
    )
    template = "incidents/_status_board.html" if request.htmx else "incidents/status_board.html"
    return render(request, template, {"incidents": incidents})
