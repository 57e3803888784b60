"""Ports: where frames enter and leave an engine.

A `Port` joins an engine to whatever is outside it (another engine, a simulated
link, or an OS driver in `vnet.phy`). Two callables make the seam:

* `receive(frame)` - set by the engine that owns the port; called with frames
  arriving *into* the engine (drivers call `port.receive(frame)` directly).
* `transmit(frame)` - set by whatever is attached; called by the engine with
  frames *leaving* it (`port.send(frame)`).

No objects are made per frame; counters are plain integer attributes.
"""

from __future__ import annotations

from collections.abc import Callable

FrameHandler = Callable[[bytes], None]


def _discard(frame: bytes) -> None:
    return None


class Port:
    __slots__ = (
        "name", "receive", "transmit", "owner",
        "rx_frames", "rx_bytes", "tx_frames", "tx_bytes", "rx_dropped", "tx_dropped",
        "description", "__weakref__",
    )

    def __init__(self, name: str = "", receive: FrameHandler | None = None) -> None:
        self.name = name
        self.receive: FrameHandler = receive if receive is not None else _discard
        self.transmit: FrameHandler = _discard
        self.owner: object | None = None  # the engine this port belongs to
        self.description = ""  # who is attached (e.g. a VDE client's description)
        self.rx_frames = 0
        self.rx_bytes = 0
        self.tx_frames = 0
        self.tx_bytes = 0
        self.rx_dropped = 0
        self.tx_dropped = 0

    def send(self, frame: bytes) -> None:
        """Hand a frame out of the engine to the attached peer."""
        self.transmit(frame)

    def deliver(self, frame: bytes) -> None:
        """Hand a frame into the engine (late-bound: follows changes of `receive`)."""
        self.receive(frame)

    def attach(self, transmit: FrameHandler) -> None:
        self.transmit = transmit

    def detach(self) -> None:
        self.transmit = _discard

    @property
    def attached(self) -> bool:
        return self.transmit is not _discard

    def counters(self) -> dict[str, int]:
        return {
            "rx_frames": self.rx_frames, "rx_bytes": self.rx_bytes,
            "tx_frames": self.tx_frames, "tx_bytes": self.tx_bytes,
            "rx_dropped": self.rx_dropped, "tx_dropped": self.tx_dropped,
        }

    def __repr__(self) -> str:
        return f"<Port {self.name!r}>"


def connect(a: Port, b: Port) -> None:
    """Join two ports directly (a zero-delay in-memory cable)."""
    a.attach(b.deliver)
    b.attach(a.deliver)


def disconnect(a: Port, b: Port) -> None:
    a.detach()
    b.detach()
