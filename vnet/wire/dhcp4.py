"""DHCPv4 messages (RFC 2131) and options (RFC 2132): build and parse."""

from __future__ import annotations

import struct
from typing import NamedTuple

from vnet.wire.errors import WireError

FIXED = struct.Struct("!BBBBIHH4s4s4s4s16s64s128sI")
FIXED_LEN = 240  # including the magic cookie
MAGIC = 0x63825363
BOOTREQUEST = 1
BOOTREPLY = 2
FLAG_BROADCAST = 0x8000

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK, RELEASE, INFORM = range(1, 9)

OPT_PAD = 0
OPT_SUBNET_MASK = 1
OPT_ROUTER = 3
OPT_DNS = 6
OPT_HOSTNAME = 12
OPT_REQUESTED_IP = 50
OPT_LEASE_TIME = 51
OPT_MSG_TYPE = 53
OPT_SERVER_ID = 54
OPT_PARAM_LIST = 55
OPT_RENEWAL_T1 = 58
OPT_REBINDING_T2 = 59
OPT_CLIENT_ID = 61
OPT_END = 255

SERVER_PORT = 67
CLIENT_PORT = 68


class DhcpMessage(NamedTuple):
    op: int
    xid: int
    secs: int
    flags: int
    ciaddr: bytes
    yiaddr: bytes
    siaddr: bytes
    giaddr: bytes
    chaddr: bytes
    options: dict[int, bytes]

    @property
    def msg_type(self) -> int:
        v = self.options.get(OPT_MSG_TYPE)
        return v[0] if v else 0


def build(op: int, xid: int, chaddr: bytes, options: list[tuple[int, bytes]], secs: int = 0,
          flags: int = 0, ciaddr: bytes = b"\0" * 4, yiaddr: bytes = b"\0" * 4,
          siaddr: bytes = b"\0" * 4, giaddr: bytes = b"\0" * 4) -> bytes:
    out = bytearray(FIXED.pack(op, 1, 6, 0, xid, secs, flags, ciaddr, yiaddr, siaddr, giaddr,
                               chaddr.ljust(16, b"\0"), b"", b"", MAGIC))
    for code, value in options:
        if len(value) > 255:
            raise WireError(f"DHCP option {code} longer than 255 bytes")
        out += bytes((code, len(value))) + value
    out.append(OPT_END)
    if len(out) < 300:
        out += b"\0" * (300 - len(out))  # BOOTP minimum, which some servers still expect
    return bytes(out)


def parse(buf: bytes | memoryview) -> DhcpMessage:
    if len(buf) < FIXED_LEN:
        raise WireError(f"DHCP message of {len(buf)} bytes is shorter than 240")
    (op, htype, hlen, _, xid, secs, flags, ci, yi, si, gi, ch, _, _, magic) = FIXED.unpack_from(buf)
    if magic != MAGIC:
        raise WireError("DHCP magic cookie missing")
    if op not in (BOOTREQUEST, BOOTREPLY) or htype != 1 or hlen != 6:
        raise WireError("not an Ethernet BOOTP message")
    opts: dict[int, bytes] = {}
    i, n = FIXED_LEN, len(buf)
    while i < n:
        code = buf[i]
        if code == OPT_END:
            break
        if code == OPT_PAD:
            i += 1
            continue
        if i + 2 > n or i + 2 + buf[i + 1] > n:
            raise WireError(f"DHCP option {code} runs past the message")
        ln = buf[i + 1]
        # Repeated options are concatenated (RFC 3396).
        opts[code] = opts.get(code, b"") + bytes(buf[i + 2:i + 2 + ln])
        i += 2 + ln
    return DhcpMessage(op, xid, secs, flags, bytes(ci), bytes(yi), bytes(si), bytes(gi),
                       bytes(ch[:6]), opts)
