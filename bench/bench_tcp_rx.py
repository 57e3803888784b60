"""CPU cost of the TCP receive path alone: in-order 1428-byte segments with timestamps fed
straight into `Tcp.receive` (no IP layer, no I/O), IPv4 and IPv6.

    python bench/bench_tcp_rx.py [--segments 20000]

Prints microseconds of CPU per segment, best of --rounds (ACKs are generated and
thrown away, one per 16 segments, as in a TAP read burst).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.stack.netsim import FakeNet, IpMeta, Path  # noqa: E402
from vnet.runtime import SimRuntime  # noqa: E402
from vnet.stack.tcp import Tcp  # noqa: E402
from vnet.wire import tcp as wtcp  # noqa: E402
from vnet.wire.checksum import ones_sum  # noqa: E402


def measure(a_addr: str, b_addr: str, n: int) -> float:
    rt = SimRuntime(seed=1)
    path = Path(rt, delay=0.001)
    a = Tcp(FakeNet(rt, path, a_addr))
    b = Tcp(FakeNet(rt, path, b_addr))
    srv = []
    b.listen(80, lambda c: (srv.append(c), setattr(c, "on_data", lambda d: None)))
    c = a.connect(b_addr, 80)
    rt.run(until=1)
    s = srv[0]
    src, dst = ipaddress.ip_address(a_addr), ipaddress.ip_address(b_addr)
    pseudo = ones_sum(src.packed + dst.packed) + 6
    payload = bytes(1428)
    segs = []
    seq = c.snd_nxt
    for i in range(n):
        opts = wtcp.TS_ALIGNED.pack(1, 1, 8, 10, (c._ts_now() + i) & 0xFFFFFFFF, s._ts_now())
        segs.append(memoryview(wtcp.build(c.lport, 80, seq, s.snd_nxt, wtcp.ACK, 20000, pseudo,
                                          opts, payload)))
        seq += len(payload)
    cls = type(src)
    metas = [IpMeta(cls(src.packed), cls(dst.packed), None, src.version, 64) for _ in range(n)]
    s._ip_send = lambda *a, **k: True  # ACKs go nowhere
    recv = b.receive
    t = time.process_time()
    for i, (m, g) in enumerate(zip(metas, segs, strict=True)):
        recv(m, g)
        if i % 16 == 15:
            rt.run(until=rt.now())
    dt = time.process_time() - t
    assert s.rx_bytes == n * len(payload), "segments were not all accepted in order"
    return dt / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segments", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5, help="best of ROUNDS (default 5)")
    args = ap.parse_args()
    v4 = min(measure("10.0.0.1", "10.0.0.2", args.segments) for _ in range(args.rounds))
    v6 = min(measure("fd00::1", "fd00::2", args.segments) for _ in range(args.rounds))
    print(f"Tcp.receive, in-order data: IPv4 {v4:.2f} us/segment, IPv6 {v6:.2f} us/segment "
          f"(IPv6/IPv4 cost {v6 / v4:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
