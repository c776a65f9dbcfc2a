"""Login throttling (django-axes), seen from the console: lockouts in the audit trail, the lockout
page, and lifting a lockout early.

Axes counts failed logins per username and per address (AXES_LOCKOUT_PARAMETERS); at
AXES_FAILURE_LIMIT it refuses further logins for that username or address until AXES_COOLOFF_TIME
after the last failure, without checking a password. Here:

- each lockout is audited once, when it starts (`login.lockout`);
- the refused login page says how long and whom to ask (`lockout_response`, 429);
- admins lift a lockout with `unlock()` (the Login lockouts page, `manage.py logins unlock`, the
  Django admin). Whatever removes a failure record that still counts (axes' own `axes_reset*`
  commands included) writes `login.unlock`; records axes deletes because they expired do not.
"""

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.db import transaction
from django.db.models import Max, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers

from console.audit import record_action

UNKNOWN_USERNAME = "(no such user)"


@dataclass(frozen=True)
class _Unlocker:
    by: object
    reason: str
    request: HttpRequest | None


# Set while an admin lifts a lockout, so the deletion it causes is audited in their name.
_unlocker: ContextVar[_Unlocker | None] = ContextVar("console_login_unlocker", default=None)


def cooloff() -> timedelta:
    return settings.AXES_COOLOFF_TIME


def lockout_minutes() -> int:
    return max(1, round(cooloff().total_seconds() / 60))


@dataclass(frozen=True)
class Lockout:
    """A username or an address that is refused logins right now."""

    kind: str  # "username" or "address"
    value: str
    failures: int
    last_failure: datetime
    account_exists: bool = False

    @property
    def until(self) -> datetime:
        return self.last_failure + cooloff()


def active_lockouts() -> list[Lockout]:
    """Every username and address at or over the limit, newest first (what axes refuses now)."""
    live = AccessAttempt.objects.filter(attempt_time__gte=timezone.now() - cooloff())
    limit = settings.AXES_FAILURE_LIMIT
    found = []
    for kind, field in (("username", "username"), ("address", "ip_address")):
        rows = (
            live.exclude(**{f"{field}__isnull": True})
            .values(field)
            .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
            .filter(failures__gte=limit)
        )
        found += [Lockout(kind, row[field], row["failures"], row["last"]) for row in rows]
    accounts = set(
        get_user_model()
        .objects.filter(username__in=[x.value for x in found if x.kind == "username"])
        .values_list("username", flat=True)
    )
    found = [replace(x, account_exists=x.value in accounts) if x.kind == "username" else x for x in found]
    return sorted(found, key=lambda x: x.last_failure, reverse=True)


def unlock(*, by, reason: str, username: str = "", ip_address: str = "", request: HttpRequest | None = None) -> int:
    """Lift the lockout of one username or one address now. Audited (one `login.unlock` per failure
    record removed, in `by`'s name). Returns how many records were removed (0: nothing was locked)."""
    if bool(username) == bool(ip_address):
        raise ValueError("Unlock either a username or an address.")
    if not reason.strip():
        raise ValueError("Say why the lockout is lifted early (kept in the audit trail).")
    with unlocking(by=by, reason=reason, request=request), transaction.atomic():
        return reset(username=username) if username else reset(ip=ip_address)


@contextmanager
def unlocking(*, by, reason: str, request: HttpRequest | None = None):
    """Deletions of failure records inside this block are audited as an unlock by `by`."""
    token = _unlocker.set(_Unlocker(by=by, reason=reason, request=request))
    try:
        yield
    finally:
        _unlocker.reset(token)


def _account(username: str | None):
    if not username:
        return None
    return get_user_model().objects.filter(username=username).first()


def _who(username: str | None, account) -> str:
    # What someone typed as a username is kept only when it names an account: people type
    # passwords into the username field, and the audit trail keeps what it is given forever.
    return account.get_username() if account is not None else UNKNOWN_USERNAME


def on_user_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    """axes' `user_locked_out`: audit the lockout when it starts.

    Axes sends the signal again for every login refused during the lockout; only the failure that
    reached the limit has `axes_failures_since_start` set (refused attempts are not counted).
    """
    failures = getattr(request, "axes_failures_since_start", None)
    if request is None or failures is None:
        return
    account = _account(username)
    record_action(
        actor=None,
        verb="login.lockout",
        target=account,
        after={
            "username": _who(username, account),
            "ip_address": ip_address,
            "failures": failures,
            "locked_minutes": lockout_minutes(),
        },
        reason=f"{failures} failed logins for this username or from this address",
        request=request,
    )


def on_attempt_deleted(sender, instance: AccessAttempt, **kwargs) -> None:
    """post_delete of a failure record: audit it when it still counted towards a lockout."""
    if instance.attempt_time is None or instance.attempt_time < timezone.now() - cooloff():
        return  # expired: axes tidying up, nothing was lifted
    unlocker = _unlocker.get()
    account = _account(instance.username)
    record_action(
        actor=unlocker.by if unlocker else None,
        verb="login.unlock",
        target=account,
        before={
            "username": _who(instance.username, account),
            "ip_address": instance.ip_address,
            "failures": instance.failures_since_start,
            "last_failure": instance.attempt_time.isoformat(),
        },
        reason=unlocker.reason if unlocker else "lifted outside the console (manage.py axes_reset* or code)",
        request=unlocker.request if unlocker else None,
    )


class AxesHandler(AxesDatabaseHandler):
    """AXES_HANDLER: axes' database handler, storing only what the database can hold. It records the
    User-Agent and Accept headers of every login; PostgreSQL text cannot hold NUL, so a header with
    one would turn a login into a 500 (gunicorn refuses such headers, other servers may not)."""

    @staticmethod
    def _storable(request) -> None:
        for attr in ("axes_user_agent", "axes_http_accept", "axes_path_info"):
            value = getattr(request, attr, None)
            if isinstance(value, str) and "\x00" in value:
                setattr(request, attr, value.replace("\x00", "\ufffd"))

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        if request is not None:
            self._storable(request)
        return super().user_login_failed(sender, credentials, request, **kwargs)

    def user_logged_in(self, sender, request, user, **kwargs):
        self._storable(request)
        return super().user_logged_in(sender, request, user, **kwargs)

    def user_logged_out(self, sender, request, user, **kwargs):
        self._storable(request)
        return super().user_logged_out(sender, request, user, **kwargs)


def lockout_response(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login page again, saying what happened, for how long, whom to ask."""
    context = {
        "form": AuthenticationForm(request),
        "locked_out": True,
        "lockout_minutes": lockout_minutes(),
        "next": request.POST.get("next", "") if request.method == "POST" else request.GET.get("next", ""),
    }
    response = render(request, "registration/login.html", context, status=429)
    add_never_cache_headers(response)
    return response
