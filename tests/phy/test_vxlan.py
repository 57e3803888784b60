"""Two vnet switches joined by VXLAN on loopback; malformed and foreign packets counted."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.phy.test_udp import A, B, frame, free_udp_ports, until
from tests.util import recorders
from vnet.link.port import Port, connect
from vnet.link.switch import Switch
from vnet.phy.url import UrlError, attach
from vnet.phy.vxlan import src_port
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.wire import vxlan


def test_two_switches_over_vxlan_and_bad_packets():
    p1, p2 = free_udp_ports(2)

    async def main(rt: AsyncioRuntime) -> None:
        s1, s2 = Switch(rt, mtu=9000), Switch(rt, mtu=9000)
        (e1, g1), (e2, g2) = recorders("e1", "e2")
        connect(s1.add_port(), e1)
        connect(s2.add_port(), e2)
        v1 = await attach(f"vxlan://127.0.0.1:{p2}?vni=7&local=127.0.0.1&lport={p1}",
                          s1.add_port(), rt)
        v2 = await attach(f"vxlan://127.0.0.1:{p1}?vni=7&local=127.0.0.1&lport={p2}",
                          s2.add_port(), rt)
        try:
            sent = [frame(B, A, n, i) for i, n in enumerate((60, 1514, 9014))]
            for f in sent:
                e1.send(f)
            await until(lambda: len(g2) == 3)
            assert g2 == sent
            e2.send(frame(A, B, 99, 1))
            await until(lambda: len(g1) == 1)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                f = frame(A, B, 60, 2)
                s.sendto(vxlan.build(8) + f, ("127.0.0.1", p1))  # another VNI
                s.sendto(b"\x00" * 8 + f, ("127.0.0.1", p1))  # I flag clear
                s.sendto(vxlan.build(7)[:5], ("127.0.0.1", p1))  # runt
                s.sendto(b"\x0c\xff\xff\xff\x00\x00\x07\xff" + f, ("127.0.0.1", p1))  # reserved set
            await until(lambda: v1.rx_wrong_vni + v1.rx_bad == 3 and len(g1) == 2)
            assert v1.rx_wrong_vni == 1 and v1.rx_bad == 2
            assert g1[1] == frame(A, B, 60, 2)  # reserved bits ignored on receipt (RFC 7348)
        finally:
            v1.close()
            v2.close()
            s1.close()
            s2.close()

    run(main)


def test_source_port_hash_is_per_flow_and_in_range():
    ip = bytes.fromhex("4500003c000040004006") + bytes(2) + bytes([10, 0, 0, 1, 10, 0, 0, 2])
    tcp1 = (1234).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(16)
    tcp2 = (1235).to_bytes(2, "big") + (80).to_bytes(2, "big") + bytes(16)
    f1 = B + A + b"\x08\x00" + ip + tcp1
    f1b = B + A + b"\x08\x00" + ip[:4] + b"\x12\x34" + ip[6:] + tcp1 + b"payload"
    f2 = B + A + b"\x08\x00" + ip + tcp2
    assert src_port(f1) == src_port(f1b)  # same flow, different IP ID and length
    assert src_port(f1) != src_port(f2)
    for f in (f1, f2, frame(B, A, 60), b"\xff" * 14):
        assert 49152 <= src_port(f) <= 65535


def test_url_errors():
    async def main(rt: AsyncioRuntime) -> None:
        for url, msg in [("vxlan://127.0.0.1", "VXLAN network id"),
                         ("vxlan://127.0.0.1?vni=16777216", "out of range"),
                         ("vxlan://127.0.0.1?vni=1&local=::1", "same IP version"),
                         ("vxlan://127.0.0.1?vni=1&bogus=2", "unknown option")]:
            with pytest.raises(UrlError, match=msg):
                await attach(url, Port(), rt)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            with pytest.raises(UrlError, match="cannot bind"):
                await attach(f"vxlan://127.0.0.1?vni=1&local=127.0.0.1&lport={s.getsockname()[1]}",
                             Port(), rt)
        await asyncio.sleep(0)

    run(main)


def test_vxlan_over_ipv6_loopback():
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s1, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s2:
        s1.bind(("::1", 0))
        s2.bind(("::1", 0))
        p1, p2 = s1.getsockname()[1], s2.getsockname()[1]

    async def main(rt: AsyncioRuntime) -> None:
        (a, ga), (b, gb) = recorders("a", "b")
        va = await attach(f"vxlan://[::1]:{p2}?vni=99&local=::1&lport={p1}", a, rt)
        vb = await attach(f"vxlan://[::1]:{p1}?vni=99&local=::1&lport={p2}", b, rt)
        try:
            assert not va.entropy  # IPv6 sends from the bound port
            a.send(frame(B, A, 1000, 3))
            b.send(frame(A, B, 64, 4))
            await until(lambda: ga and gb)
            assert gb == [frame(B, A, 1000, 3)] and ga == [frame(A, B, 64, 4)]
        finally:
            va.close()
            vb.close()

    run(main)
