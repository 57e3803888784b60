"""The vnet host against the Linux kernel through a TAP in a fresh network namespace.

ping and ping6 both ways, ARP and ND both ways (each side ends up with the other's
MAC in its neighbour cache), large pings that fragment both ways, SLAAC from radvd,
Linux's SLAAC from a vnet router's RAs, Packet Too Big honoured in both directions,
and the `vnet host` / `vnet ctl` command-line surface.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from tests.conftest import need_tool, need_tun
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.stack.host import Host
from vnet.stack.ra_daemon import RaDaemon

pytestmark = [pytest.mark.privileged, pytest.mark.timeout(90)]


async def sh(ns, *cmd: str, timeout: float = 20.0) -> tuple[int, str]:
    """Run a command inside the namespace without blocking the event loop (the host runs on it)."""
    p = await asyncio.create_subprocess_exec("ip", "netns", "exec", ns.name, *cmd,
                                             stdout=asyncio.subprocess.PIPE,
                                             stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(p.communicate(), timeout)
    except TimeoutError:
        p.kill()
        await p.wait()
        return -1, "timeout"
    return p.returncode or 0, out.decode()


async def vping(rt: AsyncioRuntime, host: Host, dst: str, size: int = 56, tries: int = 3) -> int | None:
    """Ping from the vnet host; the reply's payload length, or None."""
    for seq in range(1, tries + 1):
        fut = rt.loop.create_future()

        def done(m, n, fut=fut):
            if not fut.done():
                fut.set_result(n)

        host.ping(dst, 0x77, seq, size, done)
        try:
            return await asyncio.wait_for(fut, 2.0)
        except TimeoutError:
            continue
    return None


async def wait_for(cond, timeout: float, step: float = 0.1):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        await asyncio.sleep(step)
    return cond()


def tapname() -> str:
    return f"vh{uuid.uuid4().hex[:8]}"


def neigh_has(text: str, addr: str, mac: str) -> bool:
    return any(line.startswith(addr + " ") and mac in line and "FAILED" not in line
               for line in text.splitlines())


def test_ping_arp_nd_and_fragments_both_ways(netns_factory):
    need_tun()
    need_tool("ping")
    ns = netns_factory("vhk")
    tap = tapname()
    mac = "02:00:00:aa:00:02"

    async def main(rt: AsyncioRuntime) -> None:
        host = Host(rt, "vh")
        iface = host.add_interface("eth0", mac=bytes.fromhex(mac.replace(":", "")))
        att = await attach(f"tap://{tap}?netns={ns.name}", iface.port, rt)
        try:
            await sh(ns, "sysctl", "-qw", f"net.ipv6.conf.{tap}.accept_dad=0")
            await sh(ns, "ip", "addr", "add", "10.66.0.1/24", "dev", tap)
            await sh(ns, "ip", "addr", "add", "fd66::1/64", "dev", tap, "nodad")
            host.add_address("eth0", "10.66.0.2/24")
            host.add_address("eth0", "fd66::2/64")
            await asyncio.sleep(0.3)
            # kernel -> vnet (the kernel resolves us by ARP and ND)
            for cmd in (["ping", "-c", "2", "-i", "0.2", "-W", "2", "10.66.0.2"],
                        ["ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd66::2"],
                        ["ping", "-c", "1", "-W", "3", "-s", "4000", "10.66.0.2"],
                        ["ping", "-6", "-c", "1", "-W", "3", "-s", "4000", "fd66::2"]):
                rc, out = await sh(ns, *cmd)
                assert rc == 0, f"{' '.join(cmd)}: {out}"
            rc, neigh = await sh(ns, "ip", "neigh", "show", "dev", tap)
            assert neigh_has(neigh, "10.66.0.2", mac), neigh
            assert neigh_has(neigh, "fd66::2", mac), neigh
            assert host.stats["ip4_reassembled"] >= 1 and host.stats["ip6_reassembled"] >= 1
            assert host.stats["ip4_frag_tx"] >= 3 and host.stats["ip6_frag_tx"] >= 3
            # vnet -> kernel (we resolve the kernel by ARP and ND)
            _, link = await sh(ns, "cat", f"/sys/class/net/{tap}/address")
            kmac = bytes.fromhex(link.strip().replace(":", ""))
            host.by_name["eth0"].neigh4.remove(b"\x0a\x42\x00\x01")
            host.by_name["eth0"].neigh6.remove(ipaddress.IPv6Address("fd66::1").packed)
            assert await vping(rt, host, "10.66.0.1") == 56
            assert await vping(rt, host, "fd66::1") == 56
            assert iface.neigh4.lookup(b"\x0a\x42\x00\x01") == kmac
            assert iface.neigh6.lookup(ipaddress.IPv6Address("fd66::1").packed) == kmac
            assert host.stats["arp_tx_request"] >= 1 and host.stats["nd_ns_tx"] >= 1
            # large pings: we fragment the request, the kernel fragments its reply
            before4, before6 = host.stats["ip4_reassembled"], host.stats["ip6_reassembled"]
            assert await vping(rt, host, "10.66.0.1", 5000) == 5000
            assert await vping(rt, host, "fd66::1", 5000) == 5000
            assert host.stats["ip4_reassembled"] > before4
            assert host.stats["ip6_reassembled"] > before6
            # Link-local ping6 both ways, with the interface scope.
            ll = iface.ll_addr()
            assert ll is not None
            rc, out = await sh(ns, "ping", "-6", "-c", "1", "-W", "2", f"{ll.addr}%{tap}")
            assert rc == 0, out
        finally:
            att.close()

    run(main, seed=1)


def test_vnet_host_takes_address_from_radvd(netns_factory):
    need_tun()
    need_tool("radvd", "ping")
    ns = netns_factory("vhr")
    tap = tapname()
    tmp = tempfile.mkdtemp(prefix="vnet-radvd-")
    conf = os.path.join(tmp, "radvd.conf")
    with open(conf, "w") as f:
        f.write(f"interface {tap} {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n"
                f"  MaxRtrAdvInterval 4;\n  prefix fd67:1:2:3::/64 {{ AdvOnLink on; "
                f"AdvAutonomous on; }};\n}};\n")

    async def main(rt: AsyncioRuntime) -> None:
        host = Host(rt, "vh")
        iface = host.add_interface("eth0")
        att = await attach(f"tap://{tap}?netns={ns.name}", iface.port, rt)
        radvd = None
        try:
            await sh(ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
            await sh(ns, "ip", "addr", "add", "fd67:1:2:3::1/64", "dev", tap, "nodad")
            radvd = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns.name, "radvd", "-n", "-C", conf, "-p",
                os.path.join(tmp, "radvd.pid"), "-m", "stderr",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            net = ipaddress.IPv6Network("fd67:1:2:3::/64")

            def slaac():
                return next((a for a in iface.addrs6 if a.addr in net and a.state == "preferred"),
                            None)

            a = await wait_for(slaac, 20.0)
            assert a is not None, (host.describe_addresses(), dict(host.stats))
            assert host.default_routers(), "radvd's RA must make it a default router"
            rc, out = await sh(ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", str(a.addr))
            assert rc == 0, out
            assert await vping(rt, host, "fd67:1:2:3::1") == 56
        finally:
            if radvd is not None and radvd.returncode is None:
                radvd.terminate()
                await radvd.wait()
            att.close()

    run(main, seed=2)


def test_linux_takes_address_from_vnet_router(netns_factory):
    need_tun()
    need_tool("ping")
    ns = netns_factory("vhl")
    tap = tapname()

    async def main(rt: AsyncioRuntime) -> None:
        host = Host(rt, "vr", router=True)
        iface = host.add_interface("eth0")
        att = await attach(f"tap://{tap}?netns={ns.name}", iface.port, rt)
        try:
            await sh(ns, "sysctl", "-qw", f"net.ipv6.conf.{tap}.accept_ra=2")
            await sh(ns, "sysctl", "-qw", f"net.ipv6.conf.{tap}.router_solicitations=3")
            host.add_address("eth0", "fd68:5::1/64")
            RaDaemon(host, min_interval=3, max_interval=4)

            async def kernel_addr():
                rc, out = await sh(ns, "ip", "-6", "-o", "addr", "show", "dev", tap,
                                   "scope", "global")
                for line in out.splitlines():  # once the kernel's own DAD is over
                    for word in line.split():
                        if word.startswith("fd68:5:") and "tentative" not in line:
                            return word.split("/")[0]
                return None

            addr = None
            end = time.monotonic() + 25
            while addr is None and time.monotonic() < end:
                addr = await kernel_addr()
                if addr is None:
                    await asyncio.sleep(0.3)
            assert addr is not None, dict(host.stats)
            rc, routes = await sh(ns, "ip", "-6", "route", "show", "default")
            ll = iface.ll_addr()
            assert ll is not None and str(ll.addr) in routes, routes
            rc, out = await sh(ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", "fd68:5::1")
            assert rc == 0, out
            assert await vping(rt, host, addr) == 56
            assert host.stats["nd_ra_tx"] >= 1
        finally:
            att.close()

    run(main, seed=3)


def test_packet_too_big_honoured_both_ways(netns_factory):
    """The kernel routes with a 1280-byte link behind it: our big ping6 gets a PTB and we
    fragment the retry. Then a vnet router with a 1280-byte link sends the kernel a PTB
    and the kernel fragments its retry."""
    need_tun()
    need_tool("ping")
    ns_r = netns_factory("vhp")
    ns_far = netns_factory("vhf")
    tap = tapname()
    va, vb = f"va{uuid.uuid4().hex[:6]}", f"vb{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "link", "add", va, "netns", ns_r.name, "mtu", "1280", "type", "veth",
                    "peer", "name", vb, "netns", ns_far.name, "mtu", "1280"], check=True)

    async def main(rt: AsyncioRuntime) -> None:
        host = Host(rt, "vh")
        iface = host.add_interface("eth0")
        att = await attach(f"tap://{tap}?netns={ns_r.name}", iface.port, rt)
        try:
            await sh(ns_r, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
            await sh(ns_r, "ip", "addr", "add", "fd69::1/64", "dev", tap, "nodad")
            await sh(ns_r, "ip", "addr", "add", "fd6a::1/64", "dev", va, "nodad")
            await sh(ns_r, "ip", "link", "set", va, "up")
            await sh(ns_far, "ip", "addr", "add", "fd6a::2/64", "dev", vb, "nodad")
            await sh(ns_far, "ip", "link", "set", vb, "up")
            await sh(ns_far, "ip", "-6", "route", "add", "default", "via", "fd6a::1")
            await sh(ns_r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            await sh(ns_r, "ip", "addr", "add", "10.69.0.1/24", "dev", tap)
            await sh(ns_r, "ip", "addr", "add", "10.6.10.1/24", "dev", va)
            await sh(ns_far, "ip", "addr", "add", "10.6.10.2/24", "dev", vb)
            await sh(ns_far, "ip", "route", "add", "default", "via", "10.6.10.1")
            host.add_address("eth0", "fd69::2/64")
            host.add_route("::/0", via="fd69::1")
            host.add_address("eth0", "10.69.0.2/24")
            host.add_route("0.0.0.0/0", via="10.69.0.1")
            await asyncio.sleep(0.5)
            assert await vping(rt, host, "fd6a::2", 1400, tries=4) == 1400
            assert host.stats["pmtu_updates"] >= 1
            assert host.path_mtu("fd6a::2") == 1280
            assert host.stats["ip6_frag_tx"] >= 2
            # IPv4: a TCP-sized datagram goes out with DF; Linux answers Fragmentation Needed
            errs: list[tuple[int, int]] = []
            host.register_error_handler(6, lambda m, t, c, q: errs.append((t, c)))
            seg = bytes(20) + bytes(1400)
            assert await vping(rt, host, "10.6.10.2") == 56  # resolve the first hop
            assert host.ip_send("10.6.10.2", 6, seg)
            assert await wait_for(lambda: errs, 3.0) == [(3, 4)]
            assert host.path_mtu("10.6.10.2") == 1280
        finally:
            att.close()

    run(main, seed=4)

    # The other way: a vnet router whose second link has MTU 1280, the kernel as the host.
    ns_a = netns_factory("vha")
    ns_b = netns_factory("vhb")
    ta, tb = tapname(), tapname()

    async def main2(rt: AsyncioRuntime) -> None:
        r = Host(rt, "vr", router=True)
        e0 = r.add_interface("eth0")
        e1 = r.add_interface("eth1", mtu=1280)
        a0 = await attach(f"tap://{ta}?netns={ns_a.name}", e0.port, rt)
        a1 = await attach(f"tap://{tb}?netns={ns_b.name}&mtu=1280", e1.port, rt)
        try:
            r.add_address("eth0", "fd6b::1/64")
            r.add_address("eth1", "fd6c::1/64")
            await sh(ns_a, "ip", "addr", "add", "fd6b::2/64", "dev", ta, "nodad")
            await sh(ns_a, "ip", "-6", "route", "add", "default", "via", "fd6b::1")
            await sh(ns_b, "ip", "addr", "add", "fd6c::2/64", "dev", tb, "nodad")
            await sh(ns_b, "ip", "-6", "route", "add", "default", "via", "fd6c::1")
            await asyncio.sleep(0.5)
            # -M want: let the kernel fragment once it learned the path MTU from our PTB
            rc, out = await sh(ns_a, "ping", "-6", "-M", "want", "-c", "3", "-i", "0.5", "-W", "2",
                               "-s", "1400", "fd6c::2")
            assert r.stats["ip6_fwd_too_big"] >= 1, dict(r.stats)
            rc, cache = await sh(ns_a, "ip", "-6", "route", "get", "fd6c::2")
            assert "mtu 1280" in cache, cache + out
            rc, out2 = await sh(ns_a, "ping", "-6", "-M", "want", "-c", "2", "-i", "0.5", "-W", "2",
                                "-s", "1400", "fd6c::2")
            assert "bytes from fd6c::2" in out + out2, out + out2 + cache
            # IPv4 with DF: our router answers Fragmentation Needed and Linux records the MTU
            r.add_address("eth0", "10.6.11.1/24")
            r.add_address("eth1", "10.6.12.1/24")
            await sh(ns_a, "ip", "addr", "add", "10.6.11.2/24", "dev", ta)
            await sh(ns_a, "ip", "route", "add", "default", "via", "10.6.11.1")
            await sh(ns_b, "ip", "addr", "add", "10.6.12.2/24", "dev", tb)
            await sh(ns_b, "ip", "route", "add", "default", "via", "10.6.12.1")
            rc, out = await sh(ns_a, "ping", "-M", "do", "-c", "2", "-i", "0.5", "-W", "2",
                               "-s", "1400", "10.6.12.2")
            assert r.stats["ip4_fwd_too_big"] >= 1, dict(r.stats)
            rc, cache = await sh(ns_a, "ip", "route", "get", "10.6.12.2")
            assert "mtu 1280" in cache, cache + out
            rc, out = await sh(ns_a, "ping", "-M", "want", "-c", "1", "-W", "2", "-s", "1400",
                               "10.6.12.2")
            assert rc == 0, out
        finally:
            a0.close()
            a1.close()

    run(main2, seed=5)


def test_cli_host_and_ctl(netns_factory):
    """`vnet host --attach tap://... --addr ... --ctl SOCK`; `vnet ctl SOCK ping` exits 0
    when answered and 1 when not; `addr` lists the addresses."""
    need_tun()
    need_tool("ping")
    ns = netns_factory("vhc")
    tap = tapname()
    tmp = tempfile.mkdtemp(prefix="vnet-host-")
    sock = os.path.join(tmp, "h.ctl")
    proc = subprocess.Popen([sys.executable, "-m", "vnet", "host", "--attach",
                             f"tap://{tap}?netns={ns.name}", "--addr", "10.70.0.2/24",
                             "--addr", "fd70::2/64", "--ctl", sock],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        end = time.monotonic() + 15
        while not os.path.exists(sock) and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.1)
        assert os.path.exists(sock), proc.stdout.read() if proc.poll() is not None else "no socket"
        ns.run("ip", "addr", "add", "10.70.0.1/24", "dev", tap)
        ns.run("ip", "addr", "add", "fd70::1/64", "dev", tap, "nodad")

        def ctl(*words: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "vnet", "ctl", sock, *words],
                                  capture_output=True, text=True, timeout=30)

        r = ctl("ping", "10.70.0.1")
        assert r.returncode == 0 and "bytes from 10.70.0.1" in r.stdout, r.stdout + r.stderr
        r = ctl("ping6", "fd70::1")
        assert r.returncode == 0 and "bytes from fd70::1" in r.stdout, r.stdout + r.stderr
        r = ctl("ping", "10.70.0.99", "1")
        assert r.returncode == 1, r.stdout
        r = ctl("addr")
        assert "10.70.0.2/24" in r.stdout and "fd70::2/64" in r.stdout and "fe80::" in r.stdout
        assert ns.run("ping", "-c", "1", "-W", "2", "10.70.0.2", check=False).returncode == 0
        r = ctl("neigh")
        assert "10.70.0.1" in r.stdout, r.stdout
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_dhcp_lease_from_dnsmasq_and_arp_conflict_detection(netns_factory):
    """DHCPv4 from dnsmasq; then RFC 5227 both ways: Linux's `arping -D` finds our address
    taken, and our probe finds the kernel's address taken."""
    need_tun()
    need_tool("dnsmasq", "arping", "ping")
    ns = netns_factory("vhd")
    tap = tapname()
    tmp = tempfile.mkdtemp(prefix="vnet-dnsmasq-")
    mac = "02:00:00:aa:00:07"

    async def main(rt: AsyncioRuntime) -> None:
        from vnet.stack.dhcp4_client import Dhcp4Client

        host = Host(rt, "vh")
        iface = host.add_interface("eth0", mac=bytes.fromhex(mac.replace(":", "")))
        att = await attach(f"tap://{tap}?netns={ns.name}", iface.port, rt)
        dns = None
        try:
            await sh(ns, "ip", "addr", "add", "10.71.0.1/24", "dev", tap)
            dns = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns.name, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
                "--port=0", f"--interface={tap}", "--bind-interfaces", "--user=root",
                "--dhcp-range=10.71.0.50,10.71.0.60,255.255.255.0,10m",
                "--dhcp-option=3,10.71.0.1", f"--dhcp-leasefile={tmp}/leases",
                f"--pid-file={tmp}/pid",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
            # our RFC 5227 probe of the kernel's address must be answered (runs meanwhile)
            res: list[bool] = []
            host.acd_probe(iface, ipaddress.IPv4Address("10.71.0.1"), res.append)
            host.acd_probe(iface, ipaddress.IPv4Address("10.71.0.99"), res.append)
            await asyncio.sleep(0.5)
            client = Dhcp4Client(host, iface)
            client.start()
            assert await wait_for(lambda: client.state == "bound", 20.0), (client.state,
                                                                           dict(host.stats))
            assert client.addr is not None
            ours = str(client.addr.ip)
            assert ipaddress.IPv4Address(ours) in ipaddress.IPv4Network("10.71.0.0/24")
            # 3 probes for the leased address and 3 for .99; the probe of .1 stops at its answer
            assert 7 <= host.stats["acd_probe_tx"] <= 8 and host.stats["dhcp_bound"] == 1
            assert client.lease["router"] == "10.71.0.1"
            with open(f"{tmp}/leases") as f:
                assert mac in f.read()
            assert await vping(rt, host, "10.71.0.1") == 56
            r = host.routes4.get(0, 0)
            assert r is not None and r.gateway == bytes((10, 71, 0, 1))  # from the router option
            # Linux probes our address (RFC 5227 probe with sender 0.0.0.0): we answer
            rc, out = await sh(ns, "arping", "-D", "-c", "2", "-w", "3", "-I", tap, ours)
            assert rc == 1, f"arping -D should see our reply: {out}"
            assert await wait_for(lambda: len(res) == 2, 10.0)
            assert sorted(res) == [False, True]
        finally:
            if dns is not None and dns.returncode is None:
                dns.terminate()
                await dns.wait()
            for d in list(host.dhcp.values()):
                d.stop()
            att.close()

    run(main, seed=6)


def test_mld_reports_seen_by_linux_bridge_snooping(netns_factory):
    """A Linux bridge with multicast snooping and its own querier learns our groups from
    our MLDv2 and IGMPv3 reports (and our answers to its queries): `bridge mdb` lists them."""
    need_tun()
    need_tool("bridge")
    ns = netns_factory("vhm")
    tap = tapname()
    br = f"br{uuid.uuid4().hex[:6]}"

    async def main(rt: AsyncioRuntime) -> None:
        host = Host(rt, "vh")
        iface = host.add_interface("eth0")
        await sh(ns, "ip", "link", "add", br, "type", "bridge", "mcast_snooping", "1",
                 "mcast_querier", "1", "mcast_query_interval", "300", "mcast_startup_query_count", "3",
                 "mcast_startup_query_interval", "100", "mcast_query_response_interval", "100")
        await sh(ns, "ip", "link", "set", br, "up")
        att = await attach(f"tap://{tap}?netns={ns.name}", iface.port, rt)
        try:
            await sh(ns, "ip", "link", "set", tap, "master", br)
            host.add_address("eth0", "fd6d::5/64")
            host.add_address("eth0", "10.73.0.5/24")
            host.join_group("eth0", "239.7.7.7")  # IGMPv3 report
            group = "ff02::1:ff00:5"  # solicited-node group of fd6d::5

            async def mdb() -> str:
                return (await sh(ns, "bridge", "mdb", "show", "dev", br))[1]

            end = time.monotonic() + 20
            out = ""
            while time.monotonic() < end:
                out = await mdb()
                if group in out and tap in out and "239.7.7.7" in out:
                    break
                await asyncio.sleep(0.3)
            assert group in out and tap in out and "239.7.7.7" in out, (out, dict(host.stats))
            assert host.stats["mld_report_tx"] >= 2
            # the bridge's querier (every 3 s) gets answers; the group stays learned
            assert await wait_for(lambda: host.stats["mld_query_rx"], 12.0), dict(host.stats)
            reports = host.stats["mld_report_tx"]
            assert await wait_for(lambda: host.stats["mld_report_tx"] > reports, 12.0)
            assert group in await mdb()
        finally:
            att.close()

    run(main, seed=7)


def test_cli_host_configures_itself_from_dnsmasq_and_radvd(netns_factory):
    """`vnet host --attach tap://...` with no --addr: DHCPv4 from dnsmasq and SLAAC from
    radvd; `vnet ctl addr` shows both and the kernel pings the host on each."""
    need_tun()
    need_tool("dnsmasq", "radvd", "ping")
    ns = netns_factory("vha")
    tap = tapname()
    tmp = tempfile.mkdtemp(prefix="vnet-auto-")
    sock = os.path.join(tmp, "h.ctl")
    with open(os.path.join(tmp, "radvd.conf"), "w") as f:
        f.write(f"interface {tap} {{\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n"
                f"  MaxRtrAdvInterval 4;\n  prefix fd72:1::/64 {{ }};\n}};\n")
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen([sys.executable, "-m", "vnet", "host", "--attach",
                                       f"tap://{tap}?netns={ns.name}", "--ctl", sock],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        end = time.monotonic() + 15
        while not os.path.exists(sock) and time.monotonic() < end:
            time.sleep(0.1)
        assert os.path.exists(sock)
        ns.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        ns.run("ip", "addr", "add", "10.72.0.1/24", "dev", tap)
        ns.run("ip", "addr", "add", "fd72:1::1/64", "dev", tap, "nodad")
        procs.append(ns.popen("dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                              f"--interface={tap}", "--bind-interfaces", "--user=root",
                              "--dhcp-range=10.72.0.50,10.72.0.60,255.255.255.0,10m",
                              f"--dhcp-leasefile={tmp}/leases", f"--pid-file={tmp}/dnsmasq.pid",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(ns.popen("radvd", "-n", "-C", os.path.join(tmp, "radvd.conf"), "-p",
                              os.path.join(tmp, "radvd.pid"), "-m", "stderr",
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        v4 = v6 = None
        end = time.monotonic() + 40
        while (v4 is None or v6 is None) and time.monotonic() < end:
            r = subprocess.run([sys.executable, "-m", "vnet", "ctl", sock, "--json", "addr"],
                               capture_output=True, text=True, timeout=30)
            rows = json.loads(r.stdout) if r.returncode == 0 else []
            for row in rows:
                if row["origin"] == "dhcp":
                    v4 = row["addr"].split("/")[0]
                if row["origin"] == "slaac" and row["state"] == "preferred":
                    v6 = row["addr"].split("/")[0]
            time.sleep(0.5)
        assert v4 and ipaddress.IPv4Address(v4) in ipaddress.IPv4Network("10.72.0.0/24"), rows
        assert v6 and ipaddress.IPv6Address(v6) in ipaddress.IPv6Network("fd72:1::/64"), rows
        assert ns.run("ping", "-c", "1", "-W", "2", v4, check=False).returncode == 0
        assert ns.run("ping", "-6", "-c", "1", "-W", "2", v6, check=False).returncode == 0
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_dhcpv6_address_from_dnsmasq(netns_factory):
    """dnsmasq advertises the Managed flag (--enable-ra) and leases IA_NA addresses: the
    vnet host asks by DHCPv6, binds the address and the kernel pings it."""
    need_tun()
    need_tool("dnsmasq", "ping")
    ns = netns_factory("vh6")
    tap = tapname()
    tmp = tempfile.mkdtemp(prefix="vnet-dhcp6-")

    async def main(rt: AsyncioRuntime) -> None:
        host = Host(rt, "vh")
        host.dhcp6_on_managed = True
        iface = host.add_interface("eth0")
        att = await attach(f"tap://{tap}?netns={ns.name}", iface.port, rt)
        dns = None
        try:
            await sh(ns, "ip", "addr", "add", "fd74::1/64", "dev", tap, "nodad")
            dns = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns.name, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
                "--port=0", f"--interface={tap}", "--bind-interfaces", "--user=root",
                "--enable-ra", "--ra-param=*,4", "--dhcp-range=fd74::100,fd74::1ff,64,10m",
                "--dhcp-option=option6:dns-server,[fd74::53]",
                f"--dhcp-leasefile={tmp}/leases", f"--pid-file={tmp}/pid",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)

            def bound():
                c = host.dhcp6.get("eth0")
                return c is not None and c.state == "bound" and c.addrs

            assert await wait_for(bound, 25.0), dict(host.stats)
            client = host.dhcp6["eth0"]
            addr = ipaddress.IPv6Address(client.addrs[0])
            assert ipaddress.IPv6Address("fd74::100") <= addr <= ipaddress.IPv6Address("fd74::1ff")
            assert client.dns == ["fd74::53"]
            row = next(a for a in host.describe_addresses() if a["addr"] == f"{addr}/128")
            assert row["origin"] == "dhcp6" and 0 < row["valid_lft"] <= 600
            await asyncio.sleep(1.2)  # its optimistic DAD
            rc, out = await sh(ns, "ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", str(addr))
            assert rc == 0, out
        finally:
            if dns is not None and dns.returncode is None:
                dns.terminate()
                await dns.wait()
            for d in list(host.dhcp6.values()):
                d.stop()
            att.close()

    run(main, seed=8)
