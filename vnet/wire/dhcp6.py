"""DHCPv6 messages and options (RFC 8415): build and parse (client side)."""

from __future__ import annotations

import struct
from typing import NamedTuple

from vnet.wire.errors import WireError

SOLICIT, ADVERTISE, REQUEST, CONFIRM, RENEW, REBIND, REPLY, RELEASE = range(1, 9)
INFORMATION_REQUEST = 11

OPT_CLIENTID = 1
OPT_SERVERID = 2
OPT_IA_NA = 3
OPT_IAADDR = 5
OPT_ORO = 6
OPT_PREFERENCE = 7
OPT_ELAPSED_TIME = 8
OPT_STATUS_CODE = 13
OPT_DNS_SERVERS = 23

CLIENT_PORT = 546
SERVER_PORT = 547
ALL_SERVERS = bytes.fromhex("ff020000000000000000000000010002")

_OPT = struct.Struct("!HH")
_IA = struct.Struct("!III")
_IAADDR = struct.Struct("!16sII")


class Dhcp6Message(NamedTuple):
    msg_type: int
    xid: int
    options: list[tuple[int, bytes]]

    def get(self, code: int) -> bytes | None:
        return next((v for c, v in self.options if c == code), None)


class IaAddress(NamedTuple):
    addr: bytes
    preferred: int
    valid: int


def option(code: int, value: bytes) -> bytes:
    return _OPT.pack(code, len(value)) + value


def duid_ll(mac: bytes) -> bytes:
    return struct.pack("!HH", 3, 1) + mac


def ia_na(iaid: int, t1: int = 0, t2: int = 0, addrs: list[IaAddress] | None = None) -> bytes:
    body = _IA.pack(iaid, t1, t2)
    for a in addrs or []:
        body += option(OPT_IAADDR, _IAADDR.pack(a.addr, a.preferred, a.valid))
    return option(OPT_IA_NA, body)


def build(msg_type: int, xid: int, options: list[bytes]) -> bytes:
    return bytes((msg_type,)) + (xid & 0xFFFFFF).to_bytes(3, "big") + b"".join(options)


def parse_options(buf: bytes | memoryview, start: int = 0) -> list[tuple[int, bytes]]:
    out = []
    i, n = start, len(buf)
    while i < n:
        if i + 4 > n:
            raise WireError("DHCPv6 option header truncated")
        code, ln = _OPT.unpack_from(buf, i)
        if i + 4 + ln > n:
            raise WireError(f"DHCPv6 option {code} runs past the message")
        out.append((code, bytes(buf[i + 4:i + 4 + ln])))
        i += 4 + ln
    return out


def parse(buf: bytes | memoryview) -> Dhcp6Message:
    if len(buf) < 4:
        raise WireError("DHCPv6 message shorter than 4 bytes")
    return Dhcp6Message(buf[0], int.from_bytes(buf[1:4], "big"), parse_options(buf, 4))


def parse_ia_na(value: bytes) -> tuple[int, int, int, list[IaAddress], int]:
    """(IAID, T1, T2, addresses, status code) of an IA_NA option's value."""
    if len(value) < 12:
        raise WireError("IA_NA shorter than 12 bytes")
    iaid, t1, t2 = _IA.unpack_from(value)
    addrs = []
    status = 0
    for code, v in parse_options(value, 12):
        if code == OPT_IAADDR:
            if len(v) < 24:
                raise WireError("IAADDR shorter than 24 bytes")
            a, pref, valid = _IAADDR.unpack_from(v)
            st = next((int.from_bytes(x[:2], "big") for c, x in parse_options(v, 24)
                       if c == OPT_STATUS_CODE and len(x) >= 2), 0)
            if st == 0:
                addrs.append(IaAddress(a, pref, valid))
        elif code == OPT_STATUS_CODE and len(v) >= 2:
            status = int.from_bytes(v[:2], "big")
    return iaid, t1, t2, addrs, status
