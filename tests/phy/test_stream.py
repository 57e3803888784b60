"""Stream cables on loopback: tcp/tcp-listen between two in-process switches, cmd://, ssh://."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import sys

import pytest

from vnet.link.port import Port, connect
from vnet.link.switch import Switch
from vnet.phy.stream import ssh_argv
from vnet.phy.url import UrlError, attach
from vnet.runtime.realtime import AsyncioRuntime, run
from vnet.wire.stream import encode

A = bytes.fromhex("020000000001")
B = bytes.fromhex("020000000002")


def frame(dst: bytes, src: bytes, n: int, tag: int = 0) -> bytes:
    body = bytes([tag & 0xFF]) * (n - 14)
    return dst + src + b"\x88\xb5" + body


class Endpoint:
    def __init__(self, sw: Switch) -> None:
        self.port = Port("ep")
        self.got: list[bytes] = []
        self.port.receive = self.got.append
        connect(sw.add_port(), self.port)


async def until(cond, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def test_tcp_cable_between_two_switches_carries_jumbo_frames():
    async def main(rt: AsyncioRuntime) -> None:
        s1, s2 = Switch(rt, mtu=9000), Switch(rt, mtu=9000)
        e1, e2 = Endpoint(s1), Endpoint(s2)
        lis = await attach("tcp-listen://127.0.0.1:0", s1.add_port(), rt)
        host, port = lis.address
        cli = await attach(f"tcp://{host}:{port}", s2.add_port(), rt)
        try:
            await until(lambda: lis.peer is not None)
            sent1 = [frame(B, A, n, i) for i, n in enumerate((60, 1514, 9014, 42))]
            for f in sent1:
                e1.port.send(f)
            await until(lambda: len(e2.got) == len(sent1))
            assert e2.got == sent1
            back = [frame(A, B, 100 + i, i) for i in range(500)]
            for f in back:
                e2.port.send(f)
            await until(lambda: len(e1.got) == len(back))
            assert e1.got == back  # unicast (A was learned), in order, none lost
            # Only one peer at a time: a second connection is refused.
            extra = socket.create_connection((host, port))
            await until(lambda: lis.refused == 1)
            extra.close()
            # The peer leaves: the listener stays and takes the next one.
            cli.close()
            await until(lambda: lis.peer is None)
            cli = await attach(f"tcp://{host}:{port}", s2.add_port(), rt)
            await until(lambda: lis.peer is not None)
            e1.port.send(frame(B, A, 80, 7))
            await until(lambda: len(e2.got) == len(sent1) + 1)
        finally:
            cli.close()
            lis.close()
            s1.close()
            s2.close()

    run(main)


def test_cmd_cat_echoes_the_stream_and_survives_large_bursts():
    async def main(rt: AsyncioRuntime) -> None:
        port = Port("p")
        got: list[bytes] = []
        port.receive = got.append
        att = await attach("cmd://cat", port, rt)
        try:
            sent = [frame(B, A, 14 + (i * 37) % 9000, i) for i in range(300)]
            for f in sent:
                port.send(f)
            await until(lambda: len(got) + port.tx_dropped >= len(sent))
            # nothing is cut: every frame is delivered intact and in order, or counted as dropped
            it = iter(sent)
            assert all(any(g == f for f in it) for g in got)
            assert len(got) + port.tx_dropped == len(sent)
            assert len(got) > 0
        finally:
            att.close()
        assert att.process.returncode is not None  # reaped

    run(main)


def test_cmd_eof_closes_the_attachment():
    async def main(rt: AsyncioRuntime) -> None:
        port = Port("p")
        got: list[bytes] = []
        port.receive = got.append
        # The command writes two records split mid-header, then exits.
        data = encode(b"x" * 20) + encode(b"y" * 30)
        script = (f"import sys,time\nd=bytes.fromhex(\"{data.hex()}\")\n"
                  "sys.stdout.buffer.write(d[:23]);sys.stdout.flush();time.sleep(0.2)\n"
                  "sys.stdout.buffer.write(d[23:]);sys.stdout.flush()\n")
        att = await attach(f"cmd://{sys.executable} -c '{script}'", port, rt)
        await asyncio.wait_for(att.wait_closed(), 10)
        assert got == [b"x" * 20, b"y" * 30]
        assert not port.attached

    run(main)


def test_ssh_url_runs_vnet_plug_remotely(tmp_path, monkeypatch):
    # A stand-in for ssh that runs the remote command locally (no sshd on a test machine).
    fake = tmp_path / "fakessh"
    fake.write_text("#!/bin/sh\nwhile [ \"$1\" != \"--\" ]; do shift; done\nshift; shift\n"
                    "exec sh -c \"$1\"\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("VNET_SSH", str(fake))
    assert ssh_argv("bob@h:2222/tcp://127.0.0.1:9", "x")[-5:] == [
        "-p", "2222", "--", "bob@h", "vnet plug tcp://127.0.0.1:9"]
    assert ssh_argv("h/vde:///tmp/a b", "x")[-1] == "vnet plug 'vde:///tmp/a b'"
    env_path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    monkeypatch.setenv("PATH", env_path)

    async def main(rt: AsyncioRuntime) -> None:
        s1 = Switch(rt)
        e1 = Endpoint(s1)
        lis = await attach("tcp-listen://127.0.0.1:0", s1.add_port(), rt)
        far = Port("far")
        got: list[bytes] = []
        far.receive = got.append
        att = await attach(f"ssh://somehost/tcp://127.0.0.1:{lis.address[1]}", far, rt)
        try:
            await until(lambda: lis.peer is not None, 20)
            far.send(frame(A, B, 64, 1))
            e1.port.send(frame(B, A, 70, 2))
            await until(lambda: len(got) == 1 and len(e1.got) == 1, 20)
            assert got[0] == frame(B, A, 70, 2) and e1.got[0] == frame(A, B, 64, 1)
        finally:
            att.close()
            lis.close()
            s1.close()

    run(main)


def test_bad_urls_give_one_line():
    async def main(rt: AsyncioRuntime) -> None:
        for url, msg in [("tcp://127.0.0.1", "needs a port"),
                         ("tcp://127.0.0.1:1", "cannot connect"),
                         ("tcp://127.0.0.1:99999", "out of range"),
                         ("tcp-listen://:x", "not a number"),
                         ("cmd://", "give a command"),
                         ("cmd://no-such-program-xyz", "cannot run"),
                         ("tcp://h:1?bogus=1", "unknown option")]:
            with pytest.raises(UrlError, match=msg) as ei:
                await attach(url, Port(), rt)
            assert "\n" not in str(ei.value)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen()
        try:
            with pytest.raises(UrlError, match="cannot listen"):
                await attach(f"tcp-listen://127.0.0.1:{s.getsockname()[1]}", Port(), rt)
        finally:
            s.close()

    run(main)
