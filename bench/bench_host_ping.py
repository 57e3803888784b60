"""Ping flood from the Linux kernel to a vnet host over a TAP, with the kernel itself as the
reference (the same flood across a veth pair between two namespaces), in the same run.

    sudo python bench/bench_host_ping.py [COUNT]

Prints each flood's summary and the ratio of vnet's average RTT to the kernel's.
Needs root (namespaces, TAP) and iputils ping.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import uuid

from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.stack.host import Host

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
CASES = [("v4 56 B", ["10.80.0.2"]), ("v6 56 B", ["-6", "fd80::2"]),
         ("v4 8000 B (fragments)", ["-s", "8000", "10.80.0.2"]),
         ("v6 8000 B (fragments)", ["-6", "-s", "8000", "fd80::2"])]


def avg_rtt(out: str) -> float:
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(m.group(1)) if m else float("nan")


async def sh(ns: str, *cmd: str) -> str:
    p = await asyncio.create_subprocess_exec("ip", "netns", "exec", ns, *cmd,
                                             stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.STDOUT)
    out, _ = await p.communicate()
    return out.decode()


def main() -> None:
    tag = uuid.uuid4().hex[:6]
    ns, ns2 = f"vhb{tag}", f"vhk{tag}"
    tap = f"vb{tag}"
    for n in (ns, ns2):
        subprocess.run(["ip", "netns", "add", n], check=True)
    results: dict[str, tuple[float, float]] = {}

    async def go(rt: AsyncioRuntime) -> None:
        h = Host(rt, "vh")
        i = h.add_interface("eth0")
        att = await attach(f"tap://{tap}?netns={ns}", i.port, rt)
        try:
            h.add_address("eth0", "10.80.0.2/24")
            h.add_address("eth0", "fd80::2/64")
            await sh(ns, "ip", "addr", "add", "10.80.0.1/24", "dev", tap)
            await sh(ns, "ip", "addr", "add", "fd80::1/64", "dev", tap, "nodad")
            # reference: the kernel answering itself across a veth pair into ns2
            subprocess.run(["ip", "link", "add", f"ka{tag}", "netns", ns, "type", "veth", "peer",
                            "name", f"kb{tag}", "netns", ns2], check=True)
            await sh(ns, "ip", "addr", "add", "10.81.0.1/24", "dev", f"ka{tag}")
            await sh(ns, "ip", "addr", "add", "fd81::1/64", "dev", f"ka{tag}", "nodad")
            await sh(ns, "ip", "link", "set", f"ka{tag}", "up")
            await sh(ns2, "ip", "addr", "add", "10.81.0.2/24", "dev", f"kb{tag}")
            await sh(ns2, "ip", "addr", "add", "fd81::2/64", "dev", f"kb{tag}", "nodad")
            await sh(ns2, "ip", "link", "set", f"kb{tag}", "up")
            await asyncio.sleep(1.0)
            for name, args in CASES:
                out = await sh(ns, "ping", "-q", "-f", "-c", str(COUNT), *args)
                ref_args = [a.replace("10.80.0.2", "10.81.0.2").replace("fd80::2", "fd81::2")
                            for a in args]
                ref = await sh(ns, "ping", "-q", "-f", "-c", str(COUNT), *ref_args)
                print(f"{name}: vnet  {out.strip().splitlines()[-2]}")
                print(f"{' ' * len(name)}  vnet  {out.strip().splitlines()[-1]}")
                print(f"{' ' * len(name)}  linux {ref.strip().splitlines()[-1]}")
                results[name] = (avg_rtt(out), avg_rtt(ref))
        finally:
            att.close()

    try:
        run(go, seed=1)
    finally:
        for n in (ns, ns2):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
    print("\naverage RTT, vnet host over TAP / Linux over veth:")
    for name, (v, k) in results.items():
        print(f"  {name:24s} {v:.3f} ms / {k:.3f} ms = {v / k:.1f}x")


if __name__ == "__main__":
    main()
