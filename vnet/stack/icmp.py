"""ICMP plumbing shared by IPv4 and IPv6: error rate limiting and echo bookkeeping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class TokenBucket:
    """Rate limiter for ICMP errors (RFC 4443 2.4(f), RFC 1812 4.3.2.8)."""

    __slots__ = ("rate", "burst", "tokens", "last", "limited")

    def __init__(self, rate: float = 100.0, burst: float = 10.0) -> None:
        self.rate = rate  # tokens per second
        self.burst = burst
        self.tokens = burst
        self.last = 0.0
        self.limited = 0

    def allow(self, now: float) -> bool:
        t = self.tokens + (now - self.last) * self.rate
        self.last = now
        if t > self.burst:
            t = self.burst
        if t < 1.0:
            self.tokens = t
            self.limited += 1
            return False
        self.tokens = t - 1.0
        return True


EchoCallback = Callable[[Any, int], None]  # (IpMeta of the reply, payload length)


class EchoTable:
    """Outstanding echo requests: (ident, seq) -> callback, bounded."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self.waiters: dict[tuple[int, int, int], EchoCallback] = {}
        self.unmatched = 0

    def expect(self, version: int, ident: int, seq: int, cb: EchoCallback) -> None:
        if len(self.waiters) >= self.limit:
            self.waiters.pop(next(iter(self.waiters)))
        self.waiters[(version, ident, seq)] = cb

    def forget(self, version: int, ident: int, seq: int) -> None:
        self.waiters.pop((version, ident, seq), None)

    def reply(self, version: int, ident: int, seq: int, meta: Any, length: int) -> None:
        cb = self.waiters.pop((version, ident, seq), None)
        if cb is None:
            self.unmatched += 1
            return
        cb(meta, length)
