"""NextHop candidate selection and answer hints (sans-IO, no network)."""

from __future__ import annotations

import random

from vnet.runtime.sim import SimRuntime
from vnet.vrr import sim
from vnet.vrr.node import HALF, M, VrrNode, closer


def _node(rng: random.Random, cands: list[int]) -> VrrNode:
    node = VrrNode(SimRuntime(seed=1), rng.randrange(M), [])
    for a in cands:
        node._cand_add(a)
    return node


def _reference(node: VrrNode, key: int, exclude: int | None) -> int:
    best = -1
    for a in node._cand:
        if a != exclude and (best < 0 or closer(a, best, key)):
            best = a
    return best


def test_closest_fast_path_matches_exhaustive_search():
    rng = random.Random(5)
    edges = [0, 1, M - 1, HALF, HALF + 1]
    for _ in range(3000):
        cands = [rng.randrange(M) if rng.random() < 0.8 else rng.choice(edges)
                 for _ in range(rng.randrange(0, 12))]
        node = _node(rng, cands)
        key = rng.randrange(M) if rng.random() < 0.6 else rng.choice(node._cand + edges)
        exclude = rng.choice([*node._cand, None, None])
        assert node.closest(key, exclude) == _reference(node, key, exclude)


def test_hints_are_the_nearest_unlisted_candidates_on_each_side():
    rng = random.Random(2)
    node = _node(rng, [100, 200, 300, 400, 500, 600, 700])
    # around 450: clockwise 500, 600; counter-clockwise 400, 300; 500 is listed already
    assert sorted(node._hints(450, [500], None)) == [300, 400, 600, 700]
    assert sorted(node._hints(450, [], [400])) == [200, 300, 500, 600]
    # never the requester itself, never the responder
    assert 450 not in node._hints(450, [], None)
    assert node.addr not in node._hints(450, [], None)


def test_ring_of_300_converges_and_delivers():
    rng = random.Random(11)
    g, _ = sim.make_graph("disk", 300, 8, rng)
    net = sim.build(g, seed=11)
    assert net.run_until_converged(120) is not None, f"{net.ring_errors()} nodes wrong"
    assert net.probe(100, rng)["ratio"] == 1.0
