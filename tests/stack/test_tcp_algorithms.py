"""RTO estimator (RFC 6298), NewReno and CUBIC windows (RFC 5681/6582/9438), SACK sets."""

from __future__ import annotations

import pytest

from vnet.stack.tcp.congestion import Cubic, NewReno, initial_window, make
from vnet.stack.tcp.rto import RtoEstimator
from vnet.stack.tcp.sack import Reassembly, Scoreboard


def test_rto_rfc6298() -> None:
    r = RtoEstimator(min_rto=0.2, max_rto=60)
    assert r.rto == 1.0  # 2.1: initial RTO
    r.sample(0.1)  # 2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR
    assert r.srtt == 0.1 and r.rttvar == 0.05 and r.rto == pytest.approx(0.3)
    r.sample(0.3)  # 2.3: RTTVAR = 3/4 0.05 + 1/4 |0.1-0.3|, SRTT = 7/8 0.1 + 1/8 0.3
    assert r.rttvar == pytest.approx(0.0875) and r.srtt == pytest.approx(0.125)
    assert r.rto == pytest.approx(0.125 + 4 * 0.0875)
    for _ in range(10):
        r.backoff()
    assert r.rto == 60  # 5.5: doubling, bounded
    r.sample(0.001)
    assert r.backoffs == 0 and r.rto == pytest.approx(0.1095 + 4 * 0.096625)
    for _ in range(100):
        r.sample(0.001)
    assert r.rto == 0.2  # the floor


def test_rto_per_ack_samples_rfc7323_appendix_g() -> None:
    r = RtoEstimator()
    r.sample(0.1)
    r.sample(0.3, per_rtt=4)  # gains divided by the samples expected per round trip
    assert r.rttvar == pytest.approx((1 - 0.25 / 4) * 0.05 + 0.25 / 4 * 0.2)
    assert r.srtt == pytest.approx((1 - 0.125 / 4) * 0.1 + 0.125 / 4 * 0.3)


def test_newreno_slow_start_avoidance_and_loss() -> None:
    mss = 1000
    cc = NewReno(mss)
    assert cc.cwnd == initial_window(mss) == 10 * mss
    cc.on_ack(10 * mss, 0, None)
    assert cc.cwnd == 20 * mss  # byte counting, no per-ACK cap (as Linux)
    cc.on_loss(flight=20 * mss, now=0)
    assert cc.ssthresh == 10 * mss and cc.cwnd == 10 * mss
    for _ in range(10):
        cc.on_ack(mss, 0, None)  # one cwnd worth of ACKs: +1 SMSS
    assert cc.cwnd == 11 * mss
    cc.on_timeout(flight=11 * mss, now=0)
    assert cc.cwnd == mss and cc.ssthresh == 5500
    cc.on_recovered(flight=3 * mss)
    assert cc.cwnd == min(cc.ssthresh, 4 * mss)


def test_cubic_reduces_by_beta_and_regrows_to_wmax() -> None:
    mss = 1000
    cc = Cubic(mss)
    cc.ssthresh = 0  # straight to congestion avoidance
    cc.cwnd = 100 * mss
    cc.on_loss(flight=100 * mss, now=0.0)
    assert cc.cwnd == 70 * mss and cc.w_max == 100  # beta 0.7
    # K = cbrt(W_max (1 - beta) / C) = cbrt(100 * 0.3 / 0.4) ~ 4.22 s: near W_max then.
    # A long RTT keeps the Reno-friendly estimate (+0.53 segment per RTT) below the curve.
    t, rtt = 0.0, 0.5
    while t < 4.2:
        for _ in range(int(cc.cwnd / mss)):
            cc.on_ack(mss, t, rtt)
        t += rtt
    assert 95 * mss <= cc.cwnd <= 105 * mss
    while t < 8:
        for _ in range(int(cc.cwnd / mss)):
            cc.on_ack(mss, t, rtt)
        t += rtt
    assert cc.cwnd > 110 * mss  # convex region: probing beyond W_max
    # with a short RTT the Reno-friendly region dominates (RFC 9438 4.3)
    fr = Cubic(mss)
    fr.ssthresh = 0
    fr.cwnd = 100 * mss
    fr.on_loss(flight=100 * mss, now=0.0)
    t = 0.0
    while t < 4.2:
        for _ in range(int(fr.cwnd / mss)):
            fr.on_ack(mss, t, 0.05)
        t += 0.05
    assert fr.cwnd > 105 * mss and fr.w_est * mss == pytest.approx(fr.cwnd, rel=0.05)
    cc.on_loss(flight=cc.cwnd, now=t)
    w = cc.cwnd / mss
    cc.on_loss(flight=cc.cwnd, now=t)  # a second loss below W_max: fast convergence
    assert cc.w_max == pytest.approx(w * (1 + 0.7) / 2)
    with pytest.raises(ValueError):
        make("vegas", mss)


def test_reassembly_and_blocks() -> None:
    q = Reassembly()
    assert q.add(100, b"x" * 10)  # 100..110
    assert q.add(130, b"y" * 10)  # 130..140
    assert not q.add(132, b"y" * 5)  # nothing new
    assert q.add(105, b"z" * 30)  # fills 110..130 only, and 105..110 is kept as first seen
    assert [(s, len(d)) for s, d in q.pieces] == [(100, 10), (110, 20), (130, 10)]
    assert q.add(200, b"w" * 10)
    assert q.blocks(3) == [(200, 210), (100, 140)]  # most recent first
    assert q.pop_ready(90) == []
    out = q.pop_ready(100)
    assert b"".join(out) == b"x" * 10 + b"z" * 20 + b"y" * 10 and q.nbytes == 10


def test_scoreboard() -> None:
    sb = Scoreboard()
    for s, e in ((2000, 3000), (4000, 5000), (3000, 3500), (6000, 9000)):
        sb.add(s, e)
    assert sb.ranges == [[2000, 3500], [4000, 5000], [6000, 9000]] and sb.sacked == 5500
    assert sb.next_hole(1000, 9000) == (1000, 2000)
    assert sb.next_hole(2500, 9000) == (3500, 4000)
    assert sb.lost_edge(3000) == 6000  # 3000 bytes SACKed above 6000
    assert sb.lost_edge(4000) == 4000
    assert sb.unsacked_below(1000, 6000) == 5000 - 2500
    sb.advance(4500)
    assert sb.ranges == [[4500, 5000], [6000, 9000]] and sb.highest == 9000
