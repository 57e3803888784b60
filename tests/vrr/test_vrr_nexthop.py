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


def _responder_with_neighbour(me: int, nbr: int):
    from vnet.link.port import Port
    from vnet.vrr.node import LINKED, Nbr
    from vnet.wire import vrr as W

    port = Port("y")
    sent: list[bytes] = []
    port.attach(sent.append)
    node = VrrNode(SimRuntime(seed=1), me, [port])
    node.running = True
    nb = Nbr(nbr, 0, W.addr_to_mac(nbr))
    nb.state, nb.active = LINKED, True
    node.pset[nbr] = nb
    node._refresh_cand(nb)
    return node, sent


def test_referral_passes_the_request_to_a_closer_hint_in_the_requesters_name():
    from vnet.wire import vrr as W

    requester, hint, me = 1000, 1003, 1010  # the hint is closer to the requester than we are
    node, sent = _responder_with_neighbour(me, hint)
    left = node._refer(requester, 77, [990, 995], [hint])
    assert left == []  # referred, so not listed in the answer
    (frame,) = sent
    typ, _f, _hl, length, _nh, _seq, dst, origin, hop = W.parse(frame)
    assert (typ, dst, origin, hop) == (W.SETUP_REQ, hint, requester, me)
    assert W.parse_path(frame, length) == (77, 0, [990, 995])
    assert node.stats["referrals"] == 1
    # once per requester per backoff period; never a hint farther away than we are
    assert node._refer(requester, 77, [990, 995], [hint]) == [hint]
    far, sent2 = _responder_with_neighbour(1002, hint)
    assert far._refer(requester, 77, [990, 995], [hint]) == [hint] and not sent2
    # nor one the requester's vset already beats (1001 and 1002 are closer on that side)
    full, sent3 = _responder_with_neighbour(me, hint)
    assert full._refer(requester, 77, [990, 995, 1001, 1002], [hint]) == [hint] and not sent3


def test_setup_fail_that_would_bounce_straight_back_is_dropped():
    from vnet.wire import vrr as W

    # towards the proxy 1001 our best next hop is 1003, the neighbour the answer came from
    node, sent = _responder_with_neighbour(1010, 1003)
    node._rx_setup_fail(None, 0, 100, 0, 1020, 1000, 1001, [1020], 1003)
    assert sent == [] and node.stats["loops"] == 1 and node.stats["setup_fail_tx"] == 0
    # the same answer arriving from anyone else goes on to 1003
    node._rx_setup_fail(None, 0, 100, 0, 1020, 1000, 1001, [1020], None)
    (frame,) = sent
    typ, _f, _hl, _len, _nh, _seq, dst, origin, _hop = W.parse(frame)
    assert (typ, dst, origin) == (W.SETUP_FAIL, 1000, 1020) and frame[:6] == W.addr_to_mac(1003)
