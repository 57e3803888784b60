"""vnet's VXLAN endpoint against the Linux vxlan device.

    ns A: kernel vxlan0 (VNI 42, dstport 4789) over veth  ==  ns B: vnet VTEP sockets
                                                                  |
                                                        vnet Switch (in this process)
                                                                  |
                                                          ns C: TAP, kernel IP stack

Kernel ping crosses the overlay both ways (A -> C and C -> A); a kernel vxlan
device with another VNI (43) gets nowhere and vnet counts its packets as dropped.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import need_tool, need_tun
from vnet.link.switch import Switch
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run

pytestmark = pytest.mark.privileged


async def sh(ns, *cmd: str, timeout: float = 20) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns.name, *cmd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode()


@pytest.mark.parametrize("entropy", ["1", "0"])
def test_kernel_vxlan_ping_both_ways_and_wrong_vni_dropped(netns_factory, entropy):
    need_tun()
    need_tool("ping")
    a, b, c = netns_factory("vxa"), netns_factory("vxb"), netns_factory("vxc")
    sfx = uuid.uuid4().hex[:6]
    va, vb, tap = f"va{sfx}", f"vb{sfx}", f"vt{sfx}"
    a.run("ip", "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b.name)
    a.run("ip", "addr", "add", "198.51.100.1/24", "dev", va)
    a.run("ip", "link", "set", va, "up")
    b.run("ip", "addr", "add", "198.51.100.2/24", "dev", vb)
    b.run("ip", "link", "set", vb, "up")
    for dev, vni, addr in (("vx42", "42", "192.0.2.1/24"), ("vx43", "43", "203.0.113.1/24")):
        a.run("ip", "link", "add", dev, "type", "vxlan", "id", vni, "local", "198.51.100.1",
              "remote", "198.51.100.2", "dstport", "4789", "dev", va)
        a.run("ip", "addr", "add", addr, "dev", dev)
        a.run("ip", "link", "set", dev, "up")

    async def main(rt: AsyncioRuntime) -> None:
        sw = Switch(rt)
        vx = await attach(f"vxlan://198.51.100.1:4789?vni=42&local=198.51.100.2&netns={b.name}"
                          f"&entropy={entropy}", sw.add_port(), rt)
        tp = await attach(f"tap://{tap}?netns={c.name}&mtu=1450", sw.add_port(), rt)
        try:
            c.run("ip", "addr", "add", "192.0.2.3/24", "dev", tap)
            c.run("ip", "addr", "add", "203.0.113.3/24", "dev", tap)
            rc, out = await sh(a, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.3")
            assert rc == 0, out
            rc, out = await sh(c, "ping", "-c", "3", "-i", "0.2", "-W", "2", "192.0.2.1")
            assert rc == 0, out
            # A bigger frame: 1400-byte ICMP fills the 1450-byte overlay MTU.
            rc, out = await sh(a, "ping", "-c", "2", "-s", "1400", "-M", "do", "-W", "2",
                               "192.0.2.3")
            assert rc == 0, out
            # vx43 has been sending IPv6 MLD/ND since it came up; all of it counted as dropped.
            before = vx.rx_wrong_vni
            rc, out = await sh(a, "ping", "-c", "2", "-i", "0.2", "-W", "1", "203.0.113.3")
            assert rc != 0, out
            assert vx.rx_wrong_vni > before  # its ARP requests arrived and were dropped
            # root: outer source ports are a hash of the inner headers; else our bound port
            assert vx.entropy == (entropy == "1")
            # The kernel learned our VTEP's inner MACs behind 198.51.100.2.
            _, fdb = await sh(a, "bridge", "fdb", "show", "dev", "vx42")
            assert "dst 198.51.100.2" in fdb
        finally:
            tp.close()
            vx.close()
            sw.close()

    run(main)
