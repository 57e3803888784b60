"""Sim-time topologies for the host-stack tests: hosts and a router on vnet switches."""

from __future__ import annotations

from vnet.link.link import Link
from vnet.link.switch import Switch
from vnet.runtime.sim import SimRuntime
from vnet.stack.host import Host
from vnet.stack.ra_daemon import RaDaemon


class Net:
    """a -- s1 -- r -- s2 -- b; r routes 10.0.1/24, 10.0.2/24, 2001:db8:1::/64, 2001:db8:2::/64
    and advertises the IPv6 prefixes; a and b configure IPv6 by SLAAC."""

    def __init__(self, seed: int = 1, delay: float = 0.001, mtu_b: int = 1500,
                 ra: bool = True) -> None:
        rt = self.rt = SimRuntime(seed=seed)
        self.s1 = Switch(rt, 8, name="s1")
        self.s2 = Switch(rt, 8, name="s2")
        self.a = Host(rt, "a")
        self.b = Host(rt, "b")
        self.r = Host(rt, "r", router=True)
        ia = self.a.add_interface("eth0", mac=bytes.fromhex("020000000a01"))
        ib = self.b.add_interface("eth0", mac=bytes.fromhex("020000000b01"), mtu=mtu_b)
        r0 = self.r.add_interface("eth0", mac=bytes.fromhex("020000000101"))
        r1 = self.r.add_interface("eth1", mac=bytes.fromhex("020000000102"), mtu=mtu_b)
        self.links = [Link(rt, self.s1.add_port(), ia.port, delay=delay),
                      Link(rt, self.s1.add_port(), r0.port, delay=delay),
                      Link(rt, self.s2.add_port(), ib.port, delay=delay),
                      Link(rt, self.s2.add_port(), r1.port, delay=delay)]
        self.a.add_address("eth0", "10.0.1.2/24")
        self.a.add_route("0.0.0.0/0", via="10.0.1.1")
        self.b.add_address("eth0", "10.0.2.2/24")
        self.b.add_route("0.0.0.0/0", via="10.0.2.1")
        self.r.add_address("eth0", "10.0.1.1/24")
        self.r.add_address("eth1", "10.0.2.1/24")
        self.r.add_address("eth0", "2001:db8:1::1/64")
        self.r.add_address("eth1", "2001:db8:2::1/64")
        if ra:
            RaDaemon(self.r, min_interval=3, max_interval=10)

    def slaac(self, h: Host) -> str:
        rows = [x for x in h.describe_addresses() if x["origin"] == "slaac"
                and x["state"] == "preferred"]
        assert rows, h.describe_addresses()
        return rows[0]["addr"].split("/")[0]

    def ping(self, src: Host, dst: str, size: int = 56, seq: int = 1, until: float = 2.0):
        got: list = []
        assert src.ping(dst, 7, seq, size, lambda m, n: got.append((m, n)))
        self.rt.run(until=self.rt.now() + until)
        return got
