"""TCP and UDP between a vnet host and the Linux kernel, through a TAP in a namespace.

Both directions (kernel client -> vnet server, vnet client -> kernel server), IPv4 and
IPv6, data checked byte for byte on both ends.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid

import pytest

from tests.conftest import need_tun
from tests.interop import kernel_peer
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.stack.host import Host
from vnet.stack.sockets import create_datagram_endpoint, open_connection, start_server

pytestmark = pytest.mark.privileged

V4_K, V4_V = "10.66.0.1", "10.66.0.2"
V6_K, V6_V = "fd66::1", "fd66::2"
NBYTES = 3_000_000


async def _setup(rt: AsyncioRuntime, ns) -> tuple[Host, object, str]:
    name = f"vt{uuid.uuid4().hex[:8]}"
    host = Host(rt, "vnet")
    iface = host.add_interface("eth0")
    att = await attach(f"tap://{name}?netns={ns.name}", iface.port, rt)
    ns.run("ip", "addr", "add", f"{V4_K}/24", "dev", name)
    ns.run("ip", "-6", "addr", "add", f"{V6_K}/64", "dev", name, "nodad")
    host.add_address("eth0", f"{V4_V}/24")
    host.add_address("eth0", f"{V6_V}/64")
    await asyncio.sleep(1.5)  # DAD on our side
    return host, att, name


@pytest.mark.parametrize("fam", ["v4", "v6"])
def test_tcp_and_udp_both_ways_with_kernel(netns_factory, fam: str) -> None:
    need_tun()
    ns = netns_factory("vtcp")
    kaddr, vaddr = (V4_K, V4_V) if fam == "v4" else (V6_K, V6_V)

    async def main(rt: AsyncioRuntime) -> dict:
        host, att, _ = await _setup(rt, ns)
        res: dict = {}
        try:
            # 1. kernel client -> vnet echo server
            async def echo(reader, writer):
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    await writer.drain()
                writer.close()

            server = await start_server(host, echo, 7000)
            proc = await kernel_peer.ns_python(ns, kernel_peer.TCP_CLIENT, vaddr, "7000", str(NBYTES))
            res["k2v"] = await kernel_peer.json_result(proc)
            server.close()

            # 2. vnet client -> kernel echo server
            proc = await kernel_peer.ns_python(ns, kernel_peer.TCP_ECHO_SERVER, kaddr, "7001")
            assert (await asyncio.wait_for(proc.stdout.readline(), 10)).startswith(b"ready")
            reader, writer = await open_connection(host, kaddr, 7001)
            data = kernel_peer_pattern(NBYTES)

            async def pump():
                writer.write(data)
                await writer.drain()
                writer.write_eof()

            task = asyncio.ensure_future(pump())
            echoed = await asyncio.wait_for(reader.read(-1), 40)
            await task
            writer.close()
            res["v2k_echo_equal"] = echoed == data
            if echoed != data:
                c = writer.get_extra_info("connection")
                res["v2k_echo_diff"] = str((len(echoed), c.info()))
            res["v2k"] = await kernel_peer.json_result(proc)

            # 3. UDP: kernel client -> vnet (reversing) echo; vnet client -> kernel echo
            t_srv, _ = await create_datagram_endpoint(host, kernel_peer.UdpReverser,
                                                     local_port=7002)
            proc = await kernel_peer.ns_python(ns, kernel_peer.UDP_CLIENT, vaddr, "7002")
            res["udp_k2v"] = await kernel_peer.json_result(proc)
            t_srv.close()

            proc = await kernel_peer.ns_python(ns, kernel_peer.UDP_ECHO_SERVER, kaddr, "7003")
            assert (await asyncio.wait_for(proc.stdout.readline(), 10)).startswith(b"ready")
            got: asyncio.Queue = asyncio.Queue()

            class Cli(asyncio.DatagramProtocol):
                def datagram_received(self, d, a):
                    got.put_nowait((d, a))

            t_cli, _ = await create_datagram_endpoint(host, Cli, remote_addr=(kaddr, 7003))
            t_cli.sendto(b"hello kernel")
            res["udp_v2k_reply"] = await asyncio.wait_for(got.get(), 5)
            res["udp_v2k"] = await kernel_peer.json_result(proc)
            t_cli.close()
            res["tcp_stats"] = host.tcp.stats()
        finally:
            att.close()
        return res

    res = run(main)
    assert res["k2v"]["received"] == NBYTES and res["k2v"]["equal"], res["k2v"]
    assert res["v2k"] == {"received": NBYTES, "pattern_ok": True, "peer": res["v2k"]["peer"]}
    assert res["v2k"]["peer"].endswith(vaddr)
    assert res["v2k_echo_equal"], res.get("v2k_echo_diff")
    assert res["udp_k2v"]["replies_ok"] == [True] * 5
    assert res["udp_v2k_reply"] == (b"HELLO KERNEL", (kaddr, 7003))
    assert res["udp_v2k"] == {"got": "hello kernel", "from": res["udp_v2k"]["from"]}
    assert res["tcp_stats"]["rx_bad_checksum"] == 0


def kernel_peer_pattern(n: int) -> bytes:
    ns: dict = {}
    exec(kernel_peer.PATTERN_FN, ns)  # the same definition the kernel side runs
    return ns["pattern"](n)


def test_syn_flood_from_kernel_side_leaves_service_working(netns_factory) -> None:
    """5000 spoofed SYNs through the TAP while a kernel client moves data: the backlog and
    connection table stay bounded, the established transfer finishes byte for byte, and
    a new kernel connection made during the flood gets in (on a SYN cookie)."""
    need_tun()
    ns = netns_factory("vsyn")

    async def main(rt: AsyncioRuntime) -> dict:
        host, att, name = await _setup(rt, ns)
        host.add_route("0.0.0.0/0", via=V4_K)  # SYN-ACKs to the spoofed sources go there
        res: dict = {}
        try:
            async def echo(reader, writer):
                while data := await reader.read(1 << 16):
                    writer.write(data)
                    await writer.drain()
                writer.close()

            server = await start_server(host, echo, 7000, backlog=32)
            mac = host.iface("eth0").mac.hex()
            big = await kernel_peer.ns_python(ns, kernel_peer.TCP_CLIENT, V4_V, "7000", "8000000")
            await asyncio.sleep(0.3)  # the big transfer is under way
            flood = await kernel_peer.ns_python(ns, kernel_peer.SYN_FLOOD, name, mac, V4_V, "7000", "5000")
            res["flood"] = await kernel_peer.json_result(flood, 60)
            during = await kernel_peer.ns_python(ns, kernel_peer.TCP_CLIENT, V4_V, "7000", "100000")
            res["during"] = await kernel_peer.json_result(during)
            res["big"] = await kernel_peer.json_result(big, 60)
            lst = host.tcp.listeners[7000]
            res["listener"] = lst.info()
            res["conns"] = len(host.tcp.conns)
            server.close()
        finally:
            att.close()
        return res

    res = run(main)
    assert res["flood"]["sent"] == 5000
    assert res["big"]["equal"] and res["big"]["received"] == 8_000_000
    assert res["during"]["equal"] and res["during"]["received"] == 100_000
    lst = res["listener"]
    assert lst["half_open"] <= 32 and res["conns"] <= 32 + 2
    assert lst["cookies_sent"] > 0 and lst["cookies_ok"] + lst["accepted"] >= 2


def test_vnet_host_cli_tcp_commands_with_kernel(netns_factory, tmp_path) -> None:
    """The surface scripts use: `vnet host --attach tap://...` and `vnet ctl SOCK tcp ...`
    against kernel peers, both directions, pattern checked on both ends."""
    import subprocess

    need_tun()
    ns = netns_factory("vcli")
    name = f"vt{uuid.uuid4().hex[:8]}"
    ctl = str(tmp_path / "h.ctl")
    with kernel_peer.vnet_host(ctl, "--attach", f"tap://{name}?netns={ns.name}",
                               "--addr", f"{V4_V}/24", "--addr", f"{V6_V}/64",
                               "--no-dhcp") as vctl:
        ns.run("ip", "addr", "add", f"{V4_K}/24", "dev", name)
        ns.run("ip", "-6", "addr", "add", f"{V6_K}/64", "dev", name, "nodad")
        time.sleep(1.5)  # DAD on the vnet side
        assert vctl("tcp", "listen", "5001", "echo")[0] == 0
        r = ns.run(sys.executable, "-c", kernel_peer.TCP_CLIENT, V6_V, "5001", "2000000")
        k2v = json.loads(r.stdout.splitlines()[-1])
        srv = subprocess.Popen(["ip", "netns", "exec", ns.name, sys.executable, "-c",
                                kernel_peer.TCP_ECHO_SERVER, V4_K, "5002"],
                               stdout=subprocess.PIPE, text=True)
        assert srv.stdout.readline().startswith("ready")
        rc, v2k = vctl("tcp", "connect", V4_K, "5002", "3000000")
        kside = json.loads(srv.communicate(timeout=30)[0].splitlines()[-1])
        rc_refused, refused = vctl("tcp", "connect", V4_K, "5999", "10")
        _, stat = vctl("tcp", "stat")
    assert k2v["equal"] and k2v["received"] == 2_000_000
    assert rc == 0 and v2k["ok"] and v2k["received"] == 3_000_000, v2k
    assert v2k["received_pattern_ok"] and v2k["goodput_mbit"] > 0
    assert kside["received"] == 3_000_000 and kside["pattern_ok"]
    assert rc_refused == 1 and refused["ok"] is False
    served = stat["served"][0]
    assert served["mode"] == "echo" and served["pattern_ok"] and served["received"] == 2_000_000
