"""DHCPv4 client (RFC 2131): DISCOVER/OFFER/REQUEST/ACK, an RFC 5227 probe of the
offered address before use (DECLINE on conflict), renewal at T1, rebinding at T2,
and removal when the lease expires.

It carries its own 8-byte UDP header so that it works before (and without) the UDP
layer; the host hands it every UDP packet for port 68 on its interface.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from vnet.stack.interface import DHCP, Interface
from vnet.wire import dhcp4, ipv4
from vnet.wire.checksum import checksum, pseudo4
from vnet.wire.errors import WireError

_UDP = struct.Struct("!HHHH")
ZERO = b"\0" * 4
BCAST = b"\xff" * 4
INIT, SELECTING, REQUESTING, PROBING, BOUND, RENEWING, REBINDING = (
    "init", "selecting", "requesting", "probing", "bound", "renewing", "rebinding")


class Dhcp4Client:
    def __init__(self, host: Any, iface: Interface, ipv4ll_fallback: bool = False) -> None:
        self.host = host
        self.ipv4ll_fallback = ipv4ll_fallback
        self.rt = host.rt
        self.iface = iface
        self.state = INIT
        self.xid = 0
        self.timer: Any = None
        self.tries = 0
        self.offer: dhcp4.DhcpMessage | None = None
        self.lease: dict[str, Any] = {}
        self.addr: ipaddress.IPv4Interface | None = None
        self.started = 0.0
        self.declined = 0

    # ---- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.host.dhcp[self.iface.name] = self
        # RFC 2131 4.4.1: wait a random 1..10 s before the first DISCOVER; we use up to 1 s.
        self._restart(self.rt.rng.uniform(0, 1.0))

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.host.dhcp.pop(self.iface.name, None)

    def _restart(self, delay: float = 0.0) -> None:
        self._unbind()
        self.state = INIT
        self.tries = 0
        self.offer = None
        self.xid = self.rt.rng.getrandbits(32)
        self._arm(delay, self._discover)

    def _arm(self, delay: float, fn: Any, *args: Any) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.rt.call_later(delay, fn, *args)

    def _backoff(self) -> float:
        # 4, 8, 16, 32, 64 s, each +-1 s (RFC 2131 4.1)
        return min(4 * 2 ** self.tries, 64) + self.rt.rng.uniform(-1, 1)

    # ---- sending -------------------------------------------------------------------------

    def _send(self, msg_type: int, extra: list[tuple[int, bytes]], ciaddr: bytes = ZERO,
              dst: bytes = BCAST) -> None:
        opts = [(dhcp4.OPT_MSG_TYPE, bytes((msg_type,))),
                (dhcp4.OPT_CLIENT_ID, b"\x01" + self.iface.mac)] + extra
        if msg_type in (dhcp4.DISCOVER, dhcp4.REQUEST):
            opts.append((dhcp4.OPT_PARAM_LIST, bytes((1, 3, 6, 51, 54, 58, 59))))
        secs = min(int(self.rt.now() - self.started), 0xFFFF)
        body = dhcp4.build(dhcp4.BOOTREQUEST, self.xid, self.iface.mac, opts, secs,
                           dhcp4.FLAG_BROADCAST if dst == BCAST else 0, ciaddr)
        src = ciaddr
        udp = bytearray(_UDP.pack(dhcp4.CLIENT_PORT, dhcp4.SERVER_PORT, 8 + len(body), 0)) + body
        c = checksum(udp, pseudo4(src, dst, 17, len(udp))) or 0xFFFF
        struct.pack_into("!H", udp, 6, c)
        self.host.stats["dhcp_tx"] += 1
        if dst == BCAST:
            self.host._output4(self.iface, BCAST, src, BCAST, ipv4.PROTO_UDP, bytes(udp), 64,
                               self.iface.mtu, False)
        else:
            self.host._send4(dst, ipv4.PROTO_UDP, bytes(udp), src, 64, False)

    def _discover(self) -> None:
        if self.tries == 0:
            self.started = self.rt.now()
        if self.tries == 2 and self.ipv4ll_fallback and self.iface.name not in self.host.ipv4ll:
            # No server answered twice: take an IPv4 link-local address meanwhile (RFC 3927)
            from vnet.stack.ipv4ll import Ipv4LinkLocal
            Ipv4LinkLocal(self.host, self.iface).start()
        self.state = SELECTING
        self._send(dhcp4.DISCOVER, [])
        self._arm(self._backoff(), self._discover)
        self.tries += 1

    def _request(self) -> None:
        o = self.offer
        assert o is not None
        if self.tries >= 4:
            self._restart()
            return
        self.state = REQUESTING
        self._send(dhcp4.REQUEST, [(dhcp4.OPT_REQUESTED_IP, o.yiaddr),
                                   (dhcp4.OPT_SERVER_ID, o.options.get(dhcp4.OPT_SERVER_ID, b""))])
        self._arm(self._backoff(), self._request)
        self.tries += 1

    # ---- receiving -----------------------------------------------------------------------

    def receive(self, h: ipv4.IPv4Header, udp: memoryview) -> None:
        st = self.host.stats
        try:
            if len(udp) < 8:
                raise WireError("UDP header truncated")
            _, _, ln, csum = _UDP.unpack_from(udp)
            if ln < 8 or ln > len(udp):
                raise WireError("bad UDP length")
            udp = udp[:ln]
            if csum and checksum(udp, pseudo4(h.src, h.dst, 17, ln)) not in (0, 0xFFFF):
                raise WireError("bad UDP checksum")
            m = dhcp4.parse(udp[8:])
        except WireError:
            st["dhcp_bad"] += 1
            return
        if m.op != dhcp4.BOOTREPLY or m.xid != self.xid or m.chaddr != self.iface.mac:
            st["dhcp_not_ours"] += 1
            return
        st["dhcp_rx"] += 1
        t = m.msg_type
        if t == dhcp4.OFFER and self.state == SELECTING:
            if dhcp4.OPT_SERVER_ID not in m.options:
                st["dhcp_bad"] += 1
                return
            self.offer = m
            self.tries = 0
            self._request()
        elif t == dhcp4.ACK and self.state in (REQUESTING, RENEWING, REBINDING):
            self._ack(m)
        elif t == dhcp4.NAK and self.state in (REQUESTING, RENEWING, REBINDING):
            st["dhcp_nak"] += 1
            self._restart()

    def _ack(self, m: dhcp4.DhcpMessage) -> None:
        mask = m.options.get(dhcp4.OPT_SUBNET_MASK, b"\xff\xff\xff\x00")
        plen = bin(int.from_bytes(mask[:4], "big")).count("1")
        lease = struct.unpack("!I", m.options[dhcp4.OPT_LEASE_TIME][:4])[0] \
            if dhcp4.OPT_LEASE_TIME in m.options else 86400
        t1 = struct.unpack("!I", m.options[dhcp4.OPT_RENEWAL_T1][:4])[0] \
            if dhcp4.OPT_RENEWAL_T1 in m.options else lease * 0.5
        t2 = struct.unpack("!I", m.options[dhcp4.OPT_REBINDING_T2][:4])[0] \
            if dhcp4.OPT_REBINDING_T2 in m.options else lease * 0.875
        router = m.options.get(dhcp4.OPT_ROUTER, b"")[:4]
        dns = m.options.get(dhcp4.OPT_DNS, b"")
        addr = ipaddress.IPv4Interface((m.yiaddr, plen))
        self.lease = {"addr": str(addr), "server": str(ipaddress.IPv4Address(
            m.options.get(dhcp4.OPT_SERVER_ID, m.siaddr)[:4])), "lease": lease,
            "router": str(ipaddress.IPv4Address(router)) if len(router) == 4 else None,
            "acquired": self.rt.now(), "t1": t1, "t2": t2,
            "dns": [str(ipaddress.IPv4Address(dns[i:i + 4]))
                    for i in range(0, len(dns) - 3, 4)][:8]}
        self.server_id = m.options.get(dhcp4.OPT_SERVER_ID, m.siaddr)[:4]
        if self.state in (RENEWING, REBINDING) and self.addr == addr:
            self._bound()
            return
        self.state = PROBING
        if self.timer is not None:
            self.timer.cancel()
        self.host.acd_probe(self.iface, addr.ip, lambda free: self._probed(free, addr, router))

    def _probed(self, free: bool, addr: ipaddress.IPv4Interface, router: bytes) -> None:
        if self.state != PROBING:
            return
        if not free:
            self.declined += 1
            self.host.stats["dhcp_decline"] += 1
            self._send(dhcp4.DECLINE, [(dhcp4.OPT_REQUESTED_IP, addr.ip.packed),
                                       (dhcp4.OPT_SERVER_ID, self.server_id)])
            self._restart(10.0)  # RFC 2131 3.1.5: wait 10 s after a DECLINE
            return
        self._unbind()
        self.host._add_addr4(self.iface, addr, origin=DHCP)
        self.addr = addr
        if len(router) == 4:
            self.host.routes4.add(0, 0, self.iface, router, "dhcp")
        self.host.stats["dhcp_bound"] += 1
        ll = self.host.ipv4ll.get(self.iface.name)
        if ll is not None:
            ll.stop()  # a routable address makes the link-local one unnecessary (RFC 3927 1.9)
        self._bound()

    def _bound(self) -> None:
        self.state = BOUND
        self.tries = 0
        acquired = self.lease["acquired"]
        self._arm(max(0.0, acquired + self.lease["t1"] - self.rt.now()), self._renew)

    def _renew(self) -> None:
        now = self.rt.now()
        acquired = self.lease["acquired"]
        if now >= acquired + self.lease["lease"]:
            self.host.stats["dhcp_expired"] += 1
            self._restart()
            return
        assert self.addr is not None
        rebinding = now >= acquired + self.lease["t2"]
        self.state = REBINDING if rebinding else RENEWING
        self.xid = self.rt.rng.getrandbits(32)
        self._send(dhcp4.REQUEST, [], ciaddr=self.addr.ip.packed,
                   dst=BCAST if rebinding else self.server_id)
        # RFC 2131 4.4.5: retry after half the remaining time, at least 60 s.
        end = acquired + (self.lease["lease"] if rebinding else self.lease["t2"])
        self._arm(max(60.0, (end - now) / 2) if end - now > 60 else max(end - now, 1.0),
                  self._renew)

    def _unbind(self) -> None:
        if self.addr is not None:
            try:
                self.host._del_addr4(self.iface, self.addr.ip.packed)
            except ValueError:
                pass
            r = self.host.routes4.get(0, 0)
            if r is not None and r.origin == "dhcp":
                self.host.routes4.remove(0, 0)
            self.addr = None

    def describe(self) -> dict[str, Any]:
        return {"state": self.state, **self.lease}
