"""QEMU `-nic vde` on a vnet switch: no guest OS, the NIC's iPXE boot ROM does DHCP.

The ROM (package ipxe-qemu) broadcasts a DHCPDISCOVER (UDP to port 67) as soon
as the machine starts; a vnet client on another port of the switch must see it
flooded, with QEMU's MAC as source, and `port/print` must show QEMU's description.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import need_tool
from vnet.link.port import Port
from vnet.phy.vde_client import connect
from vnet.runtime.realtime import AsyncioRuntime, new_event_loop

MAC = bytes.fromhex("525400a1b2c3")
ROM = "/usr/lib/ipxe/qemu/efi-e1000.rom"


def is_dhcp_discover(f: bytes) -> bool:
    # Ethernet/IPv4 (no tag), UDP, destination port 67, from QEMU's MAC, to broadcast
    if len(f) < 42 or f[12:14] != b"\x08\x00" or f[23] != 17:
        return False
    ihl = (f[14] & 0x0F) * 4
    return f[:6] == b"\xff" * 6 and f[6:12] == MAC and f[14 + ihl + 2:14 + ihl + 4] == b"\x00\x43"


def test_qemu_ipxe_dhcp_broadcast_reaches_the_vnet_switch(tmp_path):
    need_tool("qemu-system-x86_64")
    if not os.path.exists(ROM):
        if os.environ.get("VNET_REQUIRE_PRIVILEGED") == "1":
            pytest.fail(f"{ROM} is missing: apt-get install ipxe-qemu")
        pytest.skip(f"{ROM} is missing (apt-get install ipxe-qemu)")
    d, mgmt = tmp_path / "sw", tmp_path / "mgmt"
    sw = subprocess.Popen([sys.executable, "-m", "vnet", "switch", "-s", str(d), "-M", str(mgmt)],
                          stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    qemu = None
    try:
        end = time.monotonic() + 10
        while not (d / "ctl").exists():
            assert sw.poll() is None, sw.stderr.read()
            assert time.monotonic() < end
            time.sleep(0.05)

        async def main(rt: AsyncioRuntime) -> list[bytes]:
            nonlocal qemu
            p = Port()
            got: list[bytes] = []
            p.receive = got.append
            att = await connect(rt, p, str(d))
            qemu = subprocess.Popen(
                ["qemu-system-x86_64", "-nic",
                 f"vde,sock={d},mac={MAC.hex(':')},model=e1000",
                 "-nographic", "-display", "none", "-no-reboot", "-m", "64",
                 "-serial", "none", "-monitor", "none"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                text=True)
            end = rt.now() + 45
            while not any(is_dhcp_discover(f) for f in got):
                assert qemu.poll() is None, f"QEMU exited: {qemu.stderr.read()}"
                assert rt.now() < end, f"no DHCP broadcast; saw {len(got)} frames"
                await asyncio.sleep(0.1)
            att.close()
            return got

        loop = new_event_loop()
        try:
            got = loop.run_until_complete(main(AsyncioRuntime(loop)))
        finally:
            loop.close()
        dhcp = next(f for f in got if is_dhcp_discover(f))
        assert len(dhcp) >= 42 + 240  # a BOOTP body follows the UDP header
        out = subprocess.run([sys.executable, "-m", "vnet", "ctl", str(mgmt), "port/print"],
                             capture_output=True, text=True, timeout=10).stdout
        assert "QEMU user=" in out, out
    finally:
        if qemu is not None:
            qemu.kill()
            qemu.wait()
            qemu.stderr.close()
        sw.kill()
        sw.wait()
        sw.stderr.close()
