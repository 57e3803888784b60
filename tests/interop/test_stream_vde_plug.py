"""Stream cables against Debian's vde_plug and vde_switch.

   test Port --cmd://vde_plug--> vde_switch <--vde_plug = vnet plug tcp://--> tcp-listen Port

Frames cross both ways byte-identical, whether the cable is `dpipe vde_plug = vnet plug URL`
or `vnet plug URL1 URL2`; and `vnet plug` keeps every frame when a read on its stdin ends
between the two length bytes (where vde_plug itself loses frames).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import need_tool
from tests.util import recorders
from vnet.link.port import Port
from vnet.phy.url import attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.wire.stream import encode

A = bytes.fromhex("020000000a01")
B = bytes.fromhex("020000000b02")
BCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes, n: int, tag: int) -> bytes:
    return dst + src + b"\x88\xb5" + bytes([tag & 0xFF]) * (n - 14)


@pytest.fixture
def vde_switch(tmp_path):
    need_tool("vde_switch", "vde_plug", "dpipe")
    d = tmp_path / "sw"
    # vde_switch exits on stdin EOF, so it gets a pipe we keep open.
    proc = subprocess.Popen(["vde_switch", "-s", str(d)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 10
        while not (d / "ctl").exists():
            assert proc.poll() is None and time.monotonic() < end, "vde_switch did not start"
            time.sleep(0.05)
        yield str(d)
    finally:
        proc.kill()
        proc.wait()


def vnet_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "vnet", *args]


async def until(cond, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("how", ["dpipe", "two-urls"])
def test_vnet_plug_cable_into_vde_switch(vde_switch, how):
    async def main(rt: AsyncioRuntime) -> None:
        (x, gx), (y, gy) = recorders("x", "y")
        lis = await attach("tcp-listen://127.0.0.1:0", y, rt)
        url = f"tcp://127.0.0.1:{lis.address[1]}"
        if how == "dpipe":
            cable = ["dpipe", "vde_plug", f"vde://{vde_switch}", "=", *vnet_cmd("plug", url)]
        else:
            cable = vnet_cmd("plug", f"cmd://vde_plug vde://{vde_switch}", url)
        proc = subprocess.Popen(cable, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        xa = await attach(f"cmd://vde_plug vde://{vde_switch}", x, rt)
        try:
            await until(lambda: lis.peer is not None or proc.poll() is not None)
            assert lis.peer is not None, proc.stderr.read().decode() if proc.stderr else ""
            # Broadcast until both plugs are in the switch (port allocation is asynchronous).
            n = 0
            while not gx:
                y.send(frame(BCAST, B, 60, n))
                n += 1
                await asyncio.sleep(0.05)
                assert n < 200, "no frame crossed"
            to_y = [frame(B, A, size, i) for i, size in enumerate((60, 64, 200, 1000, 1514) * 20)]
            for f in to_y:
                x.send(f)
                await asyncio.sleep(0.002)  # vde_switch drops on a full socket: pace
            await until(lambda: gy.count(to_y[-1]) == 1 or len(gy) >= len(to_y))
            assert [f for f in gy if f[6:12] == A] == to_y
            to_x = [frame(A, B, 60 + 13 * i, i) for i in range(50)]
            gx.clear()
            for f in to_x:
                y.send(f)
                await asyncio.sleep(0.002)
            await until(lambda: len(gx) >= len(to_x))
            assert gx == to_x
        finally:
            xa.close()
            lis.close()
            await asyncio.sleep(0.1)
            stop(proc)

    run(main)


def test_vnet_plug_survives_read_split_inside_header():
    """The exact sequence that makes vde_plug lose frames 4-6 (facts/vde.md 1.7)."""
    need_tool("vde_plug")  # the comparison peer; documented in the same section

    async def main(rt: AsyncioRuntime) -> None:
        y = Port("y")
        gy: list[bytes] = []
        y.receive = gy.append
        lis = await attach("tcp-listen://127.0.0.1:0", y, rt)
        proc = subprocess.Popen(vnet_cmd("plug", f"tcp://127.0.0.1:{lis.address[1]}"),
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
        try:
            await until(lambda: lis.peer is not None)
            frames = [frame(BCAST, A, 60 + i, i) for i in range(3, 7)]
            recs = [encode(f) for f in frames]
            assert proc.stdin is not None
            proc.stdin.write(recs[0] + recs[1][:1])
            proc.stdin.flush()
            await asyncio.sleep(0.3)  # let vnet plug read the first chunk on its own
            proc.stdin.write(recs[1][1:] + recs[2] + recs[3])
            proc.stdin.flush()
            await until(lambda: len(gy) >= 4)
            assert gy == frames
            proc.stdin.close()
            await until(lambda: proc.poll() is not None)  # stdin EOF ends vnet plug
            assert proc.returncode == 0
        finally:
            lis.close()
            stop(proc)

    run(main)


def test_vnet_plug_default_switch_cable_between_two_vde_switches(tmp_path):
    """`dpipe vnet plug = vde_plug SW2`, where vnet plug finds SW1 as ~/.vdeplug/default."""
    need_tool("vde_switch", "vde_plug", "dpipe")
    procs: list[subprocess.Popen] = []
    dirs = [tmp_path / "sw1", tmp_path / "sw2"]
    try:
        for d in dirs:
            procs.append(subprocess.Popen(["vde_switch", "-s", str(d)], stdin=subprocess.PIPE,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        end = time.monotonic() + 10
        while not all((d / "ctl").exists() for d in dirs):
            assert time.monotonic() < end, "vde_switch did not start"
            time.sleep(0.05)
        home = tmp_path / "home"
        (home / ".vdeplug").mkdir(parents=True)
        (home / ".vdeplug" / "default").symlink_to(dirs[0])
        env = dict(os.environ, HOME=str(home))
        cable = subprocess.Popen(["dpipe", *vnet_cmd("plug"), "=", "vde_plug", f"vde://{dirs[1]}"],
                                 env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(cable)

        async def main(rt: AsyncioRuntime) -> None:
            (x, gx), (y, gy) = recorders("x", "y")
            xa = await attach(f"cmd://vde_plug vde://{dirs[0]}", x, rt)
            ya = await attach(f"cmd://vde_plug vde://{dirs[1]}", y, rt)
            try:
                n = 0
                while not gy:
                    x.send(frame(BCAST, A, 60, n))
                    n += 1
                    await asyncio.sleep(0.05)
                    assert n < 200, "no frame crossed the vnet plug cable"
                sent = [frame(A, B, 100 + i, i) for i in range(30)]
                for f in sent:
                    y.send(f)
                    await asyncio.sleep(0.002)
                await until(lambda: len(gx) >= len(sent))
                assert gx == sent
            finally:
                xa.close()
                ya.close()

        run(main)
    finally:
        for p in reversed(procs):
            stop(p)


def test_vnet_plug_equals_command_and_descr(tmp_path):
    """`vnet plug -D cable1 vde://SW1 = vde_plug vde://SW2`, as one would write vde_plug."""
    import socket

    need_tool("vde_switch", "vde_plug")
    procs: list[subprocess.Popen] = []
    dirs = [tmp_path / "sw1", tmp_path / "sw2"]
    mgmt = tmp_path / "mgmt1"
    try:
        for i, d in enumerate(dirs):
            extra = ["-M", str(mgmt)] if i == 0 else []
            procs.append(subprocess.Popen(["vde_switch", "-s", str(d), *extra],
                                          stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        end = time.monotonic() + 10
        while not (all((d / "ctl").exists() for d in dirs) and mgmt.exists()):
            assert time.monotonic() < end, "vde_switch did not start"
            time.sleep(0.05)
        pidfile = tmp_path / "plug.pid"
        cable = subprocess.Popen(vnet_cmd("plug", "-D", "cable1", "-p", str(pidfile),
                                          f"vde://{dirs[0]}", "=", "vde_plug", f"vde://{dirs[1]}"),
                                 stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(cable)

        async def main(rt: AsyncioRuntime) -> None:
            x, y = Port("x"), Port("y")
            gy: list[bytes] = []
            y.receive = gy.append
            xa = await attach(f"cmd://vde_plug vde://{dirs[0]}", x, rt)
            ya = await attach(f"cmd://vde_plug vde://{dirs[1]}", y, rt)
            try:
                n = 0
                while not gy:
                    x.send(frame(BCAST, A, 60, n))
                    n += 1
                    await asyncio.sleep(0.05)
                    assert n < 200, "no frame crossed: " + (
                        cable.stderr.read().decode() if cable.poll() is not None and cable.stderr
                        else "")
            finally:
                xa.close()
                ya.close()

        run(main)
        assert pidfile.read_text().strip() == str(cable.pid)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(str(mgmt))
            s.settimeout(5)
            s.sendall(b"port/print\n")
            text = b""
            while b"cable1" not in text:
                chunk = s.recv(4096)
                if not chunk:
                    break
                text += chunk
        assert b"cable1" in text, text.decode(errors="replace")
        stop(cable)  # SIGTERM: a clean exit that removes the pid file
        assert cable.returncode == 0 and not pidfile.exists()
    finally:
        for p in reversed(procs):
            stop(p)
