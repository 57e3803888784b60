"""Neighbour cache for ARP and ND with the NUD states of RFC 4861 section 7.3.

One cache per interface and address family. The protocol (ARP or ND) supplies
`solicit(ip, mac_or_None)`: None means multicast/broadcast resolution, a MAC
means a unicast probe. Bounded as RFC 6583 advises: a cap on all entries, a
smaller cap on INCOMPLETE ones (a scan of a /64 cannot create unbounded
state), a short queue per entry, and eviction of the least recently used
resolved entry when full.
"""

from __future__ import annotations

from collections.abc import Callable

from vnet.runtime.base import Runtime, Timer

INCOMPLETE, REACHABLE, STALE, DELAY, PROBE = range(5)
STATE_NAMES = ("INCOMPLETE", "REACHABLE", "STALE", "DELAY", "PROBE")

MAX_MULTICAST_SOLICIT = 3
MAX_UNICAST_SOLICIT = 3
DELAY_FIRST_PROBE_TIME = 5.0


class Neighbor:
    __slots__ = ("ip", "mac", "state", "is_router", "queue", "probes", "timer", "reachable_until",
                 "static")

    def __init__(self, ip: bytes, mac: bytes | None, state: int) -> None:
        self.ip = ip
        self.mac = mac
        self.state = state
        self.is_router = False
        self.queue: list[bytes] = []
        self.probes = 0
        self.timer: Timer | None = None
        self.reachable_until = 0.0
        self.static = False


class NeighborCache:
    def __init__(self, rt: Runtime, solicit: Callable[[bytes, bytes | None], None],
                 transmit: Callable[[bytes, bytes], None], max_entries: int = 512,
                 max_incomplete: int = 64, queue_len: int = 16, reachable_time: float = 30.0,
                 retrans_time: float = 1.0,
                 on_failure: Callable[[bytes, list[bytes]], None] | None = None) -> None:
        self.rt = rt
        self.solicit = solicit
        self.transmit = transmit  # (mac, packet) -> frame out
        self.max_entries = max_entries
        self.max_incomplete = max_incomplete
        self.queue_len = queue_len
        self.reachable_time = reachable_time
        self.retrans_time = retrans_time
        self.on_failure = on_failure  # (ip, queued packets) when resolution failed
        self.entries: dict[bytes, Neighbor] = {}
        self.incomplete = 0
        self.refused = 0  # resolutions refused because too many were in progress
        self.evictions = 0
        self.queue_drops = 0
        self.failures = 0

    # ---- send path -------------------------------------------------------------------------

    def output(self, ip: bytes, packet: bytes) -> bool:
        """Send `packet` to neighbour `ip`, resolving it first if needed (queue is bounded)."""
        n = self.entries.get(ip)
        if n is not None and n.mac is not None:
            if n.state == STALE:
                self._set(n, DELAY)
                n.timer = self.rt.call_later(DELAY_FIRST_PROBE_TIME, self._delay_expired, n)
            elif n.state == REACHABLE and n.reachable_until < self.rt.now():
                # REACHABLE lapses to STALE lazily (no timer per entry); sending moves it on.
                n.state = STALE
                self._set(n, DELAY)
                n.timer = self.rt.call_later(DELAY_FIRST_PROBE_TIME, self._delay_expired, n)
            self.transmit(n.mac, packet)
            return True
        if n is None:
            if self.incomplete >= self.max_incomplete:
                self.refused += 1
                return False
            n = self._create(ip, None, INCOMPLETE)
            if n is None:
                self.refused += 1
                return False
            n.probes = 1
            n.timer = self.rt.call_later(self.retrans_time, self._retransmit, n)
            self.solicit(ip, None)
        if len(n.queue) >= self.queue_len:
            n.queue.pop(0)  # keep the newest (RFC 4861 7.2.2 allows either)
            self.queue_drops += 1
        n.queue.append(packet)
        return True

    def lookup(self, ip: bytes) -> bytes | None:
        n = self.entries.get(ip)
        return n.mac if n is not None else None

    # ---- learning ------------------------------------------------------------------------

    def learned(self, ip: bytes, mac: bytes, create: bool = True) -> None:
        """A link-layer address seen in an unsolicited message (NS/RS/RA SLLA, ARP request).

        RFC 4861 7.2.3: create as STALE, or go to STALE if the address changed.
        """
        n = self.entries.get(ip)
        if n is None:
            if create:
                self._create(ip, mac, STALE)
            return
        if n.static:
            return
        if n.mac != mac:
            n.mac = mac
            self._set(n, STALE)
        if n.queue:
            self._flush(n)

    def advert(self, ip: bytes, mac: bytes | None, solicited: bool, override: bool,
               is_router: bool | None = None) -> None:
        """A Neighbor Advertisement or ARP reply (RFC 4861 7.2.5)."""
        n = self.entries.get(ip)
        if n is None or n.static:
            return
        if n.state == INCOMPLETE:
            if mac is None:
                return
            n.mac = mac
            self._reached(n) if solicited else self._set(n, STALE)
        elif override or mac is None or mac == n.mac:
            changed = mac is not None and mac != n.mac
            if mac is not None:
                n.mac = mac
            if solicited:
                self._reached(n)
            elif changed:
                self._set(n, STALE)
        elif n.state == REACHABLE:
            self._set(n, STALE)  # different address, no override: suspect, keep the old one
        if is_router is not None:
            n.is_router = is_router
        if n.queue:
            self._flush(n)

    def confirm(self, ip: bytes) -> None:
        """Upper-layer reachability confirmation (RFC 4861 7.3.1), e.g. TCP progress."""
        n = self.entries.get(ip)
        if n is not None and n.mac is not None:
            self._reached(n)

    def add_static(self, ip: bytes, mac: bytes) -> None:
        n = self.entries.get(ip) or self._create(ip, mac, REACHABLE, force=True)
        assert n is not None
        n.mac = mac
        n.static = True
        self._set(n, REACHABLE)
        n.reachable_until = float("inf")

    def remove(self, ip: bytes) -> None:
        n = self.entries.pop(ip, None)
        if n is not None:
            if n.state == INCOMPLETE:
                self.incomplete -= 1
            if n.timer is not None:
                n.timer.cancel()

    def state_of(self, ip: bytes) -> int | None:
        n = self.entries.get(ip)
        if n is None:
            return None
        if n.state == REACHABLE and n.reachable_until < self.rt.now():
            n.state = STALE
        return n.state

    # ---- internals -----------------------------------------------------------------------

    def _create(self, ip: bytes, mac: bytes | None, state: int, force: bool = False) -> Neighbor | None:
        if len(self.entries) >= self.max_entries and not self._evict():
            if not force:
                return None
        n = Neighbor(ip, mac, state)
        self.entries[ip] = n
        if state == INCOMPLETE:
            self.incomplete += 1
        return n

    def _evict(self) -> bool:
        """Drop the least recently inserted entry that is not being resolved or static."""
        for ip, n in self.entries.items():
            if n.state != INCOMPLETE and not n.static:
                self.remove(ip)
                self.evictions += 1
                return True
        return False

    def _set(self, n: Neighbor, state: int) -> None:
        if n.timer is not None:
            n.timer.cancel()
            n.timer = None
        if n.state == INCOMPLETE and state != INCOMPLETE:
            self.incomplete -= 1
        n.state = state
        n.probes = 0

    def _reached(self, n: Neighbor) -> None:
        self._set(n, REACHABLE)
        # Random factor 0.5..1.5 (RFC 4861 6.3.2) so entries do not expire in lockstep.
        n.reachable_until = self.rt.now() + self.reachable_time * (0.5 + self.rt.rng.random())
        # Move to the end: dict order is our LRU order for eviction.
        self.entries.pop(n.ip, None)
        self.entries[n.ip] = n

    def _flush(self, n: Neighbor) -> None:
        q, n.queue = n.queue, []
        mac = n.mac
        assert mac is not None
        for p in q:
            self.transmit(mac, p)

    def _retransmit(self, n: Neighbor) -> None:
        n.timer = None
        if self.entries.get(n.ip) is not n:
            return
        if n.state == INCOMPLETE:
            if n.probes >= MAX_MULTICAST_SOLICIT:
                self._fail(n)
                return
            n.probes += 1
            n.timer = self.rt.call_later(self.retrans_time, self._retransmit, n)
            self.solicit(n.ip, None)
        elif n.state == PROBE:
            if n.probes >= MAX_UNICAST_SOLICIT:
                self._fail(n)
                return
            n.probes += 1
            n.timer = self.rt.call_later(self.retrans_time, self._retransmit, n)
            self.solicit(n.ip, n.mac)

    def _delay_expired(self, n: Neighbor) -> None:
        n.timer = None
        if self.entries.get(n.ip) is not n or n.state != DELAY:
            return
        self._set(n, PROBE)
        n.probes = 1
        n.timer = self.rt.call_later(self.retrans_time, self._retransmit, n)
        self.solicit(n.ip, n.mac)

    def _fail(self, n: Neighbor) -> None:
        self.failures += 1
        q = n.queue
        self.remove(n.ip)
        if self.on_failure is not None and q:
            self.on_failure(n.ip, q)

    def describe(self, fmt: Callable[[bytes], str]) -> list[dict[str, str]]:
        out = []
        for ip, n in list(self.entries.items()):
            st = self.state_of(ip)
            row = {"ip": fmt(ip), "state": STATE_NAMES[st if st is not None else 0]}
            if n.mac is not None:
                row["lladdr"] = n.mac.hex(":")
            if n.is_router:
                row["router"] = "yes"
            out.append(row)
        return out

    def counters(self) -> dict[str, int]:
        return {"entries": len(self.entries), "incomplete": self.incomplete,
                "refused": self.refused, "evictions": self.evictions,
                "queue_drops": self.queue_drops, "failures": self.failures}
