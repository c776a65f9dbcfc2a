"""Shopify's rate limiters: the REST leaky bucket and the GraphQL cost bucket.

Both read time from an injectable clock so tests can check leak and restore rates exactly.
Callers serialise access (the shop lock), so the buckets themselves are not thread-safe.
"""

import math
from dataclasses import dataclass

from integrations.simulator.clock import Clock

# Standard plan defaults (facts file, section 3). Plus is 400/20 (REST) and 20000/1000 (GraphQL).
REST_BUCKET_SIZE = 40
REST_LEAK_RATE = 2.0
GRAPHQL_MAXIMUM_AVAILABLE = 2000.0
GRAPHQL_RESTORE_RATE = 100.0
GRAPHQL_SINGLE_QUERY_MAX_COST = 1000


@dataclass
class RestDecision:
    """Outcome of one REST call against the leaky bucket."""

    allowed: bool
    level: float  # fill after this request (or current fill when refused)
    size: int
    retry_after: float  # seconds until the request would fit; 0 when allowed

    @property
    def call_limit_header(self) -> str:
        """Value of `X-Shopify-Shop-Api-Call-Limit`, e.g. `32/40`."""
        return f"{math.ceil(self.level - 1e-9)}/{self.size}"


class LeakyBucket:
    """REST limiter: each request adds 1; the bucket drains at `leak_rate` per second.

    Pass/fail, no queueing: a request that would overflow is refused at once.
    """

    def __init__(self, size: int, leak_rate: float, clock: Clock) -> None:
        self.size = size
        self.leak_rate = leak_rate
        self._clock = clock
        self._level = 0.0
        self._updated = clock()

    def _leak(self) -> None:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._updated) * self.leak_rate)
        self._updated = now

    @property
    def level(self) -> float:
        """Current fill after leaking."""
        self._leak()
        return self._level

    def acquire(self, cost: float = 1.0) -> RestDecision:
        """Add `cost` if it fits; otherwise refuse and say how long until it would fit."""
        self._leak()
        if self._level + cost > self.size + 1e-9:
            wait = (self._level + cost - self.size) / self.leak_rate
            return RestDecision(False, self._level, self.size, wait)
        self._level += cost
        return RestDecision(True, self._level, self.size, 0.0)

    def fill(self) -> None:
        """Make the bucket full (a throttling storm)."""
        self._leak()
        self._level = float(self.size)

    def resize(self, size: int, leak_rate: float) -> None:
        """Change size and leak rate, keeping the current fill (capped at the new size)."""
        self._leak()
        self.size = size
        self.leak_rate = leak_rate
        self._level = min(self._level, float(size))


class CostBucket:
    """GraphQL limiter: holds up to `maximum` points, restored at `restore_rate` per second.

    A query needs its requested cost available up front; the difference between requested and
    actual cost is refunded after execution.
    """

    def __init__(self, maximum: float, restore_rate: float, clock: Clock) -> None:
        self.maximum = float(maximum)
        self.restore_rate = float(restore_rate)
        self._clock = clock
        self._available = float(maximum)
        self._updated = clock()

    def _restore(self) -> None:
        now = self._clock()
        self._available = min(self.maximum, self._available + (now - self._updated) * self.restore_rate)
        self._updated = now

    @property
    def available(self) -> float:
        """Points available now."""
        self._restore()
        return self._available

    def consume(self, requested: float) -> bool:
        """Take `requested` points if available; False (nothing taken) when throttled."""
        self._restore()
        if requested > self._available + 1e-9:
            return False
        self._available -= requested
        return True

    def refund(self, points: float) -> None:
        """Give back points a query requested but did not use."""
        self._restore()
        self._available = min(self.maximum, self._available + max(0.0, points))

    def drain(self) -> None:
        """Empty the bucket (a throttling storm)."""
        self._restore()
        self._available = 0.0

    def resize(self, maximum: float, restore_rate: float) -> None:
        """Change capacity and restore rate, keeping what is available (capped)."""
        self._restore()
        self.maximum = float(maximum)
        self.restore_rate = float(restore_rate)
        self._available = min(self._available, self.maximum)

    def status(self) -> dict:
        """The `throttleStatus` object Shopify returns in `extensions.cost`."""
        available = self.available
        return {
            "maximumAvailable": self.maximum,
            "currentlyAvailable": int(available),
            "restoreRate": self.restore_rate,
        }
