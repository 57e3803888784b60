"""tshark reads vnet captures: right frame count, zero malformed frames, interface names.

Traffic is real protocol traffic built with scapy (ARP, ICMP echo over IPv4,
UDP over IPv6, 802.1Q-tagged frames, jumbo frames), crossing two vnet switches
joined by a WireFilter, in simulated time and in real time. A control case
writes one deliberately broken frame to show the malformed check can fail.
"""

from __future__ import annotations

import asyncio
import subprocess
import time

import pytest

from tests.conftest import need_tool
from vnet.link.capture import Capture
from vnet.link.port import Port, connect
from vnet.link.switch import Switch
from vnet.link.wirefilter import WireFilter
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.runtime.sim import SimRuntime

scapy = pytest.importorskip("scapy.all")
MAC1, MAC2 = "02:00:00:00:00:01", "02:00:00:00:00:02"


def traffic() -> list[tuple[str, bytes]]:
    """(sender, frame): sender 'h1' or 'h2'."""
    from scapy.all import ARP, ICMP, IP, UDP, Dot1Q, Ether, IPv6, Raw

    out = [("h1", bytes(Ether(src=MAC1, dst="ff:ff:ff:ff:ff:ff") /
                        ARP(op=1, hwsrc=MAC1, psrc="10.0.0.1", pdst="10.0.0.2"))),
           ("h2", bytes(Ether(src=MAC2, dst=MAC1) /
                        ARP(op=2, hwsrc=MAC2, psrc="10.0.0.2", hwdst=MAC1, pdst="10.0.0.1")))]
    for i in range(20):
        out.append(("h1", bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") /
                                ICMP(type=8, id=7, seq=i) / Raw(bytes(56)))))
        out.append(("h2", bytes(Ether(src=MAC2, dst=MAC1) / IP(src="10.0.0.2", dst="10.0.0.1") /
                                ICMP(type=0, id=7, seq=i) / Raw(bytes(56)))))
        out.append(("h1", bytes(Ether(src=MAC1, dst=MAC2) / IPv6(src="fd00::1", dst="fd00::2") /
                                UDP(sport=1000 + i, dport=9) / Raw(b"x" * (i * 50)))))
    out.append(("h1", bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") /
                            UDP(sport=9, dport=9) / Raw(bytes(8000)))))  # jumbo
    out.append(("h2", bytes(Ether(src=MAC2, dst="ff:ff:ff:ff:ff:ff") / Dot1Q(vlan=0) /
                            IP(src="10.0.0.2", dst="10.0.0.255") / UDP(sport=5, dport=5))))
    return out


def build(rt, path, fmt=None):
    s1 = Switch(rt, numports=4, mtu=9000, name="s1")
    s2 = Switch(rt, numports=4, mtu=9000, name="s2")
    wf = WireFilter(rt, s1.add_port(), s2.add_port(), delay="5+2", dup=5)
    h1, h2 = Port("h1"), Port("h2")
    connect(s1.add_port(), h1)
    connect(s2.add_port(), h2)
    cap = Capture.to_file(path, rt, fmt=fmt,
                          epoch_offset=0.0 if isinstance(rt, SimRuntime) else time.time() - rt.now())
    for sw in (s1, s2):
        for i, rec in sorted(sw.ports.items()):
            cap.watch(rec.port, f"{sw.name}.port{i}")
    return s1, s2, wf, {"h1": h1, "h2": h2}, cap


def tshark_fields(path, *fields: str, display_filter: str | None = None) -> list[list[str]]:
    argv = ["tshark", "-n", "-r", str(path), "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    if display_filter:
        argv += ["-Y", display_filter]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines() if line.strip()]


def check(path, cap: Capture, names: set[str] | None) -> list[list[str]]:
    rows = tshark_fields(path, "frame.number", "frame.interface_name", "frame.protocols",
                         "frame.time_epoch")
    assert len(rows) == cap.frames > 0
    assert tshark_fields(path, "frame.number",
                         display_filter="_ws.malformed || _ws.expert.severity >= error") == []
    protos = {r[2] for r in rows}
    assert any(p.endswith("arp") for p in protos)
    assert any("icmp" in p for p in protos) and any("ipv6:udp" in p for p in protos)
    assert any("vlan" in p for p in protos)
    if names is not None:
        assert {r[1] for r in rows} == names
    return rows


@pytest.mark.parametrize("ext", ["pcapng", "pcap"])
def test_tshark_reads_sim_network_capture(tmp_path, ext):
    need_tool("tshark")
    rt = SimRuntime(seed=4)
    path = tmp_path / f"sim.{ext}"
    s1, s2, wf, hosts, cap = build(rt, path)
    for k, (who, f) in enumerate(traffic()):
        rt.call_at(1.0 + k * 0.01, hosts[who].send, f)
    rt.run(until=10)
    cap.close()
    names = {"s1.port1", "s1.port2", "s2.port1", "s2.port2"} if ext == "pcapng" else None
    rows = check(path, cap, names)
    # sim time is the timestamp: the first frame was sent at t = 1.0 simulated seconds
    assert float(rows[0][3]) == pytest.approx(1.0, abs=1e-6)
    assert wf.lr.duplicated + wf.rl.duplicated > 0  # the capture saw the wire's duplicates too


def test_tshark_reads_real_time_capture(tmp_path):
    need_tool("tshark")
    path = tmp_path / "rt.pcapng"

    async def main(rt: AsyncioRuntime):
        s1, s2, wf, hosts, cap = build(rt, path)
        for k, (who, f) in enumerate(traffic()):
            rt.call_later(k * 0.002, hosts[who].send, f)
        await asyncio.sleep(0.5)
        cap.close()
        s1.close()
        s2.close()
        return cap

    t0 = time.time()
    cap = run(main)
    rows = check(path, cap, {"s1.port1", "s1.port2", "s2.port1", "s2.port2"})
    # wall-clock timestamps thanks to epoch_offset
    assert t0 - 5 < float(rows[0][3]) < time.time() + 5


def test_malformed_frame_is_detected(tmp_path):
    """Control: the malformed check is not vacuous."""
    need_tool("tshark")
    from scapy.all import IP, UDP, Ether

    rt = SimRuntime()
    p = Port("p")
    path = tmp_path / "bad.pcapng"
    cap = Capture.to_file(path, rt)
    cap.watch(p, "p")
    good = bytes(Ether(src=MAC1, dst=MAC2) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2))
    p.send(good)
    p.send(good[:14 + 10])  # an IPv4 header cut in half
    cap.close()
    assert len(tshark_fields(path, "frame.number")) == 2
    bad = tshark_fields(path, "frame.number", display_filter="_ws.malformed")
    assert [r[0] for r in bad] == ["2"]


def test_tshark_reads_vnet_switch_daemon_capture(tmp_path):
    """`vnet switch --pcap`: frames from two Debian vde_plug clients, read back by tshark."""
    import os
    import sys
    from pathlib import Path

    from vnet.wire.stream import encode

    need_tool("tshark", "vde_plug")
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    sw, path = tmp_path / "sw", tmp_path / "switch.pcapng"
    switch = subprocess.Popen([sys.executable, "-m", "vnet", "switch", "-s", str(sw), "--pcap",
                               str(path), "--mtu", "9000"],  # the traffic has a jumbo frame stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env)
    plugs = []
    try:
        end = time.monotonic() + 20
        while not (sw / "ctl").exists():
            assert switch.poll() is None and time.monotonic() < end, "switch did not start"
            time.sleep(0.05)
        for _ in range(2):
            plugs.append(subprocess.Popen(["vde_plug", str(sw)], stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.5)
        frames = traffic()
        for who, f in frames:
            p = plugs[0] if who == "h1" else plugs[1]
            p.stdin.write(encode(f))
            p.stdin.flush()
            time.sleep(0.005)
        time.sleep(0.5)
    finally:
        for p in plugs:
            p.kill()
            p.wait(5)
        switch.terminate()
        try:
            switch.wait(10)
        except subprocess.TimeoutExpired:
            switch.kill()
            switch.wait(5)
    rows = tshark_fields(path, "frame.number", "frame.interface_name", "frame.protocols")
    # every frame enters the switch once (inbound on its port) and leaves on the other
    inbound = tshark_fields(path, "frame.number", display_filter="frame.packet_flags_direction == 1")
    assert len(inbound) == len(frames)
    assert len(rows) >= 2 * len(frames) - 2  # the two first-sent may flood before learning
    assert tshark_fields(path, "frame.number", display_filter="_ws.malformed") == []
    assert {r[1] for r in rows} == {"port1", "port2"}
