"""Longest-prefix-match routing tables for IPv4 and IPv6.

One dict per prefix length, keyed by the masked network as an int; lookup walks
the lengths present from longest to shortest, so a lookup costs at most one
dict probe per distinct prefix length in the table.
"""

from __future__ import annotations

import ipaddress
from typing import Any

CONNECTED = "connected"
STATIC = "static"
RA = "ra"


class Route:
    __slots__ = ("network", "plen", "iface", "gateway", "origin", "expires")

    def __init__(self, network: int, plen: int, iface: Any, gateway: bytes | None, origin: str,
                 expires: float | None = None) -> None:
        self.network = network
        self.plen = plen
        self.iface = iface
        self.gateway = gateway  # next hop (packed address) or None when on-link
        self.origin = origin
        self.expires = expires  # absolute time for routes learned from RAs

    def __repr__(self) -> str:
        return f"<Route {self.network:x}/{self.plen} {self.origin}>"


class RouteTable:
    def __init__(self, bits: int, max_routes: int = 65536) -> None:
        self.bits = bits
        self.max_routes = max_routes
        self._by_len: dict[int, dict[int, Route]] = {}
        self._lens: list[int] = []  # present prefix lengths, longest first
        self.count = 0
        self.version = 0  # bumped on every change, so callers may cache lookups

    def _mask(self, plen: int) -> int:
        return ((1 << plen) - 1) << (self.bits - plen) if plen else 0

    def add(self, network: int, plen: int, iface: Any, gateway: bytes | None = None,
            origin: str = STATIC, expires: float | None = None) -> Route:
        if not 0 <= plen <= self.bits:
            raise ValueError(f"prefix length {plen} out of range 0..{self.bits}")
        network &= self._mask(plen)
        table = self._by_len.get(plen)
        if table is None:
            table = self._by_len[plen] = {}
            self._lens = sorted(self._by_len, reverse=True)
        if network not in table:
            if self.count >= self.max_routes:
                raise ValueError(f"routing table full ({self.max_routes} routes)")
            self.count += 1
        r = table[network] = Route(network, plen, iface, gateway, origin, expires)
        self.version += 1
        return r

    def remove(self, network: int, plen: int) -> Route | None:
        table = self._by_len.get(plen)
        if table is None:
            return None
        r = table.pop(network & self._mask(plen), None)
        if r is not None:
            self.count -= 1
            self.version += 1
            if not table:
                del self._by_len[plen]
                self._lens = sorted(self._by_len, reverse=True)
        return r

    def get(self, network: int, plen: int) -> Route | None:
        table = self._by_len.get(plen)
        return table.get(network & self._mask(plen)) if table else None

    def lookup(self, addr: int) -> Route | None:
        bits = self.bits
        for plen in self._lens:
            r = self._by_len[plen].get((addr >> (bits - plen)) << (bits - plen) if plen else 0)
            if r is not None:
                return r
        return None

    def remove_iface(self, iface: Any) -> None:
        for plen, table in list(self._by_len.items()):
            for net, r in list(table.items()):
                if r.iface is iface:
                    self.remove(net, plen)

    def __iter__(self):
        for plen in self._lens:
            yield from self._by_len[plen].values()

    def describe(self) -> list[dict[str, Any]]:
        out = []
        cls = ipaddress.IPv4Network if self.bits == 32 else ipaddress.IPv6Network
        addr_cls = ipaddress.IPv4Address if self.bits == 32 else ipaddress.IPv6Address
        for r in self:
            row: dict[str, Any] = {"prefix": str(cls((r.network, r.plen))),
                                   "dev": r.iface.name, "origin": r.origin}
            if r.gateway is not None:
                row["via"] = str(addr_cls(r.gateway))
            out.append(row)
        return out
