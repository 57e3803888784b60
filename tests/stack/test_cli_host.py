"""`vnet host` processes on `vnet switch`es (no root): static addresses, a router with
RAs, a host that configures itself, and `vnet ctl` exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import pytest

pytestmark = pytest.mark.timeout(60)


def _wait_path(path: str, procs: list[subprocess.Popen], timeout: float = 15.0) -> None:
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"{p.args} exited: {p.stdout.read() if p.stdout else ''}")
        if time.monotonic() > end:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


def ctl(sock: str, *words: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vnet", "ctl", sock, *words],
                          capture_output=True, text=True, timeout=30)


def test_hosts_router_and_autoconf_on_vnet_switches():
    tmp = tempfile.mkdtemp(prefix="vnet-hostcli-")
    procs: list[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-m", "vnet", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        procs.append(p)
        return p

    sw1, sw2 = os.path.join(tmp, "sw1"), os.path.join(tmp, "sw2")
    s = {n: os.path.join(tmp, f"{n}.ctl") for n in ("h1", "h2", "r", "h3")}
    try:
        start("switch", "-s", sw1)
        start("switch", "-s", sw2)
        _wait_path(os.path.join(sw1, "ctl"), procs)
        _wait_path(os.path.join(sw2, "ctl"), procs)
        start("host", "--attach", f"vde://{sw1}", "--addr", "10.0.1.2/24", "--addr",
              "2001:db8:1::2/64", "--route", "0.0.0.0/0", "via", "10.0.1.1", "--ctl", s["h1"])
        start("host", "--attach", f"vde://{sw1}", "--addr", "10.0.1.3/24", "--ctl", s["h2"],
              "--no-dhcp")
        start("host", "--router", "--attach", f"vde://{sw1}", "--attach", f"vde://{sw2}",
              "--addr", "eth0=10.0.1.1/24", "--addr", "eth0=2001:db8:1::1/64",
              "--addr", "eth1=10.0.2.1/24", "--addr", "eth1=2001:db8:2::1/64",
              "--ra-interval", "3,4", "--ctl", s["r"])
        start("host", "--attach", f"vde://{sw2}", "--ctl", s["h3"])  # configures itself
        for path in s.values():
            _wait_path(path, procs)
        r = ctl(s["h1"], "ping", "10.0.1.3")
        assert r.returncode == 0 and "bytes from 10.0.1.3" in r.stdout, r.stdout + r.stderr
        r = ctl(s["h1"], "ping6", "2001:db8:1::1")
        assert r.returncode == 0, r.stdout + r.stderr
        # h3 takes a SLAAC address from the router's RAs
        end = time.monotonic() + 20
        addr = None
        while addr is None and time.monotonic() < end:
            out = ctl(s["h3"], "addr").stdout
            addr = next((w.split("=")[1].split("/")[0] for w in out.split()
                         if w.startswith("addr=2001:db8:2:")), None)
            time.sleep(0.3)
        assert addr, out
        time.sleep(1.5)  # past its DAD
        r = ctl(s["h1"], "ping6", addr)
        assert r.returncode == 0 and f"bytes from {addr}" in r.stdout, r.stdout + r.stderr
        r = ctl(s["h1"], "ping", "10.0.1.77", "1")
        assert r.returncode == 1 and "no reply" in r.stdout
        r = ctl(s["h1"], "route")
        assert "10.0.1.1" in r.stdout
        r = ctl(s["r"], "stats")
        assert "ip6_forwarded" in r.stdout
        r = ctl(s["h1"], "addr", "add", "eth9", "10.9.9.9/24")
        assert r.returncode == 1 and "no interface" in r.stderr
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_bad_flags_get_one_line():
    r = subprocess.run([sys.executable, "-m", "vnet", "host", "--attach", "vde:///nonexistent/x",
                        "--addr", "10.0.0.1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "prefix length" in r.stderr
    r = subprocess.run([sys.executable, "-m", "vnet", "host", "--attach", "vde:///nonexistent/x",
                        "--addr", "eth3=10.0.0.1/24"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no interface eth3" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([sys.executable, "-m", "vnet", "host", "--attach", "vde:///nonexistent/x",
                        "--addr", "10.0.0.1/24"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
