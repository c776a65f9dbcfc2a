"""Changes to shops. Views and management commands call these; each one writes its audit entry in
the same transaction as the change."""

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from console.audit import changed_fields, record_action
from console.secrets import mask_secret
from integrations.models import Shop

# Shopify may keep signing with the old secret for up to an hour after a rotation.
DEFAULT_ROTATION_GRACE = timedelta(hours=1)
EDITABLE_FIELDS = ("name", "api_url", "api_version", "queue_paused")


def _snapshot(shop: Shop) -> dict:
    return {
        "domain": shop.domain,
        "name": shop.name,
        "api_url": shop.api_url,
        "api_version": shop.api_version,
        "state": shop.state,
        "queue_paused": shop.queue_paused,
        "webhook_secret": mask_secret(shop.webhook_secret),
        "previous_webhook_secret": mask_secret(shop.previous_webhook_secret),
        "access_token": mask_secret(shop.access_token),
    }


def register_shop(
    *,
    by,
    domain: str,
    webhook_secret: str,
    access_token: str = "",
    api_url: str = "",
    api_version: str = "",
    name: str = "",
    request=None,
) -> Shop:
    """Create a shop (validated like the admin form) and audit it."""
    shop = Shop(
        domain=domain.strip().lower(),
        name=name,
        webhook_secret=webhook_secret,
        access_token=access_token,
        api_url=api_url,
    )
    if api_version:
        shop.api_version = api_version
    shop.full_clean()
    with transaction.atomic():
        shop.save()
        record_action(actor=by, verb="shop.register", target=shop, after=_snapshot(shop), request=request)
    return shop


def update_shop(*, by, shop: Shop, changes: dict, reason: str = "", request=None) -> Shop:
    """Change the non-secret settings of a shop. Unknown keys are a programming error."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValueError(f"Not editable here: {', '.join(sorted(unknown))}")
    from integrations.outbound.queue import pause_shop, resume_shop

    changes = dict(changes)
    paused = changes.pop("queue_paused", None)
    with transaction.atomic():
        shop = Shop.objects.select_for_update().get(pk=shop.pk)
        toggle = paused is not None and paused != shop.queue_paused
        if toggle and not reason.strip():
            raise ValueError("Pausing or resuming a shop's queue needs a reason (kept in the audit trail).")
        before = _snapshot(shop)
        for field, value in changes.items():
            setattr(shop, field, value)
        shop.full_clean()
        _save_audited(shop, before, by=by, verb="shop.update", reason=reason, request=request, only_if_changed=True)
        if toggle:
            # Holding and releasing the calls is the outbound queue's (audited there).
            (pause_shop if paused else resume_shop)(shop, by=by, reason=reason, request=request)
            shop.refresh_from_db()
    return shop


def rotate_webhook_secret(
    *, by, shop: Shop, new_secret: str, grace: timedelta = DEFAULT_ROTATION_GRACE, reason: str = "", request=None
) -> Shop:
    """Make `new_secret` current; the old one keeps verifying for `grace` so in-flight retries pass."""
    _check_secret("webhook_secret", new_secret)
    if not new_secret or new_secret == shop.webhook_secret:
        raise ValueError("The new secret must differ from the current one.")
    with transaction.atomic():
        shop = Shop.objects.select_for_update().get(pk=shop.pk)
        retire_at = shop.previous_secret_retire_at
        if shop.previous_webhook_secret and retire_at is not None and retire_at > timezone.now():
            # Rotating again would drop a secret Shopify may still be signing retries with.
            raise ValueError(
                f"The previous secret still verifies until {retire_at:%H:%M} UTC; rotate again after that,"
                " or retire it now first."
            )
        before = _snapshot(shop)
        shop.previous_webhook_secret = shop.webhook_secret
        shop.previous_secret_retire_at = timezone.now() + grace
        shop.webhook_secret = new_secret
        _save_audited(shop, before, by=by, verb="shop.rotate_webhook_secret", reason=reason, request=request)
    return shop


def retire_previous_webhook_secret(*, by, shop: Shop, reason: str, request=None) -> Shop:
    """Stop the previous webhook secret verifying now instead of at the end of its grace hour (it
    leaked, or Shopify has finished retrying). Needs a reason; audited.

    The database change is immediate; each web process's receiver caches a shop's secrets for up to
    WEBHOOK_SHOP_CACHE_SECONDS (integrations/inbound/views.py), so within that time a webhook signed
    with the retired secret is refused (401) everywhere.
    """
    if not reason.strip():
        raise ValueError("Say why the previous secret is retired now (kept in the audit trail).")
    with transaction.atomic():
        shop = Shop.objects.select_for_update().get(pk=shop.pk)
        if shop.verifying_secrets() == [shop.webhook_secret]:
            raise ValueError("No previous webhook secret is verifying; there is nothing to retire.")
        before = _snapshot(shop)
        shop.previous_webhook_secret = ""  # a retired secret is not kept
        shop.previous_secret_retire_at = timezone.now()
        _save_audited(shop, before, by=by, verb="shop.retire_webhook_secret", reason=reason, request=request)
    return shop


def _check_secret(field: str, value: str) -> None:
    """What the column can hold, for callers that skip the forms (commands, code)."""
    limit = Shop._meta.get_field(field).max_length
    if len(value) > limit:
        raise ValueError(f"Too long: a {field.replace('_', ' ')} has at most {limit} characters.")
    if "\x00" in value:
        raise ValueError(f"A {field.replace('_', ' ')} cannot contain NUL characters.")


def set_access_token(*, by, shop: Shop, token: str, reason: str = "", request=None) -> Shop:
    _check_secret("access_token", token)
    with transaction.atomic():
        shop = Shop.objects.select_for_update().get(pk=shop.pk)
        before = _snapshot(shop)
        shop.access_token = token
        _save_audited(shop, before, by=by, verb="shop.set_access_token", reason=reason, request=request)
        # A new token is what a token hold waits for: the held calls may run again.
        from integrations.shops.tokens import clear_token_hold

        clear_token_hold(
            shop, reason=f"a new access token was set: {reason}" if reason else "a new access token was set"
        )
    return shop


def _save_audited(shop: Shop, before: dict, *, by, verb: str, reason: str, request, only_if_changed=False) -> None:
    """Save the (locked) shop and audit what changed against `before`, secrets masked."""
    shop.save()
    old, new = changed_fields(before, _snapshot(shop))
    if new or not only_if_changed:
        record_action(actor=by, verb=verb, target=shop, before=old, after=new, reason=reason, request=request)


def mark_shop_uninstalled(*, shop_id: int, at, reason: str, by=None) -> bool:
    """installed -> uninstalled, as of `at` (when Shopify says the app was uninstalled).

    Conditional: only if the shop is installed and its last install-state change is older than
    `at`, so an uninstall that arrives late (or is replayed) after a reinstall changes nothing.
    Audited. False when nothing changed.
    """
    with transaction.atomic():
        shop = Shop.objects.select_for_update().get(pk=shop_id)
        if shop.state != Shop.State.INSTALLED or (shop.state_changed_at is not None and shop.state_changed_at >= at):
            return False
        before = _snapshot(shop)
        shop.state, shop.state_changed_at = Shop.State.UNINSTALLED, at
        _save_audited(shop, before, by=by, verb="shop.uninstalled", reason=reason, request=None)
        from integrations.outbound.queue import stop_calls_of_uninstalled_shop

        stop_calls_of_uninstalled_shop(shop)
    return True


def with_sending_while_uninstalled(shops):
    """Annotate `sending_while_uninstalled`: an uninstalled shop with a verified webhook received
    after its uninstall (one EXISTS per row, computed in the same query)."""
    from django.db.models import Exists, OuterRef, Q

    from integrations.models import Event

    later = Event.objects.filter(shop=OuterRef("pk"), received_at__gt=OuterRef("state_changed_at"))
    return shops.annotate(sending_while_uninstalled=Exists(later.filter()) & Q(state=Shop.State.UNINSTALLED))


def webhooks_since_uninstall(shop: Shop) -> int:
    """Verified webhooks an uninstalled shop sent after its uninstall: Shopify only signs webhooks
    for an installed app, so any at all means the app was reinstalled and nobody told the console.
    Counted up to 1,000 (a cap keeps the count cheap; "1000" then reads "1000 or more")."""
    if shop.state != Shop.State.UNINSTALLED or shop.state_changed_at is None:
        return 0
    since = shop.events.filter(received_at__gt=shop.state_changed_at).order_by().values("id")[:1000]
    return since.count()


def mark_shop_reinstalled(*, shop: Shop, by, reason: str, at=None, request=None) -> bool:
    """uninstalled -> installed (the merchant installed the app again). Needs a reason; audited."""
    if not reason.strip():
        raise ValueError("Say why the shop is marked reinstalled (kept in the audit trail).")
    at = at or timezone.now()
    with transaction.atomic():
        shop = Shop.objects.select_for_update().get(pk=shop.pk)
        if shop.state != Shop.State.UNINSTALLED:
            return False
        before = _snapshot(shop)
        shop.state, shop.state_changed_at = Shop.State.INSTALLED, at
        _save_audited(shop, before, by=by, verb="shop.reinstalled", reason=reason, request=request)
    return True
