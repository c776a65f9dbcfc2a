import pytest

from integrations.models import Event
from integrations.processing.pump import Pump
from tests.factories import ShopFactory
from tests.outbound.conftest import simulator, store, store_factory  # noqa: F401 - simulator fixtures
from tests.replay.helpers import failing
from tests.webhooks import order, receive


@pytest.fixture
def shop(db):
    return ShopFactory()


@pytest.fixture
def drain():
    """Run pump passes in this process until nothing is left to do (live events and replays)."""

    def run(passes: int = 50) -> int:
        pump = Pump(tag="test")
        total = 0
        for _ in range(passes):
            handled = pump.run_once()
            total += handled
            if not handled:
                break
        return total

    return run


@pytest.fixture
def failed_paid(shop, drain, monkeypatch):
    """make(n) -> n orders/paid events whose notify_fulfillment failed (not retryable)."""

    def make(n: int = 1, start: int = 1001) -> list[Event]:
        restore = failing(monkeypatch, "notify_fulfillment", "warehouse API down")
        events = [receive(shop, "orders/paid", order(order_id=start + i, customer={"id": 7000 + i})) for i in range(n)]
        drain()
        restore()
        for event in events:
            event.refresh_from_db()
            assert event.status == Event.Status.FAILED
        return events

    return make
