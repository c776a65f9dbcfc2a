"""Clocks the simulator reads time from, so tests can move time instead of sleeping."""

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything callable that returns the current epoch time."""

    def __call__(self) -> float:
        """Seconds since the epoch (wall time)."""
        ...


def system_clock() -> float:
    """The real wall clock."""
    return time.time()


class FakeClock:
    """A clock that only moves when told to; thread-safe."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`."""
        with self._lock:
            self._now += seconds
