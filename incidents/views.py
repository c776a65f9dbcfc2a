from django.db.models import Prefetch
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from console.access import require_perm
from incidents.models import Incident


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


def incident_new(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_detail(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_edit(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_severity(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_status(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_resolve(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_strategy(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_respond(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_link(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def action_add(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def action_done(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def update_post(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def update_confirm(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def notification_send_again(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def affected_set(request, **kwargs):  # placeholder: being written
    raise NotImplementedError


def incident_summary(request, **kwargs):  # placeholder: being written
    raise NotImplementedError
