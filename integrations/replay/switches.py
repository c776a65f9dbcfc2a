"""Containment switches: disable a handler (a job type) for one shop or for every shop, and
enable it again, with a reason (audited).

While a handler is disabled, the pumps hold its jobs instead of running them: the event is
stored and shown as held, its other jobs run. Once it is enabled again, the events held
meanwhile are listed for a replay (`held_events`), which runs them through the usual decisions.
"""

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from console.audit import acting_user, actor_label, record_action
from integrations.jobs.registry import JOB_TYPES
from integrations.models import Event, HandlerSwitch, Job, Shop


class SwitchError(ValueError):
    """A switch change the console refuses, with the reason."""


def disabled_by_shop() -> dict[int | None, dict[str, str]]:
    """{shop id, or None for every shop: {job: why it is held}} for the disabled handlers. One
    query on a table of a few rows; the pumps call it once per batch."""
    disabled: dict[int | None, dict[str, str]] = {}
    rows = HandlerSwitch.objects.filter(disabled=True).values_list(
        "shop_id", "job", "changed_by_label", "disabled_at", "reason"
    )
    for shop_id, job, who, at, reason in rows:
        where = "this shop" if shop_id else "all shops"
        when = f"{at:%Y-%m-%d %H:%M} UTC" if at else "earlier"
        disabled.setdefault(shop_id, {})[job] = f"handler {job} disabled for {where} by {who} at {when} ({reason})"
    return disabled


def disabled_reason(disabled: dict, shop_id: int, job: str) -> str | None:
    """Why `job` is held for the shop (its own switch first, then one for every shop), from
    `disabled_by_shop()`; None when it runs."""
    return disabled.get(shop_id, {}).get(job) or disabled.get(None, {}).get(job)


def _label(by) -> str:
    return actor_label(by, nobody="command line")


def set_handler(*, job: str, shop: Shop | None, disabled: bool, by, reason: str, request=None) -> HandlerSwitch:
    """Disable or enable `job` for `shop` (None: every shop). Returns the switch."""
    if job not in JOB_TYPES:
        raise SwitchError(f"no job named {job!r}; the handlers are: {', '.join(sorted(JOB_TYPES))}")
    if not reason.strip():
        raise SwitchError("Say why (kept in the audit trail and shown on every held event).")
    now = timezone.now()
    if not disabled and shop is not None and HandlerSwitch.objects.filter(shop=None, job=job, disabled=True).exists():
        raise SwitchError(
            f"{job} is disabled for all shops: enable it for all shops (it stays disabled where it has its own switch)"
        )
    with transaction.atomic():
        switch = HandlerSwitch.objects.select_for_update().filter(shop=shop, job=job).first()
        before = {"disabled": switch.disabled if switch else False}
        if switch is None:
            switch = HandlerSwitch(shop=shop, job=job)
        switch.disabled, switch.reason, switch.changed_by = (
            disabled,
            reason.strip(),
            acting_user(by),
        )
        switch.changed_by_label, switch.changed_at = _label(by), now
        if disabled:
            switch.disabled_at = now
        switch.save()
        held = held_events(job, shop).count() if not disabled else 0
        record_action(
            actor=by,
            verb="handler.disable" if disabled else "handler.enable",
            target=shop or switch,
            before=before,
            after={"disabled": disabled, "job": job, "shop": shop.domain if shop else "all shops", "held_events": held},
            reason=reason,
            request=request,
        )
    return switch


def held_events(job: str, shop: Shop | None = None):
    """Events whose `job` was held while it was disabled (for `shop`, or any shop), oldest first:
    shown as held, or failed if another of their jobs failed meanwhile."""
    events = Event.objects.exclude(status__in=Event.IN_FLIGHT_STATUSES).filter(
        Exists(Job.objects.filter(event=OuterRef("pk"), name=job, status=Job.Status.HELD))
    )
    if shop is not None:
        events = events.filter(shop=shop)
    return events.order_by("id")


def held_filter(job: str, shop: Shop | None = None) -> str:
    """The replay filter that selects those held events."""
    return f"held_job={job}" + (f"&shop={shop.domain}" if shop is not None else "")


def switches_overview() -> list[dict]:
    """Every job type with where it is disabled and how many events are held for it."""
    from django.db.models import Count

    held = dict(Job.objects.filter(status=Job.Status.HELD).values_list("name").annotate(n=Count("id")).order_by())
    rows = {}
    for switch in HandlerSwitch.objects.select_related("shop").order_by("job", "shop__domain"):
        rows.setdefault(switch.job, []).append(switch)
    return [
        {"job": name, "switches": rows.get(name, []), "held": held.get(name, 0), "type": JOB_TYPES[name]}
        for name in sorted(JOB_TYPES)
    ]
