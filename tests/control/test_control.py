import asyncio
import json
import os
import socket
import stat
import subprocess
import sys
import threading

import pytest

from vnet.control.client import ControlError, call
from vnet.control.server import CommandError, Console, ControlServer


def make_console() -> Console:
    c = Console()
    c.add("echo", lambda args: " ".join(args), "WORDS...", "say it back")
    c.add("data", lambda args: {"ports": 3, "names": ["a", "b"]}, "", "structured")

    async def slow(args):
        await asyncio.sleep(0.01)
        return {"ok": args == ["yes"]}

    c.add("probe", slow, "yes|no", "async, reports ok")

    def bad(args):
        raise CommandError("nope, try again")

    c.add("bad", bad)
    c.add("crash", lambda args: 1 / 0)
    c.add("needs", lambda args: int(args[0]), "N")
    return c


def line(c: Console, text: str):
    return asyncio.run(c.handle_line(text))


def test_human_lines():
    c = make_console()
    assert line(c, "echo hi there") == "hi there\n1000 Success"
    assert line(c, "nosuch") .startswith("1038 unknown command 'nosuch'")
    assert line(c, "bad") == "1022 nope, try again"
    assert line(c, "crash").startswith("1005 crash: ZeroDivisionError")
    assert "syntax: needs N" in line(c, "needs")
    assert line(c, "   ") is None and line(c, "# comment") is None
    assert "echo WORDS..." in line(c, "help ec")


def test_json_lines():
    c = make_console()
    r = json.loads(line(c, '{"cmd": "data"}'))
    assert r == {"ok": True, "result": {"ports": 3, "names": ["a", "b"]}}
    r = json.loads(line(c, '{"cmd": "nosuch"}'))
    assert r["ok"] is False and r["code"] == 38
    r = json.loads(line(c, '{"cmd": '))
    assert r["ok"] is False and "bad JSON" in r["error"]


@pytest.fixture
def served(tmp_path):
    path = str(tmp_path / "ctl.sock")
    loop = asyncio.new_event_loop()
    server = ControlServer(make_console(), path)
    loop.run_until_complete(server.start())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    yield path
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    t.join(5)
    loop.close()


def test_socket_mode_and_client(served):
    assert stat.S_IMODE(os.stat(served).st_mode) == 0o600
    assert call(served, "echo", "a", "b") == "a b"
    with pytest.raises(ControlError, match="nope"):
        call(served, "bad")


def test_human_session_over_socket(served):
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(served)
        s.sendall(b"echo one\nlogout\n")
        data = b""
        while b"9999" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    assert data == b"one\n1000 Success\n9999 END OF SESSION\n"


def test_vnet_ctl_exit_codes(served):
    def ctl(*words):
        return subprocess.run([sys.executable, "-m", "vnet", "ctl", served, *words],
                              capture_output=True, text=True, timeout=30)

    r = ctl("echo", "hello")
    assert r.returncode == 0 and r.stdout.strip() == "hello"
    assert ctl("probe", "yes").returncode == 0
    assert ctl("probe", "no").returncode == 1
    r = ctl("bad")
    assert r.returncode == 1 and r.stderr.strip() == "vnet ctl: nope, try again"


def test_client_errors_are_one_line(tmp_path):
    with pytest.raises(ControlError, match="is the daemon running"):
        call(str(tmp_path / "missing"), "help")


def test_refuses_a_path_that_is_not_a_socket(tmp_path):
    p = tmp_path / "file"
    p.write_text("x")
    with pytest.raises(OSError, match="not a socket"):
        asyncio.run(ControlServer(Console(), str(p)).start())


def test_reuses_a_stale_socket(tmp_path):
    p = str(tmp_path / "stale.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(p)
    s.close()  # bound, never listened: a dead daemon's leftover

    async def go():
        srv = ControlServer(Console(), p)
        await srv.start()
        await srv.close()

    asyncio.run(go())


def test_vde_dialect_framing():
    """vde_switch's management framing, as vdecmd's parse machine expects it."""
    from vnet.control.server import vde_reply
    assert vde_reply("a\nb\n1000 Success") == "0000 DATA END WITH '.'\na\nb\n.\n1000 Success\n\n"
    assert vde_reply("1000 Success") == "1000 Success\n\n"
    assert vde_reply("1022 bad VLAN") == "1022 bad VLAN\n\n"
    assert vde_reply(None) == ""
