"""The compiled VDE forwarding fast path (vnet.phy._vdefast) against the Python engine.

Every test runs real Unix datagram sockets through a VdeServer in-process; the
clients are vnet's own VDE client, whose reader a test can unhook to play a
client that stops reading.
"""

from __future__ import annotations

import io
import os
import random

import pytest

from tests.phy.test_vde_server import A, B, frame, make_server, plug, run, settle
from vnet.link.capture import Capture
from vnet.phy import vde_server

C = bytes.fromhex("020000000003")
BCAST = b"\xff" * 6


def need_fastpath() -> None:
    if vde_server.Forwarder is None:
        reason = ("the C fast path vnet.phy._vdefast is not built "
                  "(needs gcc and Python headers at `pip install -e .`)")
        if os.environ.get("VNET_REQUIRE_PRIVILEGED") == "1":
            pytest.fail(f"VNET_REQUIRE_PRIVILEGED=1 but {reason}")
        pytest.skip(reason)


def numbered(dst: bytes, src: bytes, i: int, size: int = 60) -> bytes:
    return dst + src + b"\x08\x00" + i.to_bytes(4, "big") + bytes(size - 18)


def seq(frames: list[bytes]) -> list[int]:
    return [int.from_bytes(f[14:18], "big") for f in frames]


async def learned_pair(rt, d):
    """A switch with two clients whose MACs (A, B) it has learned."""
    sw, srv = make_server(rt, d)
    pa, ga, a = await plug(rt, d)
    pb, gb, b = await plug(rt, d)
    pa.send(frame(BCAST, A))
    pb.send(frame(BCAST, B))
    await settle(rt, lambda: ga and gb)
    return sw, srv, (pa, ga, a), (pb, gb, b)


def test_the_extension_is_built():
    need_fastpath()
    assert vde_server.Forwarder is not None


def test_known_unicast_goes_fast_with_exact_counters(tmp_path):
    need_fastpath()

    async def main(rt):
        sw, srv, (pa, ga, a), (pb, gb, b) = await learned_pair(rt, tmp_path / "sw")
        fwd = srv.forwarder
        before = fwd.stats()
        for i in range(500):
            pa.send(numbered(B, A, i, 60 + i))  # sizes 60..559
            if i % 50 == 49:
                await settle(rt, lambda i=i: len(gb) == i + 2)
        await settle(rt, lambda: len(gb) == 501)
        after = fwd.stats()
        assert seq(gb[1:]) == list(range(500))
        assert [len(f) for f in gb[1:]] == [60 + i for i in range(500)]
        assert after["fast_frames"] - before["fast_frames"] == 500
        assert after["slow_frames"] == before["slow_frames"]
        ia, ib = a.port_number, b.port_number
        pta, ptb = sw.ports[ia].port, sw.ports[ib].port
        assert pta.rx_frames == 501 and ptb.tx_frames == 501
        assert pta.rx_bytes == 60 + sum(60 + i for i in range(500))
        assert ptb.tx_bytes == pta.rx_bytes and ptb.tx_dropped == 0
        # the engine's aging clock is refreshed for the fast-path source
        sw.table.tick = 42.0
        pa.send(frame(B, A))
        await settle(rt, lambda: len(gb) == 502)
        assert sw.table.entries[A][1] == 42.0
        a.close()
        b.close()
        srv.close()
        sw.close()

    run(main)


def test_what_the_fast_path_must_not_touch_still_reaches_the_engine(tmp_path):
    """Broadcast, a MAC that moved port, a VLAN port and a captured port all take the
    engine's path (and so get its semantics) rather than the C shortcut."""
    need_fastpath()

    async def main(rt):
        sw, srv = make_server(rt, tmp_path / "sw")
        fwd = srv.forwarder
        pa, ga, a = await plug(rt, tmp_path / "sw")
        pb, gb, b = await plug(rt, tmp_path / "sw")
        pc, gc_, c = await plug(rt, tmp_path / "sw")
        pa.send(frame(BCAST, A))
        pb.send(frame(BCAST, B))
        await settle(rt, lambda: len(gc_) == 2)
        slow0 = fwd.stats()["slow_frames"]
        pa.send(frame(B, A))
        await settle(rt, lambda: len(gb) == 2)
        assert fwd.stats()["slow_frames"] == slow0  # learned both ways: fast
        # a capture wraps port b's transmit: frames to b must go through it
        sink = io.BytesIO()
        cap = Capture(sink, rt, fmt="pcap")
        cap.watch(sw.ports[b.port_number].port)
        pa.send(frame(B, A, 100))
        await settle(rt, lambda: len(gb) == 3)
        cap.flush()
        assert sink.getvalue().count(frame(B, A, 100)) == 1
        assert fwd.stats()["slow_frames"] == slow0 + 1
        cap.unwatch(sw.ports[b.port_number].port)
        # a VLAN on the receiving port: the engine decides (here: not in VLAN 0, not sent)
        sw.vlan_create(10)
        sw.set_port_vlan(b.port_number, 10)
        n_b = len(gb)
        pa.send(frame(B, A))
        pa.send(frame(C, A))  # unknown in VLAN 0: flooded to c only
        await settle(rt, lambda: len(gc_) == 3)
        assert len(gb) == n_b
        sw.set_port_vlan(b.port_number, 0)
        a.close()
        b.close()
        c.close()
        srv.close()
        sw.close()

    run(main)


@pytest.mark.parametrize("flow_control", [True, False])
def test_a_client_that_stops_reading(tmp_path, flow_control):
    """The receiver stops reading (its socket fills: the switch's send buffer, as the
    client's socket is connected back to it): the port queues (in order, fast and engine frames
    alike), then pauses the sender (flow control) until the watchdog gives up, then drops
    what does not fit, counted. When it reads again everything queued arrives in order."""
    need_fastpath()

    async def main(rt):
        sw, srv, (pa, ga, a), (pb, gb, b) = await learned_pair(rt, tmp_path / "sw")
        srv.flow_control = flow_control
        fwd = srv.forwarder
        gb.clear()
        rt.loop.remove_reader(b.sock.fileno())  # b stops reading
        sent = 0
        for i in range(3000):
            # every 100th is a broadcast: the engine's path, queued behind the fast frames
            pa.send(numbered(BCAST if i % 100 == 99 else B, A, i, 1514))
            sent += 1
            if i % 8 == 7:
                await settle(rt, lambda: False, 0.001)
        await settle(rt, lambda: False, 0.2)
        ptb = sw.ports[b.port_number].port
        if flow_control:
            assert srv.counters["pauses"] >= 1 and srv.counters["pause_timeouts"] >= 1
        else:
            assert srv.counters["pauses"] == 0
        assert fwd.stats()["queued"] >= vde_server.OUTPUT_QUEUE
        rt.loop.add_reader(b.sock.fileno(), b._readable)  # reads again
        await settle(rt, lambda: len(gb) + ptb.tx_dropped + pa.tx_dropped >= sent, 5.0)
        got = seq(gb)
        assert got == sorted(got)  # order kept across the fast path, the engine and the queue
        assert len(gb) + ptb.tx_dropped + pa.tx_dropped == sent  # every loss is counted
        assert len(gb) > vde_server.OUTPUT_QUEUE  # the queue held what b's socket could not
        # and it recovers: nothing queued any more, new frames pass
        pa.send(numbered(B, A, 99999))
        await settle(rt, lambda: seq(gb)[-1] == 99999)
        a.close()
        b.close()
        srv.close()
        sw.close()

    run(main)


def test_a_client_leaving_with_a_full_queue_and_paused_senders(tmp_path):
    """The receiver goes away while its queue is full and the sender is paused: the
    queued frames count as dropped, the sender is read again, nothing leaks or breaks."""
    need_fastpath()

    async def main(rt):
        sw, srv = make_server(rt, tmp_path / "sw")
        pa, ga, a = await plug(rt, tmp_path / "sw")
        pb, gb, b = await plug(rt, tmp_path / "sw")
        pc, gc_, c = await plug(rt, tmp_path / "sw")
        for p, mac in ((pa, A), (pb, B), (pc, C)):
            p.send(frame(BCAST, mac))
        await settle(rt, lambda: len(gc_) == 2 and len(gb) == 2)
        rt.loop.remove_reader(b.sock.fileno())
        for i in range(3000):
            pa.send(numbered(B, A, i, 1514))
            if i % 8 == 7:
                await settle(rt, lambda: False, 0.001)
        ib = b.port_number
        assert srv.counters["pauses"] >= 1
        b.close()
        await settle(rt, lambda: ib not in sw.ports)
        assert ib not in srv._paused and ib not in srv._waiting
        n = len(gc_)
        pa.send(frame(C, A))  # a is read again and still forwards
        await settle(rt, lambda: len(gc_) == n + 1)
        a.close()
        c.close()
        srv.close()
        sw.close()

    run(main)


def test_random_garbage_through_the_compiled_path_is_survived_and_counted(tmp_path):
    """5,000 random datagrams (0..1600 bytes, random MACs, tags, multicast bits) from two
    clients: nothing crashes, every frame is accounted for, and forwarding goes on."""
    need_fastpath()
    rnd = random.Random(7)

    async def main(rt):
        sw, srv = make_server(rt, tmp_path / "sw", mac_table_size=256)
        pa, ga, a = await plug(rt, tmp_path / "sw")
        pb, gb, b = await plug(rt, tmp_path / "sw")
        pa.send(frame(BCAST, A))
        pb.send(frame(BCAST, B))
        await settle(rt, lambda: ga and gb)
        sent = 0
        for i in range(5000):
            n = rnd.choice((0, 1, 13, 14, 15, 60, 1514, 1518, 1519, 1600, rnd.randrange(1601)))
            f = bytearray(rnd.randbytes(n))
            if n >= 12 and i % 3 == 0:
                f[0:6] = B if i % 2 else A  # some are known unicast, so take the fast path
                f[6] &= 0xFE
            (pa if i % 2 else pb).send(bytes(f))
            sent += 1
            if i % 16 == 15:
                await settle(rt, lambda: False, 0.001)
        await settle(rt, lambda: False, 0.3)
        ports = [sw.ports[x.port_number] for x in (a, b)]
        rx = sum(r.port.rx_frames for r in ports)
        assert rx == sent + 2  # every datagram reached the switch and was counted
        assert sum(r.rx_short + r.rx_oversize for r in ports) > 0
        assert len(sw.table) <= 256
        n_b = len(gb)
        sw.table.clear()
        pb.send(frame(BCAST, B))
        pa.send(frame(B, A))
        await settle(rt, lambda: any(f == frame(B, A) for f in gb[n_b:]))
        assert frame(B, A) in gb[n_b:]
        a.close()
        b.close()
        srv.close()
        sw.close()

    run(main)
