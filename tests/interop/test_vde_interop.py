"""The VDE protocol against Debian's vde2/vdeplug tools.

* `vnet switch` serves Debian's `vde_plug2tap` (two namespaces ping across it, and
  carry a byte-checked kernel TCP transfer through the compiled fast path),
  `vde_plug` and `unixterm` (its -M console);
* a vnet client plugs into Debian's `vde_switch` and exchanges frames (1514 B)
  with a `vde_plug`;
* a 9000-byte frame crosses `vnet switch --mtu 9000` whole, and is cut to
  1518 bytes by vde_switch;
* the CLI: one-line errors, stdin EOF does not stop the switch, -d/-p.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import need_root, need_tool
from vnet.link.port import Port
from vnet.phy.vde_client import connect
from vnet.runtime.realtime import AsyncioRuntime, new_event_loop

A = bytes.fromhex("020000000a01")
B = bytes.fromhex("020000000b02")
BCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, n: int, tag: int = 1) -> bytes:
    return dst + src + b"\x88\xb5" + bytes([tag & 0xFF]) * (n - 14)


def vnet_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vnet", *args]


def wait_path(path: Path, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"process exited with {proc.returncode}: {err}")
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.05)


class Proc:
    """A background process that is always killed at the end."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], **kw) -> subprocess.Popen:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("text", True)
        p = subprocess.Popen(cmd, **kw)
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()


@pytest.fixture
def procs():
    pr = Proc()
    yield pr
    pr.cleanup()


def vnet_switch(procs: Proc, d: Path, *extra: str) -> subprocess.Popen:
    p = procs.start(vnet_cmd("switch", "-s", str(d), *extra), stdin=subprocess.DEVNULL)
    wait_path(d / "ctl", p)
    return p


def vde_switch(procs: Proc, d: Path, *extra: str) -> subprocess.Popen:
    need_tool("vde_switch")
    # vde_switch exits on stdin EOF, so it gets a pipe we keep open.
    p = procs.start(["vde_switch", "-s", str(d), *extra], stdin=subprocess.PIPE)
    wait_path(d / "ctl", p)
    return p


def run(coro_fn, *args):
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro_fn(AsyncioRuntime(loop), *args))
    finally:
        loop.close()


async def until(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        await asyncio.sleep(0.02)


# ---- Debian clients on the vnet switch ----------------------------------------------------------


def plug2tap_pair(procs: Proc, d: Path, netns_factory, subnet: str) -> list:
    """Two namespaces, each with Debian's vde_plug2tap into the switch at `d`, its TAP up
    with SUBNET.1 and SUBNET.2 /24."""
    nss = [netns_factory("vdp"), netns_factory("vdp")]
    tap = f"vt{uuid.uuid4().hex[:8]}"
    for ns in nss:
        procs.start(["ip", "netns", "exec", ns.name, "vde_plug2tap", "-s", str(d), tap])
    for i, ns in enumerate(nss, 1):
        end = time.monotonic() + 10
        while ns.run("ip", "link", "show", tap, check=False).returncode != 0:
            assert time.monotonic() < end, "vde_plug2tap did not create its TAP"
            time.sleep(0.05)
        ns.run("ip", "addr", "add", f"{subnet}.{i}/24", "dev", tap)
        ns.run("ip", "link", "set", tap, "up")
    return nss


def test_vde_plug2tap_namespaces_ping_across_vnet_switch(tmp_path, procs, netns_factory):
    need_tool("vde_plug2tap", "ping")
    d = tmp_path / "sw"
    vnet_switch(procs, d, "-M", str(tmp_path / "mgmt"))
    nss = plug2tap_pair(procs, d, netns_factory, "10.77.0")
    r = nss[0].run("ping", "-c", "3", "-i", "0.2", "-W", "2", "10.77.0.2", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0% packet loss" in r.stdout
    out = subprocess.run(vnet_cmd("ctl", str(tmp_path / "mgmt"), "port/print"),
                         capture_output=True, text=True, timeout=10).stdout
    assert out.count(": vde_plug2tap: user=") == 2, out


SINK = ("import hashlib,socket,sys;s=socket.create_server(('10.78.0.2',5001));"
        "print('up',flush=True);c,_=s.accept();h=hashlib.sha256();n=0\n"
        "while (b:=c.recv(1<<16)):\n h.update(b);n+=len(b)\n"
        "print(n,h.hexdigest(),flush=True)")


def test_kernel_tcp_through_vde_plug2tap_takes_the_fast_path(tmp_path, procs, netns_factory):
    """Linux TCP between two namespaces, each on Debian's vde_plug2tap into `vnet switch`:
    32 MiB arrive intact (sha256), and the unicast frames went through the compiled path."""
    need_tool("vde_plug2tap")
    d = tmp_path / "sw"
    mgmt = tmp_path / "mgmt"
    vnet_switch(procs, d, "-M", str(mgmt))
    nss = plug2tap_pair(procs, d, netns_factory, "10.78.0")
    sink = procs.start(["ip", "netns", "exec", nss[1].name, sys.executable, "-c", SINK],
                       stdout=subprocess.PIPE)
    assert sink.stdout is not None and sink.stdout.readline().strip() == "up"
    data = os.urandom(32 << 20)
    src = tmp_path / "data"
    src.write_bytes(data)
    send = ("import socket,sys;c=socket.create_connection(('10.78.0.2',5001),timeout=30);"
            "c.sendall(open(sys.argv[1],'rb').read());c.close()")
    r = nss[0].run(sys.executable, "-c", send, str(src), check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    n, digest = sink.communicate(timeout=30)[0].split()
    assert int(n) == len(data) and digest == hashlib.sha256(data).hexdigest()
    info = subprocess.run(vnet_cmd("ctl", str(mgmt), "--json", "showinfo"),
                          capture_output=True, text=True, timeout=10).stdout
    fast = json.loads(info)["fast_path"]
    assert fast["fast_frames"] > 20000 and fast["fast_frames"] > 50 * fast["slow_frames"], fast


def unixterm(mgmt: Path, commands: list[str]) -> str:
    """Debian's unixterm quits on stdin EOF, so keep stdin open until every reply is in."""
    p = subprocess.Popen(["unixterm", str(mgmt)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    out = ""
    try:
        for c in commands:
            p.stdin.write(c + "\n")
            p.stdin.flush()
            while True:
                line = p.stdout.readline()
                assert line, f"unixterm ended early: {out}"
                out += line
                if line.startswith(("1000 ", "1")) and line[:4].isdigit():
                    break
    finally:
        p.kill()
        p.wait()
        p.stdin.close()
        p.stdout.close()
    return out


def test_vde_plug_on_vnet_switch_and_console_via_unixterm(tmp_path, procs):
    need_tool("vde_plug", "unixterm")
    d, mgmt = tmp_path / "sw", tmp_path / "mgmt"
    vnet_switch(procs, d, "-M", str(mgmt))
    plug = procs.start(["vde_plug", str(d)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       text=False)

    async def main(rt):
        p = Port()
        got: list[bytes] = []
        p.receive = got.append
        att = await connect(rt, p, str(d))
        await until(lambda: len(os.listdir(d)) >= 3)
        f = frame(BCAST, A, 1514)
        plug.stdin.write(struct.pack(">H", len(f)) + f)
        plug.stdin.flush()
        await until(lambda: got)
        assert got == [f]
        p.send(frame(A, B, 1514, 7))  # A was learned on vde_plug's port
        loop = asyncio.get_running_loop()
        hdr = await asyncio.wait_for(loop.run_in_executor(None, plug.stdout.read, 2), 10)
        body = await asyncio.wait_for(
            loop.run_in_executor(None, plug.stdout.read, struct.unpack(">H", hdr)[0]), 10)
        assert body == frame(A, B, 1514, 7)
        out = await loop.run_in_executor(None, unixterm, mgmt, ["port/print", "hash/print"])
        assert "vdeplug" in out and "02 00 00 00 0a 01" in out, out
        assert out.count("1000 Success") == 2
        att.close()

    run(main)


# ---- the vnet client on Debian's vde_switch ----------------------------------------------------


def test_vnet_client_on_vde_switch_exchanges_frames_with_vde_plug(tmp_path, procs):
    need_tool("vde_plug")
    d = tmp_path / "sw"
    vde_switch(procs, d)
    plug = procs.start(["vde_plug", str(d)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                       text=False)

    async def main(rt):
        p = Port()
        got: list[bytes] = []
        p.receive = got.append
        att = await connect(rt, p, str(d), want=5, descr="vnet-test")
        assert att.port_number == 5
        mine = f".{os.getpid():05d}-"
        assert not any(n.startswith(mine) for n in os.listdir(d))  # our path was unlinked
        await until(lambda: len(os.listdir(d)) >= 3)  # vde_plug's port too
        for n in (60, 1514):
            f = frame(BCAST, A, n, n)
            plug.stdin.write(struct.pack(">H", len(f)) + f)
        plug.stdin.flush()
        await until(lambda: len(got) >= 2)
        assert got == [frame(BCAST, A, 60, 60), frame(BCAST, A, 1514, 1514)]
        loop = asyncio.get_running_loop()
        for n in (60, 1514):
            p.send(frame(A, B, n, n + 1))
            hdr = await asyncio.wait_for(loop.run_in_executor(None, plug.stdout.read, 2), 10)
            body = await asyncio.wait_for(
                loop.run_in_executor(None, plug.stdout.read, struct.unpack(">H", hdr)[0]), 10)
            assert body == frame(A, B, n, n + 1)
        att.close()

    run(main)


def test_vde_switch_closing_our_port_is_seen_as_eof(tmp_path, procs):
    d = tmp_path / "sw"
    sw = vde_switch(procs, d)

    async def main(rt):
        att = await connect(rt, Port(), str(d))
        sw.kill()
        await asyncio.wait_for(att.wait_closed(), 10)
        assert not att.port.attached

    run(main)


def jumbo_through(d: Path) -> list[int]:
    async def main(rt):
        pa, pb = Port(), Port()
        got: list[bytes] = []
        pb.receive = got.append
        a = await connect(rt, pa, str(d))
        b = await connect(rt, pb, str(d))
        pa.send(frame(BCAST, A, 9014))
        pa.send(frame(BCAST, A, 100))
        await until(lambda: len(got) >= 2)
        a.close()
        b.close()
        return [len(f) for f in got]

    return run(main)


def test_jumbo_frame_whole_through_vnet_cut_by_vde_switch(tmp_path, procs):
    vnet_switch(procs, tmp_path / "vnet", "--mtu", "9000")
    assert jumbo_through(tmp_path / "vnet") == [9014, 100]
    vde_switch(procs, tmp_path / "vde")
    assert jumbo_through(tmp_path / "vde") == [1518, 100]


# ---- the command line -----------------------------------------------------------------------


def one_line_error(cmd: list[str]) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_cli_errors_are_one_clear_line(tmp_path, procs):
    other = tmp_path / "other"
    other.mkdir()
    (other / "data.txt").write_text("not a switch")
    assert "not a VDE switch directory" in one_line_error(vnet_cmd("switch", "-s", str(other)))
    running = tmp_path / "running"
    vnet_switch(procs, running)
    assert "in use by a running switch" in one_line_error(vnet_cmd("switch", "-s", str(running)))
    assert "group 'nosuchgroupx'" in one_line_error(
        vnet_cmd("switch", "-s", str(tmp_path / "g"), "-g", "nosuchgroupx"))
    assert "MTU" in one_line_error(vnet_cmd("switch", "-s", str(tmp_path / "m"), "--mtu", "20"))
    # a port that does not exist (-n 32)
    assert "refused port 99" in one_line_error(vnet_cmd("plug", f"vde://{running}[99]"))
    assert "no VDE switch at" in one_line_error(vnet_cmd("plug", f"vde://{tmp_path}/none"))


def test_cli_as_an_ordinary_user_no_permission_and_no_root_for_tap():
    need_root()
    need_tool("setpriv")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    base = Path(tempfile.mkdtemp(prefix="vnetnobody"))  # pytest's tmp is 0700: nobody can't enter
    try:
        os.chmod(base, 0o755)
        line = one_line_error([*nobody, *vnet_cmd("switch", "-s", str(base / "sw"))])
        assert "permission denied" in line, line
        os.chmod(base, 0o777)
        line = one_line_error([*nobody, *vnet_cmd("switch", "-s", str(base / "sw"),
                                                  "-t", "vnetnoroot0")])
        assert "root" in line and "vnetnoroot0" in line, line
        assert not (base / "sw").exists()  # cleaned up after the failed start
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_port_acl_with_debian_vde_plug_as_another_user(procs):
    """-f rcfile with port/create + port/setuser: Debian's vde_plug run as nobody is
    refused a port reserved for root and gets the one reserved for nobody."""
    need_root()
    need_tool("setpriv", "vde_plug")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    base = Path(tempfile.mkdtemp(prefix="vnetacl"))
    try:
        os.chmod(base, 0o755)
        rc = base / "sw.rc"
        rc.write_text("port/create 3\nport/setuser 3 root\nport/create 4\nport/setuser 4 65534\n")
        mgmt = base / "mgmt"
        vnet_switch(procs, base / "sw", "-m", "666", "-f", str(rc), "-M", str(mgmt))
        refused = subprocess.run([*nobody, "vde_plug", f"vde://{base / 'sw'}[3]"],
                                 stdin=subprocess.PIPE, capture_output=True, timeout=10)
        assert refused.returncode != 0
        ok = procs.start([*nobody, "vde_plug", f"vde://{base / 'sw'}[4]"], stdin=subprocess.PIPE)
        end = time.monotonic() + 10
        while True:
            out = subprocess.run(vnet_cmd("ctl", str(mgmt), "port/print", "4"),
                                 capture_output=True, text=True, timeout=10).stdout
            if "Current User: uid 65534" in out:
                break
            assert ok.poll() is None and time.monotonic() < end, out
            time.sleep(0.1)
        info = subprocess.run(vnet_cmd("ctl", str(mgmt), "showinfo"), capture_output=True,
                              text=True, timeout=10).stdout
        assert "refused=1" in info, info
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_vdecmd_reads_the_mgmt_console_as_it_reads_vde_switch(tmp_path, procs):
    """vde2's vdecmd (unixcmd with /etc/vde2/vdecmd, a parse machine that waits for the
    `$ ` prompt and the `0000 DATA END WITH '.'` framing) gets the command's output from
    vnet switch -M exactly as from vde_switch -M."""
    need_tool("unixcmd", "vde_switch")
    if not os.path.exists("/etc/vde2/vdecmd"):
        pytest.fail("vde2 is installed but /etc/vde2/vdecmd is missing")

    def vdecmd(mgmt: Path, *cmd: str) -> str:
        r = subprocess.run(["unixcmd", "-f", "/etc/vde2/vdecmd", "-s", str(mgmt), *cmd],
                           capture_output=True, text=True, timeout=10)
        return r.stdout

    vde_switch(procs, tmp_path / "v", "-M", str(tmp_path / "v.mgmt"))
    vnet_switch(procs, tmp_path / "n", "-M", str(tmp_path / "n.mgmt"))
    theirs = vdecmd(tmp_path / "v.mgmt", "port/showinfo")
    ours = vdecmd(tmp_path / "n.mgmt", "port/showinfo")
    assert "Numports=32" in theirs  # the parse machine works on the reference...
    assert "numports: 32" in ours and "mtu: 1500" in ours  # ...and on vnet's console
    assert vdecmd(tmp_path / "n.mgmt", "vlan/create", "77") == ""  # no output, no error text
    assert "VLAN 0077" in vdecmd(tmp_path / "n.mgmt", "vlan/print", "77")
    # vnet wirefilter's -M speaks Debian wirefilter's dialect (prompt "VDEwf$ ") too
    wf_mgmt = tmp_path / "wf.mgmt"
    wf = procs.start(vnet_cmd("wirefilter", "-v", f"{tmp_path / 'v'}:{tmp_path / 'n'}",
                              "-M", str(wf_mgmt)), stdin=subprocess.DEVNULL)
    wait_path(wf_mgmt, wf)
    assert vdecmd(wf_mgmt, "delay", "LR", "25") == ""
    assert "25" in vdecmd(wf_mgmt, "showinfo")


def test_stdin_eof_does_not_stop_the_switch_unless_asked(tmp_path, procs):
    p = procs.start(vnet_cmd("switch", "-s", str(tmp_path / "a")), stdin=subprocess.PIPE)
    wait_path(tmp_path / "a" / "ctl", p)
    p.stdin.write("showinfo\n")
    p.stdin.close()
    time.sleep(1.0)
    assert p.poll() is None  # still serving after EOF (vde-2 issue #30)
    q = procs.start(vnet_cmd("switch", "-s", str(tmp_path / "b"), "--exit-on-eof"),
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    wait_path(tmp_path / "b" / "ctl", q)
    q.stdin.write("showinfo\n")
    q.stdin.close()
    assert q.wait(timeout=10) == 0
    out = q.stdout.read()
    assert "1000 Success" in out and "numports: 32" in out
    assert not (tmp_path / "b").exists()  # cleaned up on exit


def test_daemon_and_pidfile(tmp_path):
    d, pidfile, mgmt = tmp_path / "sw", tmp_path / "pid", tmp_path / "mgmt"
    r = subprocess.run(vnet_cmd("switch", "-s", str(d), "-d", "-p", str(pidfile), "-M", str(mgmt)),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    try:
        assert (d / "ctl").exists() and mgmt.exists()
        out = subprocess.run(vnet_cmd("ctl", str(mgmt), "shutdown"), capture_output=True,
                             text=True, timeout=10)
        assert out.returncode == 0
        end = time.monotonic() + 10
        while pidfile.exists():
            assert time.monotonic() < end, "daemon did not shut down"
            time.sleep(0.05)
        assert not d.exists()
    finally:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def test_daemon_start_failure_is_reported_by_the_parent(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    assert "not a directory" in one_line_error(vnet_cmd("switch", "-s", str(f), "-d"))


def test_console_over_mgmt_socket(tmp_path, procs):
    d, mgmt = tmp_path / "sw", tmp_path / "mgmt"
    vnet_switch(procs, d, "-M", str(mgmt), "-n", "8")

    # One human-protocol session for the many commands (a `vnet ctl` process each would
    # cost a Python start-up per command); `vnet ctl` itself is checked at the end.
    sess = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sess.settimeout(10)
    sess.connect(str(mgmt))
    reader = sess.makefile("r")
    # vde_switch's dialect: a banner, then "vde$ " before each reply
    banner = [reader.readline() for _ in range(3)]
    assert banner[0].startswith("vnet switch") and banner[2] == "\n", banner

    def ctl(*words: str, ok: bool = True) -> str:
        sess.sendall((" ".join(words) + "\n").encode())
        lines = []
        while True:
            line = reader.readline()
            assert line, "control socket closed"
            line = line.removeprefix("vde$ ")
            lines.append(line)
            code = line[:4]
            if code.isdigit() and line[0] == "1" and line[4:5] == " ":
                break
        assert (code == "1000") == ok, "".join(lines)
        return "".join(lines)

    async def main(rt):
        pa, pb = Port(), Port()
        gb: list[bytes] = []
        pb.receive = gb.append
        a = await connect(rt, pa, str(d), want=2)
        b = await connect(rt, pb, str(d), want=3)
        loop = asyncio.get_running_loop()

        async def actl(*words: str, ok: bool = True) -> str:
            return await loop.run_in_executor(None, lambda: ctl(*words, ok=ok))

        await actl("vlan/create", "10")
        await actl("port/setvlan", "2", "10")
        await actl("vlan/addport", "10", "3")
        assert "Untagged: 0002" in await actl("vlan/print", "10")
        pa.send(frame(BCAST, A, 60))
        await until(lambda: gb)
        assert gb[0][12:16] == bytes.fromhex("8100000a")  # tagged toward the trunk member
        assert "found on port 002" in await actl("hash/find", "02:00:00:00:0a:01", "10")
        assert "Port 0002 untagged_vlan=0010" in await actl("port/print", "2")
        await actl("hash/setsize", "4")
        assert "size: 4" in await actl("hash/showinfo")
        assert "is not in use" in await actl("port/setvlan", "5", "10", ok=False)
        assert "does not exist" in await actl("vlan/addport", "99", "3", ok=False)
        assert "spanning tree is off" in await actl("stp/print", ok=False)
        assert "cannot open capture file" in await actl("pcap/start", "/nonexistent/x.pcap",
                                                        ok=False)
        c2 = await connect(rt, Port(), str(d), want=2)  # a second endpoint on port 2
        out = await actl("port/print", "2")
        ids = [int(line.split("endpoint ID")[1].split()[0]) for line in out.splitlines()
               if "endpoint ID" in line]
        assert len(ids) == 2, out
        await actl("port/epclose", "2", str(ids[1]))
        await asyncio.wait_for(c2.wait_closed(), 10)
        assert "no endpoint" in await actl("port/epclose", "2", "9999", ok=False)
        cap = tmp_path / "cap.pcap"
        await actl("pcap/start", str(cap))
        pa.send(frame(BCAST, A, 80))
        await until(lambda: len(gb) >= 2)
        assert "stopped" in await actl("pcap/stop")
        assert cap.stat().st_size > 24 + 80
        r = await loop.run_in_executor(None, lambda: subprocess.run(
            vnet_cmd("ctl", str(mgmt), "port/remove", "3"), capture_output=True, text=True,
            timeout=20))
        assert r.returncode == 0 and "port 3 removed" in r.stdout, r.stdout + r.stderr
        await asyncio.wait_for(b.wait_closed(), 10)
        a.close()

    try:
        run(main)
    finally:
        reader.close()
        sess.close()


def test_tap_port_and_pcap_with_vde_plug2tap_and_tshark(tmp_path, procs, netns_factory):
    """`-t`/`--port tap://` and `--pcap`: a kernel TAP (vnet's) and vde_plug2tap's ping, captured."""
    need_tool("vde_plug2tap", "ping", "tshark")
    ns1, ns2 = netns_factory("vdt"), netns_factory("vdt")
    t1, t2 = f"vt{uuid.uuid4().hex[:8]}", f"vu{uuid.uuid4().hex[:8]}"
    d, mgmt, cap = tmp_path / "sw", tmp_path / "mgmt", tmp_path / "sw.pcapng"
    vnet_switch(procs, d, "-M", str(mgmt), "--pcap", str(cap),
                "--port", f"tap://{t1}?netns={ns1.name}")
    procs.start(["ip", "netns", "exec", ns2.name, "vde_plug2tap", "-s", str(d), t2])
    end = time.monotonic() + 10
    while ns2.run("ip", "link", "show", t2, check=False).returncode != 0:
        assert time.monotonic() < end, "vde_plug2tap did not create its TAP"
        time.sleep(0.05)
    ns1.run("ip", "addr", "add", "10.78.0.1/24", "dev", t1)
    ns2.run("ip", "addr", "add", "10.78.0.2/24", "dev", t2)
    ns2.run("ip", "link", "set", t2, "up")
    r = ns1.run("ping", "-c", "3", "-i", "0.2", "-W", "2", "10.78.0.2", check=False)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    out = subprocess.run(vnet_cmd("ctl", str(mgmt), "port/print"), capture_output=True,
                         text=True, timeout=10).stdout
    assert f"tap://{t1}" in out and ": vde_plug2tap: user=" in out, out
    subprocess.run(vnet_cmd("ctl", str(mgmt), "pcap/stop"), check=True, capture_output=True,
                   timeout=10)
    t = subprocess.run(["tshark", "-r", str(cap), "-Y", "icmp", "-T", "fields", "-e", "icmp.type"],
                       capture_output=True, text=True, timeout=30)
    types = t.stdout.split()
    # each echo request/reply is seen entering one port and leaving the other
    assert types.count("8") >= 6 and types.count("0") >= 6, t.stdout + t.stderr
    m = subprocess.run(["tshark", "-r", str(cap), "-Y", "_ws.malformed"], capture_output=True,
                       text=True, timeout=30)
    assert m.stdout.strip() == "", m.stdout


def test_socket_modes_decide_who_may_plug_in(procs):
    """-m 0600 keeps other users out (one-line error); -m 0666 lets them in (vde_plug and vnet)."""
    need_root()
    need_tool("setpriv", "vde_plug")
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    base = Path(tempfile.mkdtemp(prefix="vnetmode"))
    try:
        os.chmod(base, 0o755)
        closed, open_ = base / "closed", base / "open"
        vnet_switch(procs, closed, "-M", str(base / "m1"))
        vnet_switch(procs, open_, "-m", "0666", "-M", str(base / "m2"))
        assert (os.stat(open_).st_mode & 0o7777) == 0o2777
        line = one_line_error([*nobody, *vnet_cmd("plug", f"vde://{closed}")])
        assert "permission denied" in line, line
        # nobody's clients join the open switch: vnet's plug and Debian's vde_plug
        p1 = procs.start([*nobody, *vnet_cmd("plug", f"vde://{open_}")], stdin=subprocess.PIPE)
        p2 = procs.start([*nobody, "vde_plug", str(open_)], stdin=subprocess.PIPE)
        end = time.monotonic() + 10
        while True:
            out = subprocess.run(vnet_cmd("ctl", str(base / "m2"), "port/print"),
                                 capture_output=True, text=True, timeout=10).stdout
            if out.count("Current User: uid 65534") == 2:
                break
            assert p1.poll() is None and p2.poll() is None, p1.stderr.read() + p2.stderr.read()
            assert time.monotonic() < end, out
            time.sleep(0.1)
    finally:
        for p in procs.procs:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(base, ignore_errors=True)


def crosses(d1: Path, d2: Path) -> list[int]:
    async def main(rt):
        pa, pb = Port(), Port()
        got: list[bytes] = []
        pb.receive = got.append
        a = await connect(rt, pa, str(d1))
        b = await connect(rt, pb, str(d2))
        end = time.monotonic() + 10
        while not got:  # the cable may still be coming up: resend until one crosses
            assert time.monotonic() < end, "nothing crossed"
            pa.send(frame(BCAST, A, 114))
            await asyncio.sleep(0.1)
        a.close()
        b.close()
        return [len(f) for f in got[:1]]

    return run(main)


def test_cables_between_vnet_switches_wirefilter_and_port_url(tmp_path, procs):
    """Debian's wirefilter joins two vnet switches; so does `--port vde://` (a vnet cable)."""
    need_tool("wirefilter")
    d1, d2, d3 = tmp_path / "s1", tmp_path / "s2", tmp_path / "s3"
    vnet_switch(procs, d1)
    vnet_switch(procs, d2)
    # wirefilter exits on stdin EOF too: give it a pipe we keep open
    procs.start(["wirefilter", "-v", f"{d1}:{d2}"], stdin=subprocess.PIPE)
    assert crosses(d1, d2) == [114]
    vnet_switch(procs, d3, "--port", f"vde://{d1}")
    assert crosses(d3, d1) == [114]
