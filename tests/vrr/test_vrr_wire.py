"""VRR wire format: round trips, field offsets, and every kind of bad input -> WireError."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.wire import vrr as W
from vnet.wire.errors import WireError

A, B, C = 0x020000000001, 0x02AABBCCDDEE, 0x0600FFFFFFFF


def test_header_layout_is_fixed_and_network_order():
    f = W.build(b"\x02" * 6, b"\x04" * 6, W.DATA, W.F_ENC, 7, 0x0800, 0x01020304, B, A, C, b"xy")
    assert len(f) == 14 + 36 + 2
    assert f[12:14] == b"\x88\x6f"
    assert f[14:18] == b"VRR0"
    assert f[18] == W.VERSION and f[19] == W.DATA and f[20] == W.F_ENC and f[21] == 0
    assert struct.unpack("!HH", f[22:26]) == (38, 0x0800)
    assert f[26:30] == b"\x01\x02\x03\x04"
    assert f[30:36] == bytes.fromhex("02aabbccddee")  # dst
    assert f[36:42] == bytes.fromhex("020000000001")  # origin
    assert f[42:48] == bytes.fromhex("0600ffffffff")  # hop source
    assert f[48:50] == b"\x00\x07"  # hop limit, 16 bits
    assert W.parse(f) == (W.DATA, W.F_ENC, 7, 38, 0x0800, 0x01020304, B, A, C)


def test_hello_round_trip_and_lookup():
    entries = [(B, W.NS_LINKED, 255), (C, W.NS_PENDING, 128)]
    body = W.hello_body(42, A, 9, entries)
    f = W.build(W.BROADCAST, b"\x02" * 6, W.HELLO, W.F_ACTIVE | W.F_REP, 1, 0, 1, 0, A, A, body)
    typ, flags, hl, length, *_ = W.parse(f)
    assert W.parse_hello(f, length) == (42, A, 9, 2)
    assert W.hello_entries(f, 2) == entries
    assert W.hello_state_of(f, 2, B.to_bytes(6, "big")) == W.NS_LINKED
    assert W.hello_state_of(f, 2, C.to_bytes(6, "big")) == W.NS_PENDING
    assert W.hello_state_of(f, 2, A.to_bytes(6, "big")) == 0
    assert W.describe(f)["neighbours"][0][0] == "02:aa:bb:cc:dd:ee"


def test_path_and_dht_round_trip():
    body = W.path_body(C, 77, [A, B])
    f = W.build(b"\x02" * 6, b"\x02" * 6, W.SETUP, 0, 64, 0, 1, A, B, C, body)
    assert W.parse_path(f, W.parse(f)[3]) == (C, 77, [A, B])
    f = W.build(b"\x02" * 6, b"\x02" * 6, W.TEARDOWN, 0, 64, 0, 1, 0, B, C, W.path_body(A, 5, None))
    assert W.parse_path(f, W.parse(f)[3]) == (A, 5, None)
    d = W.dht_body(W.DHT_PUT, 0, 99, B, b"value")
    assert W.parse_dht(d) == (W.DHT_PUT, 0, 99, B, b"value")


def test_addresses():
    assert W.addr_from_str("02:aa:bb:cc:dd:ee") == B
    assert W.addr_to_str(B) == "02:aa:bb:cc:dd:ee"
    with pytest.raises(WireError):
        W.addr_from_str("02:aa:bb")


def _good() -> bytearray:
    return bytearray(W.build(b"\x02" * 6, b"\x02" * 6, W.SETUP_REQ, 0, 64, 0, 1, A, B, C,
                             W.path_body(C, 0, [A])))


@pytest.mark.parametrize("mutate, why", [
    (lambda f: f[:40], "truncated header"),
    (lambda f: f[:-3], "truncated body"),
    (lambda f: f[:14] + b"XXXX" + f[18:], "demux"),
    (lambda f: f[:18] + b"\x09" + f[19:], "version"),
    (lambda f: f[:19] + b"\x63" + f[20:], "type"),
    (lambda f: f[:22] + struct.pack("!H", 60000) + f[24:], "oversized length"),
    (lambda f: f[:22] + struct.pack("!H", 10) + f[24:], "undersized length"),
])
def test_bad_headers(mutate, why):
    with pytest.raises(WireError):
        W.parse(bytes(mutate(_good())))


def test_bad_bodies():
    f = _good()
    length = W.parse(bytes(f))[3]
    f2 = bytes(f[:14 + 36]) + W.path_body(C, 0, [A, B])[:-8]  # count says 2, one entry present
    with pytest.raises(WireError):
        W.parse_path(f2, length)
    with pytest.raises(WireError):
        W.parse_dht(b"\x01\x00\x00\x09" + b"\x00" * 12)
    with pytest.raises(WireError):
        W.parse_dht(b"\x09" + b"\x00" * 15)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_garbage_raises_only_wire_error(data):
    frame = b"\x02" * 12 + b"\x88\x6f" + b"VRR0\x01" + data
    try:
        typ, flags, hl, length, *_ = W.parse(frame)
        if typ == W.HELLO:
            W.parse_hello(frame, length)
        elif typ in (W.SETUP_REQ, W.SETUP, W.SETUP_FAIL, W.TEARDOWN):
            W.parse_path(frame, length)
        elif typ == W.DHT:
            W.parse_dht(frame[W.OFF:14 + length])
    except WireError:
        pass
