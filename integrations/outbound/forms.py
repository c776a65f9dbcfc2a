"""Forms of the outbound page: push a stock level, push product content, enqueue any operation.
Each maps onto one function in `outbound.flows` or `outbound.queue`."""

import json

from django import forms

from integrations.models import OutboundCall, Shop
from integrations.outbound.operations import OPERATIONS

LANES = OutboundCall.Lane.choices


class ShopChoice(forms.ModelChoiceField):
    def label_from_instance(self, shop: Shop) -> str:
        return f"{shop.domain}{' (queue paused)' if shop.queue_paused else ''}"


def _shop_field() -> ShopChoice:
    return ShopChoice(queryset=Shop.objects.filter(state=Shop.State.INSTALLED).order_by("domain"))


class StockForm(forms.Form):
    shop = _shop_field()
    inventory_item_id = forms.IntegerField(min_value=1, label="Inventory item id")
    location_id = forms.IntegerField(min_value=1, label="Location id")
    quantity = forms.IntegerField(min_value=0, max_value=1_000_000_000, label="Available quantity (warehouse count)")
    compare_to = forms.IntegerField(
        required=False,
        label="Shopify should hold now",
        help_text="The compare guard. Empty: the level the platform last synced from Shopify.",
    )
    lane = forms.ChoiceField(choices=LANES, initial="live")


class ProductForm(forms.Form):
    shop = _shop_field()
    product_id = forms.IntegerField(min_value=1, label="Product id")
    title = forms.CharField(required=False, max_length=255)
    description_html = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Description (HTML)"
    )
    lane = forms.ChoiceField(choices=LANES, initial="live")

    def clean(self):
        data = super().clean()
        if not data.get("title") and not data.get("description_html"):
            raise forms.ValidationError("Give a title, a description, or both.")
        return data


class EnqueueForm(forms.Form):
    shop = _shop_field()
    operation = forms.ChoiceField(choices=[(name, f"{name}: {op.describe}") for name, op in sorted(OPERATIONS.items())])
    input = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        label="Input (the mutation's variables, JSON)",
        help_text='e.g. {"id": "gid://shopify/Order/5500000000018", "tags": ["vip"]}',
    )
    lane = forms.ChoiceField(choices=LANES, initial="live")
    key = forms.CharField(
        required=False, max_length=200, label="Idempotency key", help_text="Empty: derived from the input."
    )
    why = forms.CharField(required=False, max_length=300, label="Why (shown on the call's page)")
    override_reason = forms.CharField(
        required=False,
        max_length=300,
        label="Override ownership (admins)",
        help_text="Only to write fields the platform does not own, this once: say why (audited).",
    )

    def clean_input(self):
        try:
            value = json.loads(self.cleaned_data["input"])
        except ValueError as exc:
            raise forms.ValidationError(f"Not JSON: {exc}") from exc
        if not isinstance(value, dict):
            raise forms.ValidationError("The input is a JSON object of the mutation's variables.")
        return value
