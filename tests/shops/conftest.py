# The simulator fixtures of the outbound tests: a console Shop pointed at a running simulator.
from tests.outbound.conftest import simulator, store, store_factory  # noqa: F401
