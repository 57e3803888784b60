"""Runtimes: the clock and timers engines run on (real or simulated)."""

from vnet.runtime.base import Runtime, Timer
from vnet.runtime.realtime import AsyncioRuntime
from vnet.runtime.sim import SimRuntime

__all__ = ["Runtime", "Timer", "AsyncioRuntime", "SimRuntime"]
