"""Real time: the Runtime seam on an asyncio event loop (uvloop when installed)."""

from __future__ import annotations

import asyncio
import random
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
    """Runtime on an asyncio loop. Timers are the loop's own handles (they have `cancel()`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, seed: int | None = None) -> None:
        self.loop = loop if loop is not None else asyncio.get_event_loop_policy().get_event_loop()
        self.rng = random.Random(seed)

    def now(self) -> float:
        return self.loop.time()

    def call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        return self.loop.call_later(delay, callback, *args)

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any) -> asyncio.TimerHandle:
        return self.loop.call_at(when, callback, *args)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> asyncio.Handle:
        return self.loop.call_soon(callback, *args)


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
