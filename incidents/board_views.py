"""Customer service's pages: the status board and the affected-order lookup (placeholder; being written)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.access import require_perm
from incidents.models import SEVERITY_FOR_CUSTOMERS
from incidents.selectors import board_incidents


@require_GET
@require_perm("incidents.view_status_board")
def status_board(request: HttpRequest) -> HttpResponse:
    template = "incidents/_status_board.html" if request.htmx else "incidents/status_board.html"
    return render(request, template, {"incidents": board_incidents(), "severities": SEVERITY_FOR_CUSTOMERS})


@require_GET
@require_perm("incidents.view_status_board")
def lookup(request: HttpRequest) -> HttpResponse:
    raise NotImplementedError
