"""Packet socket on an existing interface: `packet://IF[?ethertype=0x886f&promisc=1&netns=NS]`.

An AF_PACKET raw socket bound to IF, in promiscuous mode by default (a membership
that ends with the socket, so the interface's own flag is untouched). Frames
the interface itself transmits (PACKET_OUTGOING, including the ones we send)
are ignored, so nothing loops back into the engine. `ethertype=` restricts
reception to one protocol (e.g. 0x886f), filtered by the kernel.

Offloads: frames the interface receives may carry a *partial* checksum (a veth
whose peer's kernel left checksumming to "hardware") or be GSO/GRO frames far
over the MTU. With PACKET_VNET_HDR (on by default; `vnet_hdr=0` turns it off)
each comes with a virtio-net header, and vnet either passes it on whole to
offload-capable ports or finishes it in software (vnet.phy.offload). Without
it such frames would leave vnet with wrong checksums or be dropped as oversize.

802.1Q tags: the kernel moves the tag of every received frame into metadata
before packet sockets see it. With PACKET_AUXDATA (on by default; `vlan=0` for
a little more speed when no tagged traffic matters) vnet puts the tag back, as
libpcap does, so trunks work.
"""

from __future__ import annotations

import socket
import struct

from vnet.link.offload import PENDING
from vnet.link.port import Port
from vnet.phy.netns import in_netns
from vnet.phy.offload import OffloadRx
from vnet.phy.url import AttachUrl, UrlError
from vnet.runtime.realtime import AsyncioRuntime

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_IGNORE_OUTGOING = 23  # Linux >= 4.20
PACKET_OUTGOING = 4
PACKET_VNET_HDR = 15
HL = 10  # struct virtio_net_hdr without num_buffers
PLAIN = bytes(HL)
READ_SIZE = 65536 + 64
READ_BUDGET = 256
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
TP_STATUS_VLAN_TPID_VALID = 0x40
_AUX = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
_CMSG_SPACE = socket.CMSG_SPACE(_AUX.size)
_U16LE = struct.Struct("<H")


def _retag(data: bytes, hl: int, tpid: int, tci: int) -> bytes:
    """Insert the 802.1Q tag after the MAC addresses; shift the virtio-net offsets by 4."""
    tag = tpid.to_bytes(2, "big") + tci.to_bytes(2, "big")
    if hl:
        hdr = bytearray(data[:hl])
        if hdr[0] & 1 or hdr[1]:  # offsets in use: hdr_len (2) and csum_start (6)
            for off in (2, 6):
                _U16LE.pack_into(hdr, off, _U16LE.unpack_from(hdr, off)[0] + 4)
        return bytes(hdr) + data[hl:hl + 12] + tag + data[hl + 12:]
    return data[:12] + tag + data[12:]


class PacketAttachment:
    def __init__(self, rt: AsyncioRuntime, port: Port, sock: socket.socket, ifname: str,
                 kernel_filters_outgoing: bool, vnet_hdr: bool = False,
                 vlan: bool = False) -> None:
        self.rt = rt
        self.port = port
        self.sock = sock
        self.ifname = ifname
        self.rx_errors = 0
        self.rx_retagged = 0  # frames whose 802.1Q tag we put back from auxdata
        self._closed = False
        self.offload: OffloadRx | None = None
        if vnet_hdr:
            self.offload = OffloadRx(port, HL)
            port.attach(self._send_vnet)
            reader = self._readable_vnet
        else:
            port.attach(self._send)
            reader = self._readable
        if vlan or not kernel_filters_outgoing:
            reader = self._readable_msg
        rt.loop.add_reader(sock.fileno(), reader)

    def _readable(self) -> None:
        recv = self.sock.recv
        deliver = self.port.deliver
        for _ in range(READ_BUDGET):
            try:
                frame = recv(READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self.rx_errors += 1
                self.close()  # e.g. ENETDOWN after the interface vanished
                return
            deliver(frame)

    def _readable_vnet(self) -> None:
        recv = self.sock.recv
        deliver = self.port.deliver
        take = self.offload.take  # type: ignore[union-attr]
        for _ in range(READ_BUDGET):
            try:
                data = recv(READ_SIZE)
            except BlockingIOError:
                return
            except OSError:
                self.rx_errors += 1
                self.close()
                return
            if data[0] & 1 == 0 and data[1] == 0:  # no GSO, checksum complete
                deliver(data[HL:])
            else:
                take(data)

    def _readable_msg(self) -> None:
        """The general reader: puts back VLAN tags the kernel moved into metadata (auxdata),
        and drops our own transmissions on kernels without PACKET_IGNORE_OUTGOING."""
        recvmsg = self.sock.recvmsg
        deliver = self.port.deliver
        offload = self.offload
        hl = HL if offload is not None else 0
        for _ in range(READ_BUDGET):
            try:
                data, anc, _flags, addr = recvmsg(READ_SIZE, _CMSG_SPACE)
            except BlockingIOError:
                return
            except OSError:
                self.rx_errors += 1
                self.close()
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            for level, kind, aux in anc:
                if level == SOL_PACKET and kind == PACKET_AUXDATA and len(aux) >= _AUX.size:
                    status, _, _, _, _, tci, tpid = _AUX.unpack_from(aux)
                    if status & TP_STATUS_VLAN_VALID:
                        if not status & TP_STATUS_VLAN_TPID_VALID:
                            tpid = 0x8100
                        data = _retag(data, hl, tpid, tci)
                        self.rx_retagged += 1
            if offload is None:
                deliver(data)
            elif data[0] & 1 == 0 and data[1] == 0:
                deliver(data[HL:])
            else:
                offload.take(data)

    def _send(self, frame: bytes) -> None:
        try:
            self.sock.send(frame)
        except OSError:
            self.port.tx_dropped += 1  # ENOBUFS, EMSGSIZE (over the interface MTU), ENETDOWN

    def _send_vnet(self, frame: bytes) -> None:
        hdr = PENDING[1][:HL] if frame is PENDING[0] else PLAIN
        try:
            self.sock.sendmsg((hdr, frame))
        except OSError:
            self.port.tx_dropped += 1

    _send_vnet.accepts_offload = True  # type: ignore[attr-defined]

    def counters(self) -> dict[str, int]:
        extra = self.offload.counters() if self.offload is not None else {}
        return {**extra, "rx_errors": self.rx_errors, **self.port.counters()}

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


def _open(ifname: str, proto: int, promisc: bool, vnet_hdr: bool,
          vlan: bool) -> tuple[socket.socket, bool]:
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    except PermissionError:
        raise UrlError(f"packet://{ifname}: packet sockets need root or CAP_NET_RAW "
                       f"(run as root)") from None
    try:
        if vnet_hdr:
            sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        if vlan:
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
        try:
            sock.bind((ifname, proto))
        except OSError as e:
            raise UrlError(f"packet://{ifname}: no such interface here ({e.strerror}); "
                           f"see `ip link`") from None
        if promisc:
            ifindex = socket.if_nametoindex(ifname)
            mreq = struct.pack("iHH8s", ifindex, PACKET_MR_PROMISC, 0, b"")
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            filtered = True
        except OSError:
            filtered = False
        sock.setblocking(False)
        return sock, filtered
    except BaseException:
        sock.close()
        raise


async def open_url(url: AttachUrl, port: Port, rt: AsyncioRuntime) -> PacketAttachment:
    known = {"ethertype", "promisc", "netns", "vnet_hdr", "vlan"}
    bad = set(url.options) - known
    if bad:
        raise UrlError(f"{url.raw}: unknown option(s) {', '.join(sorted(bad))}; "
                       f"known: {', '.join(sorted(known))}")
    ifname = url.target
    if not ifname or len(ifname) > 15 or "/" in ifname:
        raise UrlError(f"{url.raw}: name an existing interface, e.g. packet://eth0")
    proto = ETH_P_ALL
    if "ethertype" in url.options:
        try:
            proto = int(url.options["ethertype"], 0)
        except ValueError:
            proto = -1
        if not 0x600 <= proto <= 0xFFFF:
            raise UrlError(f"{url.raw}: ethertype must be 0x0600..0xffff, e.g. ethertype=0x886f")
    promisc = url.options.get("promisc", "1") not in ("0", "no", "off", "false")
    vnet_hdr = url.options.get("vnet_hdr", "1") not in ("0", "no", "off", "false")
    vlan = url.options.get("vlan", "1") not in ("0", "no", "off", "false")
    sock, filtered = in_netns(url.options.get("netns"),
                              lambda: _open(ifname, proto, promisc, vnet_hdr, vlan))
    return PacketAttachment(rt, port, sock, ifname, filtered, vnet_hdr, vlan)
