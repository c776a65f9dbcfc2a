"""The event log's filter form and the vocabulary it offers (directions, kinds, topics)."""

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError
from django.forms.utils import pretty_name

from integrations.models import Event, Shop

INBOUND = "inbound"
OUTBOUND = "outbound"
REJECTED = "rejected"
# Row kinds, each with its own template: "_<kind>_row.html".
KIND_EVENTS = "events"
KIND_REJECTED = "rejected"
KIND_OUTBOUND = "outbound"

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


def topic_suggestions() -> list[tuple[str, str]]:
    """(value, label) for the topic box: each resource as a prefix ("orders" matches every
    orders/... topic), then every topic the console knows (the job registry's and Shopify's common ones)."""
    from integrations.jobs.registry import TOPIC_JOBS

    topics = sorted(set(COMMON_TOPICS) | set(TOPIC_JOBS))
    resources = sorted({topic.split("/", 1)[0] for topic in topics})
    return [(r, f"every {r}/… topic") for r in resources] + [(t, t) for t in topics]


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
        choices=[("", "All directions"), (INBOUND, "Inbound"), (OUTBOUND, "Outbound (none recorded yet)")],
    )
    topic = forms.CharField(
        required=False,
        max_length=100,
        help_text="A topic or its beginning: orders matches every orders/… topic.",
        widget=forms.TextInput(attrs={"list": "topic-list", "placeholder": "any, or e.g. orders"}),
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Any status"), *Event.Status.choices, (REJECTED, "Rejected (never became an event)")],
    )
    received_from = forms.DateTimeField(required=False, label="Received from", widget=DateTimeLocalInput())
    received_to = forms.DateTimeField(required=False, label="Received before", widget=DateTimeLocalInput())

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
            self.add_error("received_to", "Must be later than “Received from”.")
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
    """Where the list stands: `cursor` is the last id of the previous page (older rows follow),
    `after` the newest id the live poll has shown. Whole numbers in ASCII digits, within bigint."""

    cursor = forms.IntegerField(required=False, min_value=1, max_value=MAX_ID)
    after = forms.IntegerField(required=False, min_value=0, max_value=MAX_ID)

    def _ascii(self, name: str) -> int | None:
        raw = self.data.get(name, "")
        if raw and not (raw.isascii() and raw.isdigit()):
            raise ValidationError("Must be a whole number written in the digits 0-9.")
        return self.cleaned_data[name]

    def clean_cursor(self) -> int | None:
        return self._ascii("cursor")

    def clean_after(self) -> int | None:
        return self._ascii("after")
