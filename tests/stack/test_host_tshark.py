"""tshark (Wireshark's dissectors, an independent implementation) reads what the host sends:
no malformed frames, no checksum errors, and the expected messages are there."""

from __future__ import annotations

import subprocess

import pytest

from tests.conftest import need_tool
from tests.stack.topo import Net
from vnet.link.capture import Capture


def tshark(path: str, *fields: str, flt: str | None = None) -> list[list[str]]:
    argv = ["tshark", "-n", "-r", path, "-o", "ip.check_checksum:TRUE", "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    if flt:
        argv += ["-Y", flt]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


@pytest.mark.timeout(90)
def test_tshark_dissects_host_traffic_cleanly(tmp_path):
    need_tool("tshark")
    net = Net(mtu_b=1280)
    path = str(tmp_path / "host.pcapng")
    cap = Capture.to_file(path, net.rt)
    cap.watch(net.a.ifaces[0].port, "a")
    cap.watch(net.b.ifaces[0].port, "b")
    net.rt.run(until=10)
    b6 = net.slaac(net.b)
    net.ping(net.a, "10.0.2.2", size=3000)
    net.ping(net.a, b6, size=3000, seq=2)  # PTB first (1280 link), then fragments
    net.ping(net.a, b6, size=3000, seq=3)
    cap.close()
    assert tshark(path, "frame.number", flt="_ws.malformed") == []
    assert tshark(path, "frame.number", flt="_ws.expert.severity >= error") == []
    # checksums verified by tshark (status 1 = good): IPv4 header, ICMP, ICMPv6
    assert tshark(path, "frame.number", flt="icmpv6.checksum.status != 1") == []
    assert tshark(path, "frame.number", flt="icmp.checksum.status != 1") == []
    assert tshark(path, "frame.number", flt="ip.checksum.status != 1") == []
    assert tshark(path, "frame.number", flt="icmpv6.checksum.status == 1")
    types6 = {int(r[0]) for r in tshark(path, "icmpv6.type", flt="icmpv6") for _ in r[:1]
              if r[0].isdigit()}
    assert {2, 128, 129, 133, 134, 135, 136, 143} <= types6, types6
    assert tshark(path, "frame.number", flt="ipv6.fragment")  # reassembled by tshark too
    assert tshark(path, "frame.number", flt="ip.flags.mf == 1")
    assert tshark(path, "frame.number", flt="arp.opcode == 2")
    assert tshark(path, "frame.number", flt="icmpv6.mldr.nb_mcast_records >= 1")
