"""The ownership pages: a shop's ownership map (admins change an owner, with a reason) and the
drift report (changes made in Shopify by something else to fields the platform owns)."""

from datetime import datetime, time, timedelta

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from console.access import require_perm
from integrations.jobs.fields import RESOURCES
from integrations.jobs.ownership import KNOWN_OWNERS
from integrations.models import Shop
from integrations.shops import ownership

DRIFT_DAYS = 7


class OwnerForm(forms.Form):
    target = forms.ChoiceField(label="Resource or field", choices=())
    owner = forms.CharField(
        max_length=64,
        help_text=f"{', '.join(KNOWN_OWNERS)}, another system's name (erp, pim...), or 'default' for the code default.",
        widget=forms.TextInput(attrs={"list": "owner-names", "autocomplete": "off", "spellcheck": "false"}),
    )
    reason = forms.CharField(
        max_length=500, widget=forms.TextInput(attrs={"placeholder": "Why (kept in the audit trail)"})
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].choices = ownership.settable_targets()

    def clean_owner(self):
        return self.cleaned_data["owner"].strip().lower()

    def split(self) -> tuple[str, str]:
        resource, _, field = self.cleaned_data["target"].partition(".")
        return resource, field


@require_http_methods(["GET", "POST"])
@require_perm("integrations.view_ownershiprule")
def shop_ownership(request: HttpRequest, pk: int) -> HttpResponse:
    shop = get_object_or_404(Shop, pk=pk)
    can_manage = request.user.has_perm(ownership.MANAGE)
    if request.method == "POST" and not can_manage:
        raise PermissionDenied
    form = OwnerForm(request.POST or None) if can_manage else None
    if request.method == "POST" and form.is_valid():
        resource, field = form.split()
        try:
            result = ownership.set_owner(
                shop,
                resource,
                field,
                form.cleaned_data["owner"],
                by=request.user,
                reason=form.cleaned_data["reason"],
                request=request,
            )
        except ownership.OwnershipError as exc:
            form.add_error(None, str(exc))
        else:
            name = f"{resource}.{field}" if field else resource
            if result["changed"]:
                messages.success(request, f"{name} is now owned by {result['owner']} (was {result['before']}).")
            else:
                messages.info(request, f"{name} was already owned by {result['owner']}: nothing changed.")
            return redirect("integrations:ownership", pk=shop.pk)
    context = {
        "shop": shop,
        "rows": ownership.map_rows(shop),
        "form": form,
        "owner_names": KNOWN_OWNERS,
        "drift_days": DRIFT_DAYS,
    }
    if request.user.has_perm("integrations.view_ownershipdrift"):
        context["drift_count"] = ownership.drift_count(shop, days=DRIFT_DAYS)
    status = 400 if request.method == "POST" else 200
    return render(request, "integrations/ownership/map.html", context, status=status)


class DriftFilterForm(forms.Form):
    shop = forms.ModelChoiceField(queryset=Shop.objects.order_by("domain"), required=False, empty_label="All shops")
    resource = forms.ChoiceField(required=False, choices=())
    field = forms.CharField(required=False, max_length=64)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["resource"].choices = [("", "All resources"), *((name, name) for name in RESOURCES)]

    def since_time(self) -> datetime:
        day = self.cleaned_data.get("since")
        if day is None:
            return timezone.now() - timedelta(days=DRIFT_DAYS)
        return timezone.make_aware(datetime.combine(day, time.min))


@require_GET
@require_perm("integrations.view_ownershipdrift")
def drift(request: HttpRequest) -> HttpResponse:
    form = DriftFilterForm(request.GET)
    report, since = [], None
    if form.is_valid():
        since = form.since_time()
        report = ownership.drift_report(
            form.cleaned_data["shop"],
            since=since,
            resource=form.cleaned_data["resource"] or None,
            field=form.cleaned_data["field"].strip() or None,
        )
    context = {"form": form, "report": report, "since": since, "drift_days": DRIFT_DAYS}
    return render(request, "integrations/ownership/drift.html", context, status=200 if form.is_valid() else 400)
