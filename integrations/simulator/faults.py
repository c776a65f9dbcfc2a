"""Per-shop fault injection, deterministic given a seed.

Each fault kind has its own `random.Random(seed)`, so the sequence of hit/miss decisions for a
kind depends only on its seed and the order of the events it is asked about.
"""

import random
import threading
from dataclasses import dataclass, field
from typing import Any

# kind -> default parameters (and what they mean)
FAULT_DEFAULTS: dict[str, dict[str, Any]] = {
    # Webhooks
    "duplicate_delivery": {"copies": 1},  # extra identical deliveries (same webhook id)
    "out_of_order": {"window": 0.5, "gap": 0.05},  # hold `window` s, then release newest first, `gap` s apart
    "delay": {"seconds": 2.0},  # first attempt waits this long
    "wrong_signature": {},  # HMAC made with a wrong key
    "drop_delivery": {},  # never sent (listed as dropped)
    # Admin API
    # answer one of these instead (429 too), with Retry-After when `retry_after` is set
    "api_5xx_rate": {"statuses": [500, 503], "retry_after": None},
    "small_bucket": {"rest_size": 5, "rest_leak_rate": 1.0, "graphql_maximum": 100.0, "graphql_restore_rate": 10.0},
    "throttle_storm": {},  # the bucket is found full/empty before the request
    "slow_responses": {"seconds": 0.5},  # answer after this delay
}
FAULT_KINDS = tuple(FAULT_DEFAULTS)


class FaultError(ValueError):
    """Invalid fault configuration."""


@dataclass
class Fault:
    """One configured fault with its own seeded random source and hit counters."""

    kind: str
    rate: float = 1.0
    seed: int = 0
    count: int | None = None  # stop after this many hits; None = unlimited
    params: dict[str, Any] = field(default_factory=dict)
    hits: int = 0
    checks: int = 0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def describe(self) -> dict:
        """JSON-able settings and counters."""
        return {
            "kind": self.kind,
            "rate": self.rate,
            "seed": self.seed,
            "count": self.count,
            "params": self.params,
            "hits": self.hits,
            "checks": self.checks,
        }


class FaultSet:
    """The faults configured on one shop."""

    def __init__(self) -> None:
        self._faults: dict[str, Fault] = {}
        self._lock = threading.Lock()

    def set(
        self, kind: str, *, rate: float = 1.0, seed: int = 0, count: int | None = None, params: dict | None = None
    ) -> Fault:
        """Configure (or replace) the fault `kind`; unknown parameters are rejected."""
        if kind not in FAULT_DEFAULTS:
            raise FaultError(f"Unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= float(rate) <= 1.0:
            raise FaultError("rate must be between 0 and 1")
        unknown = set(params or {}) - set(FAULT_DEFAULTS[kind])
        if unknown:
            raise FaultError(f"Unknown parameters for {kind}: {', '.join(sorted(unknown))}")
        fault = Fault(
            kind,
            float(rate),
            int(seed),
            None if count is None else int(count),
            {**FAULT_DEFAULTS[kind], **(params or {})},
        )
        with self._lock:
            self._faults[kind] = fault
        return fault

    def clear(self, kind: str | None = None) -> None:
        """Remove one fault, or all of them."""
        with self._lock:
            if kind is None:
                self._faults.clear()
            else:
                self._faults.pop(kind, None)

    def get(self, kind: str) -> Fault | None:
        """The configured fault, hit or not."""
        return self._faults.get(kind)

    def hit(self, kind: str) -> Fault | None:
        """Ask whether `kind` strikes this time: the fault when it does, None otherwise."""
        fault = self._faults.get(kind)
        if fault is None:
            return None
        with self._lock:
            if fault.count is not None and fault.hits >= fault.count:
                return None
            fault.checks += 1
            if fault.rate >= 1.0 or fault.rng.random() < fault.rate:
                fault.hits += 1
                return fault
        return None

    def describe(self) -> list[dict]:
        """All configured faults with their counters."""
        return [fault.describe() for fault in self._faults.values()]
