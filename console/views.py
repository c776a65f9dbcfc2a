from django.contrib.auth.decorators import login_not_required
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from console import dashboard
from console.access import require_perm
from console.forms import AuditFilterForm
from console.models import AuditEntry
from console.pagination import keyset_page


@require_GET
def dashboard_view(request: HttpRequest) -> HttpResponse:
    return render(request, "console/dashboard.html", dashboard.build(request.user))


@require_GET
@require_perm("console.view_auditentry")
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    entries = form.apply(AuditEntry.objects.select_related("target_type"))
    page = keyset_page(entries, cursor=request.GET.get("cursor"))
    context = {"form": form, "page": page, "query": _query_without_cursor(request)}
    template = "console/_audit_rows.html" if request.htmx and request.GET.get("cursor") else "console/audit_list.html"
    return render(request, template, context)


HISTORY_APPS = ("console", "integrations", "incidents")


@require_GET
@require_perm("console.view_auditentry")
def audit_history(request: HttpRequest, app_label: str, model: str, object_id: str) -> HttpResponse:
    target_type = get_object_or_404(ContentType, app_label=app_label, model=model)
    entries = AuditEntry.objects.filter(target_type=target_type, target_id=object_id).select_related("target_type")
    page = keyset_page(entries, cursor=request.GET.get("cursor"), per_page=100)
    if page.rows:
        target_repr = page.rows[0].target_repr
    else:
        # No history (on this page): only objects that exist, in the console's own apps, get a page.
        model_class = target_type.model_class()
        if model_class is None or target_type.app_label not in HISTORY_APPS:
            raise Http404("No history for this object.")
        try:
            target = model_class._default_manager.filter(pk=object_id).first()
        except (ValueError, TypeError, ValidationError):
            target = None
        if target is None:
            raise Http404("No such object and no history for it.")
        target_repr = str(target)
    context = {
        "page": page,
        "target_type": target_type,
        "object_id": object_id,
        "target_repr": target_repr,
        "query": "",
    }
    return render(request, "console/audit_history.html", context)


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """For load balancers and monitors: 200 when the database answers, 503 when it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any database failure means "not healthy"
        return JsonResponse({"status": "unavailable", "database": type(exc).__name__}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def _query_without_cursor(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("cursor", None)
    return params.urlencode()
