"""The TCP layer of a host: demultiplexing, listeners (bounded SYN backlog, SYN cookies),
RSTs for segments nobody wants, ISNs (RFC 6528), ephemeral ports (RFC 6056).

It sits on a "network layer" object (the Host, or a test double) with:
`register_transport(proto, handler)`, `register_error_handler(proto, handler)`,
`ip_send(dst, proto, payload, src=None, hop_limit=None)`, `source_address_for(dst)`,
`path_mtu(dst)` and `rt` (the Runtime).
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vnet.stack.tcp.connection import (
    CLOSED,
    ESTABLISHED,
    SYN_RCVD,
    TIME_WAIT,
    Connection,
)
from vnet.wire.checksum import ones_sum
from vnet.wire.errors import WireError
from vnet.wire.tcp import ACK, FIN, HDR, RST, SYN, build, build_options, parse_options

M32 = 0xFFFFFFFF
#: MSS values a SYN cookie can carry (3 bits; RFC 4987 3.6 style)
COOKIE_MSS = (216, 536, 1024, 1220, 1380, 1440, 1460, 8960)
COOKIE_TICK = 64.0  # seconds per cookie time counter step


@dataclass
class TcpConfig:
    """Per-layer defaults; every connection copies a reference."""

    rcv_buf: int = 4 << 20
    snd_buf: int = 4 << 20
    cc: str = "cubic"
    window_scaling: bool = True
    timestamps: bool = True
    sack: bool = True
    nodelay: bool = False
    ack_every: int = 2  # ACK every other full segment (RFC 5681 4.2)
    delack: float = 0.04
    min_rto: float = 0.2
    max_rto: float = 60.0
    max_retries: int = 15
    syn_retries: int = 6
    msl: float = 30.0
    fin_timeout: float = 60.0  # FIN_WAIT_2 limit after close() (Linux tcp_fin_timeout)
    keepalive: bool = False
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_probes: int = 9
    syn_backlog: int = 128
    syncookies: bool = True
    max_connections: int = 16384
    max_time_wait: int = 4096


class Listener:
    """A passive open on a port. `on_accept(conn)` runs when a connection is established."""

    def __init__(self, layer: Tcp, port: int, on_accept: Callable[[Connection], None],
                 addr: Any = None, backlog: int | None = None) -> None:
        self.layer = layer
        self.port = port
        self.addr = addr
        self.on_accept = on_accept
        self.backlog = backlog if backlog is not None else layer.cfg.syn_backlog
        self.half_open = 0
        self.accepted = 0
        self.syn_dropped = 0
        self.cookies_sent = 0
        self.cookies_ok = 0

    def close(self) -> None:
        self.layer.listeners.pop(self.port, None)

    def info(self) -> dict[str, Any]:
        return {"port": self.port, "addr": None if self.addr is None else str(self.addr),
                "half_open": self.half_open, "backlog": self.backlog,
                "accepted": self.accepted, "syn_dropped": self.syn_dropped,
                "cookies_sent": self.cookies_sent, "cookies_ok": self.cookies_ok}


class Tcp:
    def __init__(self, net: Any, cfg: TcpConfig | None = None, **kw: Any) -> None:
        self.net = net
        self.rt = net.rt
        self.cfg = cfg if cfg is not None else TcpConfig(**kw)
        self.conns: dict[tuple, Connection] = {}
        self.listeners: dict[int, Listener] = {}
        self.time_wait = 0
        self._secret = self.rt.rng.getrandbits(128).to_bytes(16, "big")
        self._cookie_secret = self.rt.rng.getrandbits(128).to_bytes(16, "big")
        self._pseudo_cache: dict[tuple, int] = {}
        self._busy = False
        self._last: Connection | None = None
        # counters
        self.rx_segments = 0
        self.rx_bad = 0
        self.rx_bad_checksum = 0
        self.rx_bad_options = 0
        self.rx_no_socket = 0
        self.tx_rst = 0
        self.syn_dropped = 0
        self.conn_dropped = 0
        net.register_transport(6, self.receive)
        if hasattr(net, "register_error_handler"):
            net.register_error_handler(6, self.icmp_error)

    # ------------------------------------------------------------------ API
    def connect(self, dst: Any, port: int, src: Any = None, sport: int | None = None,
                **opts: Any) -> Connection:
        """Active open. Returns the connection in SYN_SENT; set its callbacks right away."""
        dst = ipaddress.ip_address(dst)
        if src is None:
            src = self.net.source_address_for(dst)
            if src is None:
                raise OSError(errno.ENETUNREACH, f"no route to {dst}")
        else:
            src = ipaddress.ip_address(src)
        if len(self.conns) >= self.cfg.max_connections:
            raise OSError(errno.EAGAIN, "too many TCP connections")
        if sport is None:
            sport = self._ephemeral(dst, port)
        elif (dst, port, sport) in self.conns:
            raise OSError(errno.EADDRINUSE, f"{src}:{sport} -> {dst}:{port} exists")
        conn = Connection(self, src, sport, dst, port, self._conn_cfg(opts))
        self.conns[conn.key] = conn
        conn.open_active(self._isn(src, sport, dst, port))
        return conn

    def listen(self, port: int, on_accept: Callable[[Connection], None], addr: Any = None,
               backlog: int | None = None) -> Listener:
        if port in self.listeners:
            raise OSError(errno.EADDRINUSE, f"TCP port {port} is already listening")
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range 1..65535")
        lst = Listener(self, port, on_accept,
                       None if addr is None else ipaddress.ip_address(addr), backlog)
        self.listeners[port] = lst
        return lst

    def _conn_cfg(self, opts: dict[str, Any]) -> TcpConfig:
        if not opts:
            return self.cfg
        base = dict(self.cfg.__dict__)
        for k in opts:
            if k not in base:
                raise TypeError(f"unknown TCP option {k!r}")
        base.update(opts)
        return TcpConfig(**base)

    def _ephemeral(self, dst: Any, port: int) -> int:
        rng = self.rt.rng
        for _ in range(64):
            p = rng.randrange(49152, 65536)
            if (dst, port, p) not in self.conns and p not in self.listeners:
                return p
        for p in range(49152, 65536):
            if (dst, port, p) not in self.conns and p not in self.listeners:
                return p
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port")

    def _isn(self, src: Any, sport: int, dst: Any, dport: int) -> int:
        # RFC 6528: ISN = M + F(4-tuple, secret), M a 4 microsecond clock
        h = hashlib.blake2s(src.packed + dst.packed + struct.pack("!HH", sport, dport),
                            key=self._secret, digest_size=4).digest()
        return (int(self.rt.now() * 250000) + int.from_bytes(h, "big")) & M32

    def ts_offset(self, conn: Connection) -> int:
        """Timestamp clock offset for a 4-tuple (RFC 7323 7.1: random per connection pair)."""
        h = hashlib.blake2s(b"ts" + conn.local.packed + conn.remote.packed
                            + struct.pack("!HH", conn.lport, conn.rport),
                            key=self._secret, digest_size=4).digest()
        return int.from_bytes(h, "big")

    def stats(self) -> dict[str, Any]:
        return {
            "connections": len(self.conns), "time_wait": self.time_wait,
            "listeners": [lst.info() for lst in self.listeners.values()],
            "rx_segments": self.rx_segments, "rx_bad": self.rx_bad,
            "rx_bad_checksum": self.rx_bad_checksum, "rx_bad_options": self.rx_bad_options,
            "rx_no_socket": self.rx_no_socket, "tx_rst": self.tx_rst,
            "syn_dropped": self.syn_dropped,
        }

    # ------------------------------------------------------------------ input
    def _pseudo(self, src: Any, dst: Any) -> int:
        key = (src, dst)
        p = self._pseudo_cache.get(key)
        if p is None:
            p = ones_sum(src.packed + dst.packed) + 6
            if len(self._pseudo_cache) > 1024:
                self._pseudo_cache.clear()
            self._pseudo_cache[key] = p
        return p

    def receive(self, meta: Any, buf: Any) -> None:
        if self._busy:
            # re-entered through a zero-delay path (our own output reached the peer and its
            # answer came straight back): finish the outer segment first
            self.rt.call_soon(self.receive, meta, bytes(buf))
            return
        self._busy = True
        try:
            self._receive(meta, buf)
        finally:
            self._busy = False

    def _receive(self, meta: Any, buf: Any) -> None:
        self.rx_segments += 1
        n = len(buf)
        if n < 20:
            self.rx_bad += 1
            return
        sport, dport, seq, ack, off, flags, win, _csum, _urp = HDR.unpack_from(buf)
        hl = (off >> 4) << 2
        if hl < 20 or hl > n:
            self.rx_bad += 1
            return
        src = meta.src
        conn = self._last
        # one-entry cache for the flow of the moment: ints compare much faster than
        # ipaddress objects hash (`_ip` is the address as an int in every ipaddress class)
        if (conn is None or conn.rport != sport or conn.lport != dport
                or conn._rip != src._ip or conn._lip != meta.dst._ip):
            conn = self.conns.get((src, sport, dport))
            if conn is not None and conn.local == meta.dst:
                self._last = conn
            else:
                conn = None
        if conn is not None:
            pseudo = conn._pseudo
        else:
            pseudo = self._pseudo(src, meta.dst)
        # checksum (RFC 1071, as vnet.wire.checksum.verify, inlined): the sum is zero mod
        # 0xFFFF exactly when the one's-complement sum is all ones (it is never 0 here)
        # (skipped for a partial checksum from the local kernel: meta.csum_ok)
        if not getattr(meta, "csum_ok", False):
            v = int.from_bytes(buf, "big")
            if n & 1:
                v <<= 8
            if (v + pseudo + n) % 0xFFFF:
                self.rx_bad_checksum += 1
                return
        if conn is not None:
            conn.segment(buf, seq, ack, flags, win, hl)
            return
        lst = self.listeners.get(dport)
        if lst is None or (lst.addr is not None and lst.addr != meta.dst):
            self.rx_no_socket += 1
            self._reset_for(meta, buf, sport, dport, seq, ack, flags, hl)
            return
        self._to_listener(lst, meta, buf, sport, dport, seq, ack, flags, win, hl)

    def _to_listener(self, lst: Listener, meta: Any, buf: Any, sport: int, dport: int,
                     seq: int, ack: int, flags: int, win: int, hl: int) -> None:
        if flags & RST:
            return
        if flags & ACK:
            if not flags & SYN and self.cfg.syncookies and self._cookie_ack(
                    lst, meta, sport, dport, seq, ack, win, buf, hl):
                return
            self._reset_for(meta, buf, sport, dport, seq, ack, flags, hl)
            return
        if not flags & SYN:
            return
        try:
            opts = parse_options(buf, 20, hl)
        except WireError:
            self.rx_bad_options += 1
            return
        if lst.half_open >= lst.backlog or len(self.conns) >= self.cfg.max_connections:
            if self.cfg.syncookies:
                self._send_cookie(lst, meta, sport, dport, seq, opts)
            else:
                lst.syn_dropped += 1
                self.syn_dropped += 1
            return
        src, dst = meta.src, meta.dst
        conn = Connection(self, dst, dport, src, sport, self.cfg)
        conn.listener = lst
        lst.half_open += 1
        self.conns[conn.key] = conn
        conn.open_passive(self._isn(dst, dport, src, sport), seq, opts)

    def listener_accept(self, conn: Connection) -> None:
        lst = conn.listener
        conn.listener = None
        if lst is None:
            return
        lst.half_open -= 1
        lst.accepted += 1
        lst.on_accept(conn)

    def forget(self, conn: Connection, was: int) -> None:
        if self._last is conn:
            self._last = None
        if self.conns.get(conn.key) is conn:
            del self.conns[conn.key]
        if was == TIME_WAIT:
            self.time_wait -= 1
        if conn.listener is not None and was == SYN_RCVD:
            conn.listener.half_open -= 1
            conn.listener = None

    def time_wait_entered(self, conn: Connection) -> None:
        self.time_wait += 1
        if self.time_wait > self.cfg.max_time_wait:
            # bounded: recycle the oldest TIME_WAIT entry
            for c in self.conns.values():
                if c.state == TIME_WAIT and c is not conn:
                    c._terminate(None)
                    break

    def reopen_from_time_wait(self, conn: Connection, buf: Any, seq: int, ack: int, flags: int,
                              win: int, hl: int) -> bool:
        lst = self.listeners.get(conn.lport)
        if lst is None:
            return False
        conn._terminate(None)

        class _Meta:
            __slots__ = ("src", "dst")

        meta = _Meta()
        meta.src, meta.dst = conn.remote, conn.local
        self._to_listener(lst, meta, buf, conn.rport, conn.lport, seq, ack, flags, win, hl)
        return True

    # ------------------------------------------------------------------ RST and cookies
    def _reset_for(self, meta: Any, buf: Any, sport: int, dport: int, seq: int, ack: int,
                   flags: int, hl: int) -> None:
        """RFC 9293 3.10.7.1: answer a segment for no connection with a RST."""
        if flags & RST:
            return
        pseudo = self._pseudo(meta.dst, meta.src)
        if flags & ACK:
            seg = build(dport, sport, ack, 0, RST, 0, pseudo)
        else:
            seglen = len(buf) - hl + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
            seg = build(dport, sport, 0, (seq + seglen) & M32, RST | ACK, 0, pseudo)
        self.tx_rst += 1
        self.net.ip_send(meta.src, 6, seg, meta.dst)

    def _cookie_hash(self, src: Any, dst: Any, sport: int, dport: int, irs: int, t: int) -> int:
        h = hashlib.blake2s(src.packed + dst.packed + struct.pack("!HHII", sport, dport, irs, t),
                            key=self._cookie_secret, digest_size=4).digest()
        return int.from_bytes(h, "big") & 0xFFFFFF

    def _send_cookie(self, lst: Listener, meta: Any, sport: int, dport: int, seq: int,
                     opts: Any) -> None:
        """SYN-ACK whose ISN encodes time, MSS and a MAC: no state kept (RFC 4987 3.6)."""
        t = int(self.rt.now() / COOKIE_TICK) & 31
        mss = opts.mss or 536
        idx = max(i for i, v in enumerate(COOKIE_MSS) if v <= mss or i == 0)
        isn = (t << 27) | (idx << 24) | self._cookie_hash(meta.src, meta.dst, sport, dport, seq, t)
        mtu = self.net.path_mtu(meta.src)
        our_mss = mtu - (60 if meta.src.version == 6 else 40)
        seg = build(dport, sport, isn, (seq + 1) & M32, SYN | ACK, 65535,
                    self._pseudo(meta.dst, meta.src), build_options(mss=our_mss))
        lst.cookies_sent += 1
        self.net.ip_send(meta.src, 6, seg, meta.dst)

    def _cookie_ack(self, lst: Listener, meta: Any, sport: int, dport: int, seq: int,
                    ack: int, win: int, buf: Any, hl: int) -> bool:
        isn = (ack - 1) & M32
        irs = (seq - 1) & M32
        t = isn >> 27
        now_t = int(self.rt.now() / COOKIE_TICK) & 31
        if (now_t - t) & 31 > 1:
            return False
        if self._cookie_hash(meta.src, meta.dst, sport, dport, irs, t) != isn & 0xFFFFFF:
            return False
        if len(self.conns) >= self.cfg.max_connections:
            return False
        mss = COOKIE_MSS[(isn >> 24) & 7]
        conn = Connection(self, meta.dst, dport, meta.src, sport, self.cfg)
        self.conns[conn.key] = conn
        lst.cookies_ok += 1
        conn.listener = lst
        lst.half_open += 1  # undone by listener_accept
        conn.open_from_cookie(isn, irs, mss, win)
        if conn.state == ESTABLISHED and len(buf) > hl:
            conn.segment(buf, seq, ack, ACK, win, hl)
        return True

    # ------------------------------------------------------------------ ICMP errors
    def icmp_error(self, meta: Any, icmp_type: int, code: int, quoted: bytes) -> None:
        """An ICMP(v6) error quoting a segment we sent: `quoted` starts at its TCP header."""
        if len(quoted) < 8:
            return
        sport, dport, seq = struct.unpack_from("!HHI", quoted)
        # meta describes the quoted packet: it went from us (src) to the peer (dst)
        remote = meta.dst
        conn = self.conns.get((remote, dport, sport))
        if conn is None or conn.state == CLOSED:
            return
        v6 = conn.v6
        if (v6 and icmp_type == 2) or (not v6 and icmp_type == 3 and code == 4):
            conn.icmp_error("ptb")
        elif (not v6 and icmp_type == 3 and code in (2, 3)) or (v6 and icmp_type == 1 and code == 4):
            conn.icmp_error("hard")
