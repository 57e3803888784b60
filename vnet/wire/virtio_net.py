"""The virtio-net header that TAP devices put before frames with IFF_VNET_HDR.

    u8 flags | u8 gso_type | le16 hdr_len | le16 gso_size | le16 csum_start |
    le16 csum_offset | le16 num_buffers          (12 bytes with TUNSETVNETHDRSZ 12)

A frame from the kernel may be a *GSO* frame (up to 64 KB of TCP payload to be
cut into `gso_size` segments) and/or carry a *partial checksum* (NEEDS_CSUM: the
field at csum_start + csum_offset holds only the pseudo-header sum). Passed on
unchanged to another TAP that accepts offloads, the receiving kernel takes it as
it is. Anywhere else it must first be finished in software: `finish_checksum`
and `segment` do that, producing exactly the frames the sending kernel would
have produced without offloads.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from vnet.wire.checksum import checksum, ones_sum
from vnet.wire.errors import WireError

HDR = struct.Struct("<BBHHHHH")
HDR_LEN = HDR.size  # 12
F_NEEDS_CSUM = 1
F_DATA_VALID = 2
GSO_NONE = 0
GSO_TCPV4 = 1
GSO_UDP = 3
GSO_TCPV6 = 4
GSO_ECN = 0x80
PLAIN = bytes(HDR_LEN)  # "nothing to do": no GSO, checksum complete
DATA_VALID = HDR.pack(F_DATA_VALID, 0, 0, 0, 0, 0, 0)

_TCP_FIN, _TCP_PSH, _TCP_CWR = 0x01, 0x08, 0x80
_U16 = struct.Struct("!H")


def finish_checksum(frame: bytes | bytearray, csum_start: int, csum_offset: int) -> bytearray:
    """Complete a partial checksum: the field holds the pseudo-header sum; fold in the rest."""
    field = csum_start + csum_offset
    if csum_start < 14 or field + 2 > len(frame):
        raise WireError(f"checksum offsets {csum_start}+{csum_offset} outside a "
                        f"{len(frame)}-byte frame")
    out = bytearray(frame)
    c = checksum(memoryview(out)[csum_start:])
    if c == 0 and csum_offset == 6:  # UDP: a computed 0 is sent as all ones
        c = 0xFFFF
    _U16.pack_into(out, field, c)
    return out


def segment(frame: bytes, gso_type: int, gso_size: int, csum_start: int,
            emit: Callable[[bytes], None]) -> int:
    """Cut a TCP GSO frame into `gso_size` segments with correct headers; returns the count.

    IPv4: total length, a consecutive IP ID per segment, header checksum. IPv6:
    payload length. TCP: sequence numbers, FIN/PSH only on the last segment, CWR
    only on the first, full checksum.
    """
    kind = gso_type & ~GSO_ECN
    if kind not in (GSO_TCPV4, GSO_TCPV6):
        raise WireError(f"GSO type {gso_type} is not TCP: cannot segment it")
    if gso_size <= 0:
        raise WireError("GSO frame with gso_size 0")
    l3 = 18 if frame[12:14] == b"\x81\x00" else 14
    l4 = csum_start
    v4 = kind == GSO_TCPV4
    if len(frame) < l4 + 20 or l4 < l3 + (20 if v4 else 40):
        raise WireError(f"GSO frame of {len(frame)} bytes too short for its headers")
    thl = (frame[l4 + 12] >> 4) * 4
    if thl < 20 or len(frame) < l4 + thl:
        raise WireError("GSO frame with a bad TCP header length")
    payload = memoryview(frame)[l4 + thl:]
    plen = len(payload)
    if (l4 - l3) + thl + min(gso_size, plen) > 0xFFFF:
        raise WireError(f"GSO segments of {gso_size} bytes do not fit an IP packet")
    head = bytearray(frame[: l4 + thl])
    seq = int.from_bytes(frame[l4 + 4:l4 + 8], "big")
    flags = frame[l4 + 13]
    if v4:
        src, dst = bytes(frame[l3 + 12:l3 + 16]), bytes(frame[l3 + 16:l3 + 20])
        ip_id = int.from_bytes(frame[l3 + 4:l3 + 6], "big")
        pseudo_base = ones_sum(src + dst + b"\x00\x06")
    else:
        pseudo_base = ones_sum(bytes(frame[l3 + 8:l3 + 40]) + b"\x00\x00\x00\x06")
    n = 0
    off = 0
    while True:
        chunk = payload[off:off + gso_size]
        last = off + gso_size >= plen
        seglen = thl + len(chunk)
        if v4:
            _U16.pack_into(head, l3 + 2, (l4 - l3) + seglen)
            _U16.pack_into(head, l3 + 4, (ip_id + n) & 0xFFFF)
            head[l3 + 10:l3 + 12] = b"\0\0"
            _U16.pack_into(head, l3 + 10, checksum(memoryview(head)[l3:l4]))
        else:
            _U16.pack_into(head, l3 + 4, (l4 - l3 - 40) + seglen)
        head[l4 + 4:l4 + 8] = ((seq + off) & 0xFFFFFFFF).to_bytes(4, "big")
        f = flags
        if not last:
            f &= ~(_TCP_FIN | _TCP_PSH)
        if n:
            f &= ~_TCP_CWR
        head[l4 + 13] = f
        head[l4 + 16:l4 + 18] = b"\0\0"
        c = checksum(bytes(head[l4:]) + chunk, pseudo_base + seglen)
        _U16.pack_into(head, l4 + 16, c)
        emit(bytes(head) + chunk)
        n += 1
        off += gso_size
        if last:
            return n
