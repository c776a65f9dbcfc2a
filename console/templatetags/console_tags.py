import datetime
import json

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

register = template.Library()


@register.simple_tag
def reltime(value):
    """A relative time ("4 minutes ago") with the exact UTC time on hover and in the markup."""
    if value is None:
        return "—"
    now = timezone.now()
    exact = value.astimezone(datetime.UTC)
    label = f"{timesince(value, now)} ago" if value <= now else f"in {timesince(now, value)}"
    if label.startswith("0\xa0minutes"):
        label = "just now"
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        exact.isoformat(),
        exact.strftime("%Y-%m-%d %H:%M:%S UTC"),
        label,
    )


@register.filter
def pretty_json(value) -> str:
    """Indented JSON for display; the template still escapes it."""
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
