"""ICMP for IPv4 (RFC 792, RFC 1191): echo, errors and their quoted packets."""

from __future__ import annotations

import struct

from vnet.wire.checksum import checksum, verify
from vnet.wire.errors import WireError

HDR = struct.Struct("!BBHHH")
ECHO_REPLY = 0
DEST_UNREACH = 3
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAM_PROBLEM = 12

# Destination-unreachable codes
NET_UNREACH = 0
HOST_UNREACH = 1
PROTO_UNREACH = 2
PORT_UNREACH = 3
FRAG_NEEDED = 4

ERRORS = frozenset((DEST_UNREACH, REDIRECT, TIME_EXCEEDED, PARAM_PROBLEM))


def parse(buf: bytes | memoryview) -> tuple[int, int, int, int]:
    """Validate length and checksum; return (type, code, word1, word2) of the 8-byte header."""
    if len(buf) < 8:
        raise WireError(f"ICMP message of {len(buf)} bytes is shorter than 8")
    if not verify(buf):
        raise WireError("ICMP checksum is wrong")
    t, c, _, a, b = HDR.unpack_from(buf)
    return t, c, a, b


def build(icmp_type: int, code: int, a: int, b: int, body: bytes | memoryview = b"") -> bytes:
    msg = bytearray(HDR.pack(icmp_type, code, 0, a, b))
    msg += body
    struct.pack_into("!H", msg, 2, checksum(msg))
    return bytes(msg)


def echo(request: bool, ident: int, seq: int, data: bytes | memoryview = b"") -> bytes:
    return build(ECHO_REQUEST if request else ECHO_REPLY, 0, ident, seq, data)


def error(icmp_type: int, code: int, quoted: bytes | memoryview, mtu: int = 0,
          pointer: int = 0, gateway: bytes = b"") -> bytes:
    """An error quoting the offending packet (its header plus 8 bytes at least, RFC 792;
    we quote up to 548 bytes so the whole error stays within 576, RFC 1812 4.3.2.3)."""
    if icmp_type == DEST_UNREACH and code == FRAG_NEEDED:
        a, b = 0, mtu & 0xFFFF
    elif icmp_type == PARAM_PROBLEM:
        a, b = pointer << 8, 0
    elif icmp_type == REDIRECT:
        a, b = struct.unpack("!HH", gateway)
    else:
        a = b = 0
    return build(icmp_type, code, a, b, quoted[:548])
