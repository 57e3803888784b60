"""PyTCP 3.0.9 as the reference peer for bench/bench_tcp_tap.py: bulk TCP goodput between
the Linux kernel and PyTCP over a TAP in a network namespace, measured the way the
bench measures the vnet host. Needs root (debootstrap, chroot, TAP, netns).

    python bench/pytcp_ref.py --setup                 # build the cache only (~3 min once)
    python bench/pytcp_ref.py [--mbytes 50] [--only k2v4,k2v6,v2k4,v2k6]
    python bench/bench_tcp_tap.py --with-pytcp        # vnet and PyTCP in one run

PyTCP 3.x needs Python >= 3.14, which this host lacks (and pip on 3.11 quietly picks
PyTCP 2.7.6). So setup() builds a Debian sid chroot with debootstrap (sid ships
python3.14), makes a venv in it and installs the three PyTCP 3.0.9 wheels fetched from
PyPI with `pip download`. Everything lives in a cache dir outside the repo
($VNET_BENCH_CACHE, default /var/cache/vnet-bench) and is reused when present.
PyTCP is GPL: it runs only as an external program; nothing of it is in this repo.

How one PyTCP run goes: a fresh namespace gets a persistent TAP with the kernel's
addresses; PyTCP (a small driver script passed with -c, using PyTCP's in-process API:
stack.init / add_interface / start and its BSD-style sockets) opens that TAP inside the
chroot with static addresses and takes commands on stdin, one transfer at a time.
kernel -> PyTCP: bench_tcp_tap's SENDER (64 KiB sendall) in the namespace; goodput =
bytes / (first byte .. EOF) taken on the PyTCP side, as for vnet. PyTCP -> kernel: the
driver sends 64 KiB chunks then closes; a kernel reader measures (first byte .. EOF),
as bench_tcp_tap's SINK does. Every transfer has a deadline: when it passes, the bytes
that arrived so far are reported as "did not finish" (and PyTCP is restarted if it
stopped answering).
PyTCP runs at its fastest: `python -O` (drops its `__debug__ and log(f"...")` calls, whose
f-strings are built per packet even when the channel is off) and log channels cut to
"stack"; `--no-O` keeps the log calls.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

CACHE = os.environ.get("VNET_BENCH_CACHE", "/var/cache/vnet-bench")
ROOT = os.path.join(CACHE, "pytcp-sid")
WHEELS = os.path.join(CACHE, "pytcp-wheels")
VENV = "/opt/pytcp-venv"  # inside the chroot
VERSION = "3.0.9"
DISTS = ("pytcp", "pytcp-net_addr", "pytcp-net_proto")
MARKER = os.path.join(ROOT, "opt", f"pytcp-{VERSION}.ok")
MIRROR = "http://deb.debian.org/debian"

K4, P4, K6, P6 = "10.89.0.1", "10.89.0.2", "fd89::1", "fd89::2"
PMAC = "02:00:00:89:00:02"

# The PyTCP side: runs under the chroot's Python 3.14, talks line-based JSON on stdio.
DRIVER = r'''
import json, sys, time
from pytcp import stack
from pytcp.runtime import socket as ps
from net_addr import Ip4IfAddr, Ip6Address, Ip6IfAddr, MacAddress

tap, mac, a4, a6, mtu = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
static6 = sys.argv[6:8]  # optional: kernel's IPv6 address and MAC, as a permanent ND entry
stack.LOG__CHANNEL.clear()
stack.LOG__CHANNEL.add("stack")
stack.init()
ifargs = stack.initialize_interface__tap(tap, mac_address=MacAddress(mac))
ifargs["mtu"] = mtu
ifx = stack.add_interface(**ifargs, ip4_host=Ip4IfAddr(a4), ip4_dhcp=False,
                          ip6_host=Ip6IfAddr(a6), ip6_gua_autoconfig=False)
if static6:
    stack.neighbor.interface(ifx).add(ip=Ip6Address(static6[0]), mac=MacAddress(static6[1]))
stack.start(wait_for_dhcp_bind=False)
out = sys.stdout
out.write(json.dumps({"ready": True}) + "\n"); out.flush()

def fam(a):
    return ps.AF_INET6 if ":" in a else ps.AF_INET

def rx(addr, port, limit):
    ls = ps.socket(fam(addr), ps.SOCK_STREAM)
    ls.setsockopt(ps.SOL_SOCKET, ps.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen()
    out.write(json.dumps({"listening": port}) + "\n"); out.flush()
    deadline = time.monotonic() + limit
    c, _ = ls.accept(timeout=limit)
    n, t0, eof = 0, None, False
    while time.monotonic() < deadline:
        try:
            d = c.recv(None, timeout=0.5)
        except TimeoutError:
            continue
        if t0 is None:
            t0 = time.monotonic()
        if not d:
            eof = True
            break
        n += len(d)
    dt = time.monotonic() - (t0 or time.monotonic())
    c.close()
    ls.close()
    return {"bytes": n, "seconds": dt, "eof": eof}

def tx(addr, port, n, nodelay, limit):
    s = ps.socket(fam(addr), ps.SOCK_STREAM)
    if nodelay:
        s.setsockopt(ps.IPPROTO_TCP, ps.TCP_NODELAY, 1)
    s.connect((addr, port))
    s.setsockopt(ps.SOL_SOCKET, ps.SO_SNDTIMEO, 0.5)  # so the deadline is seen
    chunk = bytes(range(256)) * 256
    deadline = time.monotonic() + limit
    left = n
    while left > 0 and time.monotonic() < deadline:
        try:
            left -= s.send(chunk if left >= len(chunk) else chunk[:left])
        except BlockingIOError:
            pass
    if left:
        s.abort()
    else:
        s.close()
    return {"sent": n - left}

for line in sys.stdin:
    cmd = line.split()
    if not cmd or cmd[0] == "quit":
        break
    try:
        if cmd[0] == "rx":
            r = rx(cmd[1], int(cmd[2]), float(cmd[3]))
        else:
            r = tx(cmd[1], int(cmd[2]), int(cmd[3]), cmd[4] == "1", float(cmd[5]))
    except Exception as e:
        r = {"error": f"{type(e).__name__}: {e}"}
    out.write(json.dumps(r) + "\n"); out.flush()
stack.stop()
'''

# Kernel-side reader (like bench_tcp_tap's SINK) with a deadline, so a transfer that
# does not finish still reports how far it got.
SINK = r'''
import json, socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
ls = socket.socket(fam, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(1)
deadline = time.monotonic() + float(sys.argv[3])
ls.settimeout(max(deadline - time.monotonic(), 0.1))
print("ready", flush=True)
n, t0, eof = 0, None, False
try:
    c, _ = ls.accept()
    buf = bytearray(1 << 18)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        c.settimeout(left)
        k = c.recv_into(buf)
        if t0 is None:
            t0 = time.monotonic()
        if not k:
            eof = True
            break
        n += k
except (TimeoutError, OSError):
    pass
dt = time.monotonic() - (t0 or time.monotonic())
print(json.dumps({"bytes": n, "seconds": dt, "eof": eof}), flush=True)
'''

PATHS = {"k2v4": ("rx", P4, K4), "k2v6": ("rx", P6, K6),
         "v2k4": ("tx", K4, P4), "v2k6": ("tx", K6, P6)}


class SetupError(Exception):
    """Setup failed; the message says what to do."""


def _run(cmd: list[str], what: str, log: str | None = None) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if log:
        with open(log, "w") as f:
            f.write(r.stdout + r.stderr)
    if r.returncode:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or [""]
        raise SetupError(f"{what} failed (exit {r.returncode}): {tail[0]}"
                         + (f"; log: {log}" if log else ""))


def setup(verbose: bool = True) -> str:
    """Build (once) the sid chroot with python3.14 and PyTCP 3.0.9; return its root."""
    if os.path.exists(MARKER):
        return ROOT
    say = print if verbose else (lambda *a, **k: None)
    os.makedirs(CACHE, exist_ok=True)
    if not os.path.exists(os.path.join(ROOT, "usr/bin/python3.14")):
        if not shutil.which("debootstrap"):
            say("pytcp_ref: installing debootstrap", flush=True)
            _run(["apt-get", "install", "-y", "debootstrap"], "apt-get install debootstrap")
        tmp = ROOT + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(ROOT, ignore_errors=True)
        say(f"pytcp_ref: debootstrap sid into {ROOT} (a few minutes, once)", flush=True)
        _run(["debootstrap", "--variant=minbase",
              "--include=python3.14,python3.14-venv,ca-certificates", "sid", tmp, MIRROR],
             "debootstrap", os.path.join(CACHE, "debootstrap.log"))
        os.rename(tmp, ROOT)
    wheels = [d.replace("-", "_") for d in DISTS]
    have = os.listdir(WHEELS) if os.path.isdir(WHEELS) else []
    if not all(any(f.startswith(f"{w}-{VERSION}-") for f in have) for w in wheels):
        say("pytcp_ref: pip download PyTCP wheels for Python 3.14", flush=True)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
              "--python-version", "3.14", "-d", WHEELS] + [f"{d}=={VERSION}" for d in DISTS],
             "pip download")
    inroot = os.path.join(ROOT, "opt", "pytcp-wheels")
    os.makedirs(inroot, exist_ok=True)
    for f in os.listdir(WHEELS):
        shutil.copy(os.path.join(WHEELS, f), inroot)
    if not os.path.exists(os.path.join(ROOT, VENV.lstrip("/"), "bin", "python")):
        _run(["chroot", ROOT, "/usr/bin/python3.14", "-m", "venv", VENV], "venv in chroot")
    _run(["chroot", ROOT, f"{VENV}/bin/python", "-m", "pip", "install", "--no-index",
          "--find-links", "/opt/pytcp-wheels"] + [f"{d}=={VERSION}" for d in DISTS],
         "pip install in chroot")
    r = subprocess.run(["chroot", ROOT, f"{VENV}/bin/python", "-c",
                        "import pytcp; print(pytcp.__version__)"], capture_output=True, text=True)
    if r.stdout.strip() != VERSION:
        raise SetupError(f"PyTCP in the chroot reports {r.stdout.strip()!r}, want {VERSION}; "
                         f"remove {ROOT} and retry")
    with open(MARKER, "w") as f:
        f.write(VERSION + "\n")
    return ROOT


@dataclass
class Result:
    """One PyTCP transfer. mbit is None when nothing arrived."""
    key: str
    mbit: float | None
    nbytes: int
    want: int
    seconds: float
    finished: bool
    note: str = ""

    def text(self) -> str:
        if self.mbit is None:
            return f"{self.key}: PyTCP did not finish ({self.note or 'no data'})"
        s = f"{self.key}: PyTCP {self.mbit:.2f} Mbit/s"
        if not self.finished:
            s += (f" (did not finish: {self.nbytes} of {self.want} B in {self.seconds:.0f} s"
                  f"{'; ' + self.note if self.note else ''})")
        elif self.note:
            s += f" ({self.note})"
        return s


@dataclass
class _Peer:
    """The PyTCP process on the TAP, driven over its stdio."""
    proc: subprocess.Popen
    log: str
    lines: list[str] = field(default_factory=list)

    def read(self, timeout: float) -> dict | None:
        end = time.monotonic() + timeout
        out = self.proc.stdout
        while True:
            left = end - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([out], [], [], 0)[0]:
                return None
            if select.select([out], [], [], left)[0]:
                line = out.readline()
                if not line:
                    return None
                try:
                    return json.loads(line)
                except ValueError:
                    continue

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    def tail(self) -> str:
        try:
            with open(self.log) as f:
                lines = [x.strip() for x in f if x.strip()]
            return lines[-1][:200] if lines else ""
        except OSError:
            return ""


def _ns(ns: str, *cmd: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, *cmd], check=True, capture_output=True)


def _start_peer(ns: str, tap: str, mtu: int, optimize: bool, static6: list[str]) -> _Peer:
    log = os.path.join(CACHE, "pytcp-last.log")
    py = [f"{VENV}/bin/python"] + (["-O"] if optimize else [])
    # ip netns exec gives us a private mount namespace: the /dev bind ends with the process.
    inner = (f"mount --bind /dev {ROOT}/dev && exec chroot {ROOT} \"$@\"")
    cmd = ["ip", "netns", "exec", ns, "sh", "-c", inner, "sh", *py, "-c", DRIVER,
           tap, PMAC, f"{P4}/24", f"{P6}/64", str(mtu), *static6]
    with open(log, "w") as errf:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=errf, text=True, bufsize=1)
    peer = _Peer(proc, log)
    if not (peer.read(60) or {}).get("ready"):
        peer.stop()
        raise SetupError(f"PyTCP did not come up on {tap}: {peer.tail()}")
    # Bring-up does DAD and ARP probes; wait until the kernel reaches both addresses.
    for addr in (P4, P6):
        for _ in range(40):
            if subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", addr],
                              capture_output=True).returncode == 0:
                break
        else:
            peer.stop()
            raise SetupError(f"PyTCP at {addr} does not answer ping: {peer.tail()}")
    return peer


def _k2p(peer: _Peer, ns: str, key: str, dst: str, port: int, nbytes: int,
         limit: float) -> tuple[Result, bool]:
    from bench_tcp_tap import SENDER  # the very sender the vnet host gets

    peer.send(f"rx {dst} {port} {limit}")
    if not peer.read(10):
        return Result(key, None, 0, nbytes, 0, False, "PyTCP did not listen"), False
    snd = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SENDER, dst,
                            str(port), str(nbytes)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = peer.read(limit + 15)
    if snd.poll() is None:
        snd.kill()
    snd.wait()
    if r is None:
        return Result(key, None, 0, nbytes, limit, False, "PyTCP stopped answering"), False
    if "error" in r:
        return Result(key, None, 0, nbytes, 0, False, r["error"]), True
    n, dt = r["bytes"], r["seconds"]
    done = r["eof"] and n == nbytes
    mbit = n * 8 / dt / 1e6 if n and dt > 0 else None
    note = "" if done or not r["eof"] else f"EOF after {n} of {nbytes} B"
    return Result(key, mbit, n, nbytes, dt, done, note), True


def _p2k(peer: _Peer, ns: str, key: str, dst: str, port: int, nbytes: int, limit: float,
         nodelay: bool) -> tuple[Result, bool]:
    # The reader outlives PyTCP's own deadline a little, so PyTCP stops first.
    with open(os.path.join(CACHE, "sink-last.log"), "w") as errf:
        sink = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SINK, dst,
                                 str(port), str(limit + 2)], stdout=subprocess.PIPE,
                                stderr=errf, text=True)
    if not sink.stdout.readline():
        sink.wait()
        return Result(key, None, 0, nbytes, 0, False, "kernel reader did not start"), True
    peer.send(f"tx {dst} {port} {nbytes} {int(nodelay)} {limit}")
    try:
        out, _ = sink.communicate(timeout=limit + 15)
        r = json.loads(out.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        sink.kill()
        sink.wait()
        r = {"bytes": 0, "seconds": 0, "eof": False}
    ans = peer.read(15)  # PyTCP's own account: how much it handed to its socket
    alive = ans is not None
    n, dt = r["bytes"], r["seconds"]
    done = r["eof"] and n == nbytes
    note = "TCP_NODELAY" if nodelay else "default options"
    if r["eof"] and n != nbytes:
        note += f"; FIN after {n} of {nbytes} B"
    if ans and "error" in ans:
        note += f"; PyTCP: {ans['error']}"
    mbit = n * 8 / dt / 1e6 if n and dt > 0 else None
    return Result(key, mbit, n, nbytes, dt, done, note), alive


def measure(which: list[str], nbytes: int, mtu: int = 1500, limit: float = 120.0,
            nodelay: bool = True, optimize: bool = True, verbose: bool = True,
            slow_limit: float = 30.0, pcap: str | None = None, static_nd: bool = False
            ) -> dict[str, Result]:
    """Run PyTCP for each key of `which` among k2v4,k2v6,v2k4,v2k6 (others ignored).

    v2k* runs with PyTCP's default options, cut at `slow_limit` seconds (its sender is
    stop-and-wait there, ~0.25 Mbit/s, so 50 MB would take half an hour); with `nodelay`
    it is repeated with TCP_NODELAY as key+"nd" (PyTCP's Nagle check holds every
    timestamped full-sized segment, see docs/results-pytcp.md). `pcap`: a file to
    capture the TAP into (headers only, tshark), to look at what PyTCP did. `static_nd`:
    give PyTCP a permanent ND entry for the kernel, which sidesteps its IPv6 stall
    (PyTCP ignores NAs without a target link-layer option, so its unicast NUD probes of
    the kernel fail; docs/results-pytcp.md finding 3).
    """
    keys = [k for k in PATHS if k in which]
    if not keys:
        return {}
    setup(verbose)
    ns = f"pyref{uuid.uuid4().hex[:6]}"
    tap = f"tap{uuid.uuid4().hex[:8]}"  # PyTCP wants the 'tap' prefix
    results: dict[str, Result] = {}
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    peer: _Peer | None = None
    cap: subprocess.Popen | None = None
    try:
        _ns(ns, "ip", "link", "set", "lo", "up")
        _ns(ns, "ip", "tuntap", "add", "dev", tap, "mode", "tap")
        _ns(ns, "ip", "link", "set", tap, "mtu", str(mtu), "up")
        _ns(ns, "ip", "addr", "add", f"{K4}/24", "dev", tap)
        _ns(ns, "ip", "-6", "addr", "add", f"{K6}/64", "dev", tap, "nodad")
        if pcap:
            cap = subprocess.Popen(["ip", "netns", "exec", ns, "tshark", "-q", "-i", tap,
                                    "-s", "128", "-w", pcap], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
            time.sleep(2)
        static6: list[str] = []
        if static_nd:
            info = subprocess.run(["ip", "netns", "exec", ns, "ip", "-j", "link", "show", tap],
                                  check=True, capture_output=True, text=True).stdout
            static6 = [K6, json.loads(info)[0]["address"]]
        port = 6000
        jobs = [(k, False) for k in keys]
        jobs += [(k + "nd", True) for k in keys if k.startswith("v2k") and nodelay]
        for key, nd in jobs:
            port += 1
            if peer is None:
                peer = _start_peer(ns, tap, mtu, optimize, static6)
            kind, dst, _ = PATHS[key[:4]]
            if kind == "rx":
                res, alive = _k2p(peer, ns, key, dst, port, nbytes, limit)
            else:
                res, alive = _p2k(peer, ns, key, dst, port, nbytes,
                                  limit if nd else min(limit, slow_limit), nd)
            results[key] = res
            if verbose:
                print(res.text(), flush=True)
            if not alive:
                peer.stop()
                peer = None
    finally:
        if peer is not None:
            peer.stop()
        if cap is not None:
            cap.terminate()
            cap.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setup", action="store_true", help="only build the cache")
    ap.add_argument("--mbytes", type=float, default=50)
    ap.add_argument("--only", default="k2v4,k2v6,v2k4,v2k6")
    ap.add_argument("--mtu", type=int, default=1500)
    ap.add_argument("--limit", type=float, default=120, help="seconds per transfer")
    ap.add_argument("--slow-limit", type=float, default=30,
                    help="seconds for PyTCP -> kernel with default options (stop-and-wait)")
    ap.add_argument("--pcap", help="capture the TAP (headers) into this file")
    ap.add_argument("--static-nd", action="store_true",
                    help="permanent ND entry for the kernel in PyTCP (avoids its IPv6 stall)")
    ap.add_argument("--no-O", dest="optimize", action="store_false",
                    help="run PyTCP without python -O (its log calls stay in)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("pytcp_ref: needs root (debootstrap, chroot, TAP, netns); run under sudo",
              file=sys.stderr)
        return 2
    try:
        if args.setup:
            print(setup())
            return 0
        measure(args.only.split(","), int(args.mbytes * 1e6), args.mtu, args.limit,
                optimize=args.optimize, slow_limit=args.slow_limit, pcap=args.pcap,
                static_nd=args.static_nd)
    except SetupError as e:
        print(f"pytcp_ref: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
