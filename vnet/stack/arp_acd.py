"""IPv4 Address Conflict Detection (RFC 5227): probe, announce, detect and defend.

Addresses given by hand are announced and then defended (at most one defence per
DEFEND_INTERVAL, policy (c) of section 2.4). Addresses a protocol acquires (DHCP)
are probed first with `acd_probe`, which reports whether the address is free.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

from vnet.stack.interface import Addr4, Interface
from vnet.wire import arp

PROBE_WAIT = 1.0
PROBE_NUM = 3
PROBE_MIN = 1.0
PROBE_MAX = 2.0
ANNOUNCE_WAIT = 2.0
ANNOUNCE_NUM = 2
ANNOUNCE_INTERVAL = 2.0
DEFEND_INTERVAL = 10.0

_ZERO = b"\x00" * 4
_ZMAC = b"\x00" * 6
_BCAST = b"\xff" * 6
_ET_ARP = b"\x08\x06"


class _Probe:
    __slots__ = ("iface", "addr", "done", "sent", "timer", "conflict")

    def __init__(self, iface: Interface, addr: bytes, done: Callable[[bool], None]) -> None:
        self.iface = iface
        self.addr = addr
        self.done = done
        self.sent = 0
        self.timer: Any = None
        self.conflict = False


class AcdMixin:
    def _init_acd(self: Any) -> None:
        self._acd_probes: dict[bytes, _Probe] = {}
        self._acd_last_defend: dict[bytes, float] = {}
        self.acd_conflicts: list[tuple[str, str]] = []  # (address, MAC of the other host)
        self.ipv4ll: dict[str, Any] = {}  # interface -> its Ipv4LinkLocal, when running

    def acd_probe(self: Any, iface: Interface, addr: ipaddress.IPv4Address,
                  done: Callable[[bool], None]) -> None:
        """Probe `addr` on `iface`; `done(True)` when nobody else uses it, `done(False)` otherwise."""
        p = _Probe(iface, addr.packed, done)
        self._acd_probes[addr.packed] = p
        p.timer = self.rt.call_later(self.rt.rng.uniform(0, PROBE_WAIT), self._acd_probe_step, p)

    def _acd_probe_step(self: Any, p: _Probe) -> None:
        if p.conflict:
            return
        if p.sent < PROBE_NUM:
            p.sent += 1
            self.stats["acd_probe_tx"] += 1
            self._xmit(p.iface, _BCAST, _ET_ARP,
                       arp.build(arp.REQUEST, p.iface.mac, _ZERO, _ZMAC, p.addr))
            delay = self.rt.rng.uniform(PROBE_MIN, PROBE_MAX) if p.sent < PROBE_NUM else ANNOUNCE_WAIT
            p.timer = self.rt.call_later(delay, self._acd_probe_step, p)
            return
        self._acd_probes.pop(p.addr, None)
        p.done(True)

    def _acd_announce(self: Any, iface: Interface, a: Addr4, n: int = ANNOUNCE_NUM) -> None:
        for i in range(n):
            self.rt.call_later(i * ANNOUNCE_INTERVAL, self._acd_send_announce, iface, a)

    def _acd_send_announce(self: Any, iface: Interface, a: Addr4) -> None:
        if a not in iface.addrs4:
            return
        self.stats["acd_announce_tx"] += 1
        self._xmit(iface, _BCAST, _ET_ARP, arp.build(arp.REQUEST, iface.mac, a.packed, _ZMAC, a.packed))

    def _acd_rx(self: Any, iface: Interface, p: arp.ArpPacket) -> bool:
        """Check an ARP packet for conflicts; True when it was consumed."""
        if p.sha == iface.mac:
            return True  # our own, looped back by a hub
        if self._acd_probes:
            probe = self._acd_probes.get(p.spa) or (
                self._acd_probes.get(p.tpa) if p.spa == _ZERO and p.op == arp.REQUEST else None)
            if probe is not None and probe.iface is iface:
                probe.conflict = True
                if probe.timer is not None:
                    probe.timer.cancel()
                self._acd_probes.pop(probe.addr, None)
                self.stats["acd_probe_conflict"] += 1
                probe.done(False)
                return True
        mine = self.local4.get(p.spa)
        if mine is not None and mine[0] is iface:
            self.stats["acd_conflict"] += 1
            if len(self.acd_conflicts) < 64:
                self.acd_conflicts.append((str(ipaddress.IPv4Address(p.spa)), p.sha.hex(":")))
            now = self.rt.now()
            last = self._acd_last_defend.get(p.spa, -DEFEND_INTERVAL)
            ll = self.ipv4ll.get(iface.name)
            if ll is not None and mine[1].origin == "ipv4ll" and now - last < DEFEND_INTERVAL:
                ll.lost()  # RFC 3927 2.5: defended recently, so give it up
                return True
            if now - last >= DEFEND_INTERVAL:
                self._acd_last_defend[p.spa] = now
                self.stats["acd_defend_tx"] += 1
                self._acd_send_announce(iface, mine[1])
            return True
        return False
