"""Login lockouts from the terminal (django-axes, console/logins.py).

    manage.py logins list
    manage.py logins unlock (--username U | --ip ADDRESS) --reason R --user ADMIN

`unlock` lifts a lockout now, as the Login lockouts page does: same service, audited as `--user`
(an admin). axes' own `axes_reset_username` / `axes_reset_ip` work too and are audited as system.
"""

import ipaddress

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from console import logins


class Command(BaseCommand):
    help = "List login lockouts, or lift one early (audited)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("list", help="Usernames and addresses refused logins right now.")
        unlock = sub.add_parser("unlock", help="Lift one lockout now (audited).")
        target = unlock.add_mutually_exclusive_group(required=True)
        target.add_argument("--username", default="", help="The locked username.")
        target.add_argument("--ip", default="", help="The locked address.")
        unlock.add_argument("--reason", required=True, help="Why (kept in the audit trail).")
        unlock.add_argument("--user", required=True, help="Who is doing it (an admin username).")

    def handle(self, *args, action, **options):
        if action == "list":
            self._list()
        else:
            self._unlock(**options)

    def _list(self):
        lockouts = logins.active_lockouts()
        if not lockouts:
            self.stdout.write("Nobody is locked out.")
        now = timezone.now()
        for lockout in lockouts:
            minutes = max(0, round((lockout.until - now).total_seconds() / 60))
            self.stdout.write(f"{lockout.kind} {lockout.value}\t{lockout.failures} failures\t{minutes} min left")

    def _unlock(self, *, username, ip, reason, user, **_):
        admin = get_user_model().objects.filter(username=user, is_active=True).first()
        if admin is None:
            raise CommandError(f"No active user {user!r}.")
        if not admin.has_perm("axes.delete_accessattempt"):
            raise CommandError(f"{user} may not unlock logins (needs the admin role).")
        if ip:
            try:
                ip = str(ipaddress.ip_address(ip))
            except ValueError as exc:
                raise CommandError(f"{ip!r} is not an IP address.") from exc
        try:
            removed = logins.unlock(by=admin, reason=reason, username=username, ip_address=ip)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        who = username or ip
        if removed:
            self.stdout.write(self.style.SUCCESS(f"Unlocked {who} (audited as {admin.get_username()})."))
        else:
            self.stdout.write(f"{who} was not locked out; nothing changed.")
