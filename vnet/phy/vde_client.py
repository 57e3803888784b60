"""VDE client: join a port to a VDE switch (vde_switch, `vnet switch`, vdeplug4's switch://).

URL forms (as vdeplug4's `vde` module):

* `vde:///path/to/dir` or a bare `/path/to/dir` - any free port;
* `vde:///path/to/dir[N]` - port N; `[0]` asks for the management port 0
  (REQ_NEW_PORT0), as vdeplug4 does;
* options: `?port=N&mode=0700&group=NAME&descr=TEXT`.

Handshake (facts in vnet.wire.vde): connect `<dir>/ctl`, bind our datagram
socket at `<dir>/.PID-N` (or /tmp when the directory is not writable), send
one request_v3, read the 110-byte reply, connect to the switch's data socket,
unlink our own path (the connected socket keeps working). The ctl stream stays
open and silent; EOF on it means the switch closed our port.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import grp
import os
import pwd
import socket

from vnet.link.port import Port
from vnet.phy.url import AttachUrl, UrlError
from vnet.runtime.realtime import AsyncioRuntime
from vnet.wire.errors import WireError
from vnet.wire.vde import REPLY_SIZE, Request, build_request, parse_sockaddr

READ_BUDGET = 256
RX_SIZE = 65536  # whatever the switch sends (vde_switch <= 1518, vnet up to its MTU)
SOCKBUF = 1 << 20
HANDSHAKE_TIMEOUT = 5.0
_counter = 0


class VdeClientError(UrlError):
    """Could not join the switch; the message says why and what to try."""


def parse_target(url: AttachUrl) -> tuple[str, int, bool]:
    """(directory, port, port0) from a vde URL."""
    d = url.target
    if not d:
        raise VdeClientError(f"{url.raw}: name the switch directory, e.g. vde:///tmp/sw")
    port, port0 = 0, False
    spec = url.bracket or url.options.get("port", "")
    if spec:
        if not spec.isdigit():
            raise VdeClientError(f"{url.raw}: port {spec!r} must be a number (portgroups are "
                                 f"not supported), e.g. vde:///tmp/sw[3]")
        port = int(spec)
        port0 = port == 0
    return d, port, port0


@functools.lru_cache(maxsize=4)
def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _describe(descr: str) -> str:
    return f"{descr} user={_user(os.geteuid())} pid={os.getpid()}"


def _bind_data(sock: socket.socket, directory: str) -> str:
    """Bind at <dir>/.PID-N like libvdeplug, falling back to /tmp when dir is not writable."""
    global _counter
    for base in (directory, "/tmp"):
        prefix = os.path.join(base, ".%05d-" if base == directory else "vde.%05d-") % os.getpid()
        for _ in range(1000):
            path = f"{prefix}{_counter:05d}"
            _counter = (_counter + 1) % 100000
            try:
                sock.bind(path)
                return path
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    continue
                if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                    break
                raise
    raise VdeClientError(f"cannot bind a data socket in {directory} or /tmp")


def _set_perms(path: str, ctl: str, mode: int, group: str | None) -> None:
    """The switch must be able to read/write our socket (it checks access())."""
    if group is not None:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except (KeyError, OSError) as e:
            raise VdeClientError(f"cannot give the data socket to group {group!r}: {e}") from None
    elif not mode & 0o077:
        st = os.stat(ctl)
        if st.st_uid not in (0, os.geteuid()):  # a switch run by another user
            try:
                os.chown(path, -1, st.st_gid)
                mode |= 0o070
            except OSError:
                mode |= 0o077
    os.chmod(path, mode)


class VdeClientAttachment:
    def __init__(self, rt: AsyncioRuntime, port: Port, ctl: socket.socket, data: socket.socket,
                 switch_path: str) -> None:
        self.rt = rt
        self.port = port
        self.ctl = ctl
        self.sock = data
        self.switch_path = switch_path
        base = os.path.basename(switch_path)
        self.port_number = int(base.split(".")[0]) if base[:3].isdigit() else -1
        self.rx_errors = 0
        self._closed = False
        self.closed: asyncio.Future[None] = rt.loop.create_future()
        send = data.send

        def transmit(frame: bytes) -> None:
            try:
                send(frame)
            except OSError:  # EAGAIN: the switch is not keeping up; ECONNREFUSED: it is gone
                port.tx_dropped += 1

        port.attach(transmit)
        rt.loop.add_reader(data.fileno(), self._readable)
        rt.loop.add_reader(ctl.fileno(), self._ctl_readable)

    def _readable(self) -> None:
        recv = self.sock.recv
        deliver = self.port.receive
        for _ in range(READ_BUDGET):
            try:
                frame = recv(RX_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self.rx_errors += 1
                return
            deliver(frame)

    def _ctl_readable(self) -> None:
        try:
            data = self.ctl.recv(256)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close()  # the switch closed our port (or exited)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.port.detach()
        for s in (self.sock, self.ctl):
            try:
                self.rt.loop.remove_reader(s.fileno())
            except (ValueError, OSError, RuntimeError):
                pass
            s.close()
        if not self.closed.done():
            self.closed.set_result(None)

    async def wait_closed(self) -> None:
        await asyncio.shield(self.closed)

    def __repr__(self) -> str:
        return f"<VdeClientAttachment {self.switch_path}>"


async def connect(rt: AsyncioRuntime, port: Port, directory: str, want: int = 0,
                  port0: bool = False, descr: str = "vnet", mode: int = 0o700,
                  group: str | None = None) -> VdeClientAttachment:
    directory = os.path.abspath(directory)
    ctl_path = os.path.join(directory, "ctl")
    loop = rt.loop
    ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    mine = ""
    try:
        ctl.setblocking(False)
        try:
            await loop.sock_connect(ctl, ctl_path)
        except FileNotFoundError:
            raise VdeClientError(f"no VDE switch at {directory} ({ctl_path} does not exist): "
                                 f"start one with `vnet switch -s {directory}`") from None
        except ConnectionRefusedError:
            raise VdeClientError(f"no VDE switch running at {directory} (stale ctl socket)"
                                 ) from None
        except PermissionError:
            raise VdeClientError(f"permission denied on {ctl_path}: ask for the switch's group "
                                 f"(-g) or a wider -m mode") from None
        mine = _bind_data(data, directory)
        _set_perms(mine, ctl_path, mode, group)
        for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            try:
                data.setsockopt(socket.SOL_SOCKET, opt, SOCKBUF)
            except OSError:
                pass
        req = build_request(Request(mine, want, port0, _describe(descr)))
        await loop.sock_sendall(ctl, req)
        reply = b""
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                while len(reply) < REPLY_SIZE:
                    chunk = await loop.sock_recv(ctl, REPLY_SIZE - len(reply))
                    if not chunk:
                        what = f"port {want}" if want or port0 else "a port"
                        raise VdeClientError(f"the switch at {directory} refused {what} (in use, "
                                             f"out of range or no free port; see its log)")
                    reply += chunk
        except TimeoutError:
            raise VdeClientError(f"the switch at {directory} did not answer within "
                                 f"{HANDSHAKE_TIMEOUT:g} s") from None
        try:
            switch_path = parse_sockaddr(reply)
        except WireError as e:
            raise VdeClientError(f"bad reply from the switch at {directory}: {e}") from None
        data.setblocking(False)
        try:
            data.connect(switch_path)
        except OSError as e:
            raise VdeClientError(f"cannot connect to the switch's data socket {switch_path}: "
                                 f"{e.strerror}") from None
    except BaseException:
        ctl.close()
        data.close()
        raise
    finally:
        if mine:
            try:
                os.unlink(mine)  # the connected socket keeps working; nothing is left behind
            except OSError:
                pass
    return VdeClientAttachment(rt, port, ctl, data, switch_path)


async def open_url(url: AttachUrl, port: Port, rt: AsyncioRuntime) -> VdeClientAttachment:
    directory, want, port0 = parse_target(url)
    known = {"port", "mode", "group", "descr"}
    bad = set(url.options) - known
    if bad:
        raise VdeClientError(f"{url.raw}: unknown option(s) {', '.join(sorted(bad))}; "
                             f"known: {', '.join(sorted(known))}")
    try:
        mode = int(url.options.get("mode", "0700"), 8)
    except ValueError:
        raise VdeClientError(f"{url.raw}: mode must be octal, e.g. mode=0770") from None
    return await connect(rt, port, directory, want, port0, url.options.get("descr", "vnet"),
                         mode, url.options.get("group"))
