"""IPv4 header (RFC 791): parse with validation, build with checksum, fragment fields."""

from __future__ import annotations

import struct
from typing import NamedTuple

from vnet.wire.checksum import checksum, ones_sum
from vnet.wire.errors import WireError

HDR = struct.Struct("!BBHHHBBH4s4s")
HLEN = 20
FLAG_DF = 0x4000
FLAG_MF = 0x2000
OFFSET_MASK = 0x1FFF

PROTO_ICMP = 1
PROTO_TCP = 6
PROTO_UDP = 17
PROTO_IPV6 = 41


class IPv4Header(NamedTuple):
    ihl: int  # header length in bytes
    tos: int
    total_len: int
    ident: int
    frag: int  # flags and offset as on the wire
    ttl: int
    proto: int
    src: bytes
    dst: bytes

    @property
    def more_fragments(self) -> bool:
        return bool(self.frag & FLAG_MF)

    @property
    def dont_fragment(self) -> bool:
        return bool(self.frag & FLAG_DF)

    @property
    def offset(self) -> int:
        """Fragment offset in bytes."""
        return (self.frag & OFFSET_MASK) << 3


def parse(buf: bytes | memoryview, verify_checksum: bool = True) -> IPv4Header:
    """Validate and parse the header at the start of `buf` (RFC 791 / RFC 1122 3.2.1)."""
    n = len(buf)
    if n < HLEN:
        raise WireError(f"IPv4 packet of {n} bytes is shorter than its 20-byte header")
    vihl, tos, total, ident, frag, ttl, proto, _, src, dst = HDR.unpack_from(buf)
    if vihl >> 4 != 4:
        raise WireError(f"IP version {vihl >> 4} in an IPv4 packet")
    ihl = (vihl & 15) << 2
    if ihl < HLEN:
        raise WireError(f"IPv4 header length {ihl} is below 20")
    if total < ihl or total > n:
        raise WireError(f"IPv4 total length {total} does not fit header {ihl} and buffer {n}")
    if verify_checksum and ones_sum(buf[:ihl]) != 0xFFFF:
        raise WireError("IPv4 header checksum is wrong")
    return IPv4Header(ihl, tos, total, ident, frag, ttl, proto, bytes(src), bytes(dst))


def build(src: bytes, dst: bytes, proto: int, payload_len: int, ttl: int = 64, ident: int = 0,
          frag: int = 0, tos: int = 0, options: bytes = b"") -> bytes:
    """The header (with checksum) for a payload of `payload_len` bytes."""
    if not options:
        # Fast path: sum the header once as an integer (RFC 1071 by modulo, see checksum.py)
        # and pack it again with the checksum in place.
        hdr = HDR.pack(0x45, tos, HLEN + payload_len, ident, frag, ttl, proto, 0, src, dst)
        r = int.from_bytes(hdr, "big") % 0xFFFF
        return HDR.pack(0x45, tos, HLEN + payload_len, ident, frag, ttl, proto,
                        ~(r or 0xFFFF) & 0xFFFF, src, dst)
    if len(options) % 4:
        raise WireError("IPv4 options must be padded to a multiple of 4 bytes")
    ihl = HLEN + len(options)
    hdr = bytearray(HDR.pack(0x40 | (ihl >> 2), tos, ihl + payload_len, ident, frag, ttl, proto,
                             0, src, dst))
    hdr += options
    struct.pack_into("!H", hdr, 10, checksum(hdr))
    return bytes(hdr)


def decrement_ttl(packet: bytearray) -> None:
    """TTL minus one with an incremental checksum update (RFC 1624)."""
    packet[8] -= 1
    old = (packet[10] << 8) | packet[11]
    # HC' = ~(~HC + ~m + m'): the TTL/protocol word dropped by 0x0100.
    s = (~old & 0xFFFF) + 0xFEFF
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    struct.pack_into("!H", packet, 10, ~s & 0xFFFF)


def options_for_fragment(options: bytes | memoryview) -> bytes:
    """The options copied into non-first fragments (those with the copy bit, RFC 791)."""
    out = bytearray()
    i, n = 0, len(options)
    while i < n:
        t = options[i]
        if t == 0:
            break
        if t == 1:
            i += 1
            continue
        if i + 1 >= n or options[i + 1] < 2 or i + options[i + 1] > n:
            raise WireError("malformed IPv4 option")
        ln = options[i + 1]
        if t & 0x80:
            out += options[i:i + ln]
        i += ln
    out += b"\x00" * (-len(out) % 4)
    return bytes(out)
