"""IP over VRR without broadcast: an Ethernet-like port (a TAP, or a vnet stack interface).

* Unicast frames from the host go onto the ring as VRR data: the destination MAC
  is the destination node's virtual address, the Ethertype is the next header.
* ARP requests never leave: the adapter answers them from the DHT, where every
  node publishes "ip4:A.B.C.D" -> its virtual address.
* IPv6 neighbour solicitations never leave either: the target is resolved from
  the DHT ("ip6:ADDR") and a neighbour advertisement is made locally.
* Every other broadcast or multicast frame (MLD, router solicitations, DAD,
  mDNS...) is counted and dropped: nothing floods the ring.

Addresses to publish come from `publish()` (the daemon reads the interface's
addresses) and from what the host itself uses as source addresses.
"""

from __future__ import annotations

import ipaddress
import struct

from vnet.link.port import Port
from vnet.vrr.dht import Dht, key_of
from vnet.vrr.node import VrrNode
from vnet.wire import arp as A
from vnet.wire import icmp6 as I6
from vnet.wire import ipv6 as IP6
from vnet.wire import vrr as W
from vnet.wire.errors import WireError

ETH = struct.Struct("!6s6sH")
ET_IP4, ET_ARP, ET_IP6 = 0x0800, 0x0806, 0x86DD
CACHE_TTL = 60.0
REPUBLISH = 20.0


class IpAdapter:
    def __init__(self, node: VrrNode, dht: Dht, port: Port, host_mac: bytes | None = None,
                 max_cache: int = 1024) -> None:
        self.node = node
        self.dht = dht
        self.rt = node.rt
        self.port = port
        self.host_mac = host_mac  # the kernel's MAC on the TAP (learned if not given)
        self.max_cache = max_cache
        self.cache: dict[bytes, tuple[int, float]] = {}  # IP (4 or 16 bytes) -> (vaddr, expiry)
        self.published: dict[bytes, float] = {}  # our IPs -> last publication time
        self._resolving: set[bytes] = set()
        self.stats = {"to_ring": 0, "from_ring": 0, "arp_answered": 0, "nd_answered": 0,
                      "unresolved": 0, "mcast_dropped": 0, "bcast_dropped": 0, "bad": 0,
                      "no_route": 0, "published": 0}
        port.owner = self
        port.receive = self._from_host
        node.on_data = self._from_ring
        self._timer = self.rt.call_later(REPUBLISH, self._republish)

    # ---------------------------------------------------------------- publication
    def publish(self, ip: str | bytes) -> None:
        raw = ipaddress.ip_address(ip).packed if isinstance(ip, str) else ip
        if raw in self.published:
            return
        if len(self.published) >= 64:
            return
        self.published[raw] = self.rt.now()
        self._put(raw)

    def _put(self, raw: bytes) -> None:
        self.stats["published"] += 1
        self.dht.put(self._key(raw), W.addr_to_mac(self.node.addr))

    def _republish(self) -> None:
        # the DHT hands keys over itself; republishing covers ring partitions and restarts
        for raw in self.published:
            self._put(raw)
        self._timer = self.rt.call_later(REPUBLISH, self._republish)

    @staticmethod
    def _key(raw: bytes) -> int:
        return key_of(("ip4:" if len(raw) == 4 else "ip6:") + str(ipaddress.ip_address(raw)))

    def close(self) -> None:
        self._timer.cancel()

    # ---------------------------------------------------------------- host -> ring
    def _from_host(self, frame: bytes) -> None:
        if len(frame) < 14:
            self.stats["bad"] += 1
            return
        dst, src, et = ETH.unpack_from(frame)
        if self.host_mac is None or self.host_mac != src:
            self.host_mac = bytes(src)
        try:
            if et == ET_ARP:
                self._arp(frame)
                return
            if et == ET_IP6:
                if self._ip6_local(frame, dst):
                    return
            elif et == ET_IP4 and len(frame) >= 34:
                s4 = frame[26:30]
                if s4 != b"\0\0\0\0" and not dst[0] & 1:
                    self.publish(bytes(s4))
        except WireError:
            self.stats["bad"] += 1
            return
        if dst[0] & 1:
            self.stats["bcast_dropped" if dst == W.BROADCAST else "mcast_dropped"] += 1
            return
        self.stats["to_ring"] += 1
        if not self.node.send_data(int.from_bytes(dst, "big"), et, frame[14:]):
            self.stats["no_route"] += 1

    def _arp(self, frame: bytes) -> None:
        p = A.parse(frame[14:])
        if p.spa != b"\0\0\0\0":
            self.publish(p.spa)
        if p.op != A.REQUEST or p.tpa in self.published or p.tpa == p.spa:
            return  # gratuitous/announcements and questions about ourselves stay here
        self._resolve(p.tpa, lambda vaddr: self._arp_reply(p.spa, p.tpa, vaddr, p.sha))

    def _arp_reply(self, asker_ip: bytes, ip: bytes, vaddr: int, asker_mac: bytes) -> None:
        mac = W.addr_to_mac(vaddr)
        arp = A.build(A.REPLY, mac, ip, asker_mac, asker_ip)
        self.stats["arp_answered"] += 1
        self.port.send(ETH.pack(asker_mac, mac, ET_ARP) + arp)

    def _ip6_local(self, frame: bytes, dst: bytes) -> bool:
        """Handle ND and learn addresses; True when the frame must not go to the ring."""
        if len(frame) < 54:
            raise WireError("IPv6 frame too short")
        h = IP6.parse(frame[14:])
        if h.src != bytes(16) and not h.src[0] == 0xFF:
            self.publish(h.src)
        if h.next_header == 58 and len(frame) >= 14 + 40 + 24 and frame[54] == I6.NS:
            target = bytes(frame[62:78])
            if h.src == bytes(16):
                self.publish(target)  # duplicate address detection: the host claims target
                return True
            if target in self.published:
                return True
            mac = bytes(src) if (src := frame[6:12]) else b""
            self._resolve(target, lambda v: self._na(target, v, h.src, mac))
            return True
        return False

    def _na(self, target: bytes, vaddr: int, asker: bytes, asker_mac: bytes) -> None:
        mac = W.addr_to_mac(vaddr)
        icmp = I6.na(target, 0x60, mac, target, asker)  # solicited + override
        ip = IP6.build(target, asker, 58, len(icmp), hop_limit=255)
        self.stats["nd_answered"] += 1
        self.port.send(ETH.pack(asker_mac, mac, ET_IP6) + ip + icmp)

    def _resolve(self, ip: bytes, answer) -> None:
        now = self.rt.now()
        hit = self.cache.get(ip)
        if hit is not None and hit[1] > now:
            answer(hit[0])
            return
        if ip in self._resolving:
            return  # one lookup at a time per address; the host asks again
        self._resolving.add(ip)

        def done(value: bytes | None) -> None:
            self._resolving.discard(ip)
            if value is None or len(value) != 6:
                self.stats["unresolved"] += 1
                return
            v = int.from_bytes(value, "big")
            if len(self.cache) >= self.max_cache:
                self.cache.pop(next(iter(self.cache)))
            self.cache[ip] = (v, self.rt.now() + CACHE_TTL)
            answer(v)

        self.dht.get(self._key(ip), done)

    # ---------------------------------------------------------------- ring -> host
    def _from_ring(self, origin: int, nh: int, payload: bytes, hops: int) -> None:
        if nh not in (ET_IP4, ET_IP6) or self.host_mac is None:
            self.stats["bad" if nh not in (ET_IP4, ET_IP6) else "no_route"] += 1
            return
        self.stats["from_ring"] += 1
        self.port.send(ETH.pack(self.host_mac, W.addr_to_mac(origin), nh) + payload)
