"""A Linux bridge (kernel 802.1D STP) in a loop with two vnet switches.

    netns:  [ Linux bridge BR ]            test process, asyncio real time:
             tapA      tapB
               |         |
        vnet S1 ------- vnet S2      (S1-S2 an in-memory Link; hosts E1 on S1, E2 on S2)

The TAPs are created by vnet.phy.tap inside the namespace and enslaved to BR.
Timers are shortened (hello 1 s, max age 6 s, forward delay 4 s; iproute2 takes
them in centiseconds). Checks: the loop converges with exactly one blocking port
among the six loop ports, all three bridges agree on the root (Linux's view from
sysfs), broadcasts after convergence are delivered once and the frame counts stay
bounded, and the root is the bridge with the lowest priority, vnet or Linux.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from tests.conftest import need_tool, need_tun
from vnet.link.link import Link
from vnet.link.port import Port, connect
from vnet.link.stp import Stp, format_info
from vnet.link.switch import STATE_NAMES, Switch
from vnet.phy.tap import attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.wire import ethernet as eth
from vnet.wire import stp as wire

pytestmark = pytest.mark.privileged

TIMERS = dict(hello_time=1.0, max_age=6.0, forward_delay=4.0)
BR_MAC = "02:00:00:00:0b:01"
S1_MAC = bytes.fromhex("020000000b11")
S2_MAC = bytes.fromhex("020000000b12")
CONVERGE_LIMIT = 30.0  # seconds; 2 x forward delay plus the initial root dispute is ~10 s
N_BCAST = 50


class Host:
    def __init__(self, mac: bytes) -> None:
        self.mac = mac
        self.port = Port("host")
        self.tags: list[bytes] = []
        self.port.receive = lambda f: self.tags.append(bytes(f[14:18])) if f[12:14] == b"\x88\xb5" \
            else None

    def count(self, tag: bytes) -> int:
        return self.tags.count(tag)


async def sh(ns: str, *cmd: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, *cmd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {err.decode().strip()}")
    return out.decode()


async def linux_view(ns: str, br: str, taps: list[str]) -> dict:
    sysfs = f"/sys/class/net/{br}/bridge"
    root_id, bridge_id, root_port, rx = (await sh(
        ns, "cat", f"{sysfs}/root_id", f"{sysfs}/bridge_id", f"{sysfs}/root_port",
        f"/sys/class/net/{br}/statistics/rx_packets")).split()
    links = json.loads(await sh(ns, "bridge", "-j", "link", "show"))
    states = {x["ifname"]: x["state"] for x in links if x["ifname"] in taps}
    return {"root_id": root_id, "bridge_id": bridge_id, "root_port": int(root_port, 0),
            "states": states, "rx_packets": int(rx),
            "costs": {x["ifname"]: x.get("cost") for x in links if x["ifname"] in taps}}


def scenario(ns: str, linux_priority: int, s1_priority: int, s2_priority: int,
             cut: bool = False) -> dict:
    br = f"br{uuid.uuid4().hex[:8]}"
    tap_a, tap_b = f"sa{uuid.uuid4().hex[:8]}", f"sb{uuid.uuid4().hex[:8]}"

    async def main(rt: AsyncioRuntime) -> dict:
        for knob in ("all", "default"):  # no IPv6 chatter: the bridge's rx counter stays exact
            await sh(ns, "sysctl", "-qw", f"net.ipv6.conf.{knob}.disable_ipv6=1")
        await sh(ns, "ip", "link", "add", br, "type", "bridge", "stp_state", "1",
                 "forward_delay", "400", "hello_time", "100", "max_age", "600",
                 "priority", str(linux_priority))
        await sh(ns, "ip", "link", "set", br, "address", BR_MAC)
        s1 = Switch(rt, numports=8, name="s1", mac=S1_MAC)
        s2 = Switch(rt, numports=8, name="s2", mac=S2_MAC)
        e1, e2 = Host(bytes.fromhex("02000000a001")), Host(bytes.fromhex("02000000a002"))
        connect(s1.add_port(), e1.port)
        connect(s2.add_port(), e2.port)
        Stp(s1, priority=s1_priority, **TIMERS)
        Stp(s2, priority=s2_priority, **TIMERS)
        atts = []
        try:
            atts.append(await attach(f"tap://{tap_a}?netns={ns}", s1.add_port(), rt))
            atts.append(await attach(f"tap://{tap_b}?netns={ns}", s2.add_port(), rt))
            cable = Link(rt, s1.add_port(), s2.add_port(), delay=0.0005)
            for t in (tap_a, tap_b):
                await sh(ns, "ip", "link", "set", t, "master", br)
            await sh(ns, "ip", "link", "set", br, "up")
            loop_ports = [(s1, 2), (s1, 3), (s2, 2), (s2, 3)]

            def vnet_states() -> list[str]:
                return [STATE_NAMES[sw.ports[i].state] for sw, i in loop_ports]

            async def converge(want_blocking: int) -> float:
                t0 = rt.now()
                while True:
                    lv = await linux_view(ns, br, [tap_a, tap_b])
                    roots = {lv["root_id"], s1.stp.info()["root_id"], s2.stp.info()["root_id"]}
                    states = vnet_states() + list(lv["states"].values())
                    if len(roots) == 1 and len(states) == len(loop_ports) + 2 and \
                            all(s in ("blocking", "forwarding") for s in states) and \
                            states.count("blocking") <= want_blocking:
                        return rt.now() - t0
                    if rt.now() - t0 > CONVERGE_LIMIT:
                        raise AssertionError(f"no convergence in {CONVERGE_LIMIT} s: roots {roots}, "
                                             f"states {states}\n{format_info(s1.stp.info())}\n"
                                             f"{format_info(s2.stp.info())}\n{lv}")
                    await asyncio.sleep(0.25)

            converged_after = await converge(6)
            await asyncio.sleep(2.0)  # stays converged: no flapping
            lv = await linux_view(ns, br, [tap_a, tap_b])
            i1, i2 = s1.stp.info(), s2.stp.info()

            # Broadcast storm check: N broadcasts from E1 after convergence.
            rx_before = sum(sw.ports[i].port.rx_frames for sw, i in loop_ports)
            br_rx_before = lv["rx_packets"]
            for k in range(N_BCAST):
                e1.port.send(eth.build(eth.BROADCAST, e1.mac, 0x88B5, b"BCST" + bytes([k]) * 42))
                await asyncio.sleep(0.005)
            await asyncio.sleep(1.5)
            rx_after = sum(sw.ports[i].port.rx_frames for sw, i in loop_ports)
            lv2 = await linux_view(ns, br, [tap_a, tap_b])
            states_before = vnet_states()
            after_cut: dict = {}
            if cut:
                # Cut the vnet cable: S2 must reach the root through the Linux bridge,
                # the blocking port must open, and S2's TCN must travel through Linux.
                cable.set_up(False)
                loop_ports[:] = [(s1, 2), (s2, 2)]  # the dead cable's ends no longer count
                after_cut["reconverged_after"] = await converge(0)
                await asyncio.sleep(0.5)
                for _k in range(N_BCAST):
                    e1.port.send(eth.build(eth.BROADCAST, e1.mac, 0x88B5, b"CUT!" + bytes(42)))
                    await asyncio.sleep(0.005)
                await asyncio.sleep(1.0)
                after_cut.update(e2=e2.count(b"CUT!"), e1=e1.count(b"CUT!"),
                                 linux=await linux_view(ns, br, [tap_a, tap_b]),
                                 s1=s1.stp.info(), s2=s2.stp.info(), vnet_states=vnet_states())
            return {
                "after_cut": after_cut,
                "converged_after": converged_after, "linux": lv, "s1": i1, "s2": i2,
                "vnet_states": states_before, "linux_after": lv2,
                "e2_bcast": e2.count(b"BCST"), "e1_bcast": e1.count(b"BCST"),
                "loop_rx": rx_after - rx_before, "br_rx": lv2["rx_packets"] - br_rx_before,
                "cable_delivered": cable.ab.delivered + cable.ba.delivered,
            }
        finally:
            for a in atts:
                a.close()
            s1.close()
            s2.close()

    return run(main)


def _common_checks(r: dict) -> None:
    lv = r["linux"]
    states = r["vnet_states"] + list(lv["states"].values())
    assert states.count("blocking") == 1, (states, r)
    assert states.count("forwarding") == 5, (states, r)
    assert r["s1"]["root_id"] == r["s2"]["root_id"] == lv["root_id"], r
    # No broadcast storm: each broadcast reached E2 once, never came back to E1, and the
    # loop carried at most one copy per segment (3 segments) plus a few BPDUs.
    assert r["e2_bcast"] == N_BCAST and r["e1_bcast"] == 0, r
    assert r["br_rx"] == N_BCAST, r  # the Linux bridge itself saw each one exactly once
    assert r["loop_rx"] <= 3 * N_BCAST + 30, r
    assert r["linux_after"]["states"] == lv["states"], r  # still no flapping


def test_vnet_root_for_linux_then_cut_cable_reroutes_through_linux(netns_factory):
    need_tun()
    need_tool("ip", "bridge")
    ns = netns_factory("vstp")
    r = scenario(ns.name, linux_priority=32768, s1_priority=4096, s2_priority=32768, cut=True)
    _common_checks(r)
    s1_id = wire.bridge_id_str(wire.bridge_id(4096, S1_MAC))
    assert r["s1"]["is_root"] and r["linux"]["root_id"] == s1_id, r
    assert r["linux"]["root_port"] != 0  # Linux is not root: it has a root port
    assert r["linux"]["bridge_id"] == "8000." + BR_MAC.replace(":", "")
    c = r["after_cut"]
    # Every remaining loop port forwards: S1 - Linux - S2 is now the only path.
    assert c["vnet_states"] == ["forwarding", "forwarding"], c
    assert set(c["linux"]["states"].values()) == {"forwarding"}, c
    assert c["s2"]["root_port"] == 2 and c["s2"]["root_path_cost"] > r["s2"]["root_path_cost"], c
    assert c["e2"] == N_BCAST and c["e1"] == 0, c  # E1 -> Linux -> E2, each once
    # S2 signalled the change with a TCN to Linux; Linux relayed a TCN to the root S1,
    # which announced a new topology change (counts taken before and after the cut).
    def tap_counter(info: dict, key: str) -> int:
        return next(p[key] for p in info["ports"] if p["port"] == 2)

    assert tap_counter(c["s2"], "tx_tcn") > tap_counter(r["s2"], "tx_tcn"), c
    assert tap_counter(c["s1"], "rx_tcn") > tap_counter(r["s1"], "rx_tcn"), c
    assert c["s1"]["topology_changes"] > r["s1"]["topology_changes"], c


def test_linux_bridge_with_lower_priority_is_root_for_vnet(netns_factory):
    need_tun()
    need_tool("ip", "bridge")
    ns = netns_factory("vstp")
    r = scenario(ns.name, linux_priority=4096, s1_priority=32768, s2_priority=32768)
    _common_checks(r)
    linux_id = "1000." + BR_MAC.replace(":", "")
    assert r["linux"]["bridge_id"] == linux_id and r["linux"]["root_port"] == 0, r
    assert r["s1"]["root_id"] == r["s2"]["root_id"] == linux_id, r
    assert not r["s1"]["is_root"] and not r["s2"]["is_root"]
    # Both vnet switches reach the root over their TAP (port 2) directly.
    assert r["s1"]["root_port"] == 2 and r["s2"]["root_port"] == 2, r
    # The root's timers were adopted from its BPDUs.
    assert r["s1"]["forward_delay"] == 4.0 and r["s1"]["max_age"] == 6.0
