"""TCP in simulated time: two stacks over a fake network layer (tests/stack/netsim.py)."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from tests.stack.netsim import FakeNet, IpMeta, Path
from vnet.runtime import SimRuntime
from vnet.stack.tcp import Tcp
from vnet.stack.tcp.connection import ESTABLISHED, TIME_WAIT
from vnet.wire import tcp as wtcp
from vnet.wire.checksum import ones_sum


def pair(seed: int = 1, v6: bool = False, cfg_a: dict | None = None, cfg_b: dict | None = None,
         **path_kw):
    rt = SimRuntime(seed=seed)
    path = Path(rt, **path_kw)
    a_addr, b_addr = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
    a = Tcp(FakeNet(rt, path, a_addr), **(cfg_a or {}))
    b = Tcp(FakeNet(rt, path, b_addr), **(cfg_b or {}))
    return rt, path, a, b, b_addr


class Sink:
    """Server side: collects bytes, closes on EOF, records how it ended."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed: list = []
        self.conn = None

    def accept(self, c) -> None:
        self.conn = c
        c.on_data = self.data.extend
        c.on_eof = c.close
        c.on_close = self.closed.append


def transfer(rt, a, b, addr, data: bytes, until: float = 300.0, **copts):
    sink = Sink()
    b.listen(80, sink.accept)
    c = a.connect(addr, 80, **copts)
    ends: list = []
    c.on_established = lambda: (c.send(data), c.close())
    c.on_close = ends.append
    rt.run(until=until)
    return c, sink, ends


def payload(n: int, seed: int = 7) -> bytes:
    import random
    return random.Random(seed).randbytes(n)


@pytest.mark.parametrize("cc", ["cubic", "newreno"])
@pytest.mark.parametrize("v6", [False, True])
def test_bulk_under_loss_reorder_dup(cc: str, v6: bool) -> None:
    rt, path, a, b, addr = pair(seed=3, v6=v6, delay=0.01, jitter=0.004, loss=0.02, dup=0.02,
                                cfg_a={"cc": cc})
    data = payload(3_000_000)
    c, sink, ends = transfer(rt, a, b, addr, data)
    assert bytes(sink.data) == data
    assert ends == [None] and sink.closed == [None]
    assert c.retransmits > 0 and path.dropped > 0
    assert c.eff_mss == (1500 - 60 - 12 if v6 else 1500 - 40 - 12)
    assert not a.conns and not b.conns  # TIME_WAIT expired, tables empty


@pytest.mark.parametrize("opts", [{"sack": False}, {"sack": False, "timestamps": False},
                                  {"window_scaling": False}])
def test_bulk_without_options(opts: dict) -> None:
    rt, path, a, b, addr = pair(seed=5, delay=0.005, jitter=0.002, loss=0.03, cfg_b=opts)
    data = payload(1_000_000)
    c, sink, ends = transfer(rt, a, b, addr, data)
    assert bytes(sink.data) == data and ends == [None]
    assert c.sack_ok == opts.get("sack", True)
    assert c.ts_ok == opts.get("timestamps", True)
    assert c.ws_ok == opts.get("window_scaling", True)


def test_fast_retransmit_recovers_single_loss_without_timeout() -> None:
    rt, path, a, b, addr = pair(delay=0.01)
    dropped = []

    def drop_once(src, dst, proto, p):
        seq = int.from_bytes(p[4:8], "big")
        if len(p) > 100 and not dropped and len(dropped) == 0 and src.packed[-1] == 1:
            if rt.now() > 0.1:
                dropped.append(seq)
                return False
        return True

    path.filter = drop_once
    data = payload(2_000_000)
    c, sink, ends = transfer(rt, a, b, addr, data)
    assert bytes(sink.data) == data
    assert len(dropped) == 1
    assert c.fast_retransmits == 1 and c.timeouts == 0


def test_rto_backoff_then_recovery() -> None:
    rt, path, a, b, addr = pair(delay=0.01)
    sink = Sink()
    b.listen(80, sink.accept)
    c = a.connect(addr, 80)
    rt.run(until=1)
    assert c.state == ESTABLISHED
    path.filter = lambda *_: False  # black hole
    c.send(payload(50_000))
    rtos = []
    for _ in range(5):
        t0 = c.timeouts
        while c.timeouts == t0:
            rt.run_for(0.01)
        rtos.append(c.rto.rto)
    assert all(b2 == pytest.approx(2 * b1) for b1, b2 in zip(rtos, rtos[1:], strict=False))
    path.filter = None
    rt.run_for(60)
    assert bytes(sink.data) == payload(50_000)
    assert c.rto.backoffs == 0


def test_gives_up_after_max_retries() -> None:
    rt, path, a, b, addr = pair(delay=0.01, cfg_a={"max_retries": 4})
    b.listen(80, Sink().accept)
    c = a.connect(addr, 80)
    ends = []
    c.on_close = ends.append
    rt.run(until=1)
    path.filter = lambda *_: False
    c.send(b"x" * 1000)
    rt.run(until=200)
    assert ends == [errno.ETIMEDOUT] and not a.conns


def test_connection_refused_and_syn_timeout() -> None:
    rt, path, a, b, addr = pair()
    c = a.connect(addr, 81)
    ends = []
    c.on_close = ends.append
    rt.run(until=5)
    assert ends == [errno.ECONNREFUSED] and b.tx_rst == 1
    path.filter = lambda *_: False
    c2 = a.connect(addr, 81)
    c2.on_close = ends.append
    rt.run(until=400)
    assert ends[-1] == errno.ETIMEDOUT and c2.timeouts == a.cfg.syn_retries + 1


def test_simultaneous_open_and_close() -> None:
    rt, path, a, b, addr = pair(delay=0.02)
    ca = a.connect("10.0.0.2", 5000, sport=6000)
    cb = b.connect("10.0.0.1", 6000, sport=5000)
    got_a, got_b, ends = bytearray(), bytearray(), []
    ca.on_data, cb.on_data = got_a.extend, got_b.extend
    ca.on_established = lambda: ca.send(b"from a")
    cb.on_established = lambda: cb.send(b"from b")
    ca.on_close = lambda e: ends.append(("a", e))
    cb.on_close = lambda e: ends.append(("b", e))
    rt.run(until=1)
    assert ca.state == cb.state == ESTABLISHED
    assert got_a == b"from b" and got_b == b"from a"
    # both close at the same instant: FIN_WAIT_1 -> CLOSING -> TIME_WAIT on both sides
    ca.close()
    cb.close()
    rt.run_for(0.03)
    assert ca.state_name in ("CLOSING", "TIME_WAIT") and cb.state_name in ("CLOSING", "TIME_WAIT")
    rt.run_for(1)
    assert ca.state == TIME_WAIT and cb.state == TIME_WAIT
    assert sorted(ends) == [("a", None), ("b", None)]
    rt.run_for(61)
    assert not a.conns and not b.conns


def test_abort_resets_peer_and_blind_rst_gets_challenge_ack() -> None:
    rt, path, a, b, addr = pair()
    sink = Sink()
    b.listen(80, sink.accept)
    c = a.connect(addr, 80)
    ends = []
    c.on_close = ends.append
    rt.run(until=1)
    srv = sink.conn
    # a blind RST with an in-window but not exact sequence number (RFC 5961 3.2)
    pseudo = ones_sum(ipaddress.ip_address(addr).packed + ipaddress.ip_address("10.0.0.1").packed)
    rst = wtcp.build(c.rport, c.lport, (c.rcv_nxt + 1000) & 0xFFFFFFFF, 0, wtcp.RST, 0,
                     pseudo + 6)
    a.receive(IpMeta(ipaddress.ip_address(addr), ipaddress.ip_address("10.0.0.1")), rst)
    assert c.state == ESTABLISHED and c.challenge_acks == 1
    # the exact one resets
    rst = wtcp.build(c.rport, c.lport, c.rcv_nxt & 0xFFFFFFFF, 0, wtcp.RST, 0, pseudo + 6)
    a.receive(IpMeta(ipaddress.ip_address(addr), ipaddress.ip_address("10.0.0.1")), rst)
    assert ends == [errno.ECONNRESET]
    # abort from the server side of a fresh connection
    c2 = a.connect(addr, 80)
    c2.on_close = ends.append
    rt.run_for(1)
    sink.conn.abort()
    rt.run_for(1)
    assert ends[-1] == errno.ECONNRESET and srv is not sink.conn


def test_zero_window_probe_and_reopen() -> None:
    rt, path, a, b, addr = pair(delay=0.01, cfg_b={"rcv_buf": 64 * 1024})
    sink = Sink()

    def accept(c):
        sink.accept(c)
        c.pause_reading()

    b.listen(80, accept)
    data = payload(400_000)
    c = a.connect(addr, 80)
    c.on_established = lambda: c.send(data)
    rt.run(until=10)
    assert c.snd_wnd == 0 and len(sink.data) == 0
    assert 0 < sink.conn.rcvq_bytes <= 64 * 1024 + 1448
    probes = c.tx_segments
    rt.run(until=40)
    assert c.tx_segments > probes  # persist timer probes while the window is shut
    assert c.state == ESTABLISHED
    sink.conn.resume_reading()
    rt.run(until=80)
    assert bytes(sink.data) == data


def test_keepalive_detects_dead_peer() -> None:
    rt, path, a, b, addr = pair(cfg_a={"keepalive": True, "keepalive_idle": 10,
                                       "keepalive_interval": 2, "keepalive_probes": 3})
    b.listen(80, Sink().accept)
    c = a.connect(addr, 80)
    ends = []
    c.on_close = ends.append
    rt.run(until=30)
    assert c.state == ESTABLISHED  # the live peer answers probes
    path.filter = lambda *_: False
    rt.run(until=60)
    assert ends == [errno.ETIMEDOUT]


def test_syn_flood_bounded_with_cookies() -> None:
    rt, path, a, b, addr = pair(cfg_b={"syn_backlog": 16})
    sink = Sink()
    b.listen(80, sink.accept)
    c = a.connect(addr, 80)
    rt.run(until=1)
    dst = ipaddress.ip_address(addr)
    for i in range(5000):
        src = ipaddress.ip_address(f"10.9.{i // 250}.{i % 250 + 1}")
        syn = wtcp.build(1024 + i, 80, i * 7919, 0, wtcp.SYN, 65535,
                         ones_sum(src.packed + dst.packed) + 6, wtcp.build_options(mss=1460))
        b.receive(IpMeta(src, dst), syn)
    lst = b.listeners[80]
    assert lst.half_open <= 16 and len(b.conns) <= 17
    assert lst.cookies_sent >= 5000 - 16
    # the established connection still moves data, and a new one gets through on a cookie
    c.send(payload(200_000))
    c2 = a.connect(addr, 80)
    c2.on_established = lambda: (c2.send(b"cookie!"), c2.close())
    rt.run(until=20)
    assert len(sink.data) == 200_000 + 7 and lst.cookies_ok == 1
    rt.run(until=200)  # the spoofed half-open entries time out and leave
    assert lst.half_open == 0 and len(b.conns) <= 2


def test_time_wait_reuse_and_nagle_small_writes() -> None:
    rt, path, a, b, addr = pair(delay=0.01)
    sink = Sink()
    b.listen(80, sink.accept)
    for round_ in range(2):
        c = a.connect(addr, 80, sport=40000)
        # many small writes: Nagle coalesces them, nothing is lost
        c.on_established = lambda c=c: ([c.send(b"%05d" % i) for i in range(1000)], c.close())
        rt.run_for(2)
        assert c.state == TIME_WAIT
        assert c.tx_segments < 100
        if round_ == 0:
            # the server closed second, so the client holds TIME_WAIT; reuse the 4-tuple
            c._terminate(None)  # as if TIME_WAIT had been recycled
    assert bytes(sink.data) == b"".join(b"%05d" % i for i in range(1000)) * 2


def test_close_waits_for_paused_reader() -> None:
    """Data held while the reader is paused comes out before EOF and on_close."""
    rt, path, a, b, addr = pair(delay=0.01)
    events: list = []

    def accept(c):
        c.pause_reading()
        c.on_data = lambda d: events.append(("data", len(d)))
        c.on_eof = lambda: (events.append(("eof",)), c.close())
        c.on_close = lambda e: events.append(("close", e))
        rt.call_later(5, c.resume_reading)

    b.listen(80, accept)
    c = a.connect(addr, 80)
    c.on_established = lambda: (c.send(payload(100_000)), c.close())
    rt.run(until=3)
    assert events == []
    rt.run(until=100)
    assert sum(e[1] for e in events if e[0] == "data") == 100_000
    assert events[-2:] == [("eof",), ("close", None)]


def test_bad_segments_counted_and_dropped() -> None:
    rt, path, a, b, addr = pair()
    sink = Sink()
    b.listen(80, sink.accept)
    c = a.connect(addr, 80)
    rt.run(until=1)
    src, dst = ipaddress.ip_address("10.0.0.1"), ipaddress.ip_address(addr)
    meta = IpMeta(src, dst)
    pseudo = ones_sum(src.packed + dst.packed) + 6
    good = wtcp.build(c.lport, 80, c.snd_nxt & 0xFFFFFFFF, c.rcv_nxt & 0xFFFFFFFF, wtcp.ACK,
                      1000, pseudo, b"", b"data")
    bad = bytearray(good)
    bad[-1] ^= 0xFF
    b.receive(meta, bytes(bad))
    b.receive(meta, good[:12])  # truncated header
    b.receive(meta, good[:12] + b"\xf0" + good[13:])  # data offset 60 > length
    # a SYN with option garbage (MSS option of length 3) to the listener
    syn = wtcp.build(999, 80, 1, 0, wtcp.SYN, 1000, pseudo, b"\x02\x03\x05\x00")
    b.receive(meta, syn)
    assert b.rx_bad_checksum == 1 and b.rx_bad == 2 and b.rx_bad_options == 1
    assert sink.conn.rx_bytes == 0 and sink.conn.state == ESTABLISHED
    b.receive(meta, good)
    assert bytes(sink.data) == b"data"


def test_zero_delay_cable_between_real_hosts() -> None:
    """Two hosts joined by a direct Port cable: every send re-enters the peer at once."""
    from vnet.link.port import connect
    from vnet.stack.host import Host
    from vnet.stack.sockets import tcp_of

    rt = SimRuntime(seed=9)
    ha, hb = Host(rt, "a"), Host(rt, "b")
    ia, ib = ha.add_interface("eth0"), hb.add_interface("eth0")
    connect(ia.port, ib.port)
    ha.add_address("eth0", "10.2.0.1/24")
    hb.add_address("eth0", "10.2.0.2/24")
    rt.run(until=2)
    sink = Sink()
    tcp_of(hb).listen(80, sink.accept)
    c = tcp_of(ha).connect("10.2.0.2", 80)
    data = payload(500_000)
    c.on_established = lambda: (c.send(data), c.close())
    rt.run(until=10)
    assert bytes(sink.data) == data and sink.closed == [None]


def _inject(layer, c, addr, **kw):
    """Hand `layer` a segment as if from the peer of connection `c`."""
    src, dst = ipaddress.ip_address(addr), c.local
    seg = wtcp.build(c.rport, c.lport, kw.get("seq", c.rcv_nxt) & 0xFFFFFFFF,
                     kw.get("ack", c.snd_nxt) & 0xFFFFFFFF, kw.get("flags", wtcp.ACK),
                     kw.get("win", 1000), ones_sum(src.packed + dst.packed) + 6,
                     kw.get("opts", b""), kw.get("data", b""))
    layer.receive(IpMeta(src, dst), seg)


def test_syn_in_established_paws_and_bad_syn_ack() -> None:
    rt, path, a, b, addr = pair()
    sink = Sink()
    b.listen(80, sink.accept)
    c = a.connect(addr, 80)
    rt.run(until=1)
    sent = c.tx_segments
    # RFC 5961 4.2: a SYN on an established connection gets a challenge ACK, nothing else
    _inject(a, c, addr, flags=wtcp.SYN)
    assert c.state == ESTABLISHED and c.challenge_acks == 1 and c.tx_segments == sent + 1
    # PAWS: an old timestamp on data: dropped (and ACKed), not delivered
    old = wtcp.build_options(ts=((c.ts_recent - 1000) & 0xFFFFFFFF, 0))
    _inject(a, c, addr, data=b"stale", opts=old)
    assert c.rx_bytes == 0 and c.rx_dropped == 1
    fresh = wtcp.build_options(ts=((c.ts_recent + 5) & 0xFFFFFFFF, 0))
    got = bytearray()
    c.on_data = got.extend
    _inject(a, c, addr, data=b"fresh", opts=fresh)
    assert got == b"fresh"
    # SYN_SENT: a SYN-ACK acking the wrong number gets a RST and changes nothing
    c2 = a.connect(addr, 80)
    path.filter = lambda *_: False  # keep the real answer away
    _inject(a, c2, addr, flags=wtcp.SYN | wtcp.ACK, seq=12345, ack=c2.iss + 77)
    assert c2.state_name == "SYN_SENT"


def test_fin_ahead_of_a_hole() -> None:
    """The last data segment is lost but the FIN behind it arrives: EOF waits for the
    retransmission, and the bytes come out whole and in order."""
    rt, path, a, b, addr = pair(delay=0.01)
    data = payload(10_000)  # 6 full segments and one of 1312 bytes, all in the initial window
    dropped = []

    def drop_tail(src, dst, proto, p):
        hl = (p[12] >> 4) * 4
        if src.packed[-1] == 1 and len(p) - hl == 10_000 - 6 * 1448 and not dropped:
            dropped.append(1)
            return False
        return True

    path.filter = drop_tail
    sink = Sink()
    eof_at = []
    b.listen(80, lambda conn: (sink.accept(conn), setattr(conn, "on_eof", lambda: (
        eof_at.append(len(sink.data)), conn.close()))))
    c = a.connect(addr, 80, nodelay=True)  # the short tail goes at once, the FIN after it
    c.on_established = lambda: (c.send(data), rt.call_later(0.002, c.close))
    rt.run(until=30)
    assert dropped and bytes(sink.data) == data
    assert eof_at == [10_000] and sink.conn.rx_dup == 0
    assert c.retransmits >= 1


@pytest.mark.parametrize("sack", [True, False])
def test_several_losses_in_one_window_one_recovery(sack: bool) -> None:
    """Three segments of one flight lost: SACK (RFC 6675) or NewReno partial ACKs
    (RFC 6582) repair all of them in a single recovery episode, without a timeout."""
    rt, path, a, b, addr = pair(delay=0.02, cfg_b={"sack": sack})
    state = {"n": 0}
    lost = []

    def drop(src, dst, proto, p):
        hl = (p[12] >> 4) * 4
        if src.packed[-1] == 1 and len(p) > hl:
            state["n"] += 1  # data segments so far; these three share a flight
            if state["n"] in (60, 64, 69) and len(lost) < 3:
                lost.append(int.from_bytes(p[4:8], "big"))
                return False
        return True

    path.filter = drop
    data = payload(1_500_000)
    c, sink, ends = transfer(rt, a, b, addr, data)
    assert bytes(sink.data) == data and len(lost) == 3
    assert c.fast_retransmits == 1 and c.timeouts == 0
    assert c.retransmits == 3


def test_fin_wait_2_times_out_after_close_but_not_after_shutdown() -> None:
    rt, path, a, b, addr = pair(cfg_a={"fin_timeout": 20})
    b.listen(80, lambda c: None)  # a peer that never closes its side
    c1 = a.connect(addr, 80)
    c2 = a.connect(addr, 80)
    rt.run(until=1)
    c1.close()
    c2.shutdown()  # half-close: the application still reads
    rt.run(until=5)
    assert c1.state_name == c2.state_name == "FIN_WAIT_2"
    rt.run(until=30)
    assert c1.state_name == "CLOSED" and c2.state_name == "FIN_WAIT_2"


def test_new_syn_reopens_a_server_time_wait() -> None:
    """The server closed first, so it holds TIME_WAIT; the client comes back from the same
    port at once: the SYN (newer timestamp) ends TIME_WAIT and is served (RFC 6191)."""
    rt, path, a, b, addr = pair(v6=True, delay=0.005)
    served: list = []

    def accept(c):
        served.append(c)
        c.on_data = lambda d: (c.send(d.upper()), c.close())  # answer, then close first

    b.listen(80, accept)
    replies: list = []
    for _ in range(2):
        c = a.connect(addr, 80, sport=40000)
        c.on_established = lambda c=c: c.send(b"ping")
        c.on_data = replies.append
        c.on_eof = c.close
        rt.run_for(1)
        assert served[-1].state == TIME_WAIT and c.state_name == "CLOSED"
    assert replies == [b"PING", b"PING"] and len(served) == 2
