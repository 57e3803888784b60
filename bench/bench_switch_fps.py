"""Unicast frames/s through the vnet switch vs Debian's vde_switch, same C client on both.

    python3 bench/bench_switch_fps.py [--seconds 3] [--sizes 60,1514]

Builds bench/vdeblast.c (a minimal libvdeplug-protocol client) with gcc, then for
each switch and frame size: a receiver port announces its MAC, a sender blasts
unicast frames at it for N seconds with blocking sends (so the sender is flow
controlled by the switch's input socket), and the receiver counts what arrives.
Prints delivered frames/s for both and the ratio vnet / vde_switch (median of
--repeat runs), and the switch process's CPU time per frame it received
(user+system from /proc), which depends less on what else the machine is doing.

vnet runs as `vnet switch` with its defaults (the compiled fast path and flow
control) and, with --variants, also as `--no-flow-control` (drops when a client's
queue is full, as vde_switch does) and `--no-fast-path` (the pure-Python data path).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DST = "02:00:00:00:aa:01"


def build_client(tmp: Path) -> Path:
    exe = tmp / "vdeblast"
    subprocess.run(["gcc", "-O2", "-w", "-o", str(exe), str(HERE / "vdeblast.c")], check=True)
    return exe


def wait_for(path: Path, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > end:
            raise RuntimeError(f"{path} did not appear")
        time.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(exe: Path, sockdir: Path, size: int, seconds: float,
            pid: int) -> tuple[int, int, float]:
    recv = subprocess.Popen([str(exe), "recv", str(sockdir), str(seconds + 1.5), DST],
                            stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None
    recv.stdout.readline()  # "ready"
    time.sleep(0.2)
    cpu0 = cpu_seconds(pid)
    sent = int(subprocess.run([str(exe), "send", str(sockdir), str(size), str(seconds), DST],
                              capture_output=True, text=True, check=True).stdout)
    cpu = cpu_seconds(pid) - cpu0
    got = int(recv.communicate(timeout=seconds + 10)[0].strip() or 0)
    return sent, got, cpu


VARIANTS = {"vnet": [], "vnet --no-flow-control": ["--no-flow-control"],
            "vnet --no-fast-path": ["--no-fast-path"]}


def start_switch(kind: str, sockdir: Path) -> subprocess.Popen:
    if kind == "vde_switch":
        cmd = ["vde_switch", "-s", str(sockdir)]
    else:
        cmd = [sys.executable, "-m", "vnet", "switch", "-s", str(sockdir), *VARIANTS[kind]]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_for(sockdir / "ctl")
    time.sleep(0.3)
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--sizes", default="60,1514")
    ap.add_argument("--repeat", type=int, default=3, help="runs per point; the median is shown")
    ap.add_argument("--variants", action="store_true",
                    help="also run vnet --no-flow-control and --no-fast-path")
    args = ap.parse_args()
    if shutil.which("vde_switch") is None or shutil.which("gcc") is None:
        print("needs vde_switch (apt-get install vde2) and gcc", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[str, int], tuple[int, int, float]] = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        exe = build_client(tmp)
        kinds = ["vde_switch", *(VARIANTS if args.variants else ["vnet"])]
        for kind in kinds:
            for size in sizes:
                sockdir = tmp / f"{kind.replace(' ', '')}-{size}"
                sw = start_switch(kind, sockdir)
                try:
                    runs = sorted((measure(exe, sockdir, size, args.seconds, sw.pid)
                                   for _ in range(max(1, args.repeat))), key=lambda r: r[1])
                    results[kind, size] = runs[len(runs) // 2]
                finally:
                    sw.terminate()
                    try:
                        sw.wait(5)
                    except subprocess.TimeoutExpired:
                        sw.kill()
    print(f"unicast frames/s delivered, {args.seconds:g} s per run, median of {args.repeat}, "
          f"2 ports, C client bench/vdeblast.c, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'size':>6} {'vde_switch':>12} {'vnet':>12} {'ratio':>7}   "
          f"{'offered vde / vnet':>20}   {'switch CPU us/frame vde / vnet':>30}")
    for kind in kinds[1:]:
        if len(kinds) > 2:
            print(f"-- {kind}")
        for size in sizes:
            vs, vg, vc = results["vde_switch", size]
            ns, ng, nc = results[kind, size]
            v = vg / args.seconds
            n = ng / args.seconds
            print(f"{size:>6} {v:>12,.0f} {n:>12,.0f} {n / v if v else float('nan'):>7.2f}   "
                  f"{vs / args.seconds:>9,.0f} / {ns / args.seconds:<9,.0f}   "
                  f"{vc * 1e6 / max(vs, 1):>14.2f} / {nc * 1e6 / max(ns, 1):<.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
