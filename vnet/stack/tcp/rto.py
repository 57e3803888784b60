"""Retransmission timeout estimation (RFC 6298), with exponential backoff."""

from __future__ import annotations

#: RFC 6298 2.4 says 1 s; Linux uses 200 ms, which behaves better on fast links. Configurable.
MIN_RTO = 0.2
MAX_RTO = 60.0
INITIAL_RTO = 1.0
ALPHA = 0.125
BETA = 0.25
K = 4
CLOCK_G = 0.001  # our timestamps tick in milliseconds


class RtoEstimator:
    __slots__ = ("srtt", "rttvar", "base", "rto", "min_rto", "max_rto", "backoffs")

    def __init__(self, min_rto: float = MIN_RTO, max_rto: float = MAX_RTO,
                 initial: float = INITIAL_RTO) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.base = initial  # RTO without backoff
        self.rto = initial
        self.backoffs = 0

    def sample(self, r: float, per_rtt: int = 1) -> None:
        """A round-trip measurement in seconds (RFC 6298 2.2 and 2.3); clears the backoff.

        `per_rtt`: how many samples to expect per round trip. With timestamps every ACK
        is a sample, so the gains are divided by it (RFC 7323 appendix G) and the
        estimator still moves at RFC 6298's pace per round trip.
        """
        if r < 0:
            return
        srtt = self.srtt
        if srtt is None:
            self.srtt = r
            self.rttvar = r / 2
        else:
            a = ALPHA / per_rtt
            b = BETA / per_rtt
            self.rttvar = (1 - b) * self.rttvar + b * abs(srtt - r)
            self.srtt = (1 - a) * srtt + a * r
        base = self.srtt + max(CLOCK_G, K * self.rttvar)
        self.base = min(max(base, self.min_rto), self.max_rto)
        self.rto = self.base
        self.backoffs = 0

    def backoff(self) -> None:
        """The timer expired (RFC 6298 5.5): double, up to the maximum."""
        self.backoffs += 1
        self.rto = min(self.rto * 2, self.max_rto)

    def reset_backoff(self) -> None:
        self.backoffs = 0
        self.rto = self.base
