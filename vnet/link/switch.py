"""The switch engine: learning, flooding, 802.1Q VLANs, hub mode, STP hooks.

Semantics follow vde_switch where it has them (VLAN 0 is the default untagged
VLAN, `setvlan` sets a port's untagged VLAN, `addport` adds tagged membership,
4095 means "no untagged traffic", port 0 is reserved for management), plus what
it lacks: jumbo frames, a capped table, honest drop counters and 802.1D STP.

Sans-IO: frames arrive through `Port.receive`, leave through `Port.transmit`,
and time comes from the Runtime (one GC timer, no clock read per frame).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol

from vnet.link import offload
from vnet.link.mac_table import MacTable, key_for
from vnet.link.port import Port
from vnet.runtime.base import Runtime, Timer
from vnet.wire.ethernet import STP_GROUP, VLAN_NONE, random_mac

DISABLED, BLOCKING, LISTENING, LEARNING, FORWARDING = range(5)
STATE_NAMES = ["disabled", "blocking", "listening", "learning", "forwarding"]

_TPID = b"\x81\x00"


class SwitchError(Exception):
    """A request the switch cannot satisfy (no free port, bad VLAN, ...); message is user-facing."""


class SpanningTree(Protocol):
    def receive(self, index: int, frame: bytes) -> None: ...
    def port_added(self, index: int) -> None: ...
    def port_removed(self, index: int) -> None: ...
    def stop(self) -> None: ...


class SwitchPort:
    """Per-port switch state. `port` is the Port the outside world attaches to."""

    __slots__ = ("index", "port", "untagged", "tagged", "state", "rx_short", "rx_oversize",
                 "rx_vlan_drop", "filtered", "tx_unknown_vlan", "fast", "input", "__weakref__")

    def __init__(self, index: int, port: Port) -> None:
        self.index = index
        self.port = port
        self.untagged = 0
        self.tagged: set[int] = set()
        self.state = FORWARDING
        self.rx_short = 0
        self.rx_oversize = 0
        self.rx_vlan_drop = 0
        self.filtered = 0  # unicast whose destination is on the ingress port
        self.tx_unknown_vlan = 0
        self.fast = True  # forwarding with untagged VLAN 0: the common case, see Switch._input
        self.input: Callable[[bytes], None] = port.receive  # the switch's own receive

    def counters(self) -> dict[str, int]:
        c = self.port.counters()
        c.update(rx_short=self.rx_short, rx_oversize=self.rx_oversize,
                 rx_vlan_drop=self.rx_vlan_drop, filtered=self.filtered)
        return c


class Switch:
    #: Lets a TAP's offloaded (GSO) frame past the MTU check; the TAP driver only hands one
    #: over whole when every destination port takes offloads (see vnet.link.offload).
    admits_offload = True

    def __init__(self, rt: Runtime, numports: int = 32, hub: bool = False, mtu: int = 1500,
                 mac_table_size: int = 65536, expire: float = 100.0, min_persistence: float = 3.0,
                 gc_interval: float = 2.0, mac: bytes | None = None, name: str = "switch") -> None:
        if numports < 1:
            raise SwitchError(f"a switch needs at least 1 port, not {numports}")
        if not 68 <= mtu <= 65535 - 18:
            raise SwitchError(f"MTU {mtu} out of range: use 68..65517 (9000 for jumbo frames)")
        self.rt = rt
        self.name = name
        self.numports = numports
        self._hub = hub
        self.mtu = mtu
        self.max_frame = mtu + 18  # Ethernet header + one 802.1Q tag
        self.mac = mac if mac is not None else random_mac(bytes(rt.rng.getrandbits(8) for _ in range(6)))
        self.table = MacTable(mac_table_size, expire, min_persistence)
        self.table.tick = rt.now()
        self.ports: dict[int, SwitchPort] = {}
        self._by_index: list[SwitchPort | None] = [None] * (numports + 1)
        self.vlans: set[int] = {0}
        self._members: dict[int, list[SwitchPort]] = {0: []}  # VLAN -> ports that carry it
        self._all: list[SwitchPort] = []  # for hub mode
        self.stp: SpanningTree | None = None
        self.gc_interval = gc_interval
        self.drops_short = 0
        self.drops_oversize = 0
        self.on_port_change: list[Callable[[int, bool], None]] = []
        self._gc_timer: Timer | None = rt.call_later(gc_interval, self._gc)

    @property
    def hub(self) -> bool:
        return self._hub

    @hub.setter
    def hub(self, on: bool) -> None:
        self._hub = bool(on)
        self._rebuild()

    # ---- ports -------------------------------------------------------------------------

    def add_port(self, index: int | None = None, name: str = "") -> Port:
        """Allocate a port (lowest free number >= 1, or exactly `index`) and return its Port."""
        if index is None:
            index = next((i for i in range(1, self.numports + 1) if i not in self.ports), None)
            if index is None:
                raise SwitchError(f"all {self.numports} ports are in use (raise -n/--numports)")
        elif not 0 <= index <= self.numports:
            raise SwitchError(f"port {index} does not exist: ports are 1..{self.numports}")
        elif index in self.ports:
            raise SwitchError(f"port {index} is in use")
        port = Port(name or f"{self.name}.{index}")
        port.owner = self
        rec = SwitchPort(index, port)
        port.receive = rec.input = functools.partial(self._input, rec)
        self.ports[index] = rec
        self._rebuild()
        if self.stp is not None:
            self.stp.port_added(index)
        for cb in self.on_port_change:
            cb(index, True)
        return port

    def remove_port(self, index: int) -> None:
        rec = self.ports.pop(index, None)
        if rec is None:
            raise SwitchError(f"port {index} is not in use")
        rec.port.receive = lambda frame: None
        rec.port.detach()
        self.table.flush_port(index)
        self._rebuild()
        if self.stp is not None:
            self.stp.port_removed(index)
        for cb in self.on_port_change:
            cb(index, False)

    def port(self, index: int) -> SwitchPort:
        rec = self.ports.get(index)
        if rec is None:
            raise SwitchError(f"port {index} is not in use")
        return rec

    def _rebuild(self) -> None:
        """Precompute per-VLAN member lists so flooding is a plain list walk."""
        members: dict[int, list[SwitchPort]] = {v: [] for v in self.vlans}
        for rec in sorted(self.ports.values(), key=lambda r: r.index):
            if rec.untagged in members:
                members[rec.untagged].append(rec)
            for v in rec.tagged:
                if v in members and v != rec.untagged:
                    members[v].append(rec)
        self._members = members
        self._all = sorted(self.ports.values(), key=lambda r: r.index)
        by_index: list[SwitchPort | None] = [None] * (self.numports + 1)
        for rec in self._all:
            by_index[rec.index] = rec
            rec.fast = rec.state == FORWARDING and rec.untagged == 0 and not self._hub
        self._by_index = by_index

    # ---- VLANs (vde_switch's vlan/ and port/setvlan commands) ---------------------------

    def vlan_create(self, vid: int) -> None:
        if not 1 <= vid <= 4094:
            raise SwitchError(f"VLAN {vid} out of range: use 1..4094")
        if vid in self.vlans:
            raise SwitchError(f"VLAN {vid} already exists")
        self.vlans.add(vid)
        self._rebuild()

    def vlan_remove(self, vid: int) -> None:
        if vid == 0:
            raise SwitchError("VLAN 0 is the default VLAN and cannot be removed")
        if vid not in self.vlans:
            raise SwitchError(f"VLAN {vid} does not exist")
        if any(r.untagged == vid or vid in r.tagged for r in self.ports.values()):
            raise SwitchError(f"VLAN {vid} still has ports: remove them first")
        self.vlans.discard(vid)
        self.table.flush_vlan(vid)
        self._rebuild()

    def set_port_vlan(self, index: int, vid: int) -> None:
        """Untagged VLAN of a port (4095 = accept no untagged frames)."""
        rec = self.port(index)
        if vid != VLAN_NONE and vid not in self.vlans:
            raise SwitchError(f"VLAN {vid} does not exist: create it with vlan/create {vid}")
        rec.untagged = vid
        rec.tagged.discard(vid)
        self.table.flush_port(index)
        self._rebuild()

    def vlan_add_port(self, vid: int, index: int) -> None:
        """Tagged membership (trunk)."""
        rec = self.port(index)
        if vid not in self.vlans or vid == 0:
            raise SwitchError(f"VLAN {vid} does not exist: create it with vlan/create {vid}")
        rec.tagged.add(vid)
        self._rebuild()

    def vlan_del_port(self, vid: int, index: int) -> None:
        rec = self.port(index)
        if vid not in rec.tagged:
            raise SwitchError(f"port {index} is not a tagged member of VLAN {vid}")
        rec.tagged.discard(vid)
        self._rebuild()

    # ---- spanning tree hooks ----------------------------------------------------------------

    def set_port_state(self, index: int, state: int) -> None:
        rec = self.ports.get(index)
        if rec is not None and rec.state != state:
            rec.state = state
            rec.fast = state == FORWARDING and rec.untagged == 0 and not self._hub
            if state < LEARNING:
                self.table.flush_port(index)

    def flush(self, expire: float | None = None) -> None:
        """Topology change: forget everything (or everything idle longer than `expire`)."""
        if expire is None:
            self.table.clear()
        else:
            self.table.age(self.table.tick, expire)

    def port_send(self, index: int, frame: bytes) -> None:
        """Send a frame out of one port regardless of its state (BPDUs)."""
        rec = self.ports.get(index)
        if rec is not None:
            p = rec.port
            p.tx_frames += 1
            p.tx_bytes += len(frame)
            p.transmit(frame)

    # ---- forwarding ---------------------------------------------------------------------------

    def _input(self, rec: SwitchPort, frame: bytes) -> None:
        """Fast path: an untagged unicast frame between two plain forwarding VLAN-0 ports."""
        port = rec.port
        n = len(frame)
        port.rx_frames += 1
        port.rx_bytes += n
        if rec.fast and 14 <= n <= self.max_frame and frame[12:14] != _TPID and not frame[0] & 1:
            table = self.table
            entries = table.entries
            if not frame[6] & 1:
                src = frame[6:12]
                e = entries.get(src)
                if e is not None and e[0] == rec.index:
                    e[1] = table.tick
                else:
                    table.learn(src, rec.index)
            e = entries.get(frame[0:6])
            if e is not None:
                out = self._by_index[e[0]]
                if out is not None and out.fast:
                    if out is rec:
                        rec.filtered += 1
                        return
                    op = out.port
                    op.tx_frames += 1
                    op.tx_bytes += n
                    op.transmit(frame)
                    return
        self._input_slow(rec, frame, n)

    def _input_slow(self, rec: SwitchPort, frame: bytes, n: int) -> None:
        """Everything else: bad sizes, hub mode, STP states and BPDUs, VLAN tags, flooding.

        A frame that took the fast path up to its lookup may be learned twice here,
        which is harmless (the second learn only refreshes the entry)."""
        port = rec.port
        if n < 14:
            rec.rx_short += 1
            port.rx_dropped += 1
            self.drops_short += 1
            return
        if n > self.max_frame and frame is not offload.PENDING[0]:
            rec.rx_oversize += 1
            port.rx_dropped += 1
            self.drops_oversize += 1
            return
        if self._hub:
            for out in self._all:
                if out is not rec:
                    op = out.port
                    op.tx_frames += 1
                    op.tx_bytes += n
                    op.transmit(frame)
            return
        dst = frame[0:6]
        if rec.state != FORWARDING:
            if self.stp is not None and dst == STP_GROUP:
                self.stp.receive(rec.index, frame)
            elif rec.state == LEARNING and not frame[6] & 1:
                vid = rec.untagged if frame[12:14] != _TPID else ((frame[14] & 0x0F) << 8) | frame[15]
                self.table.learn(key_for(frame[6:12], vid), rec.index)
            port.rx_dropped += 1
            return
        if self.stp is not None and dst == STP_GROUP:
            self.stp.receive(rec.index, frame)
            return
        if frame[12:14] == _TPID:
            if n < 18:
                rec.rx_short += 1
                port.rx_dropped += 1
                return
            vid = ((frame[14] & 0x0F) << 8) | frame[15]
            if vid == 0:  # priority tag only: belongs to the port's untagged VLAN
                vid = rec.untagged
                frame = frame[:12] + frame[16:]
                n -= 4
                tagged = False
                if vid == VLAN_NONE:
                    rec.rx_vlan_drop += 1
                    port.rx_dropped += 1
                    return
            elif vid not in rec.tagged:
                rec.rx_vlan_drop += 1
                port.rx_dropped += 1
                return
            else:
                tagged = True
        else:
            vid = rec.untagged
            if vid == VLAN_NONE:
                rec.rx_vlan_drop += 1
                port.rx_dropped += 1
                return
            tagged = False
        if not frame[6] & 1:
            self.table.learn(frame[6:12] if vid == 0 else frame[6:12] + vid.to_bytes(2, "big"),
                             rec.index)
        if not dst[0] & 1:
            e = self.table.entries.get(dst if vid == 0 else dst + vid.to_bytes(2, "big"))
            if e is not None:
                if e[0] == rec.index:
                    rec.filtered += 1
                    return
                out = self.ports.get(e[0])
                if out is not None and out.state == FORWARDING:
                    if not tagged and out.untagged == vid:  # the common case: no tag work
                        op = out.port
                        op.tx_frames += 1
                        op.tx_bytes += n
                        op.transmit(frame)
                    else:
                        self._emit(out, frame, vid, tagged)
                    return
        self._flood(rec, frame, vid, tagged)

    def _emit(self, out: SwitchPort, frame: bytes, vid: int, tagged: bool) -> None:
        if out.untagged == vid:
            f = frame[:12] + frame[16:] if tagged else frame
        elif vid in out.tagged:
            f = frame if tagged else frame[:12] + _TPID + vid.to_bytes(2, "big") + frame[12:]
        else:
            out.tx_unknown_vlan += 1
            return
        op = out.port
        op.tx_frames += 1
        op.tx_bytes += len(f)
        op.transmit(f)

    def _flood(self, rec: SwitchPort, frame: bytes, vid: int, tagged: bool) -> None:
        members = self._members.get(vid)
        if not members:
            return
        untagged_f: bytes | None = None if tagged else frame
        tagged_f: bytes | None = frame if tagged else None
        for out in members:
            if out is rec or out.state != FORWARDING:
                continue
            if out.untagged == vid:
                if untagged_f is None:
                    untagged_f = frame[:12] + frame[16:]
                f = untagged_f
            else:
                if tagged_f is None:
                    tagged_f = frame[:12] + _TPID + vid.to_bytes(2, "big") + frame[12:]
                f = tagged_f
            op = out.port
            op.tx_frames += 1
            op.tx_bytes += len(f)
            op.transmit(f)

    # ---- housekeeping -----------------------------------------------------------------------

    def _gc(self) -> None:
        self.table.age(self.rt.now())
        self._gc_timer = self.rt.call_later(self.gc_interval, self._gc)

    def close(self) -> None:
        if self._gc_timer is not None:
            self._gc_timer.cancel()
            self._gc_timer = None
        if self.stp is not None:
            self.stp.stop()
        for index in list(self.ports):
            self.remove_port(index)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name, "mac": self.mac.hex(":"), "numports": self.numports,
            "ports_in_use": len(self.ports), "hub": self.hub, "mtu": self.mtu,
            "mac_table": {"entries": len(self.table), "max": self.table.max_entries,
                          "evicted": self.table.evicted, "expire": self.table.expire},
            "drops_short": self.drops_short, "drops_oversize": self.drops_oversize,
            "stp": self.stp is not None, "vlans": sorted(self.vlans),
        }
