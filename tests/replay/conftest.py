import pytest

from integrations.processing.pump import Pump
from tests.factories import ShopFactory


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
