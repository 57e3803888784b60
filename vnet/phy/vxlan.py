"""VXLAN tunnel endpoint: `vxlan://REMOTE[:PORT]?vni=N&local=ADDR&lport=4789&netns=NS`.

Exchanges Ethernet frames with a Linux `vxlan` device (or Open vSwitch, or
another vnet) at REMOTE. Frames arrive on a UDP socket bound to LOCAL:LPORT;
packets with another VNI, without the I flag or too short are counted and
dropped. Frames leave towards REMOTE:PORT - always the configured port, never
the source port of what we received (that is only flow entropy).

A multicast REMOTE (e.g. 239.1.1.1, like `ip link add ... type vxlan group
239.1.1.1` or vdeplug4's `vxlan://239.0.0.1`) joins that group on LPORT (on
interface `dev=IF`, from `local=`) and sends every frame to it with TTL `ttl=`
(default 1 for multicast, 64 otherwise); our own packets are not looped back.
With a multicast REMOTE the endpoint learns, as a Linux vxlan device does (RFC 7348
section 4.2, "flood and learn"): the inner source MAC of each packet received is
remembered with the outer source address it came from, and a unicast frame for a
MAC learned in the last `ageing=` seconds (300) goes to that VTEP alone instead of
the group. `learning=0` turns it off; `learning=1` turns it on for a unicast REMOTE
too. The table is bounded (`MAX_LEARNED`, oldest evicted).

Source ports: RFC 7348 recommends a hash of the inner headers in 49152-65535
so ECMP spreads flows. Over IPv4 with CAP_NET_RAW we send through an
IPPROTO_RAW socket (send-only, never queues received packets), building the
outer IPv4 and UDP headers ourselves (UDP checksum 0, DF clear, like Linux).
Without the privilege, or over IPv6, frames go out of the bound UDP socket
with source port LPORT (`entropy` is False then), which peers accept too.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import zlib

from vnet.link.port import Port
from vnet.phy.netns import in_netns
from vnet.phy.stream import split_host_port
from vnet.phy.url import AttachUrl, UrlError
from vnet.runtime.realtime import AsyncioRuntime
from vnet.wire import vxlan

READ_SIZE = 65536
READ_BUDGET = 256
MAX_LEARNED = 4096  # remote MACs remembered (oldest evicted)
_IP_UDP_VX = struct.Struct("!BBHHHBBH4s4sHHHH8s")  # IPv4 (20) + UDP (8) + VXLAN (8)


def src_port(frame: bytes) -> int:
    """Flow entropy from the inner headers: MACs, and IP addresses + L4 ports when present."""
    et = frame[12:14]
    if et == b"\x08\x00" and len(frame) >= 34:
        ihl = (frame[14] & 0x0F) * 4
        key = frame[0:12] + frame[26:34]
        if frame[23] in (6, 17, 132) and not frame[20] & 0x3F | frame[21]:  # first fragment only
            key += frame[14 + ihl:18 + ihl]
    elif et == b"\x86\xdd" and len(frame) >= 54:
        key = frame[0:12] + frame[22:54]
        if frame[20] in (6, 17, 132):
            key += frame[54:58]
    else:
        key = frame[0:14]
    return vxlan.SRC_PORT_MIN + zlib.crc32(key) % vxlan.SRC_PORT_RANGE


class VxlanAttachment:
    def __init__(self, rt: AsyncioRuntime, port: Port, sock: socket.socket,
                 raw: socket.socket | None, remote: tuple[str, int], local_ip: str,
                 vni: int, ttl: int = 64, learning: bool = False, ageing: float = 300.0
                 ) -> None:
        self.rt = rt
        self.port = port
        self.sock = sock
        self.raw = raw
        self.remote = remote
        self.vni = vni
        self.ttl = ttl
        self.address = sock.getsockname()
        self.entropy = raw is not None
        self.rx_wrong_vni = 0
        self.rx_bad = 0  # too short or I flag clear
        self.rx_errors = 0
        self._hdr = vxlan.build(vni)
        self._local4 = socket.inet_aton(local_ip) if raw is not None and local_ip else bytes(4)
        self._remote4 = socket.inet_aton(remote[0]) if raw is not None else bytes(4)
        self._closed = False
        # learning: inner MAC -> [VTEP address, its packed IPv4 (raw sends), last seen]
        self.learning = learning
        self.ageing = ageing
        self.fdb: dict[bytes, list] = {}
        self.tx_learned = 0  # unicast frames sent to a learned VTEP instead of REMOTE
        self._tick = rt.now()  # clock as of the last receive wake-up: ageing needs no more
        self.fdb_evicted = 0
        port.attach(self._send_raw if raw is not None else self._send_udp)
        rt.loop.add_reader(sock.fileno(), self._readable_learning if learning else self._readable)

    def _readable(self) -> None:
        recv = self.sock.recv
        deliver = self.port.deliver
        hdr = self._hdr
        for _ in range(READ_BUDGET):
            try:
                pkt = recv(READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self.rx_errors += 1
                continue
            # Fast path: exactly our header (flags 0x08, VNI, zero reserved bits).
            if pkt[:8] == hdr and len(pkt) >= 22:
                deliver(pkt[8:])
                continue
            if len(pkt) < 22 or not pkt[0] & vxlan.FLAG_I:
                self.rx_bad += 1
                self.port.rx_dropped += 1
            elif int.from_bytes(pkt[4:7], "big") != self.vni:
                self.rx_wrong_vni += 1
                self.port.rx_dropped += 1
            else:  # reserved bits set: ignored on receipt (RFC 7348)
                deliver(pkt[8:])

    def _readable_learning(self) -> None:
        recvfrom = self.sock.recvfrom
        deliver = self.port.deliver
        hdr = self._hdr
        fdb = self.fdb
        now = self._tick = self.rt.now()
        for _ in range(READ_BUDGET):
            try:
                pkt, addr = recvfrom(READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self.rx_errors += 1
                continue
            if len(pkt) < 22 or not pkt[0] & vxlan.FLAG_I:
                self.rx_bad += 1
                self.port.rx_dropped += 1
                continue
            if pkt[:8] != hdr and int.from_bytes(pkt[4:7], "big") != self.vni:
                self.rx_wrong_vni += 1
                self.port.rx_dropped += 1
                continue
            if not pkt[14] & 1:  # a unicast inner source: remember which VTEP has it
                mac = pkt[14:20]
                e = fdb.get(mac)
                if e is not None and e[0] == addr[0]:
                    e[2] = now
                else:
                    if e is None and len(fdb) >= MAX_LEARNED:
                        del fdb[next(iter(fdb))]
                        self.fdb_evicted += 1
                    packed = socket.inet_aton(addr[0]) if ":" not in addr[0] else b""
                    fdb[mac] = [addr[0], packed, now]
            deliver(pkt[8:])

    def _dest(self, frame: bytes) -> tuple[str, bytes] | None:
        """The learned VTEP for a unicast frame, or None for REMOTE."""
        if frame[0] & 1 or not self.fdb:
            return None
        e = self.fdb.get(frame[0:6])
        if e is None:
            return None
        if self._tick - e[2] > self.ageing:
            del self.fdb[frame[0:6]]
            return None
        self.tx_learned += 1
        return e[0], e[1]

    def _send_udp(self, frame: bytes) -> None:
        remote = self.remote
        if self.learning:
            d = self._dest(frame)
            if d is not None:
                remote = (d[0], remote[1])
        try:
            self.sock.sendmsg((self._hdr, frame), (), 0, remote)
        except OSError:
            self.port.tx_dropped += 1

    def _send_raw(self, frame: bytes) -> None:
        n = len(frame)
        dst_ip, dst4 = self.remote[0], self._remote4
        if self.learning:
            d = self._dest(frame)
            if d is not None:
                dst_ip, dst4 = d
        head = _IP_UDP_VX.pack(0x45, 0, 36 + n, 0, 0, self.ttl, 17, 0, self._local4, dst4,
                               src_port(frame), self.remote[1], 16 + n, 0, self._hdr)
        try:
            self.raw.sendmsg((head, frame), (), 0, (dst_ip, 0))  # type: ignore[union-attr]
        except OSError:
            self.port.tx_dropped += 1  # EMSGSIZE (VTEPs must not fragment), ENOBUFS, ...

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.port.detach()
        try:
            self.rt.loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError, RuntimeError):
            pass
        self.sock.close()
        if self.raw is not None:
            self.raw.close()

    def counters(self) -> dict[str, int]:
        return {"rx_wrong_vni": self.rx_wrong_vni, "rx_bad": self.rx_bad,
                "rx_errors": self.rx_errors, "tx_learned": self.tx_learned,
                "fdb_entries": len(self.fdb), "fdb_evicted": self.fdb_evicted,
                **self.port.counters()}


def _int_opt(url: AttachUrl, key: str, default: int, hi: int) -> int:
    v = url.options.get(key)
    if v is None:
        return default
    try:
        n = int(v, 0)
    except ValueError:
        raise UrlError(f"{url.raw}: {key} must be a number, e.g. {key}={default}") from None
    if not 0 <= n <= hi:
        raise UrlError(f"{url.raw}: {key} {n} out of range 0..{hi}")
    return n


def _open_sockets(local: str, lport: int, remote_ip: str, v6: bool, raw_wanted: bool,
                  ttl: int, dev: str | None) -> tuple[socket.socket, socket.socket | None]:
    family = socket.AF_INET6 if v6 else socket.AF_INET
    multicast = ipaddress.ip_address(remote_ip).is_multicast
    ifindex = socket.if_nametoindex(dev) if dev else 0
    sock = socket.socket(family, socket.SOCK_DGRAM)
    raw: socket.socket | None = None
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        if multicast:
            # Packets to the group are not addressed to LOCAL: bind the port on any address.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("::" if v6 else "", lport))
            if v6:
                mreq6 = socket.inet_pton(socket.AF_INET6, remote_ip) + struct.pack("@I", ifindex)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, mreq6)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
                if ifindex:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, ifindex)
            else:
                mreqn = (socket.inet_aton(remote_ip) + socket.inet_aton(local or "0.0.0.0")
                         + struct.pack("@i", ifindex))
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreqn)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, mreqn)  # ip_mreqn
        else:
            sock.bind((local, lport))
        if raw_wanted and not v6:
            try:
                raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
            except PermissionError:
                raw = None
            if raw is not None:
                raw.setblocking(False)
                if multicast:
                    raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 0)
                    raw.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                                   socket.inet_aton(local or "0.0.0.0")
                                   + socket.inet_aton(local or "0.0.0.0")
                                   + struct.pack("@i", ifindex))
    except OSError:
        sock.close()
        if raw is not None:
            raw.close()
        raise
    return sock, raw


async def open_url(url: AttachUrl, port: Port, rt: AsyncioRuntime) -> VxlanAttachment:
    known = {"vni", "local", "lport", "netns", "entropy", "ttl", "dev", "learning", "ageing"}
    bad = set(url.options) - known
    if bad:
        raise UrlError(f"{url.raw}: unknown option(s) {', '.join(sorted(bad))}; "
                       f"known: {', '.join(sorted(known))}")
    if "vni" not in url.options:
        raise UrlError(f"{url.raw}: give the VXLAN network id, e.g. vxlan://192.0.2.2?vni=42")
    vni = _int_opt(url, "vni", 1, (1 << 24) - 1)
    lport = _int_opt(url, "lport", vxlan.PORT, 65535)
    # A bare `[v6addr]` was taken for vdeplug4's bracket suffix by parse_url: put it back.
    target = url.target + (f"[{url.bracket}]" if url.bracket else "")
    host, rport = split_host_port(target, "vxlan", url.raw, default_port=vxlan.PORT)
    try:
        remote_ip = str(ipaddress.ip_address(host))
    except ValueError:
        try:
            remote_ip = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)[0][4][0]
        except socket.gaierror as e:
            raise UrlError(f"{url.raw}: cannot resolve {host!r}: {e.strerror}") from None
    v6 = ":" in remote_ip
    local = url.options.get("local", "")
    if local:
        try:
            local_v6 = ipaddress.ip_address(local).version == 6
        except ValueError:
            raise UrlError(f"{url.raw}: local={local!r} is not an IP address") from None
        if local_v6 != v6:
            raise UrlError(f"{url.raw}: local {local} and remote {remote_ip} "
                           f"are not the same IP version")
    entropy = url.options.get("entropy", "1") not in ("0", "no", "off", "false")
    multicast = ipaddress.ip_address(remote_ip).is_multicast
    ttl = _int_opt(url, "ttl", 1 if multicast else 64, 255)
    dev = url.options.get("dev") or None
    lv = url.options.get("learning")
    if lv is None:
        learning = multicast
    elif lv in ("0", "1"):
        learning = lv == "1"
    else:
        raise UrlError(f"{url.raw}: learning must be 0 or 1")
    ageing = float(_int_opt(url, "ageing", 300, 1_000_000))
    try:
        sock, raw = in_netns(url.options.get("netns"),
                             lambda: _open_sockets(local, lport, remote_ip, v6, entropy, ttl, dev))
    except OSError as e:
        if dev and e.errno in (None, errno.ENODEV, errno.ENXIO):
            raise UrlError(f"{url.raw}: no interface {dev!r} here (see `ip link`)") from None
        hint = (" (a Linux vxlan device or another VTEP uses it here: choose lport=, "
                "or another namespace)") if e.errno == errno.EADDRINUSE else ""
        raise UrlError(f"{url.raw}: cannot bind UDP {local or '*'} port {lport}"
                       f"{' / join ' + remote_ip if multicast else ''}: "
                       f"{e.strerror or e}{hint}") from None
    return VxlanAttachment(rt, port, sock, raw, (remote_ip, rport), local, vni, ttl,
                           learning=learning, ageing=ageing)
