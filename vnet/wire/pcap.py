"""pcap and pcapng: writers for captures and minimal readers (for tests and tools).

Formats (facts, not code, from the published specifications):

* pcap (libpcap classic): a 24-byte global header (magic 0xA1B2C3D4 for
  microsecond timestamps, 0xA1B23C4D for nanoseconds; version 2.4; snaplen;
  link type), then per record `ts_sec, ts_frac, incl_len, orig_len` and the bytes.
* pcapng: blocks of `type, total_length, body, total_length`, bodies padded to
  4 bytes. Section Header Block (0x0A0D0D0A, byte-order magic 0x1A2B3C4D, version
  1.0, section length -1 = unknown), one Interface Description Block per
  interface (link type, snaplen, options if_name=2 and if_tsresol=9), and
  Enhanced Packet Blocks (interface id, 64-bit timestamp in if_tsresol units,
  captured and original length, data, option epb_flags=2 whose low two bits are
  the direction: 1 inbound, 2 outbound).

Writers write to any binary file-like object; all integers little-endian
(pcapng readers accept either order via the byte-order magic). Readers raise
`WireError` on anything malformed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from vnet.wire.errors import WireError

LINKTYPE_ETHERNET = 1
PCAP_MAGIC_US = 0xA1B2C3D4
PCAP_MAGIC_NS = 0xA1B23C4D
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_IDB = 0x00000001
PCAPNG_EPB = 0x00000006
PCAPNG_SPB = 0x00000003
PCAPNG_BOM = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_SHB_USERAPPL = 4
OPT_IF_NAME = 2
OPT_IF_TSRESOL = 9
OPT_EPB_FLAGS = 2
DIR_UNKNOWN, DIR_IN, DIR_OUT = 0, 1, 2
DEFAULT_SNAPLEN = 262144

_PCAP_GLOBAL = struct.Struct("<IHHiIII")
_PCAP_REC = struct.Struct("<IIII")
_BLOCK_HEAD = struct.Struct("<II")
_U32 = struct.Struct("<I")
_SHB_BODY = struct.Struct("<IHHq")
_IDB_BODY = struct.Struct("<HHI")
_OPT_HEAD = struct.Struct("<HH")
# EPB up to the data: type, total length, interface id, ts high, ts low, captured, original.
_EPB_HEAD = struct.Struct("<IIIIIII")
# EPB tail: epb_flags option (code 2, length 4, value), end of options, total length.
_EPB_TAIL = struct.Struct("<HHIII")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


def _pad4(n: int) -> int:
    return (n + 3) & ~3


def _option(code: int, value: bytes) -> bytes:
    return _OPT_HEAD.pack(code, len(value)) + value + b"\0" * (_pad4(len(value)) - len(value))


def _block(btype: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return _BLOCK_HEAD.pack(btype, total) + body + _U32.pack(total)


class PcapWriter:
    """Classic pcap. `nanoseconds=True` writes the nanosecond-magic variant."""

    def __init__(self, sink: BinaryIO, snaplen: int = DEFAULT_SNAPLEN,
                 linktype: int = LINKTYPE_ETHERNET, nanoseconds: bool = False) -> None:
        self.sink = sink
        self.snaplen = snaplen
        self._scale = 1_000_000_000 if nanoseconds else 1_000_000
        magic = PCAP_MAGIC_NS if nanoseconds else PCAP_MAGIC_US
        sink.write(_PCAP_GLOBAL.pack(magic, 2, 4, 0, 0, snaplen, linktype))

    def add_interface(self, name: str, linktype: int = LINKTYPE_ETHERNET) -> int:
        """pcap has no interfaces: every frame goes to the one link; returns 0."""
        return 0

    def write(self, ts: float, frame: bytes, interface: int = 0, direction: int = DIR_UNKNOWN) -> None:
        ticks = int(ts * self._scale)
        sec, frac = divmod(ticks, self._scale)
        n = len(frame)
        if n > self.snaplen:
            self.sink.write(_PCAP_REC.pack(sec, frac, self.snaplen, n))
            self.sink.write(frame[: self.snaplen])
        else:
            self.sink.write(_PCAP_REC.pack(sec, frac, n, n))
            self.sink.write(frame)


class PcapngWriter:
    """pcapng with one IDB per interface (named), EPBs with direction flags."""

    def __init__(self, sink: BinaryIO, snaplen: int = DEFAULT_SNAPLEN,
                 nanoseconds: bool = True, application: str = "vnet") -> None:
        self.sink = sink
        self.snaplen = snaplen
        self.nanoseconds = nanoseconds
        self._scale = 1_000_000_000 if nanoseconds else 1_000_000
        self.interfaces: list[str] = []
        body = _SHB_BODY.pack(PCAPNG_BOM, 1, 0, -1)
        body += _option(OPT_SHB_USERAPPL, application.encode()) + _OPT_HEAD.pack(OPT_ENDOFOPT, 0)
        sink.write(_block(PCAPNG_SHB, body))

    def add_interface(self, name: str, linktype: int = LINKTYPE_ETHERNET) -> int:
        """Write an IDB; returns the interface id used in `write`."""
        body = _IDB_BODY.pack(linktype, 0, self.snaplen)
        body += _option(OPT_IF_NAME, name.encode()[:255])
        body += _option(OPT_IF_TSRESOL, bytes([9 if self.nanoseconds else 6]))
        body += _OPT_HEAD.pack(OPT_ENDOFOPT, 0)
        self.sink.write(_block(PCAPNG_IDB, body))
        self.interfaces.append(name)
        return len(self.interfaces) - 1

    def write(self, ts: float, frame: bytes, interface: int = 0, direction: int = DIR_UNKNOWN) -> None:
        ticks = int(ts * self._scale)
        n = len(frame)
        cap = n if n <= self.snaplen else self.snaplen
        padded = _pad4(cap)
        total = 28 + padded + 16
        w = self.sink.write
        w(_EPB_HEAD.pack(PCAPNG_EPB, total, interface, ticks >> 32, ticks & 0xFFFFFFFF, cap, n))
        w(frame if cap == n else frame[:cap])
        w(_PAD[cap & 3])
        w(_EPB_TAIL.pack(OPT_EPB_FLAGS, 4, direction, OPT_ENDOFOPT, total))


# ---- readers -------------------------------------------------------------------------


@dataclass
class Packet:
    ts: float
    data: bytes
    orig_len: int
    interface: int = 0
    direction: int = DIR_UNKNOWN


@dataclass
class Capture:
    """What a reader found: the format, interfaces (name, link type) and packets."""

    fmt: str
    interfaces: list[tuple[str, int]] = field(default_factory=list)
    packets: list[Packet] = field(default_factory=list)


def read_pcap(data: bytes) -> Capture:
    if len(data) < _PCAP_GLOBAL.size:
        raise WireError(f"pcap file too short for its global header ({len(data)} bytes)")
    magic = _U32.unpack_from(data)[0]
    if magic == PCAP_MAGIC_US:
        endian, scale = "<", 1e6
    elif magic == PCAP_MAGIC_NS:
        endian, scale = "<", 1e9
    elif magic == int.from_bytes(PCAP_MAGIC_US.to_bytes(4, "little"), "big"):
        endian, scale = ">", 1e6
    elif magic == int.from_bytes(PCAP_MAGIC_NS.to_bytes(4, "little"), "big"):
        endian, scale = ">", 1e9
    else:
        raise WireError(f"not a pcap file: magic {magic:#010x}")
    _m, major, _minor, _z, _s, _snap, linktype = struct.unpack_from(endian + "IHHiIII", data)
    if major != 2:
        raise WireError(f"unsupported pcap version {major}")
    cap = Capture("pcap", [("", linktype)])
    rec = struct.Struct(endian + "IIII")
    off = _PCAP_GLOBAL.size
    while off < len(data):
        if off + rec.size > len(data):
            raise WireError(f"truncated pcap record header at offset {off}")
        sec, frac, incl, orig = rec.unpack_from(data, off)
        off += rec.size
        if off + incl > len(data):
            raise WireError(f"truncated pcap record at offset {off}: needs {incl} bytes")
        cap.packets.append(Packet(sec + frac / scale, bytes(data[off:off + incl]), orig))
        off += incl
    return cap


def _options(body: bytes, off: int, endian: str) -> dict[int, bytes]:
    opts: dict[int, bytes] = {}
    head = struct.Struct(endian + "HH")
    while off + 4 <= len(body):
        code, length = head.unpack_from(body, off)
        off += 4
        if code == OPT_ENDOFOPT:
            break
        if off + length > len(body):
            raise WireError(f"pcapng option {code} overruns its block")
        opts[code] = body[off:off + length]
        off += _pad4(length)
    return opts


def read_pcapng(data: bytes) -> Capture:
    cap = Capture("pcapng")
    off = 0
    endian = "<"
    resol: list[float] = []
    while off < len(data):
        if off + 12 > len(data):
            raise WireError(f"truncated pcapng block header at offset {off}")
        btype = struct.unpack_from("<I", data, off)[0]
        if btype == PCAPNG_SHB:
            bom = data[off + 8:off + 12]
            if bom == PCAPNG_BOM.to_bytes(4, "little"):
                endian = "<"
            elif bom == PCAPNG_BOM.to_bytes(4, "big"):
                endian = ">"
            else:
                raise WireError(f"pcapng section header with bad byte-order magic {bom.hex()}")
            resol = []
        elif off == 0:
            raise WireError(f"not a pcapng file: first block type {btype:#010x}")
        btype, total = struct.unpack_from(endian + "II", data, off)
        if total < 12 or total % 4 or off + total > len(data):
            raise WireError(f"pcapng block at offset {off} has bad length {total}")
        if struct.unpack_from(endian + "I", data, off + total - 4)[0] != total:
            raise WireError(f"pcapng block at offset {off}: trailing length does not match")
        body = data[off + 8:off + total - 4]
        if btype == PCAPNG_IDB:
            linktype, _r, _snap = struct.unpack_from(endian + "HHI", body)
            opts = _options(body, 8, endian)
            name = opts.get(OPT_IF_NAME, b"").rstrip(b"\0").decode("utf-8", "replace")
            tsr = opts.get(OPT_IF_TSRESOL, b"\x06")[0]
            resol.append(2.0 ** -(tsr & 0x7F) if tsr & 0x80 else 10.0 ** -tsr)
            cap.interfaces.append((name, linktype))
        elif btype == PCAPNG_EPB:
            iface, hi, lo, caplen, orig = struct.unpack_from(endian + "IIIII", body)
            if iface >= len(resol):
                raise WireError(f"pcapng packet for undeclared interface {iface}")
            if 20 + caplen > len(body):
                raise WireError(f"pcapng packet at offset {off} overruns its block")
            pkt = body[20:20 + caplen]
            opts = _options(body, 20 + _pad4(caplen), endian)
            flags = opts.get(OPT_EPB_FLAGS)
            direction = (struct.unpack(endian + "I", flags)[0] & 3) if flags and len(flags) == 4 else 0
            cap.packets.append(Packet(((hi << 32) | lo) * resol[iface], bytes(pkt), orig, iface,
                                      direction))
        off += total
    return cap


def read(data: bytes) -> Capture:
    """Read either format, telling them apart by the first four bytes."""
    if len(data) >= 4 and _U32.unpack_from(data)[0] == PCAPNG_SHB:
        return read_pcapng(data)
    return read_pcap(data)
