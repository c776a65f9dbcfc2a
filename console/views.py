import re
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from console import dashboard, logins, readiness
from console.access import require_perm
from console.forms import AuditFilterForm, UnlockForm
from console.models import AuditEntry
from console.pagination import KeysetPage, keyset_page


class LoginView(auth_views.LoginView):
    """Django's login page, minus its one 500: a logged-in user sent to /login/?next=/login/ (or any
    `next` that is the login page itself) goes to the dashboard instead of tripping the
    redirect-loop guard."""

    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:
        url = super().get_redirect_url()  # "" unless safe (same host, allowed scheme)
        if url and urlsplit(url).path == self.request.path:
            return ""
        return url


@require_GET
def dashboard_view(request: HttpRequest) -> HttpResponse:
    return render(request, "console/dashboard.html", dashboard.build(request.user))


@require_GET
@require_perm("console.view_auditentry")
def audit_list(request: HttpRequest) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        # Say what is wrong (400), never list every entry as if it matched the filters.
        context = {"form": form, "page": KeysetPage(rows=[], next_cursor=None, first_page=True), "query": ""}
        return render(request, "console/audit_list.html", context, status=400)
    entries = form.apply(AuditEntry.objects.select_related("target_type"))
    page = keyset_page(entries, cursor=request.GET.get("cursor"))
    context = {"form": form, "page": page, "query": _query_without_cursor(request)}
    template = "console/_audit_rows.html" if request.htmx and request.GET.get("cursor") else "console/audit_list.html"
    return render(request, template, context)


HISTORY_APPS = ("console", "integrations", "incidents", "worksheets")
_LABEL = re.compile(r"[a-z0-9_]{1,100}")  # ContentType app_label and model: lower-case identifiers
_TARGET_ID_LENGTH = AuditEntry._meta.get_field("target_id").max_length
_OBJECT_ID = re.compile(rf"[^\x00-\x1f\x7f]{{1,{_TARGET_ID_LENGTH}}}")  # no control characters, no NUL


@require_GET
@require_perm("console.view_auditentry")
def audit_history(request: HttpRequest, app_label: str, model: str, object_id: str) -> HttpResponse:
    # Only values the columns could hold reach the database (PostgreSQL refuses NUL in text, and
    # target_id is 64 characters): anything else cannot have a history.
    if not _LABEL.fullmatch(app_label) or not _LABEL.fullmatch(model) or not _OBJECT_ID.fullmatch(object_id):
        raise Http404("No history for this object.")
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


@require_GET
@require_perm("axes.view_accessattempt")
def login_lockouts(request: HttpRequest) -> HttpResponse:
    """Usernames and addresses refused logins right now, each with an Unlock button for admins."""
    return _render_lockouts(request, UnlockForm())


@require_POST
@require_perm("axes.view_accessattempt", "axes.delete_accessattempt")
def login_unlock(request: HttpRequest) -> HttpResponse:
    form = UnlockForm(request.POST)
    if not form.is_valid():
        return _render_lockouts(request, form, status=400)
    data = form.cleaned_data
    removed = logins.unlock(
        by=request.user,
        reason=data["reason"],
        username=data["username"],
        ip_address=data["ip_address"],
        request=request,
    )
    who = data["username"] or data["ip_address"]
    if removed:
        messages.success(request, f"Unlocked {who}: logins are checked again from now on.")
    else:
        messages.info(request, f"{who} was not locked out; nothing changed.")
    return redirect("login_lockouts")


@login_not_required
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness, for load balancers: 200 while this process answers. It never touches the
    database, so a database blip does not pull every node out at once; /readyz says whether the
    console can do its work."""
    return JsonResponse({"status": "ok"})


@login_not_required
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness, for monitors and deploys: every check of console.readiness; 503 naming the failing ones."""
    result = readiness.report()
    return JsonResponse(result, status=200 if result["status"] == "ok" else 503)


def _render_lockouts(request: HttpRequest, form: UnlockForm, status: int = 200) -> HttpResponse:
    context = {
        "lockouts": logins.active_lockouts(),
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "lockout_minutes": logins.lockout_minutes(),
        "form": form,
    }
    return render(request, "console/login_lockouts.html", context, status=status)


def _query_without_cursor(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("cursor", None)
    return params.urlencode()
