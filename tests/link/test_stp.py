"""802.1D spanning tree on vnet switches in simulated time.

Expected trees are computed independently of the engine (shortest path to the
lowest bridge id, ties broken by bridge id then port id) from the topology the
test built, so the assertions check the protocol's outcome, not echo it.
"""

from __future__ import annotations

import heapq

import pytest

from vnet.link.link import Link
from vnet.link.port import Port, connect
from vnet.link.stp import Stp, format_info
from vnet.link.switch import BLOCKING, FORWARDING, Switch, SwitchError
from vnet.runtime.sim import SimRuntime
from vnet.wire import ethernet as eth
from vnet.wire import stp as wire

FAST = dict(hello_time=1.0, max_age=6.0, forward_delay=4.0)


class Endpoint:
    def __init__(self, mac: bytes) -> None:
        self.mac = mac
        self.port = Port(f"ep{mac[-1]}")
        self.got: list[bytes] = []
        self.port.receive = self._rx

    def _rx(self, frame: bytes) -> None:
        if frame[0:6] != wire.STP_GROUP:
            self.got.append(frame)

    def count(self, tag: bytes) -> int:
        return sum(1 for f in self.got if f[14:14 + len(tag)] == tag)


class Net:
    """Switches s0..sN-1, endpoint h_i on each, cables as `Link`s with 1 ms delay."""

    def __init__(self, n: int, priorities=None, stp: bool = True, timers=None, seed: int = 1):
        self.rt = SimRuntime(seed=seed)
        self.switches = [Switch(self.rt, numports=8, name=f"s{i}",
                                mac=bytes([2, 0, 0, 0, 0, 0x10 + i])) for i in range(n)]
        self.hosts = []
        for i, sw in enumerate(self.switches):
            h = Endpoint(bytes([2, 0, 0, 0, 0xA0, i]))
            connect(sw.add_port(), h.port)
            self.hosts.append(h)
        self.cables: list[tuple[int, int, int, int, Link]] = []  # (sw a, port a, sw b, port b, link)
        if stp:
            for i, sw in enumerate(self.switches):
                prio = priorities[i] if priorities else 32768
                Stp(sw, priority=prio, **(timers or FAST))
        self.bpdu_free_rx = 0

    def cable(self, a: int, b: int, delay: float = 0.001) -> Link:
        pa, pb = self.switches[a].add_port(), self.switches[b].add_port()
        link = Link(self.rt, pa, pb, delay=delay)
        self.cables.append((a, _index(self.switches[a], pa), b, _index(self.switches[b], pb), link))
        return link

    def ring(self) -> None:
        n = len(self.switches)
        for i in range(n):
            self.cable(i, (i + 1) % n)

    def run(self, seconds: float) -> None:
        self.rt.run_for(seconds)

    def stp(self, i: int) -> Stp:
        st = self.switches[i].stp
        assert isinstance(st, Stp)
        return st

    def state(self, i: int, index: int) -> int:
        return self.switches[i].ports[index].state

    def broadcast(self, src: int, tag: bytes) -> None:
        h = self.hosts[src]
        h.port.send(eth.build(eth.BROADCAST, h.mac, 0x88B5, tag + bytes(40)))

    def unicast(self, src: int, dst: int, tag: bytes) -> None:
        h = self.hosts[src]
        h.port.send(eth.build(self.hosts[dst].mac, h.mac, 0x88B5, tag + bytes(40)))


def _index(sw: Switch, port: Port) -> int:
    return next(i for i, r in sw.ports.items() if r.port is port)


def expected_tree(net: Net, alive=None, up=None):
    """Independent model: (root switch, {switch: root index}, {(switch, port) blocked})."""
    alive = set(range(len(net.switches))) if alive is None else alive
    cables = [c for c in net.cables if c[0] in alive and c[2] in alive
              and (up is None or up(c))]
    bid = {i: net.stp(i).bridge_id for i in alive}
    root = min(alive, key=lambda i: bid[i])
    adj: dict[int, list[tuple[int, int, int, int]]] = {i: [] for i in alive}
    for a, pa, b, pb, _ in cables:
        cost = 100
        adj[a].append((b, pa, pb, cost))
        adj[b].append((a, pb, pa, cost))
    dist = {root: 0}
    heap = [(0, root)]
    while heap:
        d, u = heapq.heappop(heap)
        if d > dist[u]:
            continue
        for v, _pu, _pv, c in adj[u]:
            if d + c < dist.get(v, 1 << 60):
                dist[v] = d + c
                heapq.heappush(heap, (d + c, v))
    port_id = {}
    for i in alive:
        for idx, p in net.stp(i).ports.items():
            port_id[(i, idx)] = p.port_id
    root_port = {}
    for u in alive:
        if u == root or u not in dist:
            continue
        root_port[u] = min(((dist[v] + c, bid[v], port_id[(v, pv)], port_id[(u, pu)], pu)
                            for v, pu, pv, c in adj[u] if v in dist))[-1]
    blocked = set()
    for a, pa, b, pb, _ in cables:
        if a not in dist or b not in dist:
            continue
        da, db = (dist[a], bid[a], port_id[(a, pa)]), (dist[b], bid[b], port_id[(b, pb)])
        loser, lport = (b, pb) if da < db else (a, pa)
        if root_port.get(loser) != lport:
            blocked.add((loser, lport))
    return root, root_port, blocked


def assert_converged(net: Net, alive=None, up=None, skip=()) -> set:
    alive = set(range(len(net.switches))) if alive is None else alive
    root, root_port, blocked = expected_tree(net, alive, up)
    root_id = wire.bridge_id_str(net.stp(root).bridge_id)
    for i in alive:
        info = net.stp(i).info()
        assert info["root_id"] == root_id, (i, format_info(info))
        assert info["root_port"] == root_port.get(i), (i, format_info(info))
        for idx, rec in net.switches[i].ports.items():
            if (i, idx) in skip:
                continue
            want = BLOCKING if (i, idx) in blocked else FORWARDING
            assert rec.state == want, (i, idx, format_info(info))
    return blocked


@pytest.mark.parametrize("n", [3, 5])
def test_ring_converges_single_root_right_ports_blocked(n):
    net = Net(n)
    net.ring()
    net.run(1.0)
    # Early on every port is listening: nothing forwards before forward_delay.
    assert all(r.state != FORWARDING for sw in net.switches for r in sw.ports.values())
    net.run(2 * FAST["forward_delay"] + 3)
    blocked = assert_converged(net)
    assert len(blocked) == 1  # a ring needs exactly one cut
    assert net.stp(0).is_root() and sum(net.stp(i).is_root() for i in range(n)) == 1
    # Root path costs along the ring: min hops either way, 100 per hop.
    for i in range(n):
        assert net.stp(i).root_path_cost == 100 * min(i, n - i)


@pytest.mark.parametrize("n", [3, 5])
def test_broadcast_after_convergence_delivered_once_no_loop(n):
    net = Net(n)
    net.ring()
    net.run(15)
    assert_converged(net)
    seen = [0]

    def count_rx(port: Port) -> None:
        inner = port.receive

        def rx(frame: bytes) -> None:
            if frame[14:18] == b"BCST":
                seen[0] += 1
            inner(frame)
        port.receive = rx

    for *_ends, link in net.cables:
        count_rx(link.a)
        count_rx(link.b)
    net.broadcast(0, b"BCST")
    net.run(2)
    assert [h.count(b"BCST") for h in net.hosts] == [0] + [1] * (n - 1)
    # One copy per cable: n-1 tree cables plus one into the blocked port, where it dies.
    assert seen[0] == n
    # Unicast both ways after learning.
    net.unicast(1, n - 1, b"UNI1")
    net.unicast(n - 1, 1, b"UNI2")
    net.run(1)
    assert net.hosts[n - 1].count(b"UNI1") == 1 and net.hosts[1].count(b"UNI2") == 1


def test_without_stp_the_same_ring_storms():
    """Control for the test above: with no spanning tree one broadcast never dies."""
    net = Net(3, stp=False)
    net.ring()
    net.broadcast(0, b"BCST")
    net.run(0.5)
    assert net.hosts[1].count(b"BCST") > 50


def _cut_and_check(net: Net, victim) -> None:
    a, pa, b, pb, link = victim
    link.set_up(False)
    net.run(FAST["max_age"] + 2 * FAST["forward_delay"] + 4)
    blocked = assert_converged(net, up=lambda c: c is not victim)
    assert not any(c is victim for c in net.cables if (c[0], c[1]) in blocked)
    # Unicast first: the tables learned on the old tree must have been aged by the
    # topology change (fast aging), or these go into the dead cable.
    net.unicast(1, 2, b"UNIa")
    net.unicast(2, 1, b"UNIb")
    net.run(1)
    assert net.hosts[2].count(b"UNIa") == 1 and net.hosts[1].count(b"UNIb") == 1
    for i in range(1, len(net.switches)):
        tag = f"B{i:03d}".encode()
        net.broadcast(i, tag)
        net.run(1)
        assert all(h.count(tag) == (0 if j == i else 1) for j, h in enumerate(net.hosts)), tag


@pytest.mark.parametrize("n", [3, 5])
def test_cut_tree_link_reconverges_and_restores_connectivity(n):
    net = Net(n)
    net.ring()
    net.run(15)
    blocked = assert_converged(net)
    # Learn addresses on the old tree so the topology change must flush them.
    for i in range(n):
        net.broadcast(i, b"LRN" + bytes([i]))
    net.run(1)
    victim = net.cables[0]  # s0-s1: a root cable, on the tree
    assert (victim[0], victim[1]) not in blocked and (victim[2], victim[3]) not in blocked
    before = [net.stp(i).info()["topology_changes"] for i in range(n)]
    _cut_and_check(net, victim)
    # The break was signalled: s1 sent a TCN or became root-side of a change the root announced.
    assert net.stp(0).info()["topology_changes"] > before[0]
    assert sum(p.tx_tcn for i in range(n) for p in net.stp(i).ports.values()) > 0
    # Restoring the cable brings the loop back, and it is cut again (one blocked port).
    victim[4].set_up(True)
    net.run(2 * FAST["forward_delay"] + 4)
    assert len(assert_converged(net)) == 1


def test_root_failure_elects_next_lowest():
    net = Net(4, priorities=[4096, 8192, 32768, 32768])
    net.ring()
    net.cable(0, 2)  # a chord through the root
    net.run(15)
    assert_converged(net)
    assert net.stp(2).info()["root_id"] == wire.bridge_id_str(net.stp(0).bridge_id)
    for c in net.cables:  # the root dies: all its cables go dark
        if 0 in (c[0], c[2]):
            c[4].set_up(False)
    net.switches[0].close()
    net.run(FAST["max_age"] + 2 * FAST["forward_delay"] + 6)
    assert_converged(net, alive={1, 2, 3})
    assert net.stp(1).is_root()
    for i in (1, 2, 3):
        tag = f"R{i:03d}".encode()
        net.broadcast(i, tag)
        net.run(1)
        assert [net.hosts[j].count(tag) for j in (1, 2, 3)] == [0 if j == i else 1 for j in (1, 2, 3)]


def test_priorities_choose_and_change_the_root():
    net = Net(5, priorities=[32768, 32768, 32768, 4096, 32768])
    net.ring()
    net.run(15)
    assert_converged(net)
    assert net.stp(3).is_root() and not net.stp(0).is_root()
    assert net.stp(0).info()["root_id"] == "1000.020000000013"
    net.stp(1).set_priority(0)  # live change: s1 takes over
    net.run(2 * FAST["forward_delay"] + 4)
    assert_converged(net)
    assert net.stp(1).is_root() and not net.stp(3).is_root()
    assert {net.stp(i).info()["root_id"] for i in range(5)} == {"0000.020000000011"}


def test_path_cost_moves_the_blocked_port():
    net = Net(3, priorities=[4096, 32768, 32768])
    net.ring()
    net.run(15)
    # s0 root; s1 and s2 tie on cost to the s1-s2 cable, s1 has the lower id: s2 blocks there.
    assert assert_converged(net) == {(2, 2)}  # port 1 is the host, 2 faces s1, 3 faces s0
    a, pa, b, pb, _ = net.cables[0]  # s0-s1
    net.stp(1).set_port_cost(pb, 1000)  # make s1's direct path to the root expensive
    net.run(2 * FAST["forward_delay"] + 4)
    assert net.stp(1).info()["root_path_cost"] == 200
    assert net.stp(1).info()["root_port"] != pb
    assert net.state(1, pb) == BLOCKING
    with pytest.raises(SwitchError, match="path cost"):
        net.stp(1).set_port_cost(pb, 0)


def test_malformed_and_aged_bpdus_are_counted_and_dropped():
    net = Net(3)
    net.ring()
    net.run(15)
    blocked = assert_converged(net)
    s1 = net.stp(1)
    h = net.hosts[1]
    src = h.mac
    garbage = [
        wire.STP_GROUP + src + b"\x00\x26" + b"\x42\x42\x03" + bytes(5),  # length past the end
        wire.STP_GROUP + src + b"\x00\x26" + b"\xaa\xaa\x03" + bytes(43),  # not spanning tree LLC
        wire.STP_GROUP + src + b"\x00\x07" + b"\x42\x42\x03" + b"\x00\x00\x00\x42" + bytes(39),
        wire.STP_GROUP + src + b"\x00\x0a",  # 16 bytes
    ]
    for g in garbage:
        h.port.send(g)
    # A superior-looking BPDU whose message age has run out must be ignored.
    aged = wire.ConfigBpdu(root_id=0, root_path_cost=0, bridge_id=0, port_id=0x8001,
                           message_age=6.0, max_age=6.0, hello_time=1.0, forward_delay=4.0)
    h.port.send(wire.build(src, aged))
    net.run(3)
    info = s1.info()
    assert info["malformed"] == len(garbage)
    hp = next(p for p in info["ports"] if p["port"] == 1)
    assert hp["rx_bad"] == len(garbage) and hp["rx_aged"] == 1 and hp["rx_bpdu"] == 0
    assert assert_converged(net) == blocked  # nothing changed
    assert info["root_id"] == wire.bridge_id_str(net.stp(0).bridge_id)


def test_rogue_superior_bpdu_on_a_host_port_takes_over_then_ages_out():
    """A BPDU from a (pretend) better root is obeyed, as 802.1D says, and forgotten after max age."""
    net = Net(3)
    net.ring()
    net.run(15)
    h = net.hosts[2]
    rogue = wire.ConfigBpdu(root_id=wire.bridge_id(0, bytes.fromhex("020000000099")),
                            root_path_cost=0, bridge_id=wire.bridge_id(0, bytes.fromhex("020000000099")),
                            port_id=0x8001, message_age=0.0, max_age=6.0, hello_time=1.0,
                            forward_delay=4.0)
    h.port.send(wire.build(bytes.fromhex("020000000099"), rogue))
    net.run(0.5)
    assert {net.stp(i).info()["root_id"] for i in range(3)} == {"0000.020000000099"}
    net.run(FAST["max_age"] + 2 * FAST["forward_delay"] + 4)  # never refreshed: it ages out
    assert_converged(net)


def test_rst_bpdu_from_a_neighbour_is_used_as_config():
    net = Net(2)
    net.cable(0, 1)
    net.run(15)
    better = wire.bridge_id(0, bytes.fromhex("020000000077"))
    rst = wire.ConfigBpdu(root_id=better, root_path_cost=0, bridge_id=better, port_id=0x8001,
                          max_age=6.0, hello_time=1.0, forward_delay=4.0, version=2,
                          bpdu_type=wire.TYPE_RST, flags=0x0C)
    net.hosts[0].port.send(wire.build(bytes.fromhex("020000000077"), rst))
    net.run(0.5)
    assert net.stp(0).info()["root_id"] == "0000.020000000077"
    assert net.stp(0).info()["root_port"] == 1


def test_zero_delay_cables_and_port_add_remove():
    """Synchronous in-memory cables re-enter the engine; ports come and go at run time."""
    rt = SimRuntime(seed=3)
    sws = [Switch(rt, numports=8, name=f"z{i}", mac=bytes([2, 0, 0, 0, 1, i])) for i in range(3)]
    for sw in sws:
        Stp(sw, **FAST)
    pairs = []
    for i in range(3):
        a, b = sws[i].add_port(), sws[(i + 1) % 3].add_port()
        connect(a, b)
        pairs.append((i, a, (i + 1) % 3, b))
    rt.run_for(15)
    states = [r.state for sw in sws for r in sw.ports.values()]
    assert states.count(BLOCKING) == 1 and states.count(FORWARDING) == 5
    assert all(sw.stp.pending_dropped == 0 for sw in sws)  # type: ignore[union-attr]
    # Remove the blocked port's cable end: the loop is gone, everything forwards.
    (si, idx), = [(i, idx) for i, sw in enumerate(sws) for idx, r in sw.ports.items()
                  if r.state == BLOCKING]
    sws[si].remove_port(idx)
    rt.run_for(15)
    assert all(r.state == FORWARDING for sw in sws for r in sw.ports.values())
    assert idx not in sws[si].stp.ports  # type: ignore[union-attr]


def test_stop_and_validation():
    rt = SimRuntime()
    sw = Switch(rt, numports=4, mac=bytes.fromhex("020000000001"))
    p = sw.add_port()
    st = Stp(sw, **FAST)
    assert sw.stp is st and sw.ports[1].state != FORWARDING
    with pytest.raises(SwitchError, match="already runs"):
        Stp(sw)
    st.stop()
    assert sw.stp is None and sw.ports[1].state == FORWARDING
    assert rt.pending() == 1  # only the switch's own GC timer is left
    for bad in (dict(priority=70000), dict(hello_time=0.0), dict(max_age=100.0),
                dict(forward_delay=1.0), dict(port_cost=0)):
        with pytest.raises(SwitchError):
            Stp(sw, **bad)
    assert p.tx_frames > 0  # it did speak while it ran
    with pytest.raises(SwitchError, match="not a hub"):
        Stp(Switch(rt, numports=2, hub=True))


def test_info_is_json_and_console_text():
    import json
    net = Net(3)
    net.ring()
    net.run(15)
    info = net.stp(1).info()
    assert json.loads(json.dumps(info)) == info
    assert {p["role"] for p in info["ports"]} <= {"root", "designated", "blocked"}
    text = format_info(info)
    assert "root id 8000.020000000010" in text and "root port" in text


def test_cable_between_two_ports_of_one_switch_is_blocked():
    """A switch looped onto itself: its own BPDU arrives on its other port, which must block."""
    rt = SimRuntime(seed=5)
    sw = Switch(rt, numports=8, name="self", mac=bytes.fromhex("020000000031"))
    h = Endpoint(bytes.fromhex("02000000a031"))
    connect(sw.add_port(), h.port)
    Stp(sw, **FAST)
    a, b = sw.add_port(), sw.add_port()  # ports 2 and 3
    Link(rt, a, b, delay=0.001)
    rt.run_for(15)
    assert (sw.ports[2].state, sw.ports[3].state) == (FORWARDING, BLOCKING)
    assert sw.stp.is_root()  # type: ignore[union-attr]
    h.port.send(eth.build(eth.BROADCAST, h.mac, 0x88B5, b"SELF" + bytes(40)))
    rt.run_for(1)
    assert h.count(b"SELF") == 0 and sw.ports[3].port.rx_frames > 0


def test_two_switches_sharing_a_hub_segment_block_backup_ports():
    """Two bridges with two ports each on one shared segment (a hub): one designated port only."""
    rt = SimRuntime(seed=6)
    hub = Switch(rt, numports=8, hub=True, name="hub")
    sws = [Switch(rt, numports=8, name=f"b{i}", mac=bytes([2, 0, 0, 0, 2, i])) for i in range(2)]
    hosts = []
    for i, sw in enumerate(sws):
        h = Endpoint(bytes([2, 0, 0, 0, 0xB0, i]))
        connect(sw.add_port(), h.port)
        hosts.append(h)
        Stp(sw, **FAST)
        for _ in range(2):
            Link(rt, sw.add_port(), hub.add_port(), delay=0.001)
    rt.run_for(15)
    seg = [(i, idx) for i in range(2) for idx in (2, 3)]
    fwd = [x for x in seg if sws[x[0]].ports[x[1]].state == FORWARDING]
    # b0 (lower id) is root: its port 2 is designated; b1's port 2 is its root port
    # (lower designated port / own port id wins); all others block.
    assert fwd == [(0, 2), (1, 2)], [(x, sws[x[0]].ports[x[1]].state) for x in seg]
    hosts[0].port.send(eth.build(eth.BROADCAST, hosts[0].mac, 0x88B5, b"HUB!" + bytes(40)))
    rt.run_for(1)
    assert hosts[1].count(b"HUB!") == 1 and hosts[0].count(b"HUB!") == 0


def test_port_zero_can_be_the_root_port():
    rt = SimRuntime(seed=7)
    s0 = Switch(rt, numports=4, name="r", mac=bytes.fromhex("020000000041"))
    s1 = Switch(rt, numports=4, name="n", mac=bytes.fromhex("020000000042"))
    Stp(s0, **FAST)
    Stp(s1, **FAST)
    Link(rt, s0.add_port(), s1.add_port(index=0), delay=0.001)
    rt.run_for(10)
    assert s1.stp.info()["root_port"] == 0 and s0.stp.info()["root_port"] is None  # type: ignore[union-attr]
    assert s1.ports[0].state == FORWARDING


def test_bpdu_fuzz_never_crashes_and_the_tree_recovers():
    """Thousands of mutated BPDUs (some valid, most not) from a host port; then silence."""
    import random

    net = Net(3)
    net.ring()
    net.run(15)
    blocked = assert_converged(net)
    rnd = random.Random(11)
    h = net.hosts[1]
    base = [wire.build(h.mac, wire.ConfigBpdu(wire.bridge_id(0, bytes(6)), 0, 1, 0x8001, 0.0,
                                              6.0, 1.0, 4.0, tc=True)),
            wire.build(h.mac, wire.TcnBpdu())]
    bad_before = net.stp(1).malformed
    for _ in range(5000):
        f = bytearray(rnd.choice(base))
        for _ in range(rnd.randint(1, 4)):
            f[rnd.randrange(12, len(f))] = rnd.randrange(256)
        if rnd.random() < 0.2:
            f = f[:rnd.randrange(len(f))]
        h.port.send(bytes(f))
        if rnd.random() < 0.05:
            net.run(0.01)
    assert net.stp(1).malformed > bad_before  # garbage was counted
    assert net.stp(1).pending_dropped == 0
    # Whatever the forged BPDUs did, once they stop the real tree comes back.
    net.run(FAST["max_age"] + 2 * FAST["forward_delay"] + 4)
    assert assert_converged(net) == blocked


def test_disable_and_enable_port():
    net = Net(3, priorities=[4096, 32768, 32768])
    net.ring()
    net.run(15)
    assert_converged(net)
    s1 = net.stp(1)
    rp = s1.root_port
    assert rp is not None
    s1.disable_port(rp)
    net.run(0.1)
    assert net.state(1, rp) == 0 and s1.root_port != rp  # DISABLED; another way to the root
    # s2 still holds s1's old (better) information on that cable until it ages out.
    net.run(FAST["max_age"] + 2 * FAST["forward_delay"] + 4)
    dead = next(c for c in net.cables if (c[0], c[1]) == (1, rp) or (c[2], c[3]) == (1, rp))
    # The tree is the one without that cable; the disabled port itself stays disabled.
    assert_converged(net, up=lambda c: c is not dead, skip={(1, rp)})
    assert net.state(1, rp) == 0
    s1.enable_port(rp)
    net.run(2 * FAST["forward_delay"] + 4)
    assert_converged(net)
    assert s1.root_port == rp


def test_port_priority_picks_among_parallel_cables():
    net = Net(2, priorities=[4096, 32768])
    net.cable(0, 1)  # s0 port 2 - s1 port 2
    net.cable(0, 1)  # s0 port 3 - s1 port 3
    net.run(15)
    assert net.stp(1).root_port == 2 and net.state(1, 3) == BLOCKING
    net.stp(0).set_port_priority(3, 16)  # the root's port 3 now has the better port id
    net.run(2 * FAST["forward_delay"] + 4)
    assert net.stp(1).root_port == 3 and net.state(1, 2) == BLOCKING
    assert_converged(net)
    with pytest.raises(SwitchError, match="steps of 16"):
        net.stp(0).set_port_priority(3, 17)
    st = net.stp(0)
    st.stop()
    with pytest.raises(SwitchError, match="stopped"):
        st.set_priority(1)
