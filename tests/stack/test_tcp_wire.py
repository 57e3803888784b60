"""TCP/UDP wire formats: cross-checked with scapy, fuzzed with hypothesis."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.wire import tcp, udp
from vnet.wire.checksum import ones_sum, pseudo4
from vnet.wire.errors import WireError

scapy_all = pytest.importorskip("scapy.all")
IP, IPv6, TCP, UDP = scapy_all.IP, scapy_all.IPv6, scapy_all.TCP, scapy_all.UDP

A = ipaddress.ip_address("192.0.2.1")
B = ipaddress.ip_address("198.51.100.7")
A6 = ipaddress.ip_address("2001:db8::1")
B6 = ipaddress.ip_address("2001:db8::2")


def _p(src, dst, proto=6) -> int:
    return ones_sum(src.packed + dst.packed) + proto


def test_build_matches_scapy_v4_with_options() -> None:
    opts = tcp.build_options(mss=1460, wscale=7, sack_perm=True, ts=(123456, 654321))
    seg = tcp.build(1234, 80, 0xFFFFFFF0, 77, tcp.SYN | tcp.ACK, 65535, _p(A, B), opts, b"hi")
    pkt = IP(src=str(A), dst=str(B)) / TCP(seg)
    ref = IP(bytes(IP(src=str(A), dst=str(B), proto=6) / TCP(
        sport=1234, dport=80, seq=0xFFFFFFF0, ack=77, flags="SA", window=65535,
        options=[("MSS", 1460), ("SAckOK", b""), ("Timestamp", (123456, 654321)),
                 ("NOP", None), ("WScale", 7)]) / b"hi"))
    assert pkt[TCP].chksum == ref[TCP].chksum
    got = dict((k, v) for k, v in pkt[TCP].options)
    assert got["MSS"] == 1460 and got["WScale"] == 7 and got["Timestamp"] == (123456, 654321)
    h = tcp.parse(seg, _p(A, B) + len(seg))
    assert (h.sport, h.dport, h.seq, h.ack, h.flags, h.window) == (1234, 80, 0xFFFFFFF0, 77,
                                                                   tcp.SYN | tcp.ACK, 65535)
    o = tcp.parse_options(seg)
    assert o == tcp.TcpOptions(1460, 7, True, (123456, 654321), ())


def test_parse_scapy_segment_v6_with_sack() -> None:
    raw = bytes(IPv6(src=str(A6), dst=str(B6)) / TCP(
        sport=5, dport=6, seq=1, ack=2, flags="A",
        options=[("NOP", None), ("NOP", None), ("SAck", (100, 200, 300, 400))]) / (b"x" * 10))
    seg = raw[40:]
    tcp.parse(seg, _p(A6, B6) + len(seg))  # checksum verifies
    assert tcp.parse_options(seg).sack == ((100, 200), (300, 400))
    bad = bytearray(seg)
    bad[-1] ^= 1
    with pytest.raises(WireError):
        tcp.parse(bytes(bad), _p(A6, B6) + len(seg))


def test_udp_matches_scapy() -> None:
    d = udp.build(53, 4000, b"hello", _p(A, B, 17))
    ref = bytes(UDP(sport=53, dport=4000) / b"hello")
    ref = bytes(IP(src=str(A), dst=str(B)) / UDP(sport=53, dport=4000) / b"hello")[20:]
    assert d == ref
    h = udp.parse(d, pseudo4(A.packed, B.packed, 17, len(d)))
    assert h == (53, 4000, 13, d[6] << 8 | d[7])
    with pytest.raises(WireError):
        udp.parse(d[:7])
    with pytest.raises(WireError):
        udp.parse(d[:4] + b"\x00\x07" + d[6:])  # length below 8
    with pytest.raises(WireError):
        udp.parse(d[:-1] + b"?", pseudo4(A.packed, B.packed, 17, len(d)))
    with pytest.raises(WireError):
        udp.parse(d[:6] + b"\x00\x00" + d[8:], 0, v6=True)


@pytest.mark.parametrize("opts", [b"\x02", b"\x02\x01\x00\x00", b"\x02\x05\x01\x02",
                                  b"\x03\x04\x00\x00", b"\x05\x05\x00\x00\x00\x00\x00\x00",
                                  b"\x08\x0a\x00"])
def test_option_garbage_raises(opts: bytes) -> None:
    opts = opts + b"\x00" * (-len(opts) % 4)
    seg = tcp.build(1, 2, 3, 4, tcp.ACK, 5, 0, opts)
    with pytest.raises(WireError):
        tcp.parse_options(seg)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_fuzz_parse_only_wireerror(data: bytes) -> None:
    for fn in (lambda: tcp.parse(data, 0), lambda: tcp.parse_options(data),
               lambda: udp.parse(data, 0), lambda: udp.parse(data, 0, v6=True)):
        try:
            fn()
        except WireError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 2**32 - 1),
       st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 65535),
       st.one_of(st.none(), st.integers(0, 65535)), st.one_of(st.none(), st.integers(0, 14)),
       st.booleans(), st.one_of(st.none(), st.tuples(st.integers(0, 2**32 - 1),
                                                    st.integers(0, 2**32 - 1))),
       st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=3),
       st.binary(max_size=50))
def test_roundtrip(sport, dport, seq, ack, flags, win, mss, ws, sp, ts, sack, payload) -> None:
    opts = tcp.build_options(mss=mss, wscale=ws, sack_perm=sp, ts=ts, sack=sack[:2])
    seg = tcp.build(sport, dport, seq, ack, flags, win, _p(A, B), opts, payload)
    h = tcp.parse(seg, _p(A, B) + len(seg))
    assert (h.sport, h.dport, h.seq, h.ack, h.flags, h.window) == (sport, dport, seq, ack,
                                                                   flags, win)
    assert seg[h.header_len:] == payload
    o = tcp.parse_options(seg)
    assert (o.mss, o.wscale, o.sack_perm, o.ts, o.sack) == (mss, ws, sp, ts, tuple(sack[:2]))
    # scapy agrees on the checksum
    s = TCP(seg)
    s.chksum = None
    assert bytes(IP(src=str(A), dst=str(B)) / s)[20:][16:18] == seg[16:18]
