"""Webhook subscriptions: the topics every shop must be subscribed to, the check that compares
them with what Shopify lists, the gaps a missing subscription leaves, and the one-click
re-subscribe.

`EXPECTED_TOPICS` is declared here, in code: every topic the job registry handles
(`integrations.jobs.registry.TOPIC_JOBS`) except the mandatory privacy topics, which Shopify sends
to the app's configured compliance URL without a subscription. Handling a new topic (a line in
TOPIC_JOBS) makes it expected; every shop then shows it missing until it is subscribed.

Shopify deletes an API-created subscription whose deliveries keep failing (8 retries over 4 hours).
Every webhook of that topic from then on, and the failed ones before, never reach the console. A
check that finds an expected topic missing opens a `SubscriptionGap` from the last webhook of that
topic we received (`gap_from`); `gap_window` is the period a reconciliation must cover. The gap
closes when a check finds the topic subscribed again (after `resubscribe`, or someone else fixed it).
"""

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from console.audit import acting_user, record_action
from integrations.jobs.registry import TOPIC_JOBS
from integrations.models import Event, HealthCheck, OutboundCall, Shop, SubscriptionGap
from integrations.outbound.classify import Verdict
from integrations.outbound.client import AdminClient, graphql_nodes
from integrations.outbound.queue import enqueue, held_by_holds
from integrations.outbound.sender import Sender
from integrations.outbound.throttle import throttle

# Shopify sends these to the compliance URL in the app's configuration, never through a subscription.
PRIVACY_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
# The topics every shop must be subscribed to: what the console handles, less the privacy topics.
EXPECTED_TOPICS: tuple[str, ...] = tuple(topic for topic in TOPIC_JOBS if topic not in PRIVACY_TOPICS)
# Topics whose action has an underscore, which the enum form cannot tell from the resource's.
_OTHER_KNOWN_TOPICS = ("app/scopes_update", "orders/partially_fulfilled", "fulfillments/create")
SUBSCRIBE_OPERATION = "webhook.subscribe"
LIST_DOCUMENT = (
    "query WebhookSubscriptions($after: String) { webhookSubscriptions(first: 100, after: $after) {"
    " nodes { id topic uri createdAt } pageInfo { hasNextPage endCursor } } }"
)
Status = OutboundCall.Status


class SubscriptionError(ValueError):
    """A re-subscribe the console refuses, with a message for the person who asked."""


def topic_enum(topic: str) -> str:
    """Shopify's `WebhookSubscriptionTopic` value of a topic: `orders/create` -> `ORDERS_CREATE`."""
    return topic.replace("/", "_").replace(".", "_").upper()


_TOPICS_BY_ENUM = {topic_enum(topic): topic for topic in (*TOPIC_JOBS, *_OTHER_KNOWN_TOPICS)}


def topic_name(value: str) -> str:
    """The topic of a `WebhookSubscriptionTopic` value: `ORDERS_CREATE` -> `orders/create`. Topics
    the console knows map exactly; any other is read as RESOURCE_ACTION with a one-word action."""
    known = _TOPICS_BY_ENUM.get(value)
    if known:
        return known
    resource, _, action = value.lower().rpartition("_")
    return f"{resource}/{action}" if resource else value.lower()


# --- reading Shopify -----------------------------------------------------------------------------


def list_subscriptions(shop: Shop) -> tuple[list[dict], str]:
    """The shop's webhook subscriptions as Shopify lists them (a read, not an OutboundCall):
    ([{"id", "topic" (as `orders/create`), "uri", "created_at"}], "") or ([], why it failed)."""
    pages = graphql_nodes(AdminClient(shop), LIST_DOCUMENT, "webhookSubscriptions")
    if not pages.complete:
        problem = pages.reply.failure() or f"more than {pages.pages} pages of subscriptions, or no list in the answer"
        return [], problem
    return [
        {
            "id": str(node.get("id") or ""),
            "topic": topic_name(str(node.get("topic") or "")),
            "uri": str(node.get("uri") or ""),
            "created_at": node.get("createdAt"),
        }
        for node in pages.nodes
    ], ""


# --- gaps ------------------------------------------------------------------------------------------


def last_event_at(shop: Shop, topic: str) -> datetime | None:
    """When the newest webhook of `topic` from this shop arrived (None: never).

    Not fully index-served: there is no (shop, topic) index on Event, so the database walks
    int_event_shop_idx (shop, -id) newest first until a row of the topic (or int_event_topic_idx
    until a row of the shop): quick for a frequent topic, a walk of the shop's whole log for a
    topic it never sent. Runs only when a gap opens."""
    return Event.objects.filter(shop=shop, topic=topic).order_by("-id").values_list("received_at", flat=True).first()


def gap_window(gap: SubscriptionGap, now: datetime | None = None) -> tuple[datetime, datetime]:
    """(start, end) of what a reconciliation must cover for this gap: from the last webhook of the
    topic we received (or, when none ever came, since the shop was registered in the console)
    until the check that found the subscription back, or now while the gap is open."""
    start = gap.gap_from or gap.shop.created_at
    return start, gap.closed_at or now or timezone.now()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def gap_json(gap: SubscriptionGap, *, state: str, now: datetime | None = None) -> dict:
    """A gap as the check reports it; `state` is "opened" (by this check), "open" or "closed"."""
    start, end = gap_window(gap, now)
    return {
        "id": gap.pk,
        "topic": gap.topic,
        "state": state,
        "detected_at": _iso(gap.detected_at),
        "gap_from": _iso(gap.gap_from),
        "window_start": _iso(start),
        "window_end": _iso(end),
        "resubscribed_at": _iso(gap.resubscribed_at),
        "resubscribed_by": gap.resubscribed_by.get_username() if gap.resubscribed_by_id else None,
        "closed_at": _iso(gap.closed_at),
    }


def open_gap(shop: Shop, topic: str) -> SubscriptionGap | None:
    return SubscriptionGap.objects.filter(shop=shop, topic=topic, closed_at__isnull=True).first()


# --- the check -------------------------------------------------------------------------------------


def check_subscriptions(shop: Shop, *, triggered_by: str) -> dict:
    """List the shop's subscriptions through the Admin API, compare their topics with
    EXPECTED_TOPICS, open a gap for each newly missing topic, close the gaps of topics found again,
    and keep the outcome as a HealthCheck (kind "subscriptions", `details` = the returned dict).

    Returns {"expected", "actual", "missing", "extra": [topic, ...], "ok": bool, "gaps": [gap_json
    of every open gap and of those this check closed], "subscriptions": [{"id", "topic", "uri",
    "created_at"}], "error": "" or why Shopify could not be read}. Extra topics (subscribed, not
    expected) are listed but are no problem. When Shopify cannot be read, gaps are left as they
    are and `ok` is False."""
    listed, error = list_subscriptions(shop)
    now = timezone.now()
    expected = list(EXPECTED_TOPICS)
    actual = sorted({s["topic"] for s in listed})
    missing = [] if error else [topic for topic in expected if topic not in actual]
    extra = [topic for topic in actual if topic not in EXPECTED_TOPICS]
    gaps: list[dict] = []
    with transaction.atomic():
        current = list(SubscriptionGap.objects.filter(shop=shop, closed_at__isnull=True).select_related("shop"))
        for gap in current:
            if error or gap.topic in missing:
                gaps.append(gap_json(gap, state="open", now=now))
                continue
            gap.closed_at = now
            SubscriptionGap.objects.filter(pk=gap.pk, closed_at__isnull=True).update(closed_at=now)
            gaps.append(gap_json(gap, state="closed", now=now))
        already = {gap.topic for gap in current}
        for topic in missing:
            if topic in already:
                continue
            gap = SubscriptionGap(shop=shop, topic=topic, detected_at=now, gap_from=last_event_at(shop, topic))
            try:
                with transaction.atomic():
                    gap.save()
            except IntegrityError:  # another check opened it a moment ago
                gap = open_gap(shop, topic)
                if gap is not None:
                    gaps.append(gap_json(gap, state="open", now=now))
                continue
            gaps.append(gap_json(gap, state="opened", now=now))
        gaps.sort(key=lambda g: (g["topic"], g["id"]))
        result = {
            "expected": expected,
            "actual": actual,
            "missing": missing,
            "extra": extra,
            "ok": not error and not missing,
            "gaps": gaps,
            "subscriptions": listed,
            "error": error,
        }
        HealthCheck.objects.create(
            shop=shop,
            kind=HealthCheck.Kind.SUBSCRIPTIONS,
            checked_at=now,
            ok=result["ok"],
            problems=_problems(result),
            details=result,
            triggered_by=triggered_by[:100],
        )
    return result


def _problems(result: dict) -> list[str]:
    if result["error"]:
        return [f"Could not list the webhook subscriptions: {result['error']}"]
    windows = {g["topic"]: g for g in result["gaps"] if g["state"] != "closed"}
    problems = []
    for topic in result["missing"]:
        since = windows.get(topic, {}).get("window_start") or "the shop was registered"
        problems.append(
            f"Not subscribed to {topic}: its webhooks since {since} never reached the console. Re-subscribe, then "
            "reconcile the records of this topic changed in that window."
        )
    return problems


# --- re-subscribing ------------------------------------------------------------------------------


@dataclass
class Resubscribed:
    """What a re-subscribe did; `str()` says it in a sentence for the page."""

    topic: str
    call_id: int
    status: str  # the OutboundCall's: succeeded, failed, queued, waiting, paused, running
    created: bool  # False: the call for this gap already existed (a second click) and was not sent again
    gap_id: int | None
    subscription_id: str  # Shopify's gid of the new subscription, once succeeded
    message: str

    def __str__(self) -> str:
        return self.message


def resubscribe(shop: Shop, topic: str, *, by, reason: str, request=None) -> Resubscribed:
    """Create the topic's subscription again through the Admin API, to CONSOLE_WEBHOOK_URL: a
    `webhook.subscribe` OutboundCall (origin person, live lane; key per topic and open gap, so a
    second click finds the first call), audited as `shop.resubscribe`, then sent at once in this
    process when it is due (else a worker's sender sends it). On success the open gap is marked
    re-subscribed; the next check finds the topic and closes it. Raises SubscriptionError."""
    if topic not in EXPECTED_TOPICS:
        raise SubscriptionError(f"{topic!r} is not a topic this console subscribes to.")
    if not reason.strip():
        raise SubscriptionError("Say why (kept in the audit trail).")
    address = (settings.CONSOLE_WEBHOOK_URL or "").strip()
    if not address:
        raise SubscriptionError("CONSOLE_WEBHOOK_URL is not set: the console does not know its own webhook address.")
    if Shop.objects.filter(pk=shop.pk, state=Shop.State.UNINSTALLED).exists():
        raise SubscriptionError("The app is uninstalled from this shop: reinstall it first.")
    gap = open_gap(shop, topic)
    key = f"{SUBSCRIBE_OPERATION}:{topic}:gap-{gap.pk}" if gap else f"{SUBSCRIBE_OPERATION}:{topic}:{uuid.uuid4().hex}"
    variables = {"topic": topic_enum(topic), "webhookSubscription": {"uri": address, "format": "JSON"}}
    with transaction.atomic():
        call, created = enqueue(
            shop,
            SUBSCRIBE_OPERATION,
            variables,
            origin=OutboundCall.Origin.PERSON,
            lane=OutboundCall.Lane.LIVE,
            key=key,
            why=reason,
            label=topic,
            by=by,
        )
        if created:
            record_action(
                actor=by,
                verb="shop.resubscribe",
                target=shop,
                after={
                    "topic": topic,
                    "address": address,
                    "call": call.pk,
                    "gap": gap.pk if gap else None,
                    "gap_from": _iso(gap.gap_from) if gap else None,
                },
                reason=reason,
                request=request,
            )
    if call.status in (Status.QUEUED, Status.WAITING):
        send_now(call)
    call.refresh_from_db()
    result = call.result if isinstance(call.result, dict) else {}
    if call.status == Status.SUCCEEDED and gap is not None and gap.resubscribed_at is None:
        SubscriptionGap.objects.filter(pk=gap.pk, resubscribed_at__isnull=True).update(
            resubscribed_at=call.finished_at or timezone.now(),
            resubscribed_by=acting_user(by),
        )
    return Resubscribed(
        topic=topic,
        call_id=call.pk,
        status=call.status,
        created=created,
        gap_id=gap.pk if gap else None,
        subscription_id=str(result.get("id") or ""),
        message=_outcome_message(call, created, gap),
    )


def _outcome_message(call: OutboundCall, created: bool, gap: SubscriptionGap | None) -> str:
    if call.status == Status.SUCCEEDED:
        window = ""
        if gap is not None:
            start, _ = gap_window(gap)
            window = f" Reconcile its records changed since {start:%Y-%m-%d %H:%M} UTC;"
        again = "" if created else " (already done by an earlier click)"
        return f"re-subscribed{again}: call {call.pk} succeeded.{window} the next check closes the gap."
    if call.status == Status.FAILED:
        return f"call {call.pk} failed: {call.reason} {call.next_step}".strip()
    if call.status == Status.PAUSED:
        return f"call {call.pk} is held, not sent ({call.reason}); it is sent once the shop's queue is resumed."
    return f"call {call.pk} is {call.get_status_display().lower()}: {call.reason or 'a sender sends it shortly'}."


def send_now(call: OutboundCall, *, tag: str = "web") -> Verdict | None:
    """Send one call in this process now, as a sender would (claimed, throttled, recorded), instead
    of waiting for a worker's sender. None when it is not due: held (paused shop, open hold),
    waiting for a retry, behind an earlier call for its record, no room in the shop's bucket, or
    another sender took it; a worker's sender sends it in its turn."""
    due = OutboundCall.objects.filter(pk=call.pk, status__in=[Status.QUEUED, Status.WAITING]).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())
    )
    held = held_by_holds()
    if held is not None:
        due = due.exclude(held)
    call = due.select_related("shop").first()
    if call is None:
        return None
    if (
        call.target_gid
        and OutboundCall.objects.filter(
            shop_id=call.shop_id, target_gid=call.target_gid, id__lt=call.pk, status__in=OutboundCall.ACTIVE
        ).exists()
    ):
        return None
    sender = Sender(tag=tag)
    if throttle().bucket(call.shop_id).wait_for(call.expected_cost, bulk=False) > 0:
        return None
    if not sender._claim(call):
        return None
    if throttle().reserve(call.shop_id, call.expected_cost, bulk=False) > 0:
        sender._unclaim(call)
        return None
    return sender.send(call)


__all__ = [
    "EXPECTED_TOPICS",
    "PRIVACY_TOPICS",
    "Resubscribed",
    "SubscriptionError",
    "check_subscriptions",
    "gap_window",
    "last_event_at",
    "list_subscriptions",
    "resubscribe",
    "send_now",
    "topic_enum",
    "topic_name",
]
