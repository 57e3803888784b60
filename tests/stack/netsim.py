"""A fake network layer for transport tests: hosts exchange IP payloads through a
simulated path with delay, jitter (reordering), loss, duplication and a rate-limited
drop-tail bottleneck, all driven by a SimRuntime (deterministic with a seed)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class IpMeta:
    src: Any
    dst: Any
    iface: Any = None
    version: int = 4
    hop_limit: int = 64


class Path:
    def __init__(self, rt: Any, delay: float = 0.005, jitter: float = 0.0, loss: float = 0.0,
                 dup: float = 0.0, rate: float | None = None, queue: int = 100,
                 mtu: int = 1500) -> None:
        self.rt = rt
        self.delay = delay
        self.jitter = jitter
        self.loss = loss
        self.dup = dup
        self.rate = rate  # bytes per second at the bottleneck, None = unlimited
        self.queue = queue  # packets
        self.mtu = mtu
        self.nodes: dict[Any, FakeNet] = {}
        self._busy_until = 0.0
        self.sent = 0
        self.dropped = 0
        self.filter: Callable[[Any, Any, int, bytes], bool] | None = None  # False drops

    def carry(self, src: Any, dst: Any, proto: int, payload: bytes) -> None:
        self.sent += 1
        rt = self.rt
        if self.filter is not None and not self.filter(src, dst, proto, payload):
            self.dropped += 1
            return
        if self.loss and rt.rng.random() < self.loss:
            self.dropped += 1
            return
        when = rt.now()
        if self.rate:
            tx = (len(payload) + 40) / self.rate
            start = max(when, self._busy_until)
            if (start - when) / tx > self.queue:
                self.dropped += 1
                return
            self._busy_until = start + tx
            when = start + tx
        copies = 2 if self.dup and rt.rng.random() < self.dup else 1
        for _ in range(copies):
            d = self.delay + (rt.rng.random() * self.jitter if self.jitter else 0.0)
            rt.call_at(when + d, self._arrive, src, dst, proto, payload)

    def _arrive(self, src: Any, dst: Any, proto: int, payload: bytes) -> None:
        node = self.nodes.get(dst)
        if node is not None:
            node.input(src, dst, proto, payload)


class FakeNet:
    """The network-layer seam the transports use, on a `Path`."""

    def __init__(self, rt: Any, path: Path, *addrs: str) -> None:
        self.rt = rt
        self.path = path
        self.addrs = [ipaddress.ip_address(a) for a in addrs]
        for a in self.addrs:
            path.nodes[a] = self
        self.handlers: dict[int, Callable] = {}
        self.error_handlers: dict[int, Callable] = {}

    def register_transport(self, proto: int, handler: Callable) -> None:
        self.handlers[proto] = handler

    def register_error_handler(self, proto: int, handler: Callable) -> None:
        self.error_handlers[proto] = handler

    def ip_send(self, dst: Any, proto: int, payload: bytes, src: Any = None,
                hop_limit: int | None = None) -> bool:
        if src is None:
            src = self.source_address_for(dst)
        self.path.carry(src, dst, proto, bytes(payload))
        return True

    def source_address_for(self, dst: Any) -> Any:
        for a in self.addrs:
            if a.version == dst.version:
                return a
        return None

    def path_mtu(self, dst: Any) -> int:
        return self.path.mtu

    def input(self, src: Any, dst: Any, proto: int, payload: bytes) -> None:
        h = self.handlers.get(proto)
        if h is not None:
            h(IpMeta(src, dst, None, src.version, 64), memoryview(payload))
