"""`vnet switch -f RCFILE`: console commands run before any client can connect."""

from __future__ import annotations

import subprocess
import sys
import time


def vnet(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vnet", *args], capture_output=True, text=True,
                          timeout=20, **kw)


def test_rcfile_configures_the_switch_before_ctl_appears(tmp_path):
    rc = tmp_path / "sw.rc"
    rc.write_text("# lab VLANs\nvlan/create 10\n\n  vlan/create 20\nhash/setexpire 30\n"
                  "port/create 5\nport/setvlan 5 10\nport/setuser 5 nobody\n"
                  "port/setgroup 5 0\n")
    d, mgmt = tmp_path / "sw", tmp_path / "mgmt"
    p = subprocess.Popen([sys.executable, "-m", "vnet", "switch", "-s", str(d), "-M", str(mgmt),
                          "-f", str(rc)], stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         text=True)
    try:
        end = time.monotonic() + 10
        while not (d / "ctl").exists():
            assert p.poll() is None, p.stderr.read() if p.stderr else ""
            assert time.monotonic() < end
            time.sleep(0.05)
        out = vnet("ctl", str(mgmt), "vlan/print").stdout
        assert "VLAN 0010" in out and "VLAN 0020" in out
        assert "expire: 30.0" in vnet("ctl", str(mgmt), "hash/showinfo").stdout
        port5 = vnet("ctl", str(mgmt), "port/print", "5").stdout
        assert "Port 0005 untagged_vlan=0010 INACTIVE" in port5
        assert "ACL: user 65534 group 0" in port5
    finally:
        p.terminate()
        p.wait(10)
        if p.stderr:
            p.stderr.close()


def test_a_bad_rcfile_line_is_one_clear_error_and_nothing_is_left(tmp_path):
    rc = tmp_path / "bad.rc"
    rc.write_text("vlan/create 10\nvlan/create 99999\n")
    d = tmp_path / "sw"
    r = vnet("switch", "-s", str(d), "-f", str(rc), stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"vnet switch: {rc}:2: vlan/create 99999: VLAN 99999 out of range: use 1..4094"]
    assert not (d / "ctl").exists()
    r = vnet("switch", "-s", str(d), "-f", str(tmp_path / "missing.rc"), stdin=subprocess.DEVNULL)
    assert r.returncode == 1 and "No such file" in r.stderr and len(r.stderr.splitlines()) == 1
