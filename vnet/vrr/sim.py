"""The VRR simulator: topologies, a shared-medium model, scenarios and metrics.

Every node is a real `VrrNode` with one Port on a `Medium`: a broadcast frame
reaches all neighbours in the graph (one event for all of them), a unicast frame
only the neighbour with that MAC. Links and nodes can be cut and restored.
Everything runs in `SimRuntime`, seeded, so runs are reproducible.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field

from vnet.link.port import Port
from vnet.runtime.sim import SimRuntime
from vnet.vrr.node import Config, M, VrrNode
from vnet.wire import vrr as W

# ---------------------------------------------------------------- topologies

Graph = list[set[int]]


def line(n: int) -> Graph:
    g: Graph = [set() for _ in range(n)]
    for i in range(n - 1):
        g[i].add(i + 1)
        g[i + 1].add(i)
    return g


def grid(n: int) -> Graph:
    side = max(1, round(math.sqrt(n)))
    g: Graph = [set() for _ in range(n)]
    for i in range(n):
        x = i % side
        for j in ((i + 1) if x + 1 < side else -1, i + side):
            if 0 <= j < n:
                g[i].add(j)
                g[j].add(i)
    return g


def unit_disk(n: int, degree: float, rng: random.Random,
              tries: int = 20) -> tuple[Graph, list[tuple[float, float]]]:
    """A connected random unit-disk graph on the unit square with about `degree` mean degree."""
    radius = math.sqrt(degree / (math.pi * n))
    for _ in range(tries):
        pos = [(rng.random(), rng.random()) for _ in range(n)]
        g: Graph = [set() for _ in range(n)]
        cells: dict[tuple[int, int], list[int]] = {}
        for i, (x, y) in enumerate(pos):
            cells.setdefault((int(x / radius), int(y / radius)), []).append(i)
        r2 = radius * radius
        for (cx, cy), members in cells.items():
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for j in cells.get((cx + dx, cy + dy), ()):
                        for i in members:
                            if i < j:
                                (xi, yi), (xj, yj) = pos[i], pos[j]
                                if (xi - xj) ** 2 + (yi - yj) ** 2 <= r2:
                                    g[i].add(j)
                                    g[j].add(i)
        if len(components(g, set(range(n)))) == 1:
            return g, pos
        radius *= 1.05  # not connected: grow the radius a little and draw again
    raise RuntimeError(f"no connected unit-disk graph for n={n}, degree={degree}")


def components(g: Graph, alive: set[int], up: set[tuple[int, int]] | None = None,
               down: set[tuple[int, int]] | None = None) -> list[set[int]]:
    seen: set[int] = set()
    out = []
    for s in sorted(alive):
        if s in seen:
            continue
        comp = {s}
        seen.add(s)
        q = deque([s])
        while q:
            u = q.popleft()
            for v in g[u]:
                if v in alive and v not in seen and not (down and (min(u, v), max(u, v)) in down):
                    seen.add(v)
                    comp.add(v)
                    q.append(v)
        out.append(comp)
    return out


def bfs(g: Graph, src: int, alive: set[int], down: set[tuple[int, int]]) -> dict[int, int]:
    d = {src: 0}
    q = deque([src])
    while q:
        u = q.popleft()
        for v in g[u]:
            if v in alive and v not in d and (min(u, v), max(u, v)) not in down:
                d[v] = d[u] + 1
                q.append(v)
    return d


# ---------------------------------------------------------------- the medium

class Medium:
    """Delivers frames between node ports along the graph's edges.

    Frames leave in batches: a frame sent during time slot k (slots are `delay`
    long) arrives at the start of slot k + 2, so its delay is between one and two
    slots. All frames of a slot share one scheduler event and wait in a FIFO
    (ordered by construction), which keeps the event heap small at N = 10,000.
    """

    def __init__(self, rt: SimRuntime, g: Graph, macs: list[bytes], delay: float = 0.001,
                 loss: float = 0.0) -> None:
        self.rt = rt
        self.g = g
        self.delay = delay
        self.loss = loss
        self.index = {m: i for i, m in enumerate(macs)}
        self.ports: list[Port | None] = [None] * len(g)
        self.down: set[tuple[int, int]] = set()
        self.alive: set[int] = set(range(len(g)))
        self.frames = 0
        self._q: deque[tuple[int, int, int, bytes]] = deque()  # (slot, from, to or -1, frame)
        self._armed = False

    def attach(self, i: int, port: Port) -> None:
        self.ports[i] = port
        port.attach(lambda f, i=i: self._tx(i, f))

    def _tx(self, i: int, frame: bytes) -> None:
        self.frames += 1
        if i not in self.alive:
            return
        if frame[0] & 1:
            j = -1
        else:
            j = self.index.get(frame[:6], -2)
            if j < 0 or j not in self.g[i]:
                return
        slot = int(self.rt.now() / self.delay) + 2
        self._q.append((slot, i, j, frame))
        if not self._armed:
            self._armed = True
            self.rt.call_at(slot * self.delay, self._drain, slot)

    def _drain(self, slot: int) -> None:
        q = self._q
        ports = self.ports
        alive = self.alive
        g = self.g
        # the common case (no cut links, no loss) skips the per-reception checks
        plain = not self.down and not self.loss
        ok = self._ok
        while q and q[0][0] <= slot:
            _, i, j, frame = q.popleft()
            if j < 0:
                for k in g[i]:
                    if (k in alive) if plain else ok(i, k):
                        p = ports[k]
                        if p is not None:
                            p.receive(frame)
            elif (j in alive) if plain else ok(i, j):
                p = ports[j]
                if p is not None:
                    p.receive(frame)
        if q:
            self.rt.call_at(q[0][0] * self.delay, self._drain, q[0][0])
        else:
            self._armed = False

    def _ok(self, i: int, j: int) -> bool:
        if j not in self.alive or (min(i, j), max(i, j)) in self.down:
            return False
        return not (self.loss and self.rt.rng.random() < self.loss)

    def cut(self, i: int, j: int) -> None:
        self.down.add((min(i, j), max(i, j)))

    def restore(self, i: int, j: int) -> None:
        self.down.discard((min(i, j), max(i, j)))


# ---------------------------------------------------------------- a simulated network

@dataclass
class Net:
    rt: SimRuntime
    g: Graph
    nodes: list[VrrNode]
    medium: Medium
    addrs: list[int]
    pos: list[tuple[float, float]] | None = None
    delivered: dict[int, tuple[int, int]] = field(default_factory=dict)  # probe id -> (node, hops)

    @property
    def alive(self) -> set[int]:
        return self.medium.alive

    def kill(self, i: int) -> None:
        self.medium.alive.discard(i)
        self.nodes[i].stop()

    def revive(self, i: int, cfg: Config | None = None) -> None:
        """Bring node i back as a fresh node (same address, empty state)."""
        old = self.nodes[i]
        port = Port(f"n{i}")
        node = VrrNode(self.rt, old.addr, [port], config=cfg or old.cfg, key=old.key)
        self.nodes[i] = node
        self.medium.attach(i, port)
        self.medium.alive.add(i)
        self._hook(i)
        node.start()

    def _hook(self, i: int) -> None:
        def on_data(origin: int, nh: int, payload: bytes, hops: int, i: int = i) -> None:
            pid = int.from_bytes(payload[:8], "big")
            self.delivered[pid] = (i, hops)
        self.nodes[i].on_data = on_data

    def groups(self) -> list[set[int]]:
        return components(self.g, self.alive, down=self.medium.down)

    def ring_errors(self) -> int:
        """How many live nodes have a vset different from their true ring neighbours."""
        bad = 0
        for comp in self.groups():
            ids = sorted(self.addrs[i] for i in comp)
            pos = {a: k for k, a in enumerate(ids)}
            n = len(ids)
            h = self.nodes[0].cfg.r // 2
            for i in comp:
                node = self.nodes[i]
                k = pos[node.addr]
                want = {ids[(k + d) % n] for d in range(1, h + 1)} | \
                       {ids[(k - d) % n] for d in range(1, h + 1)}
                want.discard(node.addr)
                if node.vset != want or not node.active:
                    bad += 1
        return bad

    def run_until_converged(self, limit: float, step: float = 0.5, log=None) -> float | None:
        """Run until every vset is correct; returns the time taken or None.

        `log(line)`, if given, gets a progress line every 10 simulated seconds.
        """
        t0 = self.rt.now()
        k = 0
        while self.rt.now() - t0 < limit:
            self.rt.run(until=self.rt.now() + step)
            bad = self.ring_errors()
            k += 1
            if log is not None and k % int(10 / step) == 0:
                log(f"t={self.rt.now():.1f} s: {bad} nodes with a wrong vset, "
                    f"{sum(n.active for n in self.nodes)} active, {self.medium.frames} frames")
            if bad == 0:
                return self.rt.now() - t0
        return None

    def probe(self, pairs: int, rng: random.Random, wait: float = 2.0) -> dict[str, float]:
        """Send `pairs` data packets between random connected live pairs; delivery and stretch."""
        groups = [sorted(c) for c in self.groups() if len(c) > 1]
        if not groups:
            return {"sent": 0, "delivered": 0, "ratio": 0.0, "stretch": 0.0}
        weights = [len(c) for c in groups]
        sent: dict[int, tuple[int, int]] = {}
        base = len(self.delivered) + 1_000_000 * rng.randrange(1, 1000)
        for k in range(pairs):
            comp = rng.choices(groups, weights)[0]
            s, d = rng.sample(comp, 2)
            pid = base + k
            sent[pid] = (s, d)
            self.nodes[s].send_data(self.addrs[d], 0x88B5, pid.to_bytes(8, "big"))
        self.rt.run(until=self.rt.now() + wait)
        ok = 0
        stretch = []
        dist_cache: dict[int, dict[int, int]] = {}
        for pid, (s, d) in sent.items():
            got = self.delivered.pop(pid, None)
            if got is not None and got[0] == d:
                ok += 1
                if s not in dist_cache:
                    dist_cache[s] = bfs(self.g, s, self.alive, self.medium.down)
                sp = dist_cache[s].get(d)
                if sp:
                    stretch.append(got[1] / sp)
        return {"sent": pairs, "delivered": ok, "ratio": ok / pairs,
                "stretch": sum(stretch) / len(stretch) if stretch else 0.0}

    def table_sizes(self) -> tuple[float, int]:
        sizes = [len(self.nodes[i].routes) for i in self.alive]
        return (sum(sizes) / len(sizes), max(sizes)) if sizes else (0.0, 0)

    def control_messages(self) -> int:
        return sum(n.stats["tx_ctl"] for n in self.nodes)

    def hello_messages(self) -> int:
        return sum(n.stats["hello_tx"] for n in self.nodes)


def unique_addrs(n: int, rng: random.Random) -> list[int]:
    out: set[int] = set()
    while len(out) < n:
        a = rng.randrange(1, M)
        a &= ~(1 << 40)  # unicast when written as a MAC (bit 0 of the first byte clear)
        a |= 1 << 41  # locally administered
        out.add(a)
    addrs = list(out)
    rng.shuffle(addrs)
    return addrs


def build(g: Graph, seed: int = 1, cfg: Config | None = None, delay: float = 0.001,
          loss: float = 0.0, key=None, start: bool = True,
          pos: list[tuple[float, float]] | None = None) -> Net:
    rt = SimRuntime(seed=seed)
    rng = random.Random(seed * 7919 + 1)
    addrs = unique_addrs(len(g), rng)
    macs = [W.addr_to_mac(a) for a in addrs]
    medium = Medium(rt, g, macs, delay=delay, loss=loss)
    nodes = []
    for i in range(len(g)):
        port = Port(f"n{i}")
        node = VrrNode(rt, addrs[i], [port], config=cfg, key=key)
        medium.attach(i, port)
        nodes.append(node)
    net = Net(rt, g, nodes, medium, addrs, pos)
    for i in range(len(g)):
        net._hook(i)
    if start:
        for node in nodes:
            node.start()
    return net


# ---------------------------------------------------------------- scenarios

SCENARIOS = ("static", "failures", "churn", "partition")


def make_graph(topology: str, n: int, degree: float, rng: random.Random
               ) -> tuple[Graph, list[tuple[float, float]] | None]:
    if topology == "line":
        return line(n), None
    if topology == "grid":
        return grid(n), None
    if topology == "disk":
        return unit_disk(n, degree, rng)
    raise ValueError(f"unknown topology {topology!r}: use disk, grid or line")


def run_scenario(name: str, n: int, topology: str = "disk", degree: float = 8.0, seed: int = 1,
                 pairs: int = 200, fail_fraction: float = 0.1, settle: float = 120.0,
                 cfg: Config | None = None, log=None) -> dict[str, object]:
    """Run one scenario and return its metrics (a flat dict)."""
    if name not in SCENARIOS:
        raise ValueError(f"unknown scenario {name!r}: use one of {', '.join(SCENARIOS)}")
    wall0 = time.perf_counter()
    rng = random.Random(seed)
    g, pos = make_graph(topology, n, degree, rng)
    if name == "partition":
        g, pos, bridge = _two_halves(g, pos, n, topology, degree, rng)
    net = build(g, seed=seed, cfg=cfg, pos=pos, start=False)
    res: dict[str, object] = {"scenario": name, "topology": topology, "n": n,
                              "degree": round(sum(len(s) for s in g) / n, 2), "seed": seed}
    if name == "partition":
        for u, v in bridge:
            net.medium.cut(u, v)
    for node in net.nodes:
        node.start()
    conv = net.run_until_converged(settle, log=log)
    res["converge_s"] = conv
    ctl0 = net.control_messages()
    hel0 = net.hello_messages()
    t0 = net.rt.now()
    p = net.probe(pairs, rng)
    res["delivery"] = round(p["ratio"], 4)
    res["stretch"] = round(p["stretch"], 3)
    if name == "failures":
        alive = sorted(net.alive)
        victims = rng.sample(alive, max(1, int(fail_fraction * n)))
        for v in victims:
            net.kill(v)
        res["failed"] = len(victims)
        res["delivery_during"] = round(net.probe(pairs, rng, wait=1.0)["ratio"], 4)
        res["heal_s"] = net.run_until_converged(settle)
        p = net.probe(pairs, rng)
        res["delivery_after"] = round(p["ratio"], 4)
        res["stretch_after"] = round(p["stretch"], 3)
    elif name == "churn":
        # every second one live node fails and one failed node returns (fresh state)
        dead: list[int] = []
        ratios = []
        for _ in range(int(settle // 4) or 1):
            for _ in range(max(1, n // 100)):
                v = rng.choice(sorted(net.alive))
                net.kill(v)
                dead.append(v)
                if len(dead) > max(1, n // 50):
                    net.revive(dead.pop(0))
            ratios.append(net.probe(max(10, pairs // 10), rng, wait=1.0)["ratio"])
            net.rt.run(until=net.rt.now() + 3.0)
        res["delivery_churn"] = round(sum(ratios) / len(ratios), 4)
        for v in dead:
            net.revive(v)
        res["heal_s"] = net.run_until_converged(settle)
        res["delivery_after"] = round(net.probe(pairs, rng)["ratio"], 4)
    elif name == "partition":
        for u, v in bridge:
            net.medium.restore(u, v)
        res["merge_s"] = net.run_until_converged(settle * 2)
        res["delivery_joined"] = round(net.probe(pairs, rng)["ratio"], 4)
        for u, v in bridge:
            net.medium.cut(u, v)
        res["split_s"] = net.run_until_converged(settle)
        res["delivery_split"] = round(net.probe(pairs, rng)["ratio"], 4)
    mean, mx = net.table_sizes()
    res["rt_mean"] = round(mean, 1)
    res["rt_max"] = mx
    res["ctl_per_node"] = round(net.control_messages() / n, 1)
    res["hello_per_node"] = round(net.hello_messages() / n, 1)
    res["ctl_nonhello_per_node"] = round((net.control_messages() - net.hello_messages()) / n, 1)
    res["sim_s"] = round(net.rt.now(), 1)
    res["events"] = net.rt.events_run
    res["frames"] = net.medium.frames
    res["wall_s"] = round(time.perf_counter() - wall0, 1)
    del t0, ctl0, hel0
    res["_net"] = net
    return res


def _two_halves(g: Graph, pos, n: int, topology: str, degree: float, rng: random.Random):
    """Split a graph into two connected halves joined by bridge edges (the ones we cut).

    Disk graphs split at x = 0.5; stray pieces of the left half join the right one. If
    the right half is still not connected a new graph is drawn; lines and grids split
    by index.
    """
    for _ in range(20):
        if pos is not None:
            left0 = {i for i in range(n) if pos[i][0] < 0.5}
            comps = components(g, left0)
            left = max(comps, key=len) if comps else set()
        else:
            left = set(range(n // 2))
        right = set(range(n)) - left
        if left and right and len(components(g, right)) == 1 and len(components(g, left)) == 1:
            bridge = sorted({(min(u, v), max(u, v)) for u in left for v in g[u] if v in right})
            return g, pos, bridge
        g, pos = make_graph(topology, n, degree, rng)
    raise RuntimeError("could not split the graph into two connected halves")
