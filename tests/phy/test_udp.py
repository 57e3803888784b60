"""UDP cables on loopback: two in-process switches, and vdeplug4's udp module as a peer."""

from __future__ import annotations

import asyncio
import socket

import pytest

from tests.conftest import need_tool
from tests.util import recorders
from vnet.link.port import connect
from vnet.link.switch import Switch
from vnet.phy.udp import parse_target
from vnet.phy.url import UrlError, attach, parse_url
from vnet.runtime.realtime import AsyncioRuntime, run

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")


def frame(dst: bytes, src: bytes, n: int, tag: int = 0) -> bytes:
    return dst + src + b"\x88\xb5" + bytes([tag & 0xFF]) * (n - 14)


def free_udp_ports(k: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(k)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


async def until(cond, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_url_forms():
    assert parse_target(parse_url("udp://5000:10.0.0.2:6000")) == (("", 5000), ("10.0.0.2", 6000))
    assert parse_target(parse_url("udp://127.0.0.1:5000:127.0.0.2:6000")) == (
        ("127.0.0.1", 5000), ("127.0.0.2", 6000))
    assert parse_target(parse_url("udp://h:6000?lport=5000")) == (("", 5000), ("h", 6000))
    assert parse_target(parse_url("udp://[::1]:5:[fe80::1]:6")) == (("::1", 5), ("fe80::1", 6))
    assert parse_target(parse_url('udp://"2000->host_b:3000"')) == (("", 2000), ("host_b", 3000))
    for bad in ("udp://h:6000", "udp://1:2:3:4:5", "udp://x:h:1", "udp://5000::6000"):
        with pytest.raises(UrlError):
            parse_target(parse_url(bad))


def test_udp_cable_between_two_switches():
    p1, p2 = free_udp_ports(2)

    async def main(rt: AsyncioRuntime) -> None:
        s1, s2 = Switch(rt, mtu=9000), Switch(rt, mtu=9000)
        (e1, g1), (e2, g2) = recorders("e1", "e2")
        connect(s1.add_port(), e1)
        connect(s2.add_port(), e2)
        u1 = await attach(f"udp://127.0.0.1:{p1}:127.0.0.1:{p2}", s1.add_port(), rt)
        u2 = await attach(f"udp://127.0.0.1:{p1}?lport={p2}&laddr=127.0.0.1", s2.add_port(), rt)
        try:
            sent = [frame(B, A, n, i) for i, n in enumerate((60, 1514, 9014))]
            for f in sent:
                e1.send(f)
            await until(lambda: len(g2) == 3)
            assert g2 == sent
            e2.send(frame(A, B, 100, 9))
            await until(lambda: len(g1) == 1)
            assert g1 == [frame(A, B, 100, 9)]
            # A stranger's datagram is not accepted (the socket is connected to the peer).
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(frame(A, B, 60, 1), ("127.0.0.1", p1))
            await asyncio.sleep(0.1)
            assert len(g1) == 1
        finally:
            u1.close()
            u2.close()
            s1.close()
            s2.close()

    run(main)


def test_udp_against_vdeplug4_udp_module():
    """vde_plug's own udp:// module at the other end, via its stdio stream."""
    need_tool("vde_plug")
    p1, p2 = free_udp_ports(2)

    async def main(rt: AsyncioRuntime) -> None:
        (ours, g_ours), (theirs, g_theirs) = recorders("ours", "theirs")
        u = await attach(f"udp://127.0.0.1:{p1}:127.0.0.1:{p2}", ours, rt)
        plug = await attach(f"cmd://vde_plug udp://127.0.0.1:{p2}->127.0.0.1:{p1}", theirs, rt)
        try:
            k = 0
            while not g_ours:  # until vde_plug has bound its socket
                theirs.send(frame(A, B, 60, k))
                k += 1
                await asyncio.sleep(0.05)
                assert k < 100
            sent = [frame(B, A, n, i) for i, n in enumerate((60, 333, 1514))]
            for f in sent:
                ours.send(f)
            await until(lambda: len(g_theirs) == 3)
            assert g_theirs == sent
            assert g_ours[0] == frame(A, B, 60, g_ours[0][-1])
        finally:
            plug.close()
            u.close()

    run(main)
