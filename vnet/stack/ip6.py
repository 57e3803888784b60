"""IPv6 for the host: receive (extension headers, reassembly), send (source fragmentation),
forwarding, ICMPv6 and Neighbor Discovery (mixed into Host).

Validation of ND messages follows RFC 4861 sections 6.1, 7.1 and 8.1 (hop limit
255, code 0, lengths, option lengths); every drop is counted in `Host.stats`.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Any

from vnet.stack.interface import (
    DUPLICATE,
    OPTIMISTIC,
    TEMPORARY,
    TENTATIVE,
    Addr6,
    Interface,
)
from vnet.stack.meta import IpMeta
from vnet.stack.neighbor import INCOMPLETE, NeighborCache
from vnet.wire import icmp6, ipv6
from vnet.wire.errors import WireError

_ET = b"\x86\xdd"
UNSPEC = b"\x00" * 16
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
MLDV2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")
MAX_DEST_CACHE = 4096
_U32 = struct.Struct("!I")


def is_mcast6(a: bytes) -> bool:
    return a[0] == 0xFF


def is_ll6(a: bytes) -> bool:
    return a[0] == 0xFE and (a[1] & 0xC0) == 0x80


def _common_prefix(a: bytes, b: bytes) -> int:
    x = int.from_bytes(a, "big") ^ int.from_bytes(b, "big")
    return 128 - x.bit_length()


def _scope(a: bytes) -> int:
    if a[0] == 0xFF:
        return a[1] & 0x0F
    if is_ll6(a) or a == b"\x00" * 15 + b"\x01":
        return 2
    return 14


class IPv6Layer:
    """IPv6 half of Host."""

    def _init_ip6(self: Any) -> None:
        self.local6: dict[bytes, tuple[Interface, Addr6]] = {}
        self.dest_cache: dict[bytes, tuple[Interface, bytes]] = {}  # redirects: dst -> next hop
        self.routers: dict[tuple[str, bytes], float] = {}  # default router list -> expiry
        self.router_pref: dict[tuple[str, bytes], int] = {}  # RFC 4191: 1 high, 0, -1 low
        self._rr = 0
        self.accept_ra = not self.router
        self.ident6 = self.rt.rng.getrandbits(32)
        # (dst, interface) -> chosen source; cleared whenever an address or its state changes
        self._src6_cache: dict[tuple[bytes, str], bytes] = {}
        self._init_addrconf()
        self._init_mld()

    def _iface_up6(self: Any, iface: Interface) -> None:
        def transmit(mac: bytes, packet: bytes, iface: Interface = iface) -> None:
            self._xmit(iface, mac, _ET, packet)

        def solicit(ip: bytes, mac: bytes | None, iface: Interface = iface) -> None:
            self._send_ns(iface, ip, mac)

        def failed(ip: bytes, queued: list[bytes]) -> None:
            self._router_unreachable(iface, ip)
            for p in queued[:1]:
                self._icmp6_error(p, icmp6.DEST_UNREACH, icmp6.ADDR_UNREACH)

        iface.neigh6 = NeighborCache(self.rt, solicit, transmit, self.neigh_max,
                                     self.neigh_max_incomplete, on_failure=failed)
        self.join6(iface, ALL_NODES)
        if self.router:
            self.join6(iface, ALL_ROUTERS)
        self._start_link_local(iface)

    def _rebuild_local6(self: Any) -> None:
        self._src6_cache.clear()
        self.local6 = {a.packed: (i, a) for i in self.ifaces for a in i.addrs6
                       if a.state != DUPLICATE}

    # ---- routing and source selection ----------------------------------------------------

    def _iface_for_scope(self: Any, scope: str | None) -> Interface | None:
        if scope:
            i = self.by_name.get(scope)
            if i is not None:
                return i
            for i in self.ifaces:
                if str(i.index) == scope:
                    return i
            return None
        return self.ifaces[0] if self.ifaces else None

    def _route6(self: Any, dst: bytes, scope: str | None = None) -> tuple[bytes | None, Interface | None]:
        """(next hop, interface) for `dst`; next hop None means no route."""
        if dst[0] == 0xFF or is_ll6(dst):
            iface = self._iface_for_scope(scope)
            return (dst if iface is not None else None), iface
        dc = self.dest_cache.get(dst)
        if dc is not None:
            return dc[1], dc[0]
        now = self.rt.now()
        while True:
            r = self.routes6.lookup(int.from_bytes(dst, "big"))
            if r is None or r.expires is None or r.expires > now:
                break
            self.routes6.remove(r.network, r.plen)  # prefix lifetime ran out
        if r is not None and (r.plen > 0 or not self.routers):
            return (r.gateway or dst), r.iface
        rt = self._select_router()
        if rt is not None:
            return rt[1], rt[0]
        if r is not None:
            return (r.gateway or dst), r.iface
        return None, None

    def _select_router(self: Any) -> tuple[Interface, bytes] | None:
        """Default router selection (RFC 4861 6.3.6): prefer routers not known unreachable."""
        now = self.rt.now()
        live = []
        for key, exp in list(self.routers.items()):
            if exp <= now:
                del self.routers[key]
                self.router_pref.pop(key, None)
            else:
                live.append(key)
        if not live:
            return None
        # RFC 4191 3.2: among routers that are (probably) reachable, the highest preference
        pref = self.router_pref
        live.sort(key=lambda k: -pref.get(k, 0))
        for name, addr in live:
            iface = self.by_name[name]
            st = iface.neigh6.state_of(addr)
            if st is not None and st != INCOMPLETE:
                return iface, addr
        self._rr = (self._rr + 1) % len(live)
        name, addr = live[self._rr]
        return self.by_name[name], addr

    def _router_unreachable(self: Any, iface: Interface, ip: bytes) -> None:
        for key in [k for k, (i, nh) in self.dest_cache.items() if nh == ip and i is iface]:
            del self.dest_cache[key]

    def default_routers(self) -> list[dict[str, Any]]:
        now = self.rt.now()
        names = {1: "high", 0: "medium", -1: "low"}
        return [{"addr": str(ipaddress.IPv6Address(a)), "dev": n, "lifetime": round(e - now),
                 "preference": names[self.router_pref.get((n, a), 0)]}
                for (n, a), e in self.routers.items() if e > now]

    def _select_src6(self: Any, dst: bytes, scope: str | None = None,
                     iface: Interface | None = None) -> bytes | None:
        """Source address selection, the RFC 6724 rules that matter on a host:
        prefer the same address, appropriate scope, non-deprecated, outgoing interface,
        longest matching prefix."""
        if dst in self.local6 and self.local6[dst][1].usable:
            return dst
        if iface is None:
            _, iface = self._route6(dst, scope)
        key6 = (dst, iface.name if iface is not None else "")
        hit = self._src6_cache.get(key6)
        if hit is not None:
            return hit
        best = self._select_src6_slow(dst, iface)
        if best is not None:
            if len(self._src6_cache) >= MAX_DEST_CACHE:
                self._src6_cache.clear()
            self._src6_cache[key6] = best
        return best

    def _select_src6_slow(self: Any, dst: bytes, iface: Interface | None) -> bytes | None:
        cands = [a for a in (iface.addrs6 if iface else []) if a.usable]
        if not cands:
            cands = [a for i in self.ifaces for a in i.addrs6 if a.usable and not is_ll6(a.packed)]
        if not cands:
            return None
        ds = _scope(dst)
        use_temp = self.use_tempaddr

        def key(a: Addr6) -> tuple:
            s = _scope(a.packed)
            scope_rank = (0, s) if s >= ds else (1, -s)  # smallest scope >= dst's scope
            # rule 7: prefer temporary addresses when they are in use (RFC 8981)
            return (scope_rank, a.state == "deprecated", a.state == OPTIMISTIC,
                    use_temp and a.origin != TEMPORARY, -_common_prefix(a.packed, dst))

        return min(cands, key=key).packed

    # ---- send --------------------------------------------------------------------------

    def _send6(self: Any, dst: bytes, proto: int, payload: bytes, src: bytes | None,
               hop_limit: int | None, scope: str | None = None, ext: bytes = b"",
               first_nh: int | None = None, tso: int = 0) -> bool:
        """Send `payload` of upper-layer type `proto`; `ext` is a chain of extension headers
        placed before it (first header type `first_nh`)."""
        loc = self.local6.get(dst)
        if loc is not None and loc[1].receives:
            pkt = ipv6.build(src or dst, dst, first_nh if ext else proto, len(ext) + len(payload),
                             hop_limit or 64) + ext + payload
            self.stats["ip6_loopback"] += 1
            self.rt.call_soon(self._rx6, loc[0], memoryview(pkt), loc[0].mac, tso > 0)
            return True
        nexthop, iface = self._route6(dst, scope)
        if nexthop is None or iface is None:
            self.stats["ip6_no_route"] += 1
            return False
        if src is None:
            src = self._select_src6(dst, scope, iface)
            if src is None:
                self.stats["ip6_no_source"] += 1
                return False
        if hop_limit is None:
            hop_limit = 1 if dst[0] == 0xFF else iface.cur_hop_limit
        mtu = iface.mtu
        pm = self.pmtu.get(dst)
        if pm is not None and pm[1] > self.rt.now() and pm[0] < mtu:
            mtu = pm[0]
        nh = first_nh if ext else proto
        total = len(ext) + len(payload)
        if tso and not ext:
            # one packet of several MSS; _xmit writes it with a GSO header
            pkt = ipv6.build(src, dst, nh, total, hop_limit) + payload
            self.stats["ip6_tx"] += 1
            nb = iface.neigh6.entries.get(nexthop) if nexthop[0] != 0xFF else None
            if nb is None or nb.mac is None:
                # it would wait in the neighbour queue and lose its mark: cut it now
                return self._tso_software(pkt, tso, lambda p: self._l2_out6(iface, nexthop, p))
            self._tso_pkt = pkt
            self._tso_mss = tso
            try:
                return self._l2_out6(iface, nexthop, pkt)
            finally:
                self._tso_pkt = None
        if 40 + total <= mtu:
            self.stats["ip6_tx"] += 1
            return self._l2_out6(iface, nexthop, ipv6.build(src, dst, nh, total, hop_limit)
                                 + ext + payload)
        return self._fragment6(iface, nexthop, src, dst, proto, payload, hop_limit, mtu, ext, nh)

    def _fragment6(self: Any, iface: Interface, nexthop: bytes, src: bytes, dst: bytes,
                   proto: int, payload: bytes, hop_limit: int, mtu: int, ext: bytes,
                   nh: int) -> bool:
        """Source fragmentation (RFC 8200 4.5); the whole of `ext` is treated as unfragmentable
        (we only put hop-by-hop options there)."""
        if ext:
            unfrag = bytearray(ext)
            unfrag[0] = ipv6.FRAGMENT  # our ext is one hop-by-hop header: point it at Fragment
            first_nh = nh
        else:
            unfrag = bytearray()
            first_nh = ipv6.FRAGMENT
        step = (mtu - 40 - len(unfrag) - 8) & ~7
        if step < 8:
            self.stats["ip6_frag_fail"] += 1
            return False
        self.ident6 = (self.ident6 + 1 + self.rt.rng.getrandbits(8)) & 0xFFFFFFFF  # RFC 7739
        ident = self.ident6
        n = len(payload)
        ok = True
        for off in range(0, n, step):
            chunk = payload[off:off + step]
            more = off + step < n
            fh = ipv6.fragment_header(proto, off, more, ident)
            body_len = len(unfrag) + 8 + len(chunk)
            pkt = ipv6.build(src, dst, first_nh, body_len, hop_limit) + bytes(unfrag) + fh + chunk
            self.stats["ip6_frag_tx"] += 1
            ok = self._l2_out6(iface, nexthop, pkt) and ok
        return ok

    def _l2_out6(self: Any, iface: Interface, nexthop: bytes, pkt: bytes) -> bool:
        if nexthop[0] == 0xFF:
            self._xmit(iface, ipv6.multicast_mac(nexthop), _ET, pkt)
            return True
        return iface.neigh6.output(nexthop, pkt)

    # ---- receive -------------------------------------------------------------------------

    def _rx6(self: Any, iface: Interface, buf: memoryview, dmac: bytes,
             csum_ok: bool = False) -> None:
        st = self.stats
        try:
            h = ipv6.parse(buf)
        except WireError:
            st["ip6_bad"] += 1
            return
        st["ip6_rx"] += 1
        pkt = buf[:40 + h.payload_len]
        src, dst = h.src, h.dst
        if src[0] == 0xFF:
            st["ip6_bad_src"] += 1
            return
        if dst[0] == 0xFF:
            if dst not in iface.groups6:
                st["ip6_mcast_not_joined"] += 1
                return
        else:
            loc = self.local6.get(dst)
            if loc is None or not loc[1].receives:
                if self.router and loc is None:
                    self._forward6(iface, pkt, h)
                else:
                    st["ip6_not_for_us"] += 1
                return
        self._deliver6(iface, pkt, h, csum_ok)

    def _deliver6(self: Any, iface: Interface, pkt: memoryview, h: ipv6.IPv6Header,
                  csum_ok: bool = False) -> None:
        nh = h.next_header
        if nh == 6 or (nh == 17 and not self.dhcp6):  # no extension headers: straight through
            handler = self.transports.get(nh)
            if handler is not None:
                handler(self._meta6(iface, h, csum_ok), pkt[40:])
                return
        st = self.stats
        try:
            ch = ipv6.walk(pkt, nh, len(pkt))
        except WireError:
            st["ip6_bad_ext"] += 1
            return
        mcast = h.dst[0] == 0xFF
        if ch.hbh is not None and not self._options_ok(pkt, ch.hbh, mcast):
            return
        for area in ch.dstopts:
            if not self._options_ok(pkt, area, mcast):
                return
        if ch.routing is not None and ch.routing[1] > 0:
            # Type 0 is deprecated (RFC 5095) and we implement no other type: both are
            # "unrecognized routing type" with segments left, RFC 8200 4.4.
            st["ip6_routing_refused"] += 1
            self._icmp6_error(pkt, icmp6.PARAM_PROBLEM, icmp6.ERRONEOUS_HEADER, ch.routing[2] + 2)
            return
        if ch.frag is not None:
            self._reassemble6(iface, pkt, h, ch)
            return
        proto = ch.proto
        payload = pkt[ch.offset:]
        if proto == ipv6.ICMPV6:
            self._icmp6_rx(iface, pkt, h, payload)
            return
        if proto == ipv6.NONE:
            return
        if proto == 17 and self.dhcp6 and payload[2:4] == b"\x02\x22":
            client = self.dhcp6.get(iface.name)
            if client is not None:
                client.receive(h.src, h.dst, payload)
                return
        handler = self.transports.get(proto)
        if handler is None:
            st["ip6_unknown_proto"] += 1
            self._icmp6_error(pkt, icmp6.PARAM_PROBLEM, icmp6.UNRECOGNIZED_NH, ch.last_nh_offset)
            return
        handler(self._meta6(iface, h), payload)

    def _meta6(self: Any, iface: Interface, h: ipv6.IPv6Header, csum_ok: bool = False) -> Any:
        c = self.addr_cache
        src = c.v6(h.src, iface.name if is_ll6(h.src) else None)
        return IpMeta(src, c.v6(h.dst), iface, 6, h.hop_limit, csum_ok)

    def _options_ok(self: Any, pkt: memoryview, area: tuple[int, int], mcast: bool) -> bool:
        """Unknown options are handled by the two high bits of their type (RFC 8200 4.2)."""
        for t, voff, _ln in ipv6.options(pkt, area[0], area[1]):
            if t == ipv6.OPT_ROUTER_ALERT:
                continue
            action = t >> 6
            if action == 0:
                continue
            self.stats["ip6_unknown_option"] += 1
            if action == 2 or (action == 3 and not mcast):
                self._icmp6_error(pkt, icmp6.PARAM_PROBLEM, icmp6.UNRECOGNIZED_OPTION, voff - 2)
            return False
        return True

    def _reassemble6(self: Any, iface: Interface, pkt: memoryview, h: ipv6.IPv6Header,
                     ch: ipv6.ExtChain) -> None:
        st = self.stats
        f = ch.frag
        assert f is not None
        st["ip6_frag_rx"] += 1
        data = pkt[ch.offset:]
        unfrag = bytearray(pkt[:f.unfrag_end])
        unfrag[ch.last_nh_offset] = f.next_header
        if f.offset == 0 and not f.more:  # atomic fragment (RFC 6946): no reassembly
            whole = unfrag + data
        else:
            if f.more and len(data) & 7:
                st["ip6_frag_bad_len"] += 1
                self._icmp6_error(pkt, icmp6.PARAM_PROBLEM, icmp6.ERRONEOUS_HEADER, 4)
                return
            if f.offset + len(data) > 65535:
                st["ip6_frag_bad_len"] += 1
                self._icmp6_error(pkt, icmp6.PARAM_PROBLEM, icmp6.ERRONEOUS_HEADER, f.unfrag_end + 2)
                return
            first = (iface, bytes(unfrag), bytes(pkt)) if f.offset == 0 else None
            res = self.reasm6.add((h.src, h.dst, f.ident), f.offset, f.more, data, first)
            if res is None:
                return
            payload, first = res
            iface, unfrag_b, _ = first
            whole = bytearray(unfrag_b) + payload
            st["ip6_reassembled"] += 1
        struct.pack_into("!H", whole, 4, len(whole) - 40)
        mv = memoryview(bytes(whole))
        self._deliver6(iface, mv, h._replace(payload_len=len(whole) - 40, next_header=whole[6]))

    def _reasm6_timeout(self: Any, key: Any, first: Any) -> None:
        _, _, orig = first
        self._icmp6_error(orig, icmp6.TIME_EXCEEDED, 1)

    # ---- forwarding --------------------------------------------------------------------

    def _forward6(self: Any, in_iface: Interface, pkt: memoryview, h: ipv6.IPv6Header) -> None:
        st = self.stats
        if is_ll6(h.src) or is_ll6(h.dst) or h.src == UNSPEC:
            st["ip6_fwd_beyond_scope"] += 1
            if not is_ll6(h.dst) and h.src != UNSPEC:
                self._icmp6_error(pkt, icmp6.DEST_UNREACH, 2)
            return
        if h.hop_limit <= 1:
            st["ip6_hop_limit_exceeded"] += 1
            self._icmp6_error(pkt, icmp6.TIME_EXCEEDED, 0)
            return
        nexthop, iface = self._route6(h.dst)
        if nexthop is None or iface is None:
            st["ip6_fwd_no_route"] += 1
            self._icmp6_error(pkt, icmp6.DEST_UNREACH, icmp6.NO_ROUTE)
            return
        if len(pkt) > iface.mtu:
            st["ip6_fwd_too_big"] += 1
            self._icmp6_error(pkt, icmp6.PACKET_TOO_BIG, 0, iface.mtu)
            return
        out = bytearray(pkt)
        out[7] -= 1
        st["ip6_forwarded"] += 1
        if iface is in_iface and self._onlink6(in_iface, h.src):
            self._send_redirect(in_iface, pkt, h.src, h.dst, nexthop)
        self._l2_out6(iface, nexthop, bytes(out))

    def _onlink6(self: Any, iface: Interface, addr: bytes) -> bool:
        r = self.routes6.lookup(int.from_bytes(addr, "big"))
        return r is not None and r.iface is iface and r.gateway is None

    def _send_redirect(self: Any, iface: Interface, pkt: memoryview, src: bytes, dst: bytes,
                       target: bytes) -> None:
        ll = iface.ll_addr()
        if ll is None or not self.icmp_limit.allow(self.rt.now()):
            return
        tlla = iface.neigh6.lookup(target)
        msg = icmp6.redirect(target, dst, tlla, bytes(pkt), ll.packed, src)
        self.stats["icmp6_redirect_tx"] += 1
        self._send6(src, ipv6.ICMPV6, msg, ll.packed, 255)

    # ---- ICMPv6 --------------------------------------------------------------------------

    def _ping6(self: Any, dst: bytes, ident: int, seq: int, data: bytes, src: Any,
               scope: str | None) -> bool:
        s = src.packed if src else self._select_src6(dst, scope)
        if s is None:
            self.stats["ip6_no_source"] += 1
            return False
        return self._send6(dst, ipv6.ICMPV6, icmp6.echo(True, ident, seq, data, s, dst), s, None,
                           scope)

    def _icmp6_rx(self: Any, iface: Interface, pkt: memoryview, h: ipv6.IPv6Header,
                  msg: memoryview) -> None:
        st = self.stats
        try:
            icmp6.verify(msg, h.src, h.dst)
        except WireError:
            st["icmp6_bad"] += 1
            return
        st["icmp6_rx"] += 1
        t = msg[0]
        if t == icmp6.ECHO_REQUEST:
            if len(msg) < 8:
                st["icmp6_bad"] += 1
                return
            st["icmp6_echo_rx"] += 1
            src = h.dst if h.dst[0] != 0xFF else self._select_src6(h.src, iface.name, iface)
            if src is None:
                return
            reply = bytearray(msg)
            reply[0] = icmp6.ECHO_REPLY
            reply[2:4] = b"\x00\x00"
            self._send6(h.src, ipv6.ICMPV6, icmp6.finish(reply, src, h.src), src, None,
                        iface.name)
        elif t == icmp6.ECHO_REPLY:
            if len(msg) >= 8:
                ident, seq = struct.unpack_from("!HH", msg, 4)
                self.echo.reply(6, ident, seq, self._meta6(iface, h), len(msg) - 8)
        elif t < 128:
            self._icmp6_error_rx(iface, h, msg)
        elif 133 <= t <= 137:
            if h.hop_limit != 255 or msg[1] != 0:
                st["nd_bad"] += 1  # RFC 4861: ND from beyond the link is forged
                return
            try:
                if t == icmp6.NS:
                    self._ns_rx(iface, h, msg)
                elif t == icmp6.NA:
                    self._na_rx(iface, h, msg)
                elif t == icmp6.RA:
                    self._ra_rx(iface, h, msg)
                elif t == icmp6.RS:
                    self._rs_rx(iface, h, msg)
                else:
                    self._redirect_rx(iface, h, msg)
            except WireError:
                st["nd_bad"] += 1
        elif t == icmp6.MLD_QUERY:
            try:
                self._mld_query_rx(iface, h, msg)
            except WireError:
                st["mld_bad"] += 1
        else:
            st["icmp6_unhandled"] += 1

    def _icmp6_error_rx(self: Any, iface: Interface, h: ipv6.IPv6Header, msg: memoryview) -> None:
        st = self.stats
        t, code = msg[0], msg[1]
        if len(msg) < 48:
            st["icmp6_bad"] += 1
            return
        quoted = msg[8:]
        qsrc = bytes(quoted[8:24])
        qdst = bytes(quoted[24:40])
        if qsrc not in self.local6:
            st["icmp6_error_not_ours"] += 1
            return
        st["icmp6_error_rx"] += 1
        if t == icmp6.PACKET_TOO_BIG:
            (mtu,) = _U32.unpack_from(msg, 4)
            # Below 1280 is not honoured (RFC 8200 5 / RFC 8021 dropped atomic fragments).
            self._update_pmtu(qdst, mtu, ipv6.MIN_MTU)
        try:
            ch = ipv6.walk(quoted, quoted[6], len(quoted))
        except WireError:
            return
        if ch.frag is not None and ch.frag.offset != 0:
            return
        proto = ch.frag.next_header if ch.frag is not None else ch.proto
        handler = self.error_handlers.get(proto)
        if handler is not None:
            meta = IpMeta(ipaddress.IPv6Address(qsrc), ipaddress.IPv6Address(qdst), iface, 6,
                          quoted[7])
            handler(meta, t, code, bytes(quoted[ch.offset:]))

    def _icmp6_error(self: Any, pkt: bytes | memoryview, t: int, code: int, param: int = 0) -> None:
        """An ICMPv6 error about `pkt` unless RFC 4443 2.4(e) forbids it; rate limited."""
        if len(pkt) < 40:
            return
        src = bytes(pkt[8:24])
        dst = bytes(pkt[24:40])
        if src == UNSPEC or src[0] == 0xFF:
            return
        if dst[0] == 0xFF and not (t == icmp6.PACKET_TOO_BIG or
                                   (t == icmp6.PARAM_PROBLEM and code == 2)):
            return
        if pkt[6] == ipv6.ICMPV6 and len(pkt) > 40 and pkt[40] < 128:
            return  # never about an ICMPv6 error
        if not self.icmp_limit.allow(self.rt.now()):
            return
        my = dst if dst in self.local6 else self._select_src6(src)
        if my is None:
            return
        self.stats["icmp6_error_tx"] += 1
        msg = icmp6.error(t, code, pkt, my, src, param)
        self._send6(src, ipv6.ICMPV6, msg, my, None)

    # ---- Neighbor Discovery --------------------------------------------------------------

    def _send_nd(self: Any, iface: Interface, src: bytes, dst: bytes, msg: bytes,
                 mac: bytes | None = None) -> None:
        pkt = ipv6.build(src, dst, ipv6.ICMPV6, len(msg), 255) + msg
        if mac is not None:
            self._xmit(iface, mac, _ET, pkt)
        else:
            self._l2_out6(iface, dst, pkt)

    def _send_ns(self: Any, iface: Interface, target: bytes, mac: bytes | None) -> None:
        src = self._select_src6(target, iface.name, iface)
        if src is None:
            self.stats["nd_no_source"] += 1
            return
        dst = target if mac is not None else ipv6.solicited_node(target)
        self.stats["nd_ns_tx"] += 1
        self._send_nd(iface, src, dst, icmp6.ns(target, iface.mac, src, dst), mac)

    def _send_na(self: Any, iface: Interface, target: bytes, dst: bytes, solicited: bool,
                 mac: bytes | None = None) -> None:
        flags = icmp6.NA_OVERRIDE | (icmp6.NA_SOLICITED if solicited else 0) | (
            icmp6.NA_ROUTER if self.router else 0)
        self.stats["nd_na_tx"] += 1
        self._send_nd(iface, target, dst, icmp6.na(target, flags, iface.mac, target, dst), mac)

    def _ns_rx(self: Any, iface: Interface, h: ipv6.IPv6Header, msg: memoryview) -> None:
        if len(msg) < 24:
            raise WireError("NS shorter than 24 bytes")
        target = bytes(msg[8:24])
        if target[0] == 0xFF:
            raise WireError("NS for a multicast target")
        opts = icmp6.parse_options(msg, 24)
        slla = icmp6.option_lla(opts, icmp6.OPT_SLLA)
        dad = h.src == UNSPEC
        if dad and (h.dst != ipv6.solicited_node(target) or slla is not None):
            raise WireError("DAD NS must go to the solicited-node group and carry no SLLA")
        self.stats["nd_ns_rx"] += 1
        if slla is not None and slla[0] & 1:
            raise WireError("multicast link-layer address in NS")
        loc = self.local6.get(target)
        if loc is None or loc[0] is not iface:
            return
        a = loc[1]
        if a.state in (TENTATIVE, OPTIMISTIC) and a.dad_timer is not None:
            if dad:
                nonce = next((v[2:] for t, v in opts if t == icmp6.OPT_NONCE), None)
                if nonce is not None and nonce == self._dad_nonce(a):
                    return  # our own probe looped back (RFC 7527)
                self._dad_failed(iface, a, "NS")
            return  # a tentative address is not answered for
        if dad:
            self._send_na(iface, target, ALL_NODES, False)
            return
        if slla is not None:
            iface.neigh6.learned(h.src, slla)
        self._send_na(iface, target, h.src, True)

    def _na_rx(self: Any, iface: Interface, h: ipv6.IPv6Header, msg: memoryview) -> None:
        if len(msg) < 24:
            raise WireError("NA shorter than 24 bytes")
        flags = msg[4]
        target = bytes(msg[8:24])
        if target[0] == 0xFF:
            raise WireError("NA for a multicast target")
        solicited = bool(flags & icmp6.NA_SOLICITED)
        if solicited and h.dst[0] == 0xFF:
            raise WireError("solicited NA to a multicast address")
        opts = icmp6.parse_options(msg, 24)
        tlla = icmp6.option_lla(opts, icmp6.OPT_TLLA)
        self.stats["nd_na_rx"] += 1
        loc = self.local6.get(target)
        if loc is not None:
            a = loc[1]
            if a.state in (TENTATIVE, OPTIMISTIC) and a.dad_timer is not None:
                self._dad_failed(loc[0], a, "NA")
            else:
                self.stats["nd_duplicate_seen"] += 1
            return
        is_router = bool(flags & icmp6.NA_ROUTER)
        iface.neigh6.advert(target, tlla, solicited, bool(flags & icmp6.NA_OVERRIDE), is_router)
        if not is_router and (iface.name, target) in self.routers:
            del self.routers[(iface.name, target)]  # RFC 4861 7.2.5: no longer a router
            self.router_pref.pop((iface.name, target), None)

    def _rs_rx(self: Any, iface: Interface, h: ipv6.IPv6Header, msg: memoryview) -> None:
        if len(msg) < 8:
            raise WireError("RS shorter than 8 bytes")
        opts = icmp6.parse_options(msg, 8)
        slla = icmp6.option_lla(opts, icmp6.OPT_SLLA)
        if h.src == UNSPEC and slla is not None:
            raise WireError("RS from :: with an SLLA option")
        self.stats["nd_rs_rx"] += 1
        if not self.router:
            return
        if slla is not None:
            iface.neigh6.learned(h.src, slla)
        if self.ra_daemon is not None:
            self.ra_daemon.solicited(iface)

    def _redirect_rx(self: Any, iface: Interface, h: ipv6.IPv6Header, msg: memoryview) -> None:
        if len(msg) < 40:
            raise WireError("redirect shorter than 40 bytes")
        target = bytes(msg[8:24])
        dest = bytes(msg[24:40])
        opts = icmp6.parse_options(msg, 40)
        if not is_ll6(h.src) or dest[0] == 0xFF or not (is_ll6(target) or target == dest):
            raise WireError("redirect fails RFC 4861 8.1 validation")
        if self.router:
            return
        nexthop, out = self._route6(dest)
        if nexthop != h.src or out is not iface:
            self.stats["nd_redirect_not_from_router"] += 1
            return
        self.stats["nd_redirect_rx"] += 1
        if len(self.dest_cache) >= MAX_DEST_CACHE:
            self.dest_cache.pop(next(iter(self.dest_cache)))
        self.dest_cache[dest] = (iface, target)
        tlla = icmp6.option_lla(opts, icmp6.OPT_TLLA)
        if tlla is not None:
            iface.neigh6.learned(target, tlla)
        if target != dest:
            n = iface.neigh6.entries.get(target)
            if n is not None:
                n.is_router = True

