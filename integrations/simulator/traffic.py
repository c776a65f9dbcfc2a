"""Demo traffic: keeps a simulated store busy with orders, payments, fulfilments, stock changes,
product and customer edits, and now and then a short injected fault, so a newcomer sees a
living console. Deterministic given a seed (apart from thread timing)."""

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal

from integrations.simulator.records import ADJECTIVES, NOUNS, money
from integrations.simulator.store import Shop

log = logging.getLogger(__name__)

# (action, weight)
ACTIONS = (
    ("new_order", 35),
    ("pay_order", 10),
    ("fulfill_order", 15),
    ("stock_change", 15),
    ("product_edit", 10),
    ("new_customer", 5),
    ("customer_edit", 5),
    ("order_note", 5),
)
# Short-lived faults the generator may inject: (kind, settings for FaultSet.set)
DEMO_FAULTS = (
    ("duplicate_delivery", {"count": 1}),
    ("out_of_order", {"count": 2, "params": {"window": 1.0, "gap": 0.2}}),
    ("delay", {"count": 1, "params": {"seconds": 5.0}}),
    ("wrong_signature", {"count": 1}),
    ("drop_delivery", {"count": 1}),
    ("api_5xx_rate", {"rate": 0.2}),
    ("throttle_storm", {"rate": 0.3}),
    ("slow_responses", {"rate": 0.3, "params": {"seconds": 1.5}}),
)


class TrafficGenerator:
    """Runs `step()` every `interval` seconds (with jitter) on a daemon thread."""

    def __init__(
        self,
        shop: Shop,
        *,
        interval: float = 2.0,
        seed: int = 0,
        fault_chance: float = 0.03,
        fault_seconds: float = 20.0,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        self.shop = shop
        self.interval = interval
        self.fault_chance = fault_chance
        self.fault_seconds = fault_seconds
        self.rng = random.Random(seed)
        self.on_step = on_step
        self.steps = 0
        self.recent: deque[str] = deque(maxlen=50)
        self._timed_faults: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start stepping on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=f"traffic-{self.shop.domain}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop stepping and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def running(self) -> bool:
        """Whether the thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval * (0.5 + self.rng.random())):
            try:
                self.step()
            except Exception:  # a demo generator must keep going
                log.exception("demo traffic step failed")

    def step(self) -> str:
        """Do one random merchant/customer action (and maybe inject or expire a fault)."""
        self._expire_faults()
        if self.rng.random() < self.fault_chance:
            self._inject_fault()
        action = self.rng.choices([a for a, _ in ACTIONS], weights=[w for _, w in ACTIONS])[0]
        description = getattr(self, f"_{action}")()
        self.steps += 1
        self.recent.append(description)
        if self.on_step:
            self.on_step(description)
        return description

    def _inject_fault(self) -> None:
        kind, settings = self.rng.choice(DEMO_FAULTS)
        self.shop.faults.set(kind, seed=self.rng.randrange(10**6), **settings)
        if settings.get("count") is None:
            self._timed_faults[kind] = time.monotonic() + self.fault_seconds
        self.recent.append(f"injected fault {kind}")

    def _expire_faults(self) -> None:
        now = time.monotonic()
        for kind, until in list(self._timed_faults.items()):
            if until <= now:
                self.shop.faults.clear(kind)
                del self._timed_faults[kind]

    # --- actions ------------------------------------------------------------------------------

    def _pick(self, ids: list[int]) -> int | None:
        # Favour recent records: that is where a store's activity is.
        if not ids:
            return None
        return ids[max(0, len(ids) - 1 - int(self.rng.expovariate(1 / 30)))]

    def _new_order(self) -> str:
        shop = self.shop
        with shop.action() as act:
            records = shop.records
            variants = [
                records.variants[self._pick(records.variants.ids)] for _ in range(self.rng.choice([1, 1, 2, 3]))
            ]
            lines = [(v, self.rng.randint(1, 3)) for v in {v["id"]: v for v in variants}.values()]
            customer = records.customers.get(self._pick(records.customers.ids)) if self.rng.random() < 0.7 else None
            if customer is None:
                customer = shop.create_customer(act)
            status = "paid" if self.rng.random() < 0.7 else "pending"
            order = shop.create_order(act, customer=customer, lines=lines, financial_status=status)
        return f"order {order['name']} ({status}) for {customer['email']}"

    def _pay_order(self) -> str:
        shop = self.shop
        with shop.action() as act:
            pending = [
                o
                for o in (shop.records.orders[i] for i in shop.records.orders.ids[-200:])
                if o["financial_status"] == "pending"
            ]
            if not pending:
                return "no pending order to pay"
            order = self.rng.choice(pending)
            shop.mark_paid(act, order)
        return f"payment captured on {order['name']}"

    def _fulfill_order(self) -> str:
        shop = self.shop
        with shop.action() as act:
            candidates = [
                o
                for o in (shop.records.orders[i] for i in shop.records.orders.ids[-200:])
                if o["financial_status"] == "paid" and o["fulfillment_status"] is None
            ]
            if not candidates:
                return "nothing to fulfil"
            order = self.rng.choice(candidates)
            shop.fulfill(act, order)
        return f"fulfilled {order['name']}"

    def _stock_change(self) -> str:
        shop = self.shop
        with shop.action() as act:
            item_id = self.rng.choice(shop.records.inventory_items.ids)
            location_id = self.rng.choice(shop.records.item_locations[item_id])
            level = shop.records.levels[(item_id, location_id)]
            target = max(0, (level["available"] or 0) + self.rng.choice([-5, -2, -1, 3, 10, 24]))
            shop.set_available(act, item_id, location_id, target)
        return f"stock of item {item_id} at location {location_id} set to {target}"

    def _product_edit(self) -> str:
        shop = self.shop
        with shop.action() as act:
            product = shop.records.products[self.rng.choice(shop.records.products.ids)]
            if self.rng.random() < 0.5 and product["variants"]:
                variant = self.rng.choice(product["variants"])
                price = Decimal(variant["price"]) * Decimal(self.rng.choice(["0.9", "1.05", "1.1"]))
                shop.update_variant(act, variant, {"price": money(price)})
                return f"price of {variant['sku']} now {variant['price']}"
            noun = self.rng.choice(NOUNS)[0]
            shop.update_product(act, product, {"title": f"{self.rng.choice(ADJECTIVES)} {noun}"})
        return f"product {product['id']} renamed to {product['title']}"

    def _new_customer(self) -> str:
        with self.shop.action() as act:
            customer = self.shop.create_customer(act)
        return f"new customer {customer['email']}"

    def _customer_edit(self) -> str:
        shop = self.shop
        with shop.action() as act:
            customer = shop.records.customers[self._pick(shop.records.customers.ids)]
            shop.update_customer(
                act, customer, {"note": self.rng.choice(["Prefers email", "Called support", "VIP since 2025", None])}
            )
        return f"customer {customer['id']} note changed"

    def _order_note(self) -> str:
        shop = self.shop
        with shop.action() as act:
            order = shop.records.orders[self._pick(shop.records.orders.ids)]
            shop.update_order(
                act, order, {"note": self.rng.choice(["Gift wrap please", "Leave at the door", "Call on arrival"])}
            )
        return f"note added to {order['name']}"
