"""`vnet wirefilter` in real time between two Debian vde_switch (or two `vnet switch`) instances.

Endpoints are `vde_plug` processes on each switch, driven from the test over
their stdin/stdout (VDE's 2-byte length stream). The wire's delay is checked as
a lower bound (a frame can never arrive before the emulated delay); the same
measurement is made through Debian's own `wirefilter -v` for comparison.
"""

from __future__ import annotations

import os
import queue
import select
import shutil
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import need_tool
from vnet.control.client import call
from vnet.wire.stream import StreamDecoder, encode

REPO = Path(__file__).resolve().parents[2]
MAC1, MAC2 = bytes.fromhex("02000000aa01"), bytes.fromhex("02000000aa02")
PAYLOAD = struct.Struct("!2sI")  # ethertype, sequence
TICK = 0.0015  # clock granularity allowance (see cross())
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def vnet_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vnet", *args]


class Proc:
    """A child process that is always killed at the end of the test."""

    def __init__(self, argv: list[str], **kw) -> None:
        self.p = subprocess.Popen(argv, **kw)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)


class Plug:
    """`vde_plug DIR` driven over pipes: send frames, receive them with arrival times."""

    def __init__(self, sw: Path, procs: list[Proc]) -> None:
        self.sw = sw
        self.proc = Proc(["vde_plug", str(sw)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
        procs.append(self.proc)
        self.got: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self._dec = StreamDecoder(lambda f: self.got.put((time.monotonic(), f)))
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self) -> None:
        fd = self.proc.p.stdout.fileno()
        while True:
            r, _, _ = select.select([fd], [], [], 30)
            if not r:
                return
            data = os.read(fd, 65536)
            if not data:
                return
            self._dec.feed(data)

    def send(self, frame: bytes) -> float:
        t = time.monotonic()
        try:
            self.proc.p.stdin.write(encode(frame))
            self.proc.p.stdin.flush()
        except BrokenPipeError:
            raise AssertionError(f"vde_plug on {self.sw} exited with status "
                                 f"{self.proc.p.poll()}") from None
        return t

    def drain(self) -> None:
        while not self.got.empty():
            self.got.get_nowait()


def frame(src: bytes, seq: int) -> bytes:
    return b"\xff" * 6 + src + PAYLOAD.pack(b"\x88\xb5", seq) + bytes(40)


def wait_for(pred, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


@pytest.fixture
def net(request, tmp_path):
    """Two switches (Debian vde_switch by default, or `vnet switch` when parametrized with
    "vnet"), a vde_plug on each; yields a helper, kills everything after."""
    kind = getattr(request, "param", "vde_switch")
    need_tool("vde_plug")
    if kind == "vde_switch":
        need_tool("vde_switch")
    procs: list[Proc] = []
    tag = uuid.uuid4().hex[:6]
    dirs = [tmp_path / f"sw{i}-{tag}" for i in (1, 2)]
    for d in dirs:
        argv = (["vde_switch", "-s", str(d)] if kind == "vde_switch"
                else vnet_cmd("switch", "-s", str(d)))
        procs.append(Proc(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, env=ENV))
    for d in dirs:
        wait_for(lambda d=d: (d / "ctl").exists(), 10)

    class Net:
        sw1, sw2 = dirs
        procs_ = procs
        tmp = tmp_path
        plug1 = Plug(dirs[0], procs)
        plug2 = Plug(dirs[1], procs)

        def start(self, argv: list[str]) -> Proc:
            # stdin stays open: Debian's wirefilter exits on EOF of its stdin console
            p = Proc(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                     stderr=subprocess.PIPE, env=ENV)
            procs.append(p)
            return p

    try:
        yield Net()
    finally:
        for p in reversed(procs):
            p.stop()


def cross(src: Plug, dst: Plug, srcmac: bytes, n: int, gap: float = 0.03,
          timeout: float = 3.0) -> list[float]:
    """Send n broadcasts src -> dst; return one-way times (s) of those that arrived.

    A frame reaches the wire after the test stamped it sent, and vnet's runtime
    never fires a timer early, so vnet's delays are asserted as exact lower bounds.
    Debian's wirefilter schedules on whole milliseconds of gettimeofday and may
    deliver up to 1 ms early: its bounds allow TICK.
    """
    dst.drain()
    sent: dict[int, float] = {}
    base = int(time.monotonic() * 1000) % 1_000_000 * 1000
    for i in range(n):
        sent[base + i] = src.send(frame(srcmac, base + i))
        time.sleep(gap)
    out: list[float] = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        try:
            t, f = dst.got.get(timeout=0.1)
        except queue.Empty:
            continue
        if len(f) >= 20 and f[12:14] == b"\x88\xb5":
            seq = PAYLOAD.unpack_from(f, 12)[1]
            if seq in sent:
                out.append(t - sent.pop(seq))
    return out


def wait_linked(net, timeout: float = 20.0) -> None:
    """Until a frame crosses the wire (the wire's plugs have joined both switches)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cross(net.plug1, net.plug2, MAC1, 1, gap=0, timeout=0.5):
            return
    state = [f"{' '.join(map(str, p.p.args))[:60]}: {'running' if p.p.poll() is None else p.p.poll()}"
             for p in net.procs_]
    raise AssertionError(f"no frame crossed the wire in {timeout} s; processes: {state}")


@pytest.mark.parametrize("net", ["vde_switch", "vnet"], indirect=True)
def test_vnet_wirefilter_delay_and_live_change(net):
    mgmt = net.tmp / "wf.mgmt"
    wf = net.start(vnet_cmd("wirefilter", "-v", f"{net.sw1}:{net.sw2}", "-d", "LR40",
                            "-d", "RL10", "-M", str(mgmt)))
    wait_for(mgmt.exists)
    wait_linked(net)
    lr = cross(net.plug1, net.plug2, MAC1, 15)
    rl = cross(net.plug2, net.plug1, MAC2, 15)
    assert len(lr) == 15 and len(rl) == 15
    assert min(lr) >= 0.040 and min(rl) >= 0.010
    print(f"\nvnet wirefilter -d LR40 -d RL10: LR min/median {min(lr)*1e3:.1f}/"
          f"{sorted(lr)[7]*1e3:.1f} ms, RL {min(rl)*1e3:.1f}/{sorted(rl)[7]*1e3:.1f} ms")
    # live change over the control socket, in wirefilter's syntax
    call(str(mgmt), "delay", "LR", "90")
    info = call(str(mgmt), "showinfo")
    assert "Delay  L->R 90   R->L 10" in info
    lr2 = cross(net.plug1, net.plug2, MAC1, 10)
    assert len(lr2) == 10 and min(lr2) >= 0.090
    c = call(str(mgmt), "counters")
    assert c["LR"]["frames_out"] >= 25 and c["LR"]["delay"]["min_ms"] >= 40 - 1e-6
    assert wf.p.poll() is None
    with pytest.raises(Exception, match="bad delay value"):
        call(str(mgmt), "delay", "fast")
    call(str(mgmt), "shutdown")
    assert wf.p.wait(10) == 0
    assert not mgmt.exists()


@pytest.mark.parametrize("net", ["vde_switch", "vnet"], indirect=True)
def test_vnet_wirefilter_loss_per_direction_and_capture(net):
    mgmt = net.tmp / "wf.mgmt"
    pcap = net.tmp / "wire.pcapng"
    rc = net.tmp / "wf.rc"
    rc.write_text("# lose everything left to right\nloss LR 100\nfifo 1\n")
    net.start(vnet_cmd("wirefilter", "-v", f"{net.sw1}:{net.sw2}", "-f", str(rc),
                       "-M", str(mgmt), "--pcap", str(pcap)))
    wait_for(mgmt.exists)
    # RL is untouched: a frame crosses from switch 2 to switch 1
    end = time.monotonic() + 10
    while not cross(net.plug2, net.plug1, MAC2, 1, gap=0, timeout=0.5):
        assert time.monotonic() < end, "no frame crossed RL"
    assert cross(net.plug1, net.plug2, MAC1, 10, gap=0.01, timeout=0.5) == []
    call(str(mgmt), "loss", "0")
    assert len(cross(net.plug1, net.plug2, MAC1, 10, gap=0.01)) == 10
    c = call(str(mgmt), "counters")
    assert c["LR"]["lost"] >= 10
    call(str(mgmt), "shutdown")
    wait_for(lambda: pcap.exists() and pcap.stat().st_size > 0)
    from vnet.wire.pcap import read

    time.sleep(0.3)
    got = read(pcap.read_bytes())
    assert [n for n, _ in got.interfaces] == ["A", "B"]
    assert len(got.packets) >= 20


@pytest.mark.parametrize("net", ["vde_switch", "vnet"], indirect=True)
def test_dpipe_chain(net):
    need_tool("dpipe")
    net.start(["dpipe", "vde_plug", str(net.sw1), "=", *vnet_cmd("wirefilter", "-d", "30"),
               "=", "vde_plug", str(net.sw2)])
    wait_linked(net)
    lr = cross(net.plug1, net.plug2, MAC1, 10)
    rl = cross(net.plug2, net.plug1, MAC2, 10)
    assert len(lr) == 10 and len(rl) == 10
    assert min(lr) >= 0.030 and min(rl) >= 0.030


def test_debian_wirefilter_same_parameters(net):
    """The reference: Debian's wirefilter -v under the same -d, measured the same way."""
    need_tool("wirefilter")
    net.start(["wirefilter", "-v", f"{net.sw1}:{net.sw2}", "-d", "LR40", "-d", "RL10"])
    wait_linked(net)
    lr = cross(net.plug1, net.plug2, MAC1, 15)
    rl = cross(net.plug2, net.plug1, MAC2, 15)
    assert len(lr) == 15 and len(rl) == 15
    # wirefilter schedules on whole milliseconds of gettimeofday: up to 1 ms early
    assert min(lr) >= 0.040 - TICK and min(rl) >= 0.010 - TICK
    print(f"\nDebian wirefilter -d LR40 -d RL10: LR min/median {min(lr)*1e3:.1f}/"
          f"{sorted(lr)[7]*1e3:.1f} ms, RL {min(rl)*1e3:.1f}/{sorted(rl)[7]*1e3:.1f} ms")


@pytest.mark.parametrize("argv,needle", [
    (["-d", "abc", "vde:///a", "vde:///b"], "bad delay value 'abc'"),
    (["-l", "120", "vde:///a", "vde:///b"], "over 100"),
    (["-v", "onlyone"], "SW1:SW2"),
    (["vde:///a"], "two URLs"),
    (["-v", "/nonexistent-vnet/a:/nonexistent-vnet/b"], "no VDE switch"),
    (["-d", "10", "bogus-url", "vde:///b"], "not an attachment URL"),
    (["-f", "/nonexistent-vnet/rc", "vde:///a", "vde:///b"], "cannot read"),
    (["--bogus", "vde:///a", "vde:///b"], "unrecognized arguments: --bogus"),
    (["-d"], "expected one argument"),
    (["-f", "BADRC", "vde:///a", "vde:///b"], "BADRC:2: unknown command 'jitter'"),
    (["-f", "BADRC2", "vde:///a", "vde:///b"], "BADRC2:1: bad delay value '5s'"),
    (["--mgmtmode", "9x", "-M", "/tmp/x", "udp://1:127.0.0.1:2", "udp://3:127.0.0.1:4"],
     "octal"),
])
def test_bad_flags_give_one_clear_line(argv, needle, tmp_path):
    (tmp_path / "BADRC").write_text("delay 10\njitter 5\n")
    (tmp_path / "BADRC2").write_text("delay 5s\n")
    r = subprocess.run(vnet_cmd("wirefilter", *argv), capture_output=True, text=True, env=ENV,
                       timeout=30, cwd=tmp_path)
    assert r.returncode in (1, 2)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_udp_ends_without_vde(tmp_path):
    """Two UDP attachments on loopback: frames cross with the delay; no vde2 needed."""
    import socket

    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    pa, pb = a.getsockname()[1], b.getsockname()[1]
    with socket.socket() as s1, socket.socket() as s2:  # two free ports for the wire's ends
        s1.bind(("127.0.0.1", 0))
        s2.bind(("127.0.0.1", 0))
        wa, wb = s1.getsockname()[1], s2.getsockname()[1]
    a.connect(("127.0.0.1", wa))
    b.connect(("127.0.0.1", wb))
    a.settimeout(5)
    b.settimeout(5)
    p = subprocess.Popen(vnet_cmd("wirefilter", f"udp://{wa}:127.0.0.1:{pa}",
                                  f"udp://{wb}:127.0.0.1:{pb}", "-d", "25", "-q"),
                         env=ENV, stderr=subprocess.PIPE)
    try:
        got = []
        end = time.monotonic() + 10
        while not got and time.monotonic() < end:
            t0 = time.monotonic()
            try:
                a.send(frame(MAC1, 1))
                b.settimeout(0.5)
                data = b.recv(2048)
                got.append(time.monotonic() - t0)
                assert data == frame(MAC1, 1)
            except (TimeoutError, ConnectionRefusedError):
                pass
        assert got and got[0] >= 0.025
        t0 = time.monotonic()
        b.send(frame(MAC2, 2))
        a.settimeout(5)
        assert a.recv(2048) == frame(MAC2, 2) and time.monotonic() - t0 >= 0.025
    finally:
        p.terminate()
        p.wait(10)
        a.close()
        b.close()
    assert shutil.which(sys.executable)


# ---- kernel TCP across the emulated wire -------------------------------------------------

L2_LIMIT_MBIT = (1 << 20) * 8 / 1e6  # -b 1M is 1 MiB/s at layer 2: 8.39 Mbit/s


def _tcp_across(ns1, ns2, seconds: int = 4) -> tuple[float, float]:
    """(ping min RTT in ms, iperf3 receiver goodput in Mbit/s) from ns1 to ns2."""
    import json

    ping = ns1.run("ping", "-c", "5", "-i", "0.2", "-W", "3", "10.77.0.2", check=False)
    rtts = [float(x.split("time=")[1].split()[0]) for x in ping.stdout.splitlines() if "time=" in x]
    assert rtts, ping.stdout + ping.stderr
    server = ns2.popen("iperf3", "-s", "-1", "-p", "5299", stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        r = ns1.run("iperf3", "-c", "10.77.0.2", "-p", "5299", "-t", str(seconds), "-J",
                    timeout=seconds + 20)
        res = json.loads(r.stdout)
    finally:
        server.kill()
        server.wait(5)
    return min(rtts), res["end"]["sum_received"]["bits_per_second"] / 1e6


def _addresses(ns1, ns2, if1: str, if2: str) -> None:
    wait_for(lambda: ns1.run("ip", "link", "show", if1, check=False).returncode == 0
             and ns2.run("ip", "link", "show", if2, check=False).returncode == 0)
    ns1.run("ip", "addr", "add", "10.77.0.1/24", "dev", if1)
    ns2.run("ip", "addr", "add", "10.77.0.2/24", "dev", if2)
    ns1.run("ip", "link", "set", if1, "up")
    ns2.run("ip", "link", "set", if2, "up")


def test_kernel_tcp_through_vnet_wirefilter_between_taps(netns_factory):
    """Two namespaces, a TAP in each, `vnet wirefilter tap:// tap:// -d 20 -b 1M -c 64K`."""
    from tests.conftest import need_tun

    need_tun()
    need_tool("iperf3", "ping")
    ns1, ns2 = netns_factory("wfa"), netns_factory("wfb")
    tap = f"wft{uuid.uuid4().hex[:6]}"
    wf = Proc(vnet_cmd("wirefilter", f"tap://{tap}?netns={ns1.name}", f"tap://{tap}?netns={ns2.name}",
                       "-d", "20", "-b", "1M", "-c", "64K"),
              stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    try:
        _addresses(ns1, ns2, tap, tap)
        rtt, goodput = _tcp_across(ns1, ns2)
    finally:
        wf.stop()
    print(f"\nvnet wirefilter -d 20 -b 1M -c 64K between TAPs: ping min {rtt:.1f} ms, "
          f"iperf3 {goodput:.2f} Mbit/s (L2 limit {L2_LIMIT_MBIT:.2f})")
    assert rtt >= 40
    assert 0 < goodput <= L2_LIMIT_MBIT * 1.01  # a shaper never passes more than its rate


def test_kernel_tcp_through_debian_wirefilter_reference(netns_factory, tmp_path):
    """The same measurement through vde_switch + vde_plug2tap + Debian wirefilter -v."""
    from tests.conftest import need_tun

    need_tun()
    need_tool("iperf3", "ping", "vde_switch", "vde_plug2tap", "wirefilter")
    ns1, ns2 = netns_factory("wfa"), netns_factory("wfb")
    tap = f"wft{uuid.uuid4().hex[:6]}"
    procs: list[Proc] = []
    try:
        dirs = [tmp_path / "s1", tmp_path / "s2"]
        for d in dirs:
            procs.append(Proc(["vde_switch", "-s", str(d)], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for d in dirs:
            wait_for(lambda d=d: (d / "ctl").exists())
        for ns, d in ((ns1, dirs[0]), (ns2, dirs[1])):
            procs.append(Proc(["ip", "netns", "exec", ns.name, "vde_plug2tap", "-s", str(d), tap],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL))
        procs.append(Proc(["wirefilter", "-v", f"{dirs[0]}:{dirs[1]}", "-d", "20", "-b", "1M",
                           "-c", "64K"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL))
        _addresses(ns1, ns2, tap, tap)
        rtt, goodput = _tcp_across(ns1, ns2)
    finally:
        for p in reversed(procs):
            p.stop()
    print(f"\nDebian wirefilter -d 20 -b 1M -c 64K (vde_switch + vde_plug2tap): ping min "
          f"{rtt:.1f} ms, iperf3 {goodput:.2f} Mbit/s")
    assert rtt >= 40 - 2 * TICK * 1e3
    assert 0 < goodput <= L2_LIMIT_MBIT * 1.01


def test_markov_mode_over_the_control_socket(tmp_path):
    """wirefilter's Markov commands from an rcfile and live; the wire alternates nodes."""
    import socket

    ports = []
    for _ in range(4):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    rc = tmp_path / "markov.rc"
    rc.write_text("markov-numnodes 2\ndelay 10\ndelay 200[1]\nmarkov-name 1,slow\n"
                  "markov-time 50\nsetedge 0,1,100\nsetedge 1,0,100\n")
    mgmt = tmp_path / "wf.mgmt"
    p = Proc(vnet_cmd("wirefilter", f"udp://{ports[0]}:127.0.0.1:{ports[1]}",
                      f"udp://{ports[2]}:127.0.0.1:{ports[3]}", "-f", str(rc), "-M", str(mgmt)),
             stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV)
    try:
        wait_for(mgmt.exists)
        wait_for(lambda: call(str(mgmt), "counters")["markov"]["changes"] >= 3)
        assert "Delay  L->R 200   R->L 200" in call(str(mgmt), "showinfo", "1")
        assert 'Node 1 "slow" (0,..,1) Markov-time 50' in call(str(mgmt), "showinfo", "1")
        assert "weight 100" in call(str(mgmt), "showedges", "0")
        with pytest.raises(Exception, match="not a percentage"):
            call(str(mgmt), "setedge", "0,1,150")
        with pytest.raises(Exception, match="no Markov node 5"):
            call(str(mgmt), "markov-setnode", "5")
        call(str(mgmt), "markov-numnodes", "1")  # back to a plain wire
        n = call(str(mgmt), "counters")
        assert "markov" not in n
        assert call(str(mgmt), "showcurrent") == 'Current Markov Node 0 "" (0,..,0)'
    finally:
        p.stop()


def test_blink_reports_each_delivered_frame(tmp_path):
    """--blink/--blinkid: one `ID DIR LEN` datagram per frame leaving the wire, as wirefilter."""
    import socket

    blink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    blink.bind(str(tmp_path / "blink"))
    blink.settimeout(10)
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind(("127.0.0.1", 0))
    b.bind(("127.0.0.1", 0))
    with socket.socket() as s1, socket.socket() as s2:
        s1.bind(("127.0.0.1", 0))
        s2.bind(("127.0.0.1", 0))
        wa, wb = s1.getsockname()[1], s2.getsockname()[1]
    a.connect(("127.0.0.1", wa))
    b.connect(("127.0.0.1", wb))
    b.settimeout(0.5)
    p = Proc(vnet_cmd("wirefilter", f"udp://{wa}:127.0.0.1:{a.getsockname()[1]}",
                      f"udp://{wb}:127.0.0.1:{b.getsockname()[1]}", "--blink",
                      str(tmp_path / "blink"), "--blinkid", "cable7", "-q"),
             stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        end = time.monotonic() + 20
        while True:  # until the wire is up
            assert time.monotonic() < end, "no frame crossed"
            try:
                a.send(frame(MAC1, 1))
                b.recv(2048)
                break
            except (TimeoutError, ConnectionRefusedError):
                continue
        assert blink.recv(100) == f"cable7 LR {len(frame(MAC1, 1)) + 2}\n".encode()
        b.send(frame(MAC2, 2) + b"pad")
        a.settimeout(5)
        a.recv(2048)
        msgs = []
        while not msgs or msgs[-1].startswith(b"cable7 LR"):
            msgs.append(blink.recv(100))
        assert msgs[-1] == f"cable7 RL {len(frame(MAC2, 2)) + 5}\n".encode()
    finally:
        p.stop()
        for s in (a, b, blink):
            s.close()
