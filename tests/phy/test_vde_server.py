"""The VDE ctl directory server, exercised in-process with real Unix sockets."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import stat
import struct
import tracemalloc

import pytest

from vnet.link.port import Port
from vnet.link.switch import Switch, SwitchError
from vnet.phy.vde_client import VdeClientError, connect
from vnet.phy.vde_server import VdeServer, VdeServerError, dirmode_for
from vnet.runtime.realtime import AsyncioRuntime, new_event_loop
from vnet.wire.vde import Request, build_request

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")


def frame(dst: bytes, src: bytes, size: int = 60) -> bytes:
    return dst + src + b"\x08\x00" + bytes(size - 14)


def run(coro_fn, *args):
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro_fn(AsyncioRuntime(loop), *args))
    finally:
        loop.close()


async def settle(rt: AsyncioRuntime, cond, timeout: float = 3.0) -> None:
    end = rt.now() + timeout
    while not cond() and rt.now() < end:
        await asyncio.sleep(0.01)


def make_server(rt, path, **kw) -> tuple[Switch, VdeServer]:
    sw = Switch(rt, numports=kw.pop("numports", 32), mtu=kw.pop("mtu", 1500),
                mac_table_size=kw.pop("mac_table_size", 65536))
    srv = VdeServer(sw, rt, str(path), **kw)
    srv.start()
    return sw, srv


async def plug(rt, path, **kw) -> tuple[Port, list[bytes], object]:
    p = Port()
    got: list[bytes] = []
    p.receive = got.append
    att = await connect(rt, p, str(path), **kw)
    return p, got, att


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_layout_modes_and_unicast(tmp_path, fast):
    d = tmp_path / "sw"

    async def main(rt):
        sw, srv = make_server(rt, d, fast=fast)
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o2700
        assert stat.S_IMODE(os.stat(d / "ctl").st_mode) == 0o600
        pa, ga, a = await plug(rt, d)
        pb, gb, b = await plug(rt, d, want=7)
        assert b.port_number == 7 and 7 in sw.ports
        names = sorted(os.listdir(d))
        # data sockets <port %03d>.<fd>; the clients unlinked their own paths
        assert names[0] == f"{a.port_number:03d}.{srv.vports[a.port_number].endpoints[0].data.fileno()}"
        assert len(names) == 3 and names[-1] == "ctl"
        pa.send(frame(B, A))  # unknown: flooded
        await settle(rt, lambda: gb)
        pb.send(frame(A, B, 1514))  # learned: unicast
        await settle(rt, lambda: ga)
        assert [len(f) for f in ga] == [1514] and len(gb) == 1
        a.close()
        await settle(rt, lambda: a.port_number not in sw.ports)
        assert a.port_number not in sw.ports and len(os.listdir(d)) == 2
        b.close()
        srv.close()
        sw.close()
        assert not d.exists()

    run(main)


def test_mode_group_and_dirmode():
    assert dirmode_for(0o600) == 0o2700
    assert dirmode_for(0o660) == 0o2770
    assert dirmode_for(0o666) == 0o2777


def test_mode_option(tmp_path):
    async def main(rt):
        sw, srv = make_server(rt, tmp_path / "sw", mode=0o660, group="root")
        assert stat.S_IMODE(os.stat(tmp_path / "sw" / "ctl").st_mode) == 0o660
        assert stat.S_IMODE(os.stat(tmp_path / "sw").st_mode) == 0o2770
        assert os.stat(tmp_path / "sw" / "ctl").st_gid == 0
        srv.close()
        sw.close()

    run(main)


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_jumbo_frames_pass_at_mtu_9000_and_oversize_is_counted(tmp_path, fast):
    async def main(rt):
        sw, srv = make_server(rt, tmp_path / "sw", mtu=9000, fast=fast)
        pa, ga, a = await plug(rt, tmp_path / "sw")
        pb, gb, b = await plug(rt, tmp_path / "sw")
        pa.send(frame(B, A, 9014))
        pa.send(frame(B, A, 9100))  # over the MTU: dropped and counted
        pa.send(b"\x01" * 13)  # shorter than a header
        pa.send(frame(B, A, 64))
        await settle(rt, lambda: len(gb) >= 2)
        assert [len(f) for f in gb] == [9014, 64]
        rec = sw.port(a.port_number)
        assert rec.rx_oversize == 1 and rec.rx_short == 1
        srv.close()
        sw.close()

    run(main)


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_several_endpoints_on_one_port_all_receive(tmp_path, fast):
    async def main(rt):
        sw, srv = make_server(rt, tmp_path / "sw", fast=fast)
        p1, g1, c1 = await plug(rt, tmp_path / "sw", want=3)
        p2, g2, c2 = await plug(rt, tmp_path / "sw", want=3)
        p3, g3, c3 = await plug(rt, tmp_path / "sw")
        assert c1.port_number == c2.port_number == 3 and len(srv.vports[3].endpoints) == 2
        p3.send(frame(b"\xff" * 6, A))
        await settle(rt, lambda: g1 and g2)
        assert len(g1) == len(g2) == 1 and not g3
        c1.close()
        await settle(rt, lambda: len(srv.vports[3].endpoints) == 1)
        assert 3 in sw.ports  # the other endpoint keeps the port
        p3.send(frame(b"\xff" * 6, A))
        await settle(rt, lambda: len(g2) == 2)
        assert len(g2) == 2
        c2.close()
        await settle(rt, lambda: 3 not in sw.ports)
        assert 3 not in sw.ports
        srv.close()
        sw.close()

    run(main)


def test_port0_and_refusals(tmp_path):
    async def main(rt):
        sw, srv = make_server(rt, tmp_path / "sw", numports=4)
        _, _, m = await plug(rt, tmp_path / "sw", port0=True)
        assert m.port_number == 0 and 0 in sw.ports
        with pytest.raises(VdeClientError, match="refused port 9"):
            await plug(rt, tmp_path / "sw", want=9)
        sw.add_port(2)  # held by a non-VDE attachment (a TAP, say)
        with pytest.raises(VdeClientError, match="refused port 2"):
            await plug(rt, tmp_path / "sw", want=2)
        sw.remove_port(2)
        atts = [(await plug(rt, tmp_path / "sw"))[2] for _ in range(4)]
        assert sorted(a.port_number for a in atts) == [1, 2, 3, 4]
        with pytest.raises(VdeClientError, match="refused a port"):
            await plug(rt, tmp_path / "sw")
        assert srv.counters["refused"] == 3
        srv.close()
        sw.close()

    run(main)


def raw_ctl(path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(str(path / "ctl"))
    return s


def test_bad_requests_are_counted_logged_and_forwarding_goes_on(tmp_path, caplog):
    d = tmp_path / "sw"
    good_path = str(tmp_path / "client.sock")

    async def main(rt):
        sw, srv = make_server(rt, d)
        pa, ga, a = await plug(rt, d)
        pb, gb, b = await plug(rt, d)
        loop = rt.loop
        bad = {
            "bad_garbage": b"\x00" * 4 + b"hello",  # wrong magic
            "bad_short": b"\xce\xfa\xed",
            "bad_magic": b"GET / HTTP/1.1\r\n\r\n" * 8,
            "bad_version": struct.pack("=II", 0xFEEDFACE, 2) + bytes(130),
        }
        for payload in bad.values():
            s = raw_ctl(d)
            s.setblocking(False)
            await loop.sock_sendall(s, payload)
            assert await asyncio.wait_for(loop.sock_recv(s, 200), 3) == b""  # closed on us
            s.close()
        # a request whose client socket does not exist: refused, nothing left behind
        s = raw_ctl(d)
        s.setblocking(False)
        await loop.sock_sendall(s, build_request(Request(good_path)))
        assert await asyncio.wait_for(loop.sock_recv(s, 200), 3) == b""
        s.close()
        # a connection that closes before saying anything
        raw_ctl(d).close()
        await asyncio.sleep(0.05)
        c = srv.counters
        assert c["bad_magic"] == 2 and c["bad_short"] == 1 and c["bad_version"] == 1
        assert c["refused"] == 1
        assert all(ep.data is not None for ep in srv.endpoints.values())  # no half-open left
        assert len(srv.endpoints) == 2
        pa.send(frame(B, A))
        await settle(rt, lambda: gb)
        assert len(gb) == 1
        assert sorted(os.listdir(d)) == sorted(
            ["ctl"] + [os.path.basename(ep.path) for ep in srv.endpoints.values()])
        srv.close()
        sw.close()

    with caplog.at_level(logging.WARNING, logger="vnet.vde"):
        run(main)
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("bad magic" in m for m in msgs) == 2
    assert any("version 2" in m for m in msgs) and any("short request" in m for m in msgs)
    assert all("\n" not in m for m in msgs)


def test_silent_ctl_connections_time_out_and_are_bounded(tmp_path, monkeypatch):
    import vnet.phy.vde_server as vs

    monkeypatch.setattr(vs, "HANDSHAKE_TIMEOUT", 0.2)
    monkeypatch.setattr(vs, "MAX_PENDING", 3)
    d = tmp_path / "sw"

    async def main(rt):
        sw, srv = make_server(rt, d)
        loop = rt.loop
        socks = []
        for _ in range(5):
            s = raw_ctl(d)
            s.setblocking(False)
            socks.append(s)
        await settle(rt, lambda: srv.counters["connections"] == 5)
        assert srv.counters["refused"] == 2 and len(srv.endpoints) == 3
        for s in socks:  # all closed on us: 2 at once, 3 after the timeout
            try:
                assert await asyncio.wait_for(loop.sock_recv(s, 10), 3) == b""
            except ConnectionResetError:
                pass
            s.close()
        assert srv.counters["timeouts"] == 3 and not srv.endpoints
        _, _, c = await plug(rt, d)  # and new clients still get in
        assert c.port_number == 1
        c.close()
        srv.close()
        sw.close()

    run(main)


def test_directory_checks(tmp_path):
    async def main(rt):
        f = tmp_path / "file"
        f.write_text("x")
        with pytest.raises(VdeServerError, match="not a directory"):
            make_server(rt, f)
        other = tmp_path / "other"
        other.mkdir()
        (other / "notes.txt").write_text("mine")
        with pytest.raises(VdeServerError, match="not a VDE switch directory"):
            make_server(rt, other)
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        os.chown(foreign, 12345, -1)
        if os.geteuid() == 0:
            with pytest.raises(VdeServerError, match="belongs to uid 12345"):
                make_server(rt, foreign)
        with pytest.raises(VdeServerError, match="parent does not exist"):
            make_server(rt, tmp_path / "no" / "such")
        sw, srv = make_server(rt, tmp_path / "sw")
        with pytest.raises(VdeServerError, match="in use by a running switch"):
            make_server(rt, tmp_path / "sw")
        srv.close()
        sw.close()
        # a stale directory left by a killed switch: ctl and data sockets are reused/cleared
        stale = tmp_path / "stale"
        stale.mkdir()
        for name in ("ctl", "001.7"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(str(stale / name))
            s.close()
        sw, srv = make_server(rt, stale)
        assert sorted(os.listdir(stale)) == ["ctl"]
        _, _, c = await plug(rt, stale)
        assert c.port_number == 1
        c.close()
        srv.close()
        sw.close()

    run(main)


def test_switch_closing_the_port_disconnects_the_client(tmp_path):
    async def main(rt):
        sw, srv = make_server(rt, tmp_path / "sw")
        _, _, c = await plug(rt, tmp_path / "sw")
        assert srv.close_port(c.port_number) == 1
        await asyncio.wait_for(c.wait_closed(), 3)
        assert not c.port.attached
        srv.close()
        sw.close()

    run(main)


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_10000_connect_disconnect_cycles_leak_no_fds_or_memory(tmp_path):
    d = tmp_path / "sw"

    async def main(rt):
        sw, srv = make_server(rt, d)
        peer_p, peer_got, peer = await plug(rt, d)

        async def cycle():
            p = Port()
            att = await connect(rt, p, str(d))
            att.close()

        for _ in range(200):  # warm up caches and allocator pools
            await cycle()
        await settle(rt, lambda: len(srv.endpoints) == 1)
        gc.collect()
        fds = fd_count()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for i in range(10_000):
            await cycle()
            if i % 1000 == 0:
                await asyncio.sleep(0)
        await settle(rt, lambda: len(srv.endpoints) == 1)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
        assert fd_count() == fds
        assert grown < 200_000, f"memory grew by {grown} bytes over 10000 cycles"
        assert len(srv.endpoints) == 1 and len(sw.ports) == 1
        assert srv.counters["accepted"] >= 10_201 and srv.counters["closed"] >= 10_200
        assert sorted(os.listdir(d)) == sorted(["ctl", os.path.basename(peer.switch_path)])
        # and it still forwards
        p2, g2, c2 = await plug(rt, d)
        peer_p.send(frame(b"\xff" * 6, A))
        await settle(rt, lambda: g2)
        assert len(g2) == 1
        srv.close()
        sw.close()

    run(main)


@pytest.mark.parametrize("fast", [True, False], ids=["c", "python"])
def test_source_mac_flood_through_the_socket_stays_at_the_table_cap(tmp_path, fast):
    d = tmp_path / "sw"

    async def main(rt):
        sw, srv = make_server(rt, d, mac_table_size=1000, fast=fast)
        pa, ga, a = await plug(rt, d)
        pb, gb, b = await plug(rt, d)
        n = 20_000
        sent = 0
        for i in range(n):
            src = b"\x02" + i.to_bytes(5, "big")
            pa.send(b"\xff" * 6 + src + b"\x08\x00" + bytes(46))
            sent += 1
            if i % 8 == 7:  # let the switch drain (10-datagram Unix queues)
                await asyncio.sleep(0)
        await settle(rt, lambda: sw.port(a.port_number).port.rx_frames + pa.tx_dropped >= n)
        rx = sw.port(a.port_number).port.rx_frames
        assert rx + pa.tx_dropped == n and rx > n // 2
        assert len(sw.table) == 1000 and sw.table.evicted == rx - 1000
        pb.send(frame(A, B))  # still forwarding
        await settle(rt, lambda: any(f[6:12] == B for f in ga))
        assert any(f[6:12] == B for f in ga)
        srv.close()
        sw.close()

    run(main)


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_a_million_random_source_macs_keep_the_engine_table_at_its_cap():
    from vnet.runtime.sim import SimRuntime

    rt = SimRuntime(seed=1)
    sw = Switch(rt, numports=4, mac_table_size=65536)
    flood, other = sw.add_port(), sw.add_port()
    delivered = [0]

    def count(_f: bytes) -> None:
        delivered[0] += 1

    other.attach(count)
    flood.attach(count)
    rnd = os.urandom(6 * 100_000)
    tail = b"\x08\x00" + bytes(46)
    bcast = b"\xff" * 6
    deliver = flood.deliver
    rss_mid = 0
    for rnd_round in range(10):
        for i in range(0, len(rnd), 6):
            # unicast source (group bit cleared), a different MAC per frame
            src = bytes([rnd[i] & 0xFE, rnd_round]) + rnd[i + 2:i + 6]
            deliver(bcast + src + tail)
        if rnd_round == 2:
            gc.collect()
            rss_mid = rss_kib()
    gc.collect()
    assert len(sw.table) == 65536
    assert sw.table.evicted >= 1_000_000 - 65536 - 100  # a few random duplicates at most
    assert rss_kib() - rss_mid < 8 * 1024, "memory grew after the table reached its cap"
    assert delivered[0] == 1_000_000  # every broadcast still flooded to the other port
    # and forwarding by MAC still works: learn B on `other`, send to it
    got: list[bytes] = []
    other.attach(got.append)
    other.deliver(frame(A, B))
    flood.deliver(frame(B, A))
    assert got == [frame(B, A)]


async def request_as(rt, d, tmp_path, uid: int, want: int) -> bytes:
    """A hand-made client whose data socket is owned by `uid`; returns the switch's reply
    (the data socket's address, or b"" when refused)."""
    path = tmp_path / f"client-{uid}-{want}.sock"
    dsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dsock.bind(str(path))
    os.chown(path, uid, -1)
    s = raw_ctl(d)
    s.setblocking(False)
    try:
        await rt.loop.sock_sendall(s, build_request(Request(str(path), port=want)))
        return await asyncio.wait_for(rt.loop.sock_recv(s, 200), 3)
    finally:
        s.close()
        dsock.close()
        os.unlink(path)


def test_port_create_keeps_vlan_and_acl_with_no_client(tmp_path):
    """port/create N: the port exists before and after its clients (VLAN kept);
    port/setuser: only that uid (or root) may plug into it."""
    if os.geteuid() != 0:
        pytest.skip("needs root to chown a client socket to another uid")
    d = tmp_path / "sw"

    async def main(rt):
        sw, srv = make_server(rt, d)
        srv.create_port(5)
        sw.vlan_create(10)
        sw.set_port_vlan(5, 10)
        srv.set_acl(5, uid=4242)
        pa, ga, a = await plug(rt, d, want=5)  # root: allowed
        assert a.port_number == 5 and sw.ports[5].untagged == 10
        a.close()
        await settle(rt, lambda: not srv.vports)
        assert 5 in sw.ports and sw.ports[5].untagged == 10  # kept with nobody plugged in
        assert not sw.ports[5].port.attached
        assert await request_as(rt, d, tmp_path, 4243, 5) == b""  # another user: refused
        assert srv.counters["refused"] == 1
        assert await request_as(rt, d, tmp_path, 4242, 5) != b""  # the port's user
        await settle(rt, lambda: 5 in srv.vports)
        assert await request_as(rt, d, tmp_path, 4243, 0) != b""  # any free port: no ACL
        with pytest.raises(SwitchError, match="in use"):
            srv.create_port(5)
        srv.close_port(5)  # the console's port/remove: endpoints first...
        assert 5 in sw.ports
        sw.remove_port(5)  # ...then the port
        assert 5 not in srv.persistent and 5 not in srv.acl  # gone with the port
        srv.close()
        sw.close()

    run(main)
