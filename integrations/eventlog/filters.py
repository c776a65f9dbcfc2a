"""The event log's filter form and the vocabulary it offers (directions, kinds, topics)."""

import re
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django import forms

from integrations.models import Event, Shop

INBOUND = "inbound"
OUTBOUND = "outbound"
REJECTED = "rejected"
# Row kinds, each with its own template: "_<kind>_row.html".
KIND_EVENTS = "events"
KIND_REJECTED = "rejected"
KIND_OUTBOUND = "outbound"

POLL_MAX_ROWS = 100

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

_NUMERIC = re.compile(r"^#?(\d{1,20})$")


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
        required=False, max_length=100, widget=forms.TextInput(attrs={"list": "topic-list", "placeholder": "any"})
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

    def filters(self) -> dict[str, Any]:
        """Cleaned values of the fields that validated; an invalid field is simply not applied."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}

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
