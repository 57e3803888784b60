"""VDE request_v3 / sockaddr_un: exact layout (bytes captured from Debian's libvdeplug 4.0.1)."""

from __future__ import annotations

import struct
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vnet.wire.errors import WireError
from vnet.wire.vde import (
    REPLY_SIZE,
    REQUEST_MAX,
    REQUEST_MIN,
    Request,
    build_request,
    build_sockaddr,
    parse_request,
    parse_sockaddr,
)

LE = sys.byteorder == "little"


def captured_request() -> bytes:
    """The 149-byte request vde_plug sent (strace), rebuilt field by field in host order."""
    path = b"/tmp/vdetest/sw1/.07915-00000"
    descr = b"vdeplug: user=root pid=7915"
    return (struct.pack("=IIi", 0xFEEDFACE, 3, 0) + struct.pack("=H", 1)
            + path.ljust(108, b"\0") + descr)


def test_sizes_match_the_c_structs():
    assert REQUEST_MIN == 122 and REQUEST_MAX == 250 and REPLY_SIZE == 110


@pytest.mark.skipif(not LE, reason="the capture was taken on a little-endian host")
def test_captured_bytes_parse_and_rebuild_identically():
    raw = captured_request()
    assert len(raw) == 149 and raw[:4] == bytes.fromhex("cefaedfe")
    req = parse_request(raw)
    assert req == Request("/tmp/vdetest/sw1/.07915-00000", 0, False, "vdeplug: user=root pid=7915")
    assert build_request(req) == raw


def test_port_number_and_port0_are_in_the_type_field():
    raw = build_request(Request("/x/.1-2", port=7))
    assert struct.unpack_from("=i", raw, 8)[0] == 7 << 8
    assert parse_request(raw).port == 7
    raw0 = build_request(Request("/x/.1-2", port0=True))
    assert struct.unpack_from("=i", raw0, 8)[0] == 1
    assert parse_request(raw0).port0


def test_reply_is_a_110_byte_sockaddr_un():
    raw = build_sockaddr("/tmp/vdetest/sw1/001.6")
    assert len(raw) == 110 and raw[:2] == struct.pack("=H", 1)
    assert raw[2:24] == b"/tmp/vdetest/sw1/001.6" and raw[24:] == bytes(86)
    assert parse_sockaddr(raw) == "/tmp/vdetest/sw1/001.6"


def test_description_is_cut_to_127_bytes_and_total_at_most_250():
    raw = build_request(Request("/p", description="d" * 500))
    assert len(raw) == REQUEST_MAX - 1


@pytest.mark.parametrize("data,what", [
    (b"", "short"),
    (b"\xce\xfa", "short"),
    (b"GET / HTTP/1.0\r\n\r\n" + bytes(120), "magic"),
    (struct.pack("=II", 0xFEEDFACE, 2) + bytes(200), "version 2"),
    (struct.pack("=II", 0xFEEDFACE, 4) + bytes(200), "version 4"),
    (struct.pack("=IIi", 0xFEEDFACE, 3, 0) + bytes(50), "short"),
    (struct.pack("=IIi", 0xFEEDFACE, 3, 0) + struct.pack("=H", 1) + bytes(108), "empty path"),
    (struct.pack("=IIi", 0xFEEDFACE, 3, 0) + struct.pack("=H", 2) + b"/p".ljust(108, b"\0"),
     "AF_UNIX"),
    (struct.pack("=IIi", 0xFEEDFACE, 3, 5) + struct.pack("=H", 1) + b"/p".ljust(108, b"\0"),
     "type"),
    (build_request(Request("/p")) + bytes(300), "too long"),
])
def test_bad_requests_raise_wire_error_saying_why(data, what):
    with pytest.raises(WireError, match=what):
        parse_request(data)


def test_bad_paths_are_refused_when_building():
    for bad in ("", "x" * 108, "a\0b"):
        with pytest.raises(WireError):
            build_sockaddr(bad)


@given(st.binary(max_size=300))
def test_fuzz_only_wire_error(data):
    try:
        parse_request(data)
    except WireError:
        pass


@given(st.text(alphabet=st.characters(blacklist_characters="\0", codec="utf-8"),
               min_size=1, max_size=26),
       st.integers(0, 0xFFFF), st.booleans(),
       st.text(alphabet=st.characters(blacklist_characters="\0", codec="utf-8"), max_size=31))
def test_roundtrip(path, port, port0, descr):
    req = Request("/" + path, port, port0, descr)
    raw = build_request(req)
    assert len(raw) == REQUEST_MIN + len(descr.encode())
    assert parse_request(raw) == req
