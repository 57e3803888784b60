"""packet:// on one end of a veth pair inside a namespace; the kernel on the other end."""

from __future__ import annotations

import asyncio
import socket
import uuid

import pytest

from tests.conftest import need_root, need_tool
from tests.phy.helpers import responder
from vnet.link.port import Port
from vnet.phy.netns import in_netns
from vnet.phy.url import UrlError, attach
from vnet.runtime.realtime import AsyncioRuntime, run

pytestmark = pytest.mark.privileged


def veth(ns):
    sfx = uuid.uuid4().hex[:6]
    a, b = f"pa{sfx}", f"pb{sfx}"
    ns.run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    ns.run("ip", "addr", "add", "10.78.0.1/24", "dev", a)
    ns.run("ip", "link", "set", a, "up")
    ns.run("ip", "link", "set", b, "up")
    return a, b


def test_packet_socket_answers_kernel_ping(netns_factory):
    need_root()
    need_tool("ping")
    ns = netns_factory("vpk")
    a, b = veth(ns)
    seen: list[str] = []

    async def main(rt: AsyncioRuntime) -> tuple[int, str]:
        port = Port("pk")
        responder(port, "10.78.0.2", seen)
        att = await attach(f"packet://{b}?netns={ns.name}", port, rt)
        try:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                "10.78.0.2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
            return proc.returncode or 0, out.decode()
        finally:
            att.close()

    rc, out = run(main)
    assert rc == 0, out
    # Our own replies leave through b and must not come back in as received frames.
    assert seen.count("echo") == 3 and "arp" in seen, seen


def test_packet_ethertype_filter(netns_factory):
    need_root()
    ns = netns_factory("vpk")
    a, b = veth(ns)
    mac_b = bytes.fromhex(ns.run("cat", f"/sys/class/net/{b}/address").stdout.strip()
                          .replace(":", ""))
    sender = in_netns(ns.name, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    sender.bind((a, 0))
    src = bytes.fromhex("020000000077")

    async def main(rt: AsyncioRuntime) -> list[bytes]:
        port = Port("pk")
        got: list[bytes] = []
        port.receive = got.append
        att = await attach(f"packet://{b}?netns={ns.name}&ethertype=0x886f", port, rt)
        try:
            sender.send(mac_b + src + b"\x08\x00" + bytes(46))
            sender.send(mac_b + src + b"\x88\x6f" + b"hello".ljust(46, b"\0"))
            sender.send(b"\x02" * 6 + src + b"\x88\x6f" + b"promisc".ljust(46, b"\0"))
            loop = asyncio.get_running_loop()
            end = loop.time() + 5
            while len(got) < 2 and loop.time() < end:
                await asyncio.sleep(0.02)
            return got
        finally:
            att.close()
            sender.close()

    got = run(main)
    assert [f[12:14] for f in got] == [b"\x88\x6f", b"\x88\x6f"]
    assert got[0][14:19] == b"hello" and got[1][14:21] == b"promisc"


def test_packet_errors():
    async def main(rt: AsyncioRuntime) -> None:
        with pytest.raises(UrlError, match="ethertype"):
            await attach("packet://lo?ethertype=12", Port(), rt)
        with pytest.raises(UrlError, match="interface"):
            await attach("packet://", Port(), rt)
        need_root()
        with pytest.raises(UrlError, match="no such interface"):
            await attach(f"packet://nx{uuid.uuid4().hex[:8]}", Port(), rt)

    run(main)


@pytest.mark.parametrize("tap", ["plain", "offload"])
def test_tcp_from_veth_with_offloads_through_switch_to_tap(netns_factory, tap):
    """The veth peer's kernel sends partial checksums and 64 KB GSO frames; they must arrive
    right: finished in software for a plain TAP, passed whole to an offload-capable one."""
    from tests.conftest import need_tun
    from tests.phy.test_offload import SIZE, transfer
    from vnet.link.switch import Switch

    need_tun()
    n1, n2 = netns_factory("vpk"), netns_factory("vpk")
    sfx = uuid.uuid4().hex[:6]
    a, b, t = f"pa{sfx}", f"pb{sfx}", f"pt{sfx}"
    n1.run("ip", "link", "add", a, "type", "veth", "peer", "name", b)
    n1.run("ip", "addr", "add", "10.79.0.1/24", "dev", a)
    n1.run("ip", "link", "set", a, "up")
    n1.run("ip", "link", "set", b, "up")

    async def main(rt: AsyncioRuntime):
        sw = Switch(rt, mtu=65535 - 18)
        pk = await attach(f"packet://{b}?netns={n1.name}", sw.add_port(), rt)
        opt = "&vnet_hdr=1" if tap == "offload" else ""
        tp = await attach(f"tap://{t}?netns={n2.name}{opt}", sw.add_port(), rt)
        try:
            n2.run("ip", "addr", "add", "10.79.0.2/24", "dev", t)
            return await transfer(n1, n2), pk.counters()
        finally:
            pk.close()
            tp.close()
            sw.close()

    (client, server), c = run(main)
    assert client and client == server.splitlines()[-1], (client, server)
    assert client.split()[0] == str(SIZE)
    if tap == "plain":
        assert c["gso_segmented"] > 0 and c["csum_finished"] > 0, c
    else:
        assert c["offload_passed"] > 0 and c["gso_segmented"] == 0, c
    assert c["rx_bad_hdr"] == 0, c


@pytest.mark.parametrize("opts", ["", "&vnet_hdr=0"])
def test_packet_puts_back_vlan_tags(netns_factory, opts):
    """The kernel strips 802.1Q tags into metadata before packet sockets see frames."""
    need_root()
    ns = netns_factory("vpk")
    a, b = veth(ns)
    sender = in_netns(ns.name, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
    sender.bind((a, 0))
    src = bytes.fromhex("020000000077")
    tagged = b"\x02" * 6 + src + b"\x81\x00\xa0\x05" + b"\x88\xb5" + b"tagged".ljust(46, b"\0")
    untagged = b"\x02" * 6 + src + b"\x88\xb5" + b"plain".ljust(46, b"\0")

    async def main(rt: AsyncioRuntime) -> list[bytes]:
        port = Port("pk")
        got: list[bytes] = []
        port.receive = lambda f: got.append(f) if f[6:12] == src else None
        att = await attach(f"packet://{b}?netns={ns.name}{opts}", port, rt)
        try:
            sender.send(tagged)
            sender.send(untagged)
            loop = asyncio.get_running_loop()
            end = loop.time() + 5
            while len(got) < 2 and loop.time() < end:
                await asyncio.sleep(0.02)
            assert att.rx_retagged >= 1
            return got
        finally:
            att.close()
            sender.close()

    assert run(main) == [tagged, untagged]  # PCP 5, VID 5 kept


def test_retag_shifts_offload_offsets():
    from vnet.phy.packet import _retag
    from vnet.wire import virtio_net as vh

    frame = b"\x02" * 12 + b"\x08\x00" + bytes(40)
    hdr = vh.HDR.pack(1, 1, 54, 1448, 34, 16, 0)[:10]
    out = _retag(hdr + frame, 10, 0x8100, 7)
    assert vh.HDR.unpack(out[:10] + b"\0\0")[:6] == (1, 1, 58, 1448, 38, 16)
    assert out[10:] == frame[:12] + b"\x81\x00\x00\x07" + frame[12:]
    assert _retag(frame, 0, 0x88A8, 9) == frame[:12] + b"\x88\xa8\x00\x09" + frame[12:]
