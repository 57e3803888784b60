"""TAP offloads (IFF_VNET_HDR + TSO/CSUM) through an in-process switch, kernel TCP at both ends.

Both TAPs offload-capable: 64 KB GSO frames cross unsegmented. One plain TAP on the
switch: the same transfer works because GSO frames are segmented and partial
checksums finished in software first. Data integrity is checked by SHA-256.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import need_tun
from vnet.link.switch import Switch
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run

pytestmark = pytest.mark.privileged

SIZE = 8 << 20
SERVER = """
import hashlib, socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.79.0.2", 5201)); s.listen(1); print("listening", flush=True)
c, _ = s.accept(); h = hashlib.sha256(); n = 0
while True:
    b = c.recv(1 << 16)
    if not b: break
    h.update(b); n += len(b)
c.sendall(b"ok"); print(n, h.hexdigest())
"""
CLIENT = """
import hashlib, random, socket
data = random.Random(7).randbytes(NBYTES)
c = socket.create_connection(("10.79.0.2", 5201), timeout=20)
c.sendall(data); c.shutdown(socket.SHUT_WR); c.recv(2)
print(len(data), hashlib.sha256(data).hexdigest())
""".replace("NBYTES", str(SIZE))


async def transfer(n1, n2) -> tuple[str, str]:
    srv = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", n2.name, "python3", "-c", SERVER,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert srv.stdout is not None
    line = await asyncio.wait_for(srv.stdout.readline(), 10)
    assert line.strip() == b"listening", line
    cli = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", n1.name, "python3", "-c", CLIENT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        out_c, _ = await asyncio.wait_for(cli.communicate(), 40)
        out_s, _ = await asyncio.wait_for(srv.communicate(), 10)
    finally:
        for p in (srv, cli):
            if p.returncode is None:
                p.kill()
                await p.wait()
    return out_c.decode().strip(), out_s.decode().strip()


@pytest.mark.parametrize("second", ["offload", "plain", "offload-mtu1500"])
def test_tcp_through_switch_with_offloads(netns_factory, second):
    need_tun()
    n1, n2 = netns_factory("vof"), netns_factory("vof")
    t1, t2 = f"vo{uuid.uuid4().hex[:8]}", f"vo{uuid.uuid4().hex[:8]}"

    async def main(rt: AsyncioRuntime):
        # A switch with the default MTU would drop 64 KB frames: they are segmented instead.
        sw = Switch(rt, mtu=1500 if second == "offload-mtu1500" else 65535 - 18)
        a1 = await attach(f"tap://{t1}?netns={n1.name}&vnet_hdr=1", sw.add_port(), rt)
        opt = "&vnet_hdr=1" if second.startswith("offload") else ""
        a2 = await attach(f"tap://{t2}?netns={n2.name}{opt}", sw.add_port(), rt)
        try:
            n1.run("ip", "addr", "add", "10.79.0.1/24", "dev", t1)
            n2.run("ip", "addr", "add", "10.79.0.2/24", "dev", t2)
            res = await transfer(n1, n2)
            return res, a1.counters(), sw.ports
        finally:
            a1.close()
            a2.close()
            sw.close()

    (client, server), c1, _ = run(main)
    assert client and client == server.splitlines()[-1], (client, server)
    assert client.split()[0] == str(SIZE)
    if second == "offload":
        assert c1["offload_passed"] > 0 and c1["gso_segmented"] == 0, c1
    elif second == "plain":
        assert c1["offload_passed"] == 0 and c1["gso_segmented"] > 0, c1
    else:  # the switch admits offloaded frames past its MTU: 64 KB GSO frames pass whole
        assert c1["offload_passed"] > 0 and c1["gso_segmented"] == 0, c1
    assert c1["rx_dropped"] == 0 and c1["rx_bad_hdr"] == 0, c1


def test_tcp_through_vnet_plug_join_of_two_offload_taps(netns_factory):
    """`vnet plug tap://a?vnet_hdr=1 tap://b?vnet_hdr=1`: no switch, GSO frames pass whole."""
    from vnet.cli.plug import join
    from vnet.link.port import Port

    need_tun()
    n1, n2 = netns_factory("vof"), netns_factory("vof")
    t1, t2 = f"vo{uuid.uuid4().hex[:8]}", f"vo{uuid.uuid4().hex[:8]}"

    async def main(rt: AsyncioRuntime):
        p1, p2 = Port("a"), Port("b")
        join(p1, p2)
        a1 = await attach(f"tap://{t1}?netns={n1.name}&vnet_hdr=1", p1, rt)
        a2 = await attach(f"tap://{t2}?netns={n2.name}&vnet_hdr=1", p2, rt)
        try:
            n1.run("ip", "addr", "add", "10.79.0.1/24", "dev", t1)
            n2.run("ip", "addr", "add", "10.79.0.2/24", "dev", t2)
            return await transfer(n1, n2), a1.counters()
        finally:
            a1.close()
            a2.close()

    (client, server), c1 = run(main)
    assert client and client == server.splitlines()[-1], (client, server)
    assert c1["offload_passed"] > 0 and c1["gso_segmented"] == 0, c1


def test_passthrough_rules():
    """Offloaded frames go whole only where every possible destination takes them."""
    from vnet.cli.plug import join
    from vnet.link.port import Port
    from vnet.phy.offload import passthrough_ok
    from vnet.runtime.sim import SimRuntime

    def capable(frame: bytes) -> None:
        pass

    capable.accepts_offload = True  # type: ignore[attr-defined]

    def plain(frame: bytes) -> None:
        pass

    sw = Switch(SimRuntime(seed=1), mtu=65517)
    a, b = sw.add_port(), sw.add_port()
    a.attach(capable)
    b.attach(capable)
    assert passthrough_ok(a, 65000)
    c = sw.add_port()
    assert not passthrough_ok(a, 65000)  # an unattached port may get the flood
    c.attach(capable)
    assert passthrough_ok(a, 65000)
    sw.vlan_create(5)
    sw.set_port_vlan(3, 5)
    assert not passthrough_ok(a, 65000)  # another VLAN: conservative
    sw.set_port_vlan(3, 0)
    sw.vlan_add_port(5, 2)
    assert not passthrough_ok(a, 65000)  # a trunk would re-tag the frame
    sw.vlan_del_port(5, 2)
    assert passthrough_ok(a, 65000)
    b.attach(plain)
    assert not passthrough_ok(a, 65000)
    small = Switch(SimRuntime(seed=1))
    x, y = small.add_port(), small.add_port()
    x.attach(capable)
    y.attach(capable)
    assert passthrough_ok(x, 1000)
    # over the MTU only if the switch lets offloaded frames past its size check
    assert passthrough_ok(x, 65000) == getattr(small, "admits_offload", False)
    # Direct join (vnet plug), and an engine that is not a switch.
    p, q = Port("p"), Port("q")
    join(p, q)
    q.attach(capable)
    assert passthrough_ok(p, 65000)
    q.attach(plain)
    assert not passthrough_ok(p, 65000)

    class Engine:
        ports = [p, q]  # e.g. a VRR node: not a switch, parses frames

    p.owner = Engine()
    q.attach(capable)
    assert not passthrough_ok(p, 65000)
