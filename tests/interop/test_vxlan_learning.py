"""Flood-and-learn VXLAN (RFC 7348 section 4.2) between vnet and two Linux vxlan devices.

    ns A: kernel vx (VNI 42, group 239.1.1.42) --+
    ns B: kernel vx (VNI 42, group 239.1.1.42) --+-- bridge in ns U (the underlay)
    ns V: vnet VTEP on the group --------------- +
            |
          vnet Switch (this process) -- ns C: TAP with 10.42.0.3

Kernel A pings C: the echo requests reach vnet through the group, vnet learns A's
inner MAC behind A's underlay address, and sends the replies to A alone. With
learning off, the same replies go to the group and so also reach B's device.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import need_tool, need_tun
from tests.interop.test_vxlan_kernel import sh
from vnet.link.switch import Switch
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run

pytestmark = pytest.mark.privileged
GROUP = "239.1.1.42"


def rx_packets(ns, dev: str) -> int:
    return int(ns.run("cat", f"/sys/class/net/{dev}/statistics/rx_packets").stdout)


@pytest.mark.parametrize("learning", ["1", "0"])
def test_replies_go_to_the_learned_vtep_not_the_group(netns_factory, learning):
    need_tun()
    need_tool("ping", "bridge")
    u, a, b, v, c = (netns_factory(p) for p in ("vlu", "vla", "vlb", "vlv", "vlc"))
    sfx = uuid.uuid4().hex[:5]
    for ns in (a, b, c):  # no IPv6 chatter (ND, MLD) on the overlay: only what we send counts
        for scope in ("all", "default"):
            ns.run("sysctl", "-qw", f"net.ipv6.conf.{scope}.disable_ipv6=1")
    u.run("ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    u.run("ip", "link", "set", "br0", "up")
    underlay = {a: "10.200.0.1", b: "10.200.0.2", v: "10.200.0.3"}
    for i, (ns, ip) in enumerate(underlay.items()):
        inner, outer = f"u{i}{sfx}", f"p{i}{sfx}"
        u.run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns.name)
        u.run("ip", "link", "set", outer, "master", "br0", "up")
        ns.run("ip", "addr", "add", f"{ip}/24", "dev", inner)
        ns.run("ip", "link", "set", inner, "up")
        underlay[ns] = inner  # from here on: the underlay device name in ns
    for ns, addr in ((a, "10.42.0.1/24"), (b, "10.42.0.2/24")):
        ns.run("ip", "link", "add", "vx", "type", "vxlan", "id", "42", "group", GROUP,
               "dstport", "4789", "dev", underlay[ns], "ttl", "4")
        ns.run("ip", "addr", "add", addr, "dev", "vx")
        ns.run("ip", "link", "set", "vx", "up")
    tap = f"vt{sfx}"

    async def main(rt: AsyncioRuntime) -> None:
        sw = Switch(rt)
        vx = await attach(f"vxlan://{GROUP}?vni=42&local=10.200.0.3&dev={underlay[v]}"
                          f"&netns={v.name}&ttl=4&learning={learning}", sw.add_port(), rt)
        tp = await attach(f"tap://{tap}?netns={c.name}&mtu=1450", sw.add_port(), rt)
        try:
            c.run("ip", "addr", "add", "10.42.0.3/24", "dev", tap)
            c.run("ip", "link", "set", tap, "up")
            # warm up: ARP both ways, and let B's device learn nothing of interest
            rc, out = await sh(a, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.42.0.3")
            assert rc == 0, out
            await asyncio.sleep(0.5)
            before_b = rx_packets(b, "vx")
            learned_before = vx.tx_learned
            rc, out = await sh(a, "ping", "-c", "20", "-i", "0.05", "-W", "2", "10.42.0.3")
            assert rc == 0 and " 0% packet loss" in out, out
            extra_at_b = rx_packets(b, "vx") - before_b
            if learning == "1":
                assert vx.tx_learned - learned_before >= 20  # every reply went to A alone
                assert extra_at_b < 5, extra_at_b  # B saw none of the 20 replies (ARP may)
                mac_a = bytes.fromhex(a.run("cat", "/sys/class/net/vx/address").stdout
                                      .strip().replace(":", ""))
                assert vx.fdb[mac_a][0] == "10.200.0.1"  # A's MAC learned behind A's address
            else:
                assert vx.tx_learned == 0
                assert extra_at_b >= 20, extra_at_b  # the replies flooded to the group
            # and B can still reach C (its first frames flood, then it is learned too)
            rc, out = await sh(b, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.42.0.3")
            assert rc == 0, out
        finally:
            vx.close()
            tp.close()
            sw.close()

    run(main)
