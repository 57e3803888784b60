"""IEEE 802.1D (1998) spanning tree for the switch engine.

The procedures follow the standard's clause 8 (root and designated port
selection, port state selection, the topology change machinery) and keep its
names, so the code reads beside the text. Sans-IO like the switch: time and
timers come from the switch's Runtime, BPDUs enter through `receive` (the switch
hands over every frame to 01:80:c2:00:00:00, even on blocked ports) and leave
through `switch.port_send`, and port states are applied with
`switch.set_port_state`.

    Stp(switch, priority=32768, hello_time=2.0, max_age=20.0, forward_delay=15.0,
        port_cost=100)

installs itself as `switch.stp`; every port then starts blocking and, being
designated, listens for forward_delay, learns for forward_delay, and forwards
unless a better path to the root shows up. Defaults are the standard's
recommended values; the path cost default is the standard's cost for 10 Mb/s,
which is also what Linux gives a TAP port, so mixed networks weigh hops alike.

Robustness: malformed BPDUs are counted and dropped; the timer values a root
announces are clamped to sane ranges before this bridge adopts them (a peer
announcing hello 0 must not make us spin); engine entry points are serialised so
a peer joined by a zero-delay cable that answers synchronously cannot re-enter
the state machine halfway through a procedure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from vnet.link.switch import (
    BLOCKING,
    DISABLED,
    FORWARDING,
    LEARNING,
    LISTENING,
    STATE_NAMES,
    Switch,
    SwitchError,
)
from vnet.runtime.base import Timer
from vnet.wire import stp as wire
from vnet.wire.errors import WireError

HOLD_TIME = 1.0  # minimum time between config BPDUs on one port (802.1D table 8-3)
MESSAGE_AGE_INCREMENT = 1 / wire.TICKS  # overestimate added per hop, as small as the format allows
DEFAULT_PORT_COST = 100
DEFAULT_PORT_PRIORITY = 128
_PENDING_MAX = 1024  # re-entrant events queued while a procedure runs

# Ranges for configured values (Linux's, which contain 802.1D's) and for values adopted from a root.
HELLO_RANGE = (1.0, 10.0)
MAX_AGE_RANGE = (6.0, 40.0)
FORWARD_DELAY_RANGE = (2.0, 30.0)


def _clamp(v: float, lo_hi: tuple[float, float]) -> float:
    return min(max(v, lo_hi[0]), lo_hi[1])


class StpPort:
    """Per-port spanning tree state (802.1D 8.5.5)."""

    __slots__ = ("index", "port_id", "priority", "path_cost", "state", "designated_root",
                 "designated_cost", "designated_bridge", "designated_port", "topology_change_ack",
                 "config_pending", "change_detection", "age_base", "message_age_timer",
                 "forward_delay_timer", "hold_timer", "rx_bpdu", "tx_bpdu", "rx_tcn", "tx_tcn",
                 "rx_bad", "rx_aged", "rx_own", "forward_transitions")

    def __init__(self, index: int, priority: int, path_cost: int) -> None:
        self.index = index
        self.priority = priority
        self.port_id = (priority >> 4) << 12 | (index & 0x0FFF)
        self.path_cost = path_cost
        self.state = BLOCKING
        self.designated_root = 0
        self.designated_cost = 0
        self.designated_bridge = 0
        self.designated_port = 0
        self.topology_change_ack = False
        self.config_pending = False
        self.change_detection = True
        self.age_base = 0.0  # when the recorded info had message age 0 (reception - its age)
        self.message_age_timer: Timer | None = None
        self.forward_delay_timer: Timer | None = None
        self.hold_timer: Timer | None = None
        self.rx_bpdu = 0
        self.tx_bpdu = 0
        self.rx_tcn = 0
        self.tx_tcn = 0
        self.rx_bad = 0  # malformed: counted and dropped
        self.rx_aged = 0  # message age >= max age: discarded (802.1D 9.3.4)
        self.rx_own = 0  # our own BPDU looped back to the port that sent it
        self.forward_transitions = 0


class Stp:
    """802.1D spanning tree bound to one `Switch`."""

    def __init__(self, switch: Switch, priority: int = 32768, hello_time: float = 2.0,
                 max_age: float = 20.0, forward_delay: float = 15.0,
                 port_cost: int | Mapping[int, int] = DEFAULT_PORT_COST,
                 hold_time: float = HOLD_TIME) -> None:
        if not 0 <= priority <= 0xFFFF:
            raise SwitchError(f"bridge priority {priority} out of range: use 0..65535 "
                              f"(lowest wins the root election; default 32768)")
        for name, v, rng in (("hello time", hello_time, HELLO_RANGE),
                             ("max age", max_age, MAX_AGE_RANGE),
                             ("forward delay", forward_delay, FORWARD_DELAY_RANGE)):
            if not rng[0] <= v <= rng[1]:
                raise SwitchError(f"STP {name} {v:g} s out of range: use {rng[0]:g}..{rng[1]:g} s")
        if switch.stp is not None:
            raise SwitchError(f"switch {switch.name} already runs spanning tree")
        if switch.hub:
            raise SwitchError("spanning tree needs a switch, not a hub: a hub floods every "
                              "frame whatever the port state (drop -x/--hub)")
        self.switch = switch
        self.rt = switch.rt
        self._default_cost = DEFAULT_PORT_COST
        self._costs: dict[int, int] = {}
        if isinstance(port_cost, Mapping):
            self._costs = {int(k): _check_cost(v) for k, v in port_cost.items()}
        else:
            self._default_cost = _check_cost(port_cost)
        self.priority = priority
        self.bridge_id = wire.bridge_id(priority, switch.mac)
        self.bridge_max_age = max_age
        self.bridge_hello_time = hello_time
        self.bridge_forward_delay = forward_delay
        self.hold_time = hold_time
        # Operational values (the root's), 8.5.3.
        self.designated_root = self.bridge_id
        self.root_path_cost = 0
        self.root_port: int | None = None  # switch port index; None on the root bridge
        self.max_age = max_age
        self.hello_time = hello_time
        self.forward_delay = forward_delay
        self.topology_change_detected = False
        self.topology_change = False
        self.topology_change_time = max_age + forward_delay
        self.topology_changes = 0  # times this bridge entered topology change (for info)
        self.last_topology_change: float | None = None
        self.hello_timer: Timer | None = None
        self.tcn_timer: Timer | None = None
        self.topology_change_timer: Timer | None = None
        self._fast_age_timer: Timer | None = None
        self.ports: dict[int, StpPort] = {}
        self.malformed = 0
        self.pending_dropped = 0
        self._busy = False
        self._pending: deque[tuple[Callable[..., None], tuple]] = deque()
        self._running = True
        switch.stp = self
        self._serialised(self._initialise)

    # ---- serialisation of entry points --------------------------------------------------

    def _serialised(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn` unless a procedure is under way; then queue it (bounded) to run right after."""
        if self._busy:
            if len(self._pending) >= _PENDING_MAX:
                self.pending_dropped += 1
                return
            self._pending.append((fn, args))
            return
        self._busy = True
        try:
            fn(*args)
            while self._pending:
                f, a = self._pending.popleft()
                f(*a)
        finally:
            self._busy = False

    def _timer(self, delay: float, fn: Callable[..., None], *args: Any) -> Timer:
        return self.rt.call_later(delay, self._serialised, fn, *args)

    # ---- the switch's hooks -----------------------------------------------------------

    def receive(self, index: int, frame: bytes) -> None:
        # A frame queued behind a running procedure is copied: drivers may reuse buffers.
        self._serialised(self._receive, index, bytes(frame) if self._busy else frame)

    def port_added(self, index: int) -> None:
        self._serialised(self._port_added, index)

    def port_removed(self, index: int) -> None:
        self._serialised(self._port_removed, index)

    def stop(self) -> None:
        """Stop spanning tree: cancel every timer and let all ports forward (a plain switch)."""
        if not self._running:
            return
        self._running = False
        for t in (self.hello_timer, self.tcn_timer, self.topology_change_timer,
                  self._fast_age_timer):
            if t is not None:
                t.cancel()
        self.hello_timer = self.tcn_timer = self.topology_change_timer = None
        self._fast_age_timer = None
        for p in self.ports.values():
            self._stop_port_timers(p)
            self.switch.set_port_state(p.index, FORWARDING)
        self._pending.clear()
        if self.switch.stp is self:
            self.switch.stp = None

    # ---- management ---------------------------------------------------------------------

    def set_priority(self, priority: int) -> None:
        """Change the bridge priority (8.8.4); the root may move."""
        if not 0 <= priority <= 0xFFFF:
            raise SwitchError(f"bridge priority {priority} out of range: use 0..65535")
        if not self._running:
            raise SwitchError("spanning tree is stopped")
        self._serialised(self._set_bridge_priority, priority)

    def set_port_cost(self, index: int, cost: int) -> None:
        """Change a port's path cost (8.8.6)."""
        _check_cost(cost)
        self._costs[index] = cost
        p = self.ports.get(index)
        if p is not None and self._running:
            self._serialised(self._set_path_cost, p, cost)

    def set_port_priority(self, index: int, priority: int) -> None:
        """Change a port's priority (0..240, multiples of 16; 8.8.5)."""
        if not 0 <= priority <= 240 or priority % 16:
            raise SwitchError(f"port priority {priority}: use 0..240 in steps of 16 (default 128)")
        p = self._port(index)
        self._serialised(self._set_port_priority, p, priority)

    def disable_port(self, index: int) -> None:
        """Administratively disable a port (8.8.3): no BPDUs, no forwarding."""
        p = self._port(index)
        self._serialised(self._disable_port, p)

    def enable_port(self, index: int) -> None:
        """Enable a disabled port (8.8.2): it starts over as blocking, then listening."""
        p = self._port(index)
        if p.state == DISABLED:
            self._serialised(self._enable_port, p)

    def _port(self, index: int) -> StpPort:
        if not self._running:
            raise SwitchError("spanning tree is stopped")
        p = self.ports.get(index)
        if p is None:
            raise SwitchError(f"port {index} is not in use")
        return p

    # ---- status -------------------------------------------------------------------------

    def is_root(self) -> bool:
        return self.designated_root == self.bridge_id

    def role(self, p: StpPort) -> str:
        if p.state == DISABLED:
            return "disabled"
        if p.index == self.root_port:
            return "root"
        if self._designated_port(p):
            return "designated"
        return "blocked"  # 802.1D-2004 would say alternate or backup

    def info(self) -> dict[str, Any]:
        now = self.rt.now()
        ports = []
        for p in sorted(self.ports.values(), key=lambda q: q.index):
            ports.append({
                "port": p.index, "port_id": f"{p.port_id:04x}", "role": self.role(p),
                "state": STATE_NAMES[p.state], "cost": p.path_cost, "priority": p.priority,
                "designated_root": wire.bridge_id_str(p.designated_root),
                "designated_cost": p.designated_cost,
                "designated_bridge": wire.bridge_id_str(p.designated_bridge),
                "designated_port": f"{p.designated_port:04x}",
                "rx_bpdu": p.rx_bpdu, "tx_bpdu": p.tx_bpdu, "rx_tcn": p.rx_tcn,
                "tx_tcn": p.tx_tcn, "rx_bad": p.rx_bad, "rx_aged": p.rx_aged,
                "forward_transitions": p.forward_transitions,
            })
        return {
            "enabled": self._running,
            "bridge_id": wire.bridge_id_str(self.bridge_id),
            "root_id": wire.bridge_id_str(self.designated_root),
            "is_root": self.is_root(),
            "root_port": self.root_port,
            "root_path_cost": self.root_path_cost,
            "priority": self.priority,
            "max_age": self.max_age, "hello_time": self.hello_time,
            "forward_delay": self.forward_delay,
            "bridge_max_age": self.bridge_max_age, "bridge_hello_time": self.bridge_hello_time,
            "bridge_forward_delay": self.bridge_forward_delay,
            "topology_change": self.topology_change,
            "topology_change_detected": self.topology_change_detected,
            "topology_changes": self.topology_changes,
            "since_topology_change": None if self.last_topology_change is None
            else round(now - self.last_topology_change, 3),
            "malformed": self.malformed,
            "ports": ports,
        }

    # ---- timers and transmission helpers ------------------------------------------------

    def _stop_port_timers(self, p: StpPort) -> None:
        for name in ("message_age_timer", "forward_delay_timer", "hold_timer"):
            t = getattr(p, name)
            if t is not None:
                t.cancel()
                setattr(p, name, None)

    def _set_state(self, p: StpPort, state: int) -> None:
        p.state = state
        if state == FORWARDING:
            p.forward_transitions += 1
        self.switch.set_port_state(p.index, state)

    def _start_hello_timer(self) -> None:
        if self.hello_timer is not None:
            self.hello_timer.cancel()
        self.hello_timer = self._timer(self.bridge_hello_time, self._hello_timer_expiry)

    def _stop_hello_timer(self) -> None:
        if self.hello_timer is not None:
            self.hello_timer.cancel()
            self.hello_timer = None

    def _start_tcn_timer(self) -> None:
        if self.tcn_timer is not None:
            self.tcn_timer.cancel()
        self.tcn_timer = self._timer(self.bridge_hello_time, self._tcn_timer_expiry)

    def _stop_tcn_timer(self) -> None:
        if self.tcn_timer is not None:
            self.tcn_timer.cancel()
            self.tcn_timer = None

    def _start_topology_change_timer(self) -> None:
        if self.topology_change_timer is not None:
            self.topology_change_timer.cancel()
        self.topology_change_timer = self._timer(self.topology_change_time,
                                                 self._topology_change_timer_expiry)

    def _stop_topology_change_timer(self) -> None:
        if self.topology_change_timer is not None:
            self.topology_change_timer.cancel()
            self.topology_change_timer = None

    def _send(self, p: StpPort, bpdu: wire.Bpdu) -> None:
        self.switch.port_send(p.index, wire.build(self.switch.mac, bpdu))

    # ---- 8.6: elements of procedure ---------------------------------------------------

    def _transmit_config(self, p: StpPort) -> None:  # 8.6.1
        if p.hold_timer is not None:
            p.config_pending = True
            return
        if self.is_root():
            age = 0.0
        else:
            rp = (self.ports.get(self.root_port) if self.root_port is not None else None)
            age = (self.rt.now() - rp.age_base if rp is not None else 0.0) + MESSAGE_AGE_INCREMENT
        if age >= self.max_age:  # the information has expired: say nothing
            return
        bpdu = wire.ConfigBpdu(
            self.designated_root, self.root_path_cost, self.bridge_id, p.port_id,
            min(age, wire.MAX_TIME), self.max_age, self.hello_time, self.forward_delay,
            tc=self.topology_change, tca=p.topology_change_ack)
        self._send(p, bpdu)
        p.tx_bpdu += 1
        p.topology_change_ack = False
        p.config_pending = False
        p.hold_timer = self._timer(self.hold_time, self._hold_timer_expiry, p)

    def _supersedes_port_info(self, p: StpPort, b: wire.ConfigBpdu) -> bool:  # 8.6.2.2
        if b.root_id != p.designated_root:
            return b.root_id < p.designated_root
        if b.root_path_cost != p.designated_cost:
            return b.root_path_cost < p.designated_cost
        if b.bridge_id != p.designated_bridge:
            return b.bridge_id < p.designated_bridge
        return b.bridge_id != self.bridge_id or b.port_id <= p.designated_port

    def _record_config_information(self, p: StpPort, b: wire.ConfigBpdu) -> None:  # 8.6.2
        p.designated_root = b.root_id
        p.designated_cost = b.root_path_cost
        p.designated_bridge = b.bridge_id
        p.designated_port = b.port_id
        now = self.rt.now()
        p.age_base = now - b.message_age
        if p.message_age_timer is not None:
            p.message_age_timer.cancel()
        lifetime = _clamp(b.max_age, MAX_AGE_RANGE) - b.message_age
        p.message_age_timer = self._timer(max(lifetime, 0.0), self._message_age_timer_expiry, p)

    def _record_config_timeout_values(self, b: wire.ConfigBpdu) -> None:  # 8.6.3
        self.max_age = _clamp(b.max_age, MAX_AGE_RANGE)
        self.hello_time = _clamp(b.hello_time, HELLO_RANGE)
        self.forward_delay = _clamp(b.forward_delay, FORWARD_DELAY_RANGE)
        self._set_topology_change(b.tc)

    def _config_bpdu_generation(self) -> None:  # 8.6.4
        for p in self._ports_in_order():
            if self._designated_port(p) and p.state != DISABLED:
                self._transmit_config(p)

    def _designated_port(self, p: StpPort) -> bool:
        return p.designated_bridge == self.bridge_id and p.designated_port == p.port_id

    def _transmit_tcn(self) -> None:  # 8.6.6
        p = (self.ports.get(self.root_port) if self.root_port is not None else None)
        if p is not None:
            self._send(p, wire.TcnBpdu())
            p.tx_tcn += 1

    def _configuration_update(self) -> None:  # 8.6.7
        self._root_selection()
        self._designated_port_selection()

    def _root_selection(self) -> None:  # 8.6.8
        best: StpPort | None = None
        best_key: tuple[int, int, int, int, int] | None = None
        for p in self.ports.values():
            if self._designated_port(p) or p.state == DISABLED:
                continue
            if p.designated_root >= self.bridge_id:
                continue
            key = (p.designated_root, p.designated_cost + p.path_cost, p.designated_bridge,
                   p.designated_port, p.port_id)
            if best_key is None or key < best_key:
                best, best_key = p, key
        if best is None:
            self.root_port = None
            self.designated_root = self.bridge_id
            self.root_path_cost = 0
        else:
            self.root_port = best.index
            self.designated_root = best.designated_root
            self.root_path_cost = best.designated_cost + best.path_cost

    def _designated_port_selection(self) -> None:  # 8.6.9
        for p in self.ports.values():
            if p.state == DISABLED:
                continue
            if (self._designated_port(p)
                    or p.designated_root != self.designated_root
                    or self.root_path_cost < p.designated_cost
                    or (self.root_path_cost == p.designated_cost
                        and (self.bridge_id < p.designated_bridge
                             or (self.bridge_id == p.designated_bridge
                                 and p.port_id <= p.designated_port)))):
                self._become_designated_port(p)

    def _become_designated_port(self, p: StpPort) -> None:  # 8.6.10
        p.designated_root = self.designated_root
        p.designated_cost = self.root_path_cost
        p.designated_bridge = self.bridge_id
        p.designated_port = p.port_id

    def _port_state_selection(self) -> None:  # 8.6.11
        for p in self._ports_in_order():
            if p.state == DISABLED:
                continue
            if p.index == self.root_port:
                p.config_pending = False
                p.topology_change_ack = False
                self._make_forwarding(p)
            elif self._designated_port(p):
                if p.message_age_timer is not None:
                    p.message_age_timer.cancel()
                    p.message_age_timer = None
                self._make_forwarding(p)
            else:
                p.config_pending = False
                p.topology_change_ack = False
                self._make_blocking(p)

    def _make_forwarding(self, p: StpPort) -> None:  # 8.6.12
        if p.state == BLOCKING:
            self._set_state(p, LISTENING)
            if p.forward_delay_timer is not None:
                p.forward_delay_timer.cancel()
            p.forward_delay_timer = self._timer(self.forward_delay,
                                                self._forward_delay_timer_expiry, p)

    def _make_blocking(self, p: StpPort) -> None:  # 8.6.13
        if p.state not in (DISABLED, BLOCKING):
            if p.state in (FORWARDING, LEARNING) and p.change_detection:
                self._topology_change_detection()
            self._set_state(p, BLOCKING)
            if p.forward_delay_timer is not None:
                p.forward_delay_timer.cancel()
                p.forward_delay_timer = None

    def _topology_change_detection(self) -> None:  # 8.6.14
        if self.is_root():
            self._set_topology_change(True)
            self._start_topology_change_timer()
        elif not self.topology_change_detected:
            self._transmit_tcn()
            self._start_tcn_timer()
        self.topology_change_detected = True

    def _topology_change_acknowledged(self) -> None:  # 8.6.15
        self.topology_change_detected = False
        self._stop_tcn_timer()

    def _acknowledge_topology_change(self, p: StpPort) -> None:  # 8.6.16
        p.topology_change_ack = True
        self._transmit_config(p)

    def _set_topology_change(self, flag: bool) -> None:
        """Track the Topology Change flag; while set, age learned addresses in forward_delay."""
        if flag == self.topology_change:
            return
        self.topology_change = flag
        if flag:
            self.topology_changes += 1
            self.last_topology_change = self.rt.now()
            self._fast_age()
        elif self._fast_age_timer is not None:
            self._fast_age_timer.cancel()
            self._fast_age_timer = None

    def _fast_age(self) -> None:
        # The switch ages its table on its own GC period; while the topology changes we age
        # with forward_delay instead (8.3.5), on the same period.
        self._fast_age_timer = None
        if not self.topology_change or not self._running:
            return
        self.switch.flush(expire=self.forward_delay)
        self._fast_age_timer = self.rt.call_later(self.switch.gc_interval, self._fast_age)

    def _ports_in_order(self) -> list[StpPort]:
        return [self.ports[i] for i in sorted(self.ports)]

    def _became_root(self) -> None:
        """Common tail of 8.7.3, 8.8.2 and 8.8.4 when this bridge has just become the root."""
        self.max_age = self.bridge_max_age
        self.hello_time = self.bridge_hello_time
        self.forward_delay = self.bridge_forward_delay
        self.topology_change_time = self.bridge_max_age + self.bridge_forward_delay
        self._topology_change_detection()
        self._stop_tcn_timer()
        self._config_bpdu_generation()
        self._start_hello_timer()

    # ---- 8.7: operation of the protocol -------------------------------------------------

    def _receive(self, index: int, frame: bytes) -> None:
        p = self.ports.get(index)
        if p is None or not self._running:
            return
        try:
            bpdu = wire.parse(frame)
        except WireError:
            p.rx_bad += 1
            self.malformed += 1
            return
        if p.state == DISABLED:
            return
        if isinstance(bpdu, wire.TcnBpdu):
            p.rx_tcn += 1
            self._received_tcn_bpdu(p)
            return
        if bpdu.message_age >= bpdu.max_age:
            p.rx_aged += 1
            return
        if bpdu.bridge_id == self.bridge_id and bpdu.port_id == p.port_id:
            p.rx_own += 1  # our own BPDU came back to the port that sent it (9.3.4)
            return
        p.rx_bpdu += 1
        self._received_config_bpdu(p, bpdu)

    def _received_config_bpdu(self, p: StpPort, b: wire.ConfigBpdu) -> None:  # 8.7.1
        if self._supersedes_port_info(p, b):
            was_root = self.is_root()
            self._record_config_information(p, b)
            self._configuration_update()
            self._port_state_selection()
            if was_root and not self.is_root():
                self._stop_hello_timer()
                if self.topology_change_detected:
                    self._stop_topology_change_timer()
                    self._transmit_tcn()
                    self._start_tcn_timer()
            if p.index == self.root_port:
                self._record_config_timeout_values(b)
                self._config_bpdu_generation()
                if b.tca:
                    self._topology_change_acknowledged()
        elif self._designated_port(p):
            self._transmit_config(p)  # reply (8.6.5): correct the sender's inferior view

    def _received_tcn_bpdu(self, p: StpPort) -> None:  # 8.7.2
        if self._designated_port(p):
            self._topology_change_detection()
            self._acknowledge_topology_change(p)

    def _hello_timer_expiry(self) -> None:  # 8.7.3
        self.hello_timer = None
        if not self._running:
            return
        self._config_bpdu_generation()
        self._start_hello_timer()

    def _message_age_timer_expiry(self, p: StpPort) -> None:  # 8.7.4
        p.message_age_timer = None
        if not self._running or self.ports.get(p.index) is not p:
            return
        was_root = self.is_root()
        self._become_designated_port(p)
        self._configuration_update()
        self._port_state_selection()
        if self.is_root() and not was_root:
            self._became_root()

    def _forward_delay_timer_expiry(self, p: StpPort) -> None:  # 8.7.5
        p.forward_delay_timer = None
        if not self._running or self.ports.get(p.index) is not p:
            return
        if p.state == LISTENING:
            self._set_state(p, LEARNING)
            p.forward_delay_timer = self._timer(self.forward_delay,
                                                self._forward_delay_timer_expiry, p)
        elif p.state == LEARNING:
            self._set_state(p, FORWARDING)
            if p.change_detection and any(q.designated_bridge == self.bridge_id
                                          for q in self.ports.values()):
                self._topology_change_detection()

    def _tcn_timer_expiry(self) -> None:  # 8.7.6
        self.tcn_timer = None
        if not self._running:
            return
        self._transmit_tcn()
        self._start_tcn_timer()

    def _topology_change_timer_expiry(self) -> None:  # 8.7.7
        self.topology_change_timer = None
        self.topology_change_detected = False
        self._set_topology_change(False)

    def _hold_timer_expiry(self, p: StpPort) -> None:  # 8.7.8
        p.hold_timer = None
        if not self._running or self.ports.get(p.index) is not p:
            return
        if p.config_pending:
            self._transmit_config(p)

    # ---- 8.8: management ----------------------------------------------------------------

    def _initialise(self) -> None:  # 8.8.1
        self.designated_root = self.bridge_id
        self.root_path_cost = 0
        self.root_port = None
        self.max_age = self.bridge_max_age
        self.hello_time = self.bridge_hello_time
        self.forward_delay = self.bridge_forward_delay
        self.topology_change_detected = False
        self.topology_change = False
        for index in sorted(self.switch.ports):
            self._new_port(index)
        self._port_state_selection()
        self._config_bpdu_generation()
        self._start_hello_timer()

    def _new_port(self, index: int) -> StpPort:
        p = StpPort(index, DEFAULT_PORT_PRIORITY, self._costs.get(index, self._default_cost))
        self.ports[index] = p
        self._initialize_port(p)
        return p

    def _initialize_port(self, p: StpPort) -> None:
        self._become_designated_port(p)
        self._set_state(p, BLOCKING)
        p.topology_change_ack = False
        p.config_pending = False
        self._stop_port_timers(p)

    def _port_added(self, index: int) -> None:  # enable port, 8.8.2
        if not self._running:
            return
        old = self.ports.pop(index, None)
        if old is not None:
            self._stop_port_timers(old)
        p = self._new_port(index)
        self._port_state_selection()
        if self._designated_port(p):
            self._transmit_config(p)  # tell the new neighbour who we think is root

    def _enable_port(self, p: StpPort) -> None:  # 8.8.2
        self._initialize_port(p)
        self._port_state_selection()

    def _disable_port(self, p: StpPort) -> None:  # 8.8.3
        was_root = self.is_root()
        self._initialize_port(p)
        self._set_state(p, DISABLED)
        self._configuration_update()
        self._port_state_selection()
        if self.is_root() and not was_root:
            self._became_root()

    def _port_removed(self, index: int) -> None:
        p = self.ports.get(index)
        if p is None or not self._running:
            return
        self._disable_port(p)  # elects a new root port if this one was it
        self._stop_port_timers(p)
        del self.ports[index]

    def _set_bridge_priority(self, priority: int) -> None:  # 8.8.4
        new_id = wire.bridge_id(priority, self.switch.mac)
        was_root = self.is_root()
        for p in self.ports.values():
            if self._designated_port(p):
                p.designated_bridge = new_id
        self.priority = priority
        self.bridge_id = new_id
        if was_root:
            self.designated_root = new_id
        self._configuration_update()
        self._port_state_selection()
        if self.is_root() and not was_root:
            self._became_root()
        elif self.is_root():
            self._config_bpdu_generation()  # announce the new identifier now

    def _set_port_priority(self, p: StpPort, priority: int) -> None:  # 8.8.5
        new_id = (priority >> 4) << 12 | (p.index & 0x0FFF)
        if self._designated_port(p):
            p.designated_port = new_id
        p.priority = priority
        p.port_id = new_id
        if (self.bridge_id == p.designated_bridge and p.port_id < p.designated_port):
            self._become_designated_port(p)
            self._port_state_selection()

    def _set_path_cost(self, p: StpPort, cost: int) -> None:  # 8.8.6
        p.path_cost = cost
        self._configuration_update()
        self._port_state_selection()


def _check_cost(cost: int) -> int:
    if not isinstance(cost, int) or not 1 <= cost <= 200_000_000:
        raise SwitchError(f"STP path cost {cost!r} out of range: use 1..200000000 "
                          f"(802.1D: 100 for 10 Mb/s, 19 for 100 Mb/s, 4 for 1 Gb/s)")
    return cost


def format_info(info: dict[str, Any]) -> str:
    """Human-readable `stp/print` output for an `Stp.info()` dict."""
    if not info.get("enabled", True):
        return "spanning tree: off"
    lines = [
        f"bridge id {info['bridge_id']}  root id {info['root_id']}"
        + ("  (this bridge is the root)" if info["is_root"] else
           f"  root port {info['root_port']}  root path cost {info['root_path_cost']}"),
        f"timers: hello {info['hello_time']:g} s  max age {info['max_age']:g} s  "
        f"forward delay {info['forward_delay']:g} s"
        + ("  TOPOLOGY CHANGE" if info["topology_change"] else ""),
        f"topology changes {info['topology_changes']}  malformed BPDUs {info['malformed']}",
        "port  role        state       cost   designated bridge     port  rx/tx bpdu",
    ]
    for p in info["ports"]:
        lines.append(f"{p['port']:>4}  {p['role']:<10}  {p['state']:<10}  {p['cost']:>5}  "
                     f"{p['designated_bridge']:<20}  {p['designated_port']}  "
                     f"{p['rx_bpdu']}/{p['tx_bpdu']}")
    return "\n".join(lines)
