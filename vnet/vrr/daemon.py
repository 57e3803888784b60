"""A VRR node as a daemon: the engine, its DHT, an optional IP adapter, and control commands.

No I/O here: the CLI (vnet.cli.vrr) attaches the ports to interfaces, fabric URLs
or a TAP and serves `console` on a control socket. The same object runs in
simulated time (tests build it on SimRuntime with in-memory ports).
"""

from __future__ import annotations

import asyncio
from typing import Any

from vnet.control.server import CommandError, Console
from vnet.link.port import Port
from vnet.runtime.base import Runtime
from vnet.vrr.dht import Dht, key_of
from vnet.vrr.ipadapt import IpAdapter
from vnet.vrr.node import Config, VrrNode
from vnet.vrr.security import NetworkKey
from vnet.wire import vrr as W


class VrrDaemon:
    def __init__(self, rt: Runtime, addr: int, ports: list[Port], macs: list[bytes],
                 host_port: Port | None = None, host_mac: bytes | None = None,
                 config: Config | None = None, key: NetworkKey | None = None) -> None:
        self.rt = rt
        self.node = VrrNode(rt, addr, ports, macs, config, key)
        self.dht = Dht(self.node)
        self.ip = IpAdapter(self.node, self.dht, host_port, host_mac) if host_port else None
        self.console = Console("vnet vrr")
        c = self.console
        c.add("status", self.cmd_status, "", "virtual address, active state, vset, pset")
        c.add("vset", lambda a: [W.addr_to_str(v) for v in sorted(self.node.vset)], "",
              "the virtual neighbour set")
        c.add("pset", lambda a: self.node.pset_info(), "", "physical neighbours and link quality")
        c.add("routes", lambda a: self.node.route_info(), "", "vset-paths through this node")
        c.add("stats", self.cmd_stats, "", "engine, DHT and IP adapter counters")
        c.add("dht", self.cmd_dht, "put NAME VALUE | get NAME | remove NAME",
              "store, look up or remove a value in the ring's DHT")
        c.add("publish", self.cmd_publish, "IP", "publish an IP address of this node in the DHT")

    def start(self) -> None:
        self.node.start()

    def stop(self) -> None:
        self.node.stop()
        if self.ip is not None:
            self.ip.close()

    def cmd_status(self, args: list[str]) -> dict[str, Any]:
        return self.node.status()

    def cmd_stats(self, args: list[str]) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in self.node.stats.items() if v}
        out.update({f"dht_{k}": v for k, v in self.dht.stats.items() if v})
        if self.ip is not None:
            out.update({f"ip_{k}": v for k, v in self.ip.stats.items() if v})
        for i, p in enumerate(self.node.ports):
            out[f"port{i}"] = p.counters()
        return out

    def cmd_publish(self, args: list[str]) -> str:
        if len(args) != 1 or self.ip is None:
            raise CommandError("syntax: publish IP (needs --tap)")
        try:
            self.ip.publish(args[0])
        except ValueError:
            raise CommandError(f"not an IP address: {args[0]!r}") from None
        return f"published {args[0]}"

    def cmd_dht(self, args: list[str]) -> Any:
        if len(args) >= 3 and args[0] == "put":
            value = " ".join(args[2:]).encode()
            try:
                self.dht.put(key_of(args[1]), value)
            except ValueError as e:
                raise CommandError(str(e)) from None
            return {"key": W.addr_to_str(key_of(args[1])), "stored": len(value)}
        if len(args) == 2 and args[0] == "remove":
            self.dht.remove(key_of(args[1]))
            return {"key": W.addr_to_str(key_of(args[1])), "removed": True}
        if len(args) == 2 and args[0] == "get":
            return self._get(args[1])
        raise CommandError("syntax: dht put NAME VALUE | dht get NAME | dht remove NAME")

    async def _get(self, name: str) -> dict[str, Any]:
        fut: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()

        def done(v: bytes | None) -> None:
            if not fut.done():
                fut.set_result(v)
        self.dht.get(key_of(name), done)
        v = await fut
        return {"key": W.addr_to_str(key_of(name)), "found": v is not None,
                "value": v.decode("utf-8", "replace") if v is not None else None}
