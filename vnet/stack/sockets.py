"""asyncio-shaped sockets on a vnet host.

    reader, writer = await open_connection(host, "10.0.0.2", 80)
    server = await start_server(host, handle, 80)            # handle(reader, writer)
    transport, proto = await create_datagram_endpoint(host, MyProto, local_port=53)

`host` is anything with the network-layer seam (a `vnet.stack.host.Host`); its TCP and
UDP layers are made on first use (`tcp_of`, `udp_of`). Readers and writers are
asyncio's own StreamReader/StreamWriter over a Transport that drives a
`vnet.stack.tcp.Connection`, so flow control (pause/resume both ways) is asyncio's.

These need a running asyncio loop (real time, `AsyncioRuntime`). In simulated time use
the callback API underneath: `tcp_of(host).connect(...)` / `.listen(...)` set
`on_data`/`on_eof`/`on_close` on the `Connection`; `udp_of(host).bind(port, on_datagram)`.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import os
from collections.abc import Callable
from typing import Any

from vnet.stack.tcp import Connection, Tcp
from vnet.stack.udp import Udp, UdpSocket


def tcp_of(host: Any) -> Tcp:
    """The host's TCP layer (created and attached as `host.tcp` on first use)."""
    if isinstance(host, Tcp):
        return host
    t = getattr(host, "tcp", None)
    if t is None:
        t = Tcp(host)
        host.tcp = t
    return t


def udp_of(host: Any) -> Udp:
    if isinstance(host, Udp):
        return host
    u = getattr(host, "udp", None)
    if u is None:
        u = Udp(host)
        host.udp = u
    return u


def _oserror(err: int | None) -> OSError | None:
    if err is None:
        return None
    return OSError(err, os.strerror(err))


class TcpTransport(asyncio.Transport):
    """asyncio.Transport over a vnet TCP connection."""

    def __init__(self, conn: Connection, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.conn = conn
        self._protocol = protocol
        self._closing = False
        self._write_paused = False
        conn.on_data = protocol.data_received
        conn.on_eof = self._eof
        conn.on_close = self._lost
        conn.on_writable = self._writable
        self._extra = {"peername": (str(conn.remote), conn.rport),
                       "sockname": (str(conn.local), conn.lport), "connection": conn}

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def _eof(self) -> None:
        keep = self._protocol.eof_received()
        if not keep:
            self.close()

    def _lost(self, err: int | None) -> None:
        if self._write_paused:
            self._write_paused = False
        self._closing = True
        self._protocol.connection_lost(_oserror(err))

    def _writable(self) -> None:
        if self._write_paused:
            self._write_paused = False
            self._protocol.resume_writing()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._closing or self.conn.fin_queued:
            raise ConnectionResetError("vnet TCP connection is closing")
        self.conn.send(data)
        if not self.conn.writable and not self._write_paused:
            self._write_paused = True
            self._protocol.pause_writing()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.conn.shutdown()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self.conn.close()

    def abort(self) -> None:
        self._closing = True
        self.conn.abort()

    def pause_reading(self) -> None:
        self.conn.pause_reading()

    def resume_reading(self) -> None:
        self.conn.resume_reading()

    def is_reading(self) -> bool:
        return self.conn.reading

    def get_write_buffer_size(self) -> int:
        return self.conn.send_buffered

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is not None:
            self.conn.snd_buf_limit = high


def _streams(conn: Connection, limit: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit, loop=loop)
    protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
    transport = TcpTransport(conn, protocol)
    protocol.connection_made(transport)
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    return reader, writer


async def open_connection(host: Any, addr: Any, port: int, *, limit: int = 1 << 16,
                          src: Any = None, **opts: Any
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect; raise ConnectionRefusedError / TimeoutError / OSError like asyncio does."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()
    conn = tcp_of(host).connect(addr, port, src=src, **opts)

    def established() -> None:
        if not fut.done():
            fut.set_result(_streams(conn, limit))

    def failed(err: int | None) -> None:
        if not fut.done():
            e = err or errno.ECONNABORTED
            cls = {errno.ECONNREFUSED: ConnectionRefusedError,
                   errno.ETIMEDOUT: TimeoutError}.get(e, OSError)
            fut.set_exception(cls(e, f"connect to {addr} port {port}: {os.strerror(e)}"))

    conn.on_established = established
    conn.on_close = failed
    try:
        return await fut
    except asyncio.CancelledError:
        conn.abort()
        raise


class Server:
    """What `start_server` returns: close() stops listening (open connections stay)."""

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self.port = listener.port
        self._closed = asyncio.Event()
        self.tasks: set[asyncio.Task] = set()

    def close(self) -> None:
        self.listener.close()
        self._closed.set()

    def is_serving(self) -> bool:
        return not self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def serve_forever(self) -> None:
        await self._closed.wait()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


async def start_server(host: Any, client_connected_cb: Callable[..., Any], port: int,
                       addr: Any = None, *, limit: int = 1 << 16,
                       backlog: int | None = None) -> Server:
    """Listen on `port`; `client_connected_cb(reader, writer)` per connection (may be async)."""
    server: Server

    def accept(conn: Connection) -> None:
        reader, writer = _streams(conn, limit)
        res = client_connected_cb(reader, writer)
        if inspect.isawaitable(res):
            task = asyncio.ensure_future(res)
            server.tasks.add(task)
            task.add_done_callback(server.tasks.discard)

    server = Server(tcp_of(host).listen(port, accept, addr=addr, backlog=backlog))
    return server


class UdpTransport(asyncio.DatagramTransport):
    def __init__(self, sock: UdpSocket, protocol: asyncio.DatagramProtocol,
                 remote: tuple[Any, int] | None) -> None:
        super().__init__()
        self.sock = sock
        self._protocol = protocol
        self._remote = remote
        self._extra = {"sockname": (str(sock.addr) if sock.addr else "0.0.0.0", sock.port),
                       "peername": remote}
        sock.on_datagram = self._datagram
        sock.on_error = self._error

    def _datagram(self, data: bytes, addr: Any, port: int, meta: Any) -> None:
        if self._remote is not None and (str(addr), port) != (str(self._remote[0]),
                                                              self._remote[1]):
            return
        self._protocol.datagram_received(data, (str(addr), port))

    def _error(self, icmp_type: int, code: int, addr: Any, port: int) -> None:
        self._protocol.error_received(OSError(errno.ECONNREFUSED,
                                              f"ICMP error {icmp_type}/{code} from {addr}"))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def sendto(self, data: bytes, addr: tuple[Any, int] | None = None) -> None:
        if addr is None:
            if self._remote is None:
                raise ValueError("no address: pass addr=(host, port) or use remote_addr")
            addr = self._remote
        self.sock.sendto(data, addr[0], addr[1])

    def close(self) -> None:
        if not self.sock.closed:
            self.sock.close()
            asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.sock.closed

    def abort(self) -> None:
        self.close()


async def create_datagram_endpoint(host: Any, protocol_factory: Callable[[], Any],
                                   local_port: int = 0, local_addr: Any = None,
                                   remote_addr: tuple[Any, int] | None = None
                                   ) -> tuple[UdpTransport, Any]:
    protocol = protocol_factory()
    sock = udp_of(host).bind(local_port, None, addr=local_addr)
    transport = UdpTransport(sock, protocol, remote_addr)
    protocol.connection_made(transport)
    return transport, protocol
