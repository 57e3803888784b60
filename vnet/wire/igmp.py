"""IGMP (RFC 2236 version 2, RFC 3376 version 3): queries in, membership reports out."""

from __future__ import annotations

import struct

from vnet.wire.checksum import checksum, verify
from vnet.wire.errors import WireError

QUERY = 0x11
V1_REPORT = 0x12
V2_REPORT = 0x16
V2_LEAVE = 0x17
V3_REPORT = 0x22

MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE = 3
CHANGE_TO_EXCLUDE = 4

ROUTER_ALERT = b"\x94\x04\x00\x00"  # IPv4 option, RFC 2113
ALL_V3_ROUTERS = bytes((224, 0, 0, 22))
ALL_ROUTERS = bytes((224, 0, 0, 2))
_REC = struct.Struct("!BBH4s")


def _finish(msg: bytearray) -> bytes:
    struct.pack_into("!H", msg, 2, checksum(msg))
    return bytes(msg)


def v3_report(records: list[tuple[int, bytes]]) -> bytes:
    msg = bytearray(struct.pack("!BBHHH", V3_REPORT, 0, 0, 0, len(records)))
    for rtype, group in records:
        msg += _REC.pack(rtype, 0, 0, group)
    return _finish(msg)


def v2_message(msg_type: int, group: bytes) -> bytes:
    return _finish(bytearray(struct.pack("!BBH4s", msg_type, 0, 0, group)))


def parse_query(buf: bytes | memoryview) -> tuple[int, float, bytes]:
    """(version, maximum response time in seconds, group or 0.0.0.0) of a membership query."""
    n = len(buf)
    if n < 8:
        raise WireError(f"IGMP message of {n} bytes is shorter than 8")
    if not verify(buf):
        raise WireError("IGMP checksum is wrong")
    if buf[0] != QUERY:
        raise WireError("not an IGMP query")
    code = buf[1]
    group = bytes(buf[4:8])
    if n == 8:
        return (2 if code else 1), (code / 10.0 if code else 10.0), group
    if n < 12:
        raise WireError("IGMPv3 query shorter than 12 bytes")
    if code >= 128:  # RFC 3376 4.1.1 floating point
        code = ((code & 0x0F) | 0x10) << (((code >> 4) & 7) + 3)
    return 3, code / 10.0, group
