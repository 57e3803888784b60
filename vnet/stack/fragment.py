"""Fragment reassembly for IPv4 and IPv6, bounded in datagrams, bytes and time.

Overlapping fragments make the whole datagram be discarded (RFC 5722 for IPv6;
we apply the same rule to IPv4, which defeats overlap-based evasion). An exact
duplicate of a fragment already held is ignored. When the limits are reached the
oldest datagram in progress is evicted, so a fragment flood cannot grow memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from vnet.runtime.base import Runtime, Timer

MAX_DATAGRAM = 65535


class _Datagram:
    __slots__ = ("pieces", "received", "total", "first", "timer", "size")

    def __init__(self) -> None:
        self.pieces: list[tuple[int, bytes]] = []
        self.received = 0
        self.total = -1  # known once the last fragment arrived
        self.first: Any = None  # data the caller keeps from the offset-0 fragment (its headers)
        self.timer: Timer | None = None
        self.size = 0


class Reassembler:
    def __init__(self, rt: Runtime, timeout: float = 30.0, max_datagrams: int = 64,
                 max_bytes: int = 1 << 20,
                 on_timeout: Callable[[Hashable, Any], None] | None = None) -> None:
        self.rt = rt
        self.timeout = timeout
        self.max_datagrams = max_datagrams
        self.max_bytes = max_bytes
        self.on_timeout = on_timeout  # (key, first) for ICMP time exceeded when the first came
        self._dgrams: dict[Hashable, _Datagram] = {}
        self.bytes = 0
        self.reassembled = 0
        self.overlaps = 0
        self.timeouts = 0
        self.evicted = 0
        self.too_big = 0
        self.bad = 0

    def __len__(self) -> int:
        return len(self._dgrams)

    def add(self, key: Hashable, offset: int, more: bool, data: bytes | memoryview,
            first: Any = None) -> tuple[bytes, Any] | None:
        """Add one fragment; return (payload, first) when the datagram is complete."""
        n = len(data)
        end = offset + n
        if end > MAX_DATAGRAM or (more and (n == 0 or n & 7)):
            self.bad += 1  # non-last fragments carry a multiple of 8 bytes (RFC 791, 8200)
            self._drop(key)
            return None
        d = self._dgrams.get(key)
        if d is None:
            while self._dgrams and (len(self._dgrams) >= self.max_datagrams
                                    or self.bytes + n > self.max_bytes):
                oldest = next(iter(self._dgrams))
                self._drop(oldest)
                self.evicted += 1
            if n > self.max_bytes:
                self.too_big += 1
                return None
            d = self._dgrams[key] = _Datagram()
            d.timer = self.rt.call_later(self.timeout, self._expire, key)
        elif self.bytes + n > self.max_bytes:
            self._drop(key)
            self.too_big += 1
            return None
        if not more:
            if d.total >= 0 and d.total != end:
                self._overlap(key)
                return None
            d.total = end
        if d.total >= 0 and end > d.total:
            self._overlap(key)
            return None
        for o, piece in d.pieces:
            pe = o + len(piece)
            if offset < pe and o < end:
                if o == offset and pe == end:
                    return None  # exact duplicate
                self._overlap(key)
                return None
        d.pieces.append((offset, bytes(data)))
        d.received += n
        d.size += n
        self.bytes += n
        if offset == 0:
            d.first = first
        if d.received != d.total:
            return None
        # Complete: no overlaps and the byte count matches, so the pieces tile [0, total).
        self._drop(key)
        d.pieces.sort()
        self.reassembled += 1
        return b"".join(p for _, p in d.pieces), d.first

    def _overlap(self, key: Hashable) -> None:
        self.overlaps += 1
        self._drop(key)

    def _drop(self, key: Hashable) -> _Datagram | None:
        d = self._dgrams.pop(key, None)
        if d is not None:
            self.bytes -= d.size
            if d.timer is not None:
                d.timer.cancel()
        return d

    def _expire(self, key: Hashable) -> None:
        d = self._drop(key)
        if d is None:
            return
        self.timeouts += 1
        if d.first is not None and self.on_timeout is not None:
            self.on_timeout(key, d.first)

    def counters(self) -> dict[str, int]:
        return {"in_progress": len(self._dgrams), "bytes": self.bytes,
                "reassembled": self.reassembled, "overlaps": self.overlaps,
                "timeouts": self.timeouts, "evicted": self.evicted, "bad": self.bad,
                "too_big": self.too_big}
