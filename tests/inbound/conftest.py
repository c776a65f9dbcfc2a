"""Inbound tests: the store simulator sends signed webhooks over real HTTP to the console."""

import base64
import hashlib
import hmac
import json

import pytest
import requests

from integrations.simulator.server import Simulator, serve_in_thread
from tests.factories import ShopFactory

DOMAIN = "camp-co.myshopify.com"
SECRET = "whsec-camp-co-0123456789"
TOKEN = "shpat_camp_co_token"


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(body: bytes, *, topic="orders/create", webhook_id="wh-1", domain=DOMAIN, secret=SECRET) -> dict:
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, secret),
        "X-Shopify-Shop-Domain": domain,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": f"ev-{webhook_id}",
        "X-Shopify-Triggered-At": "2026-05-04T14:15:04.290670248Z",
    }


class SimulatorClient:
    """The simulator's control interface, over HTTP."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def control(self, method: str, path: str, **body):
        response = self.http.request(method, f"{self.url}/_simulator{path}", json=body or None, timeout=10)
        assert response.status_code < 300, response.text
        return response.json()

    def create_shop(self, webhook_url: str, *, domain=DOMAIN, secret=SECRET, topics=None, records=20, **extra):
        config = {
            "domain": domain,
            "token": TOKEN,
            "webhook_secret": secret,
            "webhook_url": webhook_url,
            "records": records,
        }
        if topics is not None:
            config["topics"] = topics
        return self.control("POST", "/shops", **config, **extra)

    def records(self, kind: str, domain=DOMAIN) -> list[dict]:
        return self.control("GET", f"/shops/{domain}/records/{kind}")["items"]

    def create_order(self, domain=DOMAIN, **options) -> dict:
        variant = self.records("variants", domain)[0]
        return self.control(
            "POST", f"/shops/{domain}/orders", lines=[{"variant_id": variant["id"], "quantity": 1}], **options
        )

    def fault(self, kind: str, domain=DOMAIN, **options):
        return self.control("POST", f"/shops/{domain}/faults", kind=kind, **options)

    def deliveries(self, domain=DOMAIN) -> list[dict]:
        return self.control("GET", f"/shops/{domain}/deliveries")["deliveries"]


@pytest.fixture
def simulator():
    running = serve_in_thread(Simulator(time_scale=0.0005, connect_timeout=1.0, total_timeout=5.0))
    yield SimulatorClient(running.url)
    running.stop()
    # Let deliveries already on the wire land now, not in the next test's database.
    running.simulator.sender.stop(wait=True)


@pytest.fixture
def console_shop(transactional_db):
    return ShopFactory(domain=DOMAIN, webhook_secret=SECRET, access_token=TOKEN)


@pytest.fixture
def receiver_url(live_server):
    return f"{live_server.url}/webhooks/shopify"


def order_payload(order_id=5512345678901, updated_at="2026-05-04T10:15:04-04:00", **fields) -> bytes:
    payload = {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": "#1042",
        "order_number": 1042,
        "email": "ana@example.com",
        "updated_at": updated_at,
        "financial_status": "paid",
        "total_price": "48.20",
        "currency": "USD",
        "line_items": [],
    }
    payload.update(fields)
    return json.dumps(payload).encode()
