"""TAP attachment against the Linux kernel: a TAP inside a fresh network namespace.

The kernel's ARP request and ICMP echo must reach the Port, and the replies the
test writes through the Port must reach the kernel (ping succeeds).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid

import pytest

from tests.conftest import need_tool, need_tun
from tests.phy.helpers import responder
from vnet.link.port import Port
from vnet.phy.tap import TapError, open_tap
from vnet.phy.url import UrlError, attach, parse_url
from vnet.runtime.realtime import AsyncioRuntime, run

pytestmark = pytest.mark.privileged

def test_tap_kernel_ping_reaches_port(netns_factory):
    need_tun()
    need_tool("ping")
    ns = netns_factory("vtap")
    name = f"vt{uuid.uuid4().hex[:8]}"
    seen: list[str] = []

    async def main(rt: AsyncioRuntime) -> tuple[int, str]:
        port = Port("tap")
        responder(port, "10.77.0.2", seen)
        att = await attach(f"tap://{name}?netns={ns.name}", port, rt)
        try:
            assert att.ifname == name
            ns.run("ip", "addr", "add", "10.77.0.1/24", "dev", name)
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", ns.name, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                "10.77.0.2", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
            out, _ = await asyncio.wait_for(proc.communicate(), 20)
            return proc.returncode or 0, out.decode()
        finally:
            att.close()

    rc, out = run(main)
    assert rc == 0, out
    assert "arp" in seen and seen.count("echo") >= 3, seen
    # Not persistent: closing the fd removed the interface.
    r = ns.run("ip", "link", "show", name, check=False)
    assert r.returncode != 0


def test_tap_counts_tx_drop_when_down(netns_factory):
    need_tun()
    ns = netns_factory("vtap")
    name = f"vt{uuid.uuid4().hex[:8]}"

    async def main(rt: AsyncioRuntime) -> int:
        port = Port("tap")
        att = await attach(f"tap://{name}?netns={ns.name}&up=0", port, rt)
        try:
            port.send(b"\xff" * 6 + b"\x02" * 6 + b"\x08\x00" + bytes(46))  # down: EIO
            return port.tx_dropped
        finally:
            att.close()

    assert run(main) == 1


def test_tap_mtu_and_existing_interface(netns_factory):
    need_tun()
    ns = netns_factory("vtap")
    name = f"vt{uuid.uuid4().hex[:8]}"
    fd, ifname = open_tap(name, mtu=9000, netns=ns.name)
    try:
        assert "mtu 9000" in ns.run("ip", "link", "show", ifname).stdout
    finally:
        os.close(fd)
    # A name taken by a non-TAP interface gives one clear error.
    ns.run("ip", "link", "add", name, "type", "bridge")
    with pytest.raises(TapError, match="not a TAP"):
        open_tap(name, netns=ns.name)


def test_tap_errors_are_one_line():
    with pytest.raises(UrlError, match="namespace"):
        open_tap("x", netns=f"nonexistent{uuid.uuid4().hex[:6]}")
    with pytest.raises(TapError, match="bad interface name"):
        open_tap("a" * 16)
    with pytest.raises(UrlError, match="unknown option"):
        run(lambda rt: attach("tap://x?bogus=1", Port(), rt))
    assert parse_url("tap://tap0?mtu=9000").options == {"mtu": "9000"}


def test_tap_without_root_says_so():
    """As an unprivileged user, creating a TAP fails with a one-line hint."""
    need_tun()
    code = ("from vnet.phy.tap import open_tap, TapError\n"
            "try:\n    open_tap('vtnoroot0')\nexcept TapError as e:\n    print(e)\n")
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        "python3", "-c", code], capture_output=True, text=True, timeout=30,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    # /dev/net/tun may be 0666 (then TUNSETIFF fails) or 0600 (then open fails)
    assert "run as root" in r.stdout and r.stdout.count("\n") == 1, r.stdout + r.stderr
