"""Side channel for offload metadata riding with a frame through synchronous engines.

A TAP with IFF_VNET_HDR may hand over a 64 KB TCP "GSO" frame with a partial
checksum. Engines forward plain `bytes`; the virtio-net header travels beside
the frame: the driver sets `PENDING = [frame, header]` for the duration of
`port.deliver(frame)` and a driver handed *the same object* on the way out
writes it with that header (see vnet.phy.offload). An engine that checks frame
sizes may let such a frame through with `is_offloaded(frame)`: it stands for
several frames of at most the MTU each. An engine that declares this sets a
class attribute `admits_offload = True`.

An engine that *consumes* such frames (the host stack: one 64 KB TCP segment
through IP and TCP, checksum left unverified) sets `takes_offload = True`; the
driver then hands it every frame whose header asks for work, with the header in
`PENDING[1]`, and the engine finishes in software whatever it cannot take whole.

The other direction works the same way: an engine that sends a frame needing
work (TSO: a TCP segment of several MSS with a partial checksum) sets PENDING
around `port.transmit(frame)`, but only when `accepts_offload(port.transmit)`.
"""

from __future__ import annotations

#: [frame, virtio-net header] while an offloaded frame is being delivered, else [None, b""].
PENDING: list = [None, b""]


def is_offloaded(frame: object) -> bool:
    """True while `frame` is the GSO/partial-checksum frame currently being delivered."""
    return frame is PENDING[0]


def accepts_offload(transmit: object) -> bool:
    """True when a port's transmit function writes PENDING frames with their header
    (it declares `accepts_offload = True`; bound methods forward attribute reads)."""
    return getattr(transmit, "accepts_offload", False) is True
