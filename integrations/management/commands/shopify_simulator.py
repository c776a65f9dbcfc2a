"""Run the local Shopify store simulator as its own process (see integrations/simulator)."""

from django.core.management.base import BaseCommand, CommandError

from integrations.simulator.cli import run_server
from integrations.simulator.store import DEFAULT_SCOPES, ShopConfig
from integrations.simulator.versions import LATEST_VERSION

DEMO_RECORDS = 500
DEMO_SEED = 42


class Command(BaseCommand):
    """Run the store simulator."""

    help = (
        "Run the Shopify store simulator: Admin API (GraphQL + REST) under http://HOST:PORT/<shop-domain>/admin/api/"
        "<version>/, signed webhooks, and a control interface under /_simulator/. State is in memory: restarting "
        "the process (or POST /_simulator/reset) resets it."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001)
        parser.add_argument("--shop", help="Create this shop at start, e.g. my-store.myshopify.com.")
        parser.add_argument("--token", help="Its Admin API access token (X-Shopify-Access-Token).")
        parser.add_argument("--webhook-secret", help="Its app secret: webhook HMAC key.")
        parser.add_argument("--webhook-url", help="Where its webhooks go (also used by --demo).")
        parser.add_argument("--scopes", help=f"Comma-separated granted scopes (default {','.join(DEFAULT_SCOPES)}).")
        parser.add_argument("--records", type=int, default=200, help="About how many records to seed (default 200).")
        parser.add_argument("--seed", type=int, default=1, help="Seed for the records (same seed, same store).")
        parser.add_argument("--api-version", default=LATEST_VERSION, help="Webhook API version for the shop.")
        parser.add_argument(
            "--token-expires-in", type=int, help="Make --token expire after this many seconds (with a refresh token)."
        )
        parser.add_argument("--no-throttling", action="store_true", help="Disable rate limits for --shop (benchmarks).")
        parser.add_argument(
            "--time-scale",
            type=float,
            default=1.0,
            help="Multiplier for the webhook retry schedule (default 1 = real time).",
        )
        parser.add_argument(
            "--demo", action="store_true", help="Also create the demo shop seed_demo registers and run demo traffic."
        )
        parser.add_argument("--demo-records", type=int, default=DEMO_RECORDS)
        parser.add_argument(
            "--traffic-interval", type=float, default=2.0, help="Seconds between demo traffic actions (about)."
        )
        parser.add_argument("--no-traffic", action="store_true", help="With --demo: create the shop but no traffic.")

    def handle(self, *args, **options):
        shops = []
        traffic = []
        if options["shop"]:
            if not options["token"] or not options["webhook_secret"]:
                raise CommandError("--shop needs --token and --webhook-secret.")
            config = ShopConfig(
                domain=options["shop"].strip().lower(),
                token=options["token"],
                webhook_secret=options["webhook_secret"],
                webhook_url=options["webhook_url"],
                records=options["records"],
                seed=options["seed"],
                webhook_api_version=options["api_version"],
                token_expires_in=options["token_expires_in"],
                throttling=not options["no_throttling"],
            )
            if options["scopes"]:
                config.scopes = [s for s in options["scopes"].split(",") if s.strip()]
            shops.append(config)
        if options["demo"]:
            # Imported here: the console's seed_demo registers the same shop on its side.
            from console.management.commands.seed_demo import DEMO_ACCESS_TOKEN, DEMO_SHOP_DOMAIN, DEMO_WEBHOOK_SECRET

            shops.append(
                ShopConfig(
                    domain=DEMO_SHOP_DOMAIN,
                    token=DEMO_ACCESS_TOKEN,
                    webhook_secret=DEMO_WEBHOOK_SECRET,
                    webhook_url=options["webhook_url"],
                    records=options["demo_records"],
                    seed=DEMO_SEED,
                    name="Demo Outdoors",
                )
            )
            if not options["no_traffic"]:
                traffic.append((DEMO_SHOP_DOMAIN, {"interval": options["traffic_interval"], "seed": DEMO_SEED}))
        try:
            run_server(
                host=options["host"],
                port=options["port"],
                shops=shops,
                time_scale=options["time_scale"],
                traffic=traffic,
                out=self.stdout,
            )
        except OSError as exc:
            raise CommandError(f"Cannot listen on {options['host']}:{options['port']}: {exc}") from exc
