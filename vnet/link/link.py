"""A simulated point-to-point link: delay, loss, rate and a bounded queue, each direction.

Runs on any Runtime, though it is meant for simulated time; the full link
emulator with wirefilter's parameters lives in `wirefilter.py`.
"""

from __future__ import annotations

from collections import deque

from vnet.link.port import Port
from vnet.runtime.base import Runtime


class Direction:
    """One direction of a link: a FIFO that serialises at `rate` and then delays."""

    __slots__ = ("rt", "dst", "delay", "loss", "rate", "queue_limit", "queue", "busy_until",
                 "sent", "delivered", "lost", "queue_drops", "up", "_queued_bytes", "queue_bytes")

    def __init__(self, rt: Runtime, dst: Port, delay: float, loss: float, rate: float | None,
                 queue_limit: int) -> None:
        self.rt = rt
        self.dst = dst
        self.delay = delay
        self.loss = loss
        self.rate = rate  # bits per second; None = infinite
        self.queue_limit = queue_limit  # frames waiting for serialisation
        self.queue: deque[bytes] = deque()
        self.busy_until = 0.0
        self.sent = 0
        self.delivered = 0
        self.lost = 0
        self.queue_drops = 0
        self.up = True
        self._queued_bytes = 0
        self.queue_bytes = 0

    def push(self, frame: bytes) -> None:
        self.sent += 1
        if not self.up:
            self.lost += 1
            return
        if self.loss and self.rt.rng.random() < self.loss:
            self.lost += 1
            return
        if self.rate is None:
            self.rt.call_later(self.delay, self._arrive, frame)
            return
        if len(self.queue) >= self.queue_limit:
            self.queue_drops += 1
            return
        self.queue.append(frame)
        if len(self.queue) == 1:
            self._start_tx()

    def _start_tx(self) -> None:
        frame = self.queue[0]
        assert self.rate is not None
        tx_time = len(frame) * 8 / self.rate
        self.rt.call_later(tx_time, self._tx_done)

    def _tx_done(self) -> None:
        frame = self.queue.popleft()
        self.rt.call_later(self.delay, self._arrive, frame)
        if self.queue:
            self._start_tx()

    def _arrive(self, frame: bytes) -> None:
        if not self.up:
            self.lost += 1
            return
        self.delivered += 1
        self.dst.receive(frame)


class Link:
    """A full-duplex cable between two ports, e.g. `Link(rt, sw1.add_port(), host.port, delay=0.001)`."""

    def __init__(self, rt: Runtime, a: Port, b: Port, delay: float = 0.0, loss: float = 0.0,
                 rate: float | None = None, queue_limit: int = 1000) -> None:
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss must be a probability in [0, 1], not {loss}")
        if delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, not {delay}")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 bit/s, not {rate}")
        if queue_limit < 1:
            raise ValueError(f"queue_limit must be >= 1 frame, not {queue_limit}")
        self.a, self.b = a, b
        self.ab = Direction(rt, b, delay, loss, rate, queue_limit)
        self.ba = Direction(rt, a, delay, loss, rate, queue_limit)
        a.attach(self.ab.push)
        b.attach(self.ba.push)

    def set_up(self, up: bool) -> None:
        """Cut (False) or restore (True) the cable; frames in flight on a cut cable are lost."""
        self.ab.up = self.ba.up = up

    def close(self) -> None:
        self.set_up(False)
        self.a.detach()
        self.b.detach()
