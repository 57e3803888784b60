"""`vnet vrr` as processes (no root): two daemons joined by a UDP cable on loopback, the
control socket (status, vset, pset, routes, dht put/get, stats), and one-line errors."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from vnet.control.client import call


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vnet(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vnet", *args], capture_output=True, text=True,
                          timeout=60, **kw)


def test_two_daemons_on_a_udp_cable(tmp_path):
    pa, pb = _free_udp_port(), _free_udp_port()
    sa, sb = str(tmp_path / "a.sock"), str(tmp_path / "b.sock")
    procs = [
        subprocess.Popen([sys.executable, "-m", "vnet", "vrr", "--attach",
                          f"udp://127.0.0.1:{pa}:127.0.0.1:{pb}", "--ctl", sa, "--hello", "0.2",
                          "--addr", "02:00:00:00:00:0a"], stderr=subprocess.PIPE),
        subprocess.Popen([sys.executable, "-m", "vnet", "vrr", "--attach",
                          f"udp://127.0.0.1:{pb}:127.0.0.1:{pa}", "--ctl", sb, "--hello", "0.2",
                          "--addr", "02:00:00:00:00:0b"], stderr=subprocess.PIPE),
    ]
    try:
        deadline = time.monotonic() + 20
        st = None
        while time.monotonic() < deadline:
            try:
                st = call(sa, "status", timeout=2)
                if st["active"] and st["vset"]:
                    break
            except (OSError, Exception):  # noqa: BLE001 - not up yet
                pass
            time.sleep(0.2)
        assert st is not None and st["address"] == "02:00:00:00:00:0a"
        assert st["active"] is True and st["vset"] == ["02:00:00:00:00:0b"]
        assert st["pset"][0].startswith("02:00:00:00:00:0b(linked")
        assert call(sb, "vset", timeout=2) == ["02:00:00:00:00:0a"]
        assert call(sa, "pset", timeout=2)[0]["quality"] >= 0.75
        assert len(call(sa, "routes", timeout=2)) >= 1
        call(sa, "dht", "put", "printer", "10.1.2.3", timeout=2)
        time.sleep(0.5)
        got = call(sb, "dht", "get", "printer", timeout=5)
        assert got["found"] is True and got["value"] == "10.1.2.3"
        assert call(sb, "dht", "get", "nothing-here", timeout=5)["found"] is False
        stats = call(sa, "stats", timeout=2)
        assert stats["hello_tx"] > 0 and stats["port0"]["tx_frames"] >= 0
        r = _vnet("ctl", sa, "status")
        assert r.returncode == 0 and "active: True" in r.stdout
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
    assert not os.path.exists(sa)


def test_bad_flags_give_one_line(tmp_path):
    for args, text in [
        (["vrr"], "give --iface IF"),
        (["vrr", "--attach", "udp://1:127.0.0.1:2"], "give --ctl"),
        (["vrr", "--attach", "nope://x", "--ctl", str(tmp_path / "s")], "unknown URL scheme"),
        (["vrr", "--attach", "udp://127.0.0.1:0:127.0.0.1:9", "--ctl", str(tmp_path / "s"),
          "--addr", "zz"], "not a virtual address"),
        (["vrr", "--attach", "udp://127.0.0.1:0:127.0.0.1:9", "--ctl", str(tmp_path / "s"),
          "--key", str(tmp_path / "missing")], "cannot read key file"),
        (["vrr", "sim", "-n", "1"], "-n must be at least 2"),
    ]:
        r = _vnet(*args)
        assert r.returncode != 0
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and text in lines[0], r.stderr


def test_sim_prints_metrics_table():
    r = _vnet("vrr", "sim", "--scenario", "static", "-n", "30", "--topology", "grid")
    assert r.returncode == 0, r.stderr
    table = dict(line.split(None, 1) for line in r.stdout.splitlines())
    assert table["delivery"].strip() == "1.0"
    assert float(table["stretch"]) >= 1.0
    assert table["converge_s"].strip() != "-"


def test_plot_without_matplotlib_fails_before_the_run(tmp_path):
    # hide matplotlib: the one-line error must come before a possibly hour-long simulation
    code = ("import runpy, sys; sys.modules['matplotlib'] = None; "
            f"sys.argv = ['vnet', 'vrr', 'sim', '-n', '2000', '--plot', {str(tmp_path)!r}]; "
            "runpy.run_module('vnet', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'vnet[plot]'" in lines[0], r.stderr
    assert r.stdout == ""
