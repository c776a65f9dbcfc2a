"""App lifecycle jobs: what an app/uninstalled webhook changes."""

from integrations.jobs.registry import Decision, conditional, job
from integrations.models import Event, Job, Shop
from integrations.shops.services import mark_shop_uninstalled


def event_time(event: Event):
    """When Shopify says the event happened (its trigger time), else when we received it."""
    return event.triggered_at or event.received_at


def _not_reinstalled_since(event: Event, job: Job | None) -> Decision:
    shop = Shop.objects.only("state", "state_changed_at").get(pk=event.shop_id)
    changed = shop.state_changed_at
    if shop.state == Shop.State.INSTALLED and changed is not None and changed > event_time(event):
        return Decision(
            False,
            f"the shop was reinstalled at {changed.isoformat()}, after this uninstall: replaying would uninstall it again",
        )
    return Decision(True, "the shop has not been reinstalled since this event")


@job(
    "mark_uninstalled",
    decision=conditional(
        "Safe until the shop is reinstalled: after a reinstall, replaying an old uninstall would stop the "
        "shop's work again.",
        _not_reinstalled_since,
    ),
    effect="Sets the shop uninstalled only if its state is older than the event (Shopify's time), and fails its "
    "unsent calls: a second run changes nothing.",
    writes=(("platform", "shop", "state"),),
)
def mark_uninstalled(event: Event, payload: dict) -> str:
    """The app was uninstalled: stop outbound work for the shop (its token is revoked)."""
    changed = mark_shop_uninstalled(
        shop_id=event.shop_id, at=event_time(event), reason=f"app/uninstalled webhook {event.webhook_id}"
    )
    return "shop marked uninstalled" if changed else "already uninstalled, or reinstalled after this event: unchanged"
