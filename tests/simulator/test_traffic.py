"""The demo traffic generator keeps a store busy through the same code paths as the control API."""

from integrations.simulator.store import Shop, ShopConfig
from integrations.simulator.traffic import TrafficGenerator
from tests.simulator.helpers import DOMAIN, wait_until


def test_steps_change_records_and_emit_webhooks(sim, api, receiver):
    api.create_shop(webhook_url=receiver.url, records=60)
    shop = sim.simulator.store.get(DOMAIN)
    before = shop.records.counts()
    generator = TrafficGenerator(shop, seed=4, fault_chance=0.0)
    descriptions = [generator.step() for _ in range(40)]
    after = shop.records.counts()
    assert after["orders"] > before["orders"]
    assert any(d.startswith("fulfilled") for d in descriptions)
    assert any(d.startswith("stock of item") for d in descriptions)
    topics = {a.header("X-Shopify-Topic") for a in receiver.wait_for(30)}
    assert {"orders/create", "inventory_levels/update"} <= topics


def test_same_seed_same_actions():
    def run():
        shop = Shop(
            ShopConfig(domain="t.myshopify.com", token="t", webhook_secret="s", records=50, seed=1), clock=lambda: 1.8e9
        )
        generator = TrafficGenerator(shop, seed=9, fault_chance=0.2)
        return [generator.step() for _ in range(30)], [f["kind"] for f in shop.faults.describe()]

    first, second = run(), run()
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert first[1]  # faults were injected


def test_traffic_can_be_started_and_stopped_through_the_control_interface(api):
    api.create_shop(records=40)
    started = api.control("POST", f"/shops/{DOMAIN}/traffic", json={"interval": 0.02, "seed": 1}).json()
    assert started["running"] is True
    wait_until(lambda: api.control("GET", f"/shops/{DOMAIN}/traffic").json()["steps"] >= 3)
    stopped = api.control("DELETE", f"/shops/{DOMAIN}/traffic").json()
    assert stopped == {"running": False}
