"""One TCP connection: the RFC 9293 state machine, sans-IO.

Sequence numbers are kept *unwrapped*: plain Python ints that grow past 2**32,
converted to 32 bits only on the wire and unwrapped on arrival against a nearby
reference (`_unwrap`). Comparisons are then ordinary `<`.

The send buffer is one bytearray holding the bytes from `snd_buf_seq` (first
unacknowledged data byte) on; a segment is a slice of it, so nothing per segment
is kept but the bytes. The receive side delivers in-order data straight to the
application callback; out-of-order data waits in a bounded `Reassembly`.

The in-order data / pure-ACK case in ESTABLISHED takes a short path ("header
prediction"): no option parsing beyond the aligned timestamp, no state switch.
"""

from __future__ import annotations

import errno
import struct
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vnet.stack.tcp import congestion
from vnet.stack.tcp.rto import RtoEstimator
from vnet.stack.tcp.sack import Reassembly, Scoreboard
from vnet.wire.checksum import ones_sum
from vnet.wire.errors import WireError
from vnet.wire.tcp import (
    ACK,
    FIN,
    HDR,
    PSH,
    RST,
    SYN,
    TS_ALIGNED,
    build_options,
    parse_options,
)

if TYPE_CHECKING:
    from vnet.stack.tcp.layer import Tcp

M32 = 0xFFFFFFFF
HALF = 0x80000000
_TS3 = struct.Struct("!III")  # NOP NOP kind len as one word, then TSval, TSecr

CLOSED = 0
LISTEN = 1
SYN_SENT = 2
SYN_RCVD = 3
ESTABLISHED = 4
FIN_WAIT_1 = 5
FIN_WAIT_2 = 6
CLOSE_WAIT = 7
CLOSING = 8
LAST_ACK = 9
TIME_WAIT = 10
STATE_NAMES = ("CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1",
               "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK", "TIME_WAIT")
#: states in which we may send data
_SEND_STATES = frozenset((ESTABLISHED, CLOSE_WAIT))
#: states in which arriving data is accepted
_RECV_STATES = frozenset((ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2))

DUPTHRESH = 3
MAX_WINDOW = 0x3FFFFFFF  # 2**30 - 1: the largest scaled window (RFC 7323 2.3)
#: TCP payload bytes per TSO segment at most (a whole number of MSS below this): the IP
#: total length field and the kernel's 64 KB GSO limit leave room for the headers
TSO_BYTES = 64000


def _unwrap(seq32: int, ref: int) -> int:
    """The unwrapped sequence number nearest to `ref` whose low 32 bits are `seq32`."""
    d = (seq32 - ref) & M32
    if d >= HALF:
        d -= 0x100000000
    return ref + d


def _noop(*_a: Any) -> None:
    return None


class LazyTimer:
    """A deadline with at most one runtime timer behind it.

    Moving the deadline later (the common case: RTO restarted on every ACK) only
    stores a number; the timer, when it fires early, re-arms itself for the new
    deadline. Only moving the deadline earlier costs a new runtime timer.
    """

    __slots__ = ("rt", "fn", "deadline", "_handle", "_at")

    def __init__(self, rt: Any, fn: Callable[[], None]) -> None:
        self.rt = rt
        self.fn = fn
        self.deadline: float | None = None
        self._handle: Any = None
        self._at = 0.0

    def set(self, deadline: float) -> None:
        self.deadline = deadline
        if self._handle is not None:
            if self._at <= deadline:
                return
            self._handle.cancel()
        self._at = deadline
        self._handle = self.rt.call_at(deadline, self._fire)

    def start(self, delay: float) -> None:
        self.set(self.rt.now() + delay)

    def stop(self) -> None:
        self.deadline = None

    def cancel(self) -> None:
        self.deadline = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    @property
    def armed(self) -> bool:
        return self.deadline is not None

    def _fire(self) -> None:
        self._handle = None
        d = self.deadline
        if d is None:
            return
        if d > self.rt.now() + 1e-9:
            self._at = d
            self._handle = self.rt.call_at(d, self._fire)
            return
        self.deadline = None
        self.fn()


class Connection:
    """A TCB. Users set the `on_*` callbacks; the `Tcp` layer feeds segments in."""

    def __init__(self, layer: Tcp, local: Any, lport: int, remote: Any, rport: int,
                 cfg: Any) -> None:
        self.layer = layer
        self.rt = layer.rt
        self.cfg = cfg
        self.local = local
        self.remote = remote
        self.lport = lport
        self.rport = rport
        self.key = (remote, rport, lport)
        self._rip = remote._ip  # the addresses as ints, for the layer's flow cache
        self._lip = local._ip
        self.v6 = remote.version == 6
        self._ip_send = layer.net.ip_send
        self._pseudo = ones_sum(local.packed + remote.packed) + 6
        self.state = CLOSED
        self.listener: Any = None
        self.error: int | None = None  # errno that ended the connection

        # application callbacks
        self.on_established: Callable[[], None] = _noop
        self.on_data: Callable[[bytes], None] | None = None
        self.on_eof: Callable[[], None] = _noop
        self.on_close: Callable[[int | None], None] = _noop
        self.on_writable: Callable[[], None] = _noop

        # send side
        self.iss = 0
        self.snd_una = 0
        self.snd_nxt = 0
        self.snd_max = 0
        self.snd_buf_seq = 0
        self.sndbuf = bytearray()
        self.snd_buf_limit = cfg.snd_buf
        self.snd_wnd = 0
        self.max_snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = 0
        self.snd_wscale = 0
        self.fin_queued = False
        self.fin_seq = -1  # unwrapped seq of our FIN once queued
        self.writable_waiting = False

        # receive side
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_adv = 0  # right edge of the window we advertised
        self.rcv_buf = cfg.rcv_buf
        self.rcv_wscale = 0
        self.rcvq: deque[bytes] = deque()  # delivered in order but not taken (paused / no reader)
        self.rcvq_bytes = 0
        self.reading = True
        self.ooo = Reassembly()
        self.ooo_fin = -1
        self.fin_received = False
        self.last_ack_sent = 0
        self.unacked_segs = 0
        self._ack_scheduled = False
        self._ack_every = cfg.ack_every

        # options
        self.mss = 536  # peer's MSS (for sending), before options
        self.eff_mss = 536  # payload bytes per full segment
        self.our_mss = 536
        # the path takes TSO (the host's interface is a TAP with offloads): data goes out
        # in segments of several MSS with a partial checksum, the kernel cuts them
        self.tso = False
        self.tso_segments = 0  # such segments sent
        self.ts_ok = False
        self.ts_recent = 0
        self.ts_offset = 0
        self.sack_ok = False
        self.ws_ok = False
        self._fast_hl = 20

        # loss recovery and congestion control
        self.rto = RtoEstimator(cfg.min_rto, cfg.max_rto)
        self.cc = congestion.make(cfg.cc, 536)
        self.scoreboard = Scoreboard()
        self.dupacks = 0
        self.in_recovery = False
        self.recover = 0
        self.rxt_next = 0  # next byte to retransmit in recovery
        self.retries = 0
        self.rtt_seq = -1  # Karn timing when timestamps are off
        self.rtt_time = 0.0

        # timers
        self.t_rto = LazyTimer(self.rt, self._on_rto)
        self.t_delack = LazyTimer(self.rt, self._on_delack)
        self.t_persist = LazyTimer(self.rt, self._on_persist)
        self.t_keepalive = LazyTimer(self.rt, self._on_keepalive)
        self.t_timewait = LazyTimer(self.rt, self._on_timewait)
        self.persist_backoff = 0
        self.keepalive = cfg.keepalive
        self.ka_probes = 0
        self.nodelay = cfg.nodelay

        # counters
        self.rx_segments = 0
        self.tx_segments = 0
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.retransmits = 0
        self.fast_retransmits = 0
        self.timeouts = 0
        self.rx_ooo = 0
        self.rx_dup = 0
        self.rx_dropped = 0
        self.challenge_acks = 0

    # ------------------------------------------------------------------ info
    @property
    def state_name(self) -> str:
        return STATE_NAMES[self.state]

    def __repr__(self) -> str:
        return (f"<Connection {self.local}:{self.lport} -> {self.remote}:{self.rport} "
                f"{self.state_name}>")

    def info(self) -> dict[str, Any]:
        return {
            "state": self.state_name, "local": f"{self.local}:{self.lport}",
            "remote": f"{self.remote}:{self.rport}", "mss": self.eff_mss,
            "cwnd": self.cc.cwnd, "ssthresh": min(self.cc.ssthresh, 1 << 31),
            "srtt_ms": None if self.rto.srtt is None else round(self.rto.srtt * 1000, 3),
            "rto_ms": round(self.rto.rto * 1000, 1), "snd_wnd": self.snd_wnd,
            "ts": self.ts_ok, "sack": self.sack_ok,
            "wscale": (self.snd_wscale, self.rcv_wscale) if self.ws_ok else None,
            "rx_segments": self.rx_segments, "tx_segments": self.tx_segments,
            "tso": self.tso, "tso_segments": self.tso_segments,
            "rx_bytes": self.rx_bytes, "tx_bytes": self.tx_bytes,
            "retransmits": self.retransmits, "fast_retransmits": self.fast_retransmits,
            "timeouts": self.timeouts, "rx_ooo": self.rx_ooo, "cc": self.cc.name,
        }

    # ------------------------------------------------------------------ setup
    def _ts_now(self) -> int:
        return (int(self.rt.now() * 1000) + self.ts_offset) & M32

    def _init_send(self, iss: int) -> None:
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss
        self.snd_buf_seq = iss + 1
        # per 4-tuple, not per connection: TSval keeps growing across incarnations, which
        # lets a TIME_WAIT peer tell a new SYN from an old duplicate (RFC 6191, RFC 7323 7.1)
        self.ts_offset = self.layer.ts_offset(self)

    def _set_our_mss(self) -> None:
        net = self.layer.net
        mtu = net.path_mtu(self.remote)
        self.our_mss = max(mtu - (60 if self.v6 else 40), 88)
        tso_ok = getattr(net, "tso_ok", None)  # a network layer without offloads lacks it
        self.tso = bool(tso_ok is not None and tso_ok(self.remote))

    def _negotiated(self, opts: Any) -> None:
        """Apply the options of the peer's SYN (or SYN-ACK) to this connection."""
        cfg = self.cfg
        peer_mss = opts.mss if opts.mss else (1220 if self.v6 else 536)
        self.mss = max(min(peer_mss, self.our_mss), 64)
        if opts.wscale is not None and cfg.window_scaling:
            self.ws_ok = True
            self.snd_wscale = opts.wscale
        else:
            self.ws_ok = False
            self.snd_wscale = 0
            self.rcv_wscale = 0
        self.ts_ok = opts.ts is not None and cfg.timestamps
        if self.ts_ok:
            self.ts_recent = opts.ts[0]
        self.sack_ok = opts.sack_perm and cfg.sack
        self.eff_mss = self.mss - (12 if self.ts_ok else 0)
        self._fast_hl = 32 if self.ts_ok else 20
        self.cc = congestion.make(self.cfg.cc, self.eff_mss)
        if self.rcv_wscale == 0 and self.ws_ok:
            self.rcv_wscale = self._wscale_for(self.rcv_buf)

    @staticmethod
    def _wscale_for(buf: int) -> int:
        s = 0
        while (0xFFFF << s) < buf and s < 14:
            s += 1
        return s

    def open_active(self, iss: int) -> None:
        self._set_our_mss()
        self._init_send(iss)
        if self.cfg.window_scaling:
            self.rcv_wscale = self._wscale_for(self.rcv_buf)
        self.state = SYN_SENT
        self._send_syn()
        self.t_rto.start(self.rto.rto)

    def open_passive(self, iss: int, irs: int, opts: Any) -> None:
        """From a SYN to a listener: go to SYN_RCVD and answer with SYN-ACK."""
        self._set_our_mss()
        self._init_send(iss)
        self.irs = irs
        self.rcv_nxt = irs + 1
        self.last_ack_sent = self.rcv_nxt
        self._negotiated(opts)
        self.state = SYN_RCVD
        self._send_syn()
        self.t_rto.start(self.rto.rto)

    def open_from_cookie(self, iss: int, irs: int, mss: int, wnd: int) -> None:
        """A SYN cookie came back valid: straight to ESTABLISHED, with what the cookie kept."""
        self._set_our_mss()
        self._init_send(iss)
        self.snd_una = self.snd_nxt = self.snd_max = iss + 1
        self.irs = irs
        self.rcv_nxt = irs + 1
        self.last_ack_sent = self.rcv_nxt
        self.mss = min(mss, self.our_mss)
        self.eff_mss = self.mss
        self.cc = congestion.make(self.cfg.cc, self.eff_mss)
        self.snd_wnd = wnd
        self.max_snd_wnd = wnd
        self.snd_wl1 = irs + 1
        self.snd_wl2 = iss + 1
        self.rcv_adv = self.rcv_nxt + min(self.rcv_buf, 0xFFFF)
        self.state = ESTABLISHED
        self._established()

    def _send_syn(self) -> None:
        cfg = self.cfg
        syn_ack = self.state == SYN_RCVD
        if syn_ack:
            opts = build_options(
                mss=self.our_mss,
                wscale=self.rcv_wscale if self.ws_ok else None,
                sack_perm=self.sack_ok,
                ts=(self._ts_now(), self.ts_recent) if self.ts_ok else None)
        else:
            opts = build_options(
                mss=self.our_mss,
                wscale=self.rcv_wscale if cfg.window_scaling else None,
                sack_perm=cfg.sack,
                ts=(self._ts_now(), 0) if cfg.timestamps else None)
        # the window in a SYN is never scaled (RFC 7323 2.2)
        win = min(self.rcv_buf, 0xFFFF)
        self.rcv_adv = self.rcv_nxt + win
        # state first: on a zero-delay path the answer arrives inside _emit
        if self.snd_max < self.iss + 1:
            self.snd_max = self.iss + 1
        self.snd_nxt = self.iss + 1
        self._emit(self.iss, SYN | ACK if syn_ack else SYN, win, opts, b"",
                   self.rcv_nxt if syn_ack else 0)

    # ------------------------------------------------------------------ output
    def _emit(self, seq: int, flags: int, win: int, opts: bytes, payload: bytes | bytearray,
              ack: int, tso: int = 0) -> None:
        hl = 20 + len(opts)
        seg = bytearray(HDR.pack(self.lport, self.rport, seq & M32, ack & M32, hl << 2, flags,
                                 win, 0, 0))
        if opts:
            seg += opts
        if payload:
            seg += payload
        n = len(seg)
        if tso:
            # partial checksum (the kernel completes it per segment): the folded
            # pseudo-header sum, TCP length included, not complemented
            v = self._pseudo + n
            v = (v & 0xFFFF) + (v >> 16)
            v = (v & 0xFFFF) + (v >> 16)
            seg[16] = v >> 8
            seg[17] = v & 0xFF
            self.tx_segments += 1
            sent = self._ip_send(self.remote, 6, seg, self.local, None, tso)
        else:
            # the Internet checksum in one pass (see vnet.wire.checksum.ones_sum), inlined
            v = int.from_bytes(seg, "big")
            if n & 1:
                v <<= 8
            v = (v + self._pseudo + n) % 0xFFFF
            c = ~(v or 0xFFFF) & 0xFFFF
            seg[16] = c >> 8
            seg[17] = c & 0xFF
            self.tx_segments += 1
            sent = self._ip_send(self.remote, 6, seg, self.local)
        if not sent and payload \
                and not self._pmtu_check_due:
            # refused: maybe too big for a path MTU learned meanwhile (e.g. by another
            # connection's ICMP error); look again once the current call is done
            self._pmtu_check_due = True
            self.rt.call_soon(self._pmtu_recheck)

    def _window(self) -> int:
        """The window field for the next segment; moves RCV.ADV (never backwards)."""
        space = self.rcv_buf - self.rcvq_bytes - self.ooo.nbytes
        nxt = self.rcv_nxt
        adv = self.rcv_adv
        edge = nxt + space
        # receiver silly-window avoidance (RFC 9293 3.8.6.2.2): grow the edge in big steps
        if edge > adv and (edge - adv >= min(self.rcv_buf >> 1, self.mss) or adv <= nxt):
            sh = self.rcv_wscale
            w = min((edge - nxt) >> sh, 0xFFFF)
            self.rcv_adv = nxt + (w << sh)
            return w
        if adv <= nxt:
            self.rcv_adv = nxt
            return 0
        sh = self.rcv_wscale
        w = min((adv - nxt + (1 << sh) - 1) >> sh, 0xFFFF)
        self.rcv_adv = nxt + (w << sh)
        return w

    def _opts(self, sack: bool) -> bytes:
        if self.ts_ok:
            opts = TS_ALIGNED.pack(1, 1, 8, 10, self._ts_now(), self.ts_recent)
            if sack and self.sack_ok and self.ooo:
                blocks = self.ooo.blocks(3)
                opts += b"\x01\x01" + bytes((5, 2 + 8 * len(blocks))) + b"".join(
                    (s & M32).to_bytes(4, "big") + (e & M32).to_bytes(4, "big") for s, e in blocks)
            return opts
        if sack and self.sack_ok and self.ooo:
            return build_options(sack=self.ooo.blocks(4))
        return b""

    def _send_ack(self) -> None:
        """A pure ACK (also a window update, a dup ACK with SACK blocks, a challenge ACK)."""
        if self.state < SYN_RCVD:
            return
        self.unacked_segs = 0
        self.t_delack.stop()
        win = self._window()
        self.last_ack_sent = self.rcv_nxt
        self._emit(self.snd_nxt, ACK, win, self._opts(True), b"", self.rcv_nxt)

    def _send_data(self, seq: int, n: int, flags: int) -> None:
        off = seq - self.snd_buf_seq
        self.unacked_segs = 0
        self.t_delack.deadline = None  # (LazyTimer.stop)
        win = self._window()
        rcv_nxt = self.last_ack_sent = self.rcv_nxt
        self.tx_bytes += n
        if self.ts_ok:
            opts = TS_ALIGNED.pack(1, 1, 8, 10, (int(self.rt.now() * 1000) + self.ts_offset) & M32,
                                   self.ts_recent)
        else:
            opts = b""
        if self.tso and n:
            if n > self.eff_mss:
                self.tso_segments += 1
            self._emit(seq, flags, win, opts, self.sndbuf[off:off + n], rcv_nxt, self.eff_mss)
        else:
            self._emit(seq, flags, win, opts, self.sndbuf[off:off + n], rcv_nxt)

    def _schedule_ack(self) -> None:
        """ACK at the end of the current receive burst (coalesces one per batch of reads)."""
        if not self._ack_scheduled:
            self._ack_scheduled = True
            self.rt.call_soon(self._flush_ack)

    def _flush_ack(self) -> None:
        self._ack_scheduled = False
        if self.unacked_segs and self.state >= ESTABLISHED:
            self._send_ack()

    def _on_delack(self) -> None:
        if self.unacked_segs and self.state >= ESTABLISHED:
            self._send_ack()

    def output(self) -> None:
        """Send whatever the windows allow: retransmissions first in recovery, then new data."""
        st = self.state
        if st != ESTABLISHED and st != CLOSE_WAIT and st != FIN_WAIT_1 and st != CLOSING \
                and st != LAST_ACK:
            return
        mss = self.eff_mss
        # largest segment: one MSS, or with TSO a whole number of MSS up to ~64 KB
        seg_max = (TSO_BYTES // mss) * mss if self.tso and mss > 0 else mss
        cc = self.cc
        sent = False
        if self.in_recovery:
            sent = self._recovery_output()
        data_end = self.snd_buf_seq + len(self.sndbuf)
        while True:
            nxt = self.snd_nxt
            avail = data_end - nxt
            if self.in_recovery and self.sack_ok:
                budget = cc.cwnd - self._pipe()
            else:
                budget = cc.cwnd - (nxt - self.snd_una)
                if self.in_recovery:
                    budget += self.dupacks * mss  # NewReno window inflation (RFC 6582)
            wnd = self.snd_una + self.snd_wnd - nxt
            if avail <= 0:
                if self.fin_queued and nxt == data_end and budget > 0 and wnd >= 0:
                    self.snd_nxt = nxt + 1
                    if self.snd_max < nxt + 1:
                        self.snd_max = nxt + 1
                    self._send_data(nxt, 0, FIN | ACK)
                    sent = True
                break
            n = avail if avail < seg_max else seg_max
            if wnd < n:
                n = wnd
            if budget < n:
                n = budget
            if n <= 0:
                break
            if n > mss and n < avail:
                n -= n % mss  # a TSO segment cut by a window: whole MSS only (no runt)
            if n < mss and n < avail:
                # limited by a window: sender SWS avoidance (RFC 9293 3.8.6.2.1)
                if n < (self.max_snd_wnd >> 1) and nxt != self.snd_una:
                    break
            elif n < mss and nxt != self.snd_una and not self.nodelay and not self.fin_queued:
                break  # Nagle: one small segment in flight at a time
            flags = ACK
            if n == avail:
                flags |= PSH
                if self.fin_queued:
                    flags |= FIN
            if self.rtt_seq < 0 and not self.ts_ok and nxt >= self.snd_max:
                self.rtt_seq = nxt + n
                self.rtt_time = self.rt.now()
            if nxt < self.snd_max:
                self.retransmits += 1
            seq = nxt
            nxt += n + (1 if flags & FIN else 0)
            self.snd_nxt = nxt
            if self.snd_max < nxt:
                self.snd_max = nxt
            self._send_data(seq, n, flags)
            sent = True
        if sent or self.snd_max > self.snd_una:
            if not self.t_rto.armed:
                self.t_rto.start(self.rto.rto)
        if self.snd_wnd == 0 and data_end > self.snd_nxt and self.snd_max == self.snd_una:
            if not self.t_persist.armed:
                self.t_persist.start(self._persist_interval())

    def _pipe(self) -> int:
        """RFC 6675 SetPipe: bytes believed in the network."""
        sb = self.scoreboard
        una = self.snd_una
        lost_edge = min(max(sb.lost_edge(DUPTHRESH * self.eff_mss), una), self.snd_max)
        outstanding = self.snd_max - una
        lost = sb.unsacked_below(una, lost_edge)
        retransmitted = sb.unsacked_below(una, min(self.rxt_next, lost_edge))
        return outstanding - sb.sacked - lost + retransmitted

    def _recovery_output(self) -> bool:
        """Retransmit what is lost, within cwnd (RFC 6675 NextSeg rule 1; NewReno one hole)."""
        mss = self.eff_mss
        sent = False
        if not self.sack_ok:
            # NewReno: the segment at SND.UNA, once per (partial) ACK
            if self.rxt_next <= self.snd_una:
                n = min(mss, self.snd_max - self.snd_una)
                self.rxt_next = self.snd_una + n
                self._retransmit(self.snd_una, n)
                sent = True
            return sent
        sb = self.scoreboard
        lost_edge = max(sb.lost_edge(DUPTHRESH * mss), self.snd_una + 1)
        while self.cc.cwnd - self._pipe() >= min(mss, 1):
            seq = max(self.rxt_next, self.snd_una)
            hole = sb.next_hole(seq, min(lost_edge, self.snd_max))
            if hole is None:
                break
            n = min(mss, hole[1] - hole[0])
            self.rxt_next = hole[0] + n
            self._retransmit(hole[0], n)
            sent = True
        return sent

    def _retransmit(self, seq: int, n: int) -> None:
        data_end = self.snd_buf_seq + len(self.sndbuf)
        flags = ACK
        if seq + n >= data_end:
            n = data_end - seq
            if self.fin_queued and self.fin_seq >= 0 and seq + n == self.fin_seq:
                flags |= FIN
        if n < 0:
            return
        self.retransmits += 1
        self._send_data(seq, n, flags | (PSH if n else 0))

    # ------------------------------------------------------------------ user calls
    def send(self, data: bytes | bytearray | memoryview) -> None:
        """Queue data. The buffer grows past its limit (the caller watches `writable`)."""
        if self.state not in (ESTABLISHED, CLOSE_WAIT, SYN_SENT, SYN_RCVD) or self.fin_queued:
            raise OSError(errno.EPIPE, "connection is closing or closed")
        self.sndbuf += data
        if len(self.sndbuf) >= self.snd_buf_limit:
            self.writable_waiting = True
        if self.state in _SEND_STATES:
            self.output()

    @property
    def send_buffered(self) -> int:
        return len(self.sndbuf)

    @property
    def writable(self) -> bool:
        return len(self.sndbuf) < self.snd_buf_limit

    def shutdown(self) -> None:
        """Half-close: send FIN after the queued data."""
        if self.fin_queued:
            return
        st = self.state
        if st in (SYN_SENT, LISTEN, CLOSED):
            self._terminate(None)
            return
        self.fin_queued = True
        self.fin_seq = self.snd_buf_seq + len(self.sndbuf)
        if st == ESTABLISHED or st == SYN_RCVD:
            self.state = FIN_WAIT_1
        elif st == CLOSE_WAIT:
            self.state = LAST_ACK
        if self.state in (FIN_WAIT_1, LAST_ACK):
            self.output()

    orphan = False

    def close(self) -> None:
        """Close for good: FIN after the queued data, like `shutdown`, and the connection
        no longer waits forever in FIN_WAIT_2 for a peer that never closes (`fin_timeout`)."""
        self.orphan = True
        self.shutdown()
        if self.state == FIN_WAIT_2:
            self.t_timewait.start(self.cfg.fin_timeout)

    def abort(self) -> None:
        """Reset the connection (send RST) and forget it."""
        if self.state in (SYN_RCVD, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
            self._emit(self.snd_nxt, RST | ACK, 0, b"", b"", self.rcv_nxt)
        self._terminate(errno.ECONNABORTED)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True
        self.rt.call_soon(self._drain_rcvq)

    def _drain_rcvq(self) -> None:
        if not self.reading or self.on_data is None:
            return
        before = self._window_space()
        while self.rcvq and self.reading:
            d = self.rcvq.popleft()
            self.rcvq_bytes -= len(d)
            self.on_data(d)
        self._maybe_window_update(before)
        self._after_drain()

    def _after_drain(self) -> None:
        if not self.rcvq:
            if self.fin_received and self._eof_pending:
                self._eof_pending = False
                self.on_eof()
            if self._close_pending:
                self._close_pending = False
                self.on_close(self.error)

    _eof_pending = False
    _close_pending = False

    def _notify_close(self, err: int | None) -> None:
        """on_close, but only after the application has had all in-order data (and EOF)."""
        if err is None and self.rcvq:
            self._close_pending = True
            return
        self._eof_pending = False
        self.on_close(err)

    def read(self, limit: int = -1) -> bytes:
        """Take buffered data (when no `on_data` callback is set)."""
        before = self._window_space()
        data = b"".join(self.rcvq)
        self.rcvq.clear()
        if 0 <= limit < len(data):
            self.rcvq.append(data[limit:])
            data = data[:limit]
        self.rcvq_bytes -= len(data)
        self._maybe_window_update(before)
        self._after_drain()
        return data

    def _window_space(self) -> int:
        return self.rcv_adv - self.rcv_nxt

    def _maybe_window_update(self, before: int) -> None:
        """After the application took data: tell the peer if the window opened a lot."""
        if self.state not in _RECV_STATES:
            return
        space = self.rcv_buf - self.rcvq_bytes - self.ooo.nbytes
        if space - before >= min(self.rcv_buf >> 1, 2 * self.mss) or (before == 0 and space > 0):
            self._send_ack()

    # ------------------------------------------------------------------ input
    def segment(self, buf: Any, seq: int, ack: int, flags: int, win: int, hl: int) -> None:
        """A checksummed segment for this connection (the layer parsed the fixed header)."""
        self.rx_segments += 1
        if self.keepalive:
            self.ka_probes = 0
            self.t_keepalive.start(self.cfg.keepalive_idle)
        # header prediction: ESTABLISHED, in order, only ACK (maybe PSH), the usual options,
        # nothing out of order held and no loss recovery running
        if (self.state != ESTABLISHED or (flags & 0x37) != ACK or hl != self._fast_hl
                or self.ooo.pieces or self.in_recovery):
            return self._slow(buf, seq, ack, flags, win, hl)
        rcv_nxt = self.rcv_nxt
        if seq != rcv_nxt & M32:
            return self._slow(buf, seq, ack, flags, win, hl)
        if hl == 32:
            pre, tsval, tsecr = _TS3.unpack_from(buf, 20)
            if pre != 0x0101080A or (tsval - self.ts_recent) & M32 >= HALF:
                return self._slow(buf, seq, ack, flags, win, hl)  # other layout, or PAWS
            if rcv_nxt <= self.last_ack_sent:
                self.ts_recent = tsval
        else:
            tsecr = 0
        n = len(buf) - hl
        una = self.snd_una
        wnd = win << self.snd_wscale
        if ack == una & M32:
            # nothing newly acknowledged: in-order data (the bulk receiver's case)
            if n == 0 or n > self.rcv_adv - rcv_nxt:
                return self._slow(buf, seq, ack, flags, win, hl)  # dup ACK, window update
            if wnd != self.snd_wnd:
                self.snd_wnd = wnd
                self.snd_wl1 = rcv_nxt
                if wnd > self.max_snd_wnd:
                    self.max_snd_wnd = wnd
        else:
            d = (ack - una) & M32
            if d >= HALF or una + d > self.snd_max or n > self.rcv_adv - rcv_nxt:
                return self._slow(buf, seq, ack, flags, win, hl)
            self._ack_advance(una + d, tsecr)
            self.snd_wnd = wnd
            self.snd_wl1 = rcv_nxt
            self.snd_wl2 = una + d
            if wnd > self.max_snd_wnd:
                self.max_snd_wnd = wnd
            if not n:
                self.output()
                return None
        # deliver (inlined _deliver)
        data = bytes(buf[hl:])
        self.rcv_nxt = rcv_nxt + n
        self.rx_bytes += n
        if self.reading and self.on_data is not None and not self.rcvq:
            self.on_data(data)
        else:
            self.rcvq.append(data)
            self.rcvq_bytes += n
        u = self.unacked_segs + 1
        self.unacked_segs = u
        if u >= self._ack_every:
            if not self._ack_scheduled:
                self._ack_scheduled = True
                self.rt.call_soon(self._flush_ack)
        elif self.t_delack.deadline is None:
            self.t_delack.start(self.cfg.delack)
        if ack != una & M32:
            self.output()
        return None

    def _deliver(self, data: bytes) -> None:
        n = len(data)
        self.rcv_nxt += n
        self.rx_bytes += n
        if self.reading and self.on_data is not None and not self.rcvq:
            self.on_data(data)
        else:
            self.rcvq.append(data)
            self.rcvq_bytes += n

    def _ack_advance(self, ack: int, tsecr: int) -> None:
        """ACK moves SND.UNA forward: free the buffer, time the RTT, grow cwnd."""
        una = self.snd_una
        acked = ack - una
        self.snd_una = ack
        if self.snd_nxt < ack:
            self.snd_nxt = ack
        # bytes of data (not SYN/FIN) now acknowledged
        drop = min(ack, self.snd_buf_seq + len(self.sndbuf)) - self.snd_buf_seq
        if drop > 0:
            del self.sndbuf[:drop]
            self.snd_buf_seq += drop
        now = self.rt.now()
        rtt = None
        if tsecr and self.ts_ok:
            rtt = (((int(now * 1000) + self.ts_offset) - tsecr) & M32) / 1000.0
            if rtt < 60:
                # ExpectedSamples = ceil(FlightSize / (2 SMSS)) (RFC 7323 appendix G)
                self.rto.sample(rtt, (self.snd_max - una) // (2 * self.eff_mss) + 1)
            else:
                rtt = None
        elif self.rtt_seq >= 0 and ack >= self.rtt_seq:
            rtt = now - self.rtt_time
            self.rto.sample(rtt)
            self.rtt_seq = -1
        elif self.rto.backoffs:
            self.rto.reset_backoff()
        self.retries = 0
        if self.scoreboard.ranges:
            self.scoreboard.advance(ack)
        if self.in_recovery:
            if ack >= self.recover:
                self.in_recovery = False
                self.dupacks = 0
                self.cc.on_recovered(self.snd_max - ack)
            elif not self.sack_ok:
                # partial ACK (RFC 6582 3.2 (5)): retransmit the next hole, deflate
                self.dupacks = max(self.dupacks - acked // max(self.eff_mss, 1), 0)
                self.rxt_next = ack
        else:
            self.dupacks = 0
            self.cc.on_ack(acked, now, self.rto.srtt)
        if ack >= self.snd_max:
            self.t_rto.deadline = None  # (LazyTimer.stop)
            self.persist_backoff = 0
        else:
            self.t_rto.set(now + self.rto.rto)
        if self.writable_waiting and len(self.sndbuf) < self.snd_buf_limit >> 1:
            self.writable_waiting = False
            self.on_writable()

    def _slow(self, buf: Any, seq: int, ack: int, flags: int, win: int, hl: int) -> None:
        """Everything header prediction does not cover (RFC 9293 3.10.7)."""
        st = self.state
        if hl > 20:
            try:
                opts = parse_options(buf, 20, hl)
            except WireError:
                self.rx_dropped += 1
                self.layer.rx_bad_options += 1
                return
        else:
            opts = None
        if st == SYN_SENT:
            return self._in_syn_sent(buf, seq, ack, flags, win, hl, opts)
        if st == CLOSED or st == LISTEN:
            return None
        datalen = len(buf) - hl
        sseq = _unwrap(seq, self.rcv_nxt)
        rst = flags & RST
        ts = opts.ts if opts is not None else None
        nxt = self.rcv_nxt
        if st == TIME_WAIT and flags & SYN and not flags & ACK and not rst:
            # a new incarnation (RFC 9293 3.6.1 / RFC 6191): with timestamps on both
            # sides a newer TSval decides, else a higher sequence number
            if ts is not None and self.ts_ok:
                newer = (ts[0] - self.ts_recent) & M32 < HALF and ts[0] != self.ts_recent
            else:
                newer = sseq > nxt
            if newer and self.layer.reopen_from_time_wait(self, buf, seq, ack, flags, win, hl):
                return None
        # PAWS (RFC 7323 5.3)
        if self.ts_ok and ts is not None and not rst:
            if (ts[0] - self.ts_recent) & M32 >= HALF and st != SYN_RCVD:
                self.rx_dropped += 1
                self._send_ack()
                return None
        # sequence acceptability (RFC 9293 3.10.7.4, first)
        seglen = datalen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        rcv_wnd = max(self.rcv_adv - self.rcv_nxt, 0)
        if seglen == 0:
            ok = (sseq == nxt) if rcv_wnd == 0 else (nxt <= sseq < nxt + rcv_wnd)
        else:
            ok = rcv_wnd > 0 and (nxt <= sseq < nxt + rcv_wnd
                                  or nxt <= sseq + seglen - 1 < nxt + rcv_wnd)
        if not ok:
            if not rst:
                self.rx_dup += 1
                if datalen and sseq < nxt:
                    self._send_ack()  # old duplicate: re-ACK at once
                else:
                    self._send_ack()
            return None
        if ts is not None and self.ts_ok and sseq <= self.last_ack_sent:
            self.ts_recent = ts[0]
        # RST (RFC 9293 3.10.7.4 second, with RFC 5961 3.2)
        if rst:
            if sseq != nxt:
                self.challenge_acks += 1
                self._send_ack()
                return None
            if st == SYN_RCVD and self.listener is not None:
                self._terminate(errno.ECONNREFUSED, quiet=True)
            elif st in (SYN_RCVD, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT):
                self._terminate(errno.ECONNRESET if st != SYN_RCVD else errno.ECONNREFUSED)
            else:
                self._terminate(None)
            return None
        # SYN in a synchronized state: challenge ACK (RFC 5961 4.2)
        if flags & SYN:
            if st == SYN_RCVD and sseq == self.irs:
                self._send_syn()  # our SYN-ACK got lost: the peer repeats its SYN
                return None
            self.challenge_acks += 1
            self._send_ack()
            return None
        if not flags & ACK:
            return None
        # trim to the window
        if datalen:
            if sseq < nxt:
                cut = nxt - sseq
                if cut >= datalen:
                    # only duplicate bytes (maybe with a new FIN)
                    hl += datalen
                    datalen = 0
                else:
                    hl += cut
                    datalen -= cut
                sseq = nxt
            right = nxt + rcv_wnd
            if sseq + datalen > right:
                datalen = max(right - sseq, 0)
                flags &= ~FIN
        # ACK (third)
        sack = opts.sack if opts is not None else ()
        if st == SYN_RCVD:
            aack = _unwrap(ack, self.snd_una)
            if self.snd_una < aack <= self.snd_max:
                self.snd_wnd = win << self.snd_wscale
                self.max_snd_wnd = self.snd_wnd
                self.snd_wl1 = sseq
                self.snd_wl2 = aack
                self.state = ESTABLISHED
                self._ack_advance(aack, ts[1] if ts else 0)
                self._established()
                st = self.state
                if st == CLOSED:
                    return None
            else:
                self._emit(ack, RST, 0, b"", b"", 0)
                return None
        else:
            aack = _unwrap(ack, self.snd_una)
            if aack > self.snd_max:
                self._send_ack()  # acks something not yet sent
                return None
            if aack < self.snd_una - max(self.max_snd_wnd, 65535):
                self.challenge_acks += 1
                self._send_ack()  # RFC 5961 5.2
                return None
            wnd = win << self.snd_wscale
            if aack > self.snd_una:
                if sack and self.sack_ok:
                    self._take_sack(sack)
                self._ack_advance(aack, ts[1] if ts else 0)
            elif aack == self.snd_una:
                if self.sack_ok and sack:
                    self._take_sack(sack)
                if not wnd and not self.snd_wnd:
                    self.retries = 0  # the peer answers our probes: its window is just shut
                if (datalen == 0 and not flags & FIN and wnd == self.snd_wnd
                        and self.snd_max > self.snd_una):
                    self._dupack()
            # window update (RFC 9293 3.10.7.4 fifth, SND.WL1/WL2)
            if self.snd_wl1 < sseq or (self.snd_wl1 == sseq and self.snd_wl2 <= aack):
                if wnd and not self.snd_wnd:
                    self.t_persist.stop()
                    self.persist_backoff = 0
                self.snd_wnd = wnd
                self.snd_wl1 = sseq
                self.snd_wl2 = aack
                if wnd > self.max_snd_wnd:
                    self.max_snd_wnd = wnd
            fin_acked = self.fin_queued and self.snd_una > self.fin_seq
            if st == FIN_WAIT_1 and fin_acked:
                self.state = st = FIN_WAIT_2
                if self.orphan:
                    self.t_timewait.start(self.cfg.fin_timeout)
            elif st == CLOSING and fin_acked:
                self._enter_time_wait()
                return None
            elif st == LAST_ACK and fin_acked:
                self._terminate(None)
                return None
            elif st == TIME_WAIT:
                if flags & FIN:
                    self._send_ack()
                    self.t_timewait.start(2 * self.cfg.msl)
                return None
        # data (seventh)
        fin = flags & FIN
        if datalen and st in _RECV_STATES:
            data = bytes(buf[hl:hl + datalen])
            if sseq == self.rcv_nxt:
                self._deliver(data)
                if self.ooo:
                    for piece in self.ooo.pop_ready(self.rcv_nxt):
                        self._deliver(piece)
                    self._send_ack()  # filled (part of) a hole: ACK at once (RFC 5681 4.2)
                else:
                    self.unacked_segs += 1
                    if self.unacked_segs >= self.cfg.ack_every:
                        self._schedule_ack()
                    elif not self.t_delack.armed:
                        self.t_delack.start(self.cfg.delack)
            else:
                self.rx_ooo += 1
                self.ooo.add(sseq, data)
                self._send_ack()  # out of order: immediate dup ACK with SACK blocks
        # FIN (eighth), possibly one that arrived ahead of data still missing
        if st in _RECV_STATES and not self.fin_received:
            if fin:
                fseq = sseq + datalen
                if fseq == self.rcv_nxt:
                    self._fin_arrived()
                elif fseq > self.rcv_nxt:
                    self.ooo_fin = fseq
                    if not datalen:
                        self._send_ack()
            elif self.ooo_fin >= 0 and self.ooo_fin == self.rcv_nxt:
                self.ooo_fin = -1
                self._fin_arrived()
        if self.state in _SEND_STATES or self.state in (FIN_WAIT_1, CLOSING, LAST_ACK):
            self.output()
        return None

    def _fin_arrived(self) -> None:
        self.fin_received = True
        self.rcv_nxt += 1
        st = self.state
        self._send_ack()
        if st in (SYN_RCVD, ESTABLISHED):
            self.state = CLOSE_WAIT
        elif st == FIN_WAIT_1:
            if self.fin_queued and self.snd_una > self.fin_seq:
                self._enter_time_wait()
            else:
                self.state = CLOSING
        elif st == FIN_WAIT_2:
            self._enter_time_wait()
        if self.rcvq:
            self._eof_pending = True
        else:
            self.on_eof()

    def _take_sack(self, blocks: tuple[tuple[int, int], ...]) -> None:
        una = self.snd_una
        for left, right in blocks:
            s = _unwrap(left, una)
            e = _unwrap(right, una)
            # ignore D-SACK and nonsense (RFC 2883 / RFC 6675 3)
            if una < s < e <= self.snd_max:
                self.scoreboard.add(s, e)

    def _dupack(self) -> None:
        self.dupacks += 1
        if self.in_recovery:
            if not self.sack_ok:
                return  # inflation is accounted in output()
            return
        lost = self.dupacks >= DUPTHRESH
        if self.sack_ok and self.scoreboard:
            lost = lost or self.scoreboard.lost_edge(DUPTHRESH * self.eff_mss) > self.snd_una
        if lost and (self.snd_una > self.recover or self.recover == 0 or self.snd_una == self.recover):
            # fast retransmit, enter fast recovery (RFC 6582 3.2 (2), RFC 6675 5)
            self.in_recovery = True
            self.recover = self.snd_max
            self.fast_retransmits += 1
            self.cc.on_loss(self.snd_max - self.snd_una, self.rt.now())
            self.rxt_next = self.snd_una
            self.t_rto.start(self.rto.rto)
            if not self.sack_ok:
                self.dupacks = DUPTHRESH

    def _in_syn_sent(self, buf: Any, seq: int, ack: int, flags: int, win: int, hl: int,
                     opts: Any) -> None:
        from vnet.wire.tcp import NO_OPTIONS
        if opts is None:
            opts = NO_OPTIONS
        if flags & ACK:
            aack = _unwrap(ack, self.iss)
            if aack <= self.iss or aack > self.snd_max:
                if not flags & RST:
                    self._emit(ack, RST, 0, b"", b"", 0)
                return None
            if flags & RST:
                self._terminate(errno.ECONNREFUSED)
                return None
        elif flags & RST:
            return None
        if not flags & SYN:
            return None
        self.irs = seq
        self.rcv_nxt = seq + 1
        self.last_ack_sent = self.rcv_nxt
        rcv_wscale = self.rcv_wscale
        self._negotiated(opts)
        if self.ws_ok:
            self.rcv_wscale = rcv_wscale
        if flags & ACK:
            self.snd_wnd = win << self.snd_wscale
            self.max_snd_wnd = self.snd_wnd
            self.snd_wl1 = self.rcv_nxt
            self.snd_wl2 = self.iss + 1
            self.state = ESTABLISHED
            self._ack_advance(self.iss + 1, opts.ts[1] if opts.ts else 0)
            if len(buf) > hl:
                self._deliver(bytes(buf[hl:]))
            before = self.tx_segments
            self._established()
            if self.tx_segments == before and self.state == ESTABLISHED:
                self._send_ack()
        else:
            # simultaneous open (RFC 9293 3.5 figure 8)
            self.state = SYN_RCVD
            self._send_syn()
        return None

    def _established(self) -> None:
        if self.listener is not None:
            self.layer.listener_accept(self)
        if self.keepalive:
            self.t_keepalive.start(self.cfg.keepalive_idle)
        self.on_established()
        if self.rcvq and self.on_data is not None:
            self._drain_rcvq()  # data that came before the application was ready
        if self.state in _SEND_STATES or self.state == FIN_WAIT_1:
            self.output()

    # ------------------------------------------------------------------ timers
    def _on_rto(self) -> None:
        st = self.state
        if st in (CLOSED, LISTEN, TIME_WAIT):
            return
        if self.snd_una >= self.snd_max and st not in (SYN_SENT, SYN_RCVD):
            return
        self.retries += 1
        self.timeouts += 1
        limit = self.cfg.syn_retries if st in (SYN_SENT, SYN_RCVD) else self.cfg.max_retries
        if self.retries > limit:
            self._terminate(errno.ETIMEDOUT)
            return
        self.rto.backoff()
        self.rtt_seq = -1  # Karn: no timing across a retransmission
        if st in (SYN_SENT, SYN_RCVD):
            self.snd_nxt = self.iss
            self._send_syn()
            self.t_rto.start(self.rto.rto)
            return
        flight = self.snd_max - self.snd_una
        self.cc.on_timeout(flight, self.rt.now())
        self.in_recovery = False
        self.recover = self.snd_max
        self.dupacks = 0
        self.scoreboard.clear()  # the receiver may renege (RFC 2018 8)
        self.snd_nxt = self.snd_una
        self.t_rto.start(self.rto.rto)
        if self.snd_wnd == 0:
            # the peer's window is closed: probe rather than go back N
            self._send_probe()
            return
        self.output()

    def _persist_interval(self) -> float:
        return min(self.rto.rto * (1 << self.persist_backoff), 60.0)

    def _on_persist(self) -> None:
        if self.state not in _SEND_STATES and self.state not in (FIN_WAIT_1, LAST_ACK, CLOSING):
            return
        data_end = self.snd_buf_seq + len(self.sndbuf)
        if self.snd_wnd or data_end <= self.snd_nxt:
            return
        self._send_probe()
        self.persist_backoff = min(self.persist_backoff + 1, 12)
        self.t_persist.start(self._persist_interval())

    def _send_probe(self) -> None:
        """Zero-window probe (RFC 9293 3.8.6.1). Like Linux, an old sequence number
        (SND.UNA - 1) without data: always answered with an ACK carrying the current
        window, and never a byte the receiver might accept but we have not accounted."""
        self._emit(self.snd_una - 1, ACK, self._window(), self._opts(False), b"",
                   self.rcv_nxt)

    def _on_keepalive(self) -> None:
        if self.state not in (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_2) or not self.keepalive:
            return
        if self.ka_probes >= self.cfg.keepalive_probes:
            self._terminate(errno.ETIMEDOUT)
            return
        self.ka_probes += 1
        # SEG.SEQ = SND.NXT-1, no data: the peer answers with an ACK (RFC 9293 3.8.4)
        self._emit(self.snd_nxt - 1, ACK, self._window(), self._opts(False), b"", self.rcv_nxt)
        self.t_keepalive.start(self.cfg.keepalive_interval)

    def set_keepalive(self, on: bool = True) -> None:
        self.keepalive = on
        if on and self.state == ESTABLISHED:
            self.t_keepalive.start(self.cfg.keepalive_idle)
        elif not on:
            self.t_keepalive.cancel()

    def _enter_time_wait(self) -> None:
        self.state = TIME_WAIT
        self._stop_timers()
        self.sndbuf = bytearray()
        self.ooo.clear()
        self.t_timewait.start(2 * self.cfg.msl)
        self.layer.time_wait_entered(self)
        self._notify_close(None)

    def _on_timewait(self) -> None:
        self._terminate(None)

    def _stop_timers(self) -> None:
        for t in (self.t_rto, self.t_delack, self.t_persist, self.t_keepalive):
            t.cancel()

    def _terminate(self, err: int | None, quiet: bool = False) -> None:
        """Go to CLOSED and leave the layer's tables."""
        was = self.state
        self.state = CLOSED
        self._stop_timers()
        self.t_timewait.cancel()
        self.error = err
        self.sndbuf = bytearray()
        self.ooo.clear()
        self.layer.forget(self, was)
        if was != TIME_WAIT and not quiet:
            self._notify_close(err)

    # ------------------------------------------------------------------ ICMP
    _pmtu_check_due = False

    def _pmtu_recheck(self) -> None:
        self._pmtu_check_due = False
        if self.state != CLOSED:
            self.icmp_error("ptb")

    def icmp_error(self, kind: str) -> None:
        """An ICMP error quoting one of our segments (RFC 5927 / RFC 1122 4.2.3.9)."""
        if kind == "ptb":
            self._set_our_mss()
            old = self.eff_mss
            self.mss = min(self.mss, self.our_mss)
            self.eff_mss = self.mss - (12 if self.ts_ok else 0)
            if self.eff_mss < old:
                self.cc.set_mss(self.eff_mss)
                # resend what was in flight with the smaller size (not a congestion signal)
                self.snd_nxt = self.snd_una
                self.output()
        elif kind == "hard" and self.state in (SYN_SENT, SYN_RCVD) and self.listener is None:
            self._terminate(errno.ECONNREFUSED if self.state == SYN_SENT else errno.EHOSTUNREACH)
