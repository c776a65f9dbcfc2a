"""Echoes: a webhook Shopify sends because of our own write (we tag an order, `orders/updated`
comes back). The pump links such an event to the call that caused it (`Event.echo_of`), and jobs
that push to Shopify skip echoes, so a sync loop cannot start.

A webhook is an echo when it is about a record one of our calls changed and carries exactly the
`updated_at` Shopify gave the record when our call applied: it reports our write, nothing newer.
Shopify's times have whole seconds, so another change in the same second carries the same time:
a call has at most one echo (the first such webhook received after its first try started), so
the other change is still seen as someone else's.
"""

from collections import defaultdict

from django.db.models import Exists, OuterRef

from integrations.models import Event, OutboundCall
from integrations.outbound.operations import OPERATIONS

ECHO_TOPICS = frozenset(operation.echo_topic for operation in OPERATIONS.values())


def find_echo_source(event: Event) -> int | None:
    """The id of the call this event reports back, or None."""
    if event.topic not in ECHO_TOPICS or not event.resource_gid or event.resource_updated_at is None:
        return None
    return (
        OutboundCall.objects.filter(
            shop_id=event.shop_id,
            target_gid=event.resource_gid,
            status=OutboundCall.Status.SUCCEEDED,
            result_updated_at=event.resource_updated_at,
            first_sent_at__lte=event.received_at,
        )
        .exclude(Exists(Event.objects.filter(echo_of=OuterRef("pk")).exclude(pk=event.pk)))
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )


def assign_echo_sources(batch: list[tuple[Event, object]], describe) -> None:
    """Find the echo source of every event of a pump's batch with one query (instead of one per
    event): `batch` holds (event, parsed payload or the parse error), `describe(topic, payload)`
    gives the payload's Resource. Sets `echo_of_id` and marks each event checked."""
    wanted: dict[tuple[int, str], list[Event]] = defaultdict(list)
    for event, payload in batch:
        event.echo_checked = True
        event.echo_of_id = None
        if event.topic not in ECHO_TOPICS or not isinstance(payload, dict):
            continue
        try:
            resource = describe(event.topic, payload)
        except Exception:  # noqa: BLE001, S112 - the pump reports an unreadable payload itself
            continue
        if resource.gid and resource.updated_at is not None:
            event.echo_probe = (resource.gid, resource.updated_at)
            wanted[(event.shop_id, resource.gid)].append(event)
    if not wanted:
        return
    candidates = (
        OutboundCall.objects.filter(
            shop_id__in={shop_id for shop_id, _ in wanted},
            target_gid__in={gid for _, gid in wanted},
            status=OutboundCall.Status.SUCCEEDED,
            result_updated_at__isnull=False,
        )
        .order_by("-id")
        .values_list("id", "shop_id", "target_gid", "result_updated_at", "first_sent_at")
    )
    for call_id, shop_id, gid, updated_at, sent_at in candidates:
        for event in wanted.get((shop_id, gid), ()):
            reports_our_write = event.echo_probe[1] == updated_at and sent_at and sent_at <= event.received_at
            if (
                event.echo_of_id is None
                and reports_our_write
                and not Event.objects.filter(echo_of_id=call_id).exclude(pk=event.pk).exists()
            ):
                event.echo_of_id = call_id


def link_early_echoes(call: OutboundCall, updated_at, *, sent_at) -> int:
    """A webhook can be processed before our call's success is written (the pump was quicker than
    the sender): link it now. It was processed as someone else's change, so the push jobs judged
    it on its content (our write already in it): they found nothing to push."""
    first = (
        Event.objects.filter(
            shop_id=call.shop_id,
            resource_gid=call.target_gid,
            resource_updated_at=updated_at,
            received_at__gte=sent_at,
            echo_of__isnull=True,
        )
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )
    if first is None or Event.objects.filter(echo_of=call).exists():
        return 0
    return Event.objects.filter(pk=first, echo_of__isnull=True).update(echo_of=call)
