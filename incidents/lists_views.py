"""The lists around incidents: the follow-ups page (open remediation across every incident,
resolved ones included) and the notification lists (who hears about incidents of each severity,
per audience), which only admins edit, one cell at a time, audited."""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from console.access import require_perm
from incidents import notifications, services
from incidents.models import Audience, Incident, NotificationList
from incidents.notifications import AddressError, parse_addresses

VIEW = "incidents.view_incident"
MANAGE = "incidents.manage_notification_lists"
FOLLOW_UPS_PAGE = 50


# --- Follow-ups -------------------------------------------------------------------------------


@require_GET
@require_perm(VIEW)
def follow_ups(request: HttpRequest) -> HttpResponse:
    """Open remediation actions, soonest due first (those with no due date last); "mine" filters
    to the ones the reader owns."""
    mine = request.GET.get("mine") == "1"
    actions = services.follow_ups().order_by(F("due_at").asc(nulls_last=True), "id")
    if mine:
        actions = actions.filter(owner=request.user)
    page = Paginator(actions, FOLLOW_UPS_PAGE).get_page(request.GET.get("page"))
    context = {"page": page, "mine": mine, "query": urlencode({"mine": "1"}) if mine else ""}
    return render(request, "incidents/follow_ups.html", context)


# --- Notification lists -----------------------------------------------------------------------


class NotificationListForm(forms.Form):
    """One cell of the grid: an audience's list for one severity."""

    audience = forms.ChoiceField(choices=Audience.choices, widget=forms.HiddenInput)
    severity = forms.ChoiceField(choices=Incident.Severity.choices, widget=forms.HiddenInput)
    users = forms.ModelMultipleChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 8}),
        help_text="Active users; each is sent mail at the e-mail address on their account.",
    )
    emails = forms.CharField(
        required=False,
        label="Other e-mail addresses",
        widget=forms.Textarea(attrs={"rows": 4, "cols": 40}),
        help_text="Plain addresses, one per line or separated by commas (a team's mailbox, an on-call alias).",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["users"].queryset = get_user_model().objects.filter(is_active=True).order_by("username")

    def clean_emails(self) -> list[str]:
        try:
            return parse_addresses(self.cleaned_data.get("emails", ""), strict=True)
        except AddressError as error:
            raise forms.ValidationError(f"Nothing saved: {error}.") from error


def _grid(lists: dict[tuple[str, str], NotificationList], editing: tuple[str, str] | None) -> list[dict]:
    rows = []
    for audience, audience_label in Audience.choices:
        cells = []
        for severity in Incident.Severity.values:
            one = lists.get((audience, severity))
            people = sorted(one.users.all(), key=lambda u: u.get_username()) if one else []
            cells.append({
                "audience": audience, "severity": severity, "users": people,
                "emails": parse_addresses(one.emails) if one else [],
                "editing": editing == (audience, severity),
                "edit_query": urlencode({"audience": audience, "severity": severity}),
            })  # fmt: skip
        rows.append({"audience": audience, "label": audience_label, "cells": cells})
    return rows


def _save(request: HttpRequest, form: NotificationListForm) -> NotificationList:
    data = form.cleaned_data
    return notifications.set_list(
        audience=data["audience"], severity=data["severity"], users=data["users"], emails="\n".join(data["emails"]),
        by=request.user, request=request,
    )  # fmt: skip


@require_http_methods(["GET", "POST"])
@require_perm(VIEW)
def notification_lists(request: HttpRequest) -> HttpResponse:
    """The grid (audience by severity) with who is on each list; an admin edits one cell at a time."""
    can_manage = request.user.has_perm(MANAGE)
    form, status, editing = None, 200, None
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied
        form = NotificationListForm(request.POST)
        if form.is_valid():
            one = _save(request, form)
            messages.success(request, f"Saved the list for {one}: {len(one.addresses())} recipients.")
            return redirect(f"{reverse('incidents:notification_lists')}#list-{one.audience}-{one.severity}")
        status = 400
        editing = (request.POST.get("audience", ""), request.POST.get("severity", ""))
    elif (
        can_manage
        and request.GET.get("audience") in Audience.values
        and request.GET.get("severity") in (Incident.Severity.values)
    ):
        editing = (request.GET["audience"], request.GET["severity"])
        current = NotificationList.objects.filter(audience=editing[0], severity=editing[1]).first()
        form = NotificationListForm(
            initial={
                "audience": editing[0],
                "severity": editing[1],
                "users": list(current.users.all()) if current else [],
                "emails": current.emails if current else "",
            }
        )
    lists = {(one.audience, one.severity): one for one in NotificationList.objects.prefetch_related("users")}
    context = {
        "grid": _grid(lists, editing),
        "severities": Incident.Severity.choices,
        "form": form,
        "editing_label": f"{Audience(editing[0]).label} · {editing[1].upper()}"
        if editing and editing[0] in Audience.values
        else "",
        "can_manage": can_manage,
    }
    return render(request, "incidents/notification_lists.html", context, status=status)
