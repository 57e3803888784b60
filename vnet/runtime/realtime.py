"""Real time: the Runtime seam on an asyncio event loop (uvloop when installed)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from typing import Any


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when it is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - depends on the environment
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class AsyncioRuntime:
    """Runtime on an asyncio loop. Timers are the loop's own handles (they have `cancel()`).

    `now()` reads CLOCK_MONOTONIC directly rather than `loop.time()`: uvloop's loop
    time is libuv's cached millisecond clock, too coarse for capture timestamps
    and RTTs. Deadlines are converted to delays on the loop's own clock.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, seed: int | None = None) -> None:
        self.loop = loop if loop is not None else asyncio.get_event_loop_policy().get_event_loop()
        self.rng = random.Random(seed)
        # libuv truncates delays to whole milliseconds against a stale clock, so uvloop
        # timers fire up to ~1 ms early; those are re-armed until the deadline passes.
        self._coarse = type(self.loop).__module__.startswith("uvloop")

    def now(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        if self._coarse and delay > 0:
            return _PreciseTimer(self.loop, time.monotonic() + delay, callback, args)
        return self.loop.call_later(delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> Any:
        if self._coarse:
            return _PreciseTimer(self.loop, when, callback, args)
        return self.loop.call_later(max(0.0, when - time.monotonic()), callback, *args)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> asyncio.Handle:
        return self.loop.call_soon(callback, *args)


class _PreciseTimer:
    """A timer that never fires before its deadline on a millisecond-granular loop."""

    __slots__ = ("loop", "when", "callback", "args", "handle")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float, callback: Callable[..., Any],
                 args: tuple) -> None:
        self.loop = loop
        self.when = when
        self.callback = callback
        self.args = args
        self.handle: asyncio.Handle = loop.call_later(max(0.0, when - time.monotonic()), self._fire)

    def _fire(self) -> None:
        remaining = self.when - time.monotonic()
        if remaining > 20e-6:
            self.handle = self.loop.call_later(remaining, self._fire)
            return
        self.callback(*self.args)

    def cancel(self) -> None:
        self.handle.cancel()

    def cancelled(self) -> bool:
        return self.handle.cancelled()


def run(main: Callable[[AsyncioRuntime], Coroutine[Any, Any, Any]], seed: int | None = None) -> Any:
    """Create a loop (uvloop if present), build a runtime on it and run `main(runtime)`."""
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        rt = AsyncioRuntime(loop, seed=seed)
        return loop.run_until_complete(main(rt))
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
