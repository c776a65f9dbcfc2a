"""The event log's filter form and the vocabulary it offers (directions, kinds, topics, operations).

One form filters both directions. Inbound rows are webhooks (events, or rejected requests); outbound
rows are the calls we make to Shopify (OutboundCall). "All directions" lists both, interleaved by
time. The same boxes map onto calls: the topic box takes an operation (or its beginning), the time
range is when the call was made, and the status list offers each direction's statuses ("queued"
and "failed" mean the same in both).

A filter only one direction has picks that direction when none was chosen: a status only calls
have, or an operation in the topic box ("order.add_tags", "order."), means outbound calls; a
status only webhooks have, "rejected", or a topic ("orders/paid", "orders") means inbound rows
(`implied_kind`).
"""

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError
from django.forms.utils import pretty_name

from integrations.models import Event, OutboundCall, Shop

INBOUND = "inbound"
OUTBOUND = "outbound"
REJECTED = "rejected"
# Row kinds, each with its own template: "_<kind>_row.html".
KIND_EVENTS = "events"
KIND_REJECTED = "rejected"
KIND_OUTBOUND = "outbound"
# Inbound events and outbound calls together, newest first by time (each row its kind's template).
KIND_MIXED = "mixed"

POLL_MAX_ROWS = 100
# The shortest webhook id prefix the search matches on (shorter text must be the whole id): long
# enough that a prefix names one webhook, not thousands.
MIN_WEBHOOK_PREFIX = 8
# Ids are bigint primary keys: anything larger must never reach the database (SQLite raises
# OverflowError on it, PostgreSQL "out of range").
MAX_ID = 2**63 - 1

# Suggestions for the topic box; any topic can be typed. A DISTINCT over the table would be slow.
COMMON_TOPICS = [
    "app/uninstalled",
    "customers/create",
    "customers/data_request",
    "customers/redact",
    "customers/update",
    "fulfillments/create",
    "inventory_levels/update",
    "orders/cancelled",
    "orders/create",
    "orders/fulfilled",
    "orders/paid",
    "orders/updated",
    "products/create",
    "products/delete",
    "products/update",
    "refunds/create",
    "shop/redact",
]

# ASCII digits only: "\d" and str.isdigit() also take "²" or "١٢٣", which int() refuses or reads
# as another number.
_NUMERIC = re.compile(r"^#?([0-9]{1,20})$")
# Datetimes outside these years overflow when converted between time zones (year 1 or 9999).
_YEARS = (1900, 9998)

INBOUND_STATUSES = [*Event.Status.choices, (REJECTED, "Rejected (never became an event)")]
# "Held (queue paused)", not the model's "Held: shop paused": each filter's label holds its
# options' words, and "shop" there would make the Status box answer to "Shop" too.
OUTBOUND_STATUSES = [
    (value, "Held (queue paused)" if value == OutboundCall.Status.PAUSED else label)
    for value, label in OutboundCall.Status.choices
]
# A status only one direction has says which direction is meant when none was chosen.
_INBOUND_ONLY = {value for value, _ in INBOUND_STATUSES} - {value for value, _ in OUTBOUND_STATUSES}
_OUTBOUND_ONLY = {value for value, _ in OUTBOUND_STATUSES} - {value for value, _ in INBOUND_STATUSES}


def names_operations(topic: str) -> bool:
    """Whether the topic box holds an operation (or its beginning) rather than a webhook topic:
    operations are "resource.action" ("order.add_tags", "order."), topics "resources/action"
    ("orders/paid"). A bare word ("order") is the beginning of a topic."""
    return "." in topic and "/" not in topic


def implied_kind(filters: dict[str, Any]) -> str | None:
    """The one kind of row the filters can match when no direction was chosen (None: both kinds).

    Shop, time range and search apply to both; a status both have ("queued", "failed") too.
    """
    status, topic = filters.get("status"), filters.get("topic", "")
    if status == REJECTED:
        return KIND_REJECTED
    if status in _OUTBOUND_ONLY or names_operations(topic):
        return KIND_OUTBOUND
    if status in _INBOUND_ONLY or topic:
        return KIND_EVENTS
    return None


def topic_suggestions(direction: str = "") -> list[tuple[str, str]]:
    """(value, label) for the topic box: each resource as a prefix ("orders" matches every
    orders/... topic), then every topic the console knows (the job registry's and Shopify's common ones).
    For outbound calls, the operations instead (by resource, then each one); for both directions,
    the topics and then the operations (a resource's operations as "order.", which a topic never is)."""
    from integrations.outbound.operations import OPERATIONS

    if direction == OUTBOUND:
        resources = sorted({name.split(".", 1)[0] for name in OPERATIONS})
        return [(r, f"every {r}.… operation") for r in resources] + [
            (name, op.describe) for name, op in sorted(OPERATIONS.items())
        ]
    from integrations.jobs.registry import TOPIC_JOBS

    topics = sorted(set(COMMON_TOPICS) | set(TOPIC_JOBS))
    resources = sorted({topic.split("/", 1)[0] for topic in topics})
    suggestions = [(r, f"every {r}/… topic") for r in resources] + [(t, t) for t in topics]
    if direction == INBOUND:
        return suggestions
    prefixes = sorted({name.split(".", 1)[0] + "." for name in OPERATIONS})
    return (
        suggestions
        + [(p, f"every {p}… call (outbound)") for p in prefixes]
        + [(name, f"{op.describe} (outbound call)") for name, op in sorted(OPERATIONS.items())]
    )


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class EventFilterForm(forms.Form):
    """The event log's filters. All optional; invalid values are reported and the rest still apply."""

    q = forms.CharField(
        required=False,
        max_length=255,
        label="Search",
        widget=forms.TextInput(
            attrs={"placeholder": "webhook id, event id, #1042, resource id or gid", "type": "search"}
        ),
    )
    shop = forms.ModelChoiceField(
        queryset=Shop.objects.order_by("domain"), required=False, empty_label="All shops", to_field_name="domain"
    )
    direction = forms.ChoiceField(
        required=False,
        choices=[("", "All directions"), (INBOUND, "Inbound (webhooks)"), (OUTBOUND, "Outbound (API calls we make)")],
    )
    topic = forms.CharField(
        required=False,
        max_length=100,
        help_text="A topic or its beginning: orders matches every orders/… topic.",
        widget=forms.TextInput(attrs={"list": "topic-list", "placeholder": "any, or e.g. orders"}),
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), ("Inbound webhooks", INBOUND_STATUSES), ("Outbound calls", OUTBOUND_STATUSES)],
    )
    received_from = forms.DateTimeField(required=False, label="Received from", widget=DateTimeLocalInput())
    received_to = forms.DateTimeField(required=False, label="Received before", widget=DateTimeLocalInput())

    def __init__(self, *args, with_calls: bool = True, **kwargs) -> None:
        """`with_calls`: whether "All directions" lists outbound calls too (the user may see them)."""
        super().__init__(*args, **kwargs)
        direction = self.data.get("direction", "") if self.is_bound else ""
        if with_calls and not direction:
            self.fields["topic"].label = "Topic or operation"
            self.fields["topic"].help_text = (
                "A topic or its beginning (orders matches every orders/… topic) lists webhooks; an operation "
                "or its beginning (order.add_tags, order.) lists our calls to Shopify."
            )
            self.fields["topic"].widget.attrs["placeholder"] = "any, or e.g. orders or order.add_tags"
            self.fields["q"].widget.attrs["placeholder"] = (
                "webhook id, event id, #1042, resource id or gid, call id, idempotency key"
            )
        if self.asks_for_outbound():
            # Offer what applies to calls; any status is still accepted and checked in clean().
            self.fields["status"].widget.choices = [("", "Any status"), *OUTBOUND_STATUSES]
            self.fields["topic"].label = "Operation"
            self.fields["topic"].help_text = "An operation or its beginning: order matches every order.… operation."
            self.fields["topic"].widget.attrs["placeholder"] = "any, or e.g. order.add_tags"
            self.fields["q"].widget.attrs["placeholder"] = (
                "#1042, gid, record id, call id, operation or idempotency key"
            )
            self.fields["received_from"].label = "Created from"
            self.fields["received_to"].label = "Created before"
        elif self.is_bound and self.data.get("direction") == INBOUND:
            self.fields["status"].widget.choices = [("", "Any status"), *INBOUND_STATUSES]

    def asks_for_outbound(self) -> bool:
        """Whether the (bound) filters are about outbound calls: chosen, or implied by a status only
        calls have or an operation in the topic box."""
        if not self.is_bound:
            return False
        direction = self.data.get("direction", "")
        if direction == OUTBOUND:
            return True
        topic = self.data.get("topic", "")
        implied = self.data.get("status") in _OUTBOUND_ONLY or (isinstance(topic, str) and names_operations(topic))
        return not direction and implied

    def clean_topic(self) -> str:
        return self.cleaned_data["topic"].strip()

    def clean_q(self) -> str:
        return self.cleaned_data["q"].strip()

    def clean_received_from(self) -> datetime | None:
        return _within_years(self.cleaned_data["received_from"])

    def clean_received_to(self) -> datetime | None:
        return _within_years(self.cleaned_data["received_to"])

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("received_from"), cleaned.get("received_to")
        if start and end and start >= end:
            self.add_error("received_to", f"Must be later than “{self.fields['received_from'].label}”.")
        status, direction, topic = cleaned.get("status"), cleaned.get("direction"), cleaned.get("topic", "")
        operation = bool(topic) and names_operations(topic)
        if operation and direction == INBOUND:
            self.add_error(
                "topic",
                "That is an operation of outbound calls (topics look like orders/paid): choose direction Outbound "
                "or All, or a topic.",
            )
            operation = False
        if not direction and (operation or status in _OUTBOUND_ONLY):
            # Only calls can match: say so in every link (the live poll, older pages, the export).
            direction = cleaned["direction"] = OUTBOUND
            implied = "the topic box holds an operation" if operation else ""
        else:
            implied = ""
        if status in _OUTBOUND_ONLY and direction == INBOUND:
            self.add_error(
                "status", "That is a status of outbound calls: choose direction Outbound, or another status."
            )
        elif status in _INBOUND_ONLY and direction == OUTBOUND:
            if implied:
                message = f"That is a status of inbound webhooks, and {implied}: choose another status or a topic."
            else:
                message = "That is a status of inbound webhooks: choose direction Inbound, or another status."
            self.add_error("status", message)
        return cleaned

    def error_summary(self) -> str:
        """The invalid fields in one sentence, for a 400 answer or a message."""
        parts = []
        for name, errors in self.errors.items():
            field = self.fields.get(name)
            label = (field.label or pretty_name(name)) if field else "Filters"
            parts.append(f"{label}: {' '.join(errors)}")
        return "; ".join(parts)

    def filters(self) -> dict[str, Any]:
        """Cleaned values of the fields that validated; an invalid field is simply not applied."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}

    def has_invalid_filters(self) -> bool:
        return self.is_bound and not self.is_valid()

    def query_string(self) -> str:
        """The applied filters as a query string: for links, the live poll and saved views."""
        params = {}
        for name, value in self.filters().items():
            if isinstance(value, Shop):
                value = value.domain
            elif isinstance(value, datetime):
                value = self.fields[name].widget.format_value(value)
            params[name] = value
        return urlencode(params)


def _within_years(value: datetime | None) -> datetime | None:
    if value is not None and not (_YEARS[0] <= value.year <= _YEARS[1]):
        raise ValidationError(f"Pick a date between the years {_YEARS[0]} and {_YEARS[1]}.")
    return value


class PositionForm(forms.Form):
    """Where the live poll stands: `after` is the newest id it has shown (of events, or of the one
    kind listed), `after_call` the newest call id in the list of both directions. Whole numbers in
    ASCII digits, within bigint. (The page cursor depends on the list, and each list checks its
    own: an id for one kind, `selectors.MixedCursor` for both directions.)"""

    after = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID)
    after_call = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID)

    def _ascii(self, name: str) -> int | None:
        raw = self.data.get(name, "")
        if raw and not (raw.isascii() and raw.isdigit()):
            raise ValidationError("Must be a whole number written in the digits 0-9.")
        return self.cleaned_data[name]

    def clean_after(self) -> int | None:
        return self._ascii("after")

    def clean_after_call(self) -> int | None:
        return self._ascii("after_call")
