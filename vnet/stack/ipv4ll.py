"""IPv4 link-local addresses (RFC 3927): 169.254.1.0 - 169.254.254.255, chosen pseudo-
randomly from the MAC, claimed with the RFC 5227 probe, defended once, given up for a new
one on a second conflict within DEFEND_INTERVAL, rate limited after MAX_CONFLICTS.

The DHCP client starts this when its DISCOVERs go unanswered and stops it once it is
bound (RFC 3927 1.9: a routable address makes the link-local one unnecessary).
"""

from __future__ import annotations

import ipaddress
import random
from typing import Any

from vnet.stack.interface import Interface

MAX_CONFLICTS = 10
RATE_LIMIT_INTERVAL = 60.0
IPV4LL = "ipv4ll"


class Ipv4LinkLocal:
    def __init__(self, host: Any, iface: Interface) -> None:
        self.host = host
        self.iface = iface
        # Seeded from the MAC so a host tends to get the same address again (RFC 3927 2.1).
        self.rng = random.Random(iface.mac + host.secret)
        self.conflicts = 0
        self.addr: ipaddress.IPv4Address | None = None
        self.candidate: ipaddress.IPv4Address | None = None
        self.timer: Any = None
        self.active = False

    def start(self) -> None:
        if self.active:
            return
        self.active = True
        self.host.ipv4ll[self.iface.name] = self
        self._try()

    def stop(self) -> None:
        self.active = False
        if self.timer is not None:
            self.timer.cancel()
        self._release()
        self.host.ipv4ll.pop(self.iface.name, None)

    def _pick(self) -> ipaddress.IPv4Address:
        return ipaddress.IPv4Address(bytes((169, 254, self.rng.randint(1, 254),
                                            self.rng.randint(0, 255))))

    def _try(self) -> None:
        self.timer = None
        if not self.active:
            return
        self.candidate = self._pick()
        self.host.stats["ipv4ll_probe"] += 1
        self.host.acd_probe(self.iface, self.candidate, self._probed)

    def _probed(self, free: bool) -> None:
        if not self.active or self.candidate is None:
            return
        if not free:
            self._conflict_while_probing()
            return
        self.addr = self.candidate
        self.host._add_addr4(self.iface, ipaddress.IPv4Interface((self.addr, 16)), origin=IPV4LL)
        self.host.stats["ipv4ll_claimed"] += 1

    def _conflict_while_probing(self) -> None:
        self.conflicts += 1
        self.host.stats["ipv4ll_conflict"] += 1
        delay = RATE_LIMIT_INTERVAL if self.conflicts >= MAX_CONFLICTS else 0.0
        self.timer = self.host.rt.call_later(delay, self._try)

    def lost(self) -> None:
        """A second conflict within DEFEND_INTERVAL: give the address up, pick another."""
        self._release()
        self._conflict_while_probing()

    def _release(self) -> None:
        if self.addr is not None:
            try:
                self.host._del_addr4(self.iface, self.addr.packed)
            except ValueError:
                pass
            self.addr = None
