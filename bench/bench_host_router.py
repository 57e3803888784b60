"""iperf3 between two Linux namespaces through a vnet router (user-space forwarding between
two TAPs), IPv4 and IPv6, with the kernel routing the same traffic as the reference in the
same run.

    sudo python bench/bench_host_router.py [SECONDS]

Needs root, iperf3 and iproute2.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid

from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.stack.host import Host

SECONDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


async def sh(ns: str, *cmd: str) -> str:
    p = await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, *cmd,
                                             stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.STDOUT)
    out, _ = await p.communicate()
    return out.decode()


async def iperf(ns_client: str, server_addr: str) -> float:
    out = await sh(ns_client, "iperf3", "-c", server_addr, "-t", str(SECONDS), "-J")
    try:
        return json.loads(out)["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError):
        print(out[-500:])
        return float("nan")


def main() -> None:
    tag = uuid.uuid4().hex[:6]
    na, nb, nk = f"vra{tag}", f"vrb{tag}", f"vrk{tag}"
    for n in (na, nb, nk):
        subprocess.run(["ip", "netns", "add", n], check=True)
    res: dict[str, float] = {}

    async def go(rt: AsyncioRuntime) -> None:
        r = Host(rt, "vr", router=True)
        e0, e1 = r.add_interface("eth0"), r.add_interface("eth1")
        ta, tb = f"ta{tag}", f"tb{tag}"
        a0 = await attach(f"tap://{ta}?netns={na}", e0.port, rt)
        a1 = await attach(f"tap://{tb}?netns={nb}", e1.port, rt)
        srv = None
        try:
            r.add_address("eth0", "10.90.1.1/24")
            r.add_address("eth1", "10.90.2.1/24")
            r.add_address("eth0", "fd90:1::1/64")
            r.add_address("eth1", "fd90:2::1/64")
            for ns, tap, n in ((na, ta, 1), (nb, tb, 2)):
                await sh(ns, "ip", "addr", "add", f"10.90.{n}.2/24", "dev", tap)
                await sh(ns, "ip", "addr", "add", f"fd90:{n}::2/64", "dev", tap, "nodad")
                await sh(ns, "ip", "route", "add", "default", "via", f"10.90.{n}.1")
                await sh(ns, "ip", "-6", "route", "add", "default", "via", f"fd90:{n}::1")
            # reference: namespace nk routes the same between veths
            for side, ns, n in (("a", na, 3), ("b", nb, 4)):
                subprocess.run(["ip", "link", "add", f"k{side}{tag}", "netns", ns, "type", "veth",
                                "peer", "name", f"r{side}{tag}", "netns", nk], check=True)
                await sh(ns, "ip", "addr", "add", f"10.90.{n}.2/24", "dev", f"k{side}{tag}")
                await sh(ns, "ip", "addr", "add", f"fd90:{n}::2/64", "dev", f"k{side}{tag}", "nodad")
                await sh(ns, "ip", "link", "set", f"k{side}{tag}", "up")
                await sh(nk, "ip", "addr", "add", f"10.90.{n}.1/24", "dev", f"r{side}{tag}")
                await sh(nk, "ip", "addr", "add", f"fd90:{n}::1/64", "dev", f"r{side}{tag}", "nodad")
                await sh(nk, "ip", "link", "set", f"r{side}{tag}", "up")
            await sh(nk, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            await sh(nk, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
            await sh(na, "ip", "route", "add", "10.90.4.0/24", "via", "10.90.3.1")
            await sh(na, "ip", "-6", "route", "add", "fd90:4::/64", "via", "fd90:3::1")
            await sh(nb, "ip", "route", "add", "10.90.3.0/24", "via", "10.90.4.1")
            await sh(nb, "ip", "-6", "route", "add", "fd90:3::/64", "via", "fd90:4::1")
            srv = await asyncio.create_subprocess_exec("ip", "netns", "exec", nb, "iperf3", "-s",
                                                       stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.DEVNULL)
            await asyncio.sleep(1.5)
            res["vnet router, IPv4"] = await iperf(na, "10.90.2.2")
            res["vnet router, IPv6"] = await iperf(na, "fd90:2::2")
            res["Linux router, IPv4"] = await iperf(na, "10.90.4.2")
            res["Linux router, IPv6"] = await iperf(na, "fd90:4::2")
            print("router counters:", {k: v for k, v in r.stats.items() if "forward" in k})
        finally:
            if srv is not None:
                srv.terminate()
                await srv.wait()
            a0.close()
            a1.close()

    try:
        run(go, seed=1)
    finally:
        for n in (na, nb, nk):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
    for k, v in res.items():
        print(f"{k:22s} {v:10.1f} Mbit/s")
    for fam in ("IPv4", "IPv6"):
        v, k = res.get(f"vnet router, {fam}"), res.get(f"Linux router, {fam}")
        if v and k:
            print(f"{fam}: vnet/Linux = {v / k:.4f}")
    v4, v6 = res.get("vnet router, IPv4"), res.get("vnet router, IPv6")
    if v4 and v6:
        print(f"vnet router IPv6/IPv4 = {v6 / v4:.3f}")


if __name__ == "__main__":
    main()
