"""Unicast frames/s through the vnet switch vs Debian's vde_switch, same C client on both.

    python3 bench/bench_switch_fps.py [--seconds 3] [--sizes 60,1514]

Builds bench/vdeblast.c (a minimal libvdeplug-protocol client) with gcc, then for
each switch and frame size: a receiver port announces its MAC, a sender blasts
unicast frames at it for N seconds with blocking sends (so the sender is flow
controlled by the switch's input socket), and the receiver counts what arrives.
Prints delivered frames/s for both and the ratio vnet / vde_switch.
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


def measure(exe: Path, sockdir: Path, size: int, seconds: float) -> tuple[int, int]:
    recv = subprocess.Popen([str(exe), "recv", str(sockdir), str(seconds + 1.5), DST],
                            stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None
    recv.stdout.readline()  # "ready"
    time.sleep(0.2)
    sent = int(subprocess.run([str(exe), "send", str(sockdir), str(size), str(seconds), DST],
                              capture_output=True, text=True, check=True).stdout)
    got = int(recv.communicate(timeout=seconds + 10)[0].strip() or 0)
    return sent, got


def start_switch(kind: str, sockdir: Path) -> subprocess.Popen:
    if kind == "vde_switch":
        cmd = ["vde_switch", "-s", str(sockdir)]
    else:
        cmd = [sys.executable, "-m", "vnet", "switch", "-s", str(sockdir)]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait_for(sockdir / "ctl")
    time.sleep(0.3)
    return p


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--sizes", default="60,1514")
    args = ap.parse_args()
    if shutil.which("vde_switch") is None or shutil.which("gcc") is None:
        print("needs vde_switch (apt-get install vde2) and gcc", file=sys.stderr)
        return 2
    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[tuple[str, int], tuple[int, int]] = {}
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        exe = build_client(tmp)
        for kind in ("vde_switch", "vnet"):
            for size in sizes:
                sockdir = tmp / f"{kind}-{size}"
                sw = start_switch(kind, sockdir)
                try:
                    results[kind, size] = measure(exe, sockdir, size, args.seconds)
                finally:
                    sw.terminate()
                    try:
                        sw.wait(5)
                    except subprocess.TimeoutExpired:
                        sw.kill()
    print(f"unicast frames/s delivered, {args.seconds:g} s per point, 2 ports, "
          f"C client bench/vdeblast.c, {os.cpu_count()} CPUs")
    print(f"{'size':>6} {'vde_switch':>12} {'vnet':>12} {'ratio':>7}   (offered by sender: vde / vnet)")
    for size in sizes:
        vs, vg = results["vde_switch", size]
        ns, ng = results["vnet", size]
        v = vg / args.seconds
        n = ng / args.seconds
        print(f"{size:>6} {v:>12,.0f} {n:>12,.0f} {n / v if v else float('nan'):>7.2f}"
              f"   ({vs / args.seconds:,.0f} / {ns / args.seconds:,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
