"""IpMeta: what a transport learns about a received packet besides its payload
(re-exported by vnet.stack.host), and a bounded cache of address objects so the
receive path does not build `ipaddress` objects per packet."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_CACHE_MAX = 4096


@dataclass(slots=True)
class IpMeta:
    src: IPAddress
    dst: IPAddress
    iface: Any
    version: int
    hop_limit: int
    # the transport checksum need not be verified: the frame came from the local kernel
    # through a TAP with a partial (NEEDS_CSUM) or validated checksum (vnet.link.offload)
    csum_ok: bool = False


class AddrCache:
    """packed bytes (and scope for link-local) -> ipaddress object, bounded."""

    __slots__ = ("d",)

    def __init__(self) -> None:
        self.d: dict[Any, IPAddress] = {}

    def v4(self, packed: bytes) -> ipaddress.IPv4Address:
        a = self.d.get(packed)
        if a is None:
            if len(self.d) >= _CACHE_MAX:
                self.d.clear()
            a = self.d[packed] = ipaddress.IPv4Address(packed)
        return a  # type: ignore[return-value]

    def v6(self, packed: bytes, scope: str | None = None) -> ipaddress.IPv6Address:
        key = (packed, scope) if scope else packed
        a = self.d.get(key)
        if a is None:
            if len(self.d) >= _CACHE_MAX:
                self.d.clear()
            a = ipaddress.IPv6Address(packed)
            if scope:
                a = ipaddress.IPv6Address(f"{a}%{scope}")
            self.d[key] = a
        return a  # type: ignore[return-value]
