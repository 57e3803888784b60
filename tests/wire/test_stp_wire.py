"""BPDU formats: cross-checked against scapy's STP layer, fuzzed with hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.wire import stp
from vnet.wire.errors import WireError

SRC = bytes.fromhex("020000000001")


def scapy_frame(**fields) -> bytes:
    from scapy.layers.l2 import LLC, STP, Dot3
    return bytes(Dot3(dst="01:80:c2:00:00:00", src="02:00:00:00:00:01") / LLC() / STP(**fields))


def test_config_matches_scapy_both_ways():
    b = stp.ConfigBpdu(root_id=stp.bridge_id(4096, bytes.fromhex("0200000000aa")),
                       root_path_cost=119, bridge_id=stp.bridge_id(32768, SRC), port_id=0x8003,
                       message_age=1.5, max_age=6.0, hello_time=1.0, forward_delay=4.0,
                       tc=True, tca=True)
    ours = stp.build(SRC, b, pad=False)
    theirs = scapy_frame(bpduflags=0x81, rootid=4096, rootmac="02:00:00:00:00:aa", pathcost=119,
                         bridgeid=32768, bridgemac="02:00:00:00:00:01", portid=0x8003, age=1.5,
                         maxage=6, hellotime=1, fwddelay=4)
    assert ours == theirs
    assert len(ours) == 14 + 3 + 35 and ours[12:14] == b"\x00\x26"
    assert stp.parse(theirs) == stp.parse(ours)
    got = stp.parse(theirs)
    assert isinstance(got, stp.ConfigBpdu)
    assert (got.tc, got.tca, got.message_age, got.forward_delay) == (True, True, 1.5, 4.0)
    assert stp.bridge_id_str(got.root_id) == "1000.0200000000aa"

    from scapy.layers.l2 import STP, Ether
    pkt = Ether(stp.build(SRC, b))  # padded to 60: scapy reads through the 802.3 length
    assert pkt[STP].rootid == 4096 and pkt[STP].portid == 0x8003 and pkt[STP].age == 1.5


def test_tcn_and_padding():
    f = stp.build(SRC, stp.TcnBpdu())
    assert len(f) == 60 and f[12:14] == b"\x00\x07" and f[14:21] == b"\x42\x42\x03\x00\x00\x00\x80"
    assert stp.parse(f) == stp.TcnBpdu()
    assert stp.parse(stp.build(SRC, stp.TcnBpdu(), pad=False)) == stp.TcnBpdu()


def test_rst_bpdu_reads_as_config():
    from scapy.layers.l2 import LLC, STP, Dot3
    # An RSTP bridge's BPDU: version 2, type 2, proposal + designated role + TC flags.
    raw = bytes(Dot3(dst="01:80:c2:00:00:00", src="02:00:00:00:00:02") / LLC() /
                STP(version=2, bpdutype=2, bpduflags=0x0F, rootid=0, rootmac="02:00:00:00:00:02",
                    bridgeid=0, bridgemac="02:00:00:00:00:02", portid=0x8001)) + b"\x00"
    raw = raw[:12] + (len(raw) - 14).to_bytes(2, "big") + raw[14:]  # version-1 length octet
    got = stp.parse(raw)
    assert isinstance(got, stp.ConfigBpdu)
    assert got.version == 2 and got.bpdu_type == stp.TYPE_RST and got.tc and not got.tca
    assert got.flags == 0x0F and got.root_id == stp.bridge_id(0, bytes.fromhex("020000000002"))
    assert stp.build(bytes.fromhex("020000000002"), got, pad=False) == raw
    with pytest.raises(WireError, match="shorter"):  # an RST BPDU must have 36 octets
        stp.parse_bpdu(got.build()[:35])


@pytest.mark.parametrize("frame, match", [
    (b"", "shorter than 17"),
    (bytes(16), "shorter than 17"),
    (stp.STP_GROUP + SRC + b"\x08\x00" + b"\x42\x42\x03" + bytes(35), "EtherType"),
    (stp.STP_GROUP + SRC + b"\x00\x26" + b"\x42\x42\x03" + bytes(10), "runs past"),
    (stp.STP_GROUP + SRC + b"\x00\x05" + b"\x42\x42\x03" + bytes(40), "too short"),
    (stp.STP_GROUP + SRC + b"\x00\x26" + b"\xaa\xaa\x03" + bytes(35), "LLC"),
    (stp.STP_GROUP + SRC + b"\x00\x26" + b"\x42\x42\x03" + b"\x00\x01" + bytes(33), "protocol"),
    (stp.STP_GROUP + SRC + b"\x00\x26" + b"\x42\x42\x03" + b"\x00\x00\x00\x07" + bytes(31),
     "unknown BPDU type"),
    (stp.STP_GROUP + SRC + b"\x00\x20" + b"\x42\x42\x03" + bytes(29) + bytes(20), "shorter than 35"),
    (stp.STP_GROUP + SRC + b"\x00\x27" + b"\x42\x42\x03" + b"\x00\x00\x00\x02" + bytes(32),
     "version 0"),
])
def test_garbage_raises_wire_error(frame, match):
    with pytest.raises(WireError, match=match):
        stp.parse(frame)


def test_build_rejects_out_of_range():
    with pytest.raises(WireError):
        stp.ConfigBpdu(1, 1, 1, 1, message_age=300.0).build()
    with pytest.raises(WireError):
        stp.ConfigBpdu(1, 1 << 32, 1, 1).build()
    with pytest.raises(WireError):
        stp.bridge_id(70000, SRC)
    with pytest.raises(WireError):
        stp.bridge_id_from_str("8000:0200")
    assert stp.bridge_id_from_str("8000.020000000001") == stp.bridge_id(0x8000, SRC)


ids = st.integers(0, (1 << 64) - 1)
times = st.integers(0, 0xFFFF).map(lambda t: t / 256)


@given(root=ids, cost=st.integers(0, 0xFFFFFFFF), bridge=ids, port=st.integers(0, 0xFFFF),
       age=times, maxage=times, hello=times, fwd=times, tc=st.booleans(), tca=st.booleans())
@settings(max_examples=200, deadline=None)
def test_roundtrip_and_scapy_agree(root, cost, bridge, port, age, maxage, hello, fwd, tc, tca):
    b = stp.ConfigBpdu(root, cost, bridge, port, age, maxage, hello, fwd, tc, tca)
    frame = stp.build(SRC, b, pad=False)
    got = stp.parse(frame)
    assert got == stp.ConfigBpdu(root, cost, bridge, port, age, maxage, hello, fwd, tc, tca,
                                 0, stp.TYPE_CONFIG, (tc and 1) | (tca and 0x80))
    theirs = scapy_frame(bpduflags=(tc and 1) | (tca and 0x80), rootid=root >> 48,
                         rootmac=stp.split_bridge_id(root)[1].hex(":"), pathcost=cost,
                         bridgeid=bridge >> 48, bridgemac=stp.split_bridge_id(bridge)[1].hex(":"),
                         portid=port, age=age, maxage=maxage, hellotime=hello, fwddelay=fwd)
    assert theirs == frame


@given(st.binary(max_size=80))
@settings(max_examples=500, deadline=None)
def test_fuzz_only_wire_error(data):
    for frame in (data, stp.STP_GROUP + SRC + data,
                  stp.STP_GROUP + SRC + len(data[:60]).to_bytes(2, "big") + b"\x42\x42\x03" + data):
        try:
            got = stp.parse(frame)
        except WireError:
            continue
        assert isinstance(got, stp.ConfigBpdu | stp.TcnBpdu)


def test_tshark_dissects_our_bpdus(tmp_path):
    """Wireshark's STP dissector reads the frames we build, field for field, none malformed."""
    import struct
    import subprocess

    from tests.conftest import need_tool
    need_tool("tshark")
    cfg = stp.ConfigBpdu(stp.bridge_id(4096, bytes.fromhex("0200000000aa")), 119,
                         stp.bridge_id(32768, SRC), 0x8003, 1.5, 6.0, 1.0, 4.0, tc=True)
    frames = [stp.build(SRC, cfg), stp.build(SRC, stp.TcnBpdu()),
              stp.build(SRC, cfg, pad=False)]
    path = tmp_path / "bpdu.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i, 0, len(fr), len(fr)) + fr)
    fields = ["stp.protocol", "stp.type", "stp.flags.tc", "stp.flags.tcack", "stp.root.prio",
              "stp.root.hw", "stp.root.cost", "stp.bridge.prio", "stp.bridge.hw", "stp.port",
              "stp.msg_age", "stp.max_age", "stp.hello", "stp.forward", "_ws.malformed"]
    cmd = ["tshark", "-r", str(path), "-T", "fields", "-E", "separator=,"]
    for fld in fields:
        cmd += ["-e", fld]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    rows = [line.split(",") for line in out.splitlines()]
    want_cfg = ["0x0000", "0x00", "1", "0", "4096", "02:00:00:00:00:aa", "119", "32768",
                "02:00:00:00:00:01", "0x8003", "1.5", "6", "1", "4", ""]
    assert rows[0] == want_cfg and rows[2] == want_cfg, out
    assert rows[1][:2] == ["0x0000", "0x80"] and rows[1][-1] == "", out
