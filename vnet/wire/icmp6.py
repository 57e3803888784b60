"""ICMPv6 (RFC 4443), Neighbor Discovery messages and options (RFC 4861/4862/8106),
and MLDv2 reports and queries (RFC 3810)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from vnet.wire.checksum import checksum, ones_sum, pseudo6
from vnet.wire.errors import WireError

HDR = struct.Struct("!BBH")
DEST_UNREACH = 1
PACKET_TOO_BIG = 2
TIME_EXCEEDED = 3
PARAM_PROBLEM = 4
ECHO_REQUEST = 128
ECHO_REPLY = 129
MLD_QUERY = 130
MLD1_REPORT = 131
MLD1_DONE = 132
RS = 133
RA = 134
NS = 135
NA = 136
REDIRECT = 137
MLD2_REPORT = 143

# Destination unreachable codes
NO_ROUTE = 0
ADMIN_PROHIBITED = 1
ADDR_UNREACH = 3
PORT_UNREACH = 4
# Parameter problem codes
ERRONEOUS_HEADER = 0
UNRECOGNIZED_NH = 1
UNRECOGNIZED_OPTION = 2

# ND option types
OPT_SLLA = 1
OPT_TLLA = 2
OPT_PREFIX = 3
OPT_REDIRECTED = 4
OPT_MTU = 5
OPT_NONCE = 14
OPT_ROUTE_INFO = 24
OPT_RDNSS = 25

NA_ROUTER = 0x80
NA_SOLICITED = 0x40
NA_OVERRIDE = 0x20
RA_MANAGED = 0x80
RA_OTHER = 0x40
PI_ONLINK = 0x80
PI_AUTO = 0x40

_RA = struct.Struct("!BBHBBHII")  # type code cksum hoplimit flags lifetime reachable retrans
_PI = struct.Struct("!BBBBIII16s")
_MTU = struct.Struct("!BBHI")
_MLD2_REC = struct.Struct("!BBH16s")
_MLD_QUERY = struct.Struct("!BBHHH16s")

# MLDv2 record types (RFC 3810 5.2.12)
MODE_IS_INCLUDE = 1
MODE_IS_EXCLUDE = 2
CHANGE_TO_INCLUDE = 3
CHANGE_TO_EXCLUDE = 4

ERRORS = frozenset((DEST_UNREACH, PACKET_TOO_BIG, TIME_EXCEEDED, PARAM_PROBLEM))


def verify(buf: bytes | memoryview, src: bytes, dst: bytes) -> None:
    """Check length and checksum (pseudo-header with upper-layer length, RFC 8200 8.1)."""
    n = len(buf)
    if n < 4:
        raise WireError(f"ICMPv6 message of {n} bytes is shorter than 4")
    if ones_sum(buf, pseudo6(src, dst, 58, n)) != 0xFFFF:
        raise WireError("ICMPv6 checksum is wrong")


def finish(msg: bytearray, src: bytes, dst: bytes) -> bytes:
    """Fill in the checksum of a message whose checksum field is zero."""
    struct.pack_into("!H", msg, 2, checksum(msg, pseudo6(src, dst, 58, len(msg))))
    return bytes(msg)


def build(icmp_type: int, code: int, body: bytes | memoryview, src: bytes, dst: bytes) -> bytes:
    msg = bytearray(HDR.pack(icmp_type, code, 0))
    msg += body
    return finish(msg, src, dst)


def echo(request: bool, ident: int, seq: int, data: bytes | memoryview, src: bytes,
         dst: bytes) -> bytes:
    return build(ECHO_REQUEST if request else ECHO_REPLY, 0,
                 struct.pack("!HH", ident, seq) + bytes(data), src, dst)


def error(icmp_type: int, code: int, quoted: bytes | memoryview, src: bytes, dst: bytes,
          param: int = 0) -> bytes:
    """An error quoting as much of the packet as fits in the minimum MTU (RFC 4443 2.4(c))."""
    room = 1280 - 40 - 8
    return build(icmp_type, code, struct.pack("!I", param) + bytes(quoted[:room]), src, dst)


# ---- ND options --------------------------------------------------------------------------

def parse_options(buf: bytes | memoryview, start: int) -> list[tuple[int, bytes]]:
    """(type, whole option bytes) for each option; a zero length is invalid (RFC 4861 4.6)."""
    out = []
    i, n = start, len(buf)
    while i < n:
        if i + 2 > n:
            raise WireError("ND option truncated")
        ln = buf[i + 1] << 3
        if ln == 0:
            raise WireError("ND option with length 0")
        if i + ln > n:
            raise WireError("ND option runs past the message")
        out.append((buf[i], bytes(buf[i:i + ln])))
        i += ln
    return out


def lla_option(kind: int, mac: bytes) -> bytes:
    return bytes((kind, 1)) + mac


def option_lla(opts: list[tuple[int, bytes]], kind: int) -> bytes | None:
    for t, v in opts:
        if t == kind and len(v) >= 8:
            return v[2:8]
    return None


class PrefixInfo(NamedTuple):
    prefix_len: int
    flags: int
    valid: int
    preferred: int
    prefix: bytes


def prefix_option(prefix: bytes, plen: int, valid: int, preferred: int,
                  flags: int = PI_ONLINK | PI_AUTO) -> bytes:
    return _PI.pack(OPT_PREFIX, 4, plen, flags, valid, preferred, 0, prefix)


def parse_prefix(opt: bytes) -> PrefixInfo:
    if len(opt) != 32:
        raise WireError(f"prefix information option of {len(opt)} bytes, not 32")
    _, _, plen, flags, valid, pref, _, prefix = _PI.unpack(opt)
    if plen > 128:
        raise WireError(f"prefix length {plen} > 128")
    return PrefixInfo(plen, flags, valid, pref, prefix)


def rdnss_option(servers: list[bytes], lifetime: int) -> bytes:
    """Recursive DNS Server option (RFC 8106 5.1)."""
    return bytes((OPT_RDNSS, 1 + 2 * len(servers), 0, 0)) + struct.pack("!I", lifetime) + \
        b"".join(servers)


def parse_rdnss(opt: bytes) -> tuple[int, list[bytes]]:
    if len(opt) < 24 or (len(opt) - 8) % 16:
        raise WireError("RDNSS option needs 8 + 16*n bytes (n >= 1)")
    (life,) = struct.unpack_from("!I", opt, 4)
    return life, [opt[i:i + 16] for i in range(8, len(opt), 16)]


def route_info_option(prefix: bytes, plen: int, lifetime: int, pref: int = 0) -> bytes:
    """Route Information option (RFC 4191 2.3); `pref` 1 high, 0 medium, -1 low."""
    nbytes = 0 if plen == 0 else (8 if plen <= 64 else 16)
    bits = {1: 0x08, 0: 0x00, -1: 0x18}[pref]
    return bytes((OPT_ROUTE_INFO, 1 + nbytes // 8, plen, bits)) + struct.pack("!I", lifetime) + \
        prefix[:nbytes]


def parse_route_info(opt: bytes) -> tuple[bytes, int, int, int]:
    """(prefix padded to 16 bytes, prefix length, lifetime, preference bits) of a RIO."""
    n = len(opt)
    if n not in (8, 16, 24):
        raise WireError(f"route information option of {n} bytes")
    plen, flags = opt[2], opt[3]
    if plen > 128 or (plen > 64 and n < 24) or (plen > 0 and n < 16):
        raise WireError(f"route information option too short for /{plen}")
    (life,) = struct.unpack_from("!I", opt, 4)
    return opt[8:].ljust(16, b"\x00"), plen, life, (flags >> 3) & 3


def mtu_option(mtu: int) -> bytes:
    return _MTU.pack(OPT_MTU, 1, 0, mtu)


def parse_mtu(opt: bytes) -> int:
    if len(opt) != 8:
        raise WireError("MTU option is not 8 bytes")
    return _MTU.unpack(opt)[3]


# ---- ND messages ------------------------------------------------------------------------

def ns(target: bytes, slla: bytes | None, src: bytes, dst: bytes, nonce: bytes = b"") -> bytes:
    body = b"\x00\x00\x00\x00" + target
    if slla is not None:
        body += lla_option(OPT_SLLA, slla)
    if nonce:
        body += bytes((OPT_NONCE, 1)) + nonce
    return build(NS, 0, body, src, dst)


def na(target: bytes, flags: int, tlla: bytes | None, src: bytes, dst: bytes) -> bytes:
    body = bytes((flags, 0, 0, 0)) + target
    if tlla is not None:
        body += lla_option(OPT_TLLA, tlla)
    return build(NA, 0, body, src, dst)


def rs(slla: bytes | None, src: bytes, dst: bytes) -> bytes:
    body = b"\x00\x00\x00\x00" + (lla_option(OPT_SLLA, slla) if slla is not None else b"")
    return build(RS, 0, body, src, dst)


class RouterAdvert(NamedTuple):
    hop_limit: int
    flags: int
    lifetime: int
    reachable: int
    retrans: int
    options: list[tuple[int, bytes]]


def ra(hop_limit: int, flags: int, lifetime: int, reachable: int, retrans: int,
       options: bytes, src: bytes, dst: bytes) -> bytes:
    msg = bytearray(_RA.pack(RA, 0, 0, hop_limit, flags, lifetime, reachable, retrans))
    msg += options
    return finish(msg, src, dst)


def parse_ra(msg: bytes | memoryview) -> RouterAdvert:
    if len(msg) < 16:
        raise WireError("router advertisement shorter than 16 bytes")
    _, _, _, hl, flags, life, reach, retrans = _RA.unpack_from(msg)
    return RouterAdvert(hl, flags, life, reach, retrans, parse_options(msg, 16))


def redirect(target: bytes, dest: bytes, tlla: bytes | None, quoted: bytes, src: bytes,
             dst: bytes) -> bytes:
    body = b"\x00" * 4 + target + dest
    if tlla is not None:
        body += lla_option(OPT_TLLA, tlla)
    if quoted:
        room = (1280 - 40 - len(body) - 4 - 8) & ~7
        q = quoted[:room]
        q += b"\x00" * (-len(q) % 8)
        body += bytes((OPT_REDIRECTED, 1 + len(q) // 8)) + b"\x00" * 6 + q
    return build(REDIRECT, 0, body, src, dst)


# ---- MLD ---------------------------------------------------------------------------------

def mld2_report(groups: list[tuple[int, bytes]], src: bytes, dst: bytes) -> bytes:
    """An MLDv2 report with one record (type, group) per entry and no sources."""
    body = struct.pack("!HH", 0, len(groups))
    for rtype, group in groups:
        body += _MLD2_REC.pack(rtype, 0, 0, group)
    return build(MLD2_REPORT, 0, body, src, dst)


def parse_mld2_report(msg: bytes | memoryview) -> list[tuple[int, bytes]]:
    if len(msg) < 8:
        raise WireError("MLDv2 report shorter than 8 bytes")
    (count,) = struct.unpack_from("!H", msg, 6)
    out = []
    i = 8
    for _ in range(count):
        if i + 20 > len(msg):
            raise WireError("MLDv2 record truncated")
        rtype, aux, nsrc, group = _MLD2_REC.unpack_from(msg, i)
        i += 20 + 16 * nsrc + 4 * aux
        out.append((rtype, group))
    if i > len(msg):
        raise WireError("MLDv2 record runs past the message")
    return out


def mld1(msg_type: int, group: bytes, src: bytes, dst: bytes) -> bytes:
    """An MLDv1 Report or Done (RFC 2710): max delay 0, reserved, the group."""
    return build(msg_type, 0, b"\x00" * 4 + group, src, dst)


def parse_mld_query(msg: bytes | memoryview) -> tuple[int, bytes]:
    """(maximum response delay in ms, group or :: for general) of an MLDv1/v2 query."""
    if len(msg) < 24:
        raise WireError("MLD query shorter than 24 bytes")
    _, _, _, mrc, _, group = _MLD_QUERY.unpack_from(msg)
    if len(msg) >= 28 and mrc >= 0x8000:  # MLDv2 exponential code (RFC 3810 5.1.3)
        mrc = ((mrc & 0x0FFF) | 0x1000) << (((mrc >> 12) & 7) + 3)
    return mrc, bytes(group)
