import datetime
import json

from django import template
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince

from console import timefmt

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


@register.simple_tag
def abstime(value):
    """The absolute time with its zone ("2026-11-27 14:03:12 UTC"), then the relative one ("4 min
    ago"), so two times on a page can be compared to the second."""
    if value is None:
        return "—"
    return format_html(
        '<time datetime="{}">{}</time> <span class="rel">{}</span>',
        value.astimezone(datetime.UTC).isoformat(),
        timefmt.absolute(value),
        timefmt.ago(value),
    )


@register.simple_tag
def delay(earlier, later) -> str:
    """How long after `earlier` `later` came ("1.2 s", "-0.3 s" when the clocks disagree); "" if either is unknown."""
    if earlier is None or later is None:
        return ""
    return timefmt.duration(later - earlier)


@register.simple_tag
def lag(triggered, received, words=False):
    """How long after Shopify triggered a webhook we received it: "+1.2 s" with both times on
    hover, or with `words` "1.2 s after Shopify triggered it". Negative when the clocks disagree."""
    if triggered is None or received is None:
        return ""
    delta = received - triggered
    early = delta.total_seconds() < 0
    amount = timefmt.duration(abs(delta))
    if words:
        if early:
            return f"{amount} before Shopify's trigger time (Shopify's clock and ours disagree)"
        return f"{amount} after Shopify triggered it"
    return format_html(
        '<span class="lag{}" title="Triggered at Shopify {}, received {}: {} {}">{}{}</span>',
        " lag-skew" if early else "",
        timefmt.absolute(triggered),
        timefmt.absolute(received),
        amount,
        "earlier (the clocks disagree)" if early else "later",
        "\u2212" if early else "+",
        amount,
    )


@register.filter
def instant(value) -> str:
    """An absolute time as plain text, with its zone (for titles and sentences)."""
    return timefmt.absolute(value) if value is not None else ""


@register.filter
def duration(value) -> str:
    """A timedelta in short words ("340 ms", "3 min 4 s")."""
    return timefmt.duration(value) if value is not None else ""


@register.filter
def pretty_json(value) -> str:
    """Indented JSON for display; the template still escapes it."""
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
