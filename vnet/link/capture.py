"""Capture: record the frames crossing ports to a pcap or pcapng file.

`watch(port, name)` wraps the port's two callables: `receive` (frames entering
the engine that owns the port: pcapng direction "inbound") and `transmit`
(frames the engine sends out: "outbound"). Wire the port first, then watch it:
a later `port.attach()` replaces the wrapper. `unwatch(port)` puts the
originals back.

Timestamps are `rt.now()` plus `epoch_offset`: in simulated time they are
simulated seconds; a real-time caller passes `time.time() - rt.now()` so the
file shows wall-clock dates (the engine itself never reads the wall clock).

A capture must never break forwarding: a failed write (disk full, closed pipe)
or reaching `max_bytes` stops recording with one log line, and the wrappers
keep passing frames through.
"""

from __future__ import annotations

import logging
import os
from typing import Any, BinaryIO

from vnet.link.port import FrameHandler, Port
from vnet.runtime.base import Runtime
from vnet.wire.pcap import DEFAULT_SNAPLEN, DIR_IN, DIR_OUT, PcapngWriter, PcapWriter

log = logging.getLogger("vnet.capture")


class CaptureError(ValueError):
    """A capture that cannot be set up; the message says what to change."""


class Capture:
    def __init__(self, sink: BinaryIO, rt: Runtime, fmt: str = "pcapng",
                 snaplen: int = DEFAULT_SNAPLEN, epoch_offset: float = 0.0,
                 max_bytes: int | None = None, nanoseconds: bool | None = None) -> None:
        if fmt not in ("pcap", "pcapng"):
            raise CaptureError(f"unknown capture format {fmt!r}: use pcap or pcapng")
        if not 1 <= snaplen <= 0x7FFFFFFF:
            raise CaptureError(f"snaplen {snaplen} out of range: use 1..2147483647")
        self.sink = sink
        self.rt = rt
        self.fmt = fmt
        self.epoch_offset = epoch_offset
        self.max_bytes = max_bytes
        self.frames = 0
        self.bytes = 0
        self.active = True
        self.error: str | None = None
        self._owns_sink = False
        self._watched: dict[int, tuple[Port, FrameHandler, FrameHandler, FrameHandler,
                                       FrameHandler]] = {}
        self._names: dict[str, int] = {}
        if nanoseconds is None:  # classic pcap readers know microseconds best
            nanoseconds = fmt == "pcapng"
        try:
            if fmt == "pcap":
                self.writer: PcapWriter | PcapngWriter = PcapWriter(sink, snaplen,
                                                                    nanoseconds=nanoseconds)
            else:
                self.writer = PcapngWriter(sink, snaplen, nanoseconds=nanoseconds)
        except OSError as e:
            raise CaptureError(f"cannot write the capture header: {e.strerror or e}") from None

    @classmethod
    def to_file(cls, path: str | os.PathLike[str], rt: Runtime, fmt: str | None = None,
                **kw: Any) -> Capture:
        """Open `path` for writing; the format follows the extension (.pcap, else pcapng)."""
        p = os.fspath(path)
        if fmt is None:
            fmt = "pcap" if p.lower().endswith((".pcap", ".cap")) else "pcapng"
        try:
            f = open(p, "wb", buffering=1 << 16)  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise CaptureError(f"cannot open capture file {p}: {e.strerror or e}") from None
        try:
            cap = cls(f, rt, fmt, **kw)
        except Exception:
            f.close()
            raise
        cap._owns_sink = True
        return cap

    # ---- ports ---------------------------------------------------------------------------

    def watch(self, port: Port, name: str | None = None) -> int:
        """Record both directions of `port`; returns its interface number in the file."""
        key = id(port)
        if key in self._watched:
            return self._names.get(name or port.name, 0)
        label = name or port.name or f"port{len(self._watched)}"
        iface = self._names.get(label)
        if iface is None:
            try:
                iface = self.writer.add_interface(label)
            except (OSError, ValueError) as e:
                self._fail(e)
                iface = 0
            self._names[label] = iface
        orig_rx, orig_tx = port.receive, port.transmit
        record = self._record

        def rx(frame: bytes) -> None:
            record(iface, frame, DIR_IN)
            orig_rx(frame)

        def tx(frame: bytes) -> None:
            record(iface, frame, DIR_OUT)
            orig_tx(frame)

        port.receive = rx
        port.transmit = tx
        self._watched[key] = (port, orig_rx, orig_tx, rx, tx)
        return iface

    def unwatch(self, port: Port) -> None:
        entry = self._watched.pop(id(port), None)
        if entry is None:
            return
        _p, orig_rx, orig_tx, rx, tx = entry
        # Only undo our own wrappers: if someone re-wired the port since, keep theirs.
        if port.receive is rx:
            port.receive = orig_rx
        if port.transmit is tx:
            port.transmit = orig_tx

    # ---- recording -----------------------------------------------------------------------

    def _record(self, iface: int, frame: bytes, direction: int) -> None:
        if not self.active:
            return
        try:
            self.writer.write(self.rt.now() + self.epoch_offset, frame, iface, direction)
        except (OSError, ValueError) as e:  # ValueError: write to a closed file
            self._fail(e)
            return
        self.frames += 1
        self.bytes += len(frame)
        if self.max_bytes is not None and self.bytes >= self.max_bytes:
            self.active = False
            log.warning("capture stopped after %d frames: reached max_bytes=%d",
                        self.frames, self.max_bytes)
            self._flush()

    def _fail(self, e: Exception) -> None:
        if self.error is None:
            self.error = str(getattr(e, "strerror", None) or e)
            log.warning("capture stopped after %d frames: write failed: %s", self.frames, self.error)
        self.active = False

    def _flush(self) -> None:
        try:
            self.sink.flush()
        except (OSError, ValueError) as e:
            self._fail(e)

    def flush(self) -> None:
        if self.active:
            self._flush()

    def close(self) -> None:
        """Stop recording, restore every watched port and close the file (if we opened it)."""
        for entry in list(self._watched.values()):
            self.unwatch(entry[0])
        was_active = self.active
        self.active = False
        if was_active:
            self._flush()
        if self._owns_sink:
            try:
                self.sink.close()
            except OSError as e:
                self._fail(e)

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
