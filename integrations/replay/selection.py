"""What a replay covers: one webhook, a list of events, or everything matching a filter.

A filter is a query string, the same on the page and the command line:
`shop=S&topic=T&status=failed&since=ISO&until=ISO` (every key optional but at least one), plus
`job=NAME` (events with that job) and `held_job=NAME` (events whose NAME job is held: what a
handler disabled meanwhile left behind). A selection is
resolved to event ids, oldest first, whenever a plan is computed, so an event that starts or
stops matching changes the plan (and voids an approval).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils.dateparse import parse_datetime

from integrations.jobs.registry import JOB_TYPES
from integrations.models import Delivery, Event, Job, Shop, webhook_id_match

FILTER_KEYS = ("shop", "topic", "status", "since", "until", "job", "held_job")
REPLAYABLE = (Event.Status.PROCESSED, Event.Status.FAILED, Event.Status.IGNORED, Event.Status.HELD)


class SelectionError(ValueError):
    """A selection that names nothing replayable, or cannot be read, with a message saying why."""


@dataclass(frozen=True)
class Selection:
    kind: str  # ReplayRequest.Kind
    event_ids: tuple[int, ...] = ()
    filter: str = ""

    def as_json(self) -> dict:
        return {"filter": self.filter} if self.filter else {"event_ids": list(self.event_ids)}

    @classmethod
    def from_json(cls, kind: str, data: dict) -> "Selection":
        if data.get("filter"):
            return cls(kind, filter=data["filter"])
        return cls(kind, event_ids=tuple(int(pk) for pk in data.get("event_ids") or ()))

    def describe(self) -> str:
        if self.filter:
            return f"events matching {self.filter}"
        if len(self.event_ids) == 1:
            return f"event {self.event_ids[0]}"
        return f"{len(self.event_ids)} selected events"


def max_events() -> int:
    return settings.REPLAY_MAX_EVENTS


def for_webhook(webhook_id: str, shop_domain: str | None = None) -> Selection:
    """The event a webhook id names. A delivery that was rejected (never verified) is never
    replayable: nothing proves Shopify sent it."""
    events = Event.objects.filter(webhook_id_match(webhook_id))
    if shop_domain:
        events = events.filter(shop__domain=shop_domain)
    found = list(events.values_list("id", "shop__domain"))
    if len(found) > 1:
        shops = ", ".join(sorted(domain for _pk, domain in found))
        raise SelectionError(f"webhook {webhook_id} was received for several shops ({shops}): name one with --shop")
    if found:
        return Selection("one", event_ids=(found[0][0],))
    rejected = (
        Delivery.objects.filter(webhook_id=webhook_id[:100], event__isnull=True)
        .order_by("-id")
        .values("reason")
        .first()
    )
    if rejected is not None:
        raise SelectionError(
            f"webhook {webhook_id} was rejected ({rejected['reason'] or 'not verified'}) and never became an event: "
            "a delivery that was never verified is never replayable"
        )
    raise SelectionError(f"no webhook with id {webhook_id!r} was ever received")


def for_events(event_ids) -> Selection:
    ids = sorted({int(pk) for pk in event_ids})
    if not ids:
        raise SelectionError("select at least one event")
    if len(ids) > max_events():
        raise SelectionError(f"{len(ids)} events selected: a replay covers at most {max_events()}; split it")
    kind = "one" if len(ids) == 1 else "selection"
    return Selection(kind, event_ids=tuple(ids))


def for_filter(text: str) -> Selection:
    parse_filter(text)  # refuse what cannot be read now, not at run time
    return Selection("filter", filter=normalized(text))


def _pairs(text: str) -> list[tuple[str, str]]:
    """key=value pairs split on "&". Unlike a form's query string, "+" stays a plus: people type
    times like 2026-12-01T03:00:00+01:00 here."""
    pairs = []
    for part in text.strip().lstrip("?").split("&"):
        if part.strip():
            key, _, value = part.partition("=")
            pairs.append((unquote(key.strip()), unquote(value).strip()))
    return pairs


def normalized(text: str) -> str:
    pairs = sorted((key, value) for key, value in _pairs(text) if value)
    return "&".join(f"{key}={quote(value, safe=':/+@,.-_ ')}" for key, value in pairs)


def _time(key: str, value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise SelectionError(f"{key}={value!r} is not a date and time (use ISO 8601, e.g. 2026-12-01T03:00:00Z)")
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def parse_filter(text: str) -> Q:
    """The filter as a Q on Event, or SelectionError saying what is wrong with it."""
    pairs = _pairs(text)
    if not pairs:
        raise SelectionError(f"the filter is empty: give at least one of {', '.join(FILTER_KEYS)}")
    query = Q()
    seen = set()
    for key, value in pairs:
        value = value.strip()
        if key not in FILTER_KEYS:
            raise SelectionError(f"unknown filter key {key!r}: use {', '.join(FILTER_KEYS)}")
        if key in seen:
            raise SelectionError(f"{key} is given twice")
        seen.add(key)
        if not value:
            raise SelectionError(f"{key} is empty")
        if key == "shop":
            shop = Shop.objects.filter(Q(domain=value) | Q(pk=int(value) if value.isdigit() else None)).first()
            if shop is None:
                raise SelectionError(f"no shop {value!r}")
            query &= Q(shop=shop)
        elif key == "topic":
            query &= Q(topic=value) if "/" in value else Q(topic__startswith=f"{value}/")
        elif key == "status":
            if value not in Event.Status.values:
                raise SelectionError(f"status {value!r} is not one of {', '.join(Event.Status.values)}")
            query &= Q(status=value)
        elif key == "since":
            query &= Q(received_at__gte=_time(key, value))
        elif key == "until":
            query &= Q(received_at__lt=_time(key, value))
        elif key in ("job", "held_job"):
            if value not in JOB_TYPES:
                raise SelectionError(f"no job named {value!r}")
            jobs = Job.objects.filter(event=OuterRef("pk"), name=value)
            query &= Q(Exists(jobs.filter(status=Job.Status.HELD) if key == "held_job" else jobs))
    return query


def resolve(selection: Selection) -> list[int]:
    """The selection's event ids, oldest first. Raises SelectionError if it is over the limit."""
    if selection.filter:
        ids = list(
            Event.objects.filter(parse_filter(selection.filter))
            .order_by("id")
            .values_list("id", flat=True)[: max_events() + 1]
        )
        if len(ids) > max_events():
            raise SelectionError(
                f"the filter matches more than {max_events()} events: narrow it (a shorter time window, one shop)"
            )
        return ids
    return sorted(Event.objects.filter(pk__in=selection.event_ids).values_list("id", flat=True))
