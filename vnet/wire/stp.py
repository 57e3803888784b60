"""IEEE 802.1D spanning tree BPDUs: Configuration, Topology Change Notification, and RST read as config.

A BPDU travels in an IEEE 802.3 frame: destination 01:80:c2:00:00:00, a length
field (< 0x0600) instead of an EtherType, then LLC DSAP 0x42, SSAP 0x42, control
0x03 (UI), then the BPDU itself:

    Configuration (35 octets)          TCN (4 octets)
     0  protocol id (2) = 0             0  protocol id (2) = 0
     2  version (1) = 0                 2  version (1) = 0
     3  type (1) = 0x00                 3  type (1) = 0x80
     4  flags: 0x01 TC, 0x80 TCA
     5  root id (8): priority (2) + MAC (6)
    13  root path cost (4)
    17  bridge id (8)
    25  port id (2)
    27  message age, max age, hello time, forward delay (2 each, units of 1/256 s)

An RST BPDU (802.1D-2004, version 2, type 0x02, 36 octets) has the same layout
plus a version-1-length octet; more flag bits carry RSTP's role and handshake.
`parse` returns it as a `ConfigBpdu` (version 2) so an 802.1D bridge can use the
fields both protocols share. MST BPDUs (version 3) parse the same way; the MSTI
records after the common part are ignored.

Bridge identifiers are 64-bit integers (priority << 48 | MAC) so they compare in
the standard's order with plain `<`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vnet.wire.errors import WireError

STP_GROUP = bytes.fromhex("0180c2000000")
LLC_STP = b"\x42\x42\x03"
PROTOCOL_ID = 0
TYPE_CONFIG = 0x00
TYPE_RST = 0x02
TYPE_TCN = 0x80
FLAG_TC = 0x01
FLAG_TCA = 0x80
CONFIG_LEN = 35
RST_LEN = 36
TCN_LEN = 4
TICKS = 256  # timer values are carried in units of 1/256 s
MAX_TIME = 0xFFFF / TICKS

_HDR = struct.Struct("!6s6sH3s")  # dst, src, 802.3 length, LLC
_BPDU_HEAD = struct.Struct("!HBB")  # protocol id, version, type
# flags, root id, root path cost, bridge id, port id, 4 timers
_CONFIG = struct.Struct("!BQIQHHHHH")
_MIN_FRAME = 60  # Ethernet minimum without FCS: short BPDUs are padded on the wire


@dataclass(frozen=True, slots=True)
class ConfigBpdu:
    """A Configuration BPDU (or the STP-shared part of an RST/MST BPDU). Times in seconds."""

    root_id: int
    root_path_cost: int
    bridge_id: int
    port_id: int
    message_age: float = 0.0
    max_age: float = 20.0
    hello_time: float = 2.0
    forward_delay: float = 15.0
    tc: bool = False
    tca: bool = False
    version: int = 0
    bpdu_type: int = TYPE_CONFIG  # TYPE_RST for an RST BPDU read as configuration
    flags: int = -1  # raw flags octet as received; -1 = derive from tc/tca when building

    def build(self) -> bytes:
        """The BPDU octets (35 for version 0/1, 36 for RST)."""
        for name in ("root_id", "bridge_id"):
            v = getattr(self, name)
            if not 0 <= v < 1 << 64:
                raise WireError(f"{name} {v:#x} does not fit 8 octets")
        if not 0 <= self.root_path_cost <= 0xFFFFFFFF:
            raise WireError(f"root path cost {self.root_path_cost} does not fit 4 octets")
        if not 0 <= self.port_id <= 0xFFFF:
            raise WireError(f"port id {self.port_id} does not fit 2 octets")
        if not 0 <= self.version <= 0xFF:
            raise WireError(f"version {self.version} does not fit 1 octet")
        if self.bpdu_type not in (TYPE_CONFIG, TYPE_RST):
            raise WireError(f"BPDU type {self.bpdu_type:#04x} is neither config nor RST")
        flags = self.flags if self.flags >= 0 else \
            (FLAG_TC if self.tc else 0) | (FLAG_TCA if self.tca else 0)
        out = _BPDU_HEAD.pack(PROTOCOL_ID, self.version, self.bpdu_type) + _CONFIG.pack(
            flags & 0xFF, self.root_id, self.root_path_cost, self.bridge_id, self.port_id,
            to_ticks(self.message_age), to_ticks(self.max_age), to_ticks(self.hello_time),
            to_ticks(self.forward_delay))
        if self.bpdu_type == TYPE_RST:
            out += b"\x00"  # version 1 length: no 802.1D-1998 "version 1" information
        return out


@dataclass(frozen=True, slots=True)
class TcnBpdu:
    """A Topology Change Notification BPDU (no parameters)."""

    version: int = 0

    def build(self) -> bytes:
        return _BPDU_HEAD.pack(PROTOCOL_ID, self.version & 0xFF, TYPE_TCN)


Bpdu = ConfigBpdu | TcnBpdu


def to_ticks(seconds: float) -> int:
    t = round(seconds * TICKS)
    if not 0 <= t <= 0xFFFF:
        raise WireError(f"timer value {seconds} s out of range 0..{MAX_TIME:.1f} s")
    return t


def bridge_id(priority: int, mac: bytes) -> int:
    """The 64-bit bridge identifier: 16-bit priority, then the 48-bit MAC."""
    if not 0 <= priority <= 0xFFFF:
        raise WireError(f"bridge priority {priority} out of range 0..65535")
    if len(mac) != 6:
        raise WireError(f"a MAC address has 6 bytes, not {len(mac)}")
    return priority << 48 | int.from_bytes(mac, "big")


def split_bridge_id(bid: int) -> tuple[int, bytes]:
    return bid >> 48, (bid & 0xFFFFFFFFFFFF).to_bytes(6, "big")


def bridge_id_str(bid: int) -> str:
    """Linux's sysfs spelling, e.g. `8000.020000000001`."""
    return f"{bid >> 48:04x}.{bid & 0xFFFFFFFFFFFF:012x}"


def bridge_id_from_str(text: str) -> int:
    prio, dot, mac = text.strip().partition(".")
    mac = mac.replace(":", "")
    try:
        if not dot or len(prio) != 4 or len(mac) != 12:
            raise ValueError
        return int(prio, 16) << 48 | int(mac, 16)
    except ValueError:
        raise WireError(f"not a bridge id: {text!r} (expected like 8000.020000000001)") from None


def parse_bpdu(data: bytes | memoryview) -> Bpdu:
    """Parse BPDU octets (after the LLC header). Raises WireError on anything else."""
    n = len(data)
    if n < TCN_LEN:
        raise WireError(f"BPDU of {n} octets is shorter than 4")
    proto, version, btype = _BPDU_HEAD.unpack_from(data, 0)
    if proto != PROTOCOL_ID:
        raise WireError(f"BPDU protocol identifier {proto:#06x} is not 0 (spanning tree)")
    if btype == TYPE_TCN:
        return TcnBpdu(version)
    if btype == TYPE_CONFIG:
        need = CONFIG_LEN
    elif btype == TYPE_RST:
        need = RST_LEN
        if version < 2:
            raise WireError(f"RST BPDU with protocol version {version} (must be >= 2)")
    else:
        raise WireError(f"unknown BPDU type {btype:#04x}")
    if n < need:
        raise WireError(f"BPDU type {btype:#04x} of {n} octets is shorter than {need}")
    flags, root, cost, bridge, port, age, maxage, hello, fwd = _CONFIG.unpack_from(data, 4)
    return ConfigBpdu(root, cost, bridge, port, age / TICKS, maxage / TICKS, hello / TICKS,
                      fwd / TICKS, bool(flags & FLAG_TC), bool(flags & FLAG_TCA),
                      version, btype, flags)


def parse(frame: bytes | memoryview) -> Bpdu:
    """Parse a whole Ethernet frame carrying a BPDU (802.3 length + LLC 42 42 03)."""
    n = len(frame)
    if n < _HDR.size:
        raise WireError(f"BPDU frame of {n} bytes is shorter than 17 (Ethernet + LLC)")
    _dst, _src, length, llc = _HDR.unpack_from(frame, 0)
    if length >= 0x0600:
        raise WireError(f"type/length {length:#06x} is an EtherType, not an 802.3 length")
    if length < 3 + TCN_LEN:
        raise WireError(f"802.3 length {length} is too short for LLC + BPDU")
    if n < 14 + length:
        raise WireError(f"802.3 length {length} runs past the end of a {n}-byte frame")
    if llc != LLC_STP:
        raise WireError(f"LLC header {llc.hex()} is not 42 42 03 (spanning tree, UI)")
    return parse_bpdu(memoryview(frame)[17:14 + length])


def build(src: bytes, bpdu: Bpdu, pad: bool = True) -> bytes:
    """A whole frame to 01:80:c2:00:00:00 from `src`, padded to 60 bytes unless `pad=False`."""
    if len(src) != 6:
        raise WireError(f"a MAC address has 6 bytes, not {len(src)}")
    body = bpdu.build()
    frame = _HDR.pack(STP_GROUP, src, 3 + len(body), LLC_STP) + body
    if pad and len(frame) < _MIN_FRAME:
        frame += bytes(_MIN_FRAME - len(frame))
    return frame
