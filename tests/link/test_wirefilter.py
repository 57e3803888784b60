"""The link emulator in simulated time: statistical accuracy and wirefilter's semantics.

Every run is seeded, so each assertion is deterministic; the bounds are still the
statistical ones (binomial / standard-error), so a wrong model fails them.
"""

from __future__ import annotations

import math
import statistics
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vnet.link.port import Port, connect
from vnet.link.switch import Switch
from vnet.link.wirefilter import Value, WireFilter, WireFilterError, parse_value
from vnet.runtime.sim import SimRuntime

SEQ = struct.Struct("!I")


def rig(seed: int = 1, **params):
    rt = SimRuntime(seed=seed)
    a, b = Port("a"), Port("b")
    got_b: list[tuple[float, bytes]] = []
    got_a: list[tuple[float, bytes]] = []
    b.receive = lambda f: got_b.append((rt.now(), f))
    a.receive = lambda f: got_a.append((rt.now(), f))
    wf = WireFilter(rt, a, b, **params)
    return rt, a, b, wf, got_b, got_a


def frame(seq: int, size: int = 100) -> bytes:
    return SEQ.pack(seq) + bytes(size - 4)


def send_series(rt, port: Port, n: int, interval: float, size: int = 100, start: float = 0.0):
    """Schedule n frames, frame i at start + i*interval; returns the send times."""
    times = [start + i * interval for i in range(n)]
    for i, t in enumerate(times):
        rt.call_at(t, port.send, frame(i, size))
    return times


def seqs(got) -> list[int]:
    return [SEQ.unpack_from(f)[0] for _t, f in got]


def within_binomial(k: int, n: int, p: float, z: float = 4.5) -> bool:
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p))


# ---- parser ------------------------------------------------------------------------------


@pytest.mark.parametrize("text,dirs,value", [
    ("10", ("LR", "RL"), Value(10)),
    ("10+5", ("LR", "RL"), Value(10, 5)),
    ("10+5U", ("LR", "RL"), Value(10, 5)),
    ("10+5N", ("LR", "RL"), Value(10, 5, True)),
    ("LR20", ("LR",), Value(20)),
    ("RL 10+2n", ("RL",), Value(10, 2, True)),
    ("1K", ("LR", "RL"), Value(1024)),
    ("128+64K", ("LR", "RL"), Value(128 * 1024, 64 * 1024)),
    ("2M", ("LR", "RL"), Value(2 << 20)),
    ("1G", ("LR", "RL"), Value(1 << 30)),
    ("1.5", ("LR", "RL"), Value(1.5)),
    ("100+10KN", ("LR", "RL"), Value(102400, 10240, True)),
])
def test_parse_value(text, dirs, value):
    assert parse_value(text) == (dirs, value)


@pytest.mark.parametrize("text", ["", "abc", "-5", "10+", "10+5X", "LR", "10ms", "10 20",
                                  "20[1]", "LRRL10"])
def test_parse_value_errors_are_one_line(text):
    with pytest.raises(WireFilterError) as ei:
        parse_value(text, "delay")
    msg = str(ei.value)
    assert "\n" not in msg and "delay" in msg


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.+-LRUNKMGlrunkmg []x", max_size=14))
def test_parse_value_only_raises_its_own_error(text):
    try:
        dirs, v = parse_value(text)
    except WireFilterError as e:
        assert "\n" not in str(e)
        return
    assert dirs in (("LR",), ("RL",), ("LR", "RL")) and v.value >= 0 and v.plus >= 0


def test_bad_parameters_rejected():
    rt, a, b, wf, *_ = rig()
    with pytest.raises(WireFilterError, match="percentage"):
        wf.set("loss", 150)
    with pytest.raises(WireFilterError, match="unknown parameter"):
        wf.set("jitter", 5)
    with pytest.raises(WireFilterError, match="direction"):
        wf.set("delay", 5, direction="XY")
    with pytest.raises(WireFilterError, match="finite"):
        wf.set("delay", float("nan"))


# ---- loss --------------------------------------------------------------------------------


def test_bernoulli_loss_within_binomial_bounds():
    n, p = 20000, 0.05
    rt, a, b, wf, got, _ = rig(seed=7, loss=p * 100)
    send_series(rt, a, n, 0.0001)
    rt.run()
    assert wf.lr.lost + len(got) == n
    assert within_binomial(wf.lr.lost, n, p), wf.lr.lost
    # losses are independent: mean run of consecutive losses is 1/(1-p)
    runs = _loss_runs(seqs(got), n)
    assert abs(statistics.fmean(runs) - 1 / (1 - p)) < 0.05


def _loss_runs(received: list[int], n: int) -> list[int]:
    ok = set(received)
    runs, cur = [], 0
    for i in range(n):
        if i in ok:
            if cur:
                runs.append(cur)
            cur = 0
        else:
            cur += 1
    if cur:
        runs.append(cur)
    return runs


@pytest.mark.parametrize("loss,burst", [(10, 4), (2, 8)])
def test_gilbert_loss_rate_and_mean_burst(loss, burst):
    n = 100000
    rt, a, b, wf, got, _ = rig(seed=3, loss=loss, lostburst=burst)
    send_series(rt, a, n, 0.00001)
    rt.run()
    rate = wf.lr.lost / n
    runs = _loss_runs(seqs(got), n)
    # Stationary loss l and geometric bursts of mean b; the count is over about n*l/b bursts.
    nb = len(runs)
    assert abs(rate - loss / 100) < 4.5 * math.sqrt(loss / 100 * burst / n) + 0.002, rate
    mean = statistics.fmean(runs)
    se = math.sqrt(burst * (burst - 1)) / math.sqrt(nb)  # sd of a geometric with mean b
    assert abs(mean - burst) < 4.5 * se, (mean, nb)
    assert max(runs) > 2 * burst  # bursty, unlike Bernoulli loss


def test_total_loss_and_per_direction():
    rt, a, b, wf, got_b, got_a = rig(loss="LR100")
    send_series(rt, a, 50, 0.001)
    send_series(rt, b, 50, 0.001)
    rt.run()
    assert got_b == [] and wf.lr.lost == 50
    assert len(got_a) == 50 and wf.rl.lost == 0


# ---- delay -------------------------------------------------------------------------------


def _delays(got, times) -> list[float]:
    return [t - times[s] for (t, _f), s in zip(got, seqs(got), strict=True)]


def test_constant_delay_exact():
    rt, a, b, wf, got, _ = rig(delay=20)
    times = send_series(rt, a, 100, 0.001)
    rt.run()
    assert all(abs(d - 0.020) < 1e-9 for d in _delays(got, times))
    assert abs(wf.lr.delay_stats.mean - 0.020) < 1e-9


def test_uniform_jitter_mean_sigma_and_range():
    n = 20000
    # frames far apart so FIFO never holds one back: the raw distribution shows
    rt, a, b, wf, got, _ = rig(seed=5, delay="20+5")
    times = send_series(rt, a, n, 0.011)
    rt.run()
    d = _delays(got, times)
    sigma = 5 / math.sqrt(3)
    assert abs(statistics.fmean(d) * 1e3 - 20) < 4.5 * sigma / math.sqrt(n)
    assert abs(statistics.stdev(d) * 1e3 - sigma) < 0.03 * sigma
    assert 0.015 <= min(d) and max(d) <= 0.025
    assert wf.lr.reordered == 0


def test_normal_jitter_sigma_is_a_third():
    n = 20000
    rt, a, b, wf, got, _ = rig(seed=6, delay="50+15N")
    times = send_series(rt, a, n, 0.1)
    rt.run()
    d = [x * 1e3 for x in _delays(got, times)]
    sigma = 5.0
    assert abs(statistics.fmean(d) - 50) < 4.5 * sigma / math.sqrt(n)
    assert abs(statistics.stdev(d) - sigma) < 0.03 * sigma
    within1 = sum(1 for x in d if abs(x - 50) <= sigma) / n
    assert abs(within1 - 0.6827) < 0.015  # normal, not uniform (which would give 0.577)
    # the engine's own statistics agree with the receiver's
    assert abs(wf.lr.delay_stats.stdev * 1e3 - statistics.stdev(d)) < 1e-6


def test_fifo_kept_with_jitter_unless_nofifo():
    n = 5000
    rt, a, b, wf, got, _ = rig(seed=8, delay="10+5")
    send_series(rt, a, n, 0.001)
    rt.run()
    s = seqs(got)
    assert s == sorted(s) and len(s) == n and wf.lr.reordered == 0
    rt, a, b, wf, got, _ = rig(seed=8, delay="10+5", fifo=False)
    send_series(rt, a, n, 0.001)
    rt.run()
    s = seqs(got)
    assert sorted(s) == list(range(n))
    late = sum(1 for i in range(1, n) if s[i] < max(s[:i][-50:]))
    assert wf.lr.reordered > n // 4 and late > 0


# ---- bandwidth and speed -----------------------------------------------------------------


def test_bandwidth_bottleneck_rate_within_one_percent():
    n, size = 4000, 1000
    rt, a, b, wf, got, _ = rig(bandwidth="1M")
    # offered at 2 MB/s: the sender is never blocked, the queue absorbs the excess
    send_series(rt, a, n, 0.0005, size=size)
    rt.run_for(0.01)
    assert wf.lr.frames_in == 20 + 1 and wf.lr.queued_frames > 5
    rt.run()
    assert len(got) == n and wf.lr.dropped_capacity == 0
    t0, t1 = got[0][0], got[-1][0]
    rate = (n - 1) * size / (t1 - t0)
    assert abs(rate / (1 << 20) - 1) < 0.01, rate
    # the first frame is serialised at 1 MiB/s: delivered size/bw after it was sent
    assert abs(got[0][0] - size / (1 << 20)) < 1e-9


def test_bandwidth_plus_delay_is_serialisation_then_propagation():
    rt, a, b, wf, got, _ = rig(bandwidth=1000, delay=100)
    rt.call_at(0.0, a.send, frame(0, 500))
    rt.call_at(0.0, a.send, frame(1, 500))
    rt.run()
    assert [round(t, 9) for t, _ in got] == [0.6, 1.1]


def test_speed_serialises_input_and_bounds_the_backlog():
    n, size = 400, 1000
    rt, a, b, wf, got, _ = rig(speed=100000)
    wf.lr.input_buffer = 50 * size
    for i in range(n):  # all at once: a burst the input cannot take
        rt.call_at(0.0, a.send, frame(i, size))
    rt.run()
    c = wf.lr
    assert len(got) + c.dropped_speed == n
    assert 49 <= len(got) <= 52
    gaps = {round(got[i + 1][0] - got[i][0], 9) for i in range(len(got) - 1)}
    assert gaps == {round(size / 100000, 9)}


# ---- duplication, capacity, mtu, noise ---------------------------------------------------


def test_duplication_rate():
    n, p = 20000, 0.10
    rt, a, b, wf, got, _ = rig(seed=9, dup=p * 100)
    send_series(rt, a, n, 0.0001)
    rt.run()
    extra = len(got) - n
    assert extra == wf.lr.duplicated
    mean = p / (1 - p)  # while draw < p: one more copy
    sd = math.sqrt(n * p) / (1 - p)
    assert abs(extra - n * mean) < 4.5 * sd, extra
    counts: dict[int, int] = {}
    for s in seqs(got):
        counts[s] = counts.get(s, 0) + 1
    assert max(counts.values()) >= 3  # repeated geometrically, not only pairs


def test_mtu_drops_larger_frames():
    rt, a, b, wf, got, _ = rig(mtu=1000)
    for i, size in enumerate((999, 1000, 1001, 1500, 60)):
        rt.call_at(i * 0.001, a.send, frame(i, size))
    rt.run()
    assert seqs(got) == [0, 1, 4]
    assert wf.lr.dropped_mtu == 2


def test_chanbufsize_drops_excess_and_counts():
    rt, a, b, wf, got, _ = rig(bandwidth=10000, chanbufsize="10K")
    for i in range(50):  # 50 kB at once into a 10 KiB channel buffer
        rt.call_at(0.0, a.send, frame(i, 1000))
    rt.run_for(0.001)
    assert wf.lr.queued_bytes == 10000 and wf.lr.dropped_capacity == 40
    rt.run()
    assert seqs(got) == list(range(10))
    rt.call_at(rt.now() + 1, a.send, frame(99, 1000))  # drained: accepted again
    rt.run()
    assert seqs(got)[-1] == 99


def test_default_queue_is_bounded():
    rt, a, b, wf, got, _ = rig(delay=1000)
    wf.lr.max_queue_frames = 100
    for i in range(150):
        rt.call_at(0.0, a.send, frame(i))
    rt.run()
    assert len(got) == 100 and wf.lr.dropped_capacity == 50


def test_noise_flips_bits_at_the_configured_rate():
    n, size = 20000, 1000
    noise = 0.05 * (1 << 20) / size  # p = size*noise/2^20 = 5 % per draw
    rt, a, b, wf, got, _ = rig(seed=11, noise=noise)
    send_series(rt, a, n, 0.0001, size=size)
    rt.run()
    damaged = 0
    for _t, f in got:
        clean = frame(SEQ.unpack_from(f)[0], size) if f[4:] == bytes(size - 4) else None
        if clean is None or f != clean:
            damaged += 1
    assert len(got) == n
    # a flip in the 4 sequence bytes can hide as another clean frame; those are rare
    assert abs(damaged - wf.lr.corrupted) <= wf.lr.corrupted * 0.01 + 2
    assert within_binomial(wf.lr.corrupted, n, 0.05)
    assert wf.lr.bits_flipped >= wf.lr.corrupted


# ---- live changes, determinism, keywords -------------------------------------------------


def test_live_changes_take_effect():
    rt, a, b, wf, got, _ = rig(delay=10)
    times = send_series(rt, a, 100, 0.01)
    rt.call_at(0.495, wf.set, "delay", "30")
    rt.call_at(0.745, wf.set, "loss", 100)
    rt.run()
    d = dict(zip(seqs(got), _delays(got, times), strict=True))
    assert all(abs(d[i] - 0.010) < 1e-9 for i in range(50))
    assert all(abs(d[i] - 0.030) < 1e-9 for i in range(50, 75))
    assert max(d) == 74 and wf.lr.lost == 25
    wf.set("loss", 0)
    wf.set_fifo(False)
    assert not wf.lr.fifo and str(wf.get("delay", "RL")) == "30"


def test_same_seed_same_trace():
    traces = []
    for _ in range(2):
        rt, a, b, wf, got, _ = rig(seed=42, delay="10+5N", loss=5, dup=5, lostburst=2, noise=500)
        send_series(rt, a, 2000, 0.0007)
        rt.run()
        traces.append([(round(t, 12), f) for t, f in got])
    assert traces[0] == traces[1]


def test_keyword_forms():
    rt, a, b, wf, *_ = rig(delay=(20, "10+2N"), loss="LR5", bandwidth="1M", fifo=False)
    assert wf.get("delay", "LR") == Value(20) and wf.get("delay", "RL") == Value(10, 2, True)
    assert wf.get("loss", "LR") == Value(5) and wf.get("loss", "RL") == Value(0)
    assert wf.get("band") == Value(1 << 20)
    assert "Delay  L->R 20   R->L 10+2N" in wf.showinfo()
    assert "Fifoness FALSE" in wf.showinfo()


def test_close_discards_in_flight_and_detaches():
    rt, a, b, wf, got, _ = rig(delay=100)
    send_series(rt, a, 10, 0.001)
    rt.run_for(0.05)
    wf.close()
    rt.run()
    assert got == [] and not a.attached and not b.attached


# ---- in a network of switches (what the demo builds) --------------------------------------


def test_switches_joined_by_wirefilters_in_sim_time():
    rt = SimRuntime(seed=2)
    s1 = Switch(rt, numports=4, name="s1")
    s2 = Switch(rt, numports=4, name="s2")
    wf = WireFilter(rt, s1.add_port(), s2.add_port(), delay="LR20", loss=0)
    wf.set("delay", "RL10")
    h1, h2 = Port("h1"), Port("h2")
    connect(s1.add_port(), h1)
    connect(s2.add_port(), h2)
    mac1, mac2 = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
    got1: list[float] = []
    got2: list[float] = []
    h1.receive = lambda f: got1.append(rt.now())
    h2.receive = lambda f: got2.append(rt.now())
    eth = b"\x88\xb5" + bytes(46)
    rt.call_at(1.0, h1.send, b"\xff" * 6 + mac1 + eth)  # broadcast: s2 learns mac1
    rt.call_at(2.0, h2.send, mac1 + mac2 + eth)  # unicast back across the wire
    rt.run(until=5)
    assert got2 == [pytest.approx(1.020)] and got1 == [pytest.approx(2.010)]
    assert wf.lr.frames_out == 1 and wf.rl.frames_out == 1
    s1.close()
    s2.close()


# ---- Markov mode -------------------------------------------------------------------------


def test_markov_stationary_share_and_sojourn():
    """Two nodes, P(0->1) = 10 %, P(1->0) = 40 % per 100 ms step: pi_1 = 0.2, stay in 1 = 250 ms."""
    rt, a, b, wf, got, _ = rig(seed=12, delay=10)
    wf.markov_resize(2)
    wf.set("delay", "100[1]")
    wf.set_edge(0, 1, 10)
    wf.set_edge(1, 0, 40)
    samples: list[int] = []

    def sample() -> None:
        samples.append(wf.current)
        if rt.now() < 2000:
            rt.call_later(0.1, sample)

    rt.call_at(0.05, sample)  # between Markov steps (every 0.1 s from t=0)
    rt.run(until=2000.07)
    wf.close()
    rt.run()  # nothing left: the Markov timer is gone
    n = len(samples)
    share = sum(samples) / n
    stays, cur = [], 0
    for s in samples:
        if s == 1:
            cur += 1
        elif cur:
            stays.append(cur)
            cur = 0
    # samples are correlated; the variance of a two-state chain's mean grows by (1+l)/(1-l),
    # l = 1 - 0.1 - 0.4 = 0.5 the chain's second eigenvalue
    sd = math.sqrt(0.2 * 0.8 / n * (1 + 0.5) / (1 - 0.5))
    assert abs(share - 0.2) < 4.5 * sd, share
    mean_stay = statistics.fmean(stays) * 0.1
    assert abs(mean_stay - 0.25) < 4.5 * math.sqrt(0.6) / 0.4 * 0.1 / math.sqrt(len(stays))
    seen = sum(1 for i in range(1, n) if samples[i] != samples[i - 1]) + samples[0]
    assert abs(wf.node_changes - seen) <= 1


def test_markov_node_values_apply_while_current():
    rt, a, b, wf, got, _ = rig(seed=13, fifo=False)
    wf.markov_resize(2)
    wf.set("delay", 10)  # node 0 (no suffix: node 0, as wirefilter)
    wf.set("delay", "LR100[1]")
    wf.set("loss", 100, node=1, direction="RL")
    wf.set_edge(0, 1, 50)
    wf.set_edge(1, 0, 50)
    node_at_send: dict[int, int] = {}

    def send(i: int) -> None:
        node_at_send[i] = wf.current
        a.send(frame(i))

    for i in range(3000):
        rt.call_at(0.005 + i * 0.03, send, i)
    rt.run(until=100)
    d = {SEQ.unpack_from(f)[0]: t - (0.005 + SEQ.unpack_from(f)[0] * 0.03) for t, f in got}
    assert len(d) == 3000
    for i, delay in d.items():
        assert delay == pytest.approx(0.100 if node_at_send[i] else 0.010), i
    assert 0.4 < sum(node_at_send.values()) / 3000 < 0.6
    assert wf.get("loss", "RL", node=1) == Value(100) and wf.get("loss", "LR", node=1) == Value(0)
    wf.set_node(1)
    assert "Node 1 \"\" (0,..,1) Markov-time 100" in wf.showinfo()
    assert "Delay  L->R 100   R->L 0" in wf.showinfo()
    assert "Delay  L->R 10   R->L 10" in wf.showinfo(0)
    wf.set_node_name(1, "congested")
    assert wf.showedges(0).splitlines() == ['Edge 0 ->0  ""->"" weight 50',
                                            'Edge 0 ->1  ""->"congested" weight 50']
    assert wf.showcurrent() == 'Current Markov Node 1 "congested" (0,..,1)'
    wf.close()


def test_markov_errors_and_resize():
    rt, a, b, wf, *_ = rig()
    with pytest.raises(WireFilterError, match="no Markov node 1"):
        wf.set("delay", "10[1]")
    wf.markov_resize(3)
    wf.set_edge(0, 1, 60)
    with pytest.raises(WireFilterError, match="add up to 110"):
        wf.set_edge(0, 2, 50)
    with pytest.raises(WireFilterError, match="staying"):
        wf.set_edge(1, 1, 5)
    with pytest.raises(WireFilterError, match="1..64"):
        wf.markov_resize(0)
    with pytest.raises(WireFilterError, match="ms > 0"):
        wf.set_markov_time(0)
    wf.set_edge(0, 2, 40)
    assert wf.edges[0] == [0.0, 60.0, 40.0]
    wf.set_node(2)
    wf.markov_resize(2)  # the current node went away: back to node 0
    assert wf.current == 0 and wf.edges == [[40.0, 60.0], [0.0, 100.0]]
    wf.markov_resize(1)
    rt.run()  # one node: no Markov timer left running
    wf.close()


# ---- robustness: any settings, any frames, frames are all accounted for ------------------

_values = st.one_of(
    st.floats(0, 100, allow_nan=False).map(lambda v: f"{v:.3f}"),
    st.tuples(st.floats(0, 50), st.floats(0, 50), st.sampled_from(["", "U", "N"]),
              st.sampled_from(["LR", "RL", ""])).map(lambda t: f"{t[3]}{t[0]:.2f}+{t[1]:.2f}{t[2]}"),
)
_ops = st.lists(st.one_of(
    st.tuples(st.just("set"), st.sampled_from(["loss", "lostburst", "delay", "dup", "noise"]), _values),
    st.tuples(st.just("set"), st.sampled_from(["bandwidth", "speed", "chanbufsize"]),
              st.sampled_from(["0", "500", "5K", "64+32K", "1M", "LR2K", "100+100N"])),
    st.tuples(st.just("set"), st.just("mtu"), st.sampled_from(["0", "60", "1500", "RL100"])),
    st.tuples(st.just("fifo"), st.booleans(), st.just("")),
    st.tuples(st.just("send"), st.sampled_from(["a", "b"]), st.integers(0, 2000)),
    st.tuples(st.just("run"), st.floats(0, 0.5), st.just("")),
), max_size=60)


@settings(max_examples=120, deadline=None)
@given(_ops, st.integers(0, 2**32))
def test_any_settings_any_frames_never_crash_and_conserve_frames(ops, seed):
    rt, a, b, wf, got_b, got_a = rig(seed=seed)
    for op, x, y in ops:
        if op == "set":
            wf.set(x, y)
        elif op == "fifo":
            wf.set_fifo(x)
        elif op == "send":
            (a if x == "a" else b).send(bytes(y))
        else:
            rt.run_for(x)
    for d, got in ((wf.lr, got_b), (wf.rl, got_a)):
        assert d.frames_out == len(got)
        assert d.frames_in + d.duplicated == (d.frames_out + d.lost + d.dropped_mtu
                                              + d.dropped_capacity + d.dropped_speed
                                              + d.queued_frames)
        assert d.queued_bytes == sum(len(e[2]) for e in d._heap) >= 0
    wf.close()
