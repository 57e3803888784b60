"""The `vnet host` control commands for TCP/UDP (vnet.cli.host_transport), between two
in-process hosts in real time, through the same Console the control socket serves."""

from __future__ import annotations

import asyncio

import pytest

from tests.stack.test_tcp_host import _two_hosts
from vnet.cli.host import make_console
from vnet.cli.host_transport import PatternCheck, pattern
from vnet.control.server import CommandError
from vnet.runtime.realtime import run as run_realtime


def test_pattern_chunks_chain() -> None:
    chk = PatternCheck()
    for n in (1, 250, 251, 65511, 7):
        chk.feed(pattern(n, chk.n))
    assert chk.ok and chk.n == 1 + 250 + 251 + 65511 + 7
    chk.feed(b"\x00\x00")
    assert not chk.ok


def test_tcp_and_udp_commands() -> None:
    async def main(rt):
        a, b = _two_hosts(rt)
        ca = make_console(a, rt, {"stop": asyncio.Event()})
        cb = make_console(b, rt, {"stop": asyncio.Event()})
        await asyncio.sleep(1.2)
        out = {}
        out["listen"] = await cb.execute("tcp", ["listen", "5001", "echo"])
        await cb.execute("tcp", ["listen", "5002", "discard"])
        await cb.execute("tcp", ["listen", "5003", "send", "300000"])
        out["echo"] = await ca.execute("tcp", ["connect", "10.1.0.2", "5001", "500000"])
        out["discard"] = await ca.execute("tcp", ["connect", "fd01::2", "5002", "2000000"])
        out["recv"] = await ca.execute("tcp", ["connect", "10.1.0.2", "5003", "0"])
        out["refused"] = await ca.execute("tcp", ["connect", "10.1.0.2", "5999", "10"])
        await asyncio.sleep(0.2)
        out["stat"] = await cb.execute("tcp", ["stat"])
        out["udp_listen"] = await cb.execute("udp", ["listen", "53", "echo"])
        out["udp"] = await ca.execute("udp", ["send", "fd01::2", "53", "hi", "there", "--wait"])
        out["udp_stat"] = await cb.execute("udp", ["stat"])
        with pytest.raises(CommandError):
            await cb.execute("tcp", ["listen", "5001"])  # in use: one clear line
        with pytest.raises(CommandError):
            await ca.execute("tcp", ["bogus"])
        return out

    out = run_realtime(main, seed=3)
    assert out["listen"] == "listening on TCP port 5001 (echo)"
    e = out["echo"]
    assert e["ok"] and e["received"] == 500_000 and e["received_pattern_ok"] and e["goodput_mbit"] > 0
    d = out["discard"]
    assert d["ok"] and d["received"] == 0 and d["sent"] == 2_000_000
    r = out["recv"]
    assert r["ok"] and r["received"] == 300_000 and r["received_pattern_ok"]
    assert out["refused"]["ok"] is False
    served = {s["mode"]: s for s in out["stat"]["served"]}
    assert served["discard"]["received"] == 2_000_000 and served["discard"]["pattern_ok"]
    assert served["echo"]["received"] == 500_000 and served["echo"]["pattern_ok"]
    assert out["udp"] == {"ok": True, "reply": {"from": "fd01::2:53", "text": "hi there"}}
    assert out["udp_stat"]["received"][0]["text"] == "hi there"
