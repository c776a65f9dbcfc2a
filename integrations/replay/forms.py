"""The replay pages' forms: every input the pages take goes through one of these.

`filter_from_event_log` turns the event log's filters into a replay filter (the same query-string
language the command line takes), or says it cannot: the event log's search box and outbound calls
have no replay equivalent, and its topic box matches any beginning of a topic where the replay
filter takes a whole topic or a whole resource.
"""

from datetime import UTC
from urllib.parse import quote

from django import forms

from integrations.models import Event, ReplayItem, ReplayRequest
from integrations.replay.planner import KINDS, RUN, SKIP
from integrations.replay.selection import normalized

MODE_CHOICES = ReplayRequest.Mode.choices
MODE_WORDS = {
    ReplayRequest.Mode.STORED: (
        "Each job runs on the payload Shopify sent us, as we stored it. Nothing is read from Shopify first."
    ),
    ReplayRequest.Mode.REFETCH: (
        "Before its jobs run, each event's record (order, product, customer...) is read again from Shopify's "
        "Admin API, and the jobs run on the record as Shopify has it now. An event whose record is gone is skipped."
    ),
}
FILTER_HELP = {
    "shop": "a shop's domain, e.g. north.myshopify.com",
    "topic": "a topic (orders/paid) or its resource (orders: every orders/… topic)",
    "status": f"an event status: {', '.join(Event.Status.values)}",
    "since": "received at or after this time (ISO 8601, e.g. 2026-12-01T03:00:00Z)",
    "until": "received before this time (ISO 8601)",
    "job": "events that have this job (e.g. the held jobs of a handler enabled again)",
}


class ModeField(forms.ChoiceField):
    widget = forms.RadioSelect

    def __init__(self, **kwargs) -> None:
        super().__init__(choices=MODE_CHOICES, initial=ReplayRequest.Mode.STORED, label="Mode", **kwargs)


class EventIdsField(forms.Field):
    """Event ids from repeated `event_ids` inputs (checkboxes), whole numbers in ASCII digits."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value) -> list[int]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        ids = []
        for raw in value:
            raw = str(raw).strip()
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
                raise forms.ValidationError(f"{raw[:30]!r} is not an event id.")
            ids.append(int(raw))
        return ids


class NewReplayForm(forms.Form):
    """What to dry-run: events picked in the event log (`event_ids`), or a filter; and the mode.
    `scope` is the button pressed on the event log ("selected" or "filter"), which decides when
    both are sent; `next` is the page to go back to with the message if nothing can be planned."""

    SCOPES = [("", "As given"), ("selected", "The selected events"), ("filter", "Every event matching the filter")]

    event_ids = EventIdsField(required=False)
    filter = forms.CharField(required=False, max_length=1000, strip=True)
    mode = ModeField()
    scope = forms.ChoiceField(required=False, choices=SCOPES)
    next = forms.CharField(required=False, max_length=1000)

    def clean(self) -> dict:
        cleaned = super().clean()
        scope, ids, text = cleaned.get("scope"), cleaned.get("event_ids") or [], cleaned.get("filter", "")
        if scope == "selected":
            text = ""
        elif scope == "filter" or text:
            ids = []
        if scope == "selected" and not ids:
            raise forms.ValidationError("Nothing selected: tick the events to replay first.")
        if scope == "filter" and not text:
            raise forms.ValidationError("These filters cannot be turned into a replay filter.")
        if not ids and not text:
            raise forms.ValidationError("Select at least one event, or give a filter.")
        cleaned["event_ids"], cleaned["filter"] = ids, text
        return cleaned


class DryRunFilterForm(forms.Form):
    """The list page's "dry-run a replay by filter" form (posts to NewReplayForm)."""

    filter = forms.CharField(
        max_length=1000,
        label="Filter",
        widget=forms.TextInput(attrs={"placeholder": "status=failed&topic=orders/paid&shop=north.myshopify.com"}),
    )
    mode = ModeField()


class RunForm(forms.Form):
    """Run the plan shown: the reason is required; `plan_hash` is the plan the person saw."""

    reason = forms.CharField(
        max_length=2000,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "Why (kept on the replay and in the audit trail)"}),
    )
    plan_hash = forms.CharField(max_length=64, widget=forms.HiddenInput)


class ApproveForm(forms.Form):
    plan_hash = forms.CharField(max_length=64, widget=forms.HiddenInput)


class CancelForm(forms.Form):
    reason = forms.CharField(
        max_length=2000, strip=True, widget=forms.TextInput(attrs={"placeholder": "Why (kept in the audit trail)"})
    )


class ListFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *ReplayRequest.Status.choices])


class PlanFilterForm(forms.Form):
    """Which plan entries (and items) the detail page lists, and which page of them."""

    decision = forms.ChoiceField(
        required=False, label="Decision", choices=[("", "Run and skip"), (RUN, "Run"), (SKIP, "Skip")]
    )
    kind = forms.ChoiceField(required=False, label="Decided by", choices=[("", "Any check"), *KINDS.items()])
    page = forms.IntegerField(required=False, min_value=1, max_value=10**6)
    item_status = forms.ChoiceField(required=False, choices=[("", "Any"), *ReplayItem.Status.choices])
    items_page = forms.IntegerField(required=False, min_value=1, max_value=10**6)

    def value(self, name: str):
        """The cleaned value, or the field's empty value when it did not validate (ignored)."""
        if not self.is_bound:
            return None
        self.is_valid()
        return self.cleaned_data.get(name) or None


def filter_from_event_log(form, log_kind: str) -> str:
    """The event log's applied filters (`EventFilterForm`) as a replay filter, or "" if they
    cannot be converted (then the page does not offer a replay of every matching event)."""
    from integrations.eventlog import filters as log_filters
    from integrations.jobs.registry import TOPIC_JOBS

    if log_kind not in (log_filters.KIND_EVENTS, log_filters.KIND_MIXED) or form.has_invalid_filters():
        return ""
    applied = form.filters()
    if applied.get("q") or applied.get("direction") not in (None, log_filters.INBOUND):
        return ""
    params = []
    if shop := applied.get("shop"):
        params.append(("shop", shop.domain))
    if topic := applied.get("topic"):
        # The log matches any beginning ("orders/pa"); a replay filter a whole topic or resource.
        topics = set(log_filters.COMMON_TOPICS) | set(TOPIC_JOBS)
        if topic not in topics | {name.split("/", 1)[0] for name in topics}:
            return ""
        params.append(("topic", topic))
    if status := applied.get("status"):
        if status not in Event.Status.values:
            return ""
        params.append(("status", status))
    for name, key in (("received_from", "since"), ("received_to", "until")):
        if value := applied.get(name):
            params.append((key, value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")))
    return normalized("&".join(f"{key}={quote(value, safe='')}" for key, value in params))
