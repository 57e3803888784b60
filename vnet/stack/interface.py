"""A host interface: its Port, MAC, MTU, addresses, multicast groups and neighbour caches.

Names follow RFC 4861/4862's conceptual model (and MSR IPv6's Interface / ADE):
per-interface CurHopLimit, BaseReachableTime, RetransTimer; address entries
with a DAD state and lifetimes.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from vnet.link.port import Port

if TYPE_CHECKING:
    from vnet.stack.neighbor import NeighborCache

TENTATIVE = "tentative"
OPTIMISTIC = "optimistic"
PREFERRED = "preferred"
DEPRECATED = "deprecated"
DUPLICATE = "duplicate"

MANUAL = "manual"
LINK_LOCAL = "link-local"
SLAAC = "slaac"
TEMPORARY = "temporary"
DHCP = "dhcp"


class Addr6:
    """An IPv6 address entry (RFC 4862's address with its state and lifetimes)."""

    __slots__ = ("addr", "packed", "plen", "state", "origin", "valid_until", "preferred_until",
                 "dad_probes", "dad_timer", "dad_counter", "created")

    def __init__(self, addr: ipaddress.IPv6Address, plen: int, state: str, origin: str) -> None:
        self.addr = addr
        self.packed = addr.packed
        self.plen = plen
        self.state = state
        self.origin = origin
        self.valid_until = float("inf")
        self.preferred_until = float("inf")
        self.dad_probes = 0
        self.dad_timer = None
        self.dad_counter = 0
        self.created = 0.0

    @property
    def usable(self) -> bool:
        """May be used as a source (optimistic addresses may, RFC 4429)."""
        return self.state in (PREFERRED, DEPRECATED, OPTIMISTIC)

    @property
    def receives(self) -> bool:
        return self.state in (PREFERRED, DEPRECATED, OPTIMISTIC)


class Addr4:
    __slots__ = ("iface", "addr", "packed", "plen", "broadcast", "origin", "state")

    def __init__(self, iface: ipaddress.IPv4Interface, origin: str, state: str = PREFERRED) -> None:
        self.iface = iface
        self.addr = iface.ip
        self.packed = iface.ip.packed
        self.plen = iface.network.prefixlen
        self.broadcast = iface.network.broadcast_address.packed if self.plen < 31 else None
        self.origin = origin
        self.state = state


class Interface:
    def __init__(self, name: str, index: int, mac: bytes, mtu: int) -> None:
        self.name = name
        self.index = index
        self.mac = mac
        self.mtu = mtu  # link MTU (the RA's MTU option may lower it)
        self.link_mtu = mtu
        self.port = Port(name)
        self.addrs4: list[Addr4] = []
        self.addrs6: list[Addr6] = []
        self.groups6: dict[bytes, int] = {}  # joined IPv6 multicast groups -> reference count
        self.groups4: set[bytes] = set()
        self.neigh4: NeighborCache | None = None
        self.neigh6: NeighborCache | None = None
        # RFC 4861 6.3.2 host variables, updated from RAs
        self.cur_hop_limit = 64
        self.base_reachable_time = 30.0
        self.retrans_timer = 1.0
        self.dad_transmits = 1
        self.forwarding = False
        self.ll_iid: bytes | None = None

    def ll_addr(self) -> Addr6 | None:
        for a in self.addrs6:
            if a.origin == LINK_LOCAL and a.usable:
                return a
        return None

    def __repr__(self) -> str:
        return f"<Interface {self.name}>"
