"""Customer service's pages: the status board and the affected-order lookup.

Both show only what customer service may repeat to merchants and shoppers: an incident's
`board_title` (never its internal title), its severity in words, the plain-language impact, what to
tell customers, the workaround and the confirmed updates written for customer service. Support
reads the same pages, with a link to the incident itself.
"""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from console.access import require_perm
from incidents import selectors
from incidents.models import SEVERITY_FOR_CUSTOMERS

BOARD = "incidents.view_status_board"
MAX_QUERY = 255


@require_GET
@require_perm(BOARD)
def status_board(request: HttpRequest) -> HttpResponse:
    """Read-only, refreshing itself: open incidents with something confirmed to say."""
    template = "incidents/_status_board.html" if request.htmx else "incidents/status_board.html"
    context = {"incidents": selectors.board_incidents(), "severities": SEVERITY_FOR_CUSTOMERS}
    return render(request, template, context)


@require_GET
@require_perm(BOARD)
def lookup(request: HttpRequest) -> HttpResponse:
    """Is this order (#1001 or 1001) or this customer (an e-mail) affected by an incident, what to
    tell them, and is it fixed yet?"""
    query = (request.GET.get("q") or "").strip()[:MAX_QUERY]
    context = {"q": query, "matches": selectors.lookup(query) if query else []}
    # The search box swaps in the answer alone; a history restore (the URL was pushed) needs the page.
    partial = request.htmx and not request.htmx.history_restore_request
    template = "incidents/_lookup.html" if partial else "incidents/lookup.html"
    return render(request, template, context)
