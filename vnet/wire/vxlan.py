"""VXLAN header (RFC 7348 section 5): 8 bytes before the inner Ethernet frame.

    flags(8) = 0x08 (I: VNI valid) | reserved(24) | VNI(24) | reserved(8)

We send every reserved bit as 0 (the Linux vxlan device drops packets that set
them, deliberately diverging from the RFC); on receipt we require the I flag
and, as the RFC says, ignore reserved bits.
"""

from __future__ import annotations

import struct

from vnet.wire.errors import WireError

PORT = 4789  # IANA
HEADER_LEN = 8
FLAG_I = 0x08
OVERHEAD_V4 = 14 + 20 + 8 + HEADER_LEN  # outer Ethernet + IPv4 + UDP + VXLAN = 50
OVERHEAD_V6 = 14 + 40 + 8 + HEADER_LEN
SRC_PORT_MIN = 49152
SRC_PORT_RANGE = 65536 - SRC_PORT_MIN

_HDR = struct.Struct("!B3xI")


def build(vni: int) -> bytes:
    """The 8-byte header for `vni` (0..2**24-1)."""
    if not 0 <= vni < 1 << 24:
        raise WireError(f"VNI {vni} out of range 0..16777215")
    return _HDR.pack(FLAG_I, vni << 8)


def parse(data: bytes | bytearray | memoryview) -> int:
    """The VNI of a VXLAN packet (header + inner frame); WireError if it is not one."""
    if len(data) < HEADER_LEN:
        raise WireError(f"VXLAN packet of {len(data)} bytes is shorter than its 8-byte header")
    flags, word = _HDR.unpack_from(data)
    if not flags & FLAG_I:
        raise WireError(f"VXLAN flags 0x{flags:02x} lack the I (VNI valid) bit")
    return word >> 8
