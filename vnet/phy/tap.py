"""TAP attachment: `tap://IF[?netns=NS&up=1&mtu=N&vnet_hdr=1]`.

Opens /dev/net/tun with IFF_TAP|IFF_NO_PI, which attaches to the interface IF or
creates it (not persistent: it disappears when we close it). The fd is
non-blocking; a reader callback drains it (bounded per wake-up so one busy TAP
cannot starve the loop) and hands each frame to `port.deliver`. Frames the engine
sends are written with one `os.write`; a full queue (EAGAIN) counts a tx drop.

`netns=NS` creates the interface inside the named network namespace
(/run/netns/NS, as made by `ip netns add`) from a short-lived thread, so the
caller's own namespace is untouched.

`vnet_hdr=1` turns on IFF_VNET_HDR with TSO4/TSO6/CSUM offloads, so TCP moves
64 KB frames through the switch unsegmented, and a host stack (`vnet host`) takes
the kernel's GSO frames whole and sends it TSO segments: see `vnet.phy.offload`.

"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import struct

from vnet.link.port import Port
from vnet.phy.netns import in_netns
from vnet.phy.url import AttachUrl, UrlError
from vnet.runtime.realtime import AsyncioRuntime

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
TUN_F_TSO_ECN = 0x08
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
SIOCSIFMTU = 0x8922
IFF_UP = 0x1

_IFREQ_FLAGS = struct.Struct("16sH14x")
_IFREQ_INT = struct.Struct("16si12x")
READ_SIZE = 65536 + 64  # the largest GSO frame plus a virtio-net header
READ_BUDGET = 256  # frames per wake-up before yielding to other fds


class TapError(UrlError):
    """A TAP that cannot be opened; the message says why and what to do."""


def _check_name(name: str) -> bytes:
    raw = name.encode()
    if not raw or len(raw) > 15 or "/" in name or any(c.isspace() for c in name):
        raise TapError(f"bad interface name {name!r}: use 1..15 characters, no '/' or spaces")
    return raw


def _set_up_and_mtu(name: bytes, up: bool, mtu: int | None) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        if mtu is not None:
            fcntl.ioctl(s, SIOCSIFMTU, _IFREQ_INT.pack(name, mtu))
        if up:
            res = fcntl.ioctl(s, SIOCGIFFLAGS, _IFREQ_FLAGS.pack(name, 0))
            flags = _IFREQ_FLAGS.unpack(res)[1]
            fcntl.ioctl(s, SIOCSIFFLAGS, _IFREQ_FLAGS.pack(name, flags | IFF_UP))


def _open_here(name: str, up: bool, mtu: int | None, vnet_hdr: bool) -> tuple[int, str]:
    raw = _check_name(name)
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise TapError("/dev/net/tun is missing: load the tun module (modprobe tun)") from None
    except PermissionError:
        raise TapError("cannot open /dev/net/tun: permission denied (run as root)") from None
    try:
        flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
        try:
            res = fcntl.ioctl(fd, TUNSETIFF, _IFREQ_FLAGS.pack(raw, flags))
        except OSError as e:
            if e.errno == errno.EPERM:
                raise TapError(f"cannot create TAP {name!r}: needs root or CAP_NET_ADMIN "
                               f"(run as root, or pre-create it with "
                               f"`ip tuntap add {name} mode tap user $USER`)") from None
            if e.errno == errno.EBUSY:
                raise TapError(f"TAP {name!r} is busy: another program has it open") from None
            if e.errno == errno.EINVAL:
                raise TapError(f"{name!r} exists and is not a TAP interface with matching "
                               f"flags: choose another name") from None
            raise TapError(f"cannot attach to TAP {name!r}: {e.strerror}") from None
        ifname = _IFREQ_FLAGS.unpack(res)[0].rstrip(b"\0").decode()
        if vnet_hdr:
            # 12-byte header (virtio 1.0 / mergeable layout) so num_buffers is present.
            fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
            fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN)
        try:
            _set_up_and_mtu(ifname.encode(), up, mtu)
        except OSError as e:
            raise TapError(f"TAP {ifname!r}: cannot set {'MTU ' + str(mtu) if mtu else 'up'}: "
                           f"{e.strerror}") from None
        return fd, ifname
    except BaseException:
        os.close(fd)
        raise


VNET_HDR_LEN = 12


def open_tap(name: str, up: bool = True, mtu: int | None = None, vnet_hdr: bool = False,
             netns: str | None = None) -> tuple[int, str]:
    """Open (creating if needed) TAP `name`; return (non-blocking fd, interface name)."""
    return in_netns(netns, lambda: _open_here(name, up, mtu, vnet_hdr))


class TapAttachment:
    """A Port joined to a TAP fd. Plain frames unless `vnet_hdr` (then see vnet.phy.offload)."""

    def __init__(self, fd: int, ifname: str, port: Port, rt: AsyncioRuntime) -> None:
        self.fd = fd
        self.ifname = ifname
        self.port = port
        self.rt = rt
        self.rx_errors = 0
        self._closed = False
        port.attach(self._write)
        rt.loop.add_reader(fd, self._readable)

    def _readable(self) -> None:
        read = os.read
        fd = self.fd
        deliver = self.port.deliver
        for _ in range(READ_BUDGET):
            try:
                frame = read(fd, READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                # e.g. EBADFD once the interface is deleted under us
                self.rx_errors += 1
                self.port.rx_dropped += 1
                self.close()
                return
            deliver(frame)

    def _write(self, frame: bytes) -> None:
        try:
            os.write(self.fd, frame)
        except OSError:
            # EAGAIN (kernel queue full), EIO (interface down), EINVAL (bad frame): drop and count
            self.port.tx_dropped += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.port.detach()
        try:
            self.rt.loop.remove_reader(self.fd)
        except (ValueError, OSError, RuntimeError):  # loop already closed
            pass
        os.close(self.fd)

    def __repr__(self) -> str:
        return f"<TapAttachment {self.ifname}>"


def _flag(options: dict[str, str], key: str, default: bool) -> bool:
    v = options.get(key)
    if v is None:
        return default
    if v.lower() in ("", "1", "yes", "true", "on"):
        return True
    if v.lower() in ("0", "no", "false", "off"):
        return False
    raise UrlError(f"option {key}={v!r}: use {key}=1 or {key}=0")


def parse_options(url: AttachUrl) -> dict[str, object]:
    known = {"netns", "up", "mtu", "vnet_hdr"}
    bad = set(url.options) - known
    if bad:
        raise UrlError(f"{url.raw}: unknown option(s) {', '.join(sorted(bad))}; "
                       f"known: {', '.join(sorted(known))}")
    mtu: int | None = None
    if "mtu" in url.options:
        try:
            mtu = int(url.options["mtu"])
        except ValueError:
            raise UrlError(f"{url.raw}: mtu must be a number, e.g. mtu=9000") from None
        if not 68 <= mtu <= 65521:
            raise UrlError(f"{url.raw}: mtu {mtu} out of range 68..65521")
    return {"name": url.target, "up": _flag(url.options, "up", True), "mtu": mtu,
            "vnet_hdr": _flag(url.options, "vnet_hdr", False),
            "netns": url.options.get("netns") or None}


def attach_fd(fd: int, ifname: str, port: Port, rt: AsyncioRuntime,
              vnet_hdr: bool = False) -> TapAttachment:
    """Join an fd from `open_tap` to `port` (pass the same `vnet_hdr` it was opened with)."""
    if vnet_hdr:
        from vnet.phy.offload import VnetTapAttachment
        return VnetTapAttachment(fd, ifname, port, rt)
    return TapAttachment(fd, ifname, port, rt)


async def open_url(url: AttachUrl, port: Port, rt: AsyncioRuntime) -> TapAttachment:
    opts = parse_options(url)
    if not url.target:
        raise UrlError(f"{url.raw}: name the interface, e.g. tap://tap0")
    fd, ifname = open_tap(str(opts["name"]), up=bool(opts["up"]), mtu=opts["mtu"],  # type: ignore[arg-type]
                          vnet_hdr=bool(opts["vnet_hdr"]), netns=opts["netns"])  # type: ignore[arg-type]
    return attach_fd(fd, ifname, port, rt, bool(opts["vnet_hdr"]))


async def attach(url: str, port: Port, rt: AsyncioRuntime) -> TapAttachment:
    """`await attach("tap://tap0", port, rt)` - convenience for callers that only do TAPs."""
    from vnet.phy.url import parse_url
    u = parse_url(url)
    if u.scheme != "tap":
        raise UrlError(f"not a tap:// URL: {url!r}")
    return await open_url(u, port, rt)
