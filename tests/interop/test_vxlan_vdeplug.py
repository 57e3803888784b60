"""Multicast VXLAN: vnet's VTEP with vdeplug4's `vxlan://` module and with a Linux
vxlan device in `group` mode, each in its own namespace joined by a veth."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import need_tool, need_tun
from tests.util import recorders
from vnet.link.switch import Switch
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run

pytestmark = pytest.mark.privileged

A = bytes.fromhex("020000000a01")
B = bytes.fromhex("020000000b02")


def frame(dst: bytes, src: bytes, n: int, tag: int) -> bytes:
    return dst + src + b"\x88\xb5" + bytes([tag & 0xFF]) * (n - 14)


def pair(netns_factory):
    a, b = netns_factory("vma"), netns_factory("vmb")
    sfx = uuid.uuid4().hex[:6]
    va, vb = f"ma{sfx}", f"mb{sfx}"
    a.run("ip", "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b.name)
    for ns, dev, ip in ((a, va, "198.51.100.1/24"), (b, vb, "198.51.100.2/24")):
        ns.run("ip", "addr", "add", ip, "dev", dev)
        ns.run("ip", "link", "set", dev, "up")
        ns.run("ip", "route", "add", "224.0.0.0/4", "dev", dev)
    return a, b, va, vb


async def until(cond, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def test_vnet_vtep_with_vdeplug4_vxlan(netns_factory):
    need_tool("vde_plug")
    a, b, va, vb = pair(netns_factory)

    async def main(rt: AsyncioRuntime) -> None:
        (ours, g_ours), (theirs, g_theirs) = recorders("ours", "theirs")
        vx = await attach(f"vxlan://239.0.0.1?vni=1&dev={vb}&netns={b.name}", ours, rt)
        plug = await attach(f"cmd://ip netns exec {a.name} vde_plug vxlan://239.0.0.1", theirs, rt)
        try:
            k = 0
            while not g_ours:  # until vde_plug has joined the group
                theirs.send(frame(b"\xff" * 6, B, 60, k))
                k += 1
                await asyncio.sleep(0.05)
                assert k < 100, "nothing arrived from vde_plug's vxlan module"
            sent = [frame(B, A, n, i) for i, n in enumerate((60, 500, 1400))]
            for f in sent:
                ours.send(f)
            await until(lambda: len(g_theirs) >= 3)
            assert g_theirs[:3] == sent
            assert vx.rx_wrong_vni == 0 and vx.rx_bad == 0
        finally:
            plug.close()
            vx.close()

    run(main)


def test_vnet_vtep_with_linux_vxlan_group(netns_factory):
    need_tun()
    need_tool("ping")
    a, b, va, vb = pair(netns_factory)
    c = netns_factory("vmc")
    tap = f"vt{uuid.uuid4().hex[:6]}"
    a.run("ip", "link", "add", "vx7", "type", "vxlan", "id", "7", "group", "239.1.1.1",
          "dev", va, "dstport", "4789", "ttl", "1")
    a.run("ip", "addr", "add", "192.0.2.1/24", "dev", "vx7")
    a.run("ip", "link", "set", "vx7", "up")

    async def main(rt: AsyncioRuntime) -> None:
        sw = Switch(rt)
        vx = await attach(f"vxlan://239.1.1.1?vni=7&dev={vb}&local=198.51.100.2&netns={b.name}",
                          sw.add_port(), rt)
        tp = await attach(f"tap://{tap}?netns={c.name}&mtu=1450", sw.add_port(), rt)
        try:
            c.run("ip", "addr", "add", "192.0.2.3/24", "dev", tap)
            for ns, dst in ((a, "192.0.2.3"), (c, "192.0.2.1")):
                proc = await asyncio.create_subprocess_exec(
                    "ip", "netns", "exec", ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                    dst, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
                out, _ = await asyncio.wait_for(proc.communicate(), 20)
                assert proc.returncode == 0, out.decode()
        finally:
            tp.close()
            vx.close()
            sw.close()

    run(main)


def test_two_vnet_vteps_over_ipv6_multicast(netns_factory):
    a, b, va, vb = pair(netns_factory)
    for ns, dev, ip in ((a, va, "2001:db8::1/64"), (b, vb, "2001:db8::2/64")):
        ns.run("ip", "-6", "addr", "add", ip, "dev", dev, "nodad")

    async def main(rt: AsyncioRuntime) -> None:
        (pa, ga), (pb, gb) = recorders("a", "b")
        xa = await attach(f"vxlan://[ff05::4242]?vni=9&dev={va}&netns={a.name}", pa, rt)
        xb = await attach(f"vxlan://[ff05::4242]?vni=9&dev={vb}&netns={b.name}", pb, rt)
        try:
            k = 0
            while not gb:  # until both have joined
                pa.send(frame(B, A, 64, k))
                k += 1
                await asyncio.sleep(0.05)
                assert k < 100, "nothing crossed IPv6 multicast"
            pb.send(frame(A, B, 1000, 1))
            await until(lambda: len(ga) == 1)
            assert ga == [frame(A, B, 1000, 1)] and gb[0][:12] == B + A
        finally:
            xa.close()
            xb.close()

    run(main)
