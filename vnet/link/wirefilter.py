"""Link emulation with wirefilter's parameters, as a sans-IO engine between two Ports.

Two directions: LR (frames that leave port `a`, delivered into port `b`) and RL
(the reverse). Each direction applies, in wirefilter's order:

1. mtu        frames longer than the MTU are dropped (counted `dropped_mtu`);
2. loss       Bernoulli loss in %, or with `lostburst` > 0 the Gilbert model:
              P(good -> bad) = l / (b (1 - l)), P(bad -> good) = 1 / b, where l is
              the loss fraction and b the mean burst length; the stationary loss
              is then exactly l and bursts last b frames on average;
3. dup        copies: one more while a draw is below dup % (geometric);
4. per copy:  chanbufsize (bytes waiting in the delay line; a copy that would
              exceed it is dropped, `dropped_capacity`), speed (interface speed in
              bytes/s: serialisation at the input; frames arriving while it is busy
              wait, up to `input_buffer` bytes), bandwidth (bytes/s bottleneck
              whose queue delays delivery; the sender is never blocked), delay in ms
              with jitter, noise (damaged bits per MiB: random bit flips);
5. FIFO:      a copy never overtakes an earlier one unless `fifo` is off (nofifo).

Every value is `V`, `V+J` (uniform jitter in [V-J, V+J]; suffix `U` says so
explicitly) or `V+JN` (normal, sigma = J/3), drawn again for every frame, with
K/M/G = 2^10/2^20/2^30, and may be set per direction (`LR20`, `RL10`). Time
comes only from the Runtime and randomness only from `rt.rng`, so the engine is
exact and reproducible in SimRuntime. Times are kept as floats (wirefilter
rounds delays to whole milliseconds).

Where this differs from vde-2's wirefilter, on purpose: the FIFO rule holds per
direction (wirefilter keeps one for both), `speed` and `bandwidth` together act
as two stages in series (wirefilter lets the bandwidth's delay replace the
speed's), and the delay line is bounded even without `chanbufsize`
(`max_queue_bytes`, `max_queue_frames`). Markov mode (time-varying parameters)
is wirefilter's: see `WireFilter.markov_resize`.
"""

from __future__ import annotations

import heapq
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vnet.link.port import Port
from vnet.runtime.base import Runtime, Timer

LR, RL = "LR", "RL"
PARAMS = ("loss", "lostburst", "delay", "dup", "bandwidth", "speed", "chanbufsize", "noise", "mtu")
ALIASES = {"band": "bandwidth", "capacity": "chanbufsize", "lossburst": "lostburst",
           "ddup": "dup"}
UNITS = {"loss": "%", "lostburst": "frames", "delay": "ms", "dup": "%", "bandwidth": "bytes/s",
         "speed": "bytes/s", "chanbufsize": "bytes", "noise": "bits/MiB", "mtu": "bytes"}
SYNTAX = "[LR|RL]VALUE[+JITTER][K|M|G][U|N]"
DEFAULT_MAX_QUEUE_BYTES = 64 << 20  # the delay line's hard bound when chanbufsize is unset
DEFAULT_MAX_QUEUE_FRAMES = 262144
DEFAULT_INPUT_BUFFER = 212992  # bytes waiting for `speed` (Linux's default socket buffer)
MAX_DUP = 100  # copies of one frame at most, so dup 100 % cannot loop forever
_MULT = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_VALUE_RE = re.compile(
    r"^(?:(LR|RL)\s*)?(\d+(?:\.\d*)?|\.\d+)(?:\s*\+\s*(\d+(?:\.\d*)?|\.\d+))?"
    r"(?:([KMG])([UN])?|([UN])([KMG])?)?$", re.IGNORECASE)


class WireFilterError(ValueError):
    """A bad parameter or value; the message is one line saying what is wrong and how to write it."""


class Value:
    """A wirefilter value: `value` with jitter `plus`, uniform or normal (sigma = plus/3)."""

    __slots__ = ("value", "plus", "normal")

    def __init__(self, value: float = 0.0, plus: float = 0.0, normal: bool = False) -> None:
        self.value = float(value)
        self.plus = float(plus)
        self.normal = normal

    def sample(self, rng: Any) -> float:
        if not self.plus:
            return self.value
        if self.normal:
            return rng.gauss(self.value, self.plus / 3.0)
        return self.value + self.plus * (2.0 * rng.random() - 1.0)

    @property
    def max(self) -> float:
        return self.value + self.plus

    @property
    def min(self) -> float:
        return self.value - self.plus

    def __bool__(self) -> bool:
        return self.value + self.plus > 0

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Value) and other.value == self.value
                and other.plus == self.plus and other.normal == self.normal)

    def __str__(self) -> str:
        base = f"{self.value:g}"
        if self.plus:
            base += f"+{self.plus:g}{'N' if self.normal else 'U'}"
        return base

    def __repr__(self) -> str:
        return f"Value({self})"


def parse_value(text: str, param: str = "value") -> tuple[tuple[str, ...], Value]:
    """Parse wirefilter's syntax: returns (directions, Value); directions is (LR, RL) when unprefixed.

    `"20"`, `"20+5"`, `"20+5N"`, `"LR 20"`, `"RL10+2U"`, `"1M"`, `"128+64K"`.
    """
    s = text.strip()
    if s.endswith("]"):
        raise WireFilterError(f"{param} {text!r}: a Markov node suffix [n] is not allowed here")
    m = _VALUE_RE.match(s)
    if m is None:
        raise WireFilterError(f"bad {param} value {text!r}: write {SYNTAX}, e.g. 20, 20+5, "
                              f"LR20+5N, 1M")
    prefix, v, plus, mult1, dist1, dist2, mult2 = m.groups()
    mult = _MULT[(mult1 or mult2 or "").upper()]
    normal = (dist1 or dist2 or "U").upper() == "N"
    dirs = (prefix.upper(),) if prefix else (LR, RL)
    return dirs, Value(float(v) * mult, float(plus or 0) * mult, normal)


_NODE_RE = re.compile(r"^(.*?)\s*\[\s*(\d+)\s*\]$", re.DOTALL)


def split_node(text: str) -> tuple[str, int | None]:
    """`"100+10N[2]"` -> (`"100+10N"`, 2): wirefilter's Markov node suffix; None without one."""
    m = _NODE_RE.match(text.strip())
    if m is None:
        return text, None
    return m.group(1), int(m.group(2))


def canonical(param: str) -> str:
    name = ALIASES.get(param.lower(), param.lower())
    if name not in PARAMS:
        raise WireFilterError(f"unknown parameter {param!r}: use one of {', '.join(PARAMS)}")
    return name


def _check(param: str, v: Value) -> None:
    if v.value < 0 or v.plus < 0:
        raise WireFilterError(f"{param} must not be negative")
    if param in ("loss", "dup") and v.value > 100:
        raise WireFilterError(f"{param} is a percentage: {v.value:g} is over 100")


@dataclass
class DelayStats:
    """Observed delay (entry to delivery) in seconds: count, mean, standard deviation, extremes."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    low: float = math.inf
    high: float = 0.0

    def add(self, d: float) -> None:
        self.n += 1
        self.total += d
        self.total_sq += d * d
        if d < self.low:
            self.low = d
        if d > self.high:
            self.high = d

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def stdev(self) -> float:
        if self.n < 2:
            return 0.0
        var = (self.total_sq - self.total * self.total / self.n) / (self.n - 1)
        return math.sqrt(var) if var > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean_ms": self.mean * 1e3, "stdev_ms": self.stdev * 1e3,
                "min_ms": (self.low if self.n else 0.0) * 1e3, "max_ms": self.high * 1e3}


class Direction:
    """One direction of the emulated wire. `input(frame)` takes frames; `out(frame)` delivers them."""

    __slots__ = (
        "rt", "name", "out", "fifo", "loss", "lostburst", "delay", "dup", "bandwidth", "speed",
        "chanbufsize", "noise", "mtu", "max_queue_bytes", "max_queue_frames", "input_buffer",
        "_plain", "_bad", "_heap", "_seq", "_queued", "_last_when", "_next_band", "_next_speed",
        "_timer", "_timer_when", "_max_seq_out", "closed", "_last_drop_speed",
        "frames_in", "bytes_in", "frames_out", "bytes_out", "lost", "duplicated",
        "dropped_mtu", "dropped_capacity", "dropped_speed", "corrupted", "bits_flipped",
        "reordered", "delay_stats",
    )

    def __init__(self, rt: Runtime, name: str, out: Callable[[bytes], None]) -> None:
        self.rt = rt
        self.name = name
        self.out = out
        self.fifo = True
        for p in PARAMS:
            setattr(self, p, Value())
        self.max_queue_bytes = DEFAULT_MAX_QUEUE_BYTES
        self.max_queue_frames = DEFAULT_MAX_QUEUE_FRAMES
        self.input_buffer = DEFAULT_INPUT_BUFFER
        self._plain = True  # nothing configured: frames pass straight through
        self._bad = False  # Gilbert state
        self._heap: list[tuple[float, int, bytes, float]] = []
        self._seq = 0
        self._queued = 0  # bytes in the delay line
        self._last_when = -math.inf
        self._next_band = -math.inf
        self._next_speed = -math.inf
        self._timer: Timer | None = None
        self._timer_when = math.inf
        self._max_seq_out = 0
        self._last_drop_speed = False
        self.closed = False
        self.frames_in = self.bytes_in = self.frames_out = self.bytes_out = 0
        self.lost = self.duplicated = self.dropped_mtu = self.dropped_capacity = 0
        self.dropped_speed = self.corrupted = self.bits_flipped = self.reordered = 0
        self.delay_stats = DelayStats()

    # ---- configuration -----------------------------------------------------------------

    def set(self, param: str, value: Value) -> None:
        setattr(self, param, value)
        self._plain = not any(getattr(self, p) for p in PARAMS)

    def apply(self, values: dict[str, Value]) -> None:
        """Take a whole set of parameters at once (a Markov node change)."""
        for p, v in values.items():
            setattr(self, p, v)
        self._plain = not any(getattr(self, p) for p in PARAMS)

    def params(self) -> dict[str, str]:
        return {p: str(getattr(self, p)) for p in PARAMS} | {"fifo": str(self.fifo)}

    # ---- the frame path ----------------------------------------------------------------

    def input(self, frame: bytes) -> None:
        if type(frame) is not bytes:  # drivers may lend a reused buffer: keep our own copy
            frame = bytes(frame)
        n = len(frame)
        self.frames_in += 1
        self.bytes_in += n
        if self.closed:
            self.lost += 1
            return
        if self._plain and not self._heap:
            self.frames_out += 1
            self.bytes_out += n
            self._seq += 1
            self._max_seq_out = self._seq
            ds = self.delay_stats  # a zero delay: only the count and the minimum change
            ds.n += 1
            ds.low = 0.0
            self.out(frame)
            return
        rng = self.rt.rng
        mtu = self.mtu
        if mtu and n > mtu.min > 0:
            self.dropped_mtu += 1
            return
        # loss: Gilbert when a burst length is set, Bernoulli otherwise
        loss = self.loss
        if loss:
            if loss.min >= 100.0:
                self.lost += 1
                return
            lv = loss.sample(rng) / 100.0
            if self.lostburst:
                burst = self.lostburst.sample(rng)
                if lv >= 1.0:
                    self._bad = True
                elif burst > 0:
                    if self._bad:
                        if rng.random() < 1.0 / burst:
                            self._bad = False
                    elif rng.random() < lv / (burst * (1.0 - lv)):
                        self._bad = True
                else:
                    self._bad = rng.random() < lv
                if self._bad:
                    self.lost += 1
                    return
            else:
                self._bad = False
                if rng.random() < lv:
                    self.lost += 1
                    return
        else:
            self._bad = False
        times = 1
        if self.dup:
            dv = self.dup.sample(rng) / 100.0
            while times < MAX_DUP and rng.random() < dv:
                times += 1
            self.duplicated += times - 1
        now = self.rt.now()
        for k in range(times):
            if not self._enqueue(frame, n, now, rng):
                # as wirefilter: a full channel drops this copy and the ones after it
                rest = times - k - 1
                if rest:
                    if self._last_drop_speed:
                        self.dropped_speed += rest
                    else:
                        self.dropped_capacity += rest
                return

    def _enqueue(self, frame: bytes, n: int, now: float, rng: Any) -> bool:
        cap = self.chanbufsize
        limit = cap.sample(rng) if cap else self.max_queue_bytes
        if self._queued + n > limit or len(self._heap) >= self.max_queue_frames:
            self.dropped_capacity += 1
            self._last_drop_speed = False
            return False
        t = now
        if self.speed:
            sp = self.speed.sample(rng)
            if sp <= 0:
                self.dropped_speed += 1
                self._last_drop_speed = True
                return False
            start = self._next_speed if self._next_speed > now else now
            if (start - now) * sp > self.input_buffer:
                self.dropped_speed += 1  # the sender's buffer is full while the input is blocked
                self._last_drop_speed = True
                return False
            t = start + n / sp
            self._next_speed = t
        if self.bandwidth:
            bw = self.bandwidth.sample(rng)
            if bw <= 0:
                self.dropped_capacity += 1
                self._last_drop_speed = False
                return False
            start = self._next_band if self._next_band > t else t
            t = start + n / bw
            self._next_band = t
        if self.delay:
            d = self.delay.sample(rng)
            if d > 0:
                t += d / 1000.0
        if self.fifo and t < self._last_when:
            t = self._last_when
        if t > self._last_when:
            self._last_when = t
        if self.noise:
            frame = self._damage(frame, n, rng)
        self._seq += 1
        if t <= now and not self._heap:
            self._deliver(frame, self._seq, 0.0)
            return True
        heapq.heappush(self._heap, (t, self._seq, frame, now))
        self._queued += n
        if t < self._timer_when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_when = t
            self._timer = self.rt.call_at(t, self._fire)
        return True

    def _damage(self, frame: bytes, n: int, rng: Any) -> bytes:
        # wirefilter's rule: one more damaged bit while a draw is below n*noise/2^20
        p = n * self.noise.sample(rng) / (1 << 20)
        bits = 0
        nbits = n * 8
        while bits < nbits and rng.random() < p:
            bits += 1
        if not bits:
            return frame
        buf = bytearray(frame)
        for _ in range(bits):
            b = rng.randrange(nbits)
            buf[b >> 3] ^= 1 << (b & 7)
        self.corrupted += 1
        self.bits_flipped += bits
        return bytes(buf)

    def _fire(self) -> None:
        self._timer = None
        self._timer_when = math.inf
        heap = self._heap
        now = self.rt.now()
        while heap and heap[0][0] <= now:
            _t, seq, frame, t_in = heapq.heappop(heap)
            self._queued -= len(frame)
            self._deliver(frame, seq, now - t_in)
            if self.closed:
                return
        if heap:
            self._timer_when = heap[0][0]
            self._timer = self.rt.call_at(self._timer_when, self._fire)

    def _deliver(self, frame: bytes, seq: int, delay: float) -> None:
        if seq < self._max_seq_out:
            self.reordered += 1
        else:
            self._max_seq_out = seq
        self.frames_out += 1
        self.bytes_out += len(frame)
        self.delay_stats.add(delay)
        self.out(frame)

    # ---- reporting and teardown --------------------------------------------------------

    @property
    def queued_bytes(self) -> int:
        return self._queued

    @property
    def queued_frames(self) -> int:
        return len(self._heap)

    def counters(self) -> dict[str, Any]:
        return {
            "frames_in": self.frames_in, "bytes_in": self.bytes_in,
            "frames_out": self.frames_out, "bytes_out": self.bytes_out,
            "lost": self.lost, "duplicated": self.duplicated, "dropped_mtu": self.dropped_mtu,
            "dropped_capacity": self.dropped_capacity, "dropped_speed": self.dropped_speed,
            "corrupted": self.corrupted, "bits_flipped": self.bits_flipped,
            "reordered": self.reordered, "queued_frames": len(self._heap),
            "queued_bytes": self._queued, "delay": self.delay_stats.as_dict(),
        }

    def close(self) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._heap.clear()
        self._queued = 0


ParamValue = float | int | str | Value | tuple | None
DEFAULT_MARKOV_TIME = 100.0  # ms between Markov steps, as wirefilter
MAX_MARKOV_NODES = 64


class WireFilter:
    """An emulated cable between ports `a` and `b` (as `Link`, but with wirefilter's parameters).

    `a` and `b` are ports of other engines (switches, hosts); the wire sets their
    `transmit` and delivers into their `receive`. Parameters are Python keywords in
    wirefilter's units (delay in ms, loss and dup in %, bandwidth and speed in
    bytes/s), each a number, a string in wirefilter's syntax (`"20+5N"`,
    `"LR20"`) or a pair `(lr, rl)`:

        WireFilter(rt, sw1.add_port(), sw2.add_port(), delay=20, loss=1, bandwidth="1M")

    For a wire that owns its ports (the `vnet wirefilter` command, where each port
    is joined to an OS attachment), use `WireFilter.standalone(rt, ...)`: frames
    entering `port_a` go LR and leave by `port_b.send`.

    Markov mode (wirefilter's): `markov_resize(n)` makes n parameter sets
    ("nodes"); every `markov_time` ms the wire moves from node i to node j with
    probability `edge(i, j)` % (what is left of 100 % stays). `set(..., node=k)` or
    a `[k]` suffix (`"100+10N[1]"`) sets node k's values; without one, node 0's,
    as in wirefilter.
    """

    def __init__(self, rt: Runtime, a: Port | None = None, b: Port | None = None, *,
                 fifo: bool = True, name: str = "wirefilter", **params: ParamValue) -> None:
        self.rt = rt
        self.name = name
        self.a = a
        self.b = b
        self._owned = a is None and b is None
        if self._owned:
            a = Port(f"{name}.a")
            b = Port(f"{name}.b")
            a.owner = b.owner = self
            self.a, self.b = a, b
            self.lr = Direction(rt, LR, b.send)
            self.rl = Direction(rt, RL, a.send)
            a.receive = self.lr.input
            b.receive = self.rl.input
        elif a is None or b is None:
            raise WireFilterError("give both ports a and b, or neither (standalone wire)")
        else:
            self.lr = Direction(rt, LR, b.deliver)
            self.rl = Direction(rt, RL, a.deliver)
            a.attach(self.lr.input)
            b.attach(self.rl.input)
        # Markov mode: node -> direction -> parameter -> Value; node 0 is the plain wire.
        self.nodes: list[dict[str, dict[str, Value]]] = [self._blank_node()]
        self.node_names: list[str] = [""]
        self.edges: list[list[float]] = [[100.0]]
        self.current = 0
        self.markov_time = DEFAULT_MARKOV_TIME
        self.node_changes = 0
        self._markov_timer: Timer | None = None
        self.closed = False
        self.set_fifo(fifo)
        for param, value in params.items():
            if value is not None:
                self.set(param, value)

    @classmethod
    def standalone(cls, rt: Runtime, **kw: Any) -> WireFilter:
        return cls(rt, None, None, **kw)

    @property
    def port_a(self) -> Port:
        assert self.a is not None
        return self.a

    @property
    def port_b(self) -> Port:
        assert self.b is not None
        return self.b

    def directions(self, which: str | None = None) -> tuple[Direction, ...]:
        if which is None:
            return (self.lr, self.rl)
        w = which.upper()
        if w == LR:
            return (self.lr,)
        if w == RL:
            return (self.rl,)
        raise WireFilterError(f"unknown direction {which!r}: use LR or RL")

    # ---- live configuration --------------------------------------------------------------

    def set(self, param: str, value: ParamValue, direction: str | None = None,
            node: int | None = None) -> None:
        """Set a parameter (now, while frames flow). `value` as in the constructor."""
        if param.lower() in ("fifo", "nofifo"):
            on = _truthy(value)
            self.set_fifo(on if param.lower() == "fifo" else not on)
            return
        name = canonical(param)
        if isinstance(value, tuple):
            if len(value) != 2 or direction is not None:
                raise WireFilterError(f"{name}: a pair means (LR, RL); give exactly two values")
            self.set(name, value[0], LR, node)
            self.set(name, value[1], RL, node)
            return
        if isinstance(value, Value):
            dirs, v = (LR, RL), value
        elif isinstance(value, str):
            text, suffix = split_node(value)
            if suffix is not None:
                if node is not None and node != suffix:
                    raise WireFilterError(f"{name}: value says node [{suffix}] but node={node} given")
                node = suffix
            dirs, v = parse_value(text, name)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise WireFilterError(f"{name} must be a finite number, not {value}")
            dirs, v = (LR, RL), Value(value)
        else:
            raise WireFilterError(f"{name}: expected a number or {SYNTAX}, not {value!r}")
        _check(name, v)
        if direction is not None:
            if len(dirs) == 1 and dirs[0] != direction.upper():
                raise WireFilterError(f"{name}: value says {dirs[0]} but direction {direction} given")
            dirs = tuple(d.name for d in self.directions(direction))
        n = 0 if node is None else self._node(node)
        for d in dirs:
            self.nodes[n][d][name] = Value(v.value, v.plus, v.normal)
            if n == self.current:
                (self.lr if d == LR else self.rl).set(name, self.nodes[n][d][name])

    def set_fifo(self, on: bool) -> None:
        self.lr.fifo = self.rl.fifo = bool(on)

    def get(self, param: str, direction: str = LR, node: int | None = None) -> Value:
        d = self.directions(direction)[0]
        if node is None:
            return getattr(d, canonical(param))
        return self.nodes[self._node(node)][d.name][canonical(param)]

    # ---- Markov mode -----------------------------------------------------------------------

    @staticmethod
    def _blank_node() -> dict[str, dict[str, Value]]:
        return {LR: {p: Value() for p in PARAMS}, RL: {p: Value() for p in PARAMS}}

    def _node(self, n: int) -> int:
        if not 0 <= n < len(self.nodes):
            raise WireFilterError(f"no Markov node {n}: nodes are 0..{len(self.nodes) - 1} "
                                  f"(markov-numnodes sets how many)")
        return n

    def markov_resize(self, n: int) -> None:
        """Have n nodes (new ones start with every parameter 0); n = 1 turns Markov mode off."""
        if not 1 <= n <= MAX_MARKOV_NODES:
            raise WireFilterError(f"markov-numnodes {n}: use 1..{MAX_MARKOV_NODES}")
        old = len(self.nodes)
        if n > old:
            self.nodes += [self._blank_node() for _ in range(n - old)]
            self.node_names += [""] * (n - old)
        else:
            del self.nodes[n:]
            del self.node_names[n:]
        edges = [[0.0] * n for _ in range(n)]
        for i in range(min(n, old)):
            for j in range(min(n, old)):
                if i != j:
                    edges[i][j] = self.edges[i][j]
        self.edges = edges
        for i in range(n):
            self._rebalance(i)
        if self.current >= n:
            self.set_node(0)
        self._restart_markov()

    def _rebalance(self, i: int) -> None:
        self.edges[i][i] = 100.0 - sum(w for j, w in enumerate(self.edges[i]) if j != i)

    def set_edge(self, i: int, j: int, weight: float) -> None:
        """P(node i -> node j) per step, in %; the rest of 100 % is staying at i."""
        self._node(i)
        self._node(j)
        if i == j:
            raise WireFilterError("setedge: the weight of staying (i,i) is what the others leave "
                                  "of 100; set edges to other nodes")
        if not 0.0 <= weight <= 100.0 or not math.isfinite(weight):
            raise WireFilterError(f"setedge: weight {weight:g} is not a percentage (0..100)")
        others = sum(w for k, w in enumerate(self.edges[i]) if k not in (i, j))
        if others + weight > 100.0 + 1e-9:
            raise WireFilterError(f"setedge: edges out of node {i} would add up to "
                                  f"{others + weight:g} % (max 100)")
        self.edges[i][j] = float(weight)
        self._rebalance(i)

    def set_node(self, n: int) -> None:
        """Make node n current (its parameters apply at once)."""
        self._node(n)
        if n != self.current:
            self.node_changes += 1
        self.current = n
        self.lr.apply(self.nodes[n][LR])
        self.rl.apply(self.nodes[n][RL])

    def set_markov_time(self, ms: float) -> None:
        if not ms > 0 or not math.isfinite(ms):
            raise WireFilterError(f"markov-time {ms:g}: give a period in ms > 0")
        self.markov_time = float(ms)
        self._restart_markov()

    def set_node_name(self, n: int, name: str) -> None:
        self.node_names[self._node(n)] = name.strip()

    def _restart_markov(self) -> None:
        if self._markov_timer is not None:
            self._markov_timer.cancel()
            self._markov_timer = None
        if len(self.nodes) > 1 and not self.closed:
            self._markov_timer = self.rt.call_later(self.markov_time / 1000.0, self._markov_step)

    def _markov_step(self) -> None:
        i = self.current
        n = len(self.nodes)
        draw = self.rt.rng.random() * 100.0
        k = i
        for j in range(n):  # from i itself onwards, as wirefilter walks its row
            k = (i + j) % n
            w = self.edges[i][k]
            if draw <= w:
                break
            draw -= w
        if k != i:
            self.set_node(k)
        self._markov_timer = self.rt.call_later(self.markov_time / 1000.0, self._markov_step)

    def showedges(self, n: int | None = None) -> str:
        i = self.current if n is None else self._node(n)
        names = self.node_names
        return "\n".join(f"Edge {i:<2d}->{j:<2d} \"{names[i]}\"->\"{names[j]}\" weight {w:g}"
                         for j, w in enumerate(self.edges[i]) if w)

    def showcurrent(self) -> str:
        return (f"Current Markov Node {self.current} \"{self.node_names[self.current]}\" "
                f"(0,..,{len(self.nodes) - 1})")

    # ---- reporting -----------------------------------------------------------------------

    def counters(self) -> dict[str, Any]:
        out: dict[str, Any] = {LR: self.lr.counters(), RL: self.rl.counters()}
        if len(self.nodes) > 1:
            out["markov"] = {"node": self.current, "nodes": len(self.nodes),
                             "changes": self.node_changes}
        return out

    def params(self) -> dict[str, dict[str, str]]:
        return {LR: self.lr.params(), RL: self.rl.params()}

    def showinfo(self, node: int | None = None) -> str:
        """Parameters in the layout of wirefilter's `showinfo`, then our counters."""
        n = self.current if node is None else self._node(node)
        lr, rl = self.nodes[n][LR], self.nodes[n][RL]
        rows = [("Loss  ", "loss"), ("Lburst", "lostburst"), ("Delay ", "delay"), ("Dup   ", "dup"),
                ("Bandw ", "bandwidth"), ("Speed ", "speed"), ("Noise ", "noise"),
                ("MTU   ", "mtu"), ("Cap.  ", "chanbufsize")]
        lines = ["WireFilter: bidirectional"]
        if len(self.nodes) > 1:
            lines.append(f"Node {n} \"{self.node_names[n]}\" (0,..,{len(self.nodes) - 1}) "
                         f"Markov-time {self.markov_time:g}")
        for label, p in rows:
            lines.append(f"{label} L->R {lr[p]}   R->L {rl[p]}")
        a, b = self.lr, self.rl
        lines.append(f"Current Delay Queue size:   L->R {a.queued_bytes}      R->L {b.queued_bytes}")
        lines.append(f"Fifoness {'TRUE' if a.fifo else 'FALSE'}")
        lines.append(f"Waiting packets in delay queues {a.queued_frames + b.queued_frames}")
        for d in (a, b):
            c = d.counters()
            ds = d.delay_stats
            lines.append(
                f"{d.name}: in {c['frames_in']} out {c['frames_out']} lost {c['lost']} "
                f"dup {c['duplicated']} mtu-drop {c['dropped_mtu']} cap-drop {c['dropped_capacity']} "
                f"speed-drop {c['dropped_speed']} corrupted {c['corrupted']} "
                f"reordered {c['reordered']} delay mean {ds.mean * 1e3:.3f} ms "
                f"sd {ds.stdev * 1e3:.3f} ms")
        return "\n".join(lines)

    def summary(self) -> str:
        parts = []
        for d in (self.lr, self.rl):
            ds = d.delay_stats
            parts.append(f"{d.name} in {d.frames_in} out {d.frames_out} lost {d.lost} "
                         f"({d.lost / d.frames_in * 100 if d.frames_in else 0:.1f} %) dup "
                         f"{d.duplicated} delay {ds.mean * 1e3:.2f}±{ds.stdev * 1e3:.2f} ms")
        return "; ".join(parts)

    def close(self) -> None:
        """Stop: frames in flight are discarded, the ports are let go."""
        self.closed = True
        if self._markov_timer is not None:
            self._markov_timer.cancel()
            self._markov_timer = None
        self.lr.close()
        self.rl.close()
        if not self._owned:
            assert self.a is not None and self.b is not None
            self.a.detach()
            self.b.detach()


def _truthy(value: ParamValue) -> bool:
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("1", "true", "yes", "on"):
            return True
        if v in ("0", "false", "no", "off"):
            return False
        raise WireFilterError(f"fifo: expected 1 or 0, not {value!r}")
    return bool(value)
