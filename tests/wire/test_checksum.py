import struct

from hypothesis import given
from hypothesis import strategies as st

from vnet.wire.checksum import checksum, ones_sum, pseudo4, verify


def reference_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = 0
    for (w,) in struct.iter_unpack("!H", data):
        s += w
        s = (s & 0xFFFF) + (s >> 16)
    return s


@given(st.binary(max_size=300))
def test_matches_reference_fold(data):
    assert ~ones_sum(data) & 0xFFFF == ~reference_sum(data) & 0xFFFF


@given(st.binary(min_size=2, max_size=300).filter(lambda d: any(d)))
def test_verify_roundtrip(data):
    data = b"\0\0" + data
    c = checksum(data)
    assert verify(struct.pack("!H", c) + data[2:])


def test_against_scapy_udp():
    from scapy.layers.inet import IP, UDP

    pkt = IP(src="192.0.2.1", dst="198.51.100.7") / UDP(sport=1234, dport=53) / b"hello world!!"
    raw = bytes(pkt)
    udp = bytearray(raw[20:])
    want = struct.unpack("!H", udp[6:8])[0]
    udp[6:8] = b"\0\0"
    ps = pseudo4(bytes.fromhex("c0000201"), bytes.fromhex("c6336407"), 17, len(udp))
    assert checksum(udp, ps) == want
