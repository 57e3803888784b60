"""vde_switch's console commands for `vnet switch`, on a vnet.control.server.Console.

Print commands answer in text laid out like vde_switch's (so scripts reading
`port/print` keep working); settings and info commands return plain data,
which the control protocol renders for humans or sends as JSON.
"""

from __future__ import annotations

import errno
import grp
import pwd
from collections.abc import Callable
from typing import Any

from vnet.control.server import CommandError, Console
from vnet.link.switch import STATE_NAMES, Switch, SwitchError
from vnet.wire.ethernet import VLAN_NONE, mac_from_str

VERSION = "vnet switch (VDE-compatible)"


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise CommandError(f"{what} must be a number, not {text!r}") from None


def _args(args: list[str], n: int, syntax: str) -> list[str]:
    if len(args) != n:
        raise CommandError(f"syntax: {syntax}")
    return args


class SwitchConsole:
    """Holds what the commands act on. `server` is the VdeServer (or None), `extra`
    maps port index -> description for non-VDE attachments (TAP, --port URL)."""

    def __init__(self, console: Console, switch: Switch, server: Any = None,
                 shutdown: Callable[[], None] | None = None,
                 pcap_start: Callable[[str], Any] | None = None,
                 pcap_stop: Callable[[], Any] | None = None,
                 remove_attachment: Callable[[int], bool] | None = None) -> None:
        self.console = console
        self.switch = switch
        self.server = server
        self.shutdown = shutdown
        self.pcap_start = pcap_start
        self.pcap_stop = pcap_stop
        self.remove_attachment = remove_attachment
        self.pcap_file: str | None = None
        add = console.add
        add("showinfo", self.showinfo, "", "show switch info")
        add("shutdown", self.cmd_shutdown, "", "shut the switch down")
        add("port/showinfo", self.port_showinfo, "", "show port info")
        add("port/print", self.port_print, "[N]", "print the active ports (or port N)")
        add("port/allprint", self.port_allprint, "[N]", "print all ports, with counters")
        add("port/setvlan", self.port_setvlan, "N VLAN", "set the untagged VLAN of port N")
        add("port/remove", self.port_remove, "N", "disconnect and remove port N")
        add("port/create", self.port_create, "N", "create port N (kept with no client plugged in)")
        add("port/setuser", self.port_setuser, "N USER", "only USER (or root) may plug into port N")
        add("port/setgroup", self.port_setgroup, "N GROUP",
            "only members of GROUP (or root) may plug into port N")
        add("port/epclose", self.port_epclose, "N ID", "close endpoint ID of port N")
        add("port/sethub", self.port_sethub, "0/1", "hub mode (flood everything) on/off")
        add("port/resetcounter", self.port_resetcounter, "[N]", "zero the counters (of port N)")
        add("vlan/create", self.vlan_create, "N", "create VLAN N")
        add("vlan/remove", self.vlan_remove, "N", "remove VLAN N")
        add("vlan/addport", self.vlan_addport, "VLAN PORT", "add PORT to VLAN (tagged)")
        add("vlan/delport", self.vlan_delport, "VLAN PORT", "remove PORT from VLAN")
        add("vlan/print", self.vlan_print, "[N]", "print the VLANs (or VLAN N)")
        add("vlan/allprint", self.vlan_print, "[N]", "print the VLANs with inactive ports")
        add("hash/print", self.hash_print, "", "print the MAC table")
        add("hash/showinfo", self.hash_showinfo, "", "show MAC table info")
        add("hash/find", self.hash_find, "MAC [VLAN]", "find MAC in the table")
        add("hash/setexpire", self.hash_setexpire, "SECONDS", "idle time before an entry expires")
        add("hash/setminper", self.hash_setminper, "SECONDS",
            "minimum time before a MAC may move to another port")
        add("hash/setsize", self.hash_setsize, "N", "MAC table capacity (oldest evicted)")
        add("hash/setgcint", self.hash_setgcint, "SECONDS", "interval between table sweeps")
        add("pcap/start", self.cmd_pcap_start, "FILE", "capture all ports to FILE (.pcap or pcapng)")
        add("pcap/stop", self.cmd_pcap_stop, "", "stop the capture")
        add("stp/print", self.stp_print, "", "spanning tree state as text (when --stp is on)")
        add("stp/showinfo", self.stp_showinfo, "", "spanning tree state as data (when --stp is on)")
        add("stp/setpriority", self.stp_setpriority, "N", "bridge priority (lowest is root)")
        add("stp/setcost", self.stp_setcost, "PORT COST", "a port's path cost")

    # ---- general -------------------------------------------------------------------------

    def showinfo(self, args: list[str]) -> dict[str, Any]:
        info: dict[str, Any] = {"version": VERSION}
        info.update(self.switch.info())
        if self.server is not None:
            info["ctl"] = self.server.path
            info["ctl_counters"] = dict(self.server.counters)
            fwd = self.server.forwarder
            info["fast_path"] = fwd.stats() if fwd is not None else "off (pure Python)"
        if self.pcap_file:
            info["pcap"] = self.pcap_file
        return info

    def cmd_shutdown(self, args: list[str]) -> str:
        if self.shutdown is None:
            raise CommandError("shutdown is not available here", errno.ENOSYS)
        self.switch.rt.call_soon(self.shutdown)
        return "shutting down"

    # ---- ports -------------------------------------------------------------------------

    def port_showinfo(self, args: list[str]) -> dict[str, Any]:
        sw = self.switch
        return {"numports": sw.numports, "in_use": len(sw.ports), "hub": sw.hub, "mtu": sw.mtu,
                "max_frame": sw.max_frame}

    def _port_text(self, index: int, counters: bool) -> str:
        rec = self.switch.port(index)
        p = rec.port
        vlan = "NONE" if rec.untagged == VLAN_NONE else f"{rec.untagged:04d}"
        state = "ACTIVE" if p.attached else "INACTIVE"
        lines = [f"Port {index:04d} untagged_vlan={vlan} {state} - {p.name}"]
        eps = self.server.endpoint_info(index) if self.server is not None else []
        if eps:
            lines.append(f" Current User: uid {eps[0]['uid']}")
        if self.switch.stp is not None:
            lines.append(f" STP state: {STATE_NAMES[rec.state]}")
        acl = self.server.acl.get(index) if self.server is not None else None
        if acl is not None:
            lines.append(f" ACL: user {'any' if acl[0] is None else acl[0]} "
                         f"group {'any' if acl[1] is None else acl[1]}")
        if rec.tagged:
            lines.append(" tagged VLANs: " + ",".join(str(v) for v in sorted(rec.tagged)))
        if counters:
            lines.append(f" IN:  pkts {p.rx_frames:10d}          bytes {p.rx_bytes:20d}")
            lines.append(f" OUT: pkts {p.tx_frames:10d}          bytes {p.tx_bytes:20d}")
            lines.append(f" DROP: in {p.rx_dropped} (short {rec.rx_short}, oversize "
                         f"{rec.rx_oversize}, vlan {rec.rx_vlan_drop}) out {p.tx_dropped}")
        for ep in eps:
            lines.append(f"  -- endpoint ID {ep['id']:04d} module unix prog   : {ep['descr']}")
            lines.append(f"                  unix sock: {ep['sock']}")
        if not eps and p.description:
            lines.append(f"  -- endpoint: {p.description}")
        return "\n".join(lines)

    def _ports(self, args: list[str]) -> list[int]:
        if args:
            index = _int(args[0], "port")
            if index not in self.switch.ports:
                raise CommandError(f"port {index} is not in use", errno.ENXIO)
            return [index]
        return sorted(self.switch.ports)

    def port_print(self, args: list[str]) -> str:
        return "\n".join(self._port_text(i, False) for i in self._ports(args))

    def port_allprint(self, args: list[str]) -> str:
        return "\n".join(self._port_text(i, True) for i in self._ports(args))

    def port_setvlan(self, args: list[str]) -> None:
        port, vlan = _args(args, 2, "port/setvlan N VLAN")
        try:
            self.switch.set_port_vlan(_int(port, "port"), _int(vlan, "VLAN"))
        except SwitchError as e:
            raise CommandError(str(e)) from None

    def port_remove(self, args: list[str]) -> str:
        index = _int(_args(args, 1, "port/remove N")[0], "port")
        if index not in self.switch.ports:
            raise CommandError(f"port {index} is not in use", errno.ENXIO)
        n = self.server.close_port(index) if self.server is not None else 0
        if index in self.switch.ports and self.remove_attachment is not None:
            self.remove_attachment(index)
        if index in self.switch.ports:
            self.switch.remove_port(index)
        return f"port {index} removed ({n} VDE endpoint(s) closed)"

    def _need_server(self) -> Any:
        if self.server is None:
            raise CommandError("this switch serves no VDE directory", errno.ENOSYS)
        return self.server

    def port_create(self, args: list[str]) -> str:
        index = _int(_args(args, 1, "port/create N")[0], "port")
        try:
            self._need_server().create_port(index)
        except SwitchError as e:
            raise CommandError(str(e)) from None
        return f"port {index} created"

    def _set_acl(self, args: list[str], syntax: str, kind: str) -> None:
        port, who = _args(args, 2, syntax)
        index = _int(port, "port")
        try:
            if kind == "user":
                ident = int(who) if who.isdigit() else pwd.getpwnam(who).pw_uid
            else:
                ident = int(who) if who.isdigit() else grp.getgrnam(who).gr_gid
        except KeyError:
            raise CommandError(f"no {kind} {who!r} on this host", errno.ENOENT) from None
        try:
            if kind == "user":
                self._need_server().set_acl(index, uid=ident)
            else:
                self._need_server().set_acl(index, gid=ident)
        except SwitchError as e:
            raise CommandError(str(e)) from None

    def port_setuser(self, args: list[str]) -> None:
        self._set_acl(args, "port/setuser N USER", "user")

    def port_setgroup(self, args: list[str]) -> None:
        self._set_acl(args, "port/setgroup N GROUP", "group")

    def port_epclose(self, args: list[str]) -> None:
        port, ep_id = _args(args, 2, "port/epclose N ID")
        index, eid = _int(port, "port"), _int(ep_id, "endpoint ID")
        ep = self.server.endpoints.get(eid) if self.server is not None else None
        if ep is None or ep.vport is None or ep.vport.index != index:
            raise CommandError(f"no endpoint {eid} on port {index}", errno.ENXIO)
        self.server.close_endpoint(ep)

    def port_sethub(self, args: list[str]) -> None:
        v = _int(_args(args, 1, "port/sethub 0/1")[0], "hub flag")
        self.switch.hub = bool(v)
        self.switch.flush()

    def port_resetcounter(self, args: list[str]) -> None:
        for i in self._ports(args):
            p = self.switch.port(i).port
            p.rx_frames = p.rx_bytes = p.tx_frames = p.tx_bytes = p.rx_dropped = p.tx_dropped = 0

    # ---- VLANs -------------------------------------------------------------------------

    def _vlan_call(self, fn: Callable[..., None], *a: int) -> None:
        try:
            fn(*a)
        except SwitchError as e:
            raise CommandError(str(e)) from None

    def vlan_create(self, args: list[str]) -> None:
        self._vlan_call(self.switch.vlan_create, _int(_args(args, 1, "vlan/create N")[0], "VLAN"))

    def vlan_remove(self, args: list[str]) -> None:
        self._vlan_call(self.switch.vlan_remove, _int(_args(args, 1, "vlan/remove N")[0], "VLAN"))

    def vlan_addport(self, args: list[str]) -> None:
        v, p = _args(args, 2, "vlan/addport VLAN PORT")
        self._vlan_call(self.switch.vlan_add_port, _int(v, "VLAN"), _int(p, "port"))

    def vlan_delport(self, args: list[str]) -> None:
        v, p = _args(args, 2, "vlan/delport VLAN PORT")
        self._vlan_call(self.switch.vlan_del_port, _int(v, "VLAN"), _int(p, "port"))

    def vlan_print(self, args: list[str]) -> str:
        sw = self.switch
        vids = sorted(sw.vlans)
        if args:
            vid = _int(args[0], "VLAN")
            if vid not in sw.vlans:
                raise CommandError(f"VLAN {vid} does not exist", errno.ENXIO)
            vids = [vid]
        lines = []
        for vid in vids:
            untagged = [i for i, r in sorted(sw.ports.items()) if r.untagged == vid]
            tagged = [i for i, r in sorted(sw.ports.items()) if vid in r.tagged]
            lines.append(f"VLAN {vid:04d}")
            lines.append(" -- Untagged: " + " ".join(f"{i:04d}" for i in untagged))
            lines.append(" -- Tagged: " + " ".join(f"{i:04d}" for i in tagged))
        return "\n".join(lines)

    # ---- MAC table ------------------------------------------------------------------------

    def hash_print(self, args: list[str]) -> str:
        rows = self.switch.table.rows()
        return "\n".join(f"Hash: {i:04d} Addr: {mac.hex(' ')} VLAN {vlan:04d} to port: {port:03d} "
                         f"age {age:.0f} secs" for i, (mac, vlan, port, age) in enumerate(rows))

    def hash_showinfo(self, args: list[str]) -> dict[str, Any]:
        t = self.switch.table
        return {"size": t.max_entries, "entries": len(t), "evicted": t.evicted, "moved": t.moved,
                "flap_refused": t.flap_refused, "gc_interval": self.switch.gc_interval,
                "expire": t.expire, "min_persistence": t.min_persistence}

    def hash_find(self, args: list[str]) -> str:
        if not 1 <= len(args) <= 2:
            raise CommandError("syntax: hash/find MAC [VLAN]")
        try:
            mac = mac_from_str(args[0])
        except ValueError:
            raise CommandError(f"bad MAC address {args[0]!r}: write it as 02:00:00:00:00:01"
                               ) from None
        vlan = _int(args[1], "VLAN") if len(args) > 1 else 0
        key = mac if vlan == 0 else mac + vlan.to_bytes(2, "big")
        port = self.switch.table.lookup(key)
        if port is None:
            raise CommandError(f"{args[0]} is not in the table (VLAN {vlan})", errno.ENODEV)
        return f"Address {mac.hex(':')} VLAN {vlan} found on port {port:03d}"

    def _seconds(self, args: list[str], syntax: str) -> float:
        text = _args(args, 1, syntax)[0]
        try:
            v = float(text)
        except ValueError:
            raise CommandError(f"{syntax}: {text!r} is not a number of seconds") from None
        if v <= 0:
            raise CommandError(f"{syntax}: the value must be > 0")
        return v

    def hash_setexpire(self, args: list[str]) -> None:
        self.switch.table.expire = self._seconds(args, "hash/setexpire SECONDS")

    def hash_setminper(self, args: list[str]) -> None:
        text = _args(args, 1, "hash/setminper SECONDS")[0]
        try:
            self.switch.table.min_persistence = max(0.0, float(text))
        except ValueError:
            raise CommandError(f"hash/setminper: {text!r} is not a number") from None

    def hash_setgcint(self, args: list[str]) -> None:
        self.switch.gc_interval = self._seconds(args, "hash/setgcint SECONDS")

    def hash_setsize(self, args: list[str]) -> str:
        n = _int(_args(args, 1, "hash/setsize N")[0], "size")
        if not 1 <= n <= 1 << 24:
            raise CommandError(f"table size {n} out of range 1..16777216")
        t = self.switch.table
        t.max_entries = n
        dropped = 0
        while len(t.entries) > n:
            t.entries.popitem(last=False)
            dropped += 1
        t.evicted += dropped
        return f"MAC table size {n} ({dropped} oldest entries evicted)"

    # ---- capture and STP -------------------------------------------------------------------

    async def cmd_pcap_start(self, args: list[str]) -> str:
        path = _args(args, 1, "pcap/start FILE")[0]
        if self.pcap_start is None:
            raise CommandError("capture is not available", errno.ENOSYS)
        if self.pcap_file:
            raise CommandError(f"already capturing to {self.pcap_file}: pcap/stop first",
                               errno.EBUSY)
        try:
            self.pcap_start(path)
        except Exception as e:  # noqa: BLE001 - e.g. the file cannot be opened: say so
            raise CommandError(str(e), errno.EIO) from None
        self.pcap_file = path
        return f"capturing to {path}"

    def cmd_pcap_stop(self, args: list[str]) -> str:
        if not self.pcap_file or self.pcap_stop is None:
            raise CommandError("no capture is running", errno.ENOENT)
        stats = self.pcap_stop()
        path, self.pcap_file = self.pcap_file, None
        return f"capture to {path} stopped" + (f" ({stats})" if stats else "")

    def _stp(self) -> Any:
        stp = self.switch.stp
        if stp is None:
            raise CommandError("spanning tree is off (start the switch with --stp)", errno.ENOSYS)
        return stp

    def stp_showinfo(self, args: list[str]) -> dict[str, Any]:
        return self._stp().info()

    def stp_print(self, args: list[str]) -> str:
        from vnet.link.stp import format_info

        return format_info(self._stp().info())

    def stp_setpriority(self, args: list[str]) -> None:
        prio = _int(_args(args, 1, "stp/setpriority N")[0], "priority")
        try:
            self._stp().set_priority(prio)
        except SwitchError as e:
            raise CommandError(str(e)) from None

    def stp_setcost(self, args: list[str]) -> None:
        port, cost = (_int(x, "number") for x in _args(args, 2, "stp/setcost PORT COST"))
        try:
            self._stp().set_port_cost(port, cost)
        except SwitchError as e:
            raise CommandError(str(e)) from None
