"""IPv4 for the host: ARP, receive, send, fragmentation, forwarding, ICMP (mixed into Host)."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any

from vnet.stack.arp_acd import AcdMixin
from vnet.stack.igmp import IgmpMember
from vnet.stack.interface import MANUAL, Addr4, Interface
from vnet.stack.meta import IpMeta
from vnet.stack.neighbor import NeighborCache
from vnet.wire import arp, icmp4, ipv4
from vnet.wire.errors import WireError

if TYPE_CHECKING:
    from vnet.stack.routes import Route

_ET = b"\x08\x00"
_ET_ARP = b"\x08\x06"
BCAST = b"\xff" * 4
ZERO4 = b"\x00" * 4
BROADCAST_MAC = b"\xff" * 6
DEFAULT_TTL = 64
_MF_OR_OFFSET = ipv4.FLAG_MF | ipv4.OFFSET_MASK


def _is_mcast4(a: bytes) -> bool:
    return 224 <= a[0] <= 239


def _mcast_mac4(a: bytes) -> bytes:
    return b"\x01\x00\x5e" + bytes((a[1] & 0x7F,)) + a[2:4]


class IPv4Layer(AcdMixin, IgmpMember):
    """IPv4 half of Host. Uses Host attributes: rt, ifaces, routes4, stats, transports..."""

    def _init_ip4(self: Any) -> None:
        self.local4: dict[bytes, tuple[Interface, Addr4]] = {}
        self.bcast4: set[bytes] = {BCAST}
        self.ident4 = self.rt.rng.getrandbits(16)
        self.dest_cache4: dict[bytes, tuple[Interface, bytes]] = {}  # redirects: dst -> gateway
        self._rc4: dict[bytes, tuple[Any, Any, bytes]] = {}
        self._rc4_version = -1
        self._init_acd()
        self._init_igmp()

    def _iface_up4(self: Any, iface: Interface) -> None:
        def transmit(mac: bytes, packet: bytes, iface: Interface = iface) -> None:
            self._xmit(iface, mac, _ET, packet)

        def solicit(ip: bytes, mac: bytes | None, iface: Interface = iface) -> None:
            self._arp_request(iface, ip, mac)

        def failed(ip: bytes, queued: list[bytes]) -> None:
            for p in queued[:1]:  # one host-unreachable per failed resolution (RFC 1812 4.3.2.8)
                self._icmp4_error(p, icmp4.DEST_UNREACH, icmp4.HOST_UNREACH)

        iface.neigh4 = NeighborCache(self.rt, solicit, transmit, self.neigh_max,
                                     self.neigh_max_incomplete, on_failure=failed)

    # ---- addresses ---------------------------------------------------------------------

    def _add_addr4(self: Any, iface: Interface, ifa: ipaddress.IPv4Interface,
                   origin: str = MANUAL) -> Addr4:
        p = ifa.ip.packed
        if p in self.local4:
            raise ValueError(f"address {ifa.ip} is configured already")
        a = Addr4(ifa, origin)
        iface.addrs4.append(a)
        self._rebuild_local4()
        net = ifa.network
        if net.prefixlen < 32:
            self.routes4.add(int(net.network_address), net.prefixlen, iface, None, "connected")
        self._acd_announce(iface, a)
        return a

    def _del_addr4(self: Any, iface: Interface, packed: bytes) -> None:
        for a in iface.addrs4:
            if a.packed == packed:
                iface.addrs4.remove(a)
                net = a.iface.network
                if not any(b.iface.network == net for b in iface.addrs4):
                    r = self.routes4.get(int(net.network_address), net.prefixlen)
                    if r is not None and r.origin == "connected":
                        self.routes4.remove(int(net.network_address), net.prefixlen)
                self._rebuild_local4()
                return
        raise ValueError(f"{ipaddress.IPv4Address(packed)} is not on {iface.name}")

    def _rebuild_local4(self: Any) -> None:
        self.local4 = {a.packed: (i, a) for i in self.ifaces for a in i.addrs4}
        self.bcast4 = {BCAST} | {a.broadcast for i in self.ifaces for a in i.addrs4 if a.broadcast}

    # ---- routing -----------------------------------------------------------------------

    def _route4(self: Any, dst: bytes) -> tuple[Route | None, Interface | None, bytes]:
        # A per-destination cache, emptied whenever the table (or a redirect) changes.
        v = self.routes4.version
        if v != self._rc4_version:
            self._rc4.clear()
            self._rc4_version = v
        res = self._rc4.get(dst)
        if res is None:
            res = self._route4_lookup(dst)
            if len(self._rc4) < 4096:
                self._rc4[dst] = res
        return res

    def _route4_lookup(self: Any, dst: bytes) -> tuple[Route | None, Interface | None, bytes]:
        if dst == BCAST or _is_mcast4(dst):
            iface = self.ifaces[0] if self.ifaces else None
            return None, iface, dst
        r = self.routes4.lookup(int.from_bytes(dst, "big"))
        if r is None:
            return None, None, dst
        if r.gateway is not None and self.dest_cache4:
            red = self.dest_cache4.get(dst)
            if red is not None and red[0] is r.iface:
                return r, r.iface, red[1]  # an ICMP redirect told us a better first hop
        return r, r.iface, r.gateway or dst

    def _select_src4(self: Any, dst: bytes, iface: Interface | None = None,
                     nexthop: bytes | None = None) -> bytes | None:
        if dst in self.local4:
            return dst
        if iface is None:
            _, iface, nexthop = self._route4(dst)
            if iface is None:
                return None
        nh = int.from_bytes(nexthop or dst, "big")
        best = None
        for a in iface.addrs4:
            if a.state != "preferred":
                continue
            if int(a.iface.network.network_address) == nh >> (32 - a.plen) << (32 - a.plen):
                return a.packed
            if best is None:
                best = a.packed
        if best is None:
            for i in self.ifaces:
                for a in i.addrs4:
                    if a.state == "preferred":
                        return a.packed
        return best

    # ---- send --------------------------------------------------------------------------

    def _send4(self: Any, dst: bytes, proto: int, payload: bytes, src: bytes | None,
               ttl: int | None, df: bool | None = None, tso: int = 0) -> bool:
        if dst in self.local4:
            s = src or dst
            pkt = ipv4.build(s, dst, proto, len(payload), ttl or DEFAULT_TTL,
                             self._next_ident4()) + payload
            iface = self.local4[dst][0]
            self.stats["ip4_loopback"] += 1
            self.rt.call_soon(self._rx4, iface, memoryview(pkt), False, tso > 0)
            return True
        route, iface, nexthop = self._route4(dst)
        if iface is None:
            self.stats["ip4_no_route"] += 1
            return False
        if src is None:
            src = self._select_src4(dst, iface, nexthop)
            if src is None:
                self.stats["ip4_no_source"] += 1
                return False
        if df is None:
            df = proto == ipv4.PROTO_TCP  # path MTU discovery for TCP, as Linux does
        mtu = iface.mtu
        pm = self.pmtu.get(dst)
        if pm is not None and pm[1] > self.rt.now() and pm[0] < mtu:
            mtu = pm[0]
        if tso:
            # one packet of several MSS, DF set; _xmit writes it with a GSO header
            pkt = ipv4.build(src, dst, proto, len(payload), ttl or DEFAULT_TTL,
                             self._next_ident4(), ipv4.FLAG_DF) + payload
            self.stats["ip4_tx"] += 1
            nb = iface.neigh4.entries.get(nexthop)
            if nb is None or nb.mac is None:
                # it would wait in the neighbour queue and lose its mark: cut it now
                return self._tso_software(pkt, tso, lambda p: self._l2_out4(iface, nexthop, p))
            self._tso_pkt = pkt
            self._tso_mss = tso
            try:
                return self._l2_out4(iface, nexthop, pkt)
            finally:
                self._tso_pkt = None
        return self._output4(iface, nexthop, src, dst, proto, payload, ttl or DEFAULT_TTL,
                             mtu, df)

    def _next_ident4(self: Any) -> int:
        self.ident4 = (self.ident4 + 1) & 0xFFFF
        return self.ident4

    def _output4(self: Any, iface: Interface, nexthop: bytes, src: bytes, dst: bytes, proto: int,
                 payload: bytes | memoryview, ttl: int, mtu: int, df: bool,
                 tos: int = 0) -> bool:
        ident = self._next_ident4()
        if 20 + len(payload) <= mtu:
            pkt = ipv4.build(src, dst, proto, len(payload), ttl, ident,
                             ipv4.FLAG_DF if df else 0, tos) + payload
            self.stats["ip4_tx"] += 1
            return self._l2_out4(iface, nexthop, pkt)
        if df:
            self.stats["ip4_tx_too_big"] += 1
            return False
        return self._fragment4(iface, nexthop, src, dst, proto, payload, ttl, mtu, ident, 0, tos)

    def _fragment4(self: Any, iface: Interface, nexthop: bytes, src: bytes, dst: bytes,
                   proto: int, payload: bytes | memoryview, ttl: int, mtu: int, ident: int,
                   base: int, tos: int, last_more: bool = False,
                   options: bytes = b"") -> bool:
        """Split `payload` (which starts at byte offset `base` of the original datagram)."""
        step = (mtu - 20 - len(options)) & ~7
        if step < 8:
            self.stats["ip4_frag_fail"] += 1
            return False
        n = len(payload)
        ok = True
        for off in range(0, n, step):
            chunk = payload[off:off + step]
            more = off + step < n or last_more
            frag = ((base + off) >> 3) | (ipv4.FLAG_MF if more else 0)
            opts = options if off == 0 else ipv4.options_for_fragment(options)
            pkt = ipv4.build(src, dst, proto, len(chunk), ttl, ident, frag, tos, opts) + chunk
            self.stats["ip4_frag_tx"] += 1
            ok = self._l2_out4(iface, nexthop, pkt) and ok
        return ok

    def _l2_out4(self: Any, iface: Interface, nexthop: bytes, pkt: bytes) -> bool:
        if nexthop in self.bcast4 or nexthop == BCAST:
            self._xmit(iface, BROADCAST_MAC, _ET, pkt)
            return True
        if _is_mcast4(nexthop):
            self._xmit(iface, _mcast_mac4(nexthop), _ET, pkt)
            return True
        return iface.neigh4.output(nexthop, pkt)

    # ---- receive -----------------------------------------------------------------------

    def _rx4(self: Any, iface: Interface, buf: memoryview, l2_bcast: bool,
             csum_ok: bool = False) -> None:
        st = self.stats
        try:
            h = ipv4.parse(buf)
        except WireError:
            st["ip4_bad"] += 1
            return
        st["ip4_rx"] += 1
        pkt = buf[:h.total_len]  # strip Ethernet padding
        dst = h.dst
        if dst in self.local4 or dst in self.bcast4 or (_is_mcast4(dst) and
                                                        (dst == b"\xe0\x00\x00\x01"
                                                         or dst in iface.groups4)):
            local = True
        elif self.router and not l2_bcast and not _is_mcast4(dst):
            self._forward4(iface, pkt, h)
            return
        else:
            local = False
        if not local:
            # A DHCP client accepts unicast offers before it has the address.
            dhcp = self.dhcp.get(iface.name)
            if dhcp is not None and h.proto == ipv4.PROTO_UDP and not h.frag & _MF_OR_OFFSET \
                    and pkt[h.ihl + 2:h.ihl + 4] == b"\x00\x44":
                dhcp.receive(h, pkt[h.ihl:])
            else:
                st["ip4_not_for_us"] += 1
            return
        payload = pkt[h.ihl:]
        if h.frag & _MF_OR_OFFSET:
            st["ip4_frag_rx"] += 1
            res = self.reasm4.add((h.src, h.dst, h.proto, h.ident), h.offset, h.more_fragments,
                                  payload, (iface, bytes(pkt[:h.ihl + 8])) if h.offset == 0
                                  else None)
            if res is None:
                return
            payload = memoryview(res[0])
            st["ip4_reassembled"] += 1
        proto = h.proto
        if proto == ipv4.PROTO_ICMP:
            self._icmp4_rx(iface, pkt, h, payload, dst in self.local4)
            return
        if proto == 2:
            self._igmp_rx(iface, h, payload)
            return
        if proto == ipv4.PROTO_UDP and iface.name in self.dhcp and len(payload) >= 8 \
                and payload[2:4] == b"\x00\x44":
            self.dhcp[iface.name].receive(h, payload)
            return
        handler = self.transports.get(proto)
        if handler is None:
            st["ip4_unknown_proto"] += 1
            if dst in self.local4:
                self._icmp4_error(pkt, icmp4.DEST_UNREACH, icmp4.PROTO_UNREACH)
            return
        handler(self._meta4(iface, h, csum_ok), payload)

    def _meta4(self: Any, iface: Interface, h: ipv4.IPv4Header, csum_ok: bool = False) -> Any:
        c = self.addr_cache
        return IpMeta(c.v4(h.src), c.v4(h.dst), iface, 4, h.ttl, csum_ok)

    def _reasm4_timeout(self: Any, key: Any, first: Any) -> None:
        iface, head = first
        self._icmp4_error(head, icmp4.TIME_EXCEEDED, 1)

    # ---- forwarding --------------------------------------------------------------------

    def _forward4(self: Any, in_iface: Interface, pkt: memoryview, h: ipv4.IPv4Header) -> None:
        st = self.stats
        src = h.src
        if src[0] == 127 or src in self.bcast4 or _is_mcast4(src) or h.dst[:2] == b"\xa9\xfe" \
                or h.src[:2] == b"\xa9\xfe":
            st["ip4_fwd_refused"] += 1  # link-local, loopback and broadcast stay on their link
            return
        if h.ttl <= 1:
            st["ip4_ttl_exceeded"] += 1
            self._icmp4_error(pkt, icmp4.TIME_EXCEEDED, 0)
            return
        route, iface, nexthop = self._route4(h.dst)
        if iface is None:
            st["ip4_fwd_no_route"] += 1
            self._icmp4_error(pkt, icmp4.DEST_UNREACH, icmp4.NET_UNREACH)
            return
        out = bytearray(pkt)
        ipv4.decrement_ttl(out)
        if iface is in_iface and route is not None and route.gateway is not None \
                and self._onlink4(in_iface, src):
            # RFC 1812 5.2.7.2: the sender could reach the next hop directly
            self._icmp4_redirect(pkt, nexthop)
        if len(out) <= iface.mtu:
            st["ip4_forwarded"] += 1
            self._l2_out4(iface, nexthop, bytes(out))
            return
        if h.frag & ipv4.FLAG_DF:
            st["ip4_fwd_too_big"] += 1
            self._icmp4_error(pkt, icmp4.DEST_UNREACH, icmp4.FRAG_NEEDED, mtu=iface.mtu)
            return
        st["ip4_forwarded"] += 1
        try:
            opts = bytes(pkt[20:h.ihl])
            self._fragment4(iface, nexthop, src, h.dst, h.proto, memoryview(out)[h.ihl:],
                            h.ttl - 1, iface.mtu, h.ident, h.offset, h.tos,
                            h.more_fragments, opts)
        except WireError:
            st["ip4_bad"] += 1

    def _onlink4(self: Any, iface: Interface, addr: bytes) -> bool:
        r = self.routes4.lookup(int.from_bytes(addr, "big"))
        return r is not None and r.iface is iface and r.gateway is None

    def _icmp4_redirect(self: Any, pkt: memoryview, gateway: bytes) -> None:
        if not self.icmp_limit.allow(self.rt.now()):
            return
        self.stats["icmp4_redirect_tx"] += 1
        msg = icmp4.error(icmp4.REDIRECT, 1, pkt[:(pkt[0] & 15) * 4 + 8], gateway=gateway)
        self._send4(bytes(pkt[12:16]), ipv4.PROTO_ICMP, msg, None, None, False)

    # ---- ICMP --------------------------------------------------------------------------

    def _ping4(self: Any, dst: bytes, ident: int, seq: int, data: bytes, src: Any) -> bool:
        msg = icmp4.echo(True, ident, seq, data)
        return self._send4(dst, ipv4.PROTO_ICMP, msg, src.packed if src else None, None, False)

    def _icmp4_rx(self: Any, iface: Interface, pkt: memoryview, h: ipv4.IPv4Header,
                  payload: memoryview, unicast: bool) -> None:
        st = self.stats
        try:
            t, code, a, b = icmp4.parse(payload)
        except WireError:
            st["icmp4_bad"] += 1
            return
        st["icmp4_rx"] += 1
        if t == icmp4.ECHO_REQUEST:
            if not unicast:
                st["icmp4_echo_bcast_ignored"] += 1
                return
            st["icmp4_echo_rx"] += 1
            reply = icmp4.build(icmp4.ECHO_REPLY, 0, a, b, payload[8:])
            self._send4(h.src, ipv4.PROTO_ICMP, reply, h.dst, None, False)
        elif t == icmp4.ECHO_REPLY:
            self.echo.reply(4, a, b, self._meta4(iface, h), len(payload) - 8)
        elif t in icmp4.ERRORS:
            self._icmp4_error_rx(iface, h, t, code, (a << 16) | b, payload[8:])

    def _icmp4_error_rx(self: Any, iface: Interface, h: ipv4.IPv4Header, t: int, code: int,
                        word2: int, quoted: memoryview) -> None:
        try:
            q = ipv4.parse(quoted, verify_checksum=False)
        except WireError:
            # A quote may be truncated below its total length; check the header alone.
            if len(quoted) < 20 or quoted[0] >> 4 != 4:
                self.stats["icmp4_bad"] += 1
                return
            q = ipv4.IPv4Header((quoted[0] & 15) * 4, 0, 0, 0, 0, quoted[8], quoted[9],
                                bytes(quoted[12:16]), bytes(quoted[16:20]))
        if q.src not in self.local4:
            self.stats["icmp4_error_not_ours"] += 1
            return
        self.stats["icmp4_error_rx"] += 1
        if t == icmp4.DEST_UNREACH and code == icmp4.FRAG_NEEDED:
            mtu = (word2 & 0xFFFF) or 576  # RFC 1191: old routers send 0
            if mtu < 576:
                mtu = 576  # refuse absurd values (RFC 1191 7; Linux's min_pmtu is 552)
            self._update_pmtu(q.dst, mtu, 68)
        elif t == icmp4.REDIRECT:
            self._redirect4_rx(iface, h, word2, quoted, q)
            return
        handler = self.error_handlers.get(q.proto)
        if handler is not None:
            meta = IpMeta(ipaddress.IPv4Address(q.src), ipaddress.IPv4Address(q.dst), iface, 4,
                          q.ttl)
            handler(meta, t, code, bytes(quoted[q.ihl:]))

    def _redirect4_rx(self: Any, iface: Interface, h: ipv4.IPv4Header, word: int,
                      quoted: memoryview, q: ipv4.IPv4Header) -> None:
        """Accept a redirect only from the current first hop, to a gateway on the same link
        (RFC 1122 3.2.2.2); routers ignore them."""
        if self.router or len(quoted) < 8:
            return
        gw = word.to_bytes(4, "big")
        route, out, nexthop = self._route4(q.dst)
        if out is not iface or nexthop != h.src or not self._onlink4(iface, gw) \
                or gw in self.local4:
            self.stats["icmp4_redirect_refused"] += 1
            return
        self.stats["icmp4_redirect_rx"] += 1
        if len(self.dest_cache4) >= 4096:
            self.dest_cache4.pop(next(iter(self.dest_cache4)))
        self.dest_cache4[q.dst] = (iface, gw)
        self.routes4.version += 1  # drop cached routes

    def _icmp4_error(self: Any, pkt: bytes | memoryview, t: int, code: int, mtu: int = 0) -> None:
        """Send an ICMP error about `pkt`, unless RFC 1122 3.2.2 forbids or the limiter refuses."""
        if len(pkt) < 20:
            return
        src = bytes(pkt[12:16])
        dst = bytes(pkt[16:20])
        if src == ZERO4 or src in self.bcast4 or _is_mcast4(src) or dst in self.bcast4 \
                or _is_mcast4(dst) or src[0] == 127:
            return
        frag = (pkt[6] << 8) | pkt[7]
        if frag & ipv4.OFFSET_MASK:
            return  # only about the first fragment
        ihl = (pkt[0] & 15) * 4
        if pkt[9] == ipv4.PROTO_ICMP and len(pkt) > ihl and pkt[ihl] not in (0, 8, 13, 14, 15, 16, 17, 18):
            return  # never about an ICMP error
        if not self.icmp_limit.allow(self.rt.now()):
            return
        self.stats["icmp4_error_tx"] += 1
        msg = icmp4.error(t, code, pkt, mtu=mtu)
        my = dst if dst in self.local4 else None
        self._send4(src, ipv4.PROTO_ICMP, msg, my, None, False)

    # ---- ARP ---------------------------------------------------------------------------

    def _arp_request(self: Any, iface: Interface, ip: bytes, mac: bytes | None) -> None:
        src = self._select_src4(ip, iface, ip) or ZERO4
        pkt = arp.build(arp.REQUEST, iface.mac, src, b"\x00" * 6, ip)
        self.stats["arp_tx_request"] += 1
        self._xmit(iface, mac or BROADCAST_MAC, _ET_ARP, pkt)

    def _rx_arp(self: Any, iface: Interface, buf: memoryview) -> None:
        st = self.stats
        try:
            p = arp.parse(buf)
        except WireError:
            st["arp_bad"] += 1
            return
        if p.sha[0] & 1:
            st["arp_bad"] += 1
            return
        st["arp_rx"] += 1
        if self._acd_rx(iface, p):
            return
        mine = self.local4.get(p.tpa)
        cache = iface.neigh4
        if p.spa != ZERO4:
            if p.op == arp.REPLY and p.tpa in self.local4:
                cache.advert(p.spa, p.sha, True, True)
            else:
                # RFC 826 merge: update an entry we have; create one only if it asked us.
                cache.learned(p.spa, p.sha, create=mine is not None)
        if p.op == arp.REQUEST and mine is not None and mine[0] is iface:
            st["arp_tx_reply"] += 1
            reply = arp.build(arp.REPLY, iface.mac, p.tpa, p.sha, p.spa)
            self._xmit(iface, p.sha, _ET_ARP, reply)
