"""The runbook page (generated from the code: `integrations.replay.runbook`) and the handler
switches page: disable a handler for one shop or every shop, enable it again, and replay what was
held meanwhile. Every change goes through `switches.set_handler`, which checks it and writes the
audit entry."""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.views.decorators.http import require_GET, require_POST

from console.access import require_perm
from integrations.models import Shop
from integrations.replay import runbook as book
from integrations.replay.switches import SwitchError, set_handler

VIEW_EVENT = "integrations.view_event"
VIEW_SWITCH = "integrations.view_handlerswitch"
REQUEST = "integrations.request_replay"
ALL = "*"  # the shop field's value for "every shop"


class SwitchForm(forms.Form):
    """Disable or enable one handler for one shop or every shop, with a reason (audited)."""

    job = forms.CharField(max_length=64)
    action = forms.ChoiceField(choices=[("disable", "Disable"), ("enable", "Enable")])
    shop = forms.CharField(max_length=255, error_messages={"required": "choose a shop, or all shops"})
    reason = forms.CharField(
        max_length=500, strip=True, error_messages={"required": "say why (kept in the audit trail)"}
    )

    def clean_shop(self) -> Shop | None:
        value = self.cleaned_data["shop"].strip().lower()
        if value == ALL:
            return None
        shop = Shop.objects.filter(domain=value).first()
        if shop is None:
            raise forms.ValidationError(f"no shop {value}")
        return shop


@require_GET
@require_perm(VIEW_EVENT)
def runbook(request: HttpRequest) -> HttpResponse:
    context = {
        "book": book.build_runbook(counts=book.job_counts()),
        "can_see_switches": request.user.has_perm(VIEW_SWITCH),
    }
    return render(request, "integrations/replays/runbook.html", context)


@require_GET
@require_perm(VIEW_SWITCH)
def handler_list(request: HttpRequest) -> HttpResponse:
    rows, shops = book.handler_rows()
    context = {
        "rows": rows,
        "shops": shops,
        "all_value": ALL,
        "can_switch": request.user.has_perm(REQUEST),
        "disabled_count": sum(1 for row in rows if row.disabled_anywhere),
        "held_total": sum(row.held_total for row in rows),
    }
    return render(request, "integrations/replays/handlers.html", context)


@require_POST
@require_perm(REQUEST)
def handler_switch(request: HttpRequest) -> HttpResponse:
    form = SwitchForm(request.POST)
    back = reverse("replays:handlers")
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in form.errors.items())
        messages.error(request, f"Not changed: {problems}.")
        return redirect(back)
    job, shop, reason = form.cleaned_data["job"], form.cleaned_data["shop"], form.cleaned_data["reason"]
    disabling = form.cleaned_data["action"] == "disable"
    was = book.was_disabled(job, shop)
    try:
        set_handler(job=job, shop=shop, disabled=disabling, by=request.user, reason=reason, request=request)
    except SwitchError as exc:
        messages.error(request, f"Not changed: {exc}")
        return redirect(back)
    outcome = book.after_switch(job, shop, disabled=disabling, was=was)
    if outcome.held:
        query = {"status": "held", "shop": shop.domain if shop else "", "topic": book.topic_prefix(job)}
        query = urlencode({key: value for key, value in query.items() if value})
        messages.success(
            request,
            format_html(
                '{} <a href="{}?{}">See the held events in the event log</a>, and dry-run their replay from this page.',
                outcome.sentence(),
                reverse("events:list"),
                query,
            ),
        )
    elif outcome.still_disabled_for:
        messages.warning(request, outcome.sentence())
    else:
        messages.success(request, outcome.sentence())
    return redirect(f"{back}#handler-{job}")
