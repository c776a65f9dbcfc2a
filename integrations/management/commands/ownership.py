"""Who owns which data, from the terminal: show a shop's ownership map, change an owner (admins,
audited) and list ownership drift. Every action has `--json` for scripts."""

import json
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from integrations.models import Shop
from integrations.shops import ownership


class Command(BaseCommand):
    help = "Show and change who owns which data per shop, and list ownership drift."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        show = sub.add_parser("show", help="The shop's ownership map: default, rule and owner of every field.")
        show.add_argument("shop")
        change = sub.add_parser(
            "set",
            help="Make OWNER own a resource, or one field of it (audited). OWNER 'default' removes the rule.",
            description="ownership set SHOP RESOURCE [FIELD] OWNER --reason R --user U",
        )
        change.add_argument("shop")
        change.add_argument(
            "resource", help="order, customer, product, variant or inventory_level (or resource.field)."
        )
        change.add_argument("names", nargs="+", metavar="[FIELD] OWNER")
        change.add_argument("--reason", required=True, help="Why (kept in the audit trail).")
        change.add_argument("--user", required=True, help="The admin making the change (manage_ownership).")
        drift = sub.add_parser("drift", help="Ownership drift per shop, resource and field.")
        drift.add_argument("--shop")
        drift.add_argument("--days", type=int, default=7)
        drift.add_argument("--resource")
        drift.add_argument("--field")
        for action in sub.choices.values():
            action.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args, action, **options):
        self.as_json = options["json"]
        try:
            getattr(self, "_" + action)(**options)
        except ownership.OwnershipError as exc:
            raise CommandError(str(exc)) from exc
        except PermissionDenied as exc:
            raise CommandError(str(exc) or "not allowed") from exc

    def _shop(self, domain: str) -> Shop:
        shop = Shop.objects.filter(domain=domain.strip().lower()).first()
        if shop is None:
            raise CommandError(f"No shop {domain}.")
        return shop

    def _print(self, data, text: str) -> None:
        self.stdout.write(json.dumps(data, indent=2, default=str) if self.as_json else text)

    def _show(self, *, shop, **_):
        shop = self._shop(shop)
        rows = ownership.map_rows(shop)
        lines = [f"{'resource.field':<34} {'owner':<12} {'default':<12} rule"]
        for row in rows:
            name = f"{row['resource']}.{row['field']}" if row["field"] else f"{row['resource']} (whole)"
            rule = (
                f"{row['rule']} ({row['changed_by'] or 'system'}, {row['changed_at']:%Y-%m-%d %H:%M})"
                if row["rule"]
                else "-"
            )
            lines.append(f"{name:<34} {row['owner']:<12} {row['default']:<12} {rule}")
        data = {"shop": shop.domain, "fields": rows}
        self._print(data, "\n".join(lines))

    def _set(self, *, shop, resource, names, reason, user, **_):
        shop = self._shop(shop)
        if len(names) == 1 and "." in resource:
            resource, field = resource.split(".", 1)
            owner = names[0]
        elif len(names) == 1:
            field, owner = "", names[0]
        elif len(names) == 2:
            field, owner = names
        else:
            raise CommandError("usage: ownership set SHOP RESOURCE [FIELD] OWNER --reason R --user U")
        by = get_user_model().objects.filter(username=user, is_active=True).first()
        if by is None:
            raise CommandError(f"No active user {user!r}.")
        result = ownership.set_owner(shop, resource, field, owner, by=by, reason=reason)
        name = f"{result['resource']}.{result['field']}" if result["field"] else result["resource"]
        text = (
            f"{name} on {shop.domain}: owned by {result['owner']} (was {result['before']})"
            if result["changed"]
            else f"{name} on {shop.domain}: already owned by {result['owner']}, nothing changed"
        )
        self._print({"shop": shop.domain, **result}, text)

    def _drift(self, *, shop, days, resource, field, **_):
        since = timezone.now() - timedelta(days=max(days, 0))
        report = ownership.drift_report(
            self._shop(shop) if shop else None, since=since, resource=resource or None, field=field or None
        )
        lines = [
            f"{row['shop']}  {row['resource']}.{row['field']}: {row['count']} change(s) on {row['records']} record(s),"
            f" last {row['last_seen']:%Y-%m-%d %H:%M}; events {', '.join(str(e) for e in row['events'])}"
            for row in report
        ]
        text = "\n".join(lines) or f"No ownership drift in the last {days} days."
        self._print({"since": since, "drift": report}, text)
