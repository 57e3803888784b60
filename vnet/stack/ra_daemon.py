"""Router Advertisement sender for router mode (RFC 4861 6.2), so that hosts - Linux
included - configure themselves from a vnet router.

Each interface advertises the /64 prefixes of its hand-given global addresses
(on-link and autonomous), its MTU and its link-layer address. Unsolicited RAs go
out at random intervals in [min_interval, max_interval] (the first three at most
16 s apart); a Router Solicitation is answered after a random delay of up to
0.5 s, never more often than every 3 s per interface.
"""

from __future__ import annotations

from typing import Any

from vnet.stack.interface import MANUAL, Interface
from vnet.wire import icmp6

MAX_INITIAL_RTR_ADVERT_INTERVAL = 16.0
MAX_INITIAL_RTR_ADVERTISEMENTS = 3
MAX_RA_DELAY_TIME = 0.5
MIN_DELAY_BETWEEN_RAS = 3.0
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")


class RaDaemon:
    def __init__(self, host: Any, min_interval: float = 200.0, max_interval: float = 600.0,
                 router_lifetime: int = 1800, valid_lifetime: int = 86400,
                 preferred_lifetime: int = 14400, hop_limit: int = 64,
                 preference: str = "medium") -> None:
        if not 4 <= max_interval <= 1800 or not 3 <= min_interval <= 0.75 * max_interval:
            raise ValueError("RA intervals: need 4 <= max <= 1800 and 3 <= min <= 0.75*max "
                             "(RFC 4861 6.2.1)")
        self.host = host
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.router_lifetime = router_lifetime
        self.valid = valid_lifetime
        self.preferred = preferred_lifetime
        self.hop_limit = hop_limit
        prefs = {"high": 0x08, "medium": 0x00, "low": 0x18}
        if preference not in prefs:
            raise ValueError(f"router preference {preference!r}: use high, medium or low")
        self.flags = prefs[preference]  # RFC 4191 Prf bits
        self.routes: list[tuple[bytes, int]] = []  # advertised as Route Information options
        self._timers: dict[str, Any] = {}
        self._sent: dict[str, int] = {}
        self._last: dict[str, float] = {}
        self._pending: set[str] = set()
        self.sent = 0
        host.ra_daemon = self
        for iface in host.ifaces:
            if iface.ll_addr() is not None:
                self.iface_ready(iface)

    def iface_ready(self, iface: Interface) -> None:
        if iface.name in self._timers:
            return
        self._sent[iface.name] = 0
        self._schedule(iface, self.host.rt.rng.uniform(0, MAX_RA_DELAY_TIME))

    def _schedule(self, iface: Interface, delay: float) -> None:
        self._timers[iface.name] = self.host.rt.call_later(delay, self._periodic, iface)

    def _periodic(self, iface: Interface) -> None:
        self.send(iface)
        n = self._sent[iface.name] = self._sent.get(iface.name, 0) + 1
        ivl = self.host.rt.rng.uniform(self.min_interval, self.max_interval)
        if n < MAX_INITIAL_RTR_ADVERTISEMENTS:
            ivl = min(ivl, MAX_INITIAL_RTR_ADVERT_INTERVAL)
        self._schedule(iface, ivl)

    def solicited(self, iface: Interface) -> None:
        if iface.name in self._pending:
            return
        rt = self.host.rt
        delay = rt.rng.uniform(0, MAX_RA_DELAY_TIME)
        last = self._last.get(iface.name)
        if last is not None and rt.now() + delay < last + MIN_DELAY_BETWEEN_RAS:
            delay = last + MIN_DELAY_BETWEEN_RAS - rt.now()
        self._pending.add(iface.name)
        rt.call_later(delay, self._answer, iface)

    def _answer(self, iface: Interface) -> None:
        self._pending.discard(iface.name)
        self.send(iface)

    def prefixes(self, iface: Interface) -> list[tuple[bytes, int]]:
        seen = []
        for a in iface.addrs6:
            if a.origin == MANUAL and not a.addr.is_link_local and a.plen <= 64:
                p = (int.from_bytes(a.packed, "big") >> (128 - a.plen) << (128 - a.plen))
                item = (p.to_bytes(16, "big"), a.plen)
                if item not in seen:
                    seen.append(item)
        return seen

    def build(self, iface: Interface, lifetime: int | None = None) -> bytes | None:
        ll = iface.ll_addr()
        if ll is None:
            return None
        opts = icmp6.lla_option(icmp6.OPT_SLLA, iface.mac) + icmp6.mtu_option(iface.mtu)
        for prefix, plen in self.prefixes(iface):
            flags = icmp6.PI_ONLINK | (icmp6.PI_AUTO if plen == 64 else 0)
            opts += icmp6.prefix_option(prefix, plen, self.valid, self.preferred, flags)
        for prefix, plen in self.routes:
            opts += icmp6.route_info_option(prefix, plen, self.router_lifetime)
        life = self.router_lifetime if lifetime is None else lifetime
        return icmp6.ra(self.hop_limit, self.flags, life, 0, 0, opts, ll.packed, ALL_NODES)

    def send(self, iface: Interface, lifetime: int | None = None) -> None:
        msg = self.build(iface, lifetime)
        if msg is None:
            return
        ll = iface.ll_addr()
        assert ll is not None
        self.sent += 1
        self._last[iface.name] = self.host.rt.now()
        self.host.stats["nd_ra_tx"] += 1
        self.host._send_nd(iface, ll.packed, ALL_NODES, msg)

    def stop(self) -> None:
        """Send a final RA with router lifetime 0 (RFC 4861 6.2.5) and stop."""
        for name, t in self._timers.items():
            t.cancel()
            self.send(self.host.by_name[name], lifetime=0)
        self._timers.clear()
