import pytest

from integrations.simulator.clock import FakeClock
from integrations.simulator.server import Simulator, serve_in_thread
from tests.simulator.helpers import Api, Receiver

# 4 hours of webhook retries take 1.44 s at this scale.
TIME_SCALE = 0.0001


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def sim():
    """A simulator on real HTTP (ephemeral port) with a fast retry schedule and short timeouts."""
    running = serve_in_thread(Simulator(time_scale=TIME_SCALE, connect_timeout=0.5, total_timeout=0.5))
    yield running
    running.stop()


@pytest.fixture
def clocked_sim(clock):
    """Like `sim`, but buckets, tokens and timestamps follow the test's FakeClock."""
    running = serve_in_thread(Simulator(time_scale=TIME_SCALE, clock=clock, connect_timeout=0.5, total_timeout=0.5))
    yield running
    running.stop()


@pytest.fixture
def api(sim):
    return Api(sim.url)


@pytest.fixture
def clocked_api(clocked_sim):
    return Api(clocked_sim.url)


@pytest.fixture
def receiver():
    running = Receiver()
    yield running
    running.stop()
