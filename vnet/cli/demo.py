"""`vnet demo`: a small network, run in simulated time (default) or real time, no root needed.

Three switches in a loop with spanning tree, one loop cable through the link
emulator (delay and loss), an endpoint on each switch exchanging echo frames, a
capture of everything the first switch sees. The same engines run under both
runtimes; only the clock differs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

from vnet.cli.demo_hosts import run_hosts
from vnet.link.l2ping import L2Echo, PingStats
from vnet.link.link import Link
from vnet.link.port import connect
from vnet.link.switch import BLOCKING, FORWARDING, STATE_NAMES, Switch
from vnet.runtime.base import Runtime
from vnet.runtime.realtime import AsyncioRuntime
from vnet.runtime.realtime import run as run_realtime
from vnet.runtime.sim import SimRuntime
from vnet.wire.ethernet import BROADCAST

BROADCASTS = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--realtime", action="store_true",
                   help="run on the asyncio clock instead of simulated time (takes ~15 s)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--pcap", default="demo.pcapng", help="capture file (default demo.pcapng)")
    p.add_argument("--pings", type=int, default=200, help="echo frames per pair (default 200)")
    p.add_argument("--delay", type=float, default=20.0, help="emulated cable delay in ms (default 20)")
    p.add_argument("--jitter", type=float, default=5.0,
                   help="emulated cable jitter in ms, uniform +- (default 5)")
    p.add_argument("--loss", type=float, default=5.0, help="emulated cable loss in %% (default 5)")
    p.add_argument("--part", choices=("fabric", "hosts", "all"), default="all",
                   help="fabric (switches, STP, wirefilter), hosts (IP stack, SLAAC, TCP) or all")
    p.add_argument("--host-delay", type=float, default=5.0, help="router cable delay ms (5)")
    p.add_argument("--host-loss", type=float, default=0.5, help="router cable loss %% (0.5)")
    p.add_argument("--host-rate", type=float, default=10.0, help="router cable Mbit/s (10)")
    p.add_argument("--tcp-bytes", type=int, default=5_000_000, help="TCP transfer size (5 MB)")


def build(rt: Runtime, args: argparse.Namespace, fast_timers: bool):
    from vnet.link.capture import Capture
    from vnet.link.stp import Stp
    from vnet.link.wirefilter import WireFilter

    timers = dict(hello_time=1.0, max_age=6.0, forward_delay=2.0) if fast_timers else {}
    switches = []
    for i, prio in enumerate((4096, 32768, 32768), start=1):
        sw = Switch(rt, numports=8, name=f"s{i}", mac=bytes([2, 0, 0, 0, 0, i]))
        Stp(sw, priority=prio, **timers)
        switches.append(sw)
    s1, s2, s3 = switches
    Link(rt, s1.add_port(), s2.add_port(), delay=0.001)
    Link(rt, s2.add_port(), s3.add_port(), delay=0.001)
    # The third side of the triangle goes through the link emulator.
    wf = WireFilter(rt, s3.add_port(), s1.add_port(), delay=f"{args.delay:g}+{args.jitter:g}",
                    loss=args.loss)
    hosts = []
    for i, sw in enumerate(switches, start=1):
        h = L2Echo(rt, bytes([2, 0, 0, 0, 0xA0, i]), name=f"h{i}")
        connect(sw.add_port(), h.port)
        hosts.append(h)
    cap = Capture.to_file(args.pcap, rt)
    for index, rec in sorted(s1.ports.items()):
        cap.watch(rec.port, f"s1.port{index}")
    return switches, hosts, wf, cap


def report(rt: Runtime, switches, hosts, wf, cap, args, converged_at, bcast) -> None:
    print(f"spanning tree converged at t={converged_at:.1f} s")
    for sw in switches:
        states = ", ".join(f"port{i}={STATE_NAMES[r.state]}" for i, r in sorted(sw.ports.items()))
        info = sw.stp.info() if sw.stp else {}
        root = info.get("root_id", "?")
        print(f"  {sw.name}: root={root}  {states}")
    blocked = [f"{sw.name}.port{i}" for sw in switches for i, r in sw.ports.items()
               if r.state != FORWARDING]
    print(f"  blocked to break the loop: {', '.join(blocked) or 'none'}")
    print(f"broadcast check: {BROADCASTS} broadcasts from h1 reached h2 {bcast[1]}x and h3 "
          f"{bcast[2]}x (at most {BROADCASTS}x each: no loop; fewer = lost on the emulated cable)")
    print("MAC tables (mac -> port):")
    for sw in switches:
        rows = sorted(sw.table.rows())
        print(f"  {sw.name}: " + ", ".join(f"{m.hex(':')}->{p}" for m, _v, p, _a in rows))
    print(f"echo across the network ({args.pings} per pair, one path crosses the emulated cable "
          f"of {args.delay:g}+-{args.jitter:g} ms, {args.loss:g} % loss):")
    for h in hosts:
        s = h.stats
        if s.rtts:
            rtt = f"rtt min/avg/max/sd {min(s.rtts)*1e3:.2f}/{statistics.fmean(s.rtts)*1e3:.2f}/" \
                  f"{max(s.rtts)*1e3:.2f}/{statistics.pstdev(s.rtts)*1e3:.2f} ms"
        else:
            rtt = "no replies"
        print(f"  {h.name}: sent {s.sent}, received {s.received}, loss {s.loss*100:.1f} %, {rtt}")
    print(f"emulated cable counters: {wf.summary()}")
    cap.close()
    size = Path(args.pcap).stat().st_size if Path(args.pcap).exists() else 0
    print(f"capture of switch s1: {args.pcap} ({size} bytes) - read it with `tshark -r {args.pcap}`")


def scenario_steps(rt: Runtime, switches, hosts, args, settle: float):
    """Schedule the traffic; returns (a list filled with broadcast counts, converged time)."""
    h1, h2, h3 = hosts
    bcast = [0, 0, 0]
    before = [0, 0, 0]

    def start_broadcasts() -> None:
        for i, h in enumerate(hosts):
            before[i] = h.answered
        h1.ping_every(BROADCAST, 0.1, BROADCASTS)

    def count_broadcasts() -> None:
        for i, h in enumerate(hosts):
            bcast[i] = h.answered - before[i]
            h.stats = PingStats()

    rt.call_later(settle, start_broadcasts)
    rt.call_later(settle + 0.1 * BROADCASTS + 1.0, count_broadcasts)
    interval = 0.05
    start = settle + 0.1 * BROADCASTS + 1.5
    rt.call_later(start, h1.ping_every, h2.mac, interval, args.pings)
    rt.call_later(start, h2.ping_every, h3.mac, interval, args.pings)
    rt.call_later(start, h3.ping_every, h1.mac, interval, args.pings)
    return bcast, start + interval * args.pings + 2.0


def converged(switches) -> bool:
    """Every port forwarding or blocking, and all bridges agree on one root."""
    roots = {sw.stp.info().get("root_id") for sw in switches if sw.stp}
    return len(roots) == 1 and all(r.state in (BLOCKING, FORWARDING) for sw in switches for r in sw.ports.values())


def run(args: argparse.Namespace) -> int:
    for name in ("loss", "host_loss"):
        if not 0 <= getattr(args, name) <= 100:
            flag = "--" + name.replace("_", "-")
            print(f"vnet demo: {flag} {getattr(args, name)} is not a percentage (0..100)",
                  file=sys.stderr)
            return 2
    if args.host_rate <= 0 or args.tcp_bytes <= 0:
        print("vnet demo: --host-rate and --tcp-bytes must be positive", file=sys.stderr)
        return 2
    mode = "real time (asyncio)" if args.realtime else "simulated time"
    print(f"vnet demo: {mode}, seed {args.seed}")
    if args.realtime:
        return run_realtime(lambda rt: _run_real(rt, args), seed=args.seed)
    wall = time.perf_counter()
    ok = True
    if args.part in ("fabric", "all"):
        rt = SimRuntime(seed=args.seed)
        ok = _run_fabric_sim(rt, args)
        print(f"simulated {rt.now():.1f} s in {time.perf_counter() - wall:.2f} s of wall time "
              f"({rt.events_run} events)")
    if ok and args.part in ("hosts", "all"):
        wall = time.perf_counter()
        rt = SimRuntime(seed=args.seed)

        async def wait(seconds: float) -> None:
            rt.run_for(seconds)

        ok = asyncio.run(run_hosts(rt, wait, args, print))
        print(f"simulated {rt.now():.1f} s in {time.perf_counter() - wall:.2f} s of wall time "
              f"({rt.events_run} events)")
    return 0 if ok else 1


FABRIC_TITLE = ("fabric: 3 switches in a loop with 802.1D spanning tree, 3 endpoints, "
                "one loop cable through the link emulator")


def _run_fabric_sim(rt: SimRuntime, args: argparse.Namespace) -> bool:
    print(FABRIC_TITLE)
    switches, hosts, wf, cap = build(rt, args, fast_timers=False)
    t_conv = None
    while rt.now() < 120:
        rt.run_for(0.5)
        if converged(switches):
            t_conv = rt.now()
            break
    if t_conv is None:
        print("vnet demo: spanning tree did not converge in 120 simulated seconds", file=sys.stderr)
        return False
    bcast, end = scenario_steps(rt, switches, hosts, args, settle=1.0)
    rt.run_for(end)
    report(rt, switches, hosts, wf, cap, args, t_conv, bcast)
    return True


async def _run_real(rt: AsyncioRuntime, args: argparse.Namespace) -> int:
    if args.part in ("fabric", "all"):
        print(FABRIC_TITLE)
        switches, hosts, wf, cap = build(rt, args, fast_timers=True)
        t0 = rt.now()
        while not converged(switches):
            await asyncio.sleep(0.2)
            if rt.now() - t0 > 30:
                print("vnet demo: spanning tree did not converge in 30 s", file=sys.stderr)
                return 1
        t_conv = rt.now() - t0
        args.pings = min(args.pings, 100)
        bcast, end = scenario_steps(rt, switches, hosts, args, settle=0.5)
        await asyncio.sleep(end)
        report(rt, switches, hosts, wf, cap, args, t_conv, bcast)
        for sw in switches:
            sw.close()
    if args.part in ("hosts", "all"):
        ok = await run_hosts(rt, asyncio.sleep, args, print)
        return 0 if ok else 1
    return 0
