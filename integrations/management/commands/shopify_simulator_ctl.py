"""Control a running Shopify store simulator (faults, tokens, scopes, records, deliveries)."""

import requests
from django.core.management.base import BaseCommand, CommandError

from integrations.simulator.cli import add_ctl_arguments, run_ctl


class Command(BaseCommand):
    """Call a running simulator's control interface."""

    help = (
        "Call the store simulator's control interface, e.g. "
        "`shopify_simulator_ctl fault demo-outdoors.myshopify.com duplicate_delivery --rate 1.0`, "
        "`shopify_simulator_ctl revoke-token SHOP`, `shopify_simulator_ctl deliveries SHOP`, `shopify_simulator_ctl reset`."
    )
    requires_system_checks: list[str] = []

    def add_arguments(self, parser):
        add_ctl_arguments(parser)

    def handle(self, *args, **options):
        try:
            status = run_ctl(options, self.stdout)
        except requests.RequestException as exc:
            raise CommandError(f"Cannot reach the simulator at {options['url']}: {exc}") from exc
        if status:
            raise CommandError("The simulator refused the request (see the response above).")
