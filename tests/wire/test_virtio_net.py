"""Software GSO segmentation and checksum completion, checked against scapy."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from vnet.wire import virtio_net as vh
from vnet.wire.checksum import ones_sum, pseudo4, pseudo6
from vnet.wire.errors import WireError

ETH = Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01")


def recomputed(seg: bytes) -> bytes:
    """The same frame with every checksum recomputed by scapy."""
    p = Ether(seg)
    if IP in p:
        del p[IP].chksum
    if TCP in p:
        del p[TCP].chksum
    return bytes(Ether(bytes(p)))


def superframe(l3, payload: bytes, flags: str, seq: int = 1000, vlan: bool = False):
    head = ETH / Dot1Q(vlan=5) if vlan else ETH
    pkt = head / l3 / TCP(sport=5001, dport=80, seq=seq, ack=7, flags=flags,
                          options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
    frame = bytes(pkt / payload)
    return frame, len(bytes(head)) + (40 if IPv6 in l3 else 20)


@pytest.mark.parametrize("family", ["v4", "v6", "v4-vlan"])
@pytest.mark.parametrize("flags", ["PA", "FPA", "CEA"])
def test_segment_matches_what_the_kernel_sends(family, flags):
    payload = bytes((i * 7) & 0xFF for i in range(10001))
    l3 = IPv6(src="2001:db8::1", dst="2001:db8::2") if family == "v6" else IP(
        src="10.0.0.1", dst="10.0.0.2", id=65534, flags="DF")
    frame, cs = superframe(l3, payload, flags, seq=0xFFFFF000, vlan=family == "v4-vlan")
    gso = vh.GSO_TCPV6 if family == "v6" else vh.GSO_TCPV4
    segs: list[bytes] = []
    n = vh.segment(frame, gso, 1448, cs, segs.append)
    assert n == len(segs) == 7
    got = b""
    for i, s in enumerate(segs):
        assert s == recomputed(s), "a checksum is wrong"
        p = Ether(s)
        tcp = p[TCP]
        assert tcp.seq == (0xFFFFF000 + i * 1448) & 0xFFFFFFFF
        last = i == n - 1
        assert bool(tcp.flags & 0x08) == ("P" in flags and last)
        assert bool(tcp.flags & 0x01) == ("F" in flags and last)
        assert bool(tcp.flags & 0x80) == ("C" in flags and i == 0)
        if family != "v6":
            assert p[IP].id == (65534 + i) & 0xFFFF
            assert p[IP].len == len(p[IP])
        else:
            assert p[IPv6].plen == len(p[IPv6].payload)
        got += bytes(tcp.payload)
    assert got == payload


def test_segment_rejects_garbage_with_wire_error():
    frame, cs = superframe(IP(src="1.1.1.1", dst="2.2.2.2"), b"x" * 100, "A")
    for args in [(frame, vh.GSO_UDP, 1448, cs), (frame, vh.GSO_TCPV4, 0, cs),
                 (frame[:40], vh.GSO_TCPV4, 10, cs), (frame, vh.GSO_TCPV4, 10, 20)]:
        with pytest.raises(WireError):
            vh.segment(*args, emit=lambda f: None)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 255), st.integers(0, 200), st.integers(0, 200))
def test_fuzz_only_wire_error(data, gso_type, gso_size, cs):
    try:
        vh.segment(data, gso_type, gso_size, cs, lambda f: None)
    except WireError:
        pass
    try:
        vh.finish_checksum(data, cs, 16)
    except WireError:
        pass


def test_finish_checksum_tcp_and_udp():
    # The kernel leaves the pseudo-header sum (not complemented) in the field.
    tcp = ETH / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2) / (b"abc" * 33)
    right = bytes(tcp)
    partial = bytearray(right)
    seglen = len(right) - 34
    partial[34 + 16:34 + 18] = pseudo4(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 6,
                                       seglen).to_bytes(2, "big")
    assert bytes(vh.finish_checksum(bytes(partial), 34, 16)) == right
    udp = ETH / IPv6(src="2001:db8::1", dst="2001:db8::2") / UDP(sport=9, dport=9) / b"hi!"
    right = bytes(udp)
    partial = bytearray(right)
    partial[54 + 6:54 + 8] = pseudo6(bytes(udp[IPv6])[8:24], bytes(udp[IPv6])[24:40], 17,
                                     len(right) - 54).to_bytes(2, "big")
    assert bytes(vh.finish_checksum(bytes(partial), 54, 6)) == right
    assert ones_sum(b"") == 0


def test_header_layout():
    assert vh.HDR_LEN == 12
    assert vh.HDR.pack(1, 4, 66, 1428, 54, 16, 0) == bytes.fromhex("0104420094053600100000 00"
                                                                     .replace(" ", ""))
