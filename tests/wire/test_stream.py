"""The 2-byte big-endian stream framing: any chunking gives the same frames, bounded buffering."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.wire.errors import WireError
from vnet.wire.stream import MAX_FRAME, StreamDecoder, encode, header


def decode_chunks(chunks, **kw):
    got: list[bytes] = []
    d = StreamDecoder(got.append, **kw)
    for c in chunks:
        d.feed(c)
    return got, d


def test_encode_is_big_endian_length_prefix():
    assert encode(b"\x01\x02\x03") == b"\x00\x03\x01\x02\x03"
    assert encode(bytes(300))[:2] == b"\x01\x2c"
    assert header(0xFFFF) == b"\xff\xff"
    with pytest.raises(WireError):
        header(0x10000)


def test_split_inside_header_loses_nothing():
    # vde_plug loses frames when a read ends after the first length byte; we must not.
    recs = [encode(bytes([i]) * (60 + i)) for i in range(3, 7)]
    stream = recs[0] + recs[1][:1]
    rest = recs[1][1:] + recs[2] + recs[3]
    got, d = decode_chunks([stream, rest])
    assert got == [bytes([i]) * (60 + i) for i in range(3, 7)]
    assert d.pending == 0


def test_byte_at_a_time():
    frames = [bytes(range(14)) * k for k in (1, 5, 100)]
    data = b"".join(encode(f) for f in frames)
    got, _ = decode_chunks([data[i:i + 1] for i in range(len(data))])
    assert got == frames


def test_empty_records_skipped_and_counted():
    got, d = decode_chunks([b"\x00\x00" + encode(b"abc") + b"\x00\x00"])
    assert got == [b"abc"] and d.empty == 2


def test_too_long_counted_and_rest_of_read_discarded():
    bad = (MAX_FRAME + 1).to_bytes(2, "big") + b"x" * 20
    got, d = decode_chunks([encode(b"ok1") + bad + encode(b"lost"), encode(b"ok2")])
    assert got == [b"ok1", b"ok2"]
    assert d.too_long == 1 and d.discarded == len(bad) + 6


def test_jumbo_up_to_limit_and_configurable_limit():
    big = bytes(MAX_FRAME)
    got, _ = decode_chunks([encode(big)])
    assert got == [big]
    got, d = decode_chunks([encode(bytes(1600))], max_frame=1518)
    assert got == [] and d.too_long == 1


def test_memoryview_and_bytearray_input():
    data = encode(b"hello") + encode(b"world")
    got, _ = decode_chunks([memoryview(data)[:4], bytearray(data[4:])])
    assert got == [b"hello", b"world"]


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(st.binary(min_size=1, max_size=2000), max_size=20),
       cuts=st.lists(st.integers(min_value=0, max_value=50000), max_size=30))
def test_any_chunking_gives_the_same_frames(frames, cuts):
    data = b"".join(encode(f) for f in frames)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in zip(points, points[1:], strict=False)]
    got, d = decode_chunks(chunks)
    assert got == frames
    assert d.pending == 0


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=20))
def test_garbage_never_raises_and_buffer_stays_bounded(chunks):
    got, d = decode_chunks([], max_frame=1518)
    for c in chunks:
        d.feed(c)
        assert d.pending < 1518 + 2
    assert all(0 < len(f) <= 1518 for f in got)
