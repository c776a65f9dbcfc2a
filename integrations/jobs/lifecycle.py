"""App lifecycle jobs: what an app/uninstalled webhook changes."""

from console.audit import record_action
from integrations.jobs.registry import Replay, job
from integrations.models import Event, Shop


@job("mark_uninstalled", replay=Replay.ALWAYS, reason="Marking a shop uninstalled twice changes nothing.")
def mark_uninstalled(event: Event, payload: dict) -> str:
    """The app was uninstalled: stop outbound work for the shop (its token is revoked)."""
    changed = (
        Shop.objects.filter(pk=event.shop_id).exclude(state=Shop.State.UNINSTALLED).update(state=Shop.State.UNINSTALLED)
    )
    if changed:
        record_action(
            actor=None,
            verb="shop.uninstalled",
            target=event.shop,
            before={"state": Shop.State.INSTALLED},
            after={"state": Shop.State.UNINSTALLED},
            reason=f"app/uninstalled webhook {event.webhook_id}",
        )
        return "shop marked uninstalled"
    return "already uninstalled"
