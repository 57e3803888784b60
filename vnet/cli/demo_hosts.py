"""Second half of `vnet demo`: two user-space hosts and a router on vnet switches.

    a -- s1 -- r -- (wirefilter cable) -- s2 -- b

The router advertises IPv6 prefixes (the hosts configure themselves by SLAAC),
routes IPv4 between 10.0.1/24 and 10.0.2/24, and a TCP transfer from a to b
crosses the emulated cable. Written against a `wait(seconds)` coroutine so the
same steps run in simulated or real time.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Awaitable, Callable
from typing import Any

from vnet.link.link import Link
from vnet.link.switch import Switch
from vnet.link.wirefilter import WireFilter
from vnet.runtime.base import Runtime
from vnet.stack.host import Host
from vnet.stack.ra_daemon import RaDaemon
from vnet.stack.sockets import tcp_of

Wait = Callable[[float], Awaitable[None]]


class HostsNet:
    def __init__(self, rt: Runtime, delay_ms: float, loss: float, rate_bps: float) -> None:
        self.rt = rt
        self.s1 = Switch(rt, 8, name="s1")
        self.s2 = Switch(rt, 8, name="s2")
        self.a = Host(rt, "a")
        self.b = Host(rt, "b")
        self.r = Host(rt, "r", router=True)
        ia = self.a.add_interface("eth0", mac=bytes.fromhex("020000000a01"))
        ib = self.b.add_interface("eth0", mac=bytes.fromhex("020000000b01"))
        r0 = self.r.add_interface("eth0", mac=bytes.fromhex("020000000101"))
        r1 = self.r.add_interface("eth1", mac=bytes.fromhex("020000000102"))
        Link(rt, self.s1.add_port(), ia.port, delay=0.0005)
        Link(rt, self.s1.add_port(), r0.port, delay=0.0005)
        Link(rt, self.s2.add_port(), ib.port, delay=0.0005)
        # wirefilter's bandwidth is in bytes/s; a channel buffer of ~100 ms of traffic
        # keeps the queue (and TCP's RTT) bounded, like a real bottleneck's
        self.wf = WireFilter(rt, r1.port, self.s2.add_port(), delay=delay_ms, loss=loss,
                             bandwidth=rate_bps / 8,
                             chanbufsize=max(16 * 1514, int(rate_bps / 8 * 0.1)))
        self.a.add_address("eth0", "10.0.1.2/24")
        self.a.add_route("0.0.0.0/0", via="10.0.1.1")
        self.b.add_address("eth0", "10.0.2.2/24")
        self.b.add_route("0.0.0.0/0", via="10.0.2.1")
        self.r.add_address("eth0", "10.0.1.1/24")
        self.r.add_address("eth1", "10.0.2.1/24")
        self.r.add_address("eth0", "2001:db8:1::1/64")
        self.r.add_address("eth1", "2001:db8:2::1/64")
        RaDaemon(self.r, min_interval=3, max_interval=4)

    def global6(self, h: Host) -> str | None:
        for row in h.describe_addresses():
            if row["origin"] == "slaac" and row["state"] == "preferred":
                return str(row["addr"]).split("/")[0]
        return None


async def ping_series(rt: Runtime, wait: Wait, src: Host, dst: str, count: int,
                      ident: int) -> tuple[int, list[float]]:
    rtts: list[float] = []
    sent = 0
    for seq in range(1, count + 1):
        t0 = rt.now()
        if src.ping(dst, ident, seq, 56, lambda m, n, t0=t0: rtts.append(rt.now() - t0)):
            sent += 1
        await wait(0.2)
    await wait(1.0)
    return sent, rtts


def fmt_rtts(sent: int, rtts: list[float]) -> str:
    if not rtts:
        return f"{sent} sent, 0 received"
    return (f"{sent} sent, {len(rtts)} received, rtt min/avg/max "
            f"{min(rtts)*1e3:.2f}/{statistics.fmean(rtts)*1e3:.2f}/{max(rtts)*1e3:.2f} ms")


async def run_hosts(rt: Runtime, wait: Wait, args: Any, out: Callable[[str], None]) -> bool:
    rate = args.host_rate * 1e6
    net = HostsNet(rt, args.host_delay, args.host_loss, rate)
    out(f"hosts: a -- s1 -- router -- [{args.host_delay:g} ms, {args.host_loss:g} % loss, "
        f"{args.host_rate:g} Mbit/s] -- s2 -- b")
    t0 = rt.now()
    while rt.now() - t0 < 30 and not (net.global6(net.a) and net.global6(net.b)):
        await wait(0.5)
    a6, b6 = net.global6(net.a), net.global6(net.b)
    if not (a6 and b6):
        out("  SLAAC: no global address after 30 s")
        return False
    out(f"  SLAAC from the router's RAs after {rt.now() - t0:.1f} s: a={a6}  b={b6}")
    sent, rtts = await ping_series(rt, wait, net.a, "10.0.2.2", 10, 0x1001)
    out(f"  ping a -> 10.0.2.2: {fmt_rtts(sent, rtts)}")
    ok = bool(rtts)
    sent, rtts = await ping_series(rt, wait, net.a, b6, 10, 0x1002)
    out(f"  ping6 a -> {b6}: {fmt_rtts(sent, rtts)}")
    ok = ok and bool(rtts)
    data = random.Random(args.seed).randbytes(args.tcp_bytes)
    got = bytearray()
    done: list[float] = []

    def accept(c: Any) -> None:
        c.on_data = got.extend
        c.on_eof = lambda: (done.append(rt.now()), c.close())

    tcp_of(net.b).listen(5001, accept)
    c = tcp_of(net.a).connect(b6, 5001)
    start: list[float] = []
    c.on_established = lambda: (start.append(rt.now()), c.send(data), c.close())
    limit = rt.now() + 120
    while not done and rt.now() < limit:
        await wait(0.5)
    if not done or not start:
        out(f"  TCP a -> b: transfer did not finish ({len(got)} of {len(data)} bytes)")
        return False
    secs = done[0] - start[0]
    intact = bytes(got) == data
    out(f"  TCP a -> [{b6}]:5001: {len(got):,} bytes in {secs:.2f} s = "
        f"{len(got) * 8 / secs / 1e6:.2f} Mbit/s goodput over a {args.host_rate:g} Mbit/s "
        f"cable, data {'intact' if intact else 'CORRUPTED'}; cable: {net.wf.summary()}")
    return ok and intact
