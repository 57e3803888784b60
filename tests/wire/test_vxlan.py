"""VXLAN header against scapy's VXLAN layer, and fuzzing that only WireError comes out."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.l2 import Ether
from scapy.layers.vxlan import VXLAN

from vnet.wire import vxlan
from vnet.wire.errors import WireError


@pytest.mark.parametrize("vni", [0, 1, 42, 0xABCDEF, (1 << 24) - 1])
def test_build_matches_scapy(vni):
    ours = vxlan.build(vni)
    assert ours == bytes(VXLAN(flags=0x08, vni=vni))
    assert vxlan.parse(ours) == vni


def test_rfc_example_bytes():
    assert vxlan.build(42) == bytes.fromhex("080000000000 2a00".replace(" ", ""))


def test_parse_scapy_packet_with_inner_frame():
    inner = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:02", type=0x0806) / (b"\0" * 28)
    pkt = bytes(VXLAN(vni=4242) / inner)
    assert vxlan.parse(pkt) == 4242
    assert pkt[vxlan.HEADER_LEN:] == bytes(inner)


def test_reserved_bits_ignored_on_receipt_but_i_flag_required():
    assert vxlan.parse(bytes.fromhex("0cffffff0000 2aff".replace(" ", ""))) == 42
    with pytest.raises(WireError, match="I"):
        vxlan.parse(bytes.fromhex("00000000 00002a00"))
    with pytest.raises(WireError, match="shorter"):
        vxlan.parse(b"\x08\0\0")
    for bad in (-1, 1 << 24):
        with pytest.raises(WireError):
            vxlan.build(bad)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_parse_only_raises_wire_error(data):
    try:
        vni = vxlan.parse(data)
    except WireError:
        assert len(data) < 8 or not data[0] & 0x08
        return
    assert vni == int.from_bytes(data[4:7], "big")
    if data[0] == 0x08:  # scapy reads other flag bits as GPE/GBP extensions
        assert vni == VXLAN(data[:8]).vni


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=(1 << 24) - 1))
def test_fuzz_roundtrip_and_scapy_agree(vni):
    b = vxlan.build(vni)
    assert vxlan.parse(b) == vni == VXLAN(b).vni
    assert VXLAN(b).flags == 0x08
