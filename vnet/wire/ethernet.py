"""Ethernet II and IEEE 802.1Q: addresses, header views, tag push/pop.

Frames are plain `bytes`; these helpers parse lazily with precompiled structs.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from vnet.wire.errors import WireError

ETH_HLEN = 14
VLAN_HLEN = 4
ETH_MIN_FRAME = 60  # without FCS
ETH_MAX_FRAME = 1514  # untagged, without FCS
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_VLAN = 0x8100
ETHERTYPE_QINQ = 0x88A8
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VRR = 0x886F

BROADCAST = b"\xff" * 6
STP_GROUP = bytes.fromhex("0180c2000000")
VLAN_NONE = 4095  # vde_switch's "no untagged VLAN"

_TYPE = struct.Struct("!H")
_TCI = struct.Struct("!HH")


def mac_to_str(mac: bytes) -> str:
    if len(mac) != 6:
        raise WireError(f"a MAC address has 6 bytes, not {len(mac)}")
    return ":".join(f"{b:02x}" for b in mac)


def mac_from_str(text: str) -> bytes:
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6:
        raise WireError(f"not a MAC address: {text!r} (expected six hex pairs like 02:00:00:00:00:01)")
    try:
        out = bytes(int(p, 16) for p in parts)
    except ValueError:
        raise WireError(f"not a MAC address: {text!r} (expected six hex pairs)") from None
    return out


def random_mac(rng_bytes: bytes | None = None) -> bytes:
    """A random locally administered unicast MAC (02:…)."""
    b = bytearray(rng_bytes[:6] if rng_bytes else os.urandom(6))
    b[0] = (b[0] & 0xFC) | 0x02
    return bytes(b)


def is_multicast(mac: bytes) -> bool:
    return bool(mac[0] & 1)


@dataclass(frozen=True, slots=True)
class EthernetHeader:
    """Parsed representation of an Ethernet II header with an optional 802.1Q tag."""

    dst: bytes
    src: bytes
    ethertype: int
    vid: int | None = None
    pcp: int = 0
    dei: int = 0

    @property
    def header_len(self) -> int:
        return ETH_HLEN + (VLAN_HLEN if self.vid is not None else 0)

    def build(self) -> bytes:
        if self.vid is None:
            return self.dst + self.src + _TYPE.pack(self.ethertype)
        tci = (self.pcp << 13) | (self.dei << 12) | self.vid
        return self.dst + self.src + _TCI.pack(ETHERTYPE_VLAN, tci) + _TYPE.pack(self.ethertype)


def parse(frame: bytes) -> EthernetHeader:
    """Parse the header of `frame`; raise WireError if it is too short."""
    if len(frame) < ETH_HLEN:
        raise WireError(f"Ethernet frame of {len(frame)} bytes is shorter than its 14-byte header")
    (etype,) = _TYPE.unpack_from(frame, 12)
    if etype == ETHERTYPE_VLAN:
        if len(frame) < ETH_HLEN + VLAN_HLEN:
            raise WireError(f"802.1Q frame of {len(frame)} bytes is shorter than 18 bytes")
        (tci, inner) = _TCI.unpack_from(frame, 14)
        return EthernetHeader(
            bytes(frame[0:6]), bytes(frame[6:12]), inner, tci & 0x0FFF, tci >> 13, (tci >> 12) & 1
        )
    return EthernetHeader(bytes(frame[0:6]), bytes(frame[6:12]), etype)


def build(dst: bytes, src: bytes, ethertype: int, payload: bytes = b"", vid: int | None = None,
          pcp: int = 0) -> bytes:
    return EthernetHeader(dst, src, ethertype, vid, pcp).build() + payload


def push_tag(frame: bytes, vid: int, pcp: int = 0) -> bytes:
    """Insert an 802.1Q tag after the MAC addresses."""
    return frame[:12] + _TCI.pack(ETHERTYPE_VLAN, (pcp << 13) | vid) + frame[12:]


def pop_tag(frame: bytes) -> bytes:
    """Remove the 802.1Q tag (caller checked that there is one)."""
    return frame[:12] + frame[16:]
