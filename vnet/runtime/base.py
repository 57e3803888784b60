"""The seam between protocol engines and time.

Engines never read the clock or sleep: they ask a `Runtime` for `now()` and for
timers. Two runtimes implement it: real time on asyncio (`realtime.py`) and
simulated time on a discrete-event heap (`sim.py`).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Timer(Protocol):
    """A scheduled callback that can be cancelled (idempotently)."""

    def cancel(self) -> None: ...


class Runtime(Protocol):
    """What an engine may ask of its environment: time, timers, randomness."""

    #: Random source. Seeded in simulated time so runs are reproducible.
    rng: random.Random

    def now(self) -> float:
        """Seconds on a monotonic clock (simulated time starts at 0)."""
        ...

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run `callback(*args)` after `delay` seconds."""
        ...

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run `callback(*args)` at time `when` (same clock as `now()`)."""
        ...

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> Timer:
        """Run `callback(*args)` as soon as possible, after the current callback."""
        ...
