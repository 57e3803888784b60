"""UDP (RFC 768) on a host: port table, checksums, sockets with a datagram callback.

Sits on the same network-layer seam as TCP (see vnet/stack/tcp/layer.py).
"""

from __future__ import annotations

import errno
import ipaddress
from collections.abc import Callable
from typing import Any

from vnet.wire import udp as wudp
from vnet.wire.checksum import ones_sum
from vnet.wire.errors import WireError

DatagramHandler = Callable[[bytes, Any, int, Any], None]  # (data, src addr, src port, meta)


class UdpSocket:
    """A bound UDP port. `on_datagram(data, addr, port, meta)`; `on_error(type, code, addr, port)`."""

    def __init__(self, layer: Udp, port: int, addr: Any,
                 on_datagram: DatagramHandler | None) -> None:
        self.layer = layer
        self.port = port
        self.addr = addr
        self.on_datagram = on_datagram
        self.on_error: Callable[[int, int, Any, int], None] | None = None
        self.rx_datagrams = 0
        self.rx_bytes = 0
        self.tx_datagrams = 0
        self.tx_bytes = 0
        self.closed = False

    def sendto(self, data: bytes | bytearray | memoryview, addr: Any, port: int) -> bool:
        """Send one datagram; False when the network layer had no route or source."""
        if self.closed:
            raise OSError(errno.EBADF, "UDP socket is closed")
        if not 0 < port < 65536:
            raise ValueError(f"port {port} out of range 1..65535")
        dst = addr if not isinstance(addr, str) else ipaddress.ip_address(addr)
        net = self.layer.net
        src = self.addr if self.addr is not None else net.source_address_for(dst)
        if src is None:
            return False
        d = wudp.build(self.port, port, bytes(data), ones_sum(src.packed + dst.packed) + 17)
        self.tx_datagrams += 1
        self.tx_bytes += len(data)
        self.layer.tx_datagrams += 1
        return net.ip_send(dst, 17, d, src)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.layer.ports.get(self.port) is self:
                del self.layer.ports[self.port]

    def __repr__(self) -> str:
        return f"<UdpSocket {self.addr or '*'}:{self.port}>"


class Udp:
    def __init__(self, net: Any) -> None:
        self.net = net
        self.rt = net.rt
        self.ports: dict[int, UdpSocket] = {}
        self.rx_datagrams = 0
        self.tx_datagrams = 0
        self.rx_bad = 0
        self.rx_bad_checksum = 0
        self.rx_no_port = 0
        net.register_transport(17, self.receive)
        if hasattr(net, "register_error_handler"):
            net.register_error_handler(17, self.icmp_error)

    def bind(self, port: int = 0, on_datagram: DatagramHandler | None = None,
             addr: Any = None) -> UdpSocket:
        if port == 0:
            port = self._ephemeral()
        elif not 0 < port < 65536:
            raise ValueError(f"port {port} out of range 1..65535")
        if port in self.ports:
            raise OSError(errno.EADDRINUSE, f"UDP port {port} is in use")
        if isinstance(addr, str):
            addr = ipaddress.ip_address(addr)
        s = UdpSocket(self, port, addr, on_datagram)
        self.ports[port] = s
        return s

    def _ephemeral(self) -> int:
        rng = self.rt.rng
        for _ in range(64):
            p = rng.randrange(49152, 65536)
            if p not in self.ports:
                return p
        for p in range(49152, 65536):
            if p not in self.ports:
                return p
        raise OSError(errno.EADDRNOTAVAIL, "no free UDP port")

    def receive(self, meta: Any, buf: Any) -> None:
        self.rx_datagrams += 1
        n = len(buf)
        if n < 8:
            self.rx_bad += 1
            return
        length = buf[4] << 8 | buf[5]
        try:
            wudp.parse(buf, ones_sum(meta.src.packed + meta.dst.packed) + 17 + length,
                       v6=meta.version == 6)
        except WireError as e:
            if "checksum" in str(e):
                self.rx_bad_checksum += 1
            else:
                self.rx_bad += 1
            return
        dport = buf[2] << 8 | buf[3]
        s = self.ports.get(dport)
        if s is None or (s.addr is not None and s.addr != meta.dst):
            self.rx_no_port += 1
            # RFC 1122 4.1.3.1 / RFC 4443 3.1: say so (rate-limited, never for multicast)
            unreachable = getattr(self.net, "port_unreachable", None)
            if unreachable is not None:
                unreachable(meta, 17, buf[:length])
            return
        data = bytes(buf[8:length])
        s.rx_datagrams += 1
        s.rx_bytes += len(data)
        if s.on_datagram is not None:
            s.on_datagram(data, meta.src, buf[0] << 8 | buf[1], meta)

    def icmp_error(self, meta: Any, icmp_type: int, code: int, quoted: bytes) -> None:
        if len(quoted) < 8:
            return
        sport = quoted[0] << 8 | quoted[1]
        dport = quoted[2] << 8 | quoted[3]
        s = self.ports.get(sport)
        if s is not None and s.on_error is not None:
            s.on_error(icmp_type, code, meta.dst, dport)

    def stats(self) -> dict[str, Any]:
        return {"ports": sorted(self.ports), "rx_datagrams": self.rx_datagrams,
                "tx_datagrams": self.tx_datagrams, "rx_bad": self.rx_bad,
                "rx_bad_checksum": self.rx_bad_checksum, "rx_no_port": self.rx_no_port}
