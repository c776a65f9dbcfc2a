from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.access import require_perm
from console.models import AuditEntry
from integrations.eventlog import selectors
from integrations.models import Shop
from integrations.outbound.views import ReasonForm as QueueReasonForm
from integrations.shops import services
from integrations.shops.forms import ReinstallForm, RetireSecretForm, ShopCreateForm, ShopEditForm, ShopSecretsForm


@require_GET
@require_perm("integrations.view_shop")
def shop_list(request: HttpRequest) -> HttpResponse:
    shops = services.with_sending_while_uninstalled(Shop.objects.all())
    return render(request, "integrations/shop_list.html", {"shops": shops})


@require_GET
@require_perm("integrations.view_shop")
def shop_detail(request: HttpRequest, pk: int) -> HttpResponse:
    shop = get_object_or_404(Shop, pk=pk)
    history = AuditEntry.objects.for_object(shop).order_by("-id")[:10]
    context = {
        "shop": shop,
        "history": history,
        "sent_since_uninstall": services.webhooks_since_uninstall(shop),
        "reinstall_form": ReinstallForm() if request.user.has_perm("integrations.change_shop") else None,
    }
    if request.user.has_perm("integrations.view_outboundcall"):
        context["call_counts"] = selectors.shop_call_counts(shop)
    if request.user.has_perm("integrations.view_ownershipdrift"):
        from integrations.shops.ownership import drift_count

        context["drift_count"] = drift_count(shop, days=7)
    if request.user.has_perm("integrations.send_outbound"):
        # Pause and resume go through the outbound queue, which holds and releases the calls.
        context["queue_form"] = QueueReasonForm(initial={"next": request.path})
    return render(request, "integrations/shop_detail.html", context)


@require_POST
@require_perm("integrations.change_shop")
def shop_reinstall(request: HttpRequest, pk: int) -> HttpResponse:
    """An admin marks an uninstalled shop installed again, with the reason."""
    shop = get_object_or_404(Shop, pk=pk)
    form = ReinstallForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the shop is marked reinstalled (kept in the audit trail).")
    elif services.mark_shop_reinstalled(
        shop=shop, by=request.user, reason=form.cleaned_data["reason"], request=request
    ):
        messages.success(request, f"{shop.domain} is marked installed again.")
    else:
        messages.error(request, f"{shop.domain} is not uninstalled: nothing changed.")
    return redirect("integrations:shop_detail", pk=shop.pk)


@require_http_methods(["GET", "POST"])
@require_perm("integrations.add_shop", "integrations.manage_shop_secrets")
def shop_create(request: HttpRequest) -> HttpResponse:
    form = ShopCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            shop = services.register_shop(by=request.user, request=request, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Shop {shop.domain} registered.")
            return redirect("integrations:shop_detail", pk=shop.pk)
    return render(request, "integrations/shop_form.html", {"form": form, "title": "Register a shop"})


@require_http_methods(["GET", "POST"])
@require_perm("integrations.change_shop")
def shop_edit(request: HttpRequest, pk: int) -> HttpResponse:
    shop = get_object_or_404(Shop, pk=pk)
    form = ShopEditForm(request.POST or None, instance=Shop.objects.get(pk=pk))
    if request.method == "POST" and form.is_valid():
        changes = {field: form.cleaned_data[field] for field in ShopEditForm.Meta.fields}
        services.update_shop(
            by=request.user, shop=shop, changes=changes, reason=form.cleaned_data["reason"], request=request
        )
        messages.success(request, "Shop settings saved.")
        return redirect("integrations:shop_detail", pk=shop.pk)
    return render(request, "integrations/shop_form.html", {"form": form, "title": f"Edit {shop.domain}", "shop": shop})


@require_http_methods(["GET", "POST"])
@require_perm("integrations.manage_shop_secrets")
def shop_secrets(request: HttpRequest, pk: int) -> HttpResponse:
    shop = get_object_or_404(Shop, pk=pk)
    form = ShopSecretsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data, field = form.cleaned_data, "new_webhook_secret"
        try:
            with transaction.atomic():  # both changes or neither
                if data["new_webhook_secret"]:
                    shop = services.rotate_webhook_secret(
                        by=request.user,
                        shop=shop,
                        new_secret=data["new_webhook_secret"],
                        reason=data["reason"],
                        request=request,
                    )
                if data["new_access_token"]:
                    field = "new_access_token"
                    shop = services.set_access_token(
                        by=request.user,
                        shop=shop,
                        token=data["new_access_token"],
                        reason=data["reason"],
                        request=request,
                    )
        except ValueError as exc:
            form.add_error(field, str(exc))
        else:
            messages.success(request, "Secrets updated.")
            return redirect("integrations:shop_detail", pk=shop.pk)
    return _render_secrets(request, shop, form, RetireSecretForm())


@require_POST
@require_perm("integrations.manage_shop_secrets")
def shop_retire_secret(request: HttpRequest, pk: int) -> HttpResponse:
    """Stop the previous webhook secret verifying now (the button on the secrets page)."""
    shop = get_object_or_404(Shop, pk=pk)
    form = RetireSecretForm(request.POST)
    if form.is_valid():
        try:
            services.retire_previous_webhook_secret(
                by=request.user, shop=shop, reason=form.cleaned_data["reason"], request=request
            )
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            seconds = f"{settings.WEBHOOK_SHOP_CACHE_SECONDS:g}"
            messages.success(request, f"Previous webhook secret retired: every receiver refuses it within {seconds} s.")
            return redirect("integrations:shop_detail", pk=shop.pk)
    shop.refresh_from_db()
    return _render_secrets(request, shop, ShopSecretsForm(), form, status=400)


def _render_secrets(request, shop: Shop, form, retire_form, status: int = 200) -> HttpResponse:
    context = {
        "form": form,
        "retire_form": retire_form,
        "title": f"Secrets for {shop.domain}",
        "shop": shop,
        "previous_verifies": len(shop.verifying_secrets()) > 1,
        "cache_seconds": f"{settings.WEBHOOK_SHOP_CACHE_SECONDS:g}",
    }
    return render(request, "integrations/shop_secrets.html", context, status=status)


# --- API health ------------------------------------------------------------------------------------

HEALTH_PERMS = ("integrations.view_shop", "integrations.view_healthcheck")


@require_GET
@require_perm(*HEALTH_PERMS)
def shop_health(request: HttpRequest, pk: int) -> HttpResponse:
    """Token, scopes, version, subscriptions, queue, throttle, errors, drift and the lifecycle
    timeline, from what the last checks found (Check now asks Shopify again)."""
    from integrations.shops.health import health_report, lifecycle_timeline

    shop = get_object_or_404(Shop, pk=pk)
    context = {
        "shop": shop,
        "report": health_report(shop),
        "timeline": lifecycle_timeline(shop, limit=50),
        "can_check": True,
        "can_resubscribe": request.user.has_perm("integrations.send_outbound"),
        "resubscribe_form": QueueReasonForm(),
    }
    return render(request, "integrations/shop_health.html", context)


@require_POST
@require_perm(*HEALTH_PERMS)
def shop_health_check(request: HttpRequest, pk: int) -> HttpResponse:
    from integrations.shops.health import run_checks

    shop = get_object_or_404(Shop, pk=pk)
    report = run_checks(shop, triggered_by=f"page:{request.user.get_username()}")
    if report["problems"]:
        messages.warning(request, f"Checked: {len(report['problems'])} problem(s) found.")
    else:
        messages.success(request, "Checked: no problems found.")
    return redirect("integrations:shop_health", pk=shop.pk)


@require_POST
@require_perm(*HEALTH_PERMS, "integrations.send_outbound")
def shop_resubscribe(request: HttpRequest, pk: int) -> HttpResponse:
    from integrations.shops.subscriptions import EXPECTED_TOPICS, resubscribe

    shop = get_object_or_404(Shop, pk=pk)
    topic = request.POST.get("topic", "")
    form = QueueReasonForm(request.POST)
    if topic not in EXPECTED_TOPICS:
        messages.error(request, f"Not re-subscribed: {topic!r} is not a topic this console subscribes to.")
    elif not form.is_valid():
        messages.error(request, "Not re-subscribed: say why (kept in the audit trail).")
    else:
        try:
            outcome = resubscribe(shop, topic, by=request.user, reason=form.cleaned_data["reason"], request=request)
        except ValueError as exc:
            messages.error(request, f"Not re-subscribed: {exc}")
        else:
            messages.success(request, f"{topic}: {outcome}")
    return redirect("integrations:shop_health", pk=shop.pk)
