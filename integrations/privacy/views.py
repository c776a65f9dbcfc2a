"""Privacy requests: the list (deadline, state, proof) and the audited export download."""

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from console.access import require_perm
from console.pagination import keyset_page
from integrations.models import PrivacyRequest, Shop
from integrations.privacy import selectors, services

VIEW = "integrations.view_privacyrequest"


class PrivacyFilterForm(forms.Form):
    state = forms.ChoiceField(choices=list(selectors.STATES.items()), required=False)
    shop = forms.ModelChoiceField(
        queryset=Shop.objects.order_by("domain"), required=False, empty_label="All shops", to_field_name="domain"
    )


@require_GET
@require_perm(VIEW)
def privacy_list(request: HttpRequest) -> HttpResponse:
    form = PrivacyFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    requests = selectors.privacy_requests(state=filters.get("state") or "", shop=filters.get("shop"))
    page = keyset_page(requests, cursor=request.GET.get("cursor"))
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {
        "form": form,
        "page": page,
        "query": query.urlencode(),
        "now": timezone.now(),
        "may_export": request.user.has_perm(services.EXPORT_PERMISSION),
    }
    return render(request, "integrations/privacy/list.html", context)


@require_GET
@require_perm(VIEW, services.EXPORT_PERMISSION)
def privacy_export(request: HttpRequest, pk: int) -> HttpResponse:
    record = get_object_or_404(PrivacyRequest.objects.select_related("shop"), pk=pk)
    try:
        body = services.download_export(request_record=record, by=request.user, http_request=request)
    except LookupError as exc:
        raise Http404(str(exc)) from exc
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="privacy-export-{record.pk}.json"'
    response["Cache-Control"] = "no-store"
    return response
