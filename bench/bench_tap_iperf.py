"""iperf3 TCP between two network namespaces through a switch with TAP ports.

Measured in the same run, same machine:

* veth       - a direct veth pair between the namespaces (the limit);
* vde        - Debian vde_switch with one vde_plug2tap per namespace (the reference);
* vnet-vde   - `vnet switch` with the same two vde_plug2tap clients (only the switch
               differs from `vde`: its compiled fast path and flow control);
* vnet       - one vnet Switch in its own process, plain TAP ports (`tap://IF`);
* vnet-gso   - the same with `tap://IF?vnet_hdr=1` (IFF_VNET_HDR + TSO/CSUM offloads:
               64 KB GSO frames cross the switch unsegmented).

Prints Mbit/s per setup and the ratios against vde. Needs root, iperf3, vde2.

    python3 bench/bench_tap_iperf.py [--time 5] [--only veth,vde,vnet-vde,vnet,vnet-gso]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IP1, IP2 = "10.99.0.1", "10.99.0.2"


class NS:
    def __init__(self, tag: str) -> None:
        self.name = f"vb{tag}{uuid.uuid4().hex[:6]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=check,
                              capture_output=True, text=True, timeout=120)

    def popen(self, *cmd: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


def wait_link(ns: NS, ifname: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while ns.run("ip", "link", "show", ifname, check=False).returncode != 0:
        if time.monotonic() > end:
            raise RuntimeError(f"{ifname} did not appear in {ns.name}")
        time.sleep(0.05)


def configure(ns: NS, ifname: str, ip: str) -> None:
    ns.run("ip", "addr", "add", f"{ip}/24", "dev", ifname)
    ns.run("ip", "link", "set", ifname, "up")


def iperf(n1: NS, n2: NS, seconds: float) -> float:
    """Mbit/s received by the server in n2 from a client in n1."""
    # Wait until the path works (ARP, TAP attachment) before measuring.
    end = time.monotonic() + 15
    while n1.run("ping", "-c", "1", "-W", "1", IP2, check=False).returncode != 0:
        if time.monotonic() > end:
            raise RuntimeError("no connectivity between the namespaces")
    srv = n2.popen("iperf3", "-s", "-1", "-B", IP2, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        r = n1.run("iperf3", "-c", IP2, "-t", str(seconds), "-J", "-O", "1")
        data = json.loads(r.stdout)
        return data["end"]["sum_received"]["bits_per_second"] / 1e6
    finally:
        srv.kill()
        srv.wait()


def bench_veth(seconds: float) -> float:
    n1, n2 = NS("a"), NS("b")
    try:
        sfx = uuid.uuid4().hex[:6]
        n1.run("ip", "link", "add", f"e1{sfx}", "type", "veth", "peer", "name", f"e2{sfx}",
               "netns", n2.name)
        configure(n1, f"e1{sfx}", IP1)
        configure(n2, f"e2{sfx}", IP2)
        return iperf(n1, n2, seconds)
    finally:
        n1.delete()
        n2.delete()


def bench_vde(seconds: float, switch: str = "vde_switch") -> float:
    n1, n2 = NS("a"), NS("b")
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            sw = os.path.join(tmp, "sw")
            cmd = (["vde_switch", "-s", sw] if switch == "vde_switch"
                   else [sys.executable, "-m", "vnet", "switch", "-s", sw])
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            end = time.monotonic() + 10
            while not os.path.exists(os.path.join(sw, "ctl")):
                if time.monotonic() > end:
                    raise RuntimeError("vde_switch did not start")
                time.sleep(0.05)
            for ns, ip in ((n1, IP1), (n2, IP2)):
                tap = f"vd{uuid.uuid4().hex[:6]}"
                procs.append(ns.popen("vde_plug2tap", "-s", sw, tap, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
                wait_link(ns, tap)
                configure(ns, tap, ip)
            return iperf(n1, n2, seconds)
        finally:
            for p in procs:
                p.kill()
                p.wait()
            n1.delete()
            n2.delete()


def bench_vnet(seconds: float, gso: bool, mtu: int) -> float:
    n1, n2 = NS("a"), NS("b")
    t1, t2 = f"vn{uuid.uuid4().hex[:6]}", f"vn{uuid.uuid4().hex[:6]}"
    opt = "&vnet_hdr=1" if gso else ""
    urls = [f"tap://{t1}?netns={n1.name}{opt}", f"tap://{t2}?netns={n2.name}{opt}"]
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--mtu", str(mtu),
                             "--serve", *urls],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"vnet switch did not start: {line!r}")
        configure(n1, t1, IP1)
        configure(n2, t2, IP2)
        return iperf(n1, n2, seconds)
    finally:
        proc.terminate()
        proc.wait()
        n1.delete()
        n2.delete()


def serve(urls: list[str], mtu: int) -> None:
    """Child process: one vnet Switch with a port per URL, until terminated."""
    import asyncio
    import signal

    sys.path.insert(0, ROOT)
    from vnet.link.switch import Switch
    from vnet.phy.url import attach
    from vnet.runtime.realtime import run

    async def main(rt) -> None:
        sw = Switch(rt, mtu=mtu)
        atts = [await attach(u, sw.add_port(), rt) for u in urls]
        stop = rt.loop.create_future()
        rt.loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        print("ready", flush=True)
        try:
            await stop
        finally:
            for a in atts:
                a.close()
            sw.close()
            await asyncio.sleep(0)

    run(main)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--time", type=float, default=5.0, help="seconds per iperf3 run (default 5)")
    p.add_argument("--only", default="veth,vde,vnet-vde,vnet,vnet-gso",
                   help="comma-separated setups to run")
    p.add_argument("--mtu", type=int, default=1500,
                   help="vnet switch MTU (default 1500; the switch lets a TAP's 64 KB GSO "
                        "frames past it when every destination port takes offloads)")
    p.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.mtu)
        return 0
    if os.geteuid() != 0:
        print("bench_tap_iperf: needs root (namespaces and TAPs)", file=sys.stderr)
        return 1
    runs = {"veth": lambda: bench_veth(args.time), "vde": lambda: bench_vde(args.time),
            "vnet-vde": lambda: bench_vde(args.time, switch="vnet"),
            "vnet": lambda: bench_vnet(args.time, gso=False, mtu=args.mtu),
            "vnet-gso": lambda: bench_vnet(args.time, gso=True, mtu=args.mtu)}
    results: dict[str, float] = {}
    for name in args.only.split(","):
        results[name] = runs[name]()
        print(f"{name:9s} {results[name]:10.0f} Mbit/s", flush=True)
    ref = results.get("vde")
    if ref:
        for name, v in results.items():
            if name != "vde":
                print(f"{name} / vde = {v / ref:.2f}x")
    if "veth" in results:
        for name, v in results.items():
            if name != "veth":
                print(f"{name} / veth = {v / results['veth']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
