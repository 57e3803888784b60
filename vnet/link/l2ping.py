"""Layer-2 echo: a tiny endpoint engine that answers and sends echo frames.

Uses the IEEE "local experimental" Ethertype 0x88B5 so it never collides with a
real protocol. Measures round-trip time and loss across a fabric without any IP
stack (the demo and the fabric tests use it).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from vnet.link.port import Port
from vnet.runtime.base import Runtime
from vnet.wire.ethernet import BROADCAST

ETHERTYPE_L2PING = 0x88B5
_HDR = struct.Struct("!6s6sHBxHd")  # dst, src, type, op, seq, sent-at
REQUEST, REPLY = 1, 2


@dataclass
class PingStats:
    sent: int = 0
    received: int = 0
    rtts: list[float] = field(default_factory=list)
    malformed: int = 0

    @property
    def loss(self) -> float:
        return 1.0 - self.received / self.sent if self.sent else 0.0


class L2Echo:
    """Answers echo requests addressed to `mac` (or broadcast) and sends its own."""

    def __init__(self, rt: Runtime, mac: bytes, name: str = "") -> None:
        self.rt = rt
        self.mac = mac
        self.name = name
        self.port = Port(name or mac.hex(":"))
        self.port.receive = self._receive
        self.stats = PingStats()
        self.answered = 0
        self._outstanding: dict[int, float] = {}
        self._seq = 0

    def ping(self, dst: bytes, payload: int = 46) -> None:
        self._seq = (self._seq + 1) & 0xFFFF
        now = self.rt.now()
        self._outstanding[self._seq] = now
        if len(self._outstanding) > 4096:  # bounded: forget the oldest unanswered probe
            self._outstanding.pop(next(iter(self._outstanding)))
        self.stats.sent += 1
        frame = _HDR.pack(dst, self.mac, ETHERTYPE_L2PING, REQUEST, self._seq, now)
        self.port.send(frame + b"\0" * max(0, payload - (_HDR.size - 14)))

    def ping_every(self, dst: bytes, interval: float, count: int) -> None:
        for i in range(count):
            self.rt.call_later(i * interval, self.ping, dst)

    def _receive(self, frame: bytes) -> None:
        if len(frame) < _HDR.size:
            return
        try:
            dst, src, etype, op, seq, sent = _HDR.unpack_from(frame)
        except struct.error:
            self.stats.malformed += 1
            return
        if etype != ETHERTYPE_L2PING or (dst != self.mac and dst != BROADCAST):
            return
        if op == REQUEST:
            self.answered += 1
            self.port.send(_HDR.pack(src, self.mac, ETHERTYPE_L2PING, REPLY, seq, sent) + frame[_HDR.size:])
        elif op == REPLY:
            t0 = self._outstanding.pop(seq, None)
            if t0 is not None and t0 == sent:
                self.stats.received += 1
                self.stats.rtts.append(self.rt.now() - t0)
        else:
            self.stats.malformed += 1
