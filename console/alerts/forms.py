from django import forms

from console.alerts.rules import RULES
from console.alerts.services import MAX_SILENCE_MINUTES


class SilenceForm(forms.Form):
    rule = forms.ChoiceField(choices=[(key, rule.title) for key, rule in RULES.items()])
    subject = forms.CharField(
        required=False,
        max_length=255,
        help_text="As the alert names it (a shop, “shop topic”, “events”); empty: every subject of the rule.",
    )
    minutes = forms.IntegerField(
        min_value=1, max_value=MAX_SILENCE_MINUTES, initial=60, help_text="From 1 minute to 7 days (10080)."
    )
    reason = forms.CharField(max_length=1000, help_text="Why nobody needs telling for now (kept in the audit trail).")


class UnsilenceForm(forms.Form):
    reason = forms.CharField(required=False, max_length=1000)
