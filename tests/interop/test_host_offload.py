"""The vnet host on a TAP with offloads (vnet_hdr=1) against the Linux kernel.

Kernel -> vnet: the kernel hands 64 KB GSO frames with partial checksums; the host must
take them whole (counter `rx_gso_whole`), not cut them in Python. vnet -> kernel: the
host sends TSO segments of several MSS with a partial checksum (`tx_gso`, the
connection's `tso_segments`) and the kernel cuts them. Data is checked by SHA-256 on
both ends, IPv4 and IPv6, and the kernel's TCP checksum error counter must stay 0 (the
kernel trusts a partial checksum from a TAP, so the pseudo-header sums we put in are
checked separately, in tests/stack/test_offload_host.py). UDP from the kernel arrives with
partial checksums and is finished in software. No capture tool (tshark, scapy) is
involved: the counters and the hashes are the proof.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import uuid

import pytest

from tests.conftest import need_tun
from tests.interop import kernel_peer
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.stack.host import Host
from vnet.stack.sockets import create_datagram_endpoint, tcp_of

pytestmark = pytest.mark.privileged

V4_K, V4_V = "10.67.0.1", "10.67.0.2"
V6_K, V6_V = "fd67::1", "fd67::2"
NBYTES = 6_000_000

DATA_FN = '''
import hashlib
def data(n):
    # deterministic, incompressible-looking bytes: SHA-256 in counter mode
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest() * 64
        i += 1
    return bytes(out[:n])
'''

K_SEND = DATA_FN + '''
import json, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=30)
d = data(n)
s.sendall(d)
s.shutdown(socket.SHUT_WR)
s.settimeout(30)
s.recv(1)
print(json.dumps({"sent": n, "sha256": hashlib.sha256(d).hexdigest()}))
'''

K_SINK = kernel_peer.LISTEN_ONE + '''
import hashlib
c, _ = ls.accept()
c.settimeout(30)
h = hashlib.sha256()
n = 0
while True:
    d = c.recv(1 << 18)
    if not d:
        break
    h.update(d)
    n += len(d)
c.close()
print(json.dumps({"received": n, "sha256": h.hexdigest()}), flush=True)
'''


def _data(n: int) -> bytes:
    ns: dict = {}
    exec(DATA_FN, ns)  # the same definition the kernel side runs
    return ns["data"](n)


def _csum_errors(ns) -> dict[str, int]:
    """The kernel's TCP InCsumErrors and InSegs in the namespace (/proc/net/snmp)."""
    lines = [ln.split() for ln in ns.run("cat", "/proc/net/snmp").stdout.splitlines()
             if ln.startswith("Tcp:")]
    row = dict(zip(lines[0][1:], map(int, lines[1][1:]), strict=True))
    return {"InCsumErrors": row["InCsumErrors"], "InSegs": row["InSegs"]}


@pytest.mark.parametrize("fam", ["v4", "v6"])
def test_gso_whole_and_tso_with_kernel(netns_factory, fam: str) -> None:
    need_tun()
    ns = netns_factory("vgso")
    kaddr, vaddr = (V4_K, V4_V) if fam == "v4" else (V6_K, V6_V)
    expected = _data(NBYTES)
    want = hashlib.sha256(expected).hexdigest()

    async def main(rt: AsyncioRuntime) -> dict:
        name = f"vo{uuid.uuid4().hex[:8]}"
        host = Host(rt, "vnet")
        iface = host.add_interface("eth0")
        att = await attach(f"tap://{name}?netns={ns.name}&vnet_hdr=1", iface.port, rt)
        res: dict = {}
        try:
            ns.run("ip", "addr", "add", f"{V4_K}/24", "dev", name)
            ns.run("ip", "-6", "addr", "add", f"{V6_K}/64", "dev", name, "nodad")
            host.add_address("eth0", f"{V4_V}/24")
            host.add_address("eth0", f"{V6_V}/64")
            await asyncio.sleep(1.5)  # DAD on our side

            # 1. kernel -> vnet: GSO frames taken whole
            done: asyncio.Future = rt.loop.create_future()
            rx = {"h": hashlib.sha256(), "n": 0, "conn": None}

            def accept(conn) -> None:
                rx["conn"] = conn

                def data(d: bytes) -> None:
                    rx["h"].update(d)
                    rx["n"] += len(d)

                def eof() -> None:
                    conn.close()
                    if not done.done():
                        done.set_result(None)

                conn.on_data = data
                conn.on_eof = eof

            lst = tcp_of(host).listen(7100, accept)
            proc = await kernel_peer.ns_python(ns, K_SEND, vaddr, "7100", str(NBYTES))
            await asyncio.wait_for(done, 40)
            res["k_send"] = await kernel_peer.json_result(proc)
            lst.close()
            res["rx"] = {"n": rx["n"], "sha256": rx["h"].hexdigest(),
                         "segments": rx["conn"].rx_segments}
            res["stats_after_rx"] = dict(host.stats)
            csum0 = _csum_errors(ns)

            # 2. vnet -> kernel: TSO segments, cut by the kernel
            proc = await kernel_peer.ns_python(ns, K_SINK, kaddr, "7101")
            assert (await asyncio.wait_for(proc.stdout.readline(), 10)).startswith(b"ready")
            conn = tcp_of(host).connect(kaddr, 7101)
            view = memoryview(expected)
            state = {"off": 0}

            def pump() -> None:
                while state["off"] < NBYTES and conn.writable:
                    conn.send(view[state["off"]:state["off"] + (1 << 16)])
                    state["off"] += 1 << 16
                if state["off"] >= NBYTES:
                    conn.on_writable = lambda: None
                    conn.shutdown()

            conn.on_established = pump
            conn.on_writable = pump
            res["k_sink"] = await kernel_peer.json_result(proc)
            res["conn"] = conn.info()
            res["csum"] = (csum0, _csum_errors(ns))

            # 3. UDP from the kernel comes with a partial checksum: finished in software
            t_srv, _ = await create_datagram_endpoint(host, kernel_peer.UdpReverser,
                                                     local_port=7102)
            proc = await kernel_peer.ns_python(ns, kernel_peer.UDP_CLIENT, vaddr, "7102")
            res["udp"] = await kernel_peer.json_result(proc)
            res["udp_stats"] = host.udp.stats()
            t_srv.close()
            res["stats"] = dict(host.stats)
            res["tap"] = att.counters()
            res["tcp"] = tcp_of(host).stats()
        finally:
            att.close()
        return res

    res = run(main)
    # kernel -> vnet: every byte, in far fewer segments than MSS-sized ones would need
    assert res["k_send"] == {"sent": NBYTES, "sha256": want}
    assert res["rx"]["n"] == NBYTES and res["rx"]["sha256"] == want
    assert res["stats_after_rx"]["rx_gso_whole"] > 0, res["stats_after_rx"]
    assert res["rx"]["segments"] < NBYTES // 1448, res["rx"]
    assert res["tap"]["gso_segmented"] == 0 and res["tcp"]["rx_bad_checksum"] == 0
    # vnet -> kernel: TSO segments went out with a GSO header and arrived intact
    assert res["k_sink"] == {"received": NBYTES, "sha256": want}
    assert res["conn"]["tso"] is True and res["conn"]["tso_segments"] > 0, res["conn"]
    assert res["stats"]["tx_gso"] > 0, res["stats"]
    before, after = res["csum"]
    assert after["InSegs"] > before["InSegs"]
    assert after["InCsumErrors"] == before["InCsumErrors"] == 0
    # UDP (datagrams up to 2900 bytes, fragmented) both ways, partial checksums finished
    assert res["udp"]["replies_ok"] == [True] * 5
    assert res["udp_stats"]["rx_bad_checksum"] == 0
    # the two datagrams that fit in a frame came with a partial checksum (the others are
    # fragments, checksummed by the kernel before fragmenting)
    assert res["stats"].get("rx_csum_finished", 0) >= 2 + res["stats_after_rx"].get(
        "rx_csum_finished", 0), res["stats"]


def test_cli_host_with_offload_tap(netns_factory, tmp_path) -> None:
    """`vnet host --attach 'tap://...&vnet_hdr=1'`: a kernel client's data echoed back
    byte for byte, and `vnet ctl SOCK stats` shows the GSO frames taken whole."""
    need_tun()
    ns = netns_factory("vgcli")
    name = f"vo{uuid.uuid4().hex[:8]}"
    ctl = str(tmp_path / "h.ctl")
    with kernel_peer.vnet_host(ctl, "--attach", f"tap://{name}?netns={ns.name}&vnet_hdr=1",
                               "--addr", f"{V4_V}/24", "--no-dhcp") as vctl:
        ns.run("ip", "addr", "add", f"{V4_K}/24", "dev", name)
        assert vctl("tcp", "listen", "5001", "echo")[0] == 0
        r = ns.run(sys.executable, "-c", kernel_peer.TCP_CLIENT, V4_V, "5001", "3000000")
        k2v = json.loads(r.stdout.splitlines()[-1])
        rc, stats = vctl("stats")
        assert rc == 0, stats
    assert k2v["equal"] and k2v["received"] == 3_000_000, k2v
    assert stats["rx_gso_whole"] > 0 and stats["tx_gso"] > 0, stats
