"""Outbound tests talk to a real simulator over HTTP: a console Shop whose API URL points at it."""

import pytest

from integrations.simulator.server import Simulator, serve_in_thread
from tests.factories import ShopFactory
from tests.simulator.helpers import Api

TOKEN = "shpat_outbound_test"
SECRET = "outbound-test-secret"


class Store:
    """The simulator side of one shop: control calls and record reads."""

    def __init__(self, api: Api, domain: str) -> None:
        self.api, self.domain = api, domain

    def control(self, method: str, path: str, **kwargs):
        response = self.api.control(method, f"/shops/{self.domain}{path}", **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def records(self, kind: str) -> list[dict]:
        return self.control("GET", f"/records/{kind}", params={"limit": 1000})["items"]

    def record(self, kind: str, record_id) -> dict:
        data = self.control("GET", f"/records/{kind}/{record_id}")
        return data.get("record", data) if isinstance(data, dict) else data

    def fault(self, kind: str, **body) -> None:
        self.control("POST", "/faults", json={"kind": kind, **body})

    def clear_faults(self) -> None:
        self.control("DELETE", "/faults")

    def limits(self, **body) -> None:
        self.control("PUT", "/limits", json=body)


@pytest.fixture
def simulator():
    running = serve_in_thread(Simulator(time_scale=0.0001, connect_timeout=0.5, total_timeout=0.5))
    yield running
    running.stop()


@pytest.fixture
def store_factory(simulator, db):
    """store_factory(**shop settings) -> (console Shop, Store) on the running simulator."""
    api = Api(simulator.url)
    made = []

    def make(domain: str | None = None, records: int = 40, **settings):
        shop = ShopFactory(access_token=TOKEN, webhook_secret=SECRET, **({"domain": domain} if domain else {}))
        body = {
            "domain": shop.domain,
            "token": TOKEN,
            "webhook_secret": SECRET,
            "records": records,
            "seed": 3,
            **settings,
        }
        response = api.control("POST", "/shops", json=body)
        assert response.status_code == 201, response.text
        shop.api_url = f"{simulator.url}/{shop.domain}"
        shop.save(update_fields=["api_url"])
        made.append(shop)
        return shop, Store(api, shop.domain)

    return make


@pytest.fixture
def store(store_factory):
    return store_factory()
