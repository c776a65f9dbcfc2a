"""Register and list shops from the terminal: `manage.py shops add DOMAIN --webhook-secret S ...`."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from integrations.models import Shop
from integrations.shops.services import register_shop


class Command(BaseCommand):
    help = "Register or list the Shopify shops the console supports."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        add = sub.add_parser("add", help="Register a shop.")
        add.add_argument("domain", help="The shop's permanent domain, e.g. example.myshopify.com")
        add.add_argument("--webhook-secret", required=True, help="The app secret that signs webhooks.")
        add.add_argument("--access-token", default="", help="Admin API access token.")
        add.add_argument("--api-url", default="", help="Base URL of the Admin API (the simulator); default: Shopify.")
        add.add_argument("--api-version", default="", help="API version, YYYY-MM (default: the console's).")
        add.add_argument("--name", default="")
        sub.add_parser("list", help="List shops (secrets masked).")
        reinstall = sub.add_parser("reinstall", help="Mark an uninstalled shop installed again (audited).")
        reinstall.add_argument("domain")
        reinstall.add_argument("--reason", required=True, help="Why (kept in the audit trail).")
        reinstall.add_argument("--user", required=True, help="The admin doing it.")
        retire = sub.add_parser(
            "retire-secret",
            help="Stop the previous webhook secret verifying now, not at the end of its hour (audited).",
        )
        retire.add_argument("domain")
        retire.add_argument("--reason", required=True, help="Why (kept in the audit trail).")
        retire.add_argument("--user", required=True, help="The admin doing it.")
        check = sub.add_parser(
            "check",
            help="Run every API health check now (token, scopes, version, subscriptions, queue, throttle, drift); "
            "exit 1 when any found a problem.",
        )
        check.add_argument("domain")
        check.add_argument("--json", action="store_true", help="Print one JSON object.")
        resub = sub.add_parser("resubscribe", help="Re-create a missing webhook subscription (an audited call).")
        resub.add_argument("domain")
        resub.add_argument("topic", help="e.g. orders/paid")
        resub.add_argument("--reason", required=True, help="Why (kept in the audit trail).")
        resub.add_argument("--user", required=True, help="Who (allowed to send calls to Shopify).")

    def handle(self, *args, action, **options):
        if action == "add":
            self._add(**options)
        elif action == "reinstall":
            self._reinstall(options["domain"], reason=options["reason"], username=options["user"])
        elif action == "resubscribe":
            self._resubscribe(options["domain"], options["topic"], reason=options["reason"], username=options["user"])
        elif action == "check":
            self._check(options["domain"], as_json=options["json"])
        elif action == "retire-secret":
            self._retire_secret(options["domain"], reason=options["reason"], username=options["user"])
        else:
            self._list()

    def _resubscribe(self, domain: str, topic: str, *, reason: str, username: str) -> None:
        from django.contrib.auth import get_user_model

        from integrations.shops.subscriptions import SubscriptionError, resubscribe

        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None or not user.has_perm("integrations.send_outbound"):
            raise CommandError(f"{username!r} is not an active user allowed to send calls to Shopify.")
        shop = Shop.objects.filter(domain=domain.strip().lower()).first()
        if shop is None:
            raise CommandError(f"No shop {domain}.")
        try:
            outcome = resubscribe(shop, topic, by=user, reason=reason)
        except SubscriptionError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{topic}: {outcome}")

    def _check(self, domain: str, *, as_json: bool) -> None:
        import json

        from integrations.shops.health import check_json, run_checks

        shop = Shop.objects.filter(domain=domain.strip().lower()).first()
        if shop is None:
            raise CommandError(f"No shop {domain}.")
        data = check_json(run_checks(shop, triggered_by="command"))
        if as_json:
            self.stdout.write(json.dumps(data, indent=2, default=str))
        else:
            self.stdout.write(f"{shop.domain}: {'healthy' if data['ok'] else 'problems found'}")
            scopes, version, subs = data["scopes"], data["api_version"], data["subscriptions"]
            self.stdout.write(
                f"  token: {'valid' if data['token']['valid'] else 'NOT valid'}, expires {data['token']['expires_at'] or 'never'}"
            )
            self.stdout.write(
                f"  scopes: missing {', '.join(scopes['missing']) or 'none'}; extra {', '.join(scopes['extra']) or 'none'}"
            )
            self.stdout.write(
                f"  API version: {version['requested']} (answered {version['answered'] or '?'}), supported until {version['supported_until']}"
            )
            self.stdout.write(f"  subscriptions: missing {', '.join(subs['missing']) or 'none'}")
            queue = data["queue"]
            self.stdout.write(f"  queue: {'paused' if queue['paused'] else 'running'}, {queue['depth']} unfinished")
            self.stdout.write(f"  ownership drift (7 days): {data['ownership_drift']}")
            for problem in data["problems"]:
                self.stdout.write(self.style.ERROR(f"  problem: {problem}"))
        if not data["ok"]:
            if not as_json:
                self.stderr.write(f"{len(data['problems'])} problem(s): " + " ".join(data["problems"]))
            raise SystemExit(1)

    def _reinstall(self, domain: str, *, reason: str, username: str) -> None:
        from django.contrib.auth import get_user_model

        from integrations.shops.services import mark_shop_reinstalled

        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None or not user.has_perm("integrations.change_shop"):
            raise CommandError(f"{username!r} is not an active admin: only admins change a shop's state.")
        shop = Shop.objects.filter(domain=domain.strip().lower()).first()
        if shop is None:
            raise CommandError(f"No shop {domain}.")
        try:
            changed = mark_shop_reinstalled(shop=shop, by=user, reason=reason)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if not changed:
            raise CommandError(f"{shop.domain} is not uninstalled: nothing changed.")
        self.stdout.write(self.style.SUCCESS(f"{shop.domain} is marked installed again."))

    def _retire_secret(self, domain: str, *, reason: str, username: str) -> None:
        from django.conf import settings
        from django.contrib.auth import get_user_model

        from integrations.shops.services import retire_previous_webhook_secret

        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None or not user.has_perm("integrations.manage_shop_secrets"):
            raise CommandError(f"{username!r} is not an active admin: only admins manage a shop's secrets.")
        shop = Shop.objects.filter(domain=domain.strip().lower()).first()
        if shop is None:
            raise CommandError(f"No shop {domain}.")
        try:
            retire_previous_webhook_secret(by=user, shop=shop, reason=reason)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        seconds = f"{settings.WEBHOOK_SHOP_CACHE_SECONDS:g}"
        self.stdout.write(
            self.style.SUCCESS(
                f"{shop.domain}: previous webhook secret retired (refused everywhere within {seconds} s)."
            )
        )

    def _add(self, *, domain, webhook_secret, access_token, api_url, api_version, name, **_):
        if Shop.objects.filter(domain=domain.strip().lower()).exists():
            raise CommandError(f"{domain} is already registered; change it in the console (Shops).")
        try:
            shop = register_shop(
                by=None,
                domain=domain,
                webhook_secret=webhook_secret,
                access_token=access_token,
                api_url=api_url,
                api_version=api_version,
                name=name,
            )
        except ValidationError as exc:
            problems = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            raise CommandError(f"Shop not registered: {problems}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Registered {shop.domain} (id {shop.pk}) → {shop.admin_base_url}, API {shop.api_version}"
            )
        )

    def _list(self):
        shops = Shop.objects.all()
        if not shops:
            self.stdout.write("No shops registered. Add one with: manage.py shops add DOMAIN --webhook-secret S")
        for shop in shops:
            self.stdout.write(
                f"{shop.domain}\t{shop.state}\t{shop.api_version}\t{shop.admin_base_url}\tsecret {shop.webhook_secret_masked}"
                f"\ttoken {shop.access_token_masked or '(none)'}"
            )
