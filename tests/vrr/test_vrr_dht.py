"""The DHT on the ring: put/get from any node, replication, hand-over when the ring changes."""

from __future__ import annotations

import random

from vnet.vrr import sim
from vnet.vrr.dht import Dht, key_of
from vnet.vrr.node import closer


def _owner(addrs, key):
    best = addrs[0]
    for a in addrs[1:]:
        if closer(a, best, key):
            best = a
    return best


def _get_all(net, dhts, keys, rng):
    got = {}
    for k in keys:
        i = rng.choice(sorted(net.alive))
        dhts[i].get(k, lambda v, k=k: got.__setitem__(k, v))
    net.rt.run(until=net.rt.now() + 3)
    return got


def test_put_get_replicate_and_survive_owner_failure():
    rng = random.Random(11)
    g, _ = sim.make_graph("disk", 50, 8, rng)
    net = sim.build(g, seed=11)
    assert net.run_until_converged(120) is not None
    dhts = [Dht(n) for n in net.nodes]
    keys = {key_of(f"name{i}"): f"value{i}".encode() for i in range(40)}
    for k, v in keys.items():
        assert dhts[rng.randrange(50)].put(k, v)
    net.rt.run(until=net.rt.now() + 2)
    by_addr = {n.addr: d for n, d in zip(net.nodes, dhts, strict=True)}
    for k, v in keys.items():
        owner = by_addr[_owner(net.addrs, k)]
        assert owner.store[k] == (v, True)  # the primary copy is at the closest node
        replicas = sum(1 for d in dhts if d.store.get(k) == (v, False))
        assert replicas == 4  # one on each vset member of the owner
    assert _get_all(net, dhts, keys, rng) == keys
    # fail the owners of a few keys: their replicas take over
    killed = 0
    for k in keys:
        v = net.addrs.index(_owner(net.addrs, k))
        if v not in net.alive:
            continue
        rest = net.alive - {v}
        if len(sim.components(net.g, rest)) == 1:  # keep the network in one piece
            net.kill(v)
            killed += 1
            if killed == 3:
                break
    assert killed == 3
    assert net.run_until_converged(120) is not None
    assert _get_all(net, dhts, keys, rng) == keys


def test_new_owner_gets_keys_handed_over():
    g = sim.grid(25)
    net = sim.build(g, seed=4, start=False)
    late = 12
    net.medium.alive.discard(late)
    for i, n in enumerate(net.nodes):
        if i != late:
            n.start()
    assert net.run_until_converged(120) is not None
    dhts = {i: Dht(n) for i, n in enumerate(net.nodes) if i != late}
    # keys just beside the late node's id: it will own them once it joins
    mine = {net.addrs[late] + d: f"v{d}".encode() for d in (1, 2, 3, -1, -2)}
    for k, v in mine.items():
        dhts[0].put(k, v)
    net.rt.run(until=net.rt.now() + 2)
    net.revive(late)
    dhts[late] = Dht(net.nodes[late])
    assert net.run_until_converged(120) is not None
    assert {k: dhts[late].store.get(k, (None, None))[0] for k in mine} == mine
    assert all(dhts[late].store[k][1] for k in mine)  # primary copies
    got = {}
    for k in mine:
        dhts[3].get(k, lambda v, k=k: got.__setitem__(k, v))
    net.rt.run(until=net.rt.now() + 3)
    assert got == mine
    missing = []
    dhts[5].get(key_of("never stored"), missing.append)
    net.rt.run(until=net.rt.now() + 3)
    assert missing == [None]
