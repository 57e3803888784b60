"""Reassembly properties, checked with hypothesis: any order of a clean cut reassembles to
the original; overlaps never produce a datagram; limits always hold."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.runtime.sim import SimRuntime
from vnet.stack.fragment import Reassembler


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 40), st.randoms(use_true_random=False))
def test_any_order_reassembles(data, step8, rnd):
    step = step8 * 8
    pieces = [(o, data[o:o + step], o + step < len(data)) for o in range(0, len(data), step)]
    rnd.shuffle(pieces)
    r = Reassembler(SimRuntime())
    out = None
    for i, (o, chunk, more) in enumerate(pieces):
        res = r.add("k", o, more, chunk, first="hdr" if o == 0 else None)
        if i < len(pieces) - 1:
            assert res is None
        else:
            out = res
    assert out is not None and out[0] == data and out[1] == "hdr"
    assert len(r) == 0 and r.bytes == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), st.integers(0, 400), st.integers(1, 60),
                          st.booleans()), max_size=60))
def test_random_fragments_stay_bounded_and_never_overlap(frags):
    rt = SimRuntime()
    r = Reassembler(rt, max_datagrams=4, max_bytes=2000)
    for key, off8, n8, more in frags:
        off, n = off8 * 8, n8 * 8
        res = r.add(key, off, more, bytes([key]) * n)
        assert len(r) <= 4 and 0 <= r.bytes <= 2000
        if res is not None:
            # only pieces of this key: nothing of another datagram leaks in
            assert set(res[0]) <= {key} and len(res[0]) % 8 == 0
    rt.run(until=100)
    assert len(r) == 0 and r.bytes == 0


def test_overlap_discards_whole_datagram():
    r = Reassembler(SimRuntime())
    assert r.add(1, 0, True, bytes(16)) is None
    assert r.add(1, 8, False, bytes(16)) is None  # overlaps 8..16
    assert r.overlaps == 1 and len(r) == 0
    assert r.add(1, 16, False, bytes(8)) is None  # the rest of the old datagram is gone
    assert len(r) == 1
