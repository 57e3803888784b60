"""IPv6 header and extension headers (RFC 8200): parse, walk the chain, build.

`walk()` follows hop-by-hop, routing, fragment and destination-options headers
to the upper-layer header; option contents are checked for well-formedness here
and their meaning is left to the stack.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from vnet.wire.errors import WireError

HDR = struct.Struct("!IHBB16s16s")
HLEN = 40
FRAG = struct.Struct("!BxHI")
FRAG_LEN = 8

HOPOPTS = 0
TCP = 6
UDP = 17
ROUTING = 43
FRAGMENT = 44
ESP = 50
AH = 51
ICMPV6 = 58
NONE = 59
DSTOPTS = 60

OPT_PAD1 = 0
OPT_PADN = 1
OPT_ROUTER_ALERT = 5

MIN_MTU = 1280


class IPv6Header(NamedTuple):
    tclass: int
    flow: int
    payload_len: int
    next_header: int
    hop_limit: int
    src: bytes
    dst: bytes


class FragmentInfo(NamedTuple):
    offset: int  # bytes
    more: bool
    ident: int
    unfrag_end: int  # offset of the fragment header in the packet (end of the unfragmentable part)
    next_header: int  # the header that follows the fragment header


class ExtChain(NamedTuple):
    proto: int  # upper-layer protocol (or NONE)
    offset: int  # where the upper-layer header starts
    frag: FragmentInfo | None
    hbh: tuple[int, int] | None  # (start, end) of the hop-by-hop options area
    dstopts: list[tuple[int, int]]  # option areas of destination-options headers
    routing: tuple[int, int, int] | None  # (type, segments left, header offset)
    last_nh_offset: int  # where the Next Header byte pointing at `proto` lives


def parse(buf: bytes | memoryview) -> IPv6Header:
    n = len(buf)
    if n < HLEN:
        raise WireError(f"IPv6 packet of {n} bytes is shorter than its 40-byte header")
    vtf, plen, nh, hl, src, dst = HDR.unpack_from(buf)
    if vtf >> 28 != 6:
        raise WireError(f"IP version {vtf >> 28} in an IPv6 packet")
    if HLEN + plen > n:
        raise WireError(f"IPv6 payload length {plen} exceeds the {n - HLEN} bytes received")
    if plen == 0 and nh == HOPOPTS:
        raise WireError("IPv6 jumbograms are not supported")
    return IPv6Header((vtf >> 20) & 0xFF, vtf & 0xFFFFF, plen, nh, hl, bytes(src), bytes(dst))


def build(src: bytes, dst: bytes, next_header: int, payload_len: int, hop_limit: int = 64,
          tclass: int = 0, flow: int = 0) -> bytes:
    return HDR.pack((6 << 28) | (tclass << 20) | flow, payload_len, next_header, hop_limit, src, dst)


def check_options(buf: bytes | memoryview, start: int, end: int) -> None:
    """Check that a TLV options area is well formed (lengths stay inside the header)."""
    i = start
    while i < end:
        t = buf[i]
        if t == OPT_PAD1:
            i += 1
            continue
        if i + 1 >= end:
            raise WireError("IPv6 option runs past its header")
        i += 2 + buf[i + 1]
        if i > end:
            raise WireError("IPv6 option runs past its header")


def options(buf: bytes | memoryview, start: int, end: int) -> list[tuple[int, int, int]]:
    """(type, value offset, value length) for each option except padding; area must be checked."""
    out = []
    i = start
    while i < end:
        t = buf[i]
        if t == OPT_PAD1:
            i += 1
            continue
        ln = buf[i + 1]
        if t != OPT_PADN:
            out.append((t, i + 2, ln))
        i += 2 + ln
    return out


def walk(buf: bytes | memoryview, first: int, end: int, limit: int = 16) -> ExtChain:
    """Follow the extension-header chain that starts with header type `first` at offset 40."""
    nh = first
    off = HLEN
    nh_off = 6
    frag = None
    hbh = None
    routing = None
    dst: list[tuple[int, int]] = []
    for _ in range(limit):
        if nh in (HOPOPTS, DSTOPTS, ROUTING):
            if off + 8 > end:
                raise WireError("IPv6 extension header truncated")
            hlen = (buf[off + 1] + 1) << 3
            if off + hlen > end:
                raise WireError("IPv6 extension header runs past the packet")
            if nh == HOPOPTS:
                if off != HLEN:
                    raise WireError("hop-by-hop options header not first (RFC 8200 4.3)")
                check_options(buf, off + 2, off + hlen)
                hbh = (off + 2, off + hlen)
            elif nh == DSTOPTS:
                check_options(buf, off + 2, off + hlen)
                dst.append((off + 2, off + hlen))
            else:
                routing = (buf[off + 2], buf[off + 3], off)
            nh_off = off
            nh = buf[off]
            off += hlen
        elif nh == FRAGMENT:
            if off + FRAG_LEN > end:
                raise WireError("IPv6 fragment header truncated")
            nxt, offres, ident = FRAG.unpack_from(buf, off)
            frag = FragmentInfo(offres & 0xFFF8, bool(offres & 1), ident, off, nxt)
            # What follows a fragment header is only readable after reassembly.
            return ExtChain(FRAGMENT, off + FRAG_LEN, frag, hbh, dst, routing, nh_off)
        else:
            return ExtChain(nh, off, frag, hbh, dst, routing, nh_off)
    raise WireError("IPv6 extension-header chain too long")


def fragment_header(next_header: int, offset: int, more: bool, ident: int) -> bytes:
    return FRAG.pack(next_header, offset | (1 if more else 0), ident)


def hbh_router_alert(next_header: int) -> bytes:
    """A hop-by-hop header with the MLD Router Alert option (RFC 2711, value 0) and PadN."""
    return bytes((next_header, 0, OPT_ROUTER_ALERT, 2, 0, 0, OPT_PADN, 0))


def solicited_node(addr: bytes) -> bytes:
    return b"\xff\x02" + b"\x00" * 9 + b"\x01\xff" + addr[13:16]


def multicast_mac(addr: bytes) -> bytes:
    return b"\x33\x33" + addr[12:16]
