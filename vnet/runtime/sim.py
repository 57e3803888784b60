"""Simulated time: a deterministic discrete-event scheduler.

Events at equal times run in the order they were scheduled (a sequence number
breaks ties), so a seeded run is exactly reproducible.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from typing import Any


class SimTimer:
    __slots__ = ("when", "seq", "callback", "args", "cancelled")

    def __init__(self, when: float, seq: int, callback: Callable[..., Any], args: tuple) -> None:
        self.when = when
        self.seq = seq
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: SimTimer) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class SimRuntime:
    """Discrete-event runtime. `run()` advances time by jumping from event to event."""

    def __init__(self, seed: int = 0, start: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self._now = start
        self._heap: list[SimTimer] = []
        self._seq = 0
        self.events_run = 0

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> SimTimer:
        if when < self._now:
            when = self._now
        self._seq += 1
        t = SimTimer(when, self._seq, callback, args)
        heapq.heappush(self._heap, t)
        return t

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> SimTimer:
        return self.call_at(self._now + max(0.0, delay), callback, *args)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> SimTimer:
        return self.call_at(self._now, callback, *args)

    def pending(self) -> int:
        return sum(1 for t in self._heap if not t.cancelled)

    def step(self) -> bool:
        """Run the next event. Returns False when nothing is left."""
        heap = self._heap
        while heap:
            t = heapq.heappop(heap)
            if t.cancelled:
                continue
            self._now = t.when
            self.events_run += 1
            t.callback(*t.args)
            return True
        return False

    def run(self, until: float | None = None, max_events: int | None = None) -> float:
        """Run events until the heap is empty, time `until` is reached, or `max_events` ran.

        With `until`, the clock ends exactly at `until` even if no event is there.
        """
        heap = self._heap
        n = 0
        while heap:
            t = heap[0]
            if until is not None and t.when > until:
                break
            heapq.heappop(heap)
            if t.cancelled:
                continue
            self._now = t.when
            self.events_run += 1
            t.callback(*t.args)
            n += 1
            if max_events is not None and n >= max_events:
                return self._now
        if until is not None and until > self._now:
            self._now = until
        return self._now

    def run_for(self, duration: float) -> float:
        return self.run(until=self._now + duration)
