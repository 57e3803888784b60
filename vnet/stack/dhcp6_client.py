"""DHCPv6 client for addresses (RFC 8415, IA_NA): SOLICIT/ADVERTISE/REQUEST/REPLY, renewal
at T1 and rebinding at T2, DNS servers (RFC 3646). Started when an RA has the Managed
flag and the host was told to (`Host.dhcp6_on_managed`), or by hand.

Like the DHCPv4 client it carries its own UDP header; the host hands it UDP packets
for port 546 on its interface.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from vnet.stack.interface import Interface
from vnet.wire import dhcp6
from vnet.wire.checksum import checksum, pseudo6
from vnet.wire.errors import WireError

_UDP = struct.Struct("!HHHH")
DHCP6 = "dhcp6"
SOL_MAX_DELAY = 1.0
MAX_RT = 120.0


class Dhcp6Client:
    def __init__(self, host: Any, iface: Interface) -> None:
        self.host = host
        self.rt = host.rt
        self.iface = iface
        self.duid = dhcp6.duid_ll(iface.mac)
        self.iaid = iface.index
        self.state = "init"
        self.xid = 0
        self.timer: Any = None
        self.rto = 1.0
        self.started = 0.0
        self.server_id: bytes | None = None
        self.offer: list[dhcp6.IaAddress] = []
        self.addrs: list[bytes] = []
        self.t1 = self.t2 = 0.0
        self.bound_at = 0.0
        self.dns: list[str] = []

    def start(self) -> None:
        self.host.dhcp6[self.iface.name] = self
        self._arm(self.rt.rng.uniform(0, SOL_MAX_DELAY), self._solicit)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.host.dhcp6.pop(self.iface.name, None)

    def _arm(self, delay: float, fn: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.rt.call_later(delay, fn)

    def _next_rto(self) -> float:
        # RFC 8415 15: RT = 2*RTprev + RAND*RTprev, RAND in [-0.1, 0.1], capped at MRT
        self.rto = min(MAX_RT, self.rto * (2 + self.rt.rng.uniform(-0.1, 0.1)))
        return self.rto

    def _send(self, msg_type: int, extra: list[bytes]) -> None:
        ll = self.iface.ll_addr()
        if ll is None:
            return
        elapsed = min(int((self.rt.now() - self.started) * 100), 0xFFFF)
        opts = [dhcp6.option(dhcp6.OPT_CLIENTID, self.duid),
                dhcp6.option(dhcp6.OPT_ELAPSED_TIME, struct.pack("!H", elapsed)),
                dhcp6.option(dhcp6.OPT_ORO, struct.pack("!H", dhcp6.OPT_DNS_SERVERS))] + extra
        body = dhcp6.build(msg_type, self.xid, opts)
        udp = bytearray(_UDP.pack(dhcp6.CLIENT_PORT, dhcp6.SERVER_PORT, 8 + len(body), 0)) + body
        c = checksum(udp, pseudo6(ll.packed, dhcp6.ALL_SERVERS, 17, len(udp))) or 0xFFFF
        struct.pack_into("!H", udp, 6, c)
        self.host.stats["dhcp6_tx"] += 1
        self.host._send6(dhcp6.ALL_SERVERS, 17, bytes(udp), ll.packed, 1, self.iface.name)

    def _solicit(self, first: bool = True) -> None:
        if self.state != "soliciting":
            self.state = "soliciting"
            self.xid = self.rt.rng.getrandbits(24)
            self.started = self.rt.now()
            self.rto = 1.0 + self.rt.rng.uniform(0, 0.1)
        self._send(dhcp6.SOLICIT, [dhcp6.ia_na(self.iaid)])
        self._arm(self._next_rto(), lambda: self._solicit(False))

    def _request(self) -> None:
        if self.state != "requesting":
            self.state = "requesting"
            self.xid = self.rt.rng.getrandbits(24)
            self.rto = 1.0
            self.tries = 0
        self.tries += 1
        if self.tries > 10:  # REQ_MAX_RC
            self.state = "init"
            self._solicit()
            return
        assert self.server_id is not None
        self._send(dhcp6.REQUEST, [dhcp6.option(dhcp6.OPT_SERVERID, self.server_id),
                                   dhcp6.ia_na(self.iaid, 0, 0, self.offer)])
        self._arm(self._next_rto(), self._request)

    def _renew(self) -> None:
        now = self.rt.now()
        rebind = now >= self.bound_at + self.t2
        kind = "rebinding" if rebind else "renewing"
        if self.state != kind:
            self.state = kind
            self.xid = self.rt.rng.getrandbits(24)
            self.rto = 10.0
        cur = [dhcp6.IaAddress(a, 0, 0) for a in self.addrs]
        extra = [dhcp6.ia_na(self.iaid, 0, 0, cur)]
        if not rebind and self.server_id is not None:
            extra.insert(0, dhcp6.option(dhcp6.OPT_SERVERID, self.server_id))
        self._send(dhcp6.REBIND if rebind else dhcp6.RENEW, extra)
        self._arm(self._next_rto(), self._renew)

    def receive(self, src: bytes, dst: bytes, udp: memoryview) -> None:
        st = self.host.stats
        try:
            if len(udp) < 8:
                raise WireError("UDP header truncated")
            _, _, ln, _ = _UDP.unpack_from(udp)
            if ln < 8 or ln > len(udp):
                raise WireError("bad UDP length")
            if checksum(udp[:ln], pseudo6(src, dst, 17, ln)) not in (0, 0xFFFF):
                raise WireError("bad UDP checksum")  # mandatory over IPv6 (RFC 8200 8.1)
            m = dhcp6.parse(udp[8:ln])
        except WireError:
            st["dhcp6_bad"] += 1
            return
        if m.xid != self.xid or m.get(dhcp6.OPT_CLIENTID) != self.duid:
            st["dhcp6_not_ours"] += 1
            return
        st["dhcp6_rx"] += 1
        ia = m.get(dhcp6.OPT_IA_NA)
        try:
            parsed = dhcp6.parse_ia_na(ia) if ia is not None else None
        except WireError:
            st["dhcp6_bad"] += 1
            return
        if m.msg_type == dhcp6.ADVERTISE and self.state == "soliciting":
            sid = m.get(dhcp6.OPT_SERVERID)
            if sid is None or parsed is None or not parsed[3]:
                st["dhcp6_no_addrs"] += 1
                return
            self.server_id = sid
            self.offer = parsed[3]
            self._request()
        elif m.msg_type == dhcp6.REPLY and self.state in ("requesting", "renewing", "rebinding"):
            if parsed is None or not parsed[3]:
                st["dhcp6_no_addrs"] += 1
                if self.state == "requesting":
                    self.state = "init"
                    self._solicit()
                return
            sid = m.get(dhcp6.OPT_SERVERID)
            if sid is not None:
                self.server_id = sid
            dns = m.get(dhcp6.OPT_DNS_SERVERS) or b""
            self.dns = [str(ipaddress.IPv6Address(dns[i:i + 16]))
                        for i in range(0, len(dns) - 15, 16)][:8]
            self._bind(parsed)

    def _bind(self, parsed: tuple[int, int, int, list[dhcp6.IaAddress], int]) -> None:
        _, t1, t2, addrs, _ = parsed
        now = self.rt.now()
        host, iface = self.host, self.iface
        new = [a.addr for a in addrs]
        for old in self.addrs:
            if old not in new:
                try:
                    host._del_addr6(iface, old)
                except ValueError:
                    pass
        for a in addrs:
            loc = host.local6.get(a.addr)
            if loc is None:
                entry = host._add_addr6(iface, ipaddress.IPv6Interface((a.addr, 128)), origin=DHCP6)
            else:
                entry = loc[1]
            entry.valid_until = float("inf") if a.valid == 0xFFFFFFFF else now + a.valid
            entry.preferred_until = float("inf") if a.preferred == 0xFFFFFFFF else now + a.preferred
        self.addrs = new
        pref = min(a.preferred for a in addrs)
        self.t1 = float(t1) if t1 else 0.5 * pref
        self.t2 = float(t2) if t2 else 0.8 * pref
        self.bound_at = now
        self.state = "bound"
        host.stats["dhcp6_bound"] += 1
        host._schedule_lifetimes()
        self._arm(self.t1, self._renew)

    def describe(self) -> dict[str, Any]:
        return {"state": self.state,
                "addrs": [str(ipaddress.IPv6Address(a)) for a in self.addrs],
                "dns": self.dns, "t1": self.t1, "t2": self.t2}
