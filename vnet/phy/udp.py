"""UDP cable: one Ethernet frame per datagram, no header (like vdeplug4's udp module).

URL forms:

* `udp://[LADDR:]LPORT:RADDR:RPORT`
* `udp://RADDR:RPORT?lport=N[&laddr=A]`
* vdeplug4's `udp://[LADDR:]LPORT->RADDR:RPORT` (so `vde_plug udp://...` is a peer)

IPv6 addresses go in brackets. The socket is bound to LADDR:LPORT and connected
to RADDR:RPORT, so only the peer's datagrams are accepted (by the kernel).
"""

from __future__ import annotations

import errno
import socket

from vnet.link.port import Port
from vnet.phy.url import AttachUrl, UrlError
from vnet.runtime.realtime import AsyncioRuntime

READ_SIZE = 65536
READ_BUDGET = 256


def _tokens(text: str) -> list[str]:
    """Split on ':' keeping '[v6]' addresses whole (brackets removed)."""
    out: list[str] = []
    i, n = 0, len(text)
    while True:
        if text.startswith("[", i):
            j = text.find("]", i)
            if j < 0:
                return []
            out.append(text[i + 1:j])
            i = j + 1
        else:
            j = text.find(":", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
        if i < n and text[i] == ":":
            i += 1
            continue
        return out if i >= n else []


def _port(s: str, raw: str) -> int:
    if not s.isdigit() or not 0 <= int(s) <= 65535:
        raise UrlError(f"{raw}: port {s!r} must be a number 0..65535")
    return int(s)


def parse_target(url: AttachUrl) -> tuple[tuple[str, int], tuple[str, int]]:
    """((laddr, lport), (raddr, rport)) from any of the accepted URL forms."""
    raw = url.raw
    usage = f"{raw}: write udp://[LADDR:]LPORT:RADDR:RPORT or udp://RADDR:RPORT?lport=N"
    t = url.target.strip('"')
    if "->" in t:
        left, _, right = t.partition("->")
        lt, rt_ = _tokens(left), _tokens(right)
        if len(rt_) != 2 or len(lt) not in (1, 2):
            raise UrlError(usage)
        laddr, lport = (lt[0], lt[1]) if len(lt) == 2 else ("", lt[0])
        raddr, rport = rt_
    else:
        toks = _tokens(t)
        if len(toks) == 4:
            laddr, lport, raddr, rport = toks
        elif len(toks) == 3:
            laddr, (lport, raddr, rport) = "", toks
        elif len(toks) == 2:
            raddr, rport = toks
            if "lport" not in url.options:
                raise UrlError(f"{usage} (the local port is missing)")
            laddr, lport = url.options.get("laddr", ""), url.options["lport"]
        else:
            raise UrlError(usage)
    if not raddr:
        raise UrlError(f"{usage} (the remote address is missing)")
    return (laddr, _port(lport, raw)), (raddr, _port(rport, raw))


class UdpAttachment:
    def __init__(self, rt: AsyncioRuntime, port: Port, sock: socket.socket) -> None:
        self.rt = rt
        self.port = port
        self.sock = sock
        self.address = sock.getsockname()
        self.peer = sock.getpeername()
        self.rx_errors = 0
        self._closed = False
        port.attach(self._send)
        rt.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        recv = self.sock.recv
        deliver = self.port.deliver
        for _ in range(READ_BUDGET):
            try:
                frame = recv(READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                # ICMP port unreachable from a peer not yet up (ECONNREFUSED) and the like
                self.rx_errors += 1
                continue
            deliver(frame)

    def _send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
        except OSError:
            # EAGAIN/ENOBUFS (queue full), ECONNREFUSED (peer not there), EMSGSIZE
            self.port.tx_dropped += 1

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


async def open_url(url: AttachUrl, port: Port, rt: AsyncioRuntime) -> UdpAttachment:
    bad = set(url.options) - {"lport", "laddr"}
    if bad:
        raise UrlError(f"{url.raw}: unknown option(s) {', '.join(sorted(bad))}; known: laddr, lport")
    (laddr, lport), (raddr, rport) = parse_target(url)
    try:
        infos = await rt.loop.getaddrinfo(raddr, rport, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise UrlError(f"{url.raw}: cannot resolve {raddr!r}: {e.strerror}") from None
    family, _, _, _, raddr_t = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((laddr, lport))
        sock.connect(raddr_t)
    except OSError as e:
        sock.close()
        hint = " (another program has it; choose another port)" if e.errno == errno.EADDRINUSE else ""
        raise UrlError(f"{url.raw}: cannot use local {laddr or '*'} port {lport} towards "
                       f"{raddr} port {rport}: {e.strerror}{hint}") from None
    return UdpAttachment(rt, port, sock)
