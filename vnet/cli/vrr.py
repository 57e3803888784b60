"""`vnet vrr`: a Virtual Ring Routing node, or `vnet vrr sim` (the simulator).

    vnet vrr --iface IF [--iface IF ...] --tap TAP --ctl SOCK [--key FILE]   (root)
    vnet vrr --attach URL [--attach URL ...] --tap TAP --ctl SOCK           (any vnet URL)
    vnet vrr sim --scenario static|failures|churn|partition -n N [...]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
from pathlib import Path

from vnet.vrr.sim import SCENARIOS
from vnet.wire import vrr as W
from vnet.wire.errors import WireError

SIOCGIFADDR = 0x8915
VRR_OVERHEAD = W.HDR_LEN  # bytes a carried IP packet costs on the ring
SEC_OVERHEAD = 16 + 8 + 16  # hop MAC, seal counter, AEAD tag


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("mode", nargs="?", choices=("sim",), help="`sim`: run the simulator")
    p.add_argument("--iface", action="append", default=[], metavar="IF",
                   help="an existing interface to run VRR on (AF_PACKET, root)")
    p.add_argument("--attach", action="append", default=[], metavar="URL",
                   help="a vnet fabric URL to run VRR on (vde:///dir, tcp://..., udp://...)")
    p.add_argument("--tap", metavar="NAME", help="a TAP for the kernel's IP over the ring")
    p.add_argument("--ctl", metavar="SOCK", help="control socket path")
    p.add_argument("--key", metavar="FILE", help="network key file (>= 16 bytes, raw or hex)")
    p.add_argument("--addr", metavar="VADDR",
                   help="virtual address (default: first interface's MAC, or random)")
    p.add_argument("--hello", type=float, default=1.0, help="hello interval in s (default 1)")
    p.add_argument("--mtu", type=int, help="TAP MTU (default: 1500 minus VRR overhead)")
    # simulator
    p.add_argument("--scenario", choices=SCENARIOS, default="static", help="simulator scenario")
    p.add_argument("-n", type=int, default=100, help="simulated nodes (default 100)")
    p.add_argument("--topology", choices=("disk", "grid", "line"), default="disk",
                   help="random unit-disk graph, grid or line (default disk)")
    p.add_argument("--degree", type=float, default=8.0, help="mean degree of disk graphs (8)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--pairs", type=int, default=200, help="data probes per measurement (200)")
    p.add_argument("--settle", type=float, default=120.0,
                   help="simulated seconds allowed to converge (default 120)")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots (ring picture, tables) to DIR")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--progress", action="store_true",
                   help="print convergence progress to stderr every 10 simulated s")


def _fail(msg: str) -> int:
    print(f"vnet vrr: {msg}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.mode == "sim":
        return run_sim(args)
    if not args.iface and not args.attach:
        return _fail("give --iface IF (root) or --attach URL, or `vnet vrr sim`")
    if not args.ctl:
        return _fail("give --ctl SOCK (the control socket path)")
    if args.hello <= 0:
        return _fail("--hello must be > 0 seconds")
    try:
        return asyncio.run(_daemon(args)) or 0
    except _Fatal as e:
        return _fail(str(e))
    except KeyboardInterrupt:
        return 130


class _Fatal(Exception):
    pass


def _if_mac(name: str) -> bytes:
    try:
        text = Path(f"/sys/class/net/{name}/address").read_text().strip()
    except OSError:
        raise _Fatal(f"no interface {name!r} here (see `ip link`)") from None
    return bytes.fromhex(text.replace(":", ""))


def _host_addresses(tap: str) -> list[str]:
    """The TAP's IPv4 (primary) and IPv6 addresses, as the kernel has them."""
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            res = fcntl.ioctl(s, SIOCGIFADDR, struct.pack("16s16x", tap.encode()))
            out.append(socket.inet_ntoa(res[20:24]))
        except OSError:
            pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            f = line.split()
            if len(f) >= 6 and f[5] == tap:
                out.append(str(ipaddress.IPv6Address(bytes.fromhex(f[0]))))
    except OSError:
        pass
    return out


async def _daemon(args: argparse.Namespace) -> int:
    from vnet.control.server import ControlServer
    from vnet.link.port import Port
    from vnet.phy import tap as tapmod
    from vnet.phy.url import UrlError, attach
    from vnet.runtime.realtime import AsyncioRuntime
    from vnet.vrr.daemon import VrrDaemon
    from vnet.vrr.node import Config
    from vnet.vrr.security import KeyError_, NetworkKey, load_key

    loop = asyncio.get_running_loop()
    rt = AsyncioRuntime(loop)
    key = None
    if args.key:
        try:
            key = NetworkKey(load_key(args.key))
        except KeyError_ as e:
            raise _Fatal(str(e)) from None
    macs: list[bytes] = [_if_mac(i) for i in args.iface]
    if args.addr:
        try:
            addr = W.addr_from_str(args.addr)
        except WireError as e:
            raise _Fatal(str(e)) from None
    elif macs:
        addr = int.from_bytes(macs[0], "big")
    else:
        addr = (int.from_bytes(os.urandom(6), "big") & ~(1 << 40)) | (1 << 41)
    for _ in args.attach:
        macs.append(W.addr_to_mac(addr))
    ports = [Port(f"vrr{i}") for i in range(len(macs))]
    attachments = []
    host_port = Port("host") if args.tap else None
    host_mac = None
    daemon = None
    server = None
    try:
        urls = [f"packet://{i}?ethertype=0x886f&promisc=0&vnet_hdr=0" for i in args.iface]
        urls += list(args.attach)
        for url, port in zip(urls, ports, strict=True):
            try:
                attachments.append(await attach(url, port, rt))
            except UrlError as e:
                raise _Fatal(str(e)) from None
        if args.tap:
            mtu = args.mtu or 1500 - VRR_OVERHEAD - (SEC_OVERHEAD if key else 0)
            try:
                fd, ifname = tapmod.open_tap(args.tap, up=True, mtu=mtu)
            except UrlError as e:
                raise _Fatal(str(e)) from None
            attachments.append(tapmod.attach_fd(fd, ifname, host_port, rt))
            host_mac = _if_mac(ifname)
        daemon = VrrDaemon(rt, addr, ports, macs, host_port, host_mac,
                           Config(hello_interval=args.hello), key)
        server = ControlServer(daemon.console, args.ctl)
        try:
            await server.start()
        except OSError as e:
            raise _Fatal(f"control socket {args.ctl}: {e}") from None
        daemon.start()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            if args.tap and daemon.ip is not None:
                for a in _host_addresses(args.tap):
                    daemon.ip.publish(a)
            try:
                await asyncio.wait_for(stop.wait(), 2.0)
            except TimeoutError:
                pass
        return 0
    finally:
        if daemon is not None:
            daemon.stop()
        if server is not None:
            await server.close()
        for a in attachments:
            a.close()


# ------------------------------------------------------------------ simulator

def run_sim(args: argparse.Namespace) -> int:
    from vnet.vrr import sim
    if args.n < 2:
        return _fail("-n must be at least 2")
    if args.topology == "disk" and args.degree < 3:
        return _fail("--degree must be at least 3 for a connected unit-disk graph")
    if args.plot:
        from vnet.vrr.pictures import require_matplotlib
        try:
            require_matplotlib()
        except RuntimeError as e:
            return _fail(str(e))
    try:
        res = sim.run_scenario(args.scenario, args.n, topology=args.topology, degree=args.degree,
                               seed=args.seed, pairs=args.pairs, settle=args.settle,
                               log=(lambda m: print(m, file=sys.stderr, flush=True))
                               if args.progress else None)
    except (ValueError, RuntimeError) as e:
        return _fail(str(e))
    net = res.pop("_net")
    if args.plot:
        from vnet.vrr.pictures import plot_all
        res["plots"] = plot_all(net, res, args.plot)
    if args.json:
        print(json.dumps(res))
    else:
        width = max(len(k) for k in res)
        for k, v in res.items():
            print(f"{k:<{width}}  {'-' if v is None else v}")
    return 0
