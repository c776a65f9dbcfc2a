"""Times in words people can compare: absolute instants with their zone, and short durations.

Used by the templates (console_tags) and by plain-text answers (the event trace), so a time reads
the same on a page and in `manage.py events trace`.
"""

from datetime import datetime, timedelta

from django.utils import timezone


def absolute(value: datetime) -> str:
    """The instant to the second in the console's time zone, with the zone's name: 2026-11-27 14:03:12 UTC."""
    local = timezone.localtime(value) if timezone.is_aware(value) else value
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or ''}".rstrip()


def ago(value: datetime, now: datetime | None = None) -> str:
    """A compact relative time to sit beside an absolute one: "just now", "4 min ago", "2 h ago",
    "3 d ago", "in 5 min"."""
    delta = (now or timezone.now()) - value
    seconds = delta.total_seconds()
    if abs(seconds) < 60:
        return "just now"
    amount = _coarse(abs(seconds))
    return f"{amount} ago" if seconds > 0 else f"in {amount}"


def _coarse(seconds: float) -> str:
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds // 60)} min"


def duration(delta: timedelta) -> str:
    """A short, exact-enough length of time: "0 ms", "340 ms", "1.2 s", "3 min 4 s", "2 h 5 min", "3 d 2 h"."""
    seconds = delta.total_seconds()
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 1:
        return f"{sign}{round(seconds * 1000)} ms"
    if round(seconds, 1) < 60:
        return f"{sign}{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        major, minor, units = whole // 60, whole % 60, ("min", "s")
    elif whole < 86400:
        major, minor, units = whole // 3600, whole % 3600 // 60, ("h", "min")
    else:
        major, minor, units = whole // 86400, whole % 86400 // 3600, ("d", "h")
    return f"{sign}{major} {units[0]}" + (f" {minor} {units[1]}" if minor else "")
