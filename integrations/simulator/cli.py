"""Command-line entry points behind `manage.py shopify_simulator` (run the server) and
`manage.py shopify_simulator_ctl` (talk to a running one's control interface)."""

import argparse
import json
import signal
import threading
from collections.abc import Callable
from typing import Any, TextIO

import requests

from integrations.simulator.server import Simulator, SimulatorHTTPServer
from integrations.simulator.store import ShopConfig

CTL_TIMEOUT = 30.0


# --- running the simulator -------------------------------------------------------------------------


def run_server(
    *,
    host: str,
    port: int,
    shops: list[ShopConfig],
    time_scale: float,
    traffic: list[tuple[str, dict]],
    out: TextIO,
    ready: Callable[[SimulatorHTTPServer], None] | None = None,
) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly.

    `traffic` lists (shop domain, generator options) to start demo traffic on.
    """
    simulator = Simulator(time_scale=time_scale)
    for config in shops:
        shop = simulator.create_shop(config)
        counts = shop.records.counts()
        out.write(
            f"Simulated shop {shop.domain}: {counts['products']} products, {counts['variants']} variants, "
            f"{counts['customers']} customers, {counts['orders']} orders (seed {config.seed}, {shop.seed_seconds:.1f}s)\n"
        )
    server = SimulatorHTTPServer((host, port), simulator)
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="simulator-http", daemon=True
    )
    thread.start()
    try:
        for domain, options in traffic:
            shop = simulator.store.get(domain)
            if shop is not None:
                simulator.start_traffic(shop, **options)
                out.write(f"Demo traffic running on {domain} (every ~{options.get('interval', 2.0)}s)\n")
        bound_host, bound_port = server.server_address[:2]
        out.write(f"Shopify simulator listening on http://{bound_host}:{bound_port}/ (control: /_simulator/)\n")
        for config in shops:
            out.write(f"  console --api-url for {config.domain}: http://{bound_host}:{bound_port}/{config.domain}\n")
        out.flush()
        if ready is not None:
            ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        server.shutdown()
        server.server_close()
        simulator.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        out.write("Shopify simulator stopped.\n")
        out.flush()


# --- control client ------------------------------------------------------------------------------------


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _pairs(items: list[str] | None) -> dict[str, Any]:
    result = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected key=value, got {item!r}")
        result[key] = _value(value)
    return result


def add_ctl_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the control client's options and sub-commands to `parser`."""
    parser.add_argument("--url", default="http://127.0.0.1:8001", help="Base URL of the running simulator.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    def command(name: str, help_text: str, *, shop: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        if shop:
            p.add_argument("shop", help="Shop domain, e.g. demo-outdoors.myshopify.com")
        return p

    command("health", "Is the simulator up?", shop=False)
    command("reset", "Forget every shop and delivery.", shop=False)
    command("shops", "List shops.", shop=False)
    command("shop", "Show one shop's state.")
    p = command("create-shop", "Create (or replace) a shop.")
    p.add_argument("--token", required=True)
    p.add_argument("--webhook-secret", required=True)
    p.add_argument("--webhook-url")
    p.add_argument("--scopes", help="Comma-separated scopes.")
    p.add_argument("--records", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--token-expires-in", type=int, help="Issue an expiring token with a refresh token.")
    p.add_argument("--no-throttling", action="store_true")
    command("reset-shop", "Re-create a shop from its settings (fresh records, tokens, no faults).")
    command("delete-shop", "Delete a shop.")
    p = command("scopes", "Replace the granted scopes.")
    p.add_argument("scopes", help="Comma-separated, e.g. read_products,write_orders")
    p = command("issue-token", "Issue another access token.")
    p.add_argument("--token")
    p.add_argument("--expires-in", type=int)
    for name, help_text in (
        ("revoke-token", "Revoke a token (default: all)."),
        ("expire-token", "Expire a token now (default: all)."),
    ):
        command(name, help_text).add_argument("--token")
    p = command("uninstall", "Uninstall the app (401s, app/uninstalled, later shop/redact).")
    p.add_argument("--shop-redact-after", type=float, help="Seconds until shop/redact (default 48 h x time scale).")
    p = command("install", "Reinstall the app with a new token.")
    p.add_argument("--token")
    for name in ("freeze", "unfreeze", "lock", "unlock"):
        command(name, f"{name.capitalize()} the shop (402 frozen / 423 locked).")
    p = command("limits", "Change rate limits or switch throttling.")
    p.add_argument("--rest-bucket-size", type=int)
    p.add_argument("--rest-leak-rate", type=float)
    p.add_argument("--graphql-maximum", type=float)
    p.add_argument("--graphql-restore-rate", type=float)
    p.add_argument("--throttling", choices=["on", "off"])
    p = command("fault", "Inject a fault.")
    p.add_argument("kind")
    p.add_argument("--rate", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--count", type=int)
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="Fault parameter (JSON values accepted).")
    command("faults", "List faults.")
    command("clear-faults", "Remove one fault kind, or all.").add_argument("kind", nargs="?")
    p = command("deliveries", "List webhook deliveries and their attempts.")
    p.add_argument("--topic")
    p.add_argument("--status")
    p.add_argument("--body", action="store_true")
    command("subscriptions", "List webhook subscriptions.")
    p = command("subscribe", "Add a webhook subscription.")
    p.add_argument("topic")
    p.add_argument("address")
    p = command("edit", "Edit a record behind the console's back.")
    p.add_argument("kind", help="products, variants, customers, orders, inventory_levels (id ITEM:LOCATION), ...")
    p.add_argument("id")
    p.add_argument("changes", nargs="+", metavar="FIELD=VALUE")
    p.add_argument("--silent", action="store_true", help="Send no webhook for this change.")
    p = command("create-order", "Place an order.")
    p.add_argument("lines", nargs="+", metavar="VARIANT_ID[:QTY]")
    p.add_argument("--customer-id", type=int)
    p.add_argument("--financial-status", default="paid")
    command("pay-order", "Capture payment on an order.").add_argument("order_id", type=int)
    command("fulfill-order", "Fulfil an order.").add_argument("order_id", type=int)
    p = command("set-stock", "Set available stock at a location.")
    p.add_argument("inventory_item_id", type=int)
    p.add_argument("location_id", type=int)
    p.add_argument("available", type=int)
    p = command("privacy", "Send a mandatory privacy webhook.")
    p.add_argument("kind", choices=["customers-data-request", "customers-redact", "shop-redact"])
    p.add_argument("--customer-id", type=int)
    p = command("traffic", "Start, stop or show demo traffic.")
    p.add_argument("mode", choices=["start", "stop", "status"])
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)


def _request(options: dict) -> tuple[str, str, dict | None, dict | None]:
    """(method, path, json body, query params) for the chosen sub-command."""
    action = options["action"]
    shop = f"/shops/{options.get('shop')}"
    simple = {
        "health": ("GET", "/health"),
        "reset": ("POST", "/reset"),
        "shops": ("GET", "/shops"),
        "shop": ("GET", shop),
        "reset-shop": ("POST", f"{shop}/reset"),
        "delete-shop": ("DELETE", shop),
        "faults": ("GET", f"{shop}/faults"),
        "subscriptions": ("GET", f"{shop}/subscriptions"),
        "freeze": ("POST", f"{shop}/freeze"),
        "unfreeze": ("POST", f"{shop}/unfreeze"),
        "lock": ("POST", f"{shop}/lock"),
        "unlock": ("POST", f"{shop}/unlock"),
    }
    if action in simple:
        return (*simple[action], None, None)
    if action == "create-shop":
        body = {"domain": options["shop"], "token": options["token"], "webhook_secret": options["webhook_secret"]}
        for key in ("webhook_url", "scopes", "records", "seed", "token_expires_in"):
            if options.get(key) is not None:
                body[key] = options[key]
        if options.get("no_throttling"):
            body["throttling"] = False
        return "POST", "/shops", body, None
    if action == "scopes":
        return "PUT", f"{shop}/scopes", {"scopes": options["scopes"]}, None
    if action == "issue-token":
        return (
            "POST",
            f"{shop}/tokens",
            {
                k: v
                for k, v in (("token", options.get("token")), ("expires_in", options.get("expires_in")))
                if v is not None
            },
            None,
        )
    if action in ("revoke-token", "expire-token"):
        return "POST", f"{shop}/{action}", {"token": options.get("token")}, None
    if action == "uninstall":
        return "POST", f"{shop}/uninstall", {"shop_redact_after": options.get("shop_redact_after")}, None
    if action == "install":
        return "POST", f"{shop}/install", {"token": options.get("token")}, None
    if action == "limits":
        body = {
            k: options[k]
            for k in ("rest_bucket_size", "rest_leak_rate", "graphql_maximum", "graphql_restore_rate")
            if options.get(k) is not None
        }
        if options.get("throttling"):
            body["throttling"] = options["throttling"] == "on"
        return "PUT", f"{shop}/limits", body, None
    if action == "fault":
        body = {
            "kind": options["kind"],
            "rate": options["rate"],
            "seed": options["seed"],
            "count": options.get("count"),
            "params": _pairs(options.get("param")),
        }
        return "POST", f"{shop}/faults", body, None
    if action == "clear-faults":
        return "DELETE", f"{shop}/faults" + (f"/{options['kind']}" if options.get("kind") else ""), None, None
    if action == "deliveries":
        params = {k: options[k] for k in ("topic", "status") if options.get(k)}
        if options.get("body"):
            params["body"] = "1"
        return "GET", f"{shop}/deliveries", None, params
    if action == "subscribe":
        return "POST", f"{shop}/subscriptions", {"topic": options["topic"], "address": options["address"]}, None
    if action == "edit":
        return (
            "PATCH",
            f"{shop}/records/{options['kind']}/{options['id']}",
            {"changes": _pairs(options["changes"]), "silent": options.get("silent", False)},
            None,
        )
    if action == "create-order":
        lines = []
        for line in options["lines"]:
            variant, _, quantity = line.partition(":")
            lines.append({"variant_id": int(variant), "quantity": int(quantity or 1)})
        body = {
            "lines": lines,
            "financial_status": options["financial_status"],
            "customer_id": options.get("customer_id"),
        }
        return "POST", f"{shop}/orders", body, None
    if action == "pay-order":
        return "POST", f"{shop}/orders/{options['order_id']}/pay", None, None
    if action == "fulfill-order":
        return "POST", f"{shop}/orders/{options['order_id']}/fulfill", None, None
    if action == "set-stock":
        body = {k: options[k] for k in ("inventory_item_id", "location_id", "available")}
        return "POST", f"{shop}/inventory", body, None
    if action == "privacy":
        return "POST", f"{shop}/privacy/{options['kind']}", {"customer_id": options.get("customer_id")}, None
    if action == "traffic":
        method = {"start": "POST", "stop": "DELETE", "status": "GET"}[options["mode"]]
        body = {"interval": options["interval"], "seed": options["seed"]} if options["mode"] == "start" else None
        return method, f"{shop}/traffic", body, None
    raise ValueError(f"unknown action {action}")


def run_ctl(options: dict, out: TextIO) -> int:
    """Call the control endpoint for the sub-command; print its JSON. Exit status 1 on errors."""
    method, path, body, params = _request(options)
    url = options["url"].rstrip("/") + "/_simulator" + path
    response = requests.request(method, url, json=body, params=params, timeout=CTL_TIMEOUT)
    try:
        data = response.json()
    except ValueError:
        data = {"status": response.status_code, "body": response.text}
    out.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return 0 if response.ok else 1
