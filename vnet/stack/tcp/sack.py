"""SACK bookkeeping: the receiver's out-of-order queue and blocks (RFC 2018), and the
sender's scoreboard for loss recovery (RFC 6675).

Sequence numbers here are unwrapped (plain ints that never wrap), see connection.py.
"""

from __future__ import annotations

from bisect import insort
from operator import itemgetter

_start = itemgetter(0)

#: bound on out-of-order pieces kept (bytes are bounded by the receive window)
MAX_OOO_PIECES = 512


class Reassembly:
    """Out-of-order data above RCV.NXT: sorted, non-overlapping (start, bytes) pieces."""

    __slots__ = ("pieces", "nbytes", "last")

    def __init__(self) -> None:
        self.pieces: list[tuple[int, bytes]] = []
        self.nbytes = 0
        self.last = 0  # start of the piece that arrived last (it leads the SACK blocks)

    def __bool__(self) -> bool:
        return bool(self.pieces)

    def add(self, start: int, data: bytes) -> bool:
        """Insert, trimming what is already held. False if nothing new (or over the bound)."""
        end = start + len(data)
        pieces = self.pieces
        new: list[tuple[int, bytes]] = []
        # walk the gaps between held pieces that overlap [start, end)
        cur = start
        for s, d in pieces:
            e = s + len(d)
            if e <= cur:
                continue
            if s >= end:
                break
            if s > cur:
                new.append((cur, data[cur - start:s - start]))
            cur = max(cur, e)
            if cur >= end:
                break
        if cur < end:
            new.append((cur, data[cur - start:]))
        if not new:
            return False
        if len(pieces) + len(new) > MAX_OOO_PIECES:
            return False
        for piece in new:
            insort(pieces, piece, key=_start)
        self.nbytes += sum(len(d) for _, d in new)
        self.last = start
        return True

    def pop_ready(self, rcv_nxt: int) -> list[bytes]:
        """Remove and return pieces that continue at `rcv_nxt` (dropping what lies below it)."""
        out: list[bytes] = []
        pieces = self.pieces
        i = 0
        while i < len(pieces):
            s, d = pieces[i]
            e = s + len(d)
            if s > rcv_nxt:
                break
            if e > rcv_nxt:
                d = d[rcv_nxt - s:]
                out.append(d)
                rcv_nxt = e
            i += 1
        if i:
            self.nbytes -= sum(len(d) for _, d in pieces[:i])
            del pieces[:i]
        return out

    def blocks(self, limit: int) -> list[tuple[int, int]]:
        """SACK blocks (unwrapped), the one with the latest arrival first (RFC 2018 4)."""
        ranges: list[list[int]] = []
        for s, d in self.pieces:
            e = s + len(d)
            if ranges and ranges[-1][1] == s:
                ranges[-1][1] = e
            else:
                ranges.append([s, e])
        first = [r for r in ranges if r[0] <= self.last < r[1]]
        rest = [r for r in reversed(ranges) if not (r[0] <= self.last < r[1])]
        return [(r[0], r[1]) for r in (first + rest)[:limit]]

    def clear(self) -> None:
        self.pieces.clear()
        self.nbytes = 0


class Scoreboard:
    """What the peer has SACKed above SND.UNA, as sorted merged [start, end) ranges."""

    __slots__ = ("ranges", "sacked")

    def __init__(self) -> None:
        self.ranges: list[list[int]] = []
        self.sacked = 0

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def add(self, start: int, end: int) -> None:
        ranges = self.ranges
        merged = [start, end]
        keep: list[list[int]] = []
        for r in ranges:
            if r[1] < merged[0] or r[0] > merged[1]:
                keep.append(r)
            else:
                merged[0] = min(merged[0], r[0])
                merged[1] = max(merged[1], r[1])
        keep.append(merged)
        keep.sort()
        self.ranges = keep
        self.sacked = sum(e - s for s, e in keep)

    def advance(self, snd_una: int) -> None:
        """Forget everything below the cumulative ACK."""
        ranges = self.ranges
        if not ranges or ranges[0][0] >= snd_una:
            return
        keep = []
        for s, e in ranges:
            if e <= snd_una:
                continue
            keep.append([max(s, snd_una), e])
        self.ranges = keep
        self.sacked = sum(e - s for s, e in keep)

    def clear(self) -> None:
        self.ranges = []
        self.sacked = 0

    @property
    def highest(self) -> int:
        return self.ranges[-1][1] if self.ranges else 0

    def lost_edge(self, threshold: int) -> int:
        """Bytes below the returned seq count as lost: at least `threshold` bytes are SACKed
        above them (RFC 6675 IsLost with DupThresh * SMSS bytes)."""
        acc = 0
        for s, e in reversed(self.ranges):
            acc += e - s
            if acc >= threshold:
                return e - (acc - threshold) if acc > threshold else s
        return 0

    def next_hole(self, seq: int, below: int) -> tuple[int, int] | None:
        """The first un-SACKed stretch at or above `seq` and below `below`: (start, end)."""
        for s, e in self.ranges:
            if seq < s:
                end = min(s, below)
                return (seq, end) if seq < end else None
            if seq < e:
                seq = e
        return None

    def unsacked_below(self, lo: int, hi: int) -> int:
        """Bytes in [lo, hi) not covered by a SACKed range."""
        if hi <= lo:
            return 0
        covered = 0
        for s, e in self.ranges:
            a, b = max(s, lo), min(e, hi)
            if a < b:
                covered += b - a
        return hi - lo - covered
