"""The VDE client: URL forms, handshake details and errors; also against vdeplug4's switch://."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time

import pytest

from tests.conftest import need_tool
from vnet.link.port import Port
from vnet.link.switch import Switch
from vnet.phy.url import UrlError, attach, parse_url
from vnet.phy.vde_client import VdeClientError, parse_target
from vnet.phy.vde_server import VdeServer
from vnet.runtime.realtime import AsyncioRuntime, new_event_loop

BCAST = b"\xff" * 6
SRC = bytes.fromhex("020000000c01")


def run(coro_fn, *args):
    loop = new_event_loop()
    try:
        return loop.run_until_complete(coro_fn(AsyncioRuntime(loop), *args))
    finally:
        loop.close()


@pytest.mark.parametrize("text,want", [
    ("vde:///tmp/sw", ("/tmp/sw", 0, False)),
    ("/tmp/sw", ("/tmp/sw", 0, False)),
    ("vde:///tmp/sw[3]", ("/tmp/sw", 3, False)),
    ("/tmp/sw[12]", ("/tmp/sw", 12, False)),
    ("vde:///tmp/sw[0]", ("/tmp/sw", 0, True)),
    ("vde:///tmp/sw?port=4", ("/tmp/sw", 4, False)),
])
def test_url_forms(text, want):
    assert parse_target(parse_url(text)) == want


def test_bad_urls_say_how_to_write_them(tmp_path):
    with pytest.raises(VdeClientError, match="must be a number"):
        parse_target(parse_url("vde:///tmp/sw[eth]"))

    async def main(rt):
        with pytest.raises(UrlError, match="unknown option"):
            await attach("vde:///tmp/sw?colour=red", Port(), rt)
        with pytest.raises(UrlError, match="octal"):
            await attach("vde:///tmp/sw?mode=rw", Port(), rt)
        with pytest.raises(VdeClientError, match="no VDE switch at .*vnet switch -s"):
            await attach(f"vde://{tmp_path}/none", Port(), rt)
        stale = tmp_path / "stale"
        stale.mkdir()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(str(stale / "ctl"))
        s.close()
        with pytest.raises(VdeClientError, match="stale ctl"):
            await attach(f"vde://{stale}", Port(), rt)
        # a peer that accepts but never answers
        mute = tmp_path / "mute"
        mute.mkdir()
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ls.bind(str(mute / "ctl"))
        ls.listen(1)
        import vnet.phy.vde_client as vc
        old, vc.HANDSHAKE_TIMEOUT = vc.HANDSHAKE_TIMEOUT, 0.3
        try:
            with pytest.raises(VdeClientError, match="did not answer"):
                await attach(f"vde://{mute}", Port(), rt)
        finally:
            vc.HANDSHAKE_TIMEOUT = old
            ls.close()
        assert [n for n in os.listdir(mute) if n != "ctl"] == []  # nothing left behind

    run(main)


def test_handshake_sends_description_and_sets_socket_mode(tmp_path):
    d = tmp_path / "sw"

    async def main(rt):
        sw = Switch(rt)
        srv = VdeServer(sw, rt, str(d))
        srv.start()
        seen: list[tuple[int, str]] = []
        orig = srv._new_port

        def spy(ep, client, want, port0, descr):
            seen.append((os.stat(client).st_mode & 0o777, descr))
            return orig(ep, client, want, port0, descr)

        srv._new_port = spy
        p = Port()
        att = await attach(f"vde://{d}[6]?descr=lab-a", p, rt)
        assert att.port_number == 6
        assert seen[0][0] == 0o700 and seen[0][1].startswith("lab-a user=")
        assert f"pid={os.getpid()}" in seen[0][1]
        assert sw.port(6).port.description == seen[0][1]
        att.close()
        srv.close()
        sw.close()

    run(main)


def test_vnet_client_on_vdeplug4_switch_with_jumbo_frames(tmp_path):
    need_tool("vde_plug")
    d = tmp_path / "v4"
    # vdeplug4's own switch (switch://) speaks the same protocol and takes 9000-byte frames
    proc = subprocess.Popen(["vde_plug", "null://", f"switch://{d}"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 10
        while not (d / "ctl").exists():
            assert proc.poll() is None and time.monotonic() < end, "vde_plug switch:// failed"
            time.sleep(0.05)

        async def main(rt):
            a, b = Port(), Port()
            got: list[bytes] = []
            b.receive = got.append
            ca = await attach(f"vde://{d}", a, rt)
            cb = await attach(f"vde://{d}", b, rt)
            f = BCAST + SRC + b"\x88\xb5" + bytes(range(256)) * 35
            a.send(f)
            end = rt.now() + 5
            while not got and rt.now() < end:
                await asyncio.sleep(0.02)
            assert got == [f] and len(f) == 8974
            ca.close()
            cb.close()

        run(main)
    finally:
        proc.kill()
        proc.wait()
