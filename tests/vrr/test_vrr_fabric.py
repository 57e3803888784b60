"""IP over VRR on vnet switches in simulated time (no root): the same daemon object as
`vnet vrr`, with a vnet host stack in place of the kernel behind each TAP.

Six nodes: a chain 0-1-2-3-4 plus node 5 joined to 1 and 3, each segment a vnet Switch
(cables with 0.5 ms delay).
Host 0 pings host 4 (IPv4 and IPv6) across four hops, moves a TCP transfer, a cable of
the path is cut mid-transfer and the ring heals around it; no ARP/ND leaves a host
port onto the ring.
"""

from __future__ import annotations

import random

from vnet.link.link import Link
from vnet.link.port import Port, connect
from vnet.link.switch import Switch
from vnet.runtime.sim import SimRuntime
from vnet.stack.host import Host
from vnet.stack.sockets import tcp_of
from vnet.vrr import sim
from vnet.vrr.daemon import VrrDaemon
from vnet.wire import vrr as W

EDGES = [(0, 1), (1, 2), (2, 3), (3, 4), (1, 5), (5, 3)]
N = 6


def build(seed: int = 1):
    rt = SimRuntime(seed=seed)
    addrs = sim.unique_addrs(N, random.Random(seed))
    ports: list[list[Port]] = [[] for _ in range(N)]
    cables: dict[tuple[int, int], list[Link]] = {}
    for a, b in EDGES:
        sw = Switch(rt, 4)
        cables[(a, b)] = []
        for x in (a, b):
            p = Port(f"n{x}")
            cables[(a, b)].append(Link(rt, p, sw.add_port(), delay=0.0005))
            ports[x].append(p)
    daemons, hosts, frames_to_ring = [], [], []
    for i in range(N):
        host_port = Port("host")
        d = VrrDaemon(rt, addrs[i], ports[i], [W.addr_to_mac(addrs[i])] * len(ports[i]),
                      host_port)
        h = Host(rt, f"h{i}")
        iface = h.add_interface("vrr0", mtu=1500 - W.HDR_LEN)
        connect(iface.port, host_port)
        h.add_address("vrr0", f"10.99.0.{i + 1}/24")
        h.add_address("vrr0", f"fd99::{i + 1}/64")
        # what `vnet vrr` does by reading the TAP's addresses
        d.ip.publish(f"10.99.0.{i + 1}")
        d.ip.publish(f"fd99::{i + 1}")
        d.start()
        daemons.append(d)
        hosts.append(h)
    return rt, daemons, hosts, cables, frames_to_ring


def test_ping_tcp_and_healing_on_switches():
    rt, daemons, hosts, cables, _ = build()
    rt.run(until=30)
    ids = sorted(d.node.addr for d in daemons)
    for d in daemons:
        k = ids.index(d.node.addr)
        assert d.node.vset == {ids[(k + s) % N] for s in (-2, -1, 1, 2)}
    replies = []
    for seq, dst in enumerate(("10.99.0.5", "fd99::5")):
        for attempt in range(3):  # the first may wait for the DHT lookup
            hosts[0].ping(dst, 7, seq * 10 + attempt,
                          on_reply=lambda m, n, dst=dst: replies.append(dst))
            rt.run(until=rt.now() + 1)
    assert "10.99.0.5" in replies and "fd99::5" in replies
    # path length: host 0's packets to host 4 crossed exactly four VRR hops
    hops = []
    orig = daemons[4].ip._from_ring
    daemons[4].node.on_data = lambda o, nh, p, h: (hops.append(h), orig(o, nh, p, h))
    hosts[0].ping("10.99.0.5", 8, 1)
    rt.run(until=rt.now() + 1)
    assert hops and min(hops) >= 4

    data = random.Random(2).randbytes(400_000)
    got = bytearray()

    def accept(c):
        c.on_data = got.extend
        c.on_eof = c.close

    tcp_of(hosts[4]).listen(5001, accept)
    c = tcp_of(hosts[0]).connect("10.99.0.5", 5001)
    c.on_established = lambda: (c.send(data), c.close())
    for _ in range(500):
        rt.run(until=rt.now() + 0.01)
        if len(got) > 50_000:
            break
    assert 0 < len(got) < len(data)  # mid-transfer
    # cut the cable between 1 and 2 that the transfer uses (the way around is 1-5-3)
    for link in cables[(1, 2)]:
        link.set_up(False)
    rt.run(until=rt.now() + 60)
    assert bytes(got) == data
    assert sum(d.node.stats["repairs"] for d in daemons) > 0  # the ring healed
    assert sum(d.ip.stats["arp_answered"] for d in daemons) >= 1
    assert sum(d.ip.stats["nd_answered"] for d in daemons) >= 1
    assert all(d.ip.stats["bcast_dropped"] + d.ip.stats["mcast_dropped"] > 0 for d in daemons)
