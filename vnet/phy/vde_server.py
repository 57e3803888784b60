"""The VDE switch side of the libvdeplug protocol: a `ctl` directory any VDE client can plug into.

Layout and behaviour follow vde_switch, so Debian's vde_plug, vde_plug2tap and
QEMU `-nic vde` connect unchanged:

* the switch is a directory (mode 02700, or derived from `-m MODE`) holding the
  stream socket `ctl` (mode 0600 or MODE; `-g GROUP` chowns dir and sockets);
* a client connects to `ctl`, binds its own datagram socket and sends one
  request_v3 (vnet.wire.vde); we stat that socket (its owner is the port's user),
  make a datagram socket, connect it to the client, bind it at
  `<dir>/<port %03d>.<fd>` and answer with that path (110-byte sockaddr_un);
* `type >> 8` picks a port (0 = any free one), REQ_NEW_PORT0 the management port
  0; a port may hold several endpoints of the same user (every frame goes to all);
* EOF on the client's ctl stream closes its endpoint; the data socket is unlinked.

Bad requests (garbage, short, wrong magic, wrong version) are counted by kind,
logged in one line, and the connection is closed; the switch keeps forwarding.

Data path: one reader callback per data socket drains it (bounded per wake-up
for fairness) and hands frames to the port; sends are non-blocking and a full
peer queue (EAGAIN) is a counted `tx_dropped`, as in vde_switch. Frames up to
the switch's MTU (jumbo included) are received whole. When the compiled module
`vnet.phy._vdefast` is built (setup.py), the drain runs in C and forwards
known unicast between single-endpoint ports without entering Python; every
other frame still goes through the switch engine (see _vdefast.c).
"""

from __future__ import annotations

import errno
import functools
import grp
import logging
import os
import pwd
import re
import socket
import stat
from collections.abc import Callable

from vnet.link.port import Port
from vnet.link.switch import Switch, SwitchError
from vnet.runtime.base import Timer
from vnet.runtime.realtime import AsyncioRuntime
from vnet.wire.errors import WireError
from vnet.wire.vde import REQUEST_MAX, build_sockaddr, parse_request

try:
    from vnet.phy._vdefast import Forwarder
except ImportError:  # no C compiler at install time: the pure-Python data path
    Forwarder = None

log = logging.getLogger("vnet.vde")

READ_BUDGET = 256  # frames per wake-up per socket, so one busy client cannot starve the rest
HANDSHAKE_TIMEOUT = 10.0  # a ctl connection that sends no request is closed after this
MAX_PENDING = 256  # ctl connections still waiting for their request (bounded)
# Frames (and bytes) per port held while its client's socket is full (C fast path only):
# the client's own queue is 10 datagrams (net.unix.max_dgram_qlen), less than one
# scheduling delay of the client at line rate. 1000 is Linux's default txqueuelen.
OUTPUT_QUEUE = 1000
OUTPUT_QUEUE_BYTES = 2 << 20
# Flow control: a sender whose frames fill a port's queue past 3/4 is not read until that
# queue is down to 1/4 (so a local sender slows down instead of losing frames), for at
# most PAUSE_MAX seconds; then the port drops instead until it has drained (a client that
# stopped reading cannot stall its senders' other traffic for long).
PAUSE_MAX = 0.02
SOCKBUF = 1 << 20  # SO_SNDBUF/SO_RCVBUF asked for (the kernel caps it at wmem_max/rmem_max)
_STALE = re.compile(r"^(\d{3}\.\d+|ctl|\.ctl-\d+|\.\d{5}-\d{5})$")


class VdeServerError(OSError):
    """The ctl directory cannot be set up; the message is one line saying what to do."""


def dirmode_for(mode: int) -> int:
    """vde_switch's rule: the directory gets the socket's r/w bits plus x where r or w is set."""
    x = 0
    for shift in (6, 3, 0):
        if (mode >> shift) & 0o6:
            x |= 0o1 << shift
    return 0o2000 | (mode & 0o666) | x


class Endpoint:
    """One client connection: its ctl stream and the switch-side data socket."""

    __slots__ = ("ctl", "data", "path", "client_path", "vport", "uid", "description", "id",
                 "timer")

    def __init__(self, ctl: socket.socket) -> None:
        self.ctl = ctl
        self.data: socket.socket | None = None
        self.path = ""
        self.client_path = ""
        self.vport: VdePort | None = None
        self.uid = -1
        self.description = ""
        self.id = ctl.fileno()
        self.timer: Timer | None = None


class VdePort:
    """A switch port served to VDE clients; fans frames out to all its endpoints."""

    def __init__(self, server: VdeServer, index: int, port: Port, uid: int) -> None:
        self.server = server
        self.index = index
        self.port = port
        self.uid = uid
        self.endpoints: list[Endpoint] = []

    def refresh(self) -> None:
        """Rebind `port.transmit`: a direct send for one endpoint, a fan-out for several."""
        port = self.port
        socks = [ep.data for ep in self.endpoints if ep.data is not None]
        fwd = self.server.forwarder
        if fwd is not None:
            self.server.unwait(self.index)
            fwd.clear_port(self.index)
        if not socks:
            port.detach()
        elif fwd is not None and len(socks) == 1:
            # C sends it, behind frames its output queue holds (see _vdefast.c)
            xmit = functools.partial(fwd.transmit, self.index)
            port.attach(xmit)
            rec = self.server.switch.ports[self.index]
            fwd.set_port(self.index, rec, port, rec.input, xmit, socks[0].fileno())
        elif len(socks) == 1:
            send = socks[0].send

            def transmit(frame: bytes) -> None:
                try:
                    send(frame)
                except OSError:  # EAGAIN: the client is not reading fast enough; ECONNREFUSED: gone
                    port.tx_dropped += 1

            port.attach(transmit)
        else:
            sends = [s.send for s in socks]

            def transmit_all(frame: bytes) -> None:
                for send in sends:
                    try:
                        send(frame)
                    except OSError:
                        port.tx_dropped += 1

            port.attach(transmit_all)
            if fwd is not None:  # may receive fast, but fans out in Python
                rec = self.server.switch.ports[self.index]
                fwd.set_port(self.index, rec, port, rec.input, None, -1)
        for hook in self.server.on_attach:
            hook(self.index, port)


class VdeServer:
    """Serves `switch` on the VDE ctl directory `path`."""

    def __init__(self, switch: Switch, rt: AsyncioRuntime, path: str, mode: int = 0o600,
                 group: str | None = None, dirmode: int | None = None, fast: bool = True) -> None:
        self.switch = switch
        self.rt = rt
        self.path = os.path.abspath(path)
        self.ctl_path = os.path.join(self.path, "ctl")
        self.mode = mode
        self.dirmode = dirmode if dirmode is not None else dirmode_for(mode)
        self.group = group
        self.gid = -1
        self.vports: dict[int, VdePort] = {}
        self.endpoints: dict[int, Endpoint] = {}  # ctl fd -> endpoint
        self.on_attach: list[Callable[[int, Port], None]] = []  # (index, port) after (re)wiring
        self.counters = {"connections": 0, "accepted": 0, "closed": 0, "bad_garbage": 0,
                         "bad_short": 0, "bad_magic": 0, "bad_version": 0, "refused": 0,
                         "timeouts": 0, "rx_errors": 0, "pauses": 0, "pause_timeouts": 0}
        self._pending = 0
        self._listener: socket.socket | None = None
        self._made_dir = False
        self.rx_size = switch.max_frame + 1  # one byte more, so oversize frames are seen as such
        self.forwarder = (Forwarder(switch.table, switch.numports, switch.max_frame,
                                    self._blocked, OUTPUT_QUEUE, OUTPUT_QUEUE_BYTES)
                          if Forwarder is not None and fast else None)
        self._waiting: dict[int, int] = {}  # port index -> data fd we wait to be writable
        self._paused: dict[int, list[tuple[int, Callable[[], None]]]] = {}  # port -> senders
        self._pause_timers: dict[int, Timer] = {}
        self._flow_control = True
        self.persistent: set[int] = set()  # ports made by port/create: kept with no endpoint
        self.acl: dict[int, tuple[int | None, int | None]] = {}  # port -> (uid, gid) allowed
        switch.on_port_change.append(self._port_changed)

    # ---- output queues of the C fast path ----------------------------------------------

    @property
    def flow_control(self) -> bool:
        return self._flow_control

    @flow_control.setter
    def flow_control(self, on: bool) -> None:
        self._flow_control = bool(on)
        if self.forwarder is not None:
            self.forwarder.flow_control = self._flow_control
            if not on:
                for egress in list(self._paused):
                    self._resume(egress)

    def _blocked(self, index: int, fd: int) -> None:
        """The client on `index` is not keeping up: drain its queue when it has room."""
        self._waiting[index] = fd
        self.rt.loop.add_writer(fd, self._writable, index, fd)

    def _writable(self, index: int, fd: int) -> None:
        assert self.forwarder is not None
        left = self.forwarder.drain(index)
        if left == 0:
            self.unwait(index)
        elif left <= OUTPUT_QUEUE // 4 and index in self._paused:
            self._resume(index)

    def unwait(self, index: int) -> None:
        fd = self._waiting.pop(index, None)
        if fd is not None:
            try:
                self.rt.loop.remove_writer(fd)
            except (ValueError, OSError, RuntimeError):
                pass
        self._resume(index)

    def _pause(self, egress: int, fd: int, reader: Callable[[], None]) -> None:
        """Stop reading a sender's socket until port `egress` has drained (flow control)."""
        self.rt.loop.remove_reader(fd)
        self._paused.setdefault(egress, []).append((fd, reader))
        self.counters["pauses"] += 1
        if egress not in self._pause_timers:
            self._pause_timers[egress] = self.rt.call_later(PAUSE_MAX, self._pause_expired,
                                                            egress)

    def _pause_expired(self, egress: int) -> None:
        self._pause_timers.pop(egress, None)
        if self.forwarder is not None:
            self.forwarder.set_lossy(egress)
        self.counters["pause_timeouts"] += 1
        self._resume(egress)

    def _resume(self, egress: int) -> None:
        timer = self._pause_timers.pop(egress, None)
        if timer is not None:
            timer.cancel()
        for fd, reader in self._paused.pop(egress, ()):
            self.rt.loop.add_reader(fd, reader)

    def _forget_paused(self, fd: int) -> None:
        """A paused sender's socket is closing: never re-add a reader for its fd number."""
        for egress, lst in list(self._paused.items()):
            kept = [(f, r) for f, r in lst if f != fd]
            if len(kept) != len(lst):
                self._paused[egress] = kept

    # ---- port/create and access control (vde_switch's port/setuser, port/setgroup) -------

    def create_port(self, index: int) -> None:
        """A port that exists (keeps its VLAN and ACL) whether or not a client is plugged in."""
        if index == 0:
            raise SwitchError("port 0 is the management port: create ports 1..N")
        self.switch.add_port(index)  # SwitchError if taken or out of range
        self.persistent.add(index)

    def set_acl(self, index: int, uid: int | None = None, gid: int | None = None) -> None:
        if index not in self.switch.ports:
            raise SwitchError(f"port {index} is not in use: port/create {index} first")
        old_uid, old_gid = self.acl.get(index, (None, None))
        self.acl[index] = (old_uid if uid is None else uid, old_gid if gid is None else gid)

    def _check_acl(self, index: int, uid: int) -> None:
        want_uid, want_gid = self.acl[index]
        if uid == 0:
            return  # root may use any port, as in vde_switch
        if want_uid is not None and uid != want_uid:
            raise SwitchError(f"port {index} is reserved for uid {want_uid}")
        if want_gid is not None:
            try:
                pw = pwd.getpwuid(uid)
                groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
            except KeyError:
                groups = []
            if want_gid not in groups:
                raise SwitchError(f"port {index} is reserved for group {want_gid}")

    def _port_changed(self, index: int, added: bool) -> None:
        if not added:
            self.persistent.discard(index)
            self.acl.pop(index, None)

    # ---- setup ----------------------------------------------------------------------------

    def start(self) -> None:
        self.prepare()
        self.listen()

    def prepare(self) -> None:
        """Check or make the directory (errors here are the user's to fix)."""
        if self.group is not None:
            try:
                self.gid = grp.getgrnam(self.group).gr_gid
            except KeyError:
                raise VdeServerError(f"group {self.group!r} does not exist: check -g") from None
        self._prepare_dir()

    def listen(self) -> None:
        """Make `ctl` appear already listening: bind a temporary name, listen, then rename,
        so a client that sees `ctl` never gets ECONNREFUSED."""
        tmp = os.path.join(self.path, f".ctl-{os.getpid()}")
        lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            lsock.bind(tmp)
            os.chmod(tmp, self.mode)
            if self.gid >= 0:
                os.chown(tmp, -1, self.gid)
            lsock.listen(64)
            os.rename(tmp, self.ctl_path)
        except OSError as e:
            lsock.close()
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise VdeServerError(f"cannot listen on {self.ctl_path}: {e.strerror}") from None
        lsock.setblocking(False)
        self._listener = lsock
        self.rt.loop.add_reader(lsock.fileno(), self._accept)

    def _prepare_dir(self) -> None:
        p = self.path
        try:
            os.mkdir(p, 0o700)
            self._made_dir = True
        except FileExistsError:
            self._check_existing_dir()
        except PermissionError:
            raise VdeServerError(f"cannot create switch directory {p}: permission denied "
                                 f"(choose a path you can write, e.g. /tmp/{os.path.basename(p)})"
                                 ) from None
        except FileNotFoundError:
            raise VdeServerError(f"cannot create switch directory {p}: its parent does not exist"
                                 ) from None
        except OSError as e:
            raise VdeServerError(f"cannot create switch directory {p}: {e.strerror}") from None
        try:
            os.chmod(p, self.dirmode)
            if self.gid >= 0:
                os.chown(p, -1, self.gid)
        except OSError as e:
            raise VdeServerError(f"cannot set mode/group of {p}: {e.strerror}") from None

    def _check_existing_dir(self) -> None:
        p = self.path
        st = os.lstat(p)
        if not stat.S_ISDIR(st.st_mode):
            raise VdeServerError(f"{p} exists and is not a directory: choose another -s path")
        if st.st_uid != os.geteuid():
            raise VdeServerError(f"{p} exists and belongs to uid {st.st_uid}, not us: "
                                 f"choose another -s path or remove it")
        names = os.listdir(p)
        if names and "ctl" not in names:
            raise VdeServerError(f"{p} exists and is not a VDE switch directory (no ctl socket): "
                                 f"choose another -s path")
        if "ctl" in names:
            ctl = self.ctl_path
            if not stat.S_ISSOCK(os.lstat(ctl).st_mode):
                raise VdeServerError(f"{ctl} exists and is not a socket: choose another -s path")
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.settimeout(1.0)
                probe.connect(ctl)
            except OSError:
                pass  # dead: a stale socket from a switch that did not clean up
            else:
                raise VdeServerError(f"{p} is in use by a running switch: stop it or choose another "
                                     f"-s path")
            finally:
                probe.close()
            for name in names:  # clear the dead switch's sockets
                if _STALE.match(name):
                    try:
                        os.unlink(os.path.join(p, name))
                    except OSError:
                        pass

    # ---- ctl connections ------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        for _ in range(64):
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # EMFILE and the like: say so once, stop accepting for a second (the pending
                # connection would otherwise wake us in a busy loop), keep forwarding
                log.warning("vde: accept on %s failed: %s; pausing new connections for 1 s",
                            self.ctl_path, e.strerror)
                self.rt.loop.remove_reader(self._listener.fileno())
                self.rt.call_later(1.0, self._resume_accept)
                return
            conn.setblocking(False)
            self.counters["connections"] += 1
            if self._pending >= MAX_PENDING:
                self.counters["refused"] += 1
                conn.close()
                continue
            ep = Endpoint(conn)
            self.endpoints[ep.id] = ep
            self._pending += 1
            ep.timer = self.rt.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout, ep)
            self.rt.loop.add_reader(ep.id, self._ctl_readable, ep)

    def _resume_accept(self) -> None:
        if self._listener is not None:
            self.rt.loop.add_reader(self._listener.fileno(), self._accept)

    def _handshake_timeout(self, ep: Endpoint) -> None:
        if ep.data is None and ep.id in self.endpoints:
            self.counters["timeouts"] += 1
            log.warning("vde: a ctl connection sent no request within %g s; closed",
                        HANDSHAKE_TIMEOUT)
            self.close_endpoint(ep)

    def _ctl_readable(self, ep: Endpoint) -> None:
        try:
            data = ep.ctl.recv(REQUEST_MAX + 6)  # vde_switch reads at most 256
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # EOF: the client is gone
            self.close_endpoint(ep)
            return
        if ep.data is not None:
            # The stream is silent after the handshake; vde_switch drops a talker too.
            log.warning("vde: unexpected %d bytes on ctl after the handshake from %s; closing it",
                        len(data), ep.description or ep.client_path)
            self.counters["bad_garbage"] += 1
            self.close_endpoint(ep)
            return
        try:
            req = parse_request(data)
        except WireError as e:
            msg = str(e)
            kind = ("bad_short" if msg.startswith("short") else "bad_magic" if "magic" in msg
                    else "bad_version" if "version" in msg else "bad_garbage")
            self.counters[kind] += 1
            log.warning("vde: rejected a request on %s: %s", self.ctl_path, msg)
            self.close_endpoint(ep)
            return
        try:
            self._new_port(ep, req.path, req.port, req.port0, req.description)
        except (OSError, SwitchError) as e:
            self.counters["refused"] += 1
            text = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            log.warning("vde: refused %s (%s): %s", req.path, req.description, text)
            self.close_endpoint(ep)

    def _new_port(self, ep: Endpoint, client: str, want: int, port0: bool, descr: str) -> None:
        if not os.access(client, os.R_OK | os.W_OK):
            raise OSError(errno.EPERM, f"client socket {client} is missing or not read/writable")
        uid = os.stat(client).st_uid
        index = 0 if port0 else want
        vport = self.vports.get(index) if index or port0 else None
        if vport is not None and vport.uid != uid and uid != 0:
            raise SwitchError(f"port {index} is in use by uid {vport.uid}")
        if (index or port0) and index in self.acl:
            self._check_acl(index, uid)
        data = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            data.setblocking(False)
            for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                try:
                    data.setsockopt(socket.SOL_SOCKET, opt, SOCKBUF)
                except OSError:
                    pass
            data.connect(client)
            created = vport is None
            if created and (index or port0) and index in self.persistent:
                vport = VdePort(self, index, self.switch.ports[index].port, uid)
                self.vports[index] = vport
                created = False  # the port outlives this endpoint (port/create)
            if created:
                port = self.switch.add_port(index if index or port0 else None)
                index = next(i for i, r in self.switch.ports.items() if r.port is port)
                vport = VdePort(self, index, port, uid)
                self.vports[index] = vport
            assert vport is not None
            path = os.path.join(self.path, f"{index:03d}.{data.fileno()}")
            try:
                try:
                    os.unlink(path)  # left by a dead switch
                except FileNotFoundError:
                    pass
                data.bind(path)
                os.chmod(path, self.mode)
                if self.gid >= 0:
                    os.chown(path, -1, self.gid)
                ep.ctl.send(build_sockaddr(path))
            except OSError:
                try:
                    os.unlink(path)
                except OSError:
                    pass
                if created:
                    self._drop_vport(vport)
                raise
        except BaseException:
            data.close()
            raise
        ep.data, ep.path, ep.client_path, ep.uid, ep.description = data, path, client, uid, descr
        if ep.timer is not None:
            ep.timer.cancel()
            ep.timer = None
            self._pending -= 1
        ep.vport = vport
        vport.endpoints.append(ep)
        if not vport.port.description:
            vport.port.description = descr
        vport.refresh()
        self.counters["accepted"] += 1
        self.rt.loop.add_reader(data.fileno(), self._make_reader(data, vport))
        log.info("vde: port %d: endpoint %d connected (uid %d, %s)", vport.index, ep.id, uid,
                 descr)

    def _make_reader(self, sock: socket.socket, vport: VdePort) -> Callable[[], None]:
        port = vport.port
        recv = sock.recv
        size = self.rx_size
        counters = self.counters
        fwd = self.forwarder
        if fwd is not None:
            pump = fwd.pump
            index = vport.index
            fd = sock.fileno()

            def readable_fast() -> None:
                _, errors, paused_on = pump(index, fd, READ_BUDGET)
                if errors:
                    counters["rx_errors"] += errors
                if paused_on >= 0:
                    self._pause(paused_on, fd, readable_fast)

            return readable_fast

        def readable() -> None:
            deliver = port.receive  # looked up per wake-up: capture/STP may rewrap it
            for _ in range(READ_BUDGET):
                try:
                    frame = recv(size)
                except BlockingIOError:
                    return
                except OSError:  # ECONNREFUSED after the client vanished; EOF comes on ctl
                    counters["rx_errors"] += 1
                    return
                deliver(frame)

        return readable

    def close_endpoint(self, ep: Endpoint) -> None:
        if self.endpoints.get(ep.id) is not ep:
            return
        del self.endpoints[ep.id]
        if ep.timer is not None:  # still in the handshake
            ep.timer.cancel()
            ep.timer = None
            self._pending -= 1
        loop = self.rt.loop
        try:
            loop.remove_reader(ep.id)
        except (ValueError, OSError, RuntimeError):
            pass
        ep.ctl.close()
        if ep.data is not None:
            self.counters["closed"] += 1
            log.info("vde: port %d: endpoint %d closed",
                     ep.vport.index if ep.vport is not None else -1, ep.id)
            try:
                loop.remove_reader(ep.data.fileno())
            except (ValueError, OSError, RuntimeError):
                pass
            if ep.vport is not None and self._waiting.get(ep.vport.index) == ep.data.fileno():
                self.unwait(ep.vport.index)
            self._forget_paused(ep.data.fileno())
            ep.data.close()
            ep.data = None
            try:
                os.unlink(ep.path)
            except OSError:
                pass
        vport = ep.vport
        if vport is not None:
            if ep in vport.endpoints:
                vport.endpoints.remove(ep)
            if vport.endpoints:
                vport.refresh()
            else:
                self._drop_vport(vport)

    def _drop_vport(self, vport: VdePort) -> None:
        if self.vports.get(vport.index) is vport:
            del self.vports[vport.index]
            if self.forwarder is not None:
                self.unwait(vport.index)
                self.forwarder.clear_port(vport.index)
            if vport.index in self.persistent:
                vport.port.detach()
                vport.port.description = ""
            elif vport.index in self.switch.ports:
                self.switch.remove_port(vport.index)

    def close_port(self, index: int) -> int:
        """Disconnect every endpoint on a port (console `port/remove`); returns how many."""
        vport = self.vports.get(index)
        if vport is None:
            return 0
        eps = list(vport.endpoints)
        for ep in eps:
            self.close_endpoint(ep)
        return len(eps)

    def endpoint_info(self, index: int) -> list[dict[str, object]]:
        vport = self.vports.get(index)
        if vport is None:
            return []
        return [{"id": ep.id, "uid": ep.uid, "descr": ep.description, "sock": ep.client_path}
                for ep in vport.endpoints]

    def close(self) -> None:
        for ep in list(self.endpoints.values()):
            self.close_endpoint(ep)
        if self._listener is not None:
            try:
                self.rt.loop.remove_reader(self._listener.fileno())
            except (ValueError, OSError, RuntimeError):
                pass
            self._listener.close()
            self._listener = None
            try:
                os.unlink(self.ctl_path)
            except OSError:
                pass
        if self._made_dir:
            self._made_dir = False
            try:
                os.rmdir(self.path)
            except OSError:
                pass
