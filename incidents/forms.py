"""The incident pages' forms: every input the pages take goes through one of these. They check the
shape of what was typed; the rules (which status may follow which, the override's reason, the
resolve gates, who may do what) are `incidents.services`', which say in words why they refuse."""

import re

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q

from incidents import rubric
from incidents.models import AffectedRecord, Audience, Direction, Incident, IncidentAction
from integrations.eventlog.filters import DateTimeLocalInput
from integrations.models import ReplayRequest

MAX_IDS = 10_000


def staff_users(also=None):
    """The people who can act on incidents (active, with the right to change them): the owner and
    lead choices. `also` (a user) stays choosable even if they no longer qualify."""
    rights = Q(codename="change_incident", content_type__app_label="incidents")
    from django.contrib.auth.models import Permission

    perm = Permission.objects.filter(rights).values("pk")
    people = Q(is_active=True) & (Q(is_superuser=True) | Q(groups__permissions__in=perm) | Q(user_permissions__in=perm))
    if also is not None:
        people |= Q(pk=also.pk)
    return get_user_model().objects.filter(people).distinct().order_by("username")


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj) -> str:
        name = obj.get_full_name()
        return f"{obj.get_username()} ({name})" if name else obj.get_username()


class IdsField(forms.CharField):
    """Whole-number ids, comma- or space-separated ("12, 13 14")."""

    def __init__(self, *, what: str = "id", **kwargs) -> None:
        self.what = what
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def to_python(self, value) -> list[int]:
        text = super().to_python(value)
        ids = []
        for raw in re.split(r"[\s,;]+", text or ""):
            if not raw:
                continue
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
                raise forms.ValidationError(
                    f"{raw[:30]!r} is not {'an' if self.what[0] in 'aeiou' else 'a'} {self.what}."
                )
            ids.append(int(raw))
        if len(ids) > MAX_IDS:
            raise forms.ValidationError(f"At most {MAX_IDS} {self.what}s at once.")
        return sorted(set(ids))

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ",".join(str(pk) for pk in value)
        return value


def _text(label: str, *, rows: int = 3, help_text: str = "", required: bool = False, **attrs) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=required,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": rows, **attrs}),
    )


class PrefixedIds(forms.Form):
    """Forms on the detail page each get their own element ids (several are on one page)."""

    id_prefix = ""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auto_id", f"{self.id_prefix}_%s" if self.id_prefix else "id_%s")
        super().__init__(*args, **kwargs)


# --- The rubric ---------------------------------------------------------------------------------


class RubricForm(PrefixedIds):
    """The business-impact questions (`incidents.rubric.Answers`) and an optional override."""

    orders = forms.ChoiceField(
        label="Are orders blocked or delayed?",
        choices=rubric.ORDER_CHOICES,
        widget=forms.RadioSelect,
        initial=rubric.ORDERS_FINE,
    )
    fulfilment_affected = forms.BooleanField(required=False, label="Fulfilment timing is affected")
    money_or_stock_wrong = forms.BooleanField(required=False, label="Money or stock is wrong")
    customer_visible = forms.BooleanField(required=False, label="Customers can see it")
    has_workaround = forms.BooleanField(required=False, label="There is a workaround")
    records = forms.IntegerField(label="Records affected", min_value=0, max_value=10_000_000, initial=0)
    shops = forms.IntegerField(label="Shops affected", min_value=0, max_value=100_000, initial=0)
    severity = forms.ChoiceField(
        label="Severity",
        required=False,
        choices=[("", "As the rubric gives it"), *Incident.Severity.choices],
        help_text="Choosing another severity than the rubric's needs a reason.",
    )
    severity_reason = forms.CharField(
        label="Why another severity",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    RUBRIC_FIELDS = (
        "orders", "fulfilment_affected", "money_or_stock_wrong", "customer_visible", "has_workaround", "records", "shops",
    )  # fmt: skip

    @staticmethod
    def initial_from(answers: rubric.Answers) -> dict:
        return {
            "orders": answers.orders,
            "fulfilment_affected": answers.fulfilment_affected,
            "money_or_stock_wrong": answers.money_or_stock_wrong,
            "customer_visible": answers.customer_visible,
            "has_workaround": answers.workaround,
            "records": answers.records,
            "shops": answers.shops,
        }

    def answers(self) -> dict:
        data = self.cleaned_data
        return {
            "orders": data["orders"],
            "fulfilment_affected": data["fulfilment_affected"],
            "money_or_stock_wrong": data["money_or_stock_wrong"],
            "customer_visible": data["customer_visible"],
            "workaround": data["has_workaround"],
            "records": data["records"] or 0,
            "shops": data["shops"] or 0,
        }

    def assessment(self) -> rubric.Assessment | None:
        """What the answers give, if they can be read (for the preview), whatever the other fields say."""
        self.is_valid()
        if any(name in self.errors for name in self.RUBRIC_FIELDS):
            return None
        return rubric.assess(rubric.Answers.from_dict(self.answers()))


class SeverityForm(RubricForm):
    id_prefix = "sev"


class NewIncidentForm(RubricForm):
    """Open an incident: its words, what customer service may read, the rubric, and the links
    (carried in hidden fields from the page that suggested it)."""

    title = forms.CharField(
        label="Title",
        max_length=200,
        help_text="Internal: engineering's name for it.",
        widget=forms.TextInput(attrs={"autofocus": True}),
    )
    summary = _text("Summary", rows=4, help_text="Internal: what is known so far.")
    direction = forms.ChoiceField(label="Direction", choices=Direction.choices)
    public_title = forms.CharField(
        label="Name for customer service",
        max_length=200,
        required=False,
        help_text="Plain language, no internal detail. Customer service sees this on the status board.",
    )
    customer_impact = _text("What merchants or shoppers may notice", rows=2)
    customer_advice = _text("What customer service should tell them", rows=2)
    workaround = _text("Workaround", rows=2, help_text="What customers or staff can do meanwhile, if anything.")
    event_ids = IdsField(what="event id", widget=forms.HiddenInput)
    events_filter = forms.CharField(required=False, max_length=1000, widget=forms.HiddenInput)
    call_ids = IdsField(what="call id", widget=forms.HiddenInput)
    calls_filter = forms.CharField(required=False, max_length=1000, widget=forms.HiddenInput)

    field_order = ["title", "summary", "direction"]


# --- The detail page's forms -------------------------------------------------------------------


class EditForm(PrefixedIds):
    id_prefix = "edit"

    title = forms.CharField(label="Title", max_length=200, help_text="Internal.")
    summary = _text("Summary", rows=4, help_text="Internal.")
    direction = forms.ChoiceField(label="Direction", choices=Direction.choices)
    lead = UserChoiceField(label="Lead", queryset=staff_users(), required=False, empty_label="Nobody yet")
    public_title = forms.CharField(label="Name for customer service", max_length=200, required=False)
    customer_impact = _text("What merchants or shoppers may notice", rows=2)
    customer_advice = _text("What customer service should tell them", rows=2)
    workaround = _text("Workaround", rows=2)

    def __init__(self, *args, incident: Incident | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["lead"].queryset = staff_users(also=incident.lead if incident else None)

    @classmethod
    def for_incident(cls, incident: Incident) -> "EditForm":
        names = ("title", "summary", "direction", "public_title", "customer_impact", "customer_advice", "workaround")
        initial = {name: getattr(incident, name) for name in names} | {"lead": incident.lead_id}
        return cls(initial=initial, incident=incident)


class StatusForm(PrefixedIds):
    id_prefix = "status"

    status = forms.ChoiceField(choices=Incident.Status.choices)
    note = forms.CharField(label="Note", required=False, max_length=2000)


class ResolveForm(PrefixedIds):
    id_prefix = "resolve"

    override_reason = forms.CharField(
        label="Override: why resolve although the data is not repaired",
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class StrategyForm(PrefixedIds):
    id_prefix = "strategy"

    strategy = forms.ChoiceField(label="Response", choices=Incident.Strategy.choices, widget=forms.RadioSelect)
    reason = forms.CharField(label="Why this response", required=False, max_length=2000)


class ActionForm(PrefixedIds):
    id_prefix = "action"

    kind = forms.ChoiceField(label="Kind", choices=IncidentAction.Kind.choices)
    title = forms.CharField(label="What", max_length=200)
    owner = UserChoiceField(label="Owner", queryset=staff_users(), required=False, empty_label="Nobody yet")
    due_at = forms.DateTimeField(label="Due (UTC)", required=False, widget=DateTimeLocalInput())

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = staff_users()


class UpdateForm(PrefixedIds):
    id_prefix = "update"

    body = forms.CharField(label="Update", max_length=10_000, widget=forms.Textarea(attrs={"rows": 3}))
    audience = forms.ChoiceField(label="For", choices=Audience.choices)
    confirmed = forms.BooleanField(
        label="Confirmed: stable enough to share (facts, not guesses or promises)", required=False
    )
    next_update_at = forms.DateTimeField(
        label="Next update by (UTC)",
        required=False,
        widget=DateTimeLocalInput(),
        help_text="Empty: by the severity's interval.",
    )


class LinkForm(PrefixedIds):
    id_prefix = "link"

    event_ids = IdsField(label="Event ids", what="event id", help_text="Comma-separated.")
    events_filter = forms.CharField(
        label="Events by filter",
        required=False,
        max_length=1000,
        help_text="The replay filter: shop=…&topic=orders/create&status=failed&since=2026-12-01T03:00:00Z",
    )
    call_ids = IdsField(label="Outbound call ids", what="call id", help_text="Comma-separated.")
    calls_filter = forms.CharField(
        label="Outbound calls by filter",
        required=False,
        max_length=1000,
        help_text="shop=…&operation=order.add_tags&status=failed&since=…",
    )

    def clean(self):
        data = super().clean()
        if not any(data.get(name) for name in ("event_ids", "events_filter", "call_ids", "calls_filter")):
            raise forms.ValidationError("Give event ids, an event filter, call ids or a call filter to link.")
        return data


class RepairStateForm(forms.Form):
    repair_state = forms.ChoiceField(choices=AffectedRecord.RepairState.choices)
    note = forms.CharField(required=False, max_length=255)


# --- One-click responses ------------------------------------------------------------------------


class ReplayForm(PrefixedIds):
    id_prefix = "replay"

    mode = forms.ChoiceField(
        label="Mode", choices=ReplayRequest.Mode.choices, initial=ReplayRequest.Mode.STORED, required=False
    )


class PauseForm(PrefixedIds):
    id_prefix = "pause"

    reason = forms.CharField(label="Why pause", max_length=500, help_text="Kept in the audit trail.")


def _shop_field(shops, empty_label: str) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(label="Shop", queryset=shops, required=False, empty_label=empty_label)


class DisableForm(PrefixedIds):
    id_prefix = "disable"

    job = forms.ChoiceField(label="Handler (job)")
    reason = forms.CharField(label="Why", required=False, max_length=500)

    def __init__(self, *args, shops, **kwargs) -> None:
        from integrations.jobs.registry import JOB_TYPES

        super().__init__(*args, **kwargs)
        self.fields["job"].choices = [(name, name) for name in sorted(JOB_TYPES)]
        self.fields["shop"] = _shop_field(shops, "Every shop")
        self.order_fields(["job", "shop", "reason"])


class CorrectionForm(PrefixedIds):
    id_prefix = "correct"

    resource = forms.ChoiceField(label="Records", choices=[("orders", "Orders"), ("customers", "Customers")])

    def __init__(self, *args, shops, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["shop"] = _shop_field(shops, "The incident's one shop")


class RollbackForm(PrefixedIds):
    id_prefix = "rollback"

    def __init__(self, *args, worksheets, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["worksheet"] = forms.ModelChoiceField(
            label="Worksheet to roll back", queryset=worksheets, empty_label=None
        )


class WatchForm(PrefixedIds):
    id_prefix = "watch"

    topic = forms.CharField(
        label="Topic or operation",
        max_length=100,
        help_text="A webhook topic (orders/create) or an outbound operation (order.add_tags).",
    )
    minutes = forms.IntegerField(label="Window (minutes)", min_value=1, max_value=24 * 60, initial=15)
    remind_at = forms.DateTimeField(
        label="Remind at (UTC)",
        required=False,
        widget=DateTimeLocalInput(),
        help_text="Empty: after the severity's update interval.",
    )

    def __init__(self, *args, shops, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["shop"] = _shop_field(shops, "Any shop")
        self.order_fields(["topic", "shop", "minutes", "remind_at"])


def error_text(form: forms.Form) -> str:
    """A form's errors as one sentence, for a message."""
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields and name != "__all__" else ""
        for error in errors:
            parts.append(f"{label}: {error}" if label else str(error))
    return " ".join(parts)
