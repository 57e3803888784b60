"""A vnet switch with spanning tree plugged twice into Debian's `vde_switch -F` (a loop).

vde_switch's "fast spanning tree" sends RST-format BPDUs (version 2, type 2) with
its own timer values (hello 4 s, max age 40 s, forward delay 0) and ignores
802.1D version-0 BPDUs. With default priorities its bridge id (00:ff:… MAC) is
lower than a vnet switch's (02:… MAC), so it is root; our engine reads its RST
BPDUs as configuration BPDUs, blocks one of the two ports, clamps the announced
forward delay of 0 to 2 s, and the loop carries each broadcast once.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

from tests.conftest import need_tool
from vnet.link.port import Port, connect
from vnet.link.stp import Stp, format_info
from vnet.link.switch import STATE_NAMES, Switch
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.wire import ethernet as eth

N_BCAST = 30


def start_vde_switch(d: Path) -> subprocess.Popen:
    # vde_switch exits on stdin EOF, so it gets a pipe we keep open until the end.
    p = subprocess.Popen(["vde_switch", "-F", "-s", str(d)], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while not (d / "ctl").exists():
        if p.poll() is not None or time.monotonic() > deadline:
            p.kill()
            raise AssertionError(f"vde_switch did not start: {p.stderr.read().decode()}")
        time.sleep(0.05)
    return p


def test_vnet_stp_loop_through_vde_switch_fstp(tmp_path):
    need_tool("vde_switch")
    d = tmp_path / "vde"
    proc = start_vde_switch(d)

    async def main(rt: AsyncioRuntime) -> dict:
        sw = Switch(rt, numports=8, name="s1", mac=bytes.fromhex("020000000c01"))
        host = Port("host")
        connect(sw.add_port(), host)
        Stp(sw, hello_time=1.0, max_age=6.0, forward_delay=4.0)
        far = Port("far")
        got: list[bytes] = []
        far.receive = lambda f: got.append(f) if f[12:14] == b"\x88\xb5" else None
        atts = []
        try:
            atts.append(await attach(f"vde://{d}", sw.add_port(), rt))
            atts.append(await attach(f"vde://{d}", sw.add_port(), rt))
            atts.append(await attach(f"vde://{d}", far, rt))
            t0 = rt.now()
            while True:
                states = [STATE_NAMES[sw.ports[i].state] for i in (2, 3)]
                if sorted(states) == ["blocking", "forwarding"] and \
                        STATE_NAMES[sw.ports[1].state] == "forwarding":
                    break
                if rt.now() - t0 > 25:
                    raise AssertionError(f"no convergence: {states}\n{format_info(sw.stp.info())}")
                await asyncio.sleep(0.2)
            converged = rt.now() - t0
            await asyncio.sleep(1.0)
            info = sw.stp.info()
            rx0 = sw.ports[2].port.rx_frames + sw.ports[3].port.rx_frames
            for k in range(N_BCAST):
                host.send(eth.build(eth.BROADCAST, bytes.fromhex("02000000d001"), 0x88B5,
                                    b"BCST" + bytes([k]) * 42))
                await asyncio.sleep(0.01)
            await asyncio.sleep(1.0)
            rx1 = sw.ports[2].port.rx_frames + sw.ports[3].port.rx_frames
            return {"converged": converged, "info": info, "far": len(got), "loop_rx": rx1 - rx0,
                    "states": [STATE_NAMES[sw.ports[i].state] for i in (1, 2, 3)]}
        finally:
            for a in atts:
                a.close()
            sw.close()

    try:
        r = run(main)
    finally:
        proc.kill()
        proc.wait(5)
    info = r["info"]
    assert not info["is_root"] and info["root_id"].startswith("8000.00ff"), r  # vde_switch
    assert info["root_port"] in (2, 3) and info["malformed"] == 0, r
    assert info["forward_delay"] == 2.0 and info["hello_time"] == 4.0, r  # clamped / adopted
    rst = [p for p in info["ports"] if p["port"] in (2, 3)]
    assert all(p["rx_bpdu"] > 0 for p in rst), r  # its RST BPDUs were read on both ports
    assert sorted(r["states"][1:]) == ["blocking", "forwarding"], r
    assert r["far"] == N_BCAST, r  # each broadcast crossed once
    # vde_switch floods each broadcast back towards us on the other (blocked) port once;
    # nothing circulates.
    assert r["loop_rx"] <= N_BCAST + 10, r

