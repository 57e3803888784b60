"""Capture: pcap/pcapng writers and readers, port wrapping, sim timestamps, failure isolation."""

from __future__ import annotations

import io
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.link.capture import Capture, CaptureError
from vnet.link.port import Port, connect
from vnet.link.switch import Switch
from vnet.link.wirefilter import WireFilter
from vnet.runtime.sim import SimRuntime
from vnet.wire import pcap
from vnet.wire.errors import WireError

MAC1, MAC2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")


def eth(dst: bytes, src: bytes, n: int = 60) -> bytes:
    return dst + src + b"\x88\xb5" + bytes(n - 14)


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_watch_records_both_directions_with_sim_time(fmt):
    rt = SimRuntime()
    a, b = Port("a"), Port("b")
    connect(a, b)
    seen_b: list[bytes] = []
    seen_a: list[bytes] = []
    b.receive = seen_b.append
    a.receive = seen_a.append
    buf = io.BytesIO()
    cap = Capture(buf, rt, fmt=fmt)
    assert cap.watch(a, "cable.a") == 0
    rt.call_at(1.25, a.send, eth(MAC2, MAC1, 100))
    rt.call_at(2.5, b.send, eth(MAC1, MAC2, 70))
    rt.run()
    assert len(seen_b) == 1 and len(seen_a) == 1  # forwarding unchanged
    cap.close()
    got = pcap.read(buf.getvalue())
    assert got.fmt == fmt
    assert [p.ts for p in got.packets] == [1.25, 2.5]
    assert [len(p.data) for p in got.packets] == [100, 70]
    if fmt == "pcapng":
        assert got.interfaces == [("cable.a", pcap.LINKTYPE_ETHERNET)]
        assert [p.direction for p in got.packets] == [pcap.DIR_OUT, pcap.DIR_IN]


def test_unwatch_restores_port_callables():
    rt = SimRuntime()
    p = Port("p")
    rx, tx = p.receive, p.transmit
    cap = Capture(io.BytesIO(), rt)
    cap.watch(p)
    assert p.receive is not rx and p.transmit is not tx
    cap.unwatch(p)
    assert p.receive is rx and p.transmit is tx
    cap.watch(p)
    cap.close()
    assert p.receive is rx and p.transmit is tx


def test_switch_ports_and_wirefilter_in_sim_time(tmp_path):
    rt = SimRuntime(seed=1)
    s1, s2 = Switch(rt, numports=4, name="s1"), Switch(rt, numports=4, name="s2")
    WireFilter(rt, s1.add_port(), s2.add_port(), delay=15)
    h1, h2 = Port("h1"), Port("h2")
    connect(s1.add_port(), h1)
    connect(s2.add_port(), h2)
    path = tmp_path / "sim.pcapng"
    cap = Capture.to_file(path, rt)
    for i, rec in sorted(s2.ports.items()):
        cap.watch(rec.port, f"s2.port{i}")
    rt.call_at(1.0, h1.send, eth(b"\xff" * 6, MAC1))
    rt.call_at(2.0, h2.send, eth(MAC1, MAC2))
    rt.run(until=3)
    cap.close()
    got = pcap.read(path.read_bytes())
    assert [n for n, _ in got.interfaces] == ["s2.port1", "s2.port2"]
    # broadcast enters s2 from the wire at 1.015 and leaves to h2; the reply goes the other way
    rows = [(round(p.ts, 6), p.interface, p.direction) for p in got.packets]
    assert rows == [(1.015, 0, pcap.DIR_IN), (1.015, 1, pcap.DIR_OUT),
                    (2.0, 1, pcap.DIR_IN), (2.0, 0, pcap.DIR_OUT)]
    s1.close()
    s2.close()


def test_to_file_picks_format_from_extension(tmp_path):
    rt = SimRuntime()
    for name, magic in (("x.pcap", pcap.PCAP_MAGIC_US), ("x.pcapng", pcap.PCAPNG_SHB),
                        ("x.cap", pcap.PCAP_MAGIC_US), ("x.out", pcap.PCAPNG_SHB)):
        Capture.to_file(tmp_path / name, rt).close()
        assert struct.unpack("<I", (tmp_path / name).read_bytes()[:4])[0] == magic
    with pytest.raises(CaptureError, match="cannot open"):
        Capture.to_file(tmp_path / "no" / "such.pcap", rt)
    with pytest.raises(CaptureError, match="format"):
        Capture(io.BytesIO(), rt, fmt="erf")


def test_snaplen_truncates_but_keeps_original_length():
    rt = SimRuntime()
    for fmt in ("pcap", "pcapng"):
        buf = io.BytesIO()
        p = Port("p")
        cap = Capture(buf, rt, fmt=fmt, snaplen=64)
        cap.watch(p)
        p.send(eth(MAC1, MAC2, 1514))
        p.send(eth(MAC1, MAC2, 61))
        cap.close()
        got = pcap.read(buf.getvalue())
        assert [(len(x.data), x.orig_len) for x in got.packets] == [(64, 1514), (61, 61)]


class _Broken(io.RawIOBase):
    def __init__(self, ok_writes: int) -> None:
        self.left = ok_writes

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        if self.left <= 0:
            raise OSError(28, "No space left on device")
        self.left -= 1
        return len(b)


def test_write_error_stops_capture_not_forwarding(caplog):
    rt = SimRuntime()
    a, b = Port("a"), Port("b")
    connect(a, b)
    got: list[bytes] = []
    b.receive = got.append
    cap = Capture(_Broken(ok_writes=6), rt, fmt="pcap")  # header + a few record writes
    cap.watch(a)
    for _ in range(100):
        a.send(eth(MAC2, MAC1))
    assert len(got) == 100
    assert not cap.active and "No space left" in (cap.error or "")
    assert sum("capture stopped" in r.getMessage() for r in caplog.records) == 1
    cap.close()


def test_max_bytes_bounds_the_file():
    rt = SimRuntime()
    p = Port("p")
    buf = io.BytesIO()
    cap = Capture(buf, rt, max_bytes=600)
    cap.watch(p)
    for _ in range(100):
        p.send(eth(MAC2, MAC1, 100))
    assert cap.frames == 6 and not cap.active
    cap.close()
    assert len(pcap.read(buf.getvalue()).packets) == 6


def test_microsecond_pcapng_and_ns_pcap():
    for kind in ("pcapng", "pcap"):
        buf = io.BytesIO()
        w = (pcap.PcapngWriter(buf, nanoseconds=False) if kind == "pcapng"
             else pcap.PcapWriter(buf, nanoseconds=True))
        i = w.add_interface("x")
        w.write(12.345678901, b"\x01" * 20, i)
        got = pcap.read(buf.getvalue())
        want = 12.345678 if kind == "pcapng" else 12.345678901
        assert got.packets[0].ts == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize("data", [b"", b"\x00" * 24, b"\xd4\xc3\xb2\xa1" + b"\0" * 10,
                                  b"\x0a\x0d\x0d\x0a\x10\0\0\0" + b"\0" * 8])
def test_readers_reject_garbage(data):
    with pytest.raises(WireError):
        pcap.read(data)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e6, allow_nan=False), st.binary(min_size=0, max_size=300),
                          st.sampled_from([0, 1, 2])), max_size=12),
       st.booleans(), st.integers(20, 400))
def test_round_trip_and_truncation_never_crashes(records, ng, snaplen):
    buf = io.BytesIO()
    w = pcap.PcapngWriter(buf, snaplen=snaplen) if ng else pcap.PcapWriter(buf, snaplen=snaplen)
    i = w.add_interface("if0")
    for ts, data, d in records:
        w.write(ts, data, i, d)
    raw = buf.getvalue()
    got = pcap.read(raw)
    assert [p.data for p in got.packets] == [data[:snaplen] for _, data, _ in records]
    assert [p.orig_len for p in got.packets] == [len(data) for _, data, _ in records]
    for cut in range(0, len(raw), max(1, len(raw) // 7)):
        try:
            pcap.read(raw[:cut])
        except WireError:
            pass
