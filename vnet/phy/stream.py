"""Byte-stream cables with VDE's 2-byte length framing (see `vnet.wire.stream`).

Schemes:

* `stdio` - our stdin/stdout, as `vde_plug` speaks it (so `dpipe` and ssh cables work);
* `tcp://HOST:PORT` - connect (`?reconnect=MAX` keeps the cable: redial with backoff up to
  MAX seconds whenever the connection is refused or lost);
* `tcp-listen://[ADDR]:PORT` - accept one peer at a time (more are refused until it leaves);
* `cmd://COMMAND ARGS` - spawn a command and speak the stream on its stdin/stdout (dpipe-like);
* `ssh://[USER@]HOST[:PORT]/REMOTE-URL` - runs `ssh HOST vnet plug REMOTE-URL` as a `cmd://`.

All of them use one driver on raw fds: a non-blocking reader drained until
EAGAIN into an incremental decoder (correct when a read splits a header), and a
writer that sends the length prefix and the frame with one `writev`. When the
peer is slow, at most `max_pending` bytes are queued; whole frames beyond that
are dropped and counted (`port.tx_dropped`) - a frame is never cut, so the
framing survives.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import subprocess
from collections.abc import Callable

from vnet.link.port import Port
from vnet.phy.url import AttachUrl, UrlError
from vnet.runtime.realtime import AsyncioRuntime
from vnet.wire.stream import MAX_FRAME, StreamDecoder

READ_SIZE = 65536
READ_BUDGET = 64  # reads per wake-up before yielding to other fds
MAX_PENDING = 1 << 20  # bytes queued towards a slow peer before frames are dropped


class StreamAttachment:
    """A Port joined to a framed byte stream on (rfd, wfd)."""

    def __init__(self, rt: AsyncioRuntime, port: Port, rfd: int, wfd: int, *,
                 max_frame: int = MAX_FRAME, max_pending: int = MAX_PENDING,
                 closer: Callable[[], None] | None = None, label: str = "stream") -> None:
        self.rt = rt
        self.port = port
        self.rfd = rfd
        self.wfd = wfd
        self.label = label
        self.max_frame = max_frame
        self.max_pending = max_pending
        self.decoder = StreamDecoder(port.deliver, max_frame)
        self.rx_errors = 0
        self._closer = closer
        self._wbuf = bytearray()
        self._writing = False
        self._closed = False
        self.closed: asyncio.Future[None] = rt.loop.create_future()
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        try:
            rt.loop.add_reader(rfd, self._readable)
        except OSError as e:
            if closer is not None:
                closer()
            raise UrlError(f"{label}: cannot poll its input ({e.strerror}): regular files "
                           f"cannot be polled, pipe them in (cat FILE | vnet plug ...)") from None
        port.attach(self._send)

    # ---- in -------------------------------------------------------------------------------

    def _readable(self) -> None:
        read = os.read
        feed = self.decoder.feed
        for _ in range(READ_BUDGET):
            try:
                data = read(self.rfd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self.rx_errors += 1
                self.close()
                return
            if not data:
                self.close()  # EOF: the peer left
                return
            feed(data)
            if self._closed:
                return

    # ---- out ------------------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        n = len(frame)
        if n > self.max_frame or n == 0:
            self.port.tx_dropped += 1
            return
        hdr = n.to_bytes(2, "big")
        if self._writing:
            if len(self._wbuf) + n + 2 > self.max_pending:
                self.port.tx_dropped += 1
                return
            self._wbuf += hdr
            self._wbuf += frame
            return
        try:
            sent = os.writev(self.wfd, (hdr, frame))
        except BlockingIOError:
            sent = 0
        except OSError:
            self.port.tx_dropped += 1
            self.close()
            return
        if sent < n + 2:
            # Keep the rest of this record so the framing stays intact.
            rec = hdr + frame
            self._wbuf += rec[sent:]
            self._writing = True
            self.rt.loop.add_writer(self.wfd, self._writable)

    def _writable(self) -> None:
        try:
            sent = os.write(self.wfd, self._wbuf)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        del self._wbuf[:sent]
        if not self._wbuf:
            self._writing = False
            self.rt.loop.remove_writer(self.wfd)

    # ---- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.port.detach()
        loop = self.rt.loop
        for remove, fd in ((loop.remove_reader, self.rfd), (loop.remove_writer, self.wfd)):
            try:
                remove(fd)
            except (ValueError, OSError, RuntimeError):
                pass
        if self._closer is not None:
            self._closer()
        if not self.closed.done():
            self.closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    def __repr__(self) -> str:
        return f"<StreamAttachment {self.label}>"


def _max_frame(url: AttachUrl) -> int:
    v = url.options.get("maxframe")
    if v is None:
        return MAX_FRAME
    try:
        n = int(v)
    except ValueError:
        raise UrlError(f"{url.raw}: maxframe must be a number of bytes, e.g. maxframe=9234") from None
    if not 14 <= n <= 0xFFFF:
        raise UrlError(f"{url.raw}: maxframe {n} out of range 14..65535")
    return n


def _check_options(url: AttachUrl, known: set[str]) -> None:
    bad = set(url.options) - known
    if bad:
        raise UrlError(f"{url.raw}: unknown option(s) {', '.join(sorted(bad))}"
                       + (f"; known: {', '.join(sorted(known))}" if known else ""))


def split_host_port(text: str, what: str, raw: str, default_host: str | None = None,
                    default_port: int | None = None) -> tuple[str, int]:
    """'host:port', '[v6]:port', ':port' or 'port' (when a default host is given)."""
    host, port_s = default_host or "", ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise UrlError(f"{raw}: unclosed '[' in {what} address")
        host = text[1:end]
        rest = text[end + 1:]
        if rest.startswith(":"):
            port_s = rest[1:]
        elif rest:
            raise UrlError(f"{raw}: expected ':PORT' after [{host}]")
    elif ":" in text:
        h, _, port_s = text.rpartition(":")
        host = h or host
    elif default_host is not None and text.isdigit():
        port_s = text
    else:
        host = text or host
    if not port_s:
        if default_port is None:
            raise UrlError(f"{raw}: {what} needs a port, e.g. {what}://host:5000")
        return host, default_port
    try:
        port = int(port_s)
    except ValueError:
        raise UrlError(f"{raw}: port {port_s!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise UrlError(f"{raw}: port {port} out of range 0..65535")
    if not host:
        raise UrlError(f"{raw}: {what} needs a host, e.g. {what}://192.0.2.1:{port}")
    return host, port


def _nodelay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _dial(host: str, p: int, url: AttachUrl, rt: AsyncioRuntime) -> socket.socket:
    loop = rt.loop
    try:
        infos = await loop.getaddrinfo(host, p, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UrlError(f"{url.raw}: cannot resolve {host!r}: {e.strerror}") from None
    err: OSError | None = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, addr)
        except OSError as e:
            sock.close()
            err = e
            continue
        _nodelay(sock)
        return sock
    reason = os.strerror(err.errno) if err is not None and err.errno else str(err)
    raise UrlError(f"{url.raw}: cannot connect to {host} port {p}: {reason}")


async def _tcp_connect(url: AttachUrl, port: Port, rt: AsyncioRuntime
                       ) -> StreamAttachment | ReconnectingTcp:
    _check_options(url, {"maxframe", "reconnect"})
    host, p = split_host_port(url.target, "tcp", url.raw)
    max_frame = _max_frame(url)
    if "reconnect" in url.options:
        try:
            backoff = float(url.options["reconnect"] or 5)
        except ValueError:
            backoff = -1.0
        if not 0.1 <= backoff <= 3600:
            raise UrlError(f"{url.raw}: reconnect is the longest wait between attempts in "
                           f"seconds (0.1..3600), e.g. reconnect=5")
        return ReconnectingTcp(rt, port, host, p, url, max_frame, backoff)
    sock = await _dial(host, p, url, rt)
    return StreamAttachment(rt, port, sock.fileno(), sock.fileno(), max_frame=max_frame,
                            closer=sock.close, label=url.raw)


class ReconnectingTcp:
    """`tcp://...?reconnect=MAX`: a cable that outlives its TCP connections.

    While no connection is up, frames out of the port are dropped (counted in
    `tx_dropped`); attempts start 0.1 s apart and double up to MAX seconds.
    Only `close()` ends it (`closed` completes then)."""

    def __init__(self, rt: AsyncioRuntime, port: Port, host: str, p: int, url: AttachUrl,
                 max_frame: int, backoff: float) -> None:
        self.rt = rt
        self.port = port
        self.host, self.p, self.url = host, p, url
        self.max_frame = max_frame
        self.backoff = backoff
        self.conn: StreamAttachment | None = None
        self.connects = 0
        self.failures = 0
        self.last_error = ""
        self._delay = 0.1
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[None] = rt.loop.create_future()
        port.attach(self._down)
        self._dial_soon(0.0)

    def _down(self, frame: bytes) -> None:
        self.port.tx_dropped += 1

    def _dial_soon(self, delay: float) -> None:
        if not self._closed:
            self._task = self.rt.loop.create_task(self._dial(delay))

    async def _dial(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        try:
            sock = await _dial(self.host, self.p, self.url, self.rt)
        except UrlError as e:
            self.failures += 1
            self.last_error = str(e)
            self._dial_soon(self._delay)
            self._delay = min(self._delay * 2, self.backoff)
            return
        if self._closed:
            sock.close()
            return
        self._delay = 0.1
        self.connects += 1
        conn = StreamAttachment(self.rt, self.port, sock.fileno(), sock.fileno(),
                                max_frame=self.max_frame, closer=sock.close, label=self.url.raw)
        self.conn = conn
        conn.closed.add_done_callback(lambda _f: self._lost(conn))

    def _lost(self, conn: StreamAttachment) -> None:
        if conn is not self.conn or self._closed:
            return
        self.conn = None
        self.port.attach(self._down)
        self._dial_soon(0.1)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        self.port.detach()
        if not self.closed.done():
            self.closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    def __repr__(self) -> str:
        return f"<ReconnectingTcp {self.url.raw} {'up' if self.conn else 'down'}>"


class ListenAttachment:
    """`tcp-listen://`: one peer at a time on `port`; others are refused while it is connected."""

    def __init__(self, rt: AsyncioRuntime, port: Port, sock: socket.socket, max_frame: int,
                 label: str) -> None:
        self.rt = rt
        self.port = port
        self.sock = sock
        self.max_frame = max_frame
        self.label = label
        self.address = sock.getsockname()
        self.peer: StreamAttachment | None = None
        self.accepted = 0
        self.refused = 0
        self._closed = False
        self.closed: asyncio.Future[None] = rt.loop.create_future()
        rt.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # e.g. ECONNABORTED, EMFILE: the listener stays
        if self.peer is not None:
            self.refused += 1
            conn.close()
            return
        self.accepted += 1
        conn.setblocking(False)
        _nodelay(conn)
        peer = StreamAttachment(self.rt, self.port, conn.fileno(), conn.fileno(),
                                max_frame=self.max_frame, closer=conn.close, label=self.label)
        self.peer = peer
        peer.closed.add_done_callback(lambda _f: self._peer_gone(peer))

    def _peer_gone(self, peer: StreamAttachment) -> None:
        if self.peer is peer:
            self.peer = None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.peer is not None:
            self.peer.close()
        try:
            self.rt.loop.remove_reader(self.sock.fileno())
        except (ValueError, OSError, RuntimeError):
            pass
        self.sock.close()
        if not self.closed.done():
            self.closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)


async def _tcp_listen(url: AttachUrl, port: Port, rt: AsyncioRuntime) -> ListenAttachment:
    _check_options(url, {"maxframe"})
    host, p = split_host_port(url.target, "tcp-listen", url.raw, default_host="")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, p))
        sock.listen(4)
    except OSError as e:
        sock.close()
        hint = " (another program has it; choose another port)" if e.errno == 98 else ""
        raise UrlError(f"{url.raw}: cannot listen on {host or '*'} port {p}: {e.strerror}{hint}") from None
    sock.setblocking(False)
    return ListenAttachment(rt, port, sock, _max_frame(url), url.raw)


def _spawn(argv: list[str], url: AttachUrl, port: Port, rt: AsyncioRuntime) -> StreamAttachment:
    if not argv:
        raise UrlError(f"{url.raw}: give a command, e.g. cmd://vde_plug /tmp/sw")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                close_fds=True, start_new_session=True)
    except OSError as e:
        raise UrlError(f"{url.raw}: cannot run {argv[0]!r}: {e.strerror}") from None
    assert proc.stdin is not None and proc.stdout is not None

    def closer() -> None:
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()  # type: ignore[union-attr]
            except OSError:
                pass
        # Closing its stdin normally ends a plug; give it a moment, then insist.
        try:
            proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    att = StreamAttachment(rt, port, proc.stdout.fileno(), proc.stdin.fileno(),
                           closer=closer, label=url.raw)
    att.process = proc  # type: ignore[attr-defined]
    return att


def ssh_argv(target: str, raw: str) -> list[str]:
    """`[user@]host[:port]/REMOTE-URL` -> the ssh command line (VNET_SSH overrides `ssh`)."""
    hostpart, slash, remote = target.partition("/")
    if not hostpart:
        raise UrlError(f"{raw}: give a host, e.g. ssh://user@host/vde:///tmp/sw")
    user, at, hostport = hostpart.rpartition("@")
    sshport: int | None = None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        if rest.startswith(":"):
            sshport = int(rest[1:]) if rest[1:].isdigit() else None
    elif hostport.count(":") == 1:
        host, _, ps = hostport.partition(":")
        if not ps.isdigit():
            raise UrlError(f"{raw}: ssh port {ps!r} is not a number")
        sshport = int(ps)
    else:
        host = hostport
    argv = shlex.split(os.environ.get("VNET_SSH", "ssh"))
    if sshport is not None:
        argv += ["-p", str(sshport)]
    argv += ["--", f"{user}@{host}" if at else host]
    remote_cmd = ["vnet", "plug"] + ([remote] if remote else [])
    argv.append(" ".join(shlex.quote(w) for w in remote_cmd))  # ssh hands it to a shell
    return argv


async def open_url(url: AttachUrl, port: Port, rt: AsyncioRuntime):
    if url.scheme == "stdio":
        _check_options(url, set())
        rfd, wfd = os.dup(0), os.dup(1)

        def closer() -> None:
            os.close(rfd)
            os.close(wfd)

        return StreamAttachment(rt, port, rfd, wfd, label="stdio", closer=closer)
    if url.scheme == "tcp":
        return await _tcp_connect(url, port, rt)
    if url.scheme == "tcp-listen":
        return await _tcp_listen(url, port, rt)
    if url.scheme == "cmd":
        try:
            argv = shlex.split(url.target)
        except ValueError as e:
            raise UrlError(f"{url.raw}: {e}") from None
        return _spawn(argv, url, port, rt)
    if url.scheme == "ssh":
        return _spawn(ssh_argv(url.target, url.raw), url, port, rt)
    raise UrlError(f"{url.raw}: not a stream scheme")
