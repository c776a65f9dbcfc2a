"""The Alerts page: what fires (worst first), what resolved in the last day, the silences in
force, and forms to silence (support and admins) and lift a silence. Thin: services do the work."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from console.access import require_perm
from console.alerts import services
from console.alerts.forms import SilenceForm, UnsilenceForm

VIEW = "alerts.view_alert"
SILENCE = "alerts.silence_alert"


@require_GET
@require_perm(VIEW)
def alert_list(request: HttpRequest) -> HttpResponse:
    return _render(request, SilenceForm())


@require_POST
@require_perm(VIEW, SILENCE)
def silence(request: HttpRequest) -> HttpResponse:
    form = SilenceForm(request.POST)
    if not form.is_valid():
        return _render(request, form, status=400)
    data = form.cleaned_data
    try:
        one = services.silence(
            rule=data["rule"], subject=data["subject"], minutes=data["minutes"], reason=data["reason"],
            by=request.user, request=request,
        )  # fmt: skip
    except services.SilenceError as exc:
        form.add_error(None, str(exc))
        return _render(request, form, status=400)
    messages.success(request, f"Silenced {one.rule} for {one.subject or 'every subject'} until {one.until:%H:%M} UTC.")
    return redirect("alerts:list")


@require_POST
@require_perm(VIEW, SILENCE)
def unsilence(request: HttpRequest, pk: int) -> HttpResponse:
    form = UnsilenceForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        one = services.unsilence(pk, by=request.user, reason=reason, request=request)
    except services.SilenceError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Lifted the silence on {one.rule} for {one.subject or 'every subject'}.")
    return redirect("alerts:list")


def _render(request: HttpRequest, form: SilenceForm, status: int = 200) -> HttpResponse:
    context = {**services.overview(), "form": form, "can_silence": request.user.has_perm(SILENCE)}
    return render(request, "alerts/list.html", context, status=status)
