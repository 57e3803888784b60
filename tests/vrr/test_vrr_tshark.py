"""tshark reads VRR captures with tools/vrr.lua: every frame decodes as VRR with the fields
our parser sees, carried IPv4 is dissected inside, nothing is malformed."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from tests.conftest import need_tool
from vnet.vrr import sim
from vnet.wire import vrr as W
from vnet.wire.pcap import PcapWriter

LUA = str(Path(__file__).resolve().parents[2] / "tools" / "vrr.lua")


def _capture(tmp_path) -> tuple[str, list[bytes]]:
    net = sim.build(sim.line(5), seed=3)
    frames: list[bytes] = []
    for p in net.medium.ports:
        orig = p.transmit
        p.attach(lambda f, orig=orig: (frames.append(f), orig(f)))
    assert net.run_until_converged(60) is not None
    ip = bytes.fromhex("450000200001000040110000") + bytes([10, 0, 0, 1, 10, 0, 0, 5])
    ip += bytes.fromhex("00090009000c0000") + b"abcd"
    net.nodes[0].send_data(net.addrs[4], 0x0800, ip)
    net.rt.run(until=net.rt.now() + 1)
    buf = io.BytesIO()
    w = PcapWriter(buf)
    for k, f in enumerate(frames):
        w.write(k * 0.001, f)
    path = tmp_path / "vrr.pcap"
    path.write_bytes(buf.getvalue())
    return str(path), frames


def test_tshark_dissects_vrr(tmp_path):
    need_tool("tshark")
    path, frames = _capture(tmp_path)
    r = subprocess.run(["tshark", "-X", f"lua_script:{LUA}", "-r", path, "-T", "fields",
                        "-e", "vrr.type", "-e", "vrr.hop_src", "-e", "vrr.length", "-e", "ip.dst",
                        "-e", "_ws.malformed", "-e", "vrr.hop_limit"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert len(rows) == len(frames)
    for row, f in zip(rows, frames, strict=True):
        typ, flags, hl, length, nh, seq, dst, origin, hop = W.parse(f)
        assert int(row[0]) == typ
        assert row[1] == W.addr_to_str(hop)
        assert int(row[2]) == length
        assert row[4] == ""  # not malformed
        assert int(row[5]) == hl  # 16-bit field at offset 34 (wire version 2)
    assert any(row[3] == "10.0.0.5" for row in rows)  # IPv4 dissected inside VRR data
    types = {int(row[0]) for row in rows}
    assert {W.HELLO, W.SETUP_REQ, W.SETUP, W.DATA} <= types
    # without the dissector, Wireshark's own table calls 0x886F "MS NLB heartbeat"
    r = subprocess.run(["tshark", "-r", path, "-c", "1"], capture_output=True, text=True,
                       timeout=60)
    assert "VRR" not in r.stdout
