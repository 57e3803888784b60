"""The Internet checksum (RFC 1071) and the IPv4/IPv6 pseudo-headers.

The one's-complement sum of 16-bit words equals the big-endian integer value of
the data modulo 0xFFFF (because 2**16 = 1 mod 0xFFFF), so one `int.from_bytes`
and one modulo do the whole sum in C, with no Python loop per word.
"""

from __future__ import annotations

import struct

_PSEUDO6_TAIL = struct.Struct("!I3xB")
_PSEUDO4_TAIL = struct.Struct("!xBH")


def ones_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """One's-complement 16-bit sum of `data` (odd length padded with a zero byte), plus `initial`.

    Returns a value in 0..0xFFFF where 0xFFFF stands for "negative zero" (nonzero data).
    """
    n = len(data)
    v = int.from_bytes(data, "big")
    if n & 1:
        v <<= 8
    v += initial
    if v == 0:
        return 0
    r = v % 0xFFFF
    return r if r else 0xFFFF


def checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The value to put in a checksum field: ~sum, computed with the field zeroed."""
    return ~ones_sum(data, initial) & 0xFFFF


def verify(data: bytes | bytearray | memoryview, initial: int = 0) -> bool:
    """True when the data (checksum field included) sums to 0xFFFF."""
    return ones_sum(data, initial) == 0xFFFF


def pseudo4(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial sum of the IPv4 pseudo-header (4-byte addresses)."""
    return ones_sum(src + dst + _PSEUDO4_TAIL.pack(proto, length))


def pseudo6(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """Partial sum of the IPv6 pseudo-header (16-byte addresses, RFC 8200 section 8.1)."""
    return ones_sum(src + dst + _PSEUDO6_TAIL.pack(length, proto))
