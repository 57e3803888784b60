"""Shared test helpers.

Tests that need root, kernel features or external peers call `need_root()`,
`need_tool()` or `need_netns()`. Without the capability they skip with a reason;
with VNET_REQUIRE_PRIVILEGED=1 (set by .ci/run) a missing capability fails the
test instead, so nothing silently stops being tested.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid

import pytest

REQUIRE = os.environ.get("VNET_REQUIRE_PRIVILEGED") == "1"


def _missing(reason: str) -> None:
    if REQUIRE:
        pytest.fail(f"VNET_REQUIRE_PRIVILEGED=1 but {reason}")
    pytest.skip(reason)


def need_root() -> None:
    if os.geteuid() != 0:
        _missing("needs root (run as root or under sudo)")


def need_tool(*names: str) -> None:
    for name in names:
        if shutil.which(name) is None:
            _missing(f"needs {name} on PATH (apt-get install the package that has it)")


def need_tun() -> None:
    need_root()
    if not os.path.exists("/dev/net/tun"):
        _missing("needs /dev/net/tun (TAP support)")


def need_netns() -> None:
    need_root()
    need_tool("ip")
    name = f"vnetprobe{uuid.uuid4().hex[:6]}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        _missing(f"cannot create network namespaces: {r.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", name], capture_output=True)


class NetNS:
    """A network namespace that deletes itself. `ns.run("ip", "addr")` runs inside it."""

    def __init__(self, prefix: str = "vnt") -> None:
        self.name = f"{prefix}{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.run("ip", "link", "set", "lo", "up")

    def run(self, *cmd: str, check: bool = True, timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *cmd], check=check,
                              capture_output=True, text=True, timeout=timeout, **kw)

    def popen(self, *cmd: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)

    def delete(self) -> None:
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture
def netns_factory():
    """Make namespaces on demand; all are deleted at the end of the test."""
    need_netns()
    made: list[NetNS] = []

    def make(prefix: str = "vnt") -> NetNS:
        ns = NetNS(prefix)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.delete()
