"""The worksheet pages' forms: every input the pages take goes through one of these. They check
the shape of what was typed; the rules (who may do what, in which state, from which list) are the
services', which say in words why they refuse."""

from django import forms

from incidents.models import Incident
from incidents.worksheets.models import Worksheet, WorksheetRow
from incidents.worksheets.resources import KINDS
from integrations.models import Shop
from integrations.replay.forms import FILTER_HELP

Row = WorksheetRow
MAX_UPLOAD_BYTES = 2 * 1024 * 1024  # an id is ~40 bytes: room for WORKSHEET_MAX_RECORDS many times over


def _shops():
    return Shop.objects.order_by("domain")


def _incidents():
    return Incident.objects.order_by("-opened_at", "-id")


class ListFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *Worksheet.State.choices])
    shop = forms.ModelChoiceField(required=False, queryset=_shops(), empty_label="Any shop", to_field_name="domain")
    incident = forms.ModelChoiceField(required=False, queryset=_incidents(), empty_label="Any incident")

    def filters(self) -> dict:
        """The applied filters (those that did not validate are left out, and shown as errors)."""
        if not self.is_bound:
            return {}
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value}


class NewWorksheetForm(forms.Form):
    """A worksheet from one controlled list: pasted ids, an uploaded CSV, the records of the events
    matching an event-log filter, or an incident's affected records. The fields offered are the
    chosen resource's (`resource` in the data, or in `initial`)."""

    shop = forms.ModelChoiceField(queryset=_shops(), to_field_name="domain", empty_label="Choose a shop")
    resource = forms.ChoiceField(choices=Worksheet.Resource.choices, initial=Worksheet.Resource.PRODUCTS)
    compared_fields = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Fields to compare",
        help_text="None ticked: every field of the resource.",
    )
    ids = forms.CharField(
        required=False,
        label="Pasted ids",
        widget=forms.Textarea(attrs={"rows": 6, "placeholder": "632910392\ngid://shopify/Product/632910393"}),
        help_text="Shopify numeric ids or gids, one per line or comma-separated "
        "(inventory levels: INVENTORY_ITEM_ID:LOCATION_ID).",
    )
    ids_file = forms.FileField(
        required=False, label="Or a CSV file of ids", help_text="The same ids, in a file (a header line is allowed)."
    )
    events_filter = forms.CharField(
        required=False,
        max_length=1000,
        label="Or the records of the events matching a filter",
        widget=forms.TextInput(attrs={"placeholder": "shop=north.myshopify.com&since=2026-12-01T03:00:00Z"}),
        help_text="The event log's filter language: " + "; ".join(f"{k}: {v}" for k, v in FILTER_HELP.items()),
    )
    incident = forms.ModelChoiceField(
        required=False,
        queryset=_incidents(),
        label="Or an incident's affected records",
        empty_label="No incident",
        help_text="The records of the events its replays covered.",
    )
    link_incident = forms.ModelChoiceField(
        required=False,
        queryset=_incidents(),
        label="Link it to an incident",
        empty_label="No incident",
        help_text="Optional: the incident this repair belongs to (its list of worksheets shows it).",
    )
    title = forms.CharField(required=False, max_length=200)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["compared_fields"].choices = [(name, name) for name in KINDS[self.resource_name()].field_names]

    def resource_name(self) -> str:
        """The resource the field choices follow: the one sent, else the initial one."""
        value = (self.data.get(self.add_prefix("resource")) if self.is_bound else None) or self.initial.get("resource")
        return value if value in KINDS else Worksheet.Resource.PRODUCTS

    def clean_ids_file(self):
        upload = self.cleaned_data.get("ids_file")
        if upload is None:
            return ""
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(f"The file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB: split it.")
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise forms.ValidationError("The file is not UTF-8 text: save it as CSV (UTF-8).") from error

    def clean(self) -> dict:
        cleaned = super().clean()
        given = [
            label
            for name, label in (
                ("ids", "pasted ids"),
                ("ids_file", "a file"),
                ("events_filter", "an event filter"),
                ("incident", "an incident"),
            )
            if cleaned.get(name)
        ]
        if not given and not self.errors:
            raise forms.ValidationError(
                "Give the list of records: paste ids, upload a CSV, give an event filter or pick an incident."
            )
        if len(given) > 1:
            raise forms.ValidationError(f"Build it from one list only (you gave {' and '.join(given)}).")
        return cleaned

    def service_kwargs(self) -> dict:
        """The arguments `services.create_worksheet` takes (with `by`)."""
        data = self.cleaned_data
        ids_text = data.get("ids") or data.get("ids_file") or None
        return {
            "shop": data["shop"],
            "resource": data["resource"],
            "fields": data.get("compared_fields") or None,
            "ids_text": ids_text,
            "events_filter": data.get("events_filter") or None,
            "incident": data.get("incident"),
            "link_incident": data.get("link_incident"),
            "title": data.get("title") or "",
        }


class DecisionForm(forms.Form):
    """A reviewer's decision on one row. An override names the side to write, one value at least
    (one `value_<field>` input per compared field; an empty one is not overridden) and a note."""

    decision = forms.ChoiceField(choices=Row.Decision.choices)
    override_side = forms.ChoiceField(
        required=False,
        label="Write",
        choices=[
            ("", "—"),
            (Row.Proposal.WRITE_SHOPIFY, "Shopify"),
            (Row.Proposal.WRITE_PLATFORM, "The platform"),
        ],
    )
    note = forms.CharField(required=False, max_length=2000, widget=forms.TextInput)

    def __init__(self, *args, worksheet: Worksheet, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.field_names = list(worksheet.fields)
        for name in self.field_names:
            self.fields[f"value_{name}"] = forms.CharField(required=False, max_length=2000, label=name)

    def override_values(self) -> dict:
        return {
            name: self.cleaned_data[f"value_{name}"]
            for name in self.field_names
            if self.cleaned_data.get(f"value_{name}", "") != ""
        }


class ApproveForm(forms.Form):
    """Approve exactly the plan shown: `plan_hash` is the one the page displayed."""

    plan_hash = forms.CharField(max_length=64, widget=forms.HiddenInput)
    comment = forms.CharField(required=False, max_length=2000, widget=forms.TextInput)


class RejectForm(forms.Form):
    comment = forms.CharField(max_length=2000, widget=forms.TextInput)


class RowFilterForm(forms.Form):
    """Which rows the detail page lists, and which page of them."""

    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *Row.Kind.choices])
    proposal = forms.ChoiceField(required=False, choices=[("", "Any proposal"), *Row.Proposal.choices])
    result = forms.ChoiceField(
        required=False, choices=[("", "Any result"), *[(v, label) for v, label in Row.Result.choices if v]]
    )
    page = forms.IntegerField(required=False, min_value=1, max_value=10**6)

    def value(self, name: str):
        if not self.is_bound:
            return None
        self.is_valid()
        return self.cleaned_data.get(name) or None
