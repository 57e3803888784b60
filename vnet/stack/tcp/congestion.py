"""Congestion control: NewReno (RFC 5681 + RFC 6582) and CUBIC (RFC 9438), selectable by name.

Windows are in bytes. The connection calls `on_ack` for every ACK that advances
SND.UNA outside loss recovery, `on_loss` when it enters fast recovery,
`on_recovered` when it leaves it, and `on_timeout` on an RTO.
"""

from __future__ import annotations


def initial_window(mss: int) -> int:
    """RFC 6928: min(10*MSS, max(2*MSS, 14600))."""
    return min(10 * mss, max(2 * mss, 14600))


class NewReno:
    name = "newreno"
    __slots__ = ("mss", "cwnd", "ssthresh", "_acc")

    def __init__(self, mss: int) -> None:
        self.mss = mss
        self.cwnd = initial_window(mss)
        self.ssthresh = 1 << 40
        self._acc = 0  # bytes acked toward the next congestion-avoidance increase

    def on_ack(self, acked: int, now: float, rtt: float | None) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            # slow start, counting bytes (RFC 3465) without its L = 2 SMSS cap per ACK, as
            # Linux does: a receiver that ACKs once per read burst (ours, or one behind
            # GRO) would otherwise hold slow start down to 2 SMSS per burst
            self.cwnd = min(self.cwnd + acked, max(self.ssthresh, self.cwnd + mss))
        else:
            self._acc += acked
            if self._acc >= self.cwnd:
                self._acc -= self.cwnd
                self.cwnd += mss

    def on_loss(self, flight: int, now: float) -> None:
        # RFC 5681 (4): ssthresh = max(FlightSize / 2, 2*SMSS)
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.ssthresh
        self._acc = 0

    def on_recovered(self, flight: int) -> None:
        # RFC 6582 3.2 (6): deflate, avoiding a burst
        self.cwnd = max(min(self.ssthresh, flight + self.mss), self.mss)

    def on_timeout(self, flight: int, now: float) -> None:
        self.ssthresh = max(flight // 2, 2 * self.mss)
        self.cwnd = self.mss
        self._acc = 0

    def set_mss(self, mss: int) -> None:
        self.mss = mss


class Cubic(NewReno):
    """CUBIC (RFC 9438) with the Reno-friendly region and fast convergence."""

    name = "cubic"
    __slots__ = ("w_max", "k", "epoch", "w_est", "cwnd_epoch")
    C = 0.4
    BETA = 0.7

    def __init__(self, mss: int) -> None:
        super().__init__(mss)
        self.w_max = 0.0  # segments
        self.k = 0.0
        self.epoch: float | None = None
        self.w_est = 0.0
        self.cwnd_epoch = 0.0

    def on_ack(self, acked: int, now: float, rtt: float | None) -> None:
        mss = self.mss
        if self.cwnd < self.ssthresh:
            self.cwnd = min(self.cwnd + acked, max(self.ssthresh, self.cwnd + mss))
            return
        cwnd_seg = self.cwnd / mss
        if self.epoch is None:
            # a new congestion-avoidance epoch (RFC 9438 4.2)
            self.epoch = now
            if cwnd_seg < self.w_max:
                self.k = ((self.w_max - cwnd_seg) / self.C) ** (1 / 3)
            else:
                self.k = 0.0
                self.w_max = cwnd_seg
            self.w_est = cwnd_seg
            self.cwnd_epoch = cwnd_seg
        t = now - self.epoch + (rtt or 0.0)
        target = self.C * (t - self.k) ** 3 + self.w_max
        # bound the growth per RTT to 1.5x (RFC 9438 4.2)
        target = min(max(target, cwnd_seg), 1.5 * cwnd_seg)
        # Reno-friendly estimate (RFC 9438 4.3), alpha = 3 (1 - beta) / (1 + beta)
        alpha = 3 * (1 - self.BETA) / (1 + self.BETA) if self.w_est < self.w_max else 1.0
        self.w_est += alpha * (acked / mss) / cwnd_seg
        if self.w_est > target:
            target = self.w_est
        if target > cwnd_seg:
            self._acc += (target - cwnd_seg) * acked / cwnd_seg
            if self._acc >= 1:
                grow = int(self._acc)
                self._acc -= grow
                self.cwnd += grow

    def on_loss(self, flight: int, now: float) -> None:
        cwnd_seg = self.cwnd / self.mss
        # fast convergence (RFC 9438 4.7)
        self.w_max = cwnd_seg * (1 + self.BETA) / 2 if cwnd_seg < self.w_max else cwnd_seg
        self.ssthresh = max(int(self.cwnd * self.BETA), 2 * self.mss)
        self.cwnd = self.ssthresh
        self.epoch = None
        self._acc = 0

    def on_timeout(self, flight: int, now: float) -> None:
        cwnd_seg = self.cwnd / self.mss
        self.w_max = cwnd_seg
        self.ssthresh = max(int(self.cwnd * self.BETA), 2 * self.mss)
        self.cwnd = self.mss
        self.epoch = None
        self._acc = 0


ALGORITHMS: dict[str, type[NewReno]] = {"newreno": NewReno, "reno": NewReno, "cubic": Cubic}


def make(name: str, mss: int) -> NewReno:
    try:
        return ALGORITHMS[name](mss)
    except KeyError:
        raise ValueError(f"unknown congestion control {name!r}; choose one of "
                         f"{', '.join(sorted(ALGORITHMS))}") from None
