"""UDP layer over the fake network layer (sim time)."""

from __future__ import annotations

import errno
import ipaddress

import pytest

from tests.stack.netsim import FakeNet, IpMeta, Path
from vnet.runtime import SimRuntime
from vnet.stack.udp import Udp
from vnet.wire import udp as wudp
from vnet.wire.checksum import ones_sum


def setup(v6: bool = False):
    rt = SimRuntime(seed=4)
    path = Path(rt, delay=0.002)
    a_addr, b_addr = ("fd00::1", "fd00::2") if v6 else ("10.0.0.1", "10.0.0.2")
    a, b = Udp(FakeNet(rt, path, a_addr)), Udp(FakeNet(rt, path, b_addr))
    return rt, a, b, ipaddress.ip_address(a_addr), ipaddress.ip_address(b_addr)


@pytest.mark.parametrize("v6", [False, True])
def test_request_reply(v6: bool) -> None:
    rt, a, b, aa, ba = setup(v6)
    got = []
    srv = b.bind(7, lambda d, addr, port, meta: srv.sendto(d[::-1], addr, port))
    cli = a.bind(0, lambda d, addr, port, meta: got.append((d, addr, port)))
    assert 49152 <= cli.port <= 65535
    for i in range(10):
        cli.sendto(bytes([i]) * (i * 100), ba, 7)
    rt.run(until=1)
    assert [g[0] for g in got] == [bytes([i]) * (i * 100) for i in range(10)]
    assert all(g[1] == ba and g[2] == 7 for g in got)
    assert srv.rx_datagrams == 10 and cli.tx_datagrams == 10


def test_bad_and_unwanted_datagrams_counted() -> None:
    rt, a, b, aa, ba = setup()
    got = []
    b.bind(9, lambda d, *_: got.append(d))
    meta = IpMeta(aa, ba)
    pseudo = ones_sum(aa.packed + ba.packed) + 17
    good = wudp.build(1000, 9, b"payload", pseudo)
    bad = bytearray(good)
    bad[-1] ^= 1
    b.receive(meta, bytes(bad))
    b.receive(meta, good[:5])
    b.receive(meta, good[:4] + b"\x00\x40" + good[6:])  # length beyond the datagram
    b.receive(meta, wudp.build(1000, 10, b"nobody", pseudo))
    b.receive(meta, good[:6] + b"\x00\x00" + good[8:])  # no checksum: allowed over IPv4
    b.receive(meta, good + b"\x00" * 6)  # link padding after the datagram
    assert (b.rx_bad_checksum, b.rx_bad, b.rx_no_port) == (1, 2, 1)
    assert got == [b"payload", b"payload"]


def test_zero_checksum_refused_over_ipv6() -> None:
    rt, a, b, aa, ba = setup(v6=True)
    got = []
    b.bind(9, lambda d, *_: got.append(d))
    d = wudp.build(1000, 9, b"x", ones_sum(aa.packed + ba.packed) + 17)
    b.receive(IpMeta(aa, ba, version=6), d[:6] + b"\x00\x00" + d[8:])
    assert got == [] and b.rx_bad_checksum == 1


def test_bind_errors_close_and_icmp_errors() -> None:
    rt, a, b, aa, ba = setup()
    s = b.bind(53)
    with pytest.raises(OSError) as e:
        b.bind(53)
    assert e.value.errno == errno.EADDRINUSE
    with pytest.raises(ValueError):
        b.bind(70000)
    s.close()
    b.bind(53)
    cli = a.bind(0)
    errs = []
    cli.on_error = lambda t, c, addr, port: errs.append((t, c, addr, port))
    quoted = wudp.build(cli.port, 53, b"q", 0)
    a.icmp_error(IpMeta(aa, ba), 3, 3, quoted)
    assert errs == [(3, 3, ba, 53)]
    cli.close()
    with pytest.raises(OSError):
        cli.sendto(b"x", ba, 53)
