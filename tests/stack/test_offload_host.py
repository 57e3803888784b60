"""The host stack with offloads, sans-IO: TSO out, GSO frames in whole, software fallbacks.

Two Hosts in simulated time joined by a "TAP-like" wire: a transmit function that
declares `accepts_offload` and hands a frame with its virtio-net header on to the
other host exactly as vnet.phy.offload does for a kernel frame (PENDING set during
delivery). The wire also plays the kernel's part of checking each partial checksum:
completed from the pseudo-header sum in the frame, it must verify with a pseudo-header
computed independently here.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.link.link import Link
from vnet.link.offload import PENDING
from vnet.runtime.sim import SimRuntime
from vnet.stack.host import Host
from vnet.stack.sockets import tcp_of
from vnet.wire import virtio_net as vh
from vnet.wire.checksum import ones_sum

HDR10 = struct.Struct("<BBHHHH")
N = 2_000_000


def _data(n: int) -> bytes:
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(i.to_bytes(8, "big")).digest() * 32
        i += 1
    return bytes(out[:n])


def _tcp_csum_ok(frame: bytes) -> bool:
    """Full TCP checksum check of an IPv4/IPv6 frame, pseudo-header built from scratch."""
    if frame[12:14] == b"\x08\x00":
        ihl = (frame[14] & 15) * 4
        l4 = 14 + ihl
        seg = frame[l4:14 + int.from_bytes(frame[16:18], "big")]
        pseudo = frame[26:34] + b"\x00\x06" + len(seg).to_bytes(2, "big")
    else:
        l4 = 54
        seg = frame[l4:]
        pseudo = frame[22:54] + len(seg).to_bytes(4, "big") + b"\x00\x00\x00\x06"
    return ones_sum(pseudo + seg) == 0xFFFF


class TapLikeWire:
    """a.port -> b.port and back, each direction a 'TAP with offloads' (or plain)."""

    def __init__(self, rt: SimRuntime, a: Host, b: Host, offload: bool = True,
                 loss: float = 0.0) -> None:
        self.rt = rt
        self.loss = loss
        self.lost = 0
        self.headers: list[tuple[int, int, int, int, int, int, int]] = []
        self.partial_ok: list[bool] = []
        self.sizes: list[int] = []
        self.plain_csum_ok: list[bool] = []
        self.ports = {}
        for x, y in ((a, b), (b, a)):
            src, dst = x.ifaces[0].port, y.ifaces[0].port

            def tx(frame: bytes, dst=dst) -> None:
                self._carry(frame, dst)

            if offload:
                tx.accepts_offload = True  # type: ignore[attr-defined]
            src.attach(tx)

    def _carry(self, frame: bytes, dst) -> None:
        self.sizes.append(len(frame))
        if self.loss and self.rt.rng.random() < self.loss:
            self.lost += 1
            return
        if frame is PENDING[0]:
            hdr = bytes(PENDING[1])
            h = vh.HDR.unpack(hdr)
            self.headers.append(h)
            flags, gso, _, gso_size, cs, co, _ = h
            # the kernel completes the checksum from the field: it must come out right
            full = bytes(vh.finish_checksum(frame, cs, co))
            self.partial_ok.append(_tcp_csum_ok(full))
            self.rt.call_soon(self._deliver_offloaded, frame, hdr, dst)
        else:
            if frame[12:14] in (b"\x08\x00", b"\x86\xdd") and \
                    (frame[23] == 6 if frame[12] == 8 and frame[13] == 0 else frame[20] == 6):
                self.plain_csum_ok.append(_tcp_csum_ok(frame))
            self.rt.call_soon(dst.deliver, frame)

    @staticmethod
    def _deliver_offloaded(frame: bytes, hdr: bytes, dst) -> None:
        PENDING[0] = frame
        PENDING[1] = hdr
        try:
            dst.deliver(frame)
        finally:
            PENDING[0] = None
            PENDING[1] = b""


def _pair(rt: SimRuntime, v6: bool) -> tuple[Host, Host, str]:
    a, b = Host(rt, "a"), Host(rt, "b")
    a.add_interface("eth0")
    b.add_interface("eth0")
    return a, b, ("fd00::2" if v6 else "10.0.0.2")


def _address(a: Host, b: Host, rt: SimRuntime) -> None:
    a.add_address("eth0", "10.0.0.1/24")
    b.add_address("eth0", "10.0.0.2/24")
    a.add_address("eth0", "fd00::1/64")
    b.add_address("eth0", "fd00::2/64")
    rt.run(until=rt.now() + 3)  # DAD


def _hashing_sink() -> tuple[dict, Callable[[object], None]]:
    """An accept callback whose connections hash what they receive into `got`."""
    got: dict = {"h": hashlib.sha256(), "n": 0, "conn": None}

    def accept(conn) -> None:
        got["conn"] = conn

        def on_data(d: bytes) -> None:
            got["h"].update(d)
            got["n"] += len(d)

        conn.on_data = on_data
        conn.on_eof = conn.close

    return got, accept


def _transfer(rt: SimRuntime, a: Host, b: Host, dst: str, data: bytes) -> tuple[object, dict]:
    got, accept = _hashing_sink()
    tcp_of(b).listen(9, accept)
    conn = tcp_of(a).connect(dst, 9)
    view = memoryview(data)
    st = {"off": 0}

    def pump() -> None:
        while st["off"] < len(data) and conn.writable:
            conn.send(view[st["off"]:st["off"] + 65536])
            st["off"] += 65536
        if st["off"] >= len(data):
            conn.on_writable = lambda: None
            conn.shutdown()

    conn.on_established = pump
    conn.on_writable = pump
    rt.run(until=rt.now() + 120)
    return conn, got


def _check_tso_run(fam: str) -> None:
    rt = SimRuntime(seed=3)
    a, b, dst = _pair(rt, fam == "v6")
    wire = TapLikeWire(rt, a, b)
    _address(a, b, rt)
    data = _data(N)
    conn, got = _transfer(rt, a, b, dst, data)
    assert got["n"] == N and got["h"].hexdigest() == hashlib.sha256(data).hexdigest()
    info = conn.info()
    assert info["tso"] is True and info["tso_segments"] > 0
    assert a.stats["tx_gso"] > 0 and b.stats["rx_gso_whole"] == a.stats["tx_gso"]
    assert a.stats["tx_gso_segmented"] == 0
    # every partial checksum completes to a valid one
    assert wire.partial_ok and all(wire.partial_ok)
    assert wire.plain_csum_ok and all(wire.plain_csum_ok)  # handshake, ACKs: full checksums
    mss = info["mss"]
    kind = vh.GSO_TCPV6 if fam == "v6" else vh.GSO_TCPV4
    l4 = 54 if fam == "v6" else 34
    gso = [h for h in wire.headers if h[1] != vh.GSO_NONE]
    assert gso
    for flags, gso_type, hdr_len, gso_size, cs, co, _ in gso:
        assert (flags, gso_type, gso_size, cs, co) == (vh.F_NEEDS_CSUM, kind, mss, l4, 16)
        assert hdr_len == l4 + 32  # TCP header with timestamps
    assert max(wire.sizes) > 10 * mss and max(wire.sizes) <= 14 + 40 + 60 + 64000
    # the receiver took them whole: far fewer segments than bytes / MSS
    assert got["conn"].rx_segments < N // mss // 4


def test_tso_out_and_gso_in_whole_v4() -> None:
    _check_tso_run("v4")


def test_tso_out_and_gso_in_whole_v6() -> None:
    _check_tso_run("v6")


def test_plain_link_keeps_mss_segments_with_full_checksums() -> None:
    """A wire without `accepts_offload` (plain TAP, switch, sim Link) gets no TSO."""
    rt = SimRuntime(seed=4)
    a, b, dst = _pair(rt, False)
    wire = TapLikeWire(rt, a, b, offload=False)
    _address(a, b, rt)
    data = _data(300_000)
    conn, got = _transfer(rt, a, b, dst, data)
    assert got["n"] == len(data) and got["h"].hexdigest() == hashlib.sha256(data).hexdigest()
    assert conn.info()["tso"] is False and conn.info()["tso_segments"] == 0
    assert not wire.headers and max(wire.sizes) <= 1514
    assert wire.plain_csum_ok and all(wire.plain_csum_ok)
    assert "tx_gso" not in a.stats and "tx_csum_offload" not in a.stats


def test_sim_link_gets_no_tso() -> None:
    rt = SimRuntime(seed=5)
    a, b, dst = _pair(rt, False)
    sizes: list[int] = []
    Link(rt, a.ifaces[0].port, b.ifaces[0].port)
    _address(a, b, rt)
    orig = a.ifaces[0].port.transmit
    a.ifaces[0].port.transmit = lambda f: (sizes.append(len(f)), orig(f))  # type: ignore[method-assign]
    data = _data(200_000)
    conn, got = _transfer(rt, a, b, dst, data)
    assert got["n"] == len(data) and conn.info()["tso"] is False
    assert max(sizes) <= 1514


def test_offload_lost_midway_falls_back_to_software_segmentation() -> None:
    """The port stops taking offloads during a TSO connection: the host cuts and
    checksums the segments itself, the data still arrives intact."""
    rt = SimRuntime(seed=6)
    a, b, dst = _pair(rt, False)
    wire = TapLikeWire(rt, a, b)
    _address(a, b, rt)
    port = a.ifaces[0].port

    def plain(frame: bytes) -> None:  # the same wire, without `accepts_offload`
        wire._carry(frame, b.ifaces[0].port)

    data = _data(1_000_000)
    got, accept = _hashing_sink()
    tcp_of(b).listen(9, accept)
    conn = tcp_of(a).connect(dst, 9)
    rt.run(until=rt.now() + 1)
    assert conn.tso
    port.transmit = plain  # type: ignore[method-assign]
    conn.send(data)
    conn.shutdown()
    rt.run(until=rt.now() + 60)
    assert got["n"] == len(data) and got["h"].hexdigest() == hashlib.sha256(data).hexdigest()
    assert a.stats["tx_gso_segmented"] > 0 and a.stats["tx_gso"] == 0
    assert all(wire.plain_csum_ok) and max(wire.sizes[-50:]) <= 1514


def test_gso_frame_not_for_us_is_cut_in_software() -> None:
    """A GSO frame to an address the host does not own (e.g. to be forwarded) is
    segmented as the kernel would before IP sees it; bad headers are counted."""
    rt = SimRuntime(seed=7)
    a, b, _ = _pair(rt, False)
    _address(a, b, rt)
    iface = b.ifaces[0]
    payload = _data(3 * 1448 + 100)
    from vnet.wire import ipv4
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1, 0, 5 << 4, 0x18, 65535, 0, 0) + payload
    ip = ipv4.build(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 99]), 6, len(tcp), 64, 1, 0x4000)
    frame = iface.mac + a.ifaces[0].mac + b"\x08\x00" + ip + tcp
    hdr = vh.HDR.pack(vh.F_NEEDS_CSUM, vh.GSO_TCPV4, 54, 1448, 34, 16, 0)
    TapLikeWire._deliver_offloaded(frame, hdr, iface.port)
    assert b.stats["rx_gso_segmented"] == 1 and b.stats["ip4_not_for_us"] == 4
    assert "rx_gso_whole" not in b.stats
    bad = vh.HDR.pack(vh.F_NEEDS_CSUM, vh.GSO_TCPV4, 54, 0, 34, 16, 0)
    TapLikeWire._deliver_offloaded(frame, bad, iface.port)
    assert b.stats["rx_offload_bad"] == 1


@pytest.mark.parametrize("v6", [False, True])
def test_unresolved_neighbour_gets_software_segments_then_tso_resumes(v6: bool) -> None:
    """A TSO packet that would wait in the neighbour queue (where it loses its offload
    mark) is cut in software at once; once the neighbour answers, TSO resumes."""
    rt = SimRuntime(seed=8)
    a, b, dst = _pair(rt, v6)
    wire = TapLikeWire(rt, a, b)
    _address(a, b, rt)
    got, accept = _hashing_sink()
    tcp_of(b).listen(9, accept)
    conn = tcp_of(a).connect(dst, 9)
    rt.run(until=rt.now() + 1)
    assert conn.tso
    a.del_neighbor("eth0", dst)
    data = _data(1_500_000)
    conn.send(data)
    conn.shutdown()
    rt.run(until=rt.now() + 60)
    assert got["n"] == len(data) and got["h"].hexdigest() == hashlib.sha256(data).hexdigest()
    assert a.stats["tx_gso_segmented"] >= 1 and a.stats["tx_gso"] > 0, a.stats
    assert all(wire.plain_csum_ok) and all(wire.partial_ok)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=200), st.integers(0, 3), st.sampled_from([0, 1, 3, 4, 0x81]),
       st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
       st.integers(0, 70000), st.booleans())
def test_offloaded_garbage_is_counted_never_raised(tail: bytes, flags: int, gso_type: int,
                                                   gso_size: int, cs: int, co: int,
                                                   pad: int, v6: bool) -> None:
    """Any virtio-net header with a mangled frame behind it: counted or dropped, no raise."""
    rt = SimRuntime(seed=9)
    h = Host(rt, "h")
    iface = h.add_interface("eth0")
    h.add_address("eth0", "10.0.0.2/24")
    h.add_address("eth0", "fd00::2/64")
    if v6:
        head = (iface.mac + bytes(6) + b"\x86\xdd" + b"\x60" + bytes(3) + (pad & 0xFFFF).to_bytes(2, "big")
                + b"\x06\x40" + bytes(16) + bytes.fromhex("fd000000000000000000000000000002"))
    else:
        head = (iface.mac + bytes(6) + b"\x08\x00\x45\x00" + (pad & 0xFFFF).to_bytes(2, "big")
                + bytes(4) + b"\x40\x06" + bytes(2) + bytes(4) + bytes([10, 0, 0, 2]))
    frame = head + tail + bytes(pad % 2000)
    hdr = vh.HDR.pack(flags, gso_type, 0, gso_size, cs, co, 0)
    TapLikeWire._deliver_offloaded(frame, hdr, iface.port)
    rt.run(until=1)


def test_oversized_gso_segment_size_is_a_wire_error() -> None:
    """A frame longer than an IP packet can say (65,500 bytes of TCP payload) and a
    gso_size that would make one segment of it all: WireError, counted, not raised."""
    rt = SimRuntime(seed=10)
    h = Host(rt, "h")
    iface = h.add_interface("eth0")
    h.add_address("eth0", "10.0.0.2/24")
    from vnet.wire import ipv4
    tcp = struct.pack("!HHIIBBHHH", 1, 2, 1, 0, 5 << 4, 0x18, 1, 0, 0) + bytes(65500)
    ip = ipv4.build(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 9]), 6, 1000, 64)
    frame = iface.mac + bytes(6) + b"\x08\x00" + ip + tcp
    TapLikeWire._deliver_offloaded(frame, vh.HDR.pack(1, vh.GSO_TCPV4, 54, 65535, 34, 16, 0),
                                   iface.port)
    assert h.stats["rx_offload_bad"] == 1 and iface.port.rx_dropped == 1


@pytest.mark.parametrize("sack", [True, False])
def test_tso_with_loss_recovers_byte_for_byte(sack: bool) -> None:
    """3 % of frames lost, 64 KB TSO frames included (each a burst of ~44 MSS): SACK or
    NewReno recovery retransmits MSS by MSS and the data arrives intact."""
    rt = SimRuntime(seed=11)
    a, b, dst = _pair(rt, False)
    wire = TapLikeWire(rt, a, b)
    _address(a, b, rt)
    wire.loss = 0.03
    tcp_of(a).cfg.sack = sack
    tcp_of(b).cfg.sack = sack
    data = _data(1_500_000)
    conn, got = _transfer(rt, a, b, dst, data)
    rt.run(until=rt.now() + 300)
    assert got["n"] == len(data) and got["h"].hexdigest() == hashlib.sha256(data).hexdigest()
    assert wire.lost > 0 and conn.retransmits > 0 and conn.info()["tso_segments"] > 0
    assert all(wire.partial_ok) and all(wire.plain_csum_ok)
