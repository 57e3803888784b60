"""Bulk TCP goodput: Linux kernel <-> vnet host over a TAP (IPv4 and IPv6), and between
two vnet hosts over a vnet switch. Needs root (TAP, netns).

    python bench/bench_tcp_tap.py [--mbytes 50] [--only k2v4,k2v6,v2k4,v2k6,switch]
                                  [--tap-options vnet_hdr=1] [--both]

`--tap-options vnet_hdr=1`: the TAP with IFF_VNET_HDR and TSO/CSUM offloads (the host
takes the kernel's 64 KB GSO frames whole and sends TSO segments). `--both`: the TAP
paths once plain and once with vnet_hdr=1, in the same run, one after the other.

kernel -> vnet: a Python socket sender (64 KiB sendall) in a namespace, the vnet host's
callback-level discard server in this process; goodput = bytes / (first byte .. FIN),
taken on the vnet side. vnet -> kernel: the vnet host sends, a Python socket reader in
the namespace measures (accept .. EOF). "switch": two vnet hosts on a vnet Switch
engine in one process, simulated links with zero delay, timed by the process CPU clock
(so it is the CPU cost of two stacks and a switch on one core, whatever else runs).
"CPU ceil" = bytes / CPU seconds of the vnet process during the transfer: what the
vnet side could do with a core of its own (the machine may be shared).

PyTCP 3.0.9 reference (docs/results-tcp.md, ../shared/facts/stack.md): 14.9 Mbit/s
kernel -> PyTCP over TAP, IPv4, 50 MB, measured on this kind of machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vnet.phy.url import attach  # noqa: E402
from vnet.runtime.realtime import AsyncioRuntime, run  # noqa: E402
from vnet.stack.host import Host  # noqa: E402
from vnet.stack.sockets import tcp_of  # noqa: E402

PYTCP_MBIT = 14.9
K4, V4, K6, V6 = "10.88.0.1", "10.88.0.2", "fd88::1", "fd88::2"

SENDER = r'''
import socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=60)
buf = bytes(range(256)) * 256
t0 = time.monotonic()
left = n
while left > 0:
    k = min(len(buf), left)
    s.sendall(buf[:k] if k < len(buf) else buf)
    left -= k
s.shutdown(socket.SHUT_WR)
s.recv(1)
print(time.monotonic() - t0)
'''

SINK = r'''
import json, socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
ls = socket.socket(fam, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
t0 = None
n = 0
buf = bytearray(1 << 18)
while True:
    k = c.recv_into(buf)
    if t0 is None:
        t0 = time.monotonic()
    if not k:
        break
    n += k
dt = time.monotonic() - t0
c.close()
print(json.dumps({"bytes": n, "seconds": dt}), flush=True)
'''


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


async def kernel_to_vnet(rt: AsyncioRuntime, host: Host, ns: str, dst: str, port: int,
                         nbytes: int) -> float:
    done: asyncio.Future = rt.loop.create_future()
    rec: dict = {"n": 0, "t0": 0.0}

    def accept(conn) -> None:
        def data(d: bytes) -> None:
            if not rec["n"]:
                rec["t0"] = rt.now()
            rec["n"] += len(d)

        def eof() -> None:
            if not done.done():
                done.set_result(rt.now())
            conn.close()

        conn.on_data = data
        conn.on_eof = eof
        rec["conn"] = conn

    lst = tcp_of(host).listen(port, accept)
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", SENDER, dst, str(port), str(nbytes),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    t_end = await asyncio.wait_for(done, 600)
    await proc.communicate()
    lst.close()
    assert rec["n"] == nbytes, f"received {rec['n']} of {nbytes}"
    c = rec["conn"]
    print(f"  ({c.rx_segments} segments in, {c.rx_bytes / max(c.rx_segments, 1):.0f} B each; "
          f"{c.tx_segments} ACKs out)", flush=True)
    return rec["n"] * 8 / (t_end - rec["t0"]) / 1e6


async def vnet_to_kernel(rt: AsyncioRuntime, host: Host, ns: str, dst: str, port: int,
                         nbytes: int) -> float:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", SINK, dst, str(port),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await proc.stdout.readline()
    conn = tcp_of(host).connect(dst, port)
    chunk = bytes(range(256)) * 256
    state = {"left": nbytes}

    def pump() -> None:
        while state["left"] > 0 and conn.writable:
            k = min(len(chunk), state["left"])
            conn.send(chunk[:k] if k < len(chunk) else chunk)
            state["left"] -= k
        if state["left"] <= 0:
            conn.on_writable = lambda: None
            conn.shutdown()

    conn.on_established = pump
    conn.on_writable = pump
    out, _ = await asyncio.wait_for(proc.communicate(), 600)
    r = json.loads(out.decode().splitlines()[-1])
    assert r["bytes"] == nbytes, f"kernel received {r['bytes']} of {nbytes}"
    return r["bytes"] * 8 / r["seconds"] / 1e6


def over_switch(nbytes: int) -> float:
    from vnet.link.link import Link
    from vnet.link.switch import Switch
    from vnet.runtime.sim import SimRuntime
    rt = SimRuntime(seed=1)
    sw = Switch(rt, 4)
    a, b = Host(rt, "a"), Host(rt, "b")
    ia, ib = a.add_interface("eth0"), b.add_interface("eth0")
    Link(rt, sw.add_port(), ia.port)
    Link(rt, sw.add_port(), ib.port)
    a.add_address("eth0", "10.9.0.1/24")
    b.add_address("eth0", "10.9.0.2/24")
    rt.run(until=3)
    got = {"n": 0}

    def accept(conn) -> None:
        conn.on_data = lambda d: got.__setitem__("n", got["n"] + len(d))
        conn.on_eof = conn.close

    tcp_of(b).listen(9, accept)
    conn = tcp_of(a).connect("10.9.0.2", 9)
    chunk = bytes(range(256)) * 256
    state = {"left": nbytes}

    def pump() -> None:
        while state["left"] > 0 and conn.writable:
            k = min(len(chunk), state["left"])
            conn.send(chunk[:k] if k < len(chunk) else chunk)
            state["left"] -= k
        if state["left"] <= 0:
            conn.on_writable = lambda: None
            conn.shutdown()

    conn.on_established = pump
    conn.on_writable = pump
    t0 = time.process_time()  # CPU time: the figure does not depend on other load
    rt.run(until=rt.now() + 3600, max_events=None)
    dt = time.process_time() - t0
    assert got["n"] == nbytes
    return nbytes * 8 / dt / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mbytes", type=float, default=50)
    ap.add_argument("--only", default="k2v4,k2v6,v2k4,v2k6,switch")
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument("--tap-options", default="", metavar="OPTS",
                    help="extra tap:// URL options for the vnet side, e.g. vnet_hdr=1")
    ap.add_argument("--both", action="store_true",
                    help="run the TAP paths plain and with vnet_hdr=1 (same run, in turn)")
    ap.add_argument("--with-pytcp", action="store_true",
                    help="also measure PyTCP 3.0.9 the same way (bench/pytcp_ref.py; builds a "
                         "Debian sid chroot with python3.14 once)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_tcp_tap: needs root (TAP and network namespaces); run under sudo",
              file=sys.stderr)
        return 2
    nbytes = int(args.mbytes * 1e6)
    which = args.only.split(",")
    results: dict[str, float] = {}
    cpu: dict[str, float] = {}  # goodput if the vnet process had a core to itself
    ns = f"vbench{uuid.uuid4().hex[:6]}"
    variants = ["", "vnet_hdr=1"] if args.both else [args.tap_options]
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

        async def amain(rt: AsyncioRuntime, opts: str, tag: str) -> None:
            tap = f"vb{uuid.uuid4().hex[:8]}"
            host = Host(rt, "bench")
            iface = host.add_interface("eth0", mtu=args.mtu)
            extra = f"&{opts}" if opts else ""
            att = await attach(f"tap://{tap}?netns={ns}&mtu={args.mtu}{extra}", iface.port, rt)
            try:
                sh("ip", "netns", "exec", ns, "ip", "addr", "add", f"{K4}/24", "dev", tap)
                sh("ip", "netns", "exec", ns, "ip", "-6", "addr", "add", f"{K6}/64", "dev", tap,
                   "nodad")
                host.add_address("eth0", f"{V4}/24")
                host.add_address("eth0", f"{V6}/64")
                await asyncio.sleep(1.5)
                port = 5000
                for key, fn, dst in (("k2v4", kernel_to_vnet, V4), ("k2v6", kernel_to_vnet, V6),
                                     ("v2k4", vnet_to_kernel, K4), ("v2k6", vnet_to_kernel, K6)):
                    if key in which:
                        port += 1
                        cpu0 = time.process_time()
                        rk = key + tag
                        results[rk] = await fn(rt, host, ns, dst, port, nbytes)
                        cpu[rk] = nbytes * 8 / (time.process_time() - cpu0) / 1e6
                        print(f"{rk}: {results[rk]:.1f} Mbit/s (vnet process CPU-bound "
                              f"ceiling {cpu[rk]:.0f} Mbit/s)", flush=True)
                gso = {k: v for k, v in host.stats.items() if "gso" in k or "offload" in k}
                if gso:
                    print(f"  host offload counters{tag}: {gso}", flush=True)
            finally:
                att.close()

        if any(k in which for k in ("k2v4", "k2v6", "v2k4", "v2k6")):
            for opts in variants:
                tag = "+hdr" if "vnet_hdr=1" in opts else ""
                run(lambda rt, opts=opts, tag=tag: amain(rt, opts, tag))
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    if "switch" in which:
        results["switch"] = over_switch(nbytes)
        print(f"switch: {results['switch']:.1f} Mbit/s (two vnet hosts, one process)")
    ref: dict[str, float] = {}  # PyTCP measured in this run, by path
    if args.with_pytcp:
        try:
            import pytcp_ref
        except ImportError:
            print("bench_tcp_tap: --with-pytcp needs bench/pytcp_ref.py next to this file",
                  file=sys.stderr)
            return 2
        try:
            got = pytcp_ref.measure(which, nbytes, args.mtu)
        except pytcp_ref.SetupError as e:
            print(f"bench_tcp_tap: PyTCP reference unavailable: {e}", file=sys.stderr)
            got = {}
        for key in ("k2v4", "k2v6", "v2k4", "v2k6"):
            # PyTCP's best sender setting (default or TCP_NODELAY) is the reference
            vals = [r.mbit for k, r in got.items() if k[:4] == key and r.mbit and r.finished]
            if vals:
                ref[key] = max(vals)
    print()
    if ref:
        print("x PyTCP: against PyTCP 3.0.9 measured in this run (its best of default and "
              "TCP_NODELAY)")
    else:
        print(f"x PyTCP: against the PyTCP reference {PYTCP_MBIT} Mbit/s (kernel -> PyTCP, "
              "IPv4, ../shared/facts/stack.md)")
    if any(k.endswith("+hdr") for k in results):
        print("+hdr: the TAP opened with vnet_hdr=1 (TSO/GSO offloads)")
    print(f"{'path':<34}{'Mbit/s':>10}{'PyTCP':>10}{'x PyTCP':>10}{'CPU ceil':>10}")
    names = {"k2v4": "kernel -> vnet, IPv4, TAP", "k2v6": "kernel -> vnet, IPv6, TAP",
             "v2k4": "vnet -> kernel, IPv4, TAP", "v2k6": "vnet -> kernel, IPv6, TAP",
             "switch": "vnet -> vnet over vnet switch"}
    for k, v in results.items():
        ceil = f"{cpu[k]:>10.0f}" if k in cpu else f"{'':>10}"
        kb = k.removesuffix("+hdr")
        base = ref.get(kb, PYTCP_MBIT if not ref else None)
        pyt = f"{ref[kb]:>10.2f}" if kb in ref else f"{'':>10}"
        times = f"{v / base:>10.1f}" if base else f"{'':>10}"
        label = names[kb] + (" +hdr" if k != kb else "")
        print(f"{label:<34}{v:>10.1f}{pyt}{times}{ceil}")
    if "k2v4" in results and "k2v6" in results:
        print(f"IPv6/IPv4 ratio, kernel -> vnet: {results['k2v6'] / results['k2v4']:.3f}")
    if "v2k4" in results and "v2k6" in results:
        print(f"IPv6/IPv4 ratio, vnet -> kernel: {results['v2k6'] / results['v2k4']:.3f}")
    print(f"({args.mbytes:g} MB per transfer, MTU {args.mtu})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
