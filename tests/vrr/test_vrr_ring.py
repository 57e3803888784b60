"""The ring engine in simulated time: ring formation, delivery, healing, merging, bad input."""

from __future__ import annotations

import random

import pytest

from vnet.link.port import Port
from vnet.vrr import sim
from vnet.vrr.node import Config, VrrNode
from vnet.wire import vrr as W


def _converged(g, seed=1, limit=120.0, **kw) -> sim.Net:
    net = sim.build(g, seed=seed, **kw)
    t = net.run_until_converged(limit)
    assert t is not None, f"ring did not converge: {net.ring_errors()} nodes wrong"
    return net


@pytest.mark.parametrize("topo, n", [("line", 12), ("grid", 36), ("disk", 80)])
def test_ring_forms_with_true_ring_neighbours(topo, n):
    g, _ = sim.make_graph(topo, n, 8, random.Random(3))
    net = _converged(g, seed=3)
    ids = sorted(net.addrs)
    for node in net.nodes:
        k = ids.index(node.addr)
        assert node.active
        assert node.vset == {ids[(k + d) % n] for d in (-2, -1, 1, 2)}


@pytest.mark.parametrize("topo, n", [("line", 10), ("grid", 16)])
def test_all_pairs_delivery(topo, n):
    g, _ = sim.make_graph(topo, n, 8, random.Random(1))
    net = _converged(g)
    sent = {}
    for s in range(n):
        for d in range(n):
            if s != d:
                pid = s * 1000 + d
                sent[pid] = d
                net.nodes[s].send_data(net.addrs[d], 0x88B5, pid.to_bytes(8, "big"))
    net.rt.run(until=net.rt.now() + 2)
    assert {pid: net.delivered.get(pid, (None,))[0] for pid in sent} == sent
    # hop counts on a line are exactly the physical distances (no stretch on a line)
    if topo == "line":
        for pid, d in sent.items():
            assert net.delivered[pid][1] == abs(pid // 1000 - d)


def test_failures_heal():
    rng = random.Random(5)
    g, _ = sim.make_graph("disk", 80, 10, rng)
    net = _converged(g, seed=5)
    for v in rng.sample(range(80), 8):
        net.kill(v)
    assert net.run_until_converged(120) is not None
    p = net.probe(200, rng)
    assert p["ratio"] == 1.0


@pytest.mark.parametrize("seed", [1, 3])
def test_partitions_merge_and_split(seed):
    r = sim.run_scenario("partition", 60, topology="disk", seed=seed, settle=60, pairs=100)
    net = r["_net"]
    assert r["converge_s"] is not None  # two rings formed while the halves were apart
    assert r["merge_s"] is not None and r["delivery_joined"] == 1.0  # one ring once joined
    assert r["split_s"] is not None and r["delivery_split"] == 1.0  # two rings after the cut
    assert net.ring_errors() == 0


def test_bad_input_is_counted_and_dropped():
    g = sim.line(6)
    net = _converged(g)
    victim = net.nodes[2]
    nb_addr = net.addrs[1]
    port = net.medium.ports[2]
    good = W.build(victim.me6, W.addr_to_mac(nb_addr), W.DATA, 0, 64, 0x0800, 1, net.addrs[5],
                   nb_addr, nb_addr, b"x" * 20)
    bad = [
        good[:30],  # truncated
        good[:14] + b"JUNK" + good[18:],  # garbage demux
        good[:18] + b"\x07" + good[19:],  # wrong version
        good[:22] + (9999).to_bytes(2, "big") + good[24:],  # oversized length
        bytes(range(200)),  # garbage (not even our Ethertype: counted as other)
    ]
    before = dict(victim.stats)
    for f in bad:
        port.receive(f)
    assert victim.stats["rx_bad"] - before["rx_bad"] == 4
    assert victim.stats["rx_other"] - before["rx_other"] == 1
    # a looping packet: hop limit 1 is not forwarded
    port.receive(good[:48] + b"\x00\x01" + good[50:])
    assert victim.stats["hop_limit_drops"] - before["hop_limit_drops"] == 1
    net.rt.run(until=net.rt.now() + 3)
    assert net.ring_errors() == 0


def test_setup_req_flood_keeps_tables_bounded():
    cfg = Config(max_routes=64)
    g = sim.line(8)
    net = _converged(g, cfg=cfg)
    attacker = net.addrs[3]
    port = net.medium.ports[4]
    rng = random.Random(9)
    for k in range(1500):
        src = rng.randrange(1, W.ADDR_SPACE)
        body = W.path_body(attacker, 0, [rng.randrange(1, W.ADDR_SPACE) for _ in range(4)])
        port.receive(W.build(net.nodes[4].me6, W.addr_to_mac(attacker), W.SETUP_REQ, 0, 64, 0, k,
                             rng.randrange(1, W.ADDR_SPACE), src, attacker, body))
        if k % 100 == 0:
            net.rt.run(until=net.rt.now() + 0.05)
    net.rt.run(until=net.rt.now() + 5)
    for node in net.nodes:
        assert len(node.routes) <= 64
        assert len(node.vset) <= 4
        assert len(node.pset) <= cfg.max_pset
    # the flood was processed (answers were built), and the ring survived it
    assert net.nodes[4].stats["rx"] >= 1500
    assert net.run_until_converged(60) is not None


def test_same_engine_on_switch_ports():
    """Nodes on a vnet Switch (one L2 segment) form a ring like on the medium."""
    from vnet.link.switch import Switch
    from vnet.runtime.sim import SimRuntime
    rt = SimRuntime(seed=4)
    sw = Switch(rt, 16)
    addrs = sim.unique_addrs(6, random.Random(4))
    nodes = []
    for a in addrs:
        p = Port()
        sp = sw.add_port()
        from vnet.link.port import connect
        connect(p, sp)
        node = VrrNode(rt, a, [p])
        node.start()
        nodes.append(node)
    rt.run(until=30)
    ids = sorted(addrs)
    for node in nodes:
        k = ids.index(node.addr)
        assert node.vset == {ids[(k + d) % 6] for d in (-2, -1, 1, 2)}
