from django import forms
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType

from console.models import AuditEntry

AUDITED_APPS = ("console", "integrations", "incidents", "worksheets", "auth", "axes")


def _type_label(content_type: ContentType) -> str:
    return str(
        content_type.model_class()._meta.verbose_name if content_type.model_class() else content_type.name
    ).capitalize()


class AuditFilterForm(forms.Form):
    """The audit list's filters. Limits follow the columns they filter (an over-long value, a NUL or
    an unknown object type is a form error, and the page answers 400)."""

    actor = forms.CharField(
        required=False,
        label="Actor",
        max_length=AuditEntry._meta.get_field("actor_label").max_length,
        widget=forms.TextInput(attrs={"placeholder": "username"}),
    )
    verb = forms.CharField(
        required=False,
        label="Action",
        max_length=AuditEntry._meta.get_field("verb").max_length,
        widget=forms.TextInput(attrs={"placeholder": "e.g. shop or shop.update"}),
        help_text="The start of an action is enough: shop matches every shop action.",
    )
    target_type = forms.ChoiceField(required=False, label="Object type")
    target_id = forms.CharField(
        required=False, label="Object id", max_length=AuditEntry._meta.get_field("target_id").max_length
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the kinds of record the trail holds entries about (shops, events, incidents, privacy
        # requests, users...), never Django's internal tables: the type list is for picking, not a
        # list of everything the database has.
        used = AuditEntry.objects.exclude(target_type=None).values("target_type").distinct()
        types = ContentType.objects.filter(pk__in=used, app_label__in=AUDITED_APPS)
        self.fields["target_type"].choices = [("", "Any")] + [
            (f"{ct.app_label}.{ct.model}", _type_label(ct)) for ct in types.order_by("app_label", "model")
        ]

    def apply(self, queryset):
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data["actor"]:
            queryset = queryset.filter(actor_label=data["actor"].strip())
        if data["verb"]:
            # A prefix: "shop" finds shop.register, shop.update, shop.rotate_webhook_secret...
            queryset = queryset.filter(verb__startswith=data["verb"].strip())
        if data["target_type"]:
            app_label, model = data["target_type"].split(".", 1)
            queryset = queryset.filter(target_type__app_label=app_label, target_type__model=model)
        if data["target_id"]:
            queryset = queryset.filter(target_id=data["target_id"].strip())
        return queryset


User = get_user_model()


class UnlockForm(forms.Form):
    """Lift one login lockout early: a username or an address, and why."""

    username = forms.CharField(required=False, max_length=User._meta.get_field("username").max_length)
    ip_address = forms.GenericIPAddressField(required=False, label="Address")
    reason = forms.CharField(
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "Why (kept in the audit trail)"}),
    )

    def clean(self):
        data = super().clean()
        fields_valid = "username" in data and "ip_address" in data
        if fields_valid and bool(data["username"]) == bool(data["ip_address"]):
            raise forms.ValidationError("Unlock either a username or an address.")
        return data
