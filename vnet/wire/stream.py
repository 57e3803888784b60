"""The VDE stream ("vde cable") framing: each frame is a 2-byte big-endian length, then the frame.

This is what `vde_plug` speaks on stdin/stdout and what dpipe/ssh cables carry.
`StreamDecoder` is incremental: any split of the byte stream, including a read
that ends between the two length bytes (where vde_plug loses frames), yields the
same frames. Buffering is bounded by one record. Length-0 records are skipped
and records longer than `max_frame` are counted; as in vdeplug4, the rest of the
bytes at hand are then discarded, since the stream has lost its framing.
"""

from __future__ import annotations

from collections.abc import Callable

from vnet.wire.errors import WireError

#: vdeplug4: VDE_ETHBUFSIZE = 9216 + 14 + 4; a record is that plus the 2-byte header.
MAX_FRAME = 9234
MAX_RECORD = MAX_FRAME + 2
HEADER_LEN = 2


def header(length: int) -> bytes:
    """The 2-byte length prefix for a frame of `length` bytes."""
    if not 0 <= length <= 0xFFFF:
        raise WireError(f"stream record of {length} bytes cannot be framed (max 65535)")
    return length.to_bytes(2, "big")


def encode(frame: bytes | bytearray | memoryview) -> bytes:
    """One record: length prefix + frame."""
    return header(len(frame)) + bytes(frame)


class StreamDecoder:
    """Feed bytes in any chunking; `on_frame(frame)` is called once per complete record."""

    __slots__ = ("on_frame", "max_frame", "_buf", "frames", "empty", "too_long", "discarded")

    def __init__(self, on_frame: Callable[[bytes], None], max_frame: int = MAX_FRAME) -> None:
        if not 1 <= max_frame <= 0xFFFF:
            raise ValueError(f"max_frame {max_frame} out of range 1..65535")
        self.on_frame = on_frame
        self.max_frame = max_frame
        self._buf = b""  # at most one partial record (< max_frame + 2 bytes)
        self.frames = 0
        self.empty = 0  # length-0 records skipped
        self.too_long = 0  # records announcing more than max_frame bytes
        self.discarded = 0  # bytes thrown away after a bad length

    @property
    def pending(self) -> int:
        """Bytes held waiting for the rest of a record."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._buf:
            data = self._buf + bytes(data)
            self._buf = b""
        n = len(data)
        pos = 0
        on_frame = self.on_frame
        max_frame = self.max_frame
        while n - pos >= 2:
            length = (data[pos] << 8) | data[pos + 1]
            if length == 0:
                self.empty += 1
                pos += 2
                continue
            if length > max_frame:
                self.too_long += 1
                self.discarded += n - pos
                return
            end = pos + 2 + length
            if end > n:
                break
            self.frames += 1
            on_frame(bytes(data[pos + 2:end]))
            pos = end
        if pos < n:
            self._buf = bytes(data[pos:])

    def reset(self) -> None:
        """Forget any partial record (e.g. when the peer reconnects)."""
        self._buf = b""
