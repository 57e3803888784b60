import pytest

from vnet.link.link import Link
from vnet.link.port import Port, connect
from vnet.link.switch import Switch, SwitchError
from vnet.runtime.sim import SimRuntime
from vnet.wire import ethernet as eth

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")
C = bytes.fromhex("020000000003")


class Endpoint:
    def __init__(self) -> None:
        self.port = Port("ep")
        self.got: list[bytes] = []
        self.port.receive = self.got.append


def make(n=3, **kw):
    rt = SimRuntime(seed=1)
    sw = Switch(rt, **kw)
    eps = []
    for _ in range(n):
        ep = Endpoint()
        connect(sw.add_port(), ep.port)
        eps.append(ep)
    return rt, sw, eps


def frame(dst, src, payload=b"x" * 46, etype=0x0800):
    return eth.build(dst, src, etype, payload)


def test_learn_and_forward():
    rt, sw, (a, b, c) = make()
    a.port.send(frame(B, A))  # unknown: flooded
    assert len(b.got) == 1 and len(c.got) == 1
    b.port.send(frame(A, B))  # A learned on port 1: unicast only
    assert len(a.got) == 1 and len(c.got) == 1
    a.port.send(frame(B, A))
    assert len(b.got) == 2 and len(c.got) == 1


def test_broadcast_floods_not_back():
    rt, sw, (a, b, c) = make()
    a.port.send(frame(eth.BROADCAST, A))
    assert (len(a.got), len(b.got), len(c.got)) == (0, 1, 1)


def test_short_and_oversize_counted():
    rt, sw, (a, b, c) = make(mtu=1500)
    a.port.send(b"\x00" * 13)
    a.port.send(frame(B, A, b"y" * 1505))  # 1519 bytes > 1518
    assert b.got == [] and sw.drops_short == 1 and sw.drops_oversize == 1
    a.port.send(frame(B, A, b"y" * 1504))  # 1518: allowed
    assert len(b.got) == 1


def test_jumbo():
    rt, sw, (a, b, c) = make(mtu=9000)
    a.port.send(frame(eth.BROADCAST, A, b"j" * 9000))
    assert len(b.got[0]) == 9014


def test_aging():
    rt, sw, (a, b, c) = make(expire=10)
    a.port.send(frame(eth.BROADCAST, A))
    assert len(sw.table) == 1
    rt.run(until=13)
    assert len(sw.table) == 0


def test_table_cap_evicts():
    rt, sw, (a, b, c) = make(mac_table_size=100)
    for i in range(1000):
        a.port.send(frame(eth.BROADCAST, bytes([2, 0, 0, 0, i >> 8, i & 255])))
    assert len(sw.table) == 100 and sw.table.evicted == 900


def test_vlan_access_and_trunk():
    rt, sw, (a, b, c) = make()
    sw.vlan_create(10)
    sw.set_port_vlan(1, 10)  # a: access VLAN 10
    sw.vlan_add_port(10, 3)  # c: trunk
    a.port.send(frame(eth.BROADCAST, A))
    assert b.got == []
    t = eth.parse(c.got[0])
    assert t.vid == 10 and c.got[0][16:] == frame(eth.BROADCAST, A)[12:]
    c.port.send(eth.push_tag(frame(A, C), 10))
    assert a.got == [frame(A, C)]
    c.port.send(eth.push_tag(frame(eth.BROADCAST, C), 99))  # not a member
    assert sw.port(3).rx_vlan_drop == 1


def test_hub_mode():
    rt, sw, (a, b, c) = make(hub=True)
    b.port.send(frame(A, B))
    a.port.send(frame(B, A))
    assert len(c.got) == 2


def test_full_switch():
    rt = SimRuntime()
    sw = Switch(rt, numports=2)
    sw.add_port()
    sw.add_port()
    with pytest.raises(SwitchError, match="in use"):
        sw.add_port()


def test_sim_link_delay_and_loss():
    rt = SimRuntime(seed=3)
    a, b = Port("a"), Port("b")
    got = []
    b.receive = lambda f: got.append(rt.now())
    Link(rt, a, b, delay=0.010, loss=0.5)
    for i in range(1000):
        rt.call_at(i * 0.001, a.send, b"x" * 60)
    rt.run()
    assert 400 < len(got) < 600
    assert min(got) >= 0.010


def test_sim_link_rate_queue():
    rt = SimRuntime()
    a, b = Port("a"), Port("b")
    got = []
    b.receive = lambda f: got.append(rt.now())
    link = Link(rt, a, b, rate=8000.0, queue_limit=5)  # 1000 bytes/s
    for _ in range(10):
        a.send(b"x" * 100)  # 0.1 s each
    rt.run()
    assert len(got) == 5 and link.ab.queue_drops == 5
    assert abs(got[-1] - 0.5) < 1e-9


def test_hub_toggled_live_and_back():
    rt, sw, (a, b, c) = make()
    b.port.send(frame(A, B))
    a.port.send(frame(B, A))  # learned: only b
    assert len(c.got) == 1  # the first flood
    sw.hub = True
    a.port.send(frame(B, A))
    assert len(c.got) == 2
    sw.hub = False
    a.port.send(frame(B, A))
    assert len(c.got) == 2


def test_fast_path_respects_stp_state_and_vlan_changes():
    from vnet.link.switch import BLOCKING, FORWARDING

    rt, sw, (a, b, c) = make()
    b.port.send(frame(A, B))
    sw.set_port_state(2, BLOCKING)
    a.port.send(frame(B, A))
    assert b.got == [] or all(f[6:12] != A for f in b.got)
    sw.set_port_state(2, FORWARDING)
    b.port.send(frame(A, B))
    sw.vlan_create(5)
    sw.set_port_vlan(2, 5)  # b moves to VLAN 5: unreachable from VLAN 0
    before = len(b.got)
    a.port.send(frame(B, A))
    assert len(b.got) == before


def test_unicast_to_own_port_is_filtered():
    rt, sw, (a, b, c) = make()
    a.port.send(frame(eth.BROADCAST, A))
    a.port.send(frame(eth.BROADCAST, B))  # B now "on" port 1 too? no: B learned on port 1
    a.port.send(frame(B, A))
    assert sw.port(1).filtered == 1
