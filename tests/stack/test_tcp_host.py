"""TCP and UDP over the real host stack: sim time through a router (PMTU), and the
asyncio streams / datagram API in real time between two hosts on an in-memory cable."""

from __future__ import annotations

import asyncio
import random

import pytest

from tests.stack.topo import Net
from vnet.runtime.realtime import run as run_realtime
from vnet.stack.host import Host
from vnet.stack.sockets import (
    create_datagram_endpoint,
    open_connection,
    start_server,
    tcp_of,
    udp_of,
)


@pytest.mark.parametrize("v6", [False, True])
def test_transfer_through_router_honours_packet_too_big(v6: bool) -> None:
    net = Net(seed=2, ra=False)  # no RA, so nobody learns the MTU but by ICMP
    net.r.iface("eth1").mtu = 1400  # narrower link behind the router; b itself has 1500
    net.a.add_address("eth0", "2001:db8:1::2/64")
    net.a.add_route("::/0", via="2001:db8:1::1")
    net.b.add_address("eth0", "2001:db8:2::2/64")
    net.b.add_route("::/0", via="2001:db8:2::1")
    net.rt.run(until=5)  # DAD
    dst = "2001:db8:2::2" if v6 else "10.0.2.2"
    data = random.Random(1).randbytes(1_000_000)
    got = bytearray()

    def accept(c):
        c.on_data = got.extend
        c.on_eof = c.close

    tcp_of(net.b).listen(5001, accept)
    c = tcp_of(net.a).connect(dst, 5001)
    ends: list = []
    c.on_established = lambda: (c.send(data), c.close())
    c.on_close = ends.append
    net.rt.run(until=net.rt.now() + 60)
    assert bytes(got) == data and ends == [None]
    hdr = 60 if v6 else 40
    assert c.mss == 1400 - hdr  # learned from the router's ICMP error, not the SYN
    assert net.a.stats["pmtu_updates"] >= 1


def test_udp_both_families_in_sim() -> None:
    net = Net(seed=3)
    net.rt.run(until=30)
    got: list = []
    srv = udp_of(net.b).bind(7, lambda d, a, p, m: (got.append(d), srv.sendto(d.upper(), a, p)))
    back: list = []
    cli = udp_of(net.a).bind(0, lambda d, a, p, m: back.append((d, str(a), p)))
    cli.sendto(b"hello v4", "10.0.2.2", 7)
    cli.sendto(b"hello v6", net.slaac(net.b), 7)
    cli.sendto(b"x" * 3000, "10.0.2.2", 7)  # fragmented and reassembled by the IP layer
    net.rt.run(until=net.rt.now() + 2)
    assert sorted(got) == sorted([b"hello v4", b"hello v6", b"x" * 3000])
    assert (b"HELLO V4", "10.0.2.2", 7) in back and len(back) == 3
    assert udp_of(net.b).rx_no_port == 0 and udp_of(net.b).rx_bad_checksum == 0


def _two_hosts(rt):
    a, b = Host(rt, "a"), Host(rt, "b")
    ia, ib = a.add_interface("eth0"), b.add_interface("eth0")
    # a cable with a loop hop in between, as a TAP or socket attachment behaves
    ia.port.attach(lambda f: rt.call_soon(ib.port.deliver, f))
    ib.port.attach(lambda f: rt.call_soon(ia.port.deliver, f))
    a.add_address("eth0", "10.1.0.1/24")
    b.add_address("eth0", "10.1.0.2/24")
    a.add_address("eth0", "fd01::1/64")
    b.add_address("eth0", "fd01::2/64")
    return a, b


def test_asyncio_streams_and_datagrams_real_time() -> None:
    async def main(rt):
        a, b = _two_hosts(rt)
        await asyncio.sleep(1.2)  # let DAD of the static IPv6 addresses finish

        async def echo(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await start_server(b, echo, 7000)
        blob = random.Random(5).randbytes(300_000)
        out = []
        for dst in ("10.1.0.2", "fd01::2"):
            reader, writer = await open_connection(a, dst, 7000)
            assert writer.get_extra_info("peername") == (dst, 7000)

            async def pump(w=writer):
                w.write(blob)
                await w.drain()
                w.write_eof()

            task = asyncio.ensure_future(pump())
            got = await asyncio.wait_for(reader.read(-1), 20)
            await task
            writer.close()
            out.append(got == blob)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.wait_for(open_connection(a, "10.1.0.2", 7001), 10)
        server.close()

        class Proto(asyncio.DatagramProtocol):
            def __init__(self):
                self.got = asyncio.Queue()

            def connection_made(self, transport):
                self.t = transport

            def datagram_received(self, data, addr):
                self.got.put_nowait((data, addr))

        ts, ps = await create_datagram_endpoint(b, Proto, local_port=5353)
        tc, pc = await create_datagram_endpoint(a, Proto, remote_addr=("fd01::2", 5353))
        tc.sendto(b"query")
        data, addr = await asyncio.wait_for(ps.got.get(), 5)
        ts.sendto(data[::-1], addr)
        reply = await asyncio.wait_for(pc.got.get(), 5)
        tc.close()
        ts.close()
        return out, data, reply

    out, data, reply = run_realtime(main, seed=1)
    assert out == [True, True]
    assert data == b"query" and reply[0] == b"yreuq" and reply[1] == ("fd01::2", 5353)


def test_mtu_learned_by_another_connection() -> None:
    """Connection 2 is open before connection 1 gets the router's ICMP error; the host then
    refuses 2's big segments locally (DF), and 2 must shrink its MSS by itself."""
    net = Net(seed=4, ra=False)
    net.r.iface("eth1").mtu = 1400
    net.rt.run(until=3)
    got: dict[int, bytearray] = {}

    def accept(c):
        buf = got.setdefault(c.rport, bytearray())
        c.on_data = buf.extend
        c.on_eof = c.close

    tcp_of(net.b).listen(5001, accept)
    c1 = tcp_of(net.a).connect("10.0.2.2", 5001)
    c2 = tcp_of(net.a).connect("10.0.2.2", 5001)
    net.rt.run(until=net.rt.now() + 1)
    assert c2.mss == 1460
    data = random.Random(2).randbytes(200_000)
    c1.send(data)
    c1.close()
    net.rt.run(until=net.rt.now() + 5)
    assert bytes(got[c1.lport]) == data and net.a.path_mtu(c2.remote) == 1400
    c2.send(data)
    c2.close()
    net.rt.run(until=net.rt.now() + 20)
    assert bytes(got[c2.lport]) == data and c2.mss == 1360


def test_udp_to_a_closed_port_gets_port_unreachable() -> None:
    net = Net(seed=5)
    net.rt.run(until=30)
    errors: list = []
    udp_of(net.b)  # b has UDP but nothing bound on port 9
    cli = udp_of(net.a).bind(0, lambda d, a, p, m: None)
    net.a.register_error_handler(17, lambda meta, t, c, q: errors.append((meta.version, t, c)))
    cli.sendto(b"anyone?", "10.0.2.2", 9)
    cli.sendto(b"anyone?", net.slaac(net.b), 9)
    net.rt.run(until=net.rt.now() + 2)
    assert (4, 3, 3) in errors and (6, 1, 4) in errors
    assert udp_of(net.b).rx_no_port == 2
