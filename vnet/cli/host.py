"""`vnet host`: a user-space IPv4/IPv6 host or router on any attachment URL.

    vnet host --attach vde:///tmp/sw --addr 10.0.0.1/24 --addr 2001:db8::1/64 --ctl /tmp/h1.ctl
    vnet host --attach tap://tap0 --attach vde:///tmp/sw2 --router \\
              --addr eth0=10.0.1.1/24 --addr eth1=10.0.2.1/24 --ctl /tmp/r.ctl
    vnet host --attach vde:///tmp/sw --ctl /tmp/h2.ctl      # no --addr: SLAAC and DHCPv4

Interfaces are eth0, eth1, ... in the order of --attach; `--addr IFACE=CIDR` picks one
(default eth0). Control commands: addr, route, neigh, ping, ping6, stats (see `help`).
Transport test commands (tcp/udp clients and servers) are registered by the modules
listed in COMMAND_MODULES, each with `register(console, host, rt)`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import ipaddress
import os
import signal
import sys
from typing import Any

from vnet.control.server import CommandError, Console, ControlServer
from vnet.runtime.realtime import AsyncioRuntime
from vnet.runtime.realtime import run as run_realtime
from vnet.stack.host import Host, HostError

PROG = "vnet host"
# Modules that add more control commands (e.g. the TCP/UDP test clients and servers).
COMMAND_MODULES = ["vnet.cli.host_transport"]


class Fail(Exception):
    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--attach", action="append", default=[], metavar="URL", required=True,
                   help="attachment URL for the next interface (eth0, eth1, ...); repeatable")
    p.add_argument("--addr", action="append", default=[], metavar="[IFACE=]CIDR",
                   help="static address, e.g. 10.0.0.1/24 or eth1=2001:db8::1/64; repeatable. "
                        "Without any, the host configures itself (SLAAC, DHCPv4)")
    p.add_argument("--route", action="append", nargs="+", default=[],
                   metavar="PREFIX via GW",
                   help="static route: --route 0.0.0.0/0 via 10.0.0.254 (or `dev eth1`)")
    p.add_argument("--router", action="store_true",
                   help="forward between interfaces and send Router Advertisements")
    p.add_argument("--ra-interval", default="200,600", metavar="MIN,MAX",
                   help="seconds between unsolicited RAs in router mode (default 200,600)")
    p.add_argument("--no-ra", action="store_true", help="router mode without RAs")
    p.add_argument("--ra-preference", choices=("high", "medium", "low"), default="medium",
                   help="default router preference in our RAs (RFC 4191; default medium)")
    p.add_argument("--tempaddr", action="store_true",
                   help="also make temporary (privacy) SLAAC addresses and prefer them (RFC 8981)")
    p.add_argument("--no-dhcp", action="store_true", help="never run the DHCPv4 client")
    p.add_argument("--no-ipv4ll", action="store_true",
                   help="no 169.254/16 link-local address when DHCP goes unanswered")
    p.add_argument("--mtu", type=int, default=1500, help="interface MTU (default 1500)")
    p.add_argument("--name", default="host", help="name shown in replies (default host)")
    p.add_argument("--ctl", metavar="SOCK", help="control socket path")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: random)")


def _parse_config(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    n = len(args.attach)
    names = [f"eth{i}" for i in range(n)]
    addrs = []
    for spec in args.addr:
        iface, _, cidr = spec.rpartition("=")
        iface = iface or "eth0"
        if iface not in names:
            raise Fail(f"--addr {spec}: no interface {iface} (have {', '.join(names)}: one per --attach)")
        try:
            ipaddress.ip_interface(cidr)
        except ValueError:
            raise Fail(f"--addr {spec}: not an address with prefix, e.g. 10.0.0.1/24") from None
        if "/" not in cidr:
            raise Fail(f"--addr {spec}: add a prefix length, e.g. {cidr}/24 or {cidr}/64")
        addrs.append((iface, cidr))
    routes = []
    for words in args.route:
        r: dict[str, Any] = {"prefix": words[0]}
        rest = words[1:]
        if len(rest) % 2:
            raise Fail(f"--route {' '.join(words)}: write PREFIX via GW or PREFIX dev IFACE")
        for k, v in zip(rest[::2], rest[1::2], strict=True):
            if k not in ("via", "dev"):
                raise Fail(f"--route {' '.join(words)}: unknown word {k!r} (use via or dev)")
            r[k] = v
        routes.append(r)
    if not 68 <= args.mtu <= 65535:
        raise Fail(f"--mtu {args.mtu} out of range 68..65535")
    try:
        lo, hi = (float(x) for x in args.ra_interval.split(","))
    except ValueError:
        raise Fail(f"--ra-interval {args.ra_interval!r}: give MIN,MAX seconds, e.g. 3,10") from None
    if not (4 <= hi <= 1800 and 3 <= lo <= 0.75 * hi):
        raise Fail(f"--ra-interval {args.ra_interval}: need 4 <= MAX <= 1800 and 3 <= MIN <= 0.75*MAX")
    args.ra_min, args.ra_max = lo, hi
    return addrs, routes


# ---- control commands ---------------------------------------------------------------------

def _addr(host: Host, words: list[str]) -> Any:
    if not words:
        return host.describe_addresses()
    if words[0] in ("add", "del") and len(words) == 3:
        try:
            if words[0] == "add":
                host.add_address(words[1], words[2])
            else:
                host.remove_address(words[1], words[2])
        except (HostError, ValueError) as e:
            raise CommandError(str(e)) from None
        return None
    raise CommandError("syntax: addr | addr add IFACE CIDR | addr del IFACE CIDR")


def _route(host: Host, words: list[str]) -> Any:
    if not words:
        return host.describe_routes()
    try:
        if words[0] == "add" and len(words) in (4, 6):
            kw = dict(zip(words[2::2], words[3::2], strict=True))
            if set(kw) - {"via", "dev"}:
                raise CommandError("syntax: route add PREFIX via GW [dev IFACE]")
            host.add_route(words[1], via=kw.get("via"), dev=kw.get("dev"))
            return None
        if words[0] == "del" and len(words) == 2:
            host.del_route(words[1])
            return None
    except HostError as e:
        raise CommandError(str(e)) from None
    raise CommandError("syntax: route | route add PREFIX via GW [dev IFACE] | route del PREFIX")


def _neigh(host: Host, words: list[str]) -> Any:
    if not words:
        return host.describe_neighbors()
    try:
        if words[0] == "add" and len(words) == 4:
            host.add_neighbor(words[1], words[2], words[3])
            return None
        if words[0] == "del" and len(words) == 3:
            host.del_neighbor(words[1], words[2])
            return None
    except (HostError, ValueError) as e:
        raise CommandError(str(e)) from None
    raise CommandError("syntax: neigh | neigh add IFACE ADDR MAC | neigh del IFACE ADDR")


async def ping(host: Host, rt: AsyncioRuntime, words: list[str], version: int | None) -> dict[str, Any]:
    if not words:
        raise CommandError("syntax: ping ADDR [COUNT [SIZE]]")
    try:
        dst = ipaddress.ip_address(words[0])
        count = int(words[1]) if len(words) > 1 else 3
        size = int(words[2]) if len(words) > 2 else 56
    except ValueError as e:
        raise CommandError(f"ping: {e}") from None
    if version is not None and dst.version != version:
        raise CommandError(f"{dst} is not an IPv{version} address")
    if not 1 <= count <= 1000 or not 0 <= size <= 65000:
        raise CommandError("ping: COUNT 1..1000, SIZE 0..65000")
    ident = rt.rng.getrandbits(16)
    lines: list[str] = []
    received = 0
    rtts: list[float] = []
    for seq in range(1, count + 1):
        fut: asyncio.Future = rt.loop.create_future()
        sent_at = rt.now()

        def on_reply(meta: Any, n: int, fut: asyncio.Future = fut) -> None:
            if not fut.done():
                fut.set_result((meta, n))

        if not host.ping(dst, ident, seq, size, on_reply):
            lines.append(f"seq={seq}: cannot send (no route or no source address)")
        else:
            try:
                meta, n = await asyncio.wait_for(fut, 2.0)
                ms = (rt.now() - sent_at) * 1000
                rtts.append(ms)
                received += 1
                lines.append(f"{n + 8} bytes from {meta.src}: icmp_seq={seq} "
                             f"{'ttl' if dst.version == 4 else 'hlim'}={meta.hop_limit} "
                             f"time={ms:.3f} ms")
            except TimeoutError:
                host.echo.forget(dst.version, ident, seq)
                lines.append(f"seq={seq}: no reply within 2 s")
        if seq < count:
            await asyncio.sleep(0.2)
    out: dict[str, Any] = {"ok": received > 0, "replies": "\n" + "\n".join(lines),
                           "transmitted": count, "received": received}
    if rtts:
        out["rtt_ms"] = f"min/avg/max {min(rtts):.3f}/{sum(rtts) / len(rtts):.3f}/{max(rtts):.3f}"
    return out


def make_console(host: Host, rt: AsyncioRuntime, state: dict[str, Any]) -> Console:
    c = Console(f"vnet host {host.name}")
    c.add("addr", lambda w: _addr(host, w), "[add|del IFACE CIDR]", "list, add or remove addresses")
    c.add("route", lambda w: _route(host, w), "[add PREFIX via GW [dev IFACE] | del PREFIX]",
          "list, add or remove routes")
    c.add("neigh", lambda w: _neigh(host, w), "[add IFACE ADDR MAC | del IFACE ADDR]",
          "the ARP and ND neighbour caches; add or remove a static entry")
    c.add("ping", lambda w: ping(host, rt, w, None), "ADDR [COUNT [SIZE]]",
          "ICMP echo to ADDR (v4 or v6); ok is false when nothing answered")
    c.add("ping6", lambda w: ping(host, rt, w, 6), "ADDR [COUNT [SIZE]]", "ICMPv6 echo to ADDR")
    c.add("stats", lambda w: host.counters(), "", "counters (drops by reason, caches, ports)")
    c.add("routers", lambda w: host.default_routers(), "", "the IPv6 default router list")
    c.add("dns", lambda w: host.dns_servers(), "", "DNS servers learned from RAs and DHCP")
    c.add("dhcp", lambda w: {**{n: d.describe() for n, d in host.dhcp.items()},
                             **{f"{n} (v6)": d.describe() for n, d in host.dhcp6.items()}},
          "", "DHCPv4 and DHCPv6 client state and lease per interface")
    c.add("shutdown", lambda w: (state["stop"].set(), "bye")[1], "", "stop the host")
    register_more_commands(c, host, rt)
    return c


def register_more_commands(console: Console, host: Host, rt: AsyncioRuntime) -> None:
    """Let other modules (TCP/UDP test commands) add theirs: each has register(c, host, rt)."""
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
            continue
        mod.register(console, host, rt)


# ---- running ----------------------------------------------------------------------------

async def _main(rt: AsyncioRuntime, args: argparse.Namespace, addrs: list[tuple[str, str]],
                routes: list[dict[str, Any]]) -> int:
    from vnet.phy.url import UrlError, attach

    host = Host(rt, args.name, router=args.router)
    host.use_tempaddr = args.tempaddr
    stop = asyncio.Event()
    state: dict[str, Any] = {"stop": stop}
    attachments: list[Any] = []
    server = None
    try:
        for i, url in enumerate(args.attach):
            iface = host.add_interface(f"eth{i}", mtu=args.mtu)
            try:
                attachments.append(await attach(url, iface.port, rt))
            except (UrlError, ValueError) as e:
                raise Fail(str(e)) from None
            except ModuleNotFoundError as e:
                raise Fail(f"{url}: this build has no driver for it ({e.name})", 1) from None
            except OSError as e:
                raise Fail(f"{url}: {e.strerror or e}", 1) from None
        try:
            for iface_name, cidr in addrs:
                host.add_address(iface_name, cidr)
            for r in routes:
                host.add_route(r["prefix"], via=r.get("via"), dev=r.get("dev"))
        except (HostError, ValueError) as e:
            raise Fail(str(e)) from None
        if args.router and not args.no_ra:
            from vnet.stack.ra_daemon import RaDaemon
            RaDaemon(host, min_interval=args.ra_min, max_interval=args.ra_max,
                     preference=args.ra_preference)
        if not addrs and not args.router and not args.no_dhcp:
            host.dhcp6_on_managed = True  # DHCPv6 when an RA says Managed
            from vnet.stack.dhcp4_client import Dhcp4Client
            for iface in host.ifaces:
                Dhcp4Client(host, iface, ipv4ll_fallback=not args.no_ipv4ll).start()
        if args.ctl:
            server = ControlServer(make_console(host, rt, state), args.ctl)
            try:
                await server.start()
            except OSError as e:
                raise Fail(f"--ctl {args.ctl}: {e.strerror or e}", 1) from None
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            rt.loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        if host.ra_daemon is not None:
            host.ra_daemon.stop()
        for d in list(host.dhcp.values()) + list(host.dhcp6.values()):
            d.stop()
        if server is not None:
            await server.close()
        for att in attachments:
            try:
                att.close()
            except Exception:  # noqa: BLE001 - best effort on the way out
                pass
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        addrs, routes = _parse_config(args)
        seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(8), "big")
        return int(run_realtime(lambda rt: _main(rt, args, addrs, routes), seed=seed) or 0)
    except Fail as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.status
