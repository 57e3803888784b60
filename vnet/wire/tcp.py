"""TCP header and options (RFC 9293, RFC 7323 window scale/timestamps, RFC 2018 SACK).

The engine's fast path unpacks `HDR` itself; `parse`/`parse_options` are the
validating entry points, and `build` makes whole segments with their checksum.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from vnet.wire.checksum import checksum, ones_sum
from vnet.wire.errors import WireError

PROTO = 6
HDR = struct.Struct("!HHIIBBHHH")
HLEN = 20
CSUM = struct.Struct("!H")  # at offset 16

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20
ECE = 0x40
CWR = 0x80

OPT_EOL = 0
OPT_NOP = 1
OPT_MSS = 2
OPT_WS = 3
OPT_SACK_PERM = 4
OPT_SACK = 5
OPT_TS = 8

_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_TS = struct.Struct("!II")
_MSS = struct.Struct("!BBH")
_WS = struct.Struct("!BBB")
#: NOP NOP TS(10): the layout every timestamped segment of ours (and Linux's) carries.
TS_ALIGNED = struct.Struct("!BBBBII")
TS_PREFIX = b"\x01\x01\x08\x0a"

#: Largest window scale shift (RFC 7323 2.3).
MAX_WSCALE = 14


class TcpHeader(NamedTuple):
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    checksum: int
    urgent: int
    header_len: int  # bytes, options included


class TcpOptions(NamedTuple):
    mss: int | None = None
    wscale: int | None = None
    sack_perm: bool = False
    ts: tuple[int, int] | None = None  # (TSval, TSecr)
    sack: tuple[tuple[int, int], ...] = ()


NO_OPTIONS = TcpOptions()

_FIXED_LEN = {OPT_MSS: 4, OPT_WS: 3, OPT_SACK_PERM: 2, OPT_TS: 10}


def parse(buf: bytes | memoryview, pseudo: int | None = None) -> TcpHeader:
    """Validate the segment `buf` (exactly the TCP segment: header, options, data).

    `pseudo` is the pseudo-header partial sum including the segment length; when
    given, the checksum is verified.
    """
    n = len(buf)
    if n < HLEN:
        raise WireError(f"TCP segment of {n} bytes is shorter than its 20-byte header")
    sport, dport, seq, ack, off, flags, win, csum, urp = HDR.unpack_from(buf)
    hl = (off >> 4) << 2
    if hl < HLEN or hl > n:
        raise WireError(f"TCP data offset {hl} does not fit header 20..{n}")
    if pseudo is not None and ones_sum(buf, pseudo) != 0xFFFF:
        raise WireError("TCP checksum is wrong")
    return TcpHeader(sport, dport, seq, ack, flags | ((off & 1) << 8), win, csum, urp, hl)


def parse_options(buf: bytes | memoryview, start: int = HLEN, end: int | None = None) -> TcpOptions:
    """The options between `start` and `end` (default: the header's data offset)."""
    if end is None:
        if len(buf) < HLEN:
            raise WireError("TCP header truncated")
        end = (buf[12] >> 4) << 2
        if end > len(buf):
            raise WireError("TCP options run past the segment")
    mss = wscale = ts = None
    sack_perm = False
    sack: tuple[tuple[int, int], ...] = ()
    i = start
    while i < end:
        kind = buf[i]
        if kind == OPT_EOL:
            break
        if kind == OPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            raise WireError(f"TCP option {kind} has no length byte")
        ln = buf[i + 1]
        if ln < 2 or i + ln > end:
            raise WireError(f"TCP option {kind} length {ln} is bad")
        want = _FIXED_LEN.get(kind)
        if want is not None and ln != want:
            raise WireError(f"TCP option {kind} has length {ln}, not {want}")
        if kind == OPT_MSS:
            mss = _U16.unpack_from(buf, i + 2)[0]
        elif kind == OPT_WS:
            wscale = min(buf[i + 2], MAX_WSCALE)  # RFC 7323 2.3: log and use 14
        elif kind == OPT_SACK_PERM:
            sack_perm = True
        elif kind == OPT_TS:
            ts = _TS.unpack_from(buf, i + 2)
        elif kind == OPT_SACK:
            if (ln - 2) % 8:
                raise WireError(f"TCP SACK option length {ln} is not 2 + 8n")
            sack = tuple(_TS.unpack_from(buf, j) for j in range(i + 2, i + ln, 8))
        i += ln
    return TcpOptions(mss, wscale, sack_perm, ts, sack)


def build_options(mss: int | None = None, wscale: int | None = None, sack_perm: bool = False,
                  ts: tuple[int, int] | None = None,
                  sack: tuple[tuple[int, int], ...] | list[tuple[int, int]] = ()) -> bytes:
    """Options laid out as Linux does (aligned with NOPs), padded to a multiple of 4."""
    out = bytearray()
    if mss is not None:
        out += _MSS.pack(OPT_MSS, 4, mss)
    if sack_perm and ts is not None:
        out += b"\x04\x02\x08\x0a" + _TS.pack(*ts)
    else:
        if ts is not None:
            out += TS_PREFIX + _TS.pack(*ts)
        if sack_perm:
            out += b"\x01\x01\x04\x02"
    if wscale is not None:
        out += b"\x01" + _WS.pack(OPT_WS, 3, wscale)
    if sack:
        blocks = list(sack)[:4 if ts is None else 3]
        out += b"\x01\x01" + bytes((OPT_SACK, 2 + 8 * len(blocks)))
        for left, right in blocks:
            out += _TS.pack(left, right)
    if len(out) % 4:
        out += b"\x00" * (4 - len(out) % 4)
    if len(out) > 40:
        raise WireError(f"TCP options of {len(out)} bytes exceed 40")
    return bytes(out)


def build(sport: int, dport: int, seq: int, ack: int, flags: int, window: int,
          pseudo: int, options: bytes = b"", payload: bytes | memoryview = b"",
          urgent: int = 0) -> bytes:
    """A whole segment with its checksum. `pseudo` is the pseudo-header sum WITHOUT length."""
    hl = HLEN + len(options)
    if hl > 60 or len(options) % 4:
        raise WireError(f"TCP options of {len(options)} bytes: need a multiple of 4, at most 40")
    seg = bytearray(HDR.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                             (hl >> 2) << 4 | (flags >> 8 & 1), flags & 0xFF, window, 0, urgent))
    seg += options
    seg += payload
    CSUM.pack_into(seg, 16, checksum(seg, pseudo + len(seg)))
    return bytes(seg)
