"""`vnet plug` with vde_plug's -d (daemon), -l and -L (syslog START/STOP and IP log).

Syslog goes to $VNET_SYSLOG, here a datagram socket the test reads, in the
format syslog daemons receive (`<PRI>tag[pid]: message`)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from vnet.wire.stream import encode

MAC = bytes.fromhex("525400aabbcc")


def start_switch(d: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-m", "vnet", "switch", "-s", str(d)],
                         stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    end = time.monotonic() + 10
    while not (d / "ctl").exists():
        assert p.poll() is None and time.monotonic() < end
        time.sleep(0.05)
    return p


def ipv4_frame(src: str) -> bytes:
    ip = bytes([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]) + socket.inet_aton(src) + \
        socket.inet_aton("10.0.0.255")
    return b"\xff" * 6 + MAC + b"\x08\x00" + ip + bytes(8)


def arp_frame(src: str) -> bytes:
    arp = bytes.fromhex("0001080006040001") + MAC + socket.inet_aton(src) + bytes(6) + \
        socket.inet_aton("10.0.0.1")
    return b"\xff" * 6 + MAC + b"\x08\x06" + arp


def test_iplog_and_start_stop_go_to_syslog(tmp_path):
    sw = start_switch(tmp_path / "sw")
    log_path = tmp_path / "log"
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(str(log_path))
    sink.settimeout(5)
    try:
        frames = [ipv4_frame("10.0.0.7"), ipv4_frame("10.0.0.7"), arp_frame("10.0.0.8"),
                  ipv4_frame("0.0.0.0")]
        r = subprocess.run([sys.executable, "-m", "vnet", "plug", "-L", f"vde://{tmp_path}/sw"],
                           input=b"".join(encode(f) for f in frames), capture_output=True,
                           timeout=20, env={**os.environ, "VNET_SYSLOG": str(log_path)})
        assert r.returncode == 0, r.stderr
        msgs = []
        while True:
            try:
                msgs.append(sink.recv(4096).decode())
            except TimeoutError:
                break
            if "STOP" in msgs[-1]:
                break
        assert msgs[0].startswith("<30>vnet-plug[") and "START user=" in msgs[0], msgs
        ips = [m for m in msgs if ": IP " in m]
        assert len(ips) == 2, msgs  # the repeat and 0.0.0.0 are not logged
        assert "IP 10.0.0.7 MAC 52:54:00:aa:bb:cc" in ips[0]
        assert "IP 10.0.0.8 MAC 52:54:00:aa:bb:cc" in ips[1]
        assert "STOP user=" in msgs[-1]
    finally:
        sink.close()
        sw.terminate()
        sw.wait(10)


def test_daemon_joins_two_switches_in_the_background(tmp_path):
    sw1, sw2 = start_switch(tmp_path / "a"), start_switch(tmp_path / "b")
    pidfile = tmp_path / "plug.pid"
    try:
        r = subprocess.run([sys.executable, "-m", "vnet", "plug", "-d", "-p", str(pidfile),
                            f"vde://{tmp_path}/a", f"vde://{tmp_path}/b"],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        pid = int(pidfile.read_text())
        os.kill(pid, 0)  # running
        assert sorted(n for n in os.listdir(tmp_path / "a") if n != "ctl")  # plugged in
        os.kill(pid, signal.SIGTERM)
        end = time.monotonic() + 10
        while pidfile.exists():
            assert time.monotonic() < end, "the daemon did not remove its pidfile"
            time.sleep(0.05)
        bad = subprocess.run([sys.executable, "-m", "vnet", "plug", "-d", f"vde://{tmp_path}/a"],
                             capture_output=True, text=True, timeout=20)
        assert bad.returncode == 2
        assert bad.stderr.strip() == "vnet plug: -d needs two URLs (a daemon has no stdin/stdout)"
        fail = subprocess.run([sys.executable, "-m", "vnet", "plug", "-d",
                               f"vde://{tmp_path}/nothing", f"vde://{tmp_path}/b"],
                              capture_output=True, text=True, timeout=20)
        assert fail.returncode == 1 and len(fail.stderr.strip().splitlines()) == 1, fail.stderr
    finally:
        for p in (sw1, sw2):
            p.terminate()
            p.wait(10)
