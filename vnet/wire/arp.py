"""ARP for IPv4 over Ethernet (RFC 826), including RFC 5227 probes and announcements."""

from __future__ import annotations

import struct
from typing import NamedTuple

from vnet.wire.errors import WireError

ARP = struct.Struct("!HHBBH6s4s6s4s")
LEN = 28
REQUEST = 1
REPLY = 2
_PREFIX = b"\x00\x01\x08\x00\x06\x04"


class ArpPacket(NamedTuple):
    op: int
    sha: bytes
    spa: bytes
    tha: bytes
    tpa: bytes


def parse(buf: bytes | memoryview) -> ArpPacket:
    if len(buf) < LEN:
        raise WireError(f"ARP packet of {len(buf)} bytes is shorter than 28")
    if bytes(buf[:6]) != _PREFIX:
        raise WireError("ARP packet is not Ethernet/IPv4")
    _, _, _, _, op, sha, spa, tha, tpa = ARP.unpack_from(buf)
    if op not in (REQUEST, REPLY):
        raise WireError(f"ARP opcode {op} is neither request nor reply")
    return ArpPacket(op, sha, spa, tha, tpa)


def build(op: int, sha: bytes, spa: bytes, tha: bytes, tpa: bytes) -> bytes:
    return ARP.pack(1, 0x0800, 6, 4, op, sha, spa, tha, tpa)
