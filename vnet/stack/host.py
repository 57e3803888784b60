"""The user-space IPv4/IPv6 host (and router): interfaces, addresses, routing, dispatch.

Sans-IO: frames arrive through each Interface's Port and leave through it; time
comes from the Runtime. The IPv4 half lives in `ip4.py`, the IPv6 half (with
Neighbor Discovery) in `ip6.py`, address configuration in `addrconf.py`, MLD in
`mld.py`; they are mixed into `Host` so the per-packet path is plain method calls.

The seam for transports (UDP, TCP) is `register_transport` / `register_error_handler`
/ `ip_send` / `source_address_for` / `path_mtu`.
"""

from __future__ import annotations

import functools
import ipaddress
import struct
from collections import Counter
from collections.abc import Callable
from typing import Any

from vnet.link.offload import PENDING, accepts_offload
from vnet.runtime.base import Runtime
from vnet.stack.addrconf import AddrConf
from vnet.stack.fragment import Reassembler
from vnet.stack.icmp import EchoTable, TokenBucket
from vnet.stack.interface import Interface
from vnet.stack.ip4 import IPv4Layer
from vnet.stack.ip6 import IPv6Layer
from vnet.stack.meta import AddrCache, IpMeta
from vnet.stack.mld import MldListener
from vnet.stack.routes import RouteTable
from vnet.wire import ipv4, ipv6
from vnet.wire import virtio_net as vh
from vnet.wire.errors import WireError
from vnet.wire.ethernet import BROADCAST, mac_from_str, random_mac

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_ET_IP4 = b"\x08\x00"
_ET_ARP = b"\x08\x06"
_ET_IP6 = b"\x86\xdd"

_VHDR = struct.Struct("<BBHHHH")  # the virtio-net header without num_buffers
PMTU_TIMEOUT = 600.0  # RFC 1191 / 8201: try a larger MTU again after 10 minutes
MAX_PMTU_ENTRIES = 4096


TransportHandler = Callable[[IpMeta, "memoryview | bytes"], None]
ErrorHandler = Callable[[IpMeta, int, int, bytes], None]


class HostError(ValueError):
    """A configuration request the host cannot satisfy; the message says why."""


class Host(IPv4Layer, IPv6Layer, AddrConf, MldListener):
    # A TAP with offloads hands us the kernel's GSO / partial-checksum frames as they are
    # (vnet.link.offload); `_rx_offloaded` takes TCP for us whole and finishes the rest.
    takes_offload = True

    def __init__(self, rt: Runtime, name: str = "host", router: bool = False,
                 neigh_max: int = 512, neigh_max_incomplete: int = 64,
                 reasm_max_datagrams: int = 64, reasm_max_bytes: int = 1 << 20,
                 icmp_rate: float = 100.0, icmp_burst: float = 10.0) -> None:
        self.rt = rt
        self.name = name
        self.router = router
        self.ifaces: list[Interface] = []
        self.by_name: dict[str, Interface] = {}
        self.routes4 = RouteTable(32)
        self.routes6 = RouteTable(128)
        self.transports: dict[int, TransportHandler] = {}
        self.error_handlers: dict[int, ErrorHandler] = {}
        self.stats: Counter[str] = Counter()
        self.addr_cache = AddrCache()
        self._packed: dict[Any, bytes] = {}
        self.echo = EchoTable()
        self.icmp_limit = TokenBucket(icmp_rate, icmp_burst)
        self.pmtu: dict[bytes, tuple[int, float]] = {}
        self.neigh_max = neigh_max
        self.neigh_max_incomplete = neigh_max_incomplete
        self.reasm4 = Reassembler(rt, 30.0, reasm_max_datagrams, reasm_max_bytes,
                                  self._reasm4_timeout)
        self.reasm6 = Reassembler(rt, 60.0, reasm_max_datagrams, reasm_max_bytes,
                                  self._reasm6_timeout)
        self.secret = rt.rng.getrandbits(128).to_bytes(16, "big")  # RFC 7217 secret_key
        self.ra_daemon: Any = None
        self.dhcp: dict[str, Any] = {}
        self.dhcp6: dict[str, Any] = {}
        self.dhcp6_on_managed = False  # start DHCPv6 when an RA sets the Managed flag
        # the packet `ip_send(tso=)` is passing down right now, and its MSS (see _xmit)
        self._tso_pkt: Any = None
        self._tso_mss = 0
        self._init_ip4()
        self._init_ip6()

    # ---- interfaces ----------------------------------------------------------------------

    def add_interface(self, name: str, mac: bytes | None = None, mtu: int = 1500) -> Interface:
        if name in self.by_name:
            raise HostError(f"interface {name!r} exists already")
        if not 68 <= mtu <= 65535:
            raise HostError(f"MTU {mtu} out of range 68..65535")
        if mac is None:
            mac = random_mac(self.rt.rng.getrandbits(48).to_bytes(6, "big"))
        if len(mac) != 6 or mac[0] & 1:
            raise HostError("an interface MAC must be 6 bytes and unicast")
        iface = Interface(name, len(self.ifaces) + 1, mac, mtu)
        iface.port.owner = self
        iface.port.receive = functools.partial(self._rx, iface)
        iface.forwarding = self.router
        self.ifaces.append(iface)
        self.by_name[name] = iface
        self.routes4.version += 1  # cached routes may name the first interface
        self._iface_up4(iface)
        self._iface_up6(iface)
        return iface

    def iface(self, name: str) -> Interface:
        try:
            return self.by_name[name]
        except KeyError:
            raise HostError(f"no interface {name!r}: have {', '.join(self.by_name) or 'none'}") from None

    def add_address(self, iface_name: str, cidr: str) -> None:
        iface = self.iface(iface_name)
        try:
            ifa = ipaddress.ip_interface(cidr)
        except ValueError:
            raise HostError(f"not an address with prefix: {cidr!r} (e.g. 10.0.0.1/24 or "
                            f"2001:db8::1/64)") from None
        if "/" not in cidr:
            raise HostError(f"{cidr!r} lacks a prefix length (e.g. {cidr}/24 or {cidr}/64)")
        if ifa.version == 4:
            self._add_addr4(iface, ifa)
        else:
            self._add_addr6(iface, ifa)

    def remove_address(self, iface_name: str, cidr: str) -> None:
        iface = self.iface(iface_name)
        ifa = ipaddress.ip_interface(cidr)
        if ifa.version == 4:
            self._del_addr4(iface, ifa.ip.packed)
        else:
            self._del_addr6(iface, ifa.ip.packed)

    def add_route(self, prefix: str, via: str | None = None, dev: str | None = None) -> None:
        """A static route: `add_route("10.1.0.0/16", via="10.0.0.254")` or with `dev=`."""
        try:
            net = ipaddress.ip_network(prefix, strict=False)
            gw = ipaddress.ip_address(via) if via else None
        except ValueError as e:
            raise HostError(f"bad route {prefix} via {via}: {e}") from None
        if gw is not None and gw.version != net.version:
            raise HostError(f"gateway {gw} is not of the same family as {net}")
        table = self.routes4 if net.version == 4 else self.routes6
        scope = getattr(gw, "scope_id", None)
        if dev is None and scope:
            dev = scope  # fe80::1%eth1
        if dev is not None:
            iface = self.iface(dev)
        elif gw is not None:
            r = table.lookup(int(gw))
            if r is None or r.gateway is not None:
                if net.version == 6 and gw.is_link_local and self.ifaces:
                    r = None
                    iface = self.ifaces[0]
                else:
                    raise HostError(f"gateway {gw} is not on a connected network: add an address "
                                    f"in its subnet first, or give dev")
            if r is not None:
                iface = r.iface
        else:
            raise HostError("a route needs a gateway (via) or an interface (dev)")
        table.add(int(net.network_address), net.prefixlen, iface,
                  gw.packed if gw is not None else None, "static")

    def join_group(self, iface_name: str, group: Any) -> None:
        """Join a multicast group on an interface (IGMPv3 or MLDv2 reports follow)."""
        iface = self.iface(iface_name)
        g = ipaddress.ip_address(group) if isinstance(group, str) else group
        if not g.is_multicast:
            raise HostError(f"{g} is not a multicast group")
        if g.version == 4:
            self.join4(iface, g.packed)
        else:
            if g.packed not in iface.groups6 and len(iface.groups6) >= 256:
                raise HostError(f"{iface_name} is in 256 IPv6 groups already")
            self.join6(iface, g.packed)

    def leave_group(self, iface_name: str, group: Any) -> None:
        iface = self.iface(iface_name)
        g = ipaddress.ip_address(group) if isinstance(group, str) else group
        if g.version == 4:
            self.leave4(iface, g.packed)
        else:
            self.leave6(iface, g.packed)

    def add_neighbor(self, iface_name: str, addr: str, mac: str) -> None:
        """A static neighbour entry (never probed, never replaced)."""
        iface = self.iface(iface_name)
        try:
            ip = ipaddress.ip_address(addr)
            hw = mac_from_str(mac)
        except (ValueError, WireError) as e:
            raise HostError(str(e)) from None
        cache = iface.neigh4 if ip.version == 4 else iface.neigh6
        assert cache is not None
        cache.add_static(ip.packed, hw)

    def del_neighbor(self, iface_name: str, addr: str) -> None:
        iface = self.iface(iface_name)
        ip = ipaddress.ip_address(addr)
        cache = iface.neigh4 if ip.version == 4 else iface.neigh6
        assert cache is not None
        if ip.packed not in cache.entries:
            raise HostError(f"no neighbour {ip} on {iface_name}")
        cache.remove(ip.packed)

    def del_route(self, prefix: str) -> None:
        net = ipaddress.ip_network(prefix, strict=False)
        table = self.routes4 if net.version == 4 else self.routes6
        if table.remove(int(net.network_address), net.prefixlen) is None:
            raise HostError(f"no route to {net}")

    # ---- transport seam --------------------------------------------------------------------

    def register_transport(self, proto: int, handler: TransportHandler) -> None:
        self.transports[proto] = handler

    def register_error_handler(self, proto: int, handler: ErrorHandler) -> None:
        self.error_handlers[proto] = handler

    def ip_send(self, dst: Any, proto: int, payload: bytes, src: Any = None,
                hop_limit: int | None = None, tso: int = 0) -> bool:
        """Send one upper-layer payload; False when there is no route or no source address.

        `tso` > 0: `payload` is a TCP segment with a partial checksum (the pseudo-header
        sum) and may carry more than one MSS; `tso` is the MSS the kernel cuts it into
        (see `tso_ok`). Where the interface cannot take that, it is finished here.
        """
        if isinstance(dst, str):
            dst = ipaddress.ip_address(dst)
        if isinstance(src, str):
            src = ipaddress.ip_address(src)
        # `.packed` is recomputed by ipaddress on every access: remember it per address.
        pk = self._packed
        d = pk.get(dst)
        if d is None:
            if len(pk) >= 4096:
                pk.clear()
            d = pk[dst] = dst.packed
        s = None
        if src is not None:
            s = pk.get(src)
            if s is None:
                s = pk[src] = src.packed
        if dst.version == 4:
            return self._send4(d, proto, payload, s, hop_limit, tso=tso)
        return self._send6(d, proto, payload, s, hop_limit, dst.scope_id, tso=tso)

    def tso_ok(self, dst: Any) -> bool:
        """True when TCP to `dst` may hand `ip_send` segments of several MSS with a partial
        checksum: the route leaves through an interface whose port writes offloaded
        frames (a TAP with vnet_hdr=1). Plain TAPs, switches and simulated links do not."""
        if isinstance(dst, str):
            dst = ipaddress.ip_address(dst)
        d = dst.packed
        if dst.version == 4:
            if d in self.local4:
                return False
            _, iface, _ = self._route4(d)
        else:
            if d in self.local6:
                return False
            _, iface = self._route6(d, getattr(dst, "scope_id", None))
        return iface is not None and accepts_offload(iface.port.transmit)

    def source_address_for(self, dst: Any) -> IPAddress | None:
        if isinstance(dst, str):
            dst = ipaddress.ip_address(dst)
        if dst.version == 4:
            s = self._select_src4(dst.packed)
            return ipaddress.IPv4Address(s) if s else None
        s = self._select_src6(dst.packed, getattr(dst, "scope_id", None))
        return ipaddress.IPv6Address(s) if s else None

    def path_mtu(self, dst: Any) -> int:
        if isinstance(dst, str):
            dst = ipaddress.ip_address(dst)
        d = dst.packed
        if dst.version == 4:
            _, iface, _ = self._route4(d)
        else:
            _, iface = self._route6(d, getattr(dst, "scope_id", None))
        link = iface.mtu if iface is not None else (1500 if dst.version == 4 else 1280)
        e = self.pmtu.get(d)
        if e is not None:
            if e[1] > self.rt.now():
                return min(link, e[0])
            del self.pmtu[d]
        return link

    def port_unreachable(self, meta: IpMeta, proto: int, payload: bytes | memoryview) -> None:
        """Tell the sender that nothing listens (ICMP port unreachable / ICMPv6 code 4).

        For a transport with no socket for a received datagram. The quoted packet is
        rebuilt from `meta` and the payload (addresses, protocol and the transport header
        are what the sender matches on); multicast and broadcast never get one, and the
        ICMP rate limiter applies.
        """
        head = bytes(payload[:1232])
        if meta.version == 4:
            pkt = ipv4.build(meta.src.packed, meta.dst.packed, proto, len(payload),
                             meta.hop_limit) + head
            self._icmp4_error(pkt, 3, 3)
        else:
            pkt = ipv6.build(meta.src.packed, meta.dst.packed, proto, len(payload),
                             meta.hop_limit) + head
            self._icmp6_error(pkt, 1, 4)

    def confirm_reachable(self, addr: Any) -> None:
        """Upper-layer progress (e.g. a TCP ACK of new data) confirms the neighbour (RFC 4861)."""
        if isinstance(addr, str):
            addr = ipaddress.ip_address(addr)
        for iface in self.ifaces:
            cache = iface.neigh4 if addr.version == 4 else iface.neigh6
            if cache is not None:
                cache.confirm(addr.packed)

    def _update_pmtu(self, dst: bytes, mtu: int, floor: int) -> None:
        mtu = max(mtu, floor)
        cur = self.pmtu.get(dst)
        if cur is not None and cur[0] <= mtu and cur[1] > self.rt.now():
            return
        if len(self.pmtu) >= MAX_PMTU_ENTRIES:
            self.pmtu.pop(next(iter(self.pmtu)))
        self.pmtu[dst] = (mtu, self.rt.now() + PMTU_TIMEOUT)
        self.stats["pmtu_updates"] += 1

    # ---- ping --------------------------------------------------------------------------

    def ping(self, dst: Any, ident: int, seq: int, size: int = 56,
             on_reply: Callable[[IpMeta, int], None] | None = None,
             src: Any = None) -> bool:
        """Send one echo request; `on_reply(meta, length)` runs when its reply arrives."""
        if isinstance(dst, str):
            dst = ipaddress.ip_address(dst)
        data = bytes(i & 0xFF for i in range(size))
        if on_reply is not None:
            self.echo.expect(dst.version, ident, seq, on_reply)
        if dst.version == 4:
            ok = self._ping4(dst.packed, ident, seq, data, src)
        else:
            ok = self._ping6(dst.packed, ident, seq, data, src, getattr(dst, "scope_id", None))
        if not ok:
            self.echo.forget(dst.version, ident, seq)
        return ok

    # ---- receive path ------------------------------------------------------------------

    def _rx(self, iface: Interface, frame: bytes) -> None:
        if frame is PENDING[0]:
            self._rx_offloaded(iface, frame, PENDING[1])
            return
        self._rx_frame(iface, frame, False)

    def _rx_frame(self, iface: Interface, frame: bytes, csum_ok: bool) -> None:
        port = iface.port
        port.rx_frames += 1
        port.rx_bytes += len(frame)
        if len(frame) < 14:
            self.stats["eth_short"] += 1
            return
        dmac = frame[0:6]
        if dmac != iface.mac and not frame[0] & 1:
            self.stats["eth_not_for_us"] += 1
            return
        et = frame[12:14]
        if et == _ET_IP6:
            self._rx6(iface, memoryview(frame)[14:], dmac, csum_ok)
        elif et == _ET_IP4:
            self._rx4(iface, memoryview(frame)[14:], dmac == BROADCAST, csum_ok)
        elif et == _ET_ARP:
            self._rx_arp(iface, memoryview(frame)[14:])
        else:
            self.stats["eth_unknown_type"] += 1

    def _rx_offloaded(self, iface: Interface, frame: bytes, hdr: bytes) -> None:
        """A frame from the local kernel whose virtio-net header asks for work.

        TCP to one of our addresses (no IP options or IPv6 extension headers) goes up
        whole - a GSO frame is one segment of up to 64 KB - with its checksum left
        unverified: the kernel leaves it partial and vouches for the data. Anything
        else (forwarding, UDP, odd offsets) is finished in software first, giving
        exactly the frames the kernel would have sent without offloads.
        """
        st = self.stats
        flags, gso_type, _, gso_size, cs, co = _VHDR.unpack_from(hdr)
        kind = gso_type & ~vh.GSO_ECN
        n = len(frame)
        et = frame[12:14]
        partial = flags & vh.F_NEEDS_CSUM
        if et == _ET_IP4 and n >= 54 and frame[23] == 6 and frame[14] == 0x45 \
                and frame[30:34] in self.local4 and kind in (vh.GSO_NONE, vh.GSO_TCPV4) \
                and (not partial or (cs == 34 and co == 16)):
            whole = True
        elif et == _ET_IP6 and n >= 74 and frame[20] == 6 and frame[38:54] in self.local6 \
                and kind in (vh.GSO_NONE, vh.GSO_TCPV6) and (not partial or (cs == 54 and co == 16)):
            whole = True
        else:
            whole = False
        if whole:
            st["rx_offload_whole"] += 1
            if kind:
                st["rx_gso_whole"] += 1
            self._rx_frame(iface, frame, True)
            return
        try:
            if kind != vh.GSO_NONE:
                st["rx_gso_segmented"] += 1
                vh.segment(frame, gso_type, gso_size, cs,
                           lambda f: self._rx_frame(iface, f, False))
            elif partial:
                st["rx_csum_finished"] += 1
                self._rx_frame(iface, bytes(vh.finish_checksum(frame, cs, co)), False)
            else:
                self._rx_frame(iface, frame, False)
        except WireError:
            st["rx_offload_bad"] += 1
            iface.port.rx_dropped += 1

    def _xmit(self, iface: Interface, mac: bytes, ethertype: bytes, packet: bytes) -> None:
        frame = mac + iface.mac + ethertype + packet
        port = iface.port
        port.tx_frames += 1
        port.tx_bytes += len(frame)
        if packet is self._tso_pkt:
            self._xmit_offload(iface, frame, self._tso_mss)
            return
        port.transmit(frame)

    def _tso_software(self, pkt: bytes, mss: int, out: Callable[[bytes], bool]) -> bool:
        """Finish a TSO packet here (MSS segments, full checksums) and pass each to `out`."""
        frame = bytes(14) + pkt  # vh.segment works on frames; the Ethernet part is dropped
        v4 = pkt[0] >> 4 == 4
        l4 = 14 + (pkt[0] & 15) * 4 if v4 else 54
        self.stats["tx_gso_segmented"] += 1
        ok = [True]

        def emit(f: bytes) -> None:
            ok[0] = out(f[14:]) and ok[0]

        try:
            vh.segment(frame, vh.GSO_TCPV4 if v4 else vh.GSO_TCPV6, mss, l4, emit)
        except WireError:
            self.stats["tx_offload_bad"] += 1
            return False
        return ok[0]

    def _xmit_offload(self, iface: Interface, frame: bytes, mss: int) -> None:
        """A TCP packet with a partial checksum, maybe of several MSS (from `ip_send(tso=)`).

        Written with a virtio-net header (NEEDS_CSUM, GSO TCPV4/TCPV6 when longer than one
        MSS) if the port takes offloads; otherwise finished here, as the kernel would."""
        st = self.stats
        v4 = frame[12:14] == _ET_IP4
        l4 = 14 + (frame[14] & 15) * 4 if v4 else 54
        thl = (frame[l4 + 12] >> 4) * 4
        gso = len(frame) - l4 - thl > mss
        kind = (vh.GSO_TCPV4 if v4 else vh.GSO_TCPV6) if gso else vh.GSO_NONE
        port = iface.port
        transmit = port.transmit
        if accepts_offload(transmit):
            st["tx_gso" if gso else "tx_csum_offload"] += 1
            hdr = vh.HDR.pack(vh.F_NEEDS_CSUM, kind, l4 + thl, mss if gso else 0, l4, 16, 0)
            saved = PENDING[0], PENDING[1]  # we may be answering inside an offloaded delivery
            PENDING[0] = frame
            PENDING[1] = hdr
            try:
                transmit(frame)
            finally:
                PENDING[0], PENDING[1] = saved
            return
        try:
            if gso:
                st["tx_gso_segmented"] += 1
                vh.segment(frame, kind, mss, l4, transmit)
            else:
                transmit(bytes(vh.finish_checksum(frame, l4, 16)))
        except WireError:
            st["tx_offload_bad"] += 1
            port.tx_dropped += 1

    # ---- views for the control socket ----------------------------------------------------

    def describe_addresses(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        now = self.rt.now()
        for iface in self.ifaces:
            for a in iface.addrs4:
                out.append({"dev": iface.name, "addr": str(a.iface), "origin": a.origin,
                            "state": a.state})
            for b in iface.addrs6:
                row: dict[str, Any] = {"dev": iface.name, "addr": f"{b.addr}/{b.plen}",
                                       "origin": b.origin, "state": b.state}
                if b.valid_until != float("inf"):
                    row["valid_lft"] = max(0, round(b.valid_until - now))
                    row["preferred_lft"] = max(0, round(b.preferred_until - now))
                out.append(row)
        return out

    def describe_routes(self) -> list[dict[str, Any]]:
        rows = self.routes4.describe() + self.routes6.describe()
        for r in self.default_routers():
            rows.append({"prefix": "::/0", "via": r["addr"], "dev": r["dev"], "origin": "ra"})
        return rows

    def dns_servers(self) -> list[dict[str, Any]]:
        """Recursive DNS servers learned from RAs (RDNSS) and DHCPv4 (option 6)."""
        now = self.rt.now()
        out: list[dict[str, Any]] = [
            {"server": str(ipaddress.IPv6Address(a)), "dev": n, "source": "ra",
             "lifetime": "forever" if e == float("inf") else round(e - now)}
            for (n, a), e in self.dns6.items() if e > now]
        for name, d in self.dhcp.items():
            for srv in d.lease.get("dns", []):
                out.append({"server": srv, "dev": name, "source": "dhcp"})
        for name, d6 in self.dhcp6.items():
            for srv in d6.dns:
                out.append({"server": srv, "dev": name, "source": "dhcp6"})
        return out

    def describe_neighbors(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for iface in self.ifaces:
            for cache, fmt in ((iface.neigh4, lambda b: str(ipaddress.IPv4Address(b))),
                               (iface.neigh6, lambda b: str(ipaddress.IPv6Address(b)))):
                if cache is not None:
                    for row in cache.describe(fmt):
                        row["dev"] = iface.name
                        out.append(row)
        return out

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(sorted(self.stats.items()))
        out["reassembly4"] = self.reasm4.counters()
        out["reassembly6"] = self.reasm6.counters()
        out["icmp_rate_limited"] = self.icmp_limit.limited
        for iface in self.ifaces:
            row: dict[str, Any] = dict(iface.port.counters())
            if iface.neigh4 is not None:
                row["arp"] = iface.neigh4.counters()
            if iface.neigh6 is not None:
                row["nd"] = iface.neigh6.counters()
            out[iface.name] = row
        return out


__all__ = ["Host", "HostError", "IpMeta", "IPAddress", "TransportHandler", "ErrorHandler"]
