from django import forms

from integrations.models import Shop


def secret_field(model_field: str, **kwargs) -> forms.CharField:
    """A secret or token input: masked, never echoed back, not offered to (or filled by) the
    browser's password manager, and no longer than the column that stores it."""
    return forms.CharField(
        max_length=Shop._meta.get_field(model_field).max_length,
        widget=forms.PasswordInput(
            render_value=False,
            attrs={"autocomplete": "new-password", "spellcheck": "false", "autocapitalize": "off"},
        ),
        **kwargs,
    )


def api_url_field() -> forms.URLField:
    return forms.URLField(
        required=False,
        assume_scheme="https",
        label="Admin API base URL",
        help_text=Shop._meta.get_field("api_url").help_text,
    )


class ShopCreateForm(forms.ModelForm):
    api_url = api_url_field()
    webhook_secret = secret_field(
        "webhook_secret",
        help_text="The app's client secret that signs webhooks. Stored, never shown again in full.",
    )
    access_token = secret_field(
        "access_token",
        required=False,
        help_text="Admin API access token (optional now, needed for outbound calls).",
    )

    class Meta:
        model = Shop
        fields = ["domain", "name", "api_url", "api_version", "webhook_secret", "access_token"]
        widgets = {"domain": forms.TextInput(attrs={"placeholder": "example-store.myshopify.com", "autofocus": True})}

    def clean_domain(self):
        return self.cleaned_data["domain"].strip().lower()


class ShopEditForm(forms.ModelForm):
    api_url = api_url_field()
    reason = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "Why (kept in the audit trail)"}),
        help_text="Required when you pause or resume the outbound queue.",
    )

    class Meta:
        model = Shop
        fields = ["name", "api_url", "api_version", "queue_paused"]

    def clean(self):
        data = super().clean()
        pausing = "queue_paused" in self.changed_data
        if pausing and not (data.get("reason") or "").strip():
            verb = "pause" if data.get("queue_paused") else "resume"
            self.add_error("reason", f"Say why you {verb} the queue: the reason is kept in the audit trail.")
        return data


class ReinstallForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "e.g. the merchant reinstalled the app on 3 May"}),
        help_text="Kept in the audit trail.",
    )


class ShopSecretsForm(forms.Form):
    new_webhook_secret = secret_field(
        "webhook_secret",
        required=False,
        help_text="Rotating keeps the previous secret valid for an hour, as Shopify may still sign with it.",
    )
    new_access_token = secret_field("access_token", required=False)
    reason = forms.CharField(
        max_length=500, widget=forms.TextInput(attrs={"placeholder": "Why (kept in the audit trail)"})
    )

    def clean(self):
        data = super().clean()
        entered = "new_webhook_secret" in data and "new_access_token" in data  # else a field error says why
        if entered and not data["new_webhook_secret"] and not data["new_access_token"]:
            raise forms.ValidationError("Enter a new webhook secret, a new access token, or both.")
        return data


class RetireSecretForm(forms.Form):
    """Stop the previous webhook secret verifying now (it leaked), instead of at the end of its hour."""

    prefix = "retire"  # it shares the secrets page with ShopSecretsForm's own "reason"
    reason = forms.CharField(
        max_length=500,
        strip=True,
        widget=forms.TextInput(attrs={"placeholder": "e.g. the old secret leaked"}),
        help_text="Kept in the audit trail.",
    )
