"""The call page (what a call is doing, what to do about it, what we sent, why, every try and what
Shopify said, the webhooks it caused) and the three things a person may do from it or a shop's
page: send a failed call again, pause a shop's outbound queue, resume it. Each takes a reason and
goes through `outbound.queue`, which checks the state and writes the audit entry."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from console.access import require_perm
from integrations.eventlog import selectors
from integrations.models import OutboundCall, Shop
from integrations.outbound import flows, queue
from integrations.outbound.forms import EnqueueForm, ProductForm, StockForm
from integrations.outbound.operations import OPERATIONS, InvalidInput

VIEW_CALL = "integrations.view_outboundcall"
VIEW_ATTEMPT = "integrations.view_outboundattempt"
SEND = "integrations.send_outbound"


class ReasonForm(forms.Form):
    """Why a person acts on the queue: required, kept in the audit trail. `next` is the page to go back to."""

    reason = forms.CharField(
        max_length=500, strip=True, widget=forms.TextInput(attrs={"placeholder": "Why (kept in the audit trail)"})
    )
    next = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)


@require_GET
@require_perm(VIEW_CALL, VIEW_ATTEMPT)
def call_detail(request: HttpRequest, pk: int) -> HttpResponse:
    call = selectors.call_for_detail(pk)
    operation = OPERATIONS.get(call.operation)
    can_send = request.user.has_perm(SEND)
    here = request.get_full_path()
    context = {
        "call": call,
        "operation": operation,
        "tries": call.tries,
        "last_try": call.tries[-1] if call.tries else None,
        "echoes": call.shown_echoes,
        "more_echoes": len(call.shown_echoes) >= selectors.ECHOES_SHOWN,
        # What Shopify sees as @idempotent(key:): derived from the call, the same on every try.
        "shopify_key": queue.shopify_idempotency_key(call) if operation and operation.idempotent else "",
        "send_again_form": ReasonForm(initial={"next": here})
        if can_send and call.status == OutboundCall.Status.FAILED and call.failure_kind not in queue.NOT_RESENDABLE
        else None,
        "resume_form": ReasonForm(initial={"next": here}) if can_send and call.shop.queue_paused else None,
        "not_resendable": queue.NOT_RESENDABLE.get(call.failure_kind, "")
        if call.status == OutboundCall.Status.FAILED
        else "",
    }
    return render(request, "integrations/outbound/detail.html", context)


@require_POST
@require_perm(VIEW_CALL, SEND)
def send_again(request: HttpRequest, pk: int) -> HttpResponse:
    call = get_object_or_404(OutboundCall.objects.select_related("shop"), pk=pk)
    form = ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not sent again: say why the call is sent again (kept in the audit trail).")
    else:
        try:
            sent = queue.send_again(call, by=request.user, reason=form.cleaned_data["reason"], request=request)
        except queue.QueueError as exc:
            messages.error(request, f"Not sent again: {exc}")
        else:
            if not sent:
                call.refresh_from_db(fields=["status"])
                messages.error(
                    request, f"Not sent again: the call is {call.get_status_display().lower()} now, not failed."
                )
            elif call.shop.queue_paused:
                messages.success(request, "Queued again, and held: the shop's outbound queue is paused.")
            else:
                messages.success(request, "Queued again with the same idempotency key: it applies at most once.")
    return redirect("outbound:detail", pk=call.pk)


@require_POST
@require_perm(SEND)
def pause_shop(request: HttpRequest, shop_id: int) -> HttpResponse:
    return _queue_action(request, shop_id, pause=True)


@require_POST
@require_perm(SEND)
def resume_shop(request: HttpRequest, shop_id: int) -> HttpResponse:
    return _queue_action(request, shop_id, pause=False)


def _queue_action(request: HttpRequest, shop_id: int, *, pause: bool) -> HttpResponse:
    shop = get_object_or_404(Shop, pk=shop_id)
    form = ReasonForm(request.POST)
    verb = "pause" if pause else "resume"
    if not form.is_valid():
        messages.error(request, f"Not changed: say why you {verb} the outbound queue (kept in the audit trail).")
        return redirect(_back(request, shop))
    service = queue.pause_shop if pause else queue.resume_shop
    try:
        moved = service(shop, by=request.user, reason=form.cleaned_data["reason"], request=request)
    except queue.QueueError as exc:
        messages.error(request, f"Not changed: {exc}")
    else:
        if pause:
            messages.success(request, f"Outbound queue of {shop.domain} paused: {moved} call{'s' * (moved != 1)} held.")
        else:
            messages.success(
                request, f"Outbound queue of {shop.domain} resumed: {moved} call{'s' * (moved != 1)} released."
            )
    return redirect(_back(request, shop))


def _back(request: HttpRequest, shop: Shop) -> str:
    """The page the form was on (a path on this site), else the shop's page."""
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    if target.startswith("/") and safe:
        return target
    return reverse("integrations:shop_detail", args=[shop.pk])


# --- the outbound page: the queue per shop, and what a person may send --------------------------

FORMS = {"stock": StockForm, "product": ProductForm, "enqueue": EnqueueForm}


@require_perm(VIEW_CALL)
def outbound_index(request: HttpRequest) -> HttpResponse:
    can_send = request.user.has_perm(SEND)
    bound = request.POST.get("form") if request.method == "POST" else None
    if request.method == "POST":
        if not can_send:
            raise PermissionDenied
        if bound not in FORMS:
            return HttpResponseBadRequest("Unknown form.")
        form = FORMS[bound](request.POST, prefix=bound)
        if form.is_valid():
            try:
                call, created = _send(bound, form.cleaned_data, request)
            except (queue.QueueError, InvalidInput, PermissionDenied) as exc:
                form.add_error(None, str(exc))
            else:
                if created:
                    messages.success(request, f"Call {call.pk} queued ({call.get_status_display().lower()}).")
                else:
                    messages.info(
                        request, f"Already asked for: call {call.pk} has the same intent, nothing new queued."
                    )
                return redirect("outbound:detail", pk=call.pk)
    forms_shown = (
        {name: (form if name == bound else cls(prefix=name)) for name, cls in FORMS.items()} if can_send else {}
    )
    context = {"queues": selectors.shop_queues(), "forms": forms_shown, "bound": bound}
    return render(request, "integrations/outbound/index.html", context, status=400 if bound and can_send else 200)


def _send(which: str, data: dict, request: HttpRequest):
    by = request.user
    ref = f"page:{by.get_username()}"
    if which == "stock":
        return flows.push_stock_level(
            data["shop"],
            inventory_item_id=data["inventory_item_id"],
            location_id=data["location_id"],
            quantity=data["quantity"],
            compare_to=data["compare_to"],
            lane=data["lane"],
            by=by,
            origin_ref=ref,
        )
    if which == "product":
        return flows.push_product_content(
            data["shop"],
            product_id=data["product_id"],
            title=data["title"] or None,
            description_html=data["description_html"] or None,
            lane=data["lane"],
            by=by,
            origin_ref=ref,
        )
    return queue.enqueue(
        data["shop"],
        data["operation"],
        data["input"],
        origin=OutboundCall.Origin.PERSON,
        origin_ref=ref,
        lane=data["lane"],
        key=data["key"] or None,
        why=data["why"] or "enqueued from the outbound page",
        by=by,
        override_reason=data["override_reason"] or None,
    )
