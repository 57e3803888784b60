"""UDP header (RFC 768): parse with validation, build with checksum (RFC 768 / RFC 8200 8.1)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from vnet.wire.checksum import checksum, ones_sum
from vnet.wire.errors import WireError

HDR = struct.Struct("!HHHH")
HLEN = 8
PROTO = 17


class UdpHeader(NamedTuple):
    sport: int
    dport: int
    length: int  # header plus payload, from the header
    checksum: int


def parse(buf: bytes | memoryview, pseudo: int | None = None, v6: bool = False) -> UdpHeader:
    """Validate the datagram at the start of `buf` (which may have link padding after it).

    `pseudo` is the pseudo-header partial sum (see `vnet.wire.checksum.pseudo4/6`, built
    with the length from the header); when given, the checksum is verified. A zero
    checksum means "none" over IPv4 and is an error over IPv6 (RFC 8200 8.1).
    """
    n = len(buf)
    if n < HLEN:
        raise WireError(f"UDP datagram of {n} bytes is shorter than its 8-byte header")
    sport, dport, length, csum = HDR.unpack_from(buf)
    if length < HLEN or length > n:
        raise WireError(f"UDP length {length} does not fit the {n} bytes received")
    if pseudo is not None:
        if csum == 0:
            if v6:
                raise WireError("UDP over IPv6 with a zero checksum")
        elif ones_sum(buf[:length], pseudo) != 0xFFFF:
            raise WireError("UDP checksum is wrong")
    return UdpHeader(sport, dport, length, csum)


def build(sport: int, dport: int, payload: bytes | memoryview, pseudo: int) -> bytes:
    """The whole datagram. `pseudo` is the pseudo-header sum WITHOUT the length (added here)."""
    length = HLEN + len(payload)
    if length > 0xFFFF:
        raise WireError(f"UDP payload of {len(payload)} bytes is too long")
    hdr = HDR.pack(sport, dport, length, 0)
    c = checksum(hdr + payload, pseudo + length)
    # a computed zero is sent as all ones: zero means "no checksum" (RFC 768)
    return HDR.pack(sport, dport, length, c or 0xFFFF) + payload
