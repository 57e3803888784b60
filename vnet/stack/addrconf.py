"""IPv6 stateless address autoconfiguration (RFC 4862) with stable interface identifiers
(RFC 7217), duplicate address detection, optimistic DAD for hand-given addresses
(RFC 4429), router solicitation, and the prefix list / default router list fed by
Router Advertisements (RFC 4861 6.3.4)."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import Any

from vnet.stack.interface import (
    DEPRECATED,
    DUPLICATE,
    LINK_LOCAL,
    MANUAL,
    OPTIMISTIC,
    PREFERRED,
    SLAAC,
    TEMPORARY,
    TENTATIVE,
    Addr6,
    Interface,
)
from vnet.wire import icmp6, ipv6
from vnet.wire.errors import WireError

MAX_RTR_SOLICITATION_DELAY = 1.0
RTR_SOLICITATION_INTERVAL = 4.0
MAX_RTR_SOLICITATIONS = 3
IDGEN_RETRIES = 3  # RFC 7217 section 6
TWO_HOURS = 7200.0
INFINITY = 0xFFFFFFFF
MAX_SLAAC_ADDRS = 16  # per interface: a flood of RAs cannot add addresses without bound
MAX_RA_PREFIXES = 64
MAX_ROUTERS = 16
MAX_DNS = 8
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
LL_PREFIX = bytes.fromhex("fe80000000000000")
UNSPEC = b"\x00" * 16
# RFC 8981 temporary addresses
TEMP_VALID_LIFETIME = 2 * 86400.0
TEMP_PREFERRED_LIFETIME = 86400.0
REGEN_ADVANCE = 5.0  # 2 + TEMP_IDGEN_RETRIES * DupAddrDetectTransmits * RetransTimer
MAX_DESYNC_FRACTION = 0.4


def _life(v: int, now: float) -> float:
    return float("inf") if v == INFINITY else now + v


class AddrConf:
    def _init_addrconf(self: Any) -> None:
        self._lifetime_timer: Any = None
        self._nonces: dict[bytes, bytes] = {}
        self.dns6: dict[tuple[str, bytes], float] = {}  # RFC 8106 RDNSS -> expiry
        # RFC 8981 temporary addresses: off by default, as on Linux (use_tempaddr=0)
        self.use_tempaddr = False
        self.temp_valid_lifetime = TEMP_VALID_LIFETIME
        self.temp_preferred_lifetime = TEMP_PREFERRED_LIFETIME
        self.rs_sent: dict[str, int] = {}
        self.ra_seen: dict[str, int] = {}

    # ---- stable identifiers ------------------------------------------------------------

    def stable_iid(self: Any, iface: Interface, prefix: bytes, dad_counter: int = 0) -> bytes:
        """RFC 7217: F(Prefix, Net_Iface, Network_ID, DAD_Counter, secret_key), 64 bits."""
        h = hashlib.sha256(prefix[:8] + iface.name.encode() + b"\x00" + bytes([dad_counter])
                           + self.secret).digest()
        iid = bytearray(h[:8])
        if iid == bytearray(8) or iid[:7] == b"\xfd\xff\xff\xff\xff\xff\xff":
            iid[7] ^= 1  # avoid the subnet-router anycast and reserved IIDs (RFC 5453)
        return bytes(iid)

    # ---- addresses ---------------------------------------------------------------------

    def _start_link_local(self: Any, iface: Interface, counter: int = 0) -> None:
        addr = LL_PREFIX + self.stable_iid(iface, LL_PREFIX, counter)
        a = Addr6(ipaddress.IPv6Address(addr), 64, TENTATIVE, LINK_LOCAL)
        a.dad_counter = counter
        self._install6(iface, a)  # link-local destinations are routed by scope, not by table
        self._start_dad(iface, a, first=True)

    def _add_addr6(self: Any, iface: Interface, ifa: ipaddress.IPv6Interface,
                   origin: str = MANUAL) -> Addr6:
        p = ifa.ip.packed
        if p in self.local6:
            raise ValueError(f"address {ifa.ip} is configured already")
        if p[0] == 0xFF or p == UNSPEC:
            raise ValueError(f"{ifa.ip} cannot be an interface address")
        # Hand-given addresses are optimistic (RFC 4429): usable at once while DAD runs.
        a = Addr6(ifa.ip, ifa.network.prefixlen, OPTIMISTIC, origin)
        self._install6(iface, a)
        net = ifa.network
        if net.prefixlen < 128 and not ifa.ip.is_link_local:
            self.routes6.add(int(net.network_address), net.prefixlen, iface, None, "connected")
        self._start_dad(iface, a)
        return a

    def _install6(self: Any, iface: Interface, a: Addr6) -> None:
        iface.addrs6.append(a)
        self._rebuild_local6()
        self.join6(iface, ipv6.solicited_node(a.packed))

    def _del_addr6(self: Any, iface: Interface, packed: bytes) -> None:
        for a in iface.addrs6:
            if a.packed == packed:
                self._remove6(iface, a)
                return
        raise ValueError(f"{ipaddress.IPv6Address(packed)} is not on {iface.name}")

    def _remove6(self: Any, iface: Interface, a: Addr6) -> None:
        if a.dad_timer is not None:
            a.dad_timer.cancel()
            a.dad_timer = None
        if a in iface.addrs6:
            iface.addrs6.remove(a)
            if a.state != DUPLICATE:
                self.leave6(iface, ipv6.solicited_node(a.packed))
        if a.origin == MANUAL and not a.addr.is_link_local:
            net = ipaddress.IPv6Network((a.packed, a.plen), strict=False)
            if not any(b.origin == MANUAL and b.plen == a.plen and
                       ipaddress.IPv6Network((b.packed, b.plen), strict=False) == net
                       for b in iface.addrs6):
                r = self.routes6.get(int(net.network_address), net.prefixlen)
                if r is not None and r.origin == "connected":
                    self.routes6.remove(int(net.network_address), net.prefixlen)
        self._rebuild_local6()

    # ---- duplicate address detection ---------------------------------------------------

    def _dad_nonce(self: Any, a: Addr6) -> bytes:
        """A random nonce per address (RFC 7527) to recognise our own looped-back probes."""
        n = self._nonces.get(a.packed)
        if n is None:
            if len(self._nonces) > 256:
                self._nonces.clear()
            n = self._nonces[a.packed] = self.rt.rng.getrandbits(48).to_bytes(6, "big")
        return n

    def _start_dad(self: Any, iface: Interface, a: Addr6, first: bool = False) -> None:
        if iface.dad_transmits == 0:
            self._dad_done(iface, a)
            return
        a.dad_probes = 0
        delay = self.rt.rng.uniform(0, MAX_RTR_SOLICITATION_DELAY) if first else \
            self.rt.rng.uniform(0, 0.1)
        a.dad_timer = self.rt.call_later(delay, self._dad_step, iface, a)

    def _dad_step(self: Any, iface: Interface, a: Addr6) -> None:
        a.dad_timer = None
        if a not in iface.addrs6 or a.state not in (TENTATIVE, OPTIMISTIC):
            return
        if a.dad_probes >= iface.dad_transmits:
            self._dad_done(iface, a)
            return
        a.dad_probes += 1
        self.stats["dad_ns_tx"] += 1
        dst = ipv6.solicited_node(a.packed)
        self._send_nd(iface, UNSPEC, dst, icmp6.ns(a.packed, None, UNSPEC, dst,
                                                    nonce=self._dad_nonce(a)))
        a.dad_timer = self.rt.call_later(iface.retrans_timer, self._dad_step, iface, a)

    def _dad_done(self: Any, iface: Interface, a: Addr6) -> None:
        a.state = PREFERRED if self.rt.now() < a.preferred_until else DEPRECATED
        self._src6_cache.clear()
        self.stats["dad_ok"] += 1
        if a.origin == LINK_LOCAL:
            self._link_local_ready(iface)

    def _dad_failed(self: Any, iface: Interface, a: Addr6, why: str) -> None:
        self.stats["dad_failed"] += 1
        if a.dad_timer is not None:
            a.dad_timer.cancel()
            a.dad_timer = None
        self.leave6(iface, ipv6.solicited_node(a.packed))
        a.state = DUPLICATE
        self._rebuild_local6()
        # Stable addresses get another identifier (RFC 7217 section 6); others stay duplicate.
        if a.origin in (LINK_LOCAL, SLAAC, TEMPORARY) and a.dad_counter < IDGEN_RETRIES:
            iface.addrs6.remove(a)
            if a.origin == LINK_LOCAL:
                self._start_link_local(iface, a.dad_counter + 1)
            elif a.origin == TEMPORARY:
                self._temp_create(iface, a.packed[:8], a.valid_until, a.preferred_until,
                                  self.rt.now(), a.dad_counter + 1)
            else:
                self._slaac_add(iface, a.packed[:8], a.dad_counter + 1, a.valid_until,
                                a.preferred_until)

    # ---- router solicitation -------------------------------------------------------------

    def _link_local_ready(self: Any, iface: Interface) -> None:
        self._mld_ready(iface)
        if self.accept_ra and not self.router:
            self.rs_sent[iface.name] = 0
            self._send_rs(iface)
        if self.ra_daemon is not None:
            self.ra_daemon.iface_ready(iface)

    def _send_rs(self: Any, iface: Interface) -> None:
        if self.ra_seen.get(iface.name) or self.rs_sent.get(iface.name, 0) >= MAX_RTR_SOLICITATIONS:
            return
        self.rs_sent[iface.name] = self.rs_sent.get(iface.name, 0) + 1
        ll = iface.ll_addr()
        src = ll.packed if ll is not None else UNSPEC
        self.stats["nd_rs_tx"] += 1
        self._send_nd(iface, src, ALL_ROUTERS,
                      icmp6.rs(iface.mac if ll is not None else None, src, ALL_ROUTERS))
        self.rt.call_later(RTR_SOLICITATION_INTERVAL, self._send_rs, iface)

    # ---- router advertisements -----------------------------------------------------------

    def _ra_rx(self: Any, iface: Interface, h: Any, msg: memoryview) -> None:
        if not (h.src[0] == 0xFE and (h.src[1] & 0xC0) == 0x80):
            raise WireError("RA from a non-link-local source")
        ra = icmp6.parse_ra(msg)
        self.stats["nd_ra_rx"] += 1
        slla = icmp6.option_lla(ra.options, icmp6.OPT_SLLA)
        if slla is not None:
            iface.neigh6.learned(h.src, slla)
            n = iface.neigh6.entries.get(h.src)
            if n is not None:
                n.is_router = True
        if self.router or not self.accept_ra:
            return
        self.ra_seen[iface.name] = self.ra_seen.get(iface.name, 0) + 1
        now = self.rt.now()
        if ra.flags & icmp6.RA_MANAGED and self.dhcp6_on_managed and iface.name not in self.dhcp6:
            from vnet.stack.dhcp6_client import Dhcp6Client
            Dhcp6Client(self, iface).start()
        if ra.hop_limit:
            iface.cur_hop_limit = ra.hop_limit
        if ra.reachable and ra.reachable // 1000 <= 3600:
            iface.base_reachable_time = ra.reachable / 1000.0
            iface.neigh6.reachable_time = iface.base_reachable_time
        if ra.retrans:
            iface.retrans_timer = ra.retrans / 1000.0
            iface.neigh6.retrans_time = iface.retrans_timer
        key = (iface.name, h.src)
        prf = (ra.flags >> 3) & 3
        if ra.lifetime and prf != 2:  # 10 is reserved: ignore as a default router (RFC 4191)
            if key in self.routers or len(self.routers) < MAX_ROUTERS:
                self.routers[key] = now + ra.lifetime
                self.router_pref[key] = {0: 0, 1: 1, 3: -1}[prf]
        else:
            self.routers.pop(key, None)
            self.router_pref.pop(key, None)
        for t, opt in ra.options:
            if t == icmp6.OPT_MTU:
                mtu = icmp6.parse_mtu(opt)
                if ipv6.MIN_MTU <= mtu <= iface.link_mtu:
                    iface.mtu = mtu
            elif t == icmp6.OPT_PREFIX:
                self._prefix_rx(iface, icmp6.parse_prefix(opt), now)
            elif t == icmp6.OPT_ROUTE_INFO:
                self._route_info_rx(iface, h.src, opt, now)
            elif t == icmp6.OPT_RDNSS:
                life, servers = icmp6.parse_rdnss(opt)
                for srv in servers[:MAX_DNS]:
                    key = (iface.name, srv)
                    if life == 0:
                        self.dns6.pop(key, None)
                    elif key in self.dns6 or len(self.dns6) < MAX_DNS:
                        self.dns6[key] = _life(life, now)
        self._schedule_lifetimes()

    def _route_info_rx(self: Any, iface: Interface, router: bytes, opt: bytes,
                       now: float) -> None:
        """A more-specific route through this router (RFC 4191 2.3, type C host)."""
        prefix, plen, life, prf = icmp6.parse_route_info(opt)
        if prf == 2 or plen == 0:
            return  # reserved preference; ::/0 is the router lifetime's business
        net = ipaddress.IPv6Network((prefix, plen), strict=False)
        key = int(net.network_address)
        r = self.routes6.get(key, plen)
        if life == 0:
            if r is not None and r.origin == "ra" and r.gateway == router:
                self.routes6.remove(key, plen)
            return
        if r is not None and r.origin not in ("ra",):
            return  # never override connected or static routes
        if r is None and sum(1 for x in self.routes6 if x.origin == "ra") >= MAX_RA_PREFIXES:
            return
        self.routes6.add(key, plen, iface, router, "ra", _life(life, now))
        self.stats["ra_route_info"] += 1

    def _prefix_rx(self: Any, iface: Interface, pi: icmp6.PrefixInfo, now: float) -> None:
        prefix = ipaddress.IPv6Network((pi.prefix, pi.prefix_len), strict=False)
        if prefix.is_link_local or prefix.is_multicast:
            return
        if pi.preferred > pi.valid:
            self.stats["ra_prefix_bad_lifetimes"] += 1
            return
        net = int(prefix.network_address)
        if pi.flags & icmp6.PI_ONLINK:
            if pi.valid == 0:
                r = self.routes6.get(net, pi.prefix_len)
                if r is not None and r.origin == "ra":
                    self.routes6.remove(net, pi.prefix_len)
            else:
                r = self.routes6.get(net, pi.prefix_len)
                if r is None:
                    if sum(1 for x in self.routes6 if x.origin == "ra") < MAX_RA_PREFIXES:
                        self.routes6.add(net, pi.prefix_len, iface, None, "ra",
                                         _life(pi.valid, now))
                elif r.origin == "ra":
                    r.expires = _life(pi.valid, now)
        if pi.flags & icmp6.PI_AUTO and pi.valid:
            if pi.prefix_len != 64:
                self.stats["ra_prefix_not_64"] += 1  # RFC 4862 5.5.3(d): IID length mismatch
                return
            p8 = prefix.network_address.packed[:8]
            existing = [a for a in iface.addrs6 if a.origin == SLAAC and a.packed[:8] == p8
                        and a.state != DUPLICATE]
            valid = _life(pi.valid, now)
            preferred = _life(pi.preferred, now)
            if existing:
                for a in existing:
                    # RFC 4862 5.5.3(e): the "two-hour rule" against lifetime-shortening attacks
                    remaining = a.valid_until - now
                    if pi.valid > TWO_HOURS or valid > a.valid_until:
                        a.valid_until = valid
                    elif remaining > TWO_HOURS:
                        a.valid_until = now + TWO_HOURS
                    a.preferred_until = preferred
                    if a.state == DEPRECATED and preferred > now:
                        a.state = PREFERRED
                        self._src6_cache.clear()
            elif sum(1 for a in iface.addrs6 if a.origin == SLAAC) < MAX_SLAAC_ADDRS:
                self._slaac_add(iface, p8, 0, valid, preferred)
            if self.use_tempaddr:
                self._temp_update(iface, p8, valid, preferred, now)

    def _slaac_add(self: Any, iface: Interface, p8: bytes, counter: int, valid: float,
                   preferred: float) -> None:
        addr = p8 + self.stable_iid(iface, p8, counter)
        if addr in self.local6:
            return
        a = Addr6(ipaddress.IPv6Address(addr), 64, TENTATIVE, SLAAC)
        a.dad_counter = counter
        a.valid_until = valid
        a.preferred_until = preferred
        self._install6(iface, a)
        self.stats["slaac_addr"] += 1
        self._start_dad(iface, a)
        self._schedule_lifetimes()

    # ---- temporary addresses (RFC 8981) --------------------------------------------------

    def _temps(self: Any, iface: Interface, p8: bytes) -> list[Addr6]:
        return [a for a in iface.addrs6 if a.origin == TEMPORARY and a.packed[:8] == p8
                and a.state != DUPLICATE]

    def _temp_update(self: Any, iface: Interface, p8: bytes, valid: float, preferred: float,
                     now: float) -> None:
        temps = self._temps(iface, p8)
        for a in temps:  # 3.4: never beyond the temporary maxima counted from creation
            a.valid_until = min(valid, a.created + self.temp_valid_lifetime)
            a.preferred_until = min(preferred, a.preferred_until)
        if not any(a.preferred_until > now + REGEN_ADVANCE for a in temps):
            self._temp_create(iface, p8, valid, preferred, now)

    def _temp_create(self: Any, iface: Interface, p8: bytes, valid: float, preferred: float,
                     now: float, counter: int = 0) -> None:
        if sum(1 for a in iface.addrs6 if a.origin == TEMPORARY) >= MAX_SLAAC_ADDRS:
            return
        desync = self.rt.rng.uniform(0, MAX_DESYNC_FRACTION * self.temp_preferred_lifetime)
        pref = min(preferred, now + self.temp_preferred_lifetime - desync)
        if pref - now <= REGEN_ADVANCE:
            return  # 3.3.1 step 7: too short to be worth it
        iid = bytearray(self.rt.rng.getrandbits(64).to_bytes(8, "big"))
        if iid[:7] == b"\xfd\xff\xff\xff\xff\xff\xff" or not any(iid):
            iid[7] ^= 0x55  # keep clear of reserved identifiers (RFC 5453)
        addr = p8 + bytes(iid)
        if addr in self.local6:
            return
        a = Addr6(ipaddress.IPv6Address(addr), 64, TENTATIVE, TEMPORARY)
        a.created = now
        a.dad_counter = counter
        a.valid_until = min(valid, now + self.temp_valid_lifetime)
        a.preferred_until = pref
        self._install6(iface, a)
        self.stats["temp_addr"] += 1
        self._start_dad(iface, a)
        self._schedule_lifetimes()

    def _temp_regenerate(self: Any, now: float) -> None:
        """REGEN_ADVANCE before a temporary address is deprecated, make its successor."""
        for iface in self.ifaces:
            for a in [b for b in iface.addrs6 if b.origin == TEMPORARY and b.state != DUPLICATE]:
                if a.preferred_until - REGEN_ADVANCE > now:
                    continue
                p8 = a.packed[:8]
                if any(b.preferred_until > a.preferred_until for b in self._temps(iface, p8)):
                    continue  # its successor exists
                pub = next((b for b in iface.addrs6 if b.origin == SLAAC and b.packed[:8] == p8
                            and b.state != DUPLICATE), None)
                if pub is not None and pub.preferred_until > now:
                    self._temp_create(iface, p8, pub.valid_until, pub.preferred_until, now)

    # ---- lifetimes ---------------------------------------------------------------------

    def _schedule_lifetimes(self: Any) -> None:
        now = self.rt.now()
        times = [t for i in self.ifaces for a in i.addrs6
                 for t in (a.valid_until, a.preferred_until) if now < t < float("inf")]
        times += [a.preferred_until - REGEN_ADVANCE for i in self.ifaces for a in i.addrs6
                  if a.origin == TEMPORARY and now < a.preferred_until - REGEN_ADVANCE]
        times += [e for e in self.routers.values() if e > now]
        times += [r.expires for r in self.routes6 if r.expires is not None and
                  now < r.expires < float("inf")]
        if self._lifetime_timer is not None:
            self._lifetime_timer.cancel()
            self._lifetime_timer = None
        if times:
            self._lifetime_timer = self.rt.call_at(min(times) + 0.001, self._lifetimes_due)

    def _lifetimes_due(self: Any) -> None:
        self._lifetime_timer = None
        now = self.rt.now()
        for iface in self.ifaces:
            for a in list(iface.addrs6):
                if a.valid_until <= now:
                    self.stats["addr_expired"] += 1
                    self._remove6(iface, a)
                elif a.preferred_until <= now and a.state == PREFERRED:
                    a.state = DEPRECATED
                    self._src6_cache.clear()
        if self.use_tempaddr:
            self._temp_regenerate(now)
        for key, e in list(self.routers.items()):
            if e <= now:
                del self.routers[key]
                self.router_pref.pop(key, None)
        for r in list(self.routes6):
            if r.expires is not None and r.expires <= now:
                self.routes6.remove(r.network, r.plen)
        self._schedule_lifetimes()
