from django import forms
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType


class AuditFilterForm(forms.Form):
    actor = forms.CharField(required=False, label="Actor", widget=forms.TextInput(attrs={"placeholder": "username"}))
    verb = forms.CharField(
        required=False, label="Action", widget=forms.TextInput(attrs={"placeholder": "e.g. shop.update"})
    )
    target_type = forms.ChoiceField(required=False, label="Object type")
    target_id = forms.CharField(required=False, label="Object id", max_length=64)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        types = ContentType.objects.filter(app_label__in=["console", "integrations", "incidents", "auth"])
        self.fields["target_type"].choices = [("", "Any")] + [
            (f"{ct.app_label}.{ct.model}", f"{ct.app_label} · {ct.name}") for ct in types.order_by("app_label", "model")
        ]

    def apply(self, queryset):
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data["actor"]:
            queryset = queryset.filter(actor_label=data["actor"].strip())
        if data["verb"]:
            queryset = queryset.filter(verb=data["verb"].strip())
        if data["target_type"]:
            app_label, model = data["target_type"].split(".", 1)
            queryset = queryset.filter(target_type__app_label=app_label, target_type__model=model)
        if data["target_id"]:
            queryset = queryset.filter(target_id=data["target_id"].strip())
        return queryset


User = get_user_model()
