"""stp/ console commands on a switch pair in simulated time (no sockets needed)."""

import asyncio

from vnet.cli.switch_console import SwitchConsole
from vnet.control.server import Console
from vnet.link.link import Link
from vnet.link.stp import Stp
from vnet.link.switch import Switch
from vnet.runtime.sim import SimRuntime


def test_stp_console_print_setpriority_setcost():
    rt = SimRuntime(seed=1)
    s1 = Switch(rt, 4, name="s1", mac=bytes.fromhex("020000000001"))
    s2 = Switch(rt, 4, name="s2", mac=bytes.fromhex("020000000002"))
    Stp(s1, hello_time=1, max_age=6, forward_delay=4)
    Stp(s2, hello_time=1, max_age=6, forward_delay=4)
    Link(rt, s1.add_port(), s2.add_port())
    Link(rt, s1.add_port(), s2.add_port())
    console = Console()
    SwitchConsole(console, s2)

    def cmd(line: str) -> str:
        return asyncio.run(console.handle_line(line))

    rt.run(until=20)
    assert s1.stp.info()["root_id"] == s2.stp.info()["root_id"] == "8000.020000000001"
    text = cmd("stp/print")
    assert text.endswith("1000 Success") and "8000.020000000001" in text
    assert cmd("stp/setpriority 4096") == "1000 Success"
    rt.run(until=40)
    assert s1.stp.info()["root_id"] == "1000.020000000002"
    assert cmd("stp/setpriority 70000").startswith("1022 bridge priority 70000 out of range")
    assert cmd("stp/setcost 1").startswith("1022 syntax: stp/setcost PORT COST")
    assert cmd("stp/setcost 2 5") == "1000 Success"
    assert '"ok": true' in cmd('{"cmd": "stp/showinfo"}')


def test_stp_commands_when_stp_is_off():
    rt = SimRuntime()
    console = Console()
    SwitchConsole(console, Switch(rt, 2))
    assert asyncio.run(console.handle_line("stp/print")).startswith("1038 spanning tree is off")
