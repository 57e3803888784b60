"""TAP with IFF_VNET_HDR and TSO/checksum offloads: 64 KB GSO frames through the switch.

The engines forward plain `bytes` and know nothing of virtio-net headers, so the
header travels beside the frame, not in it:

* On reading a frame that needs work (GSO, or a partial checksum), the TAP puts
  `(frame, header)` in the one-entry slot `vnet.link.offload.PENDING` and calls `port.deliver`;
  the switch forwards synchronously, so any offload-capable TAP writer that is
  handed *the same object* (`frame is PENDING[0]`) writes it with its header.
  A frame that was copied or rewritten on the way (VLAN tagging), or delayed
  (a simulated link), no longer matches and is written as plain.
* A host stack (an engine with `takes_offload = True`) gets such frames whole and
  decides itself: a TCP segment for one of its addresses goes up in one piece.
* Otherwise such a frame is only passed on when every place the engine may send it takes
  offloads: all other ports of the owning switch are offload-capable TAPs on the
  same untagged VLAN with no tagged VLANs (or the port is joined directly to one,
  as `vnet plug` does), and the switch admits it: its MTU is large enough (65517),
  or it declares `admits_offload` (lets offloaded frames past its size check). Otherwise it is finished in software first - checksum
  completed, GSO frame cut into MSS-sized segments exactly as the kernel would -
  and the plain frames go in instead.

A transmit function declares it can take offloads with `accepts_offload = True`
(bound methods forward attribute reads to their function).
"""

from __future__ import annotations

import os
import struct

from vnet.link.offload import PENDING, accepts_offload
from vnet.link.port import Port
from vnet.link.switch import Switch
from vnet.phy.tap import READ_BUDGET, READ_SIZE, TapAttachment
from vnet.runtime.realtime import AsyncioRuntime
from vnet.wire import virtio_net as vh
from vnet.wire.errors import WireError

_PLAIN = vh.PLAIN
_HL = vh.HDR_LEN
_HDR10 = struct.Struct("<BBHHHH")  # the header without num_buffers (packet sockets use this)


def passthrough_ok(port: Port, length: int) -> bool:
    """True when every destination the engine can pick for frames from `port` takes offloads
    (and the engine accepts a frame of `length` bytes: a switch drops frames over its MTU)."""
    sw = port.owner
    if getattr(sw, "takes_offload", False) is True:
        return True  # it consumes them itself (the host stack), finishing what it cannot take
    if not isinstance(sw, Switch):
        # Joined directly (vnet plug): port.receive is the other side's Port.send. Any other
        # engine (a host stack, wirefilter, VRR) parses or delays frames: never pass through.
        peer = getattr(port.receive, "__self__", None)
        return (sw is None and isinstance(peer, Port) and peer.owner is None
                and accepts_offload(peer.transmit))
    if length > sw.max_frame and not getattr(sw, "admits_offload", False):
        return False
    ports = sw.ports
    mine = None
    for rec in ports.values():
        if rec.port is port:
            mine = rec
            break
    if mine is None or mine.tagged:
        return False
    vid = mine.untagged
    for rec in ports.values():
        if rec is mine:
            continue
        if not accepts_offload(rec.port.transmit) or rec.untagged != vid or rec.tagged:
            return False
    return True


class OffloadRx:
    """What a reader does with a frame whose virtio-net header asks for work (GSO/partial csum).

    `hl` is the header length in front of the frame: 12 for our TAPs, 10 for packet sockets.
    """

    __slots__ = ("port", "hl", "passed", "segmented", "csum_finished", "bad_hdr")

    def __init__(self, port: Port, hl: int) -> None:
        self.port = port
        self.hl = hl
        self.passed = 0  # handed on with their header to offload-capable ports
        self.segmented = 0  # GSO frames cut in software
        self.csum_finished = 0  # partial checksums completed in software
        self.bad_hdr = 0

    def take(self, data: bytes) -> None:
        hl = self.hl
        frame = data[hl:]
        port = self.port
        # A tagged frame may be re-tagged or stripped (priority tags) on the way: a new
        # object that would lose its header, so those are finished here instead.
        if frame[12:14] != b"\x81\x00" and passthrough_ok(port, len(frame)):
            self.passed += 1
            PENDING[0] = frame
            PENDING[1] = data[:hl] if hl == _HL else data[:hl] + b"\0\0"
            try:
                port.deliver(frame)
            finally:
                PENDING[0] = None
            return
        # Software fallback: the frames the kernel would have sent without offloads.
        _, gso_type, _, gso_size, csum_start, csum_offset = _HDR10.unpack_from(data)
        try:
            if gso_type != vh.GSO_NONE:
                self.segmented += 1
                vh.segment(frame, gso_type, gso_size, csum_start, port.deliver)
            else:
                self.csum_finished += 1
                port.deliver(bytes(vh.finish_checksum(frame, csum_start, csum_offset)))
        except WireError:
            self.bad_hdr += 1
            port.rx_dropped += 1

    def counters(self) -> dict[str, int]:
        return {"offload_passed": self.passed, "gso_segmented": self.segmented,
                "csum_finished": self.csum_finished, "rx_bad_hdr": self.bad_hdr}


class VnetTapAttachment(TapAttachment):
    """A TAP opened with IFF_VNET_HDR (12-byte header) and TSO4/TSO6/CSUM offloads on."""

    def __init__(self, fd: int, ifname: str, port: Port, rt: AsyncioRuntime) -> None:
        self.offload = OffloadRx(port, _HL)
        super().__init__(fd, ifname, port, rt)

    def _readable(self) -> None:
        read = os.read
        fd = self.fd
        port = self.port
        take = self.offload.take
        for _ in range(READ_BUDGET):
            try:
                data = read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self.rx_errors += 1
                port.rx_dropped += 1
                self.close()
                return
            if data[0] & 1 == 0 and data[1] == 0:  # no GSO, checksum complete: a plain frame
                port.deliver(data[_HL:])
            else:
                take(data)

    def _write(self, frame: bytes) -> None:
        hdr = PENDING[1] if frame is PENDING[0] else _PLAIN
        try:
            os.writev(self.fd, (hdr, frame))
        except OSError:
            self.port.tx_dropped += 1

    _write.accepts_offload = True  # type: ignore[attr-defined]

    def counters(self) -> dict[str, int]:
        return {**self.offload.counters(), "rx_errors": self.rx_errors, **self.port.counters()}
