"""The VRR node engine (sans-IO): pset, vset, routing table of vset-paths, forwarding.

One `VrrNode` owns one or more `Port`s (one per link-layer segment) and uses a
`Runtime` for time and randomness. Frames are VRR messages on Ethertype 0x886F
(vnet.wire.vrr). Protocol state follows the VRR design (see docs/vrr.md):

* pset: neighbours heard in hellos, a 2-way state machine (pending -> linked),
  admission gated by a hello-sequence link-quality estimate with hysteresis;
* vset: the r/2 closest active ids on each side of our id on the ring;
* rt: one entry per vset-path crossing us, keyed by (endpoint A, path id);
* NextHop: the candidate (us, linked active neighbours, rt endpoints) closest
  to the destination; ties go to the candidate clockwise of the destination.

Extensions beyond the paper are marked "ext:" in comments.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from vnet.link.port import Port
from vnet.runtime.base import Runtime, Timer
from vnet.vrr.security import MAC_LEN, NetworkKey, ReplayWindow
from vnet.wire import vrr as W
from vnet.wire.errors import WireError

M = W.ADDR_SPACE
HALF = M >> 1

# pset states
UNKNOWN, PENDING, LINKED, FAILED = 0, 1, 2, 3
STATE_NAMES = {UNKNOWN: "unknown", PENDING: "pending", LINKED: "linked", FAILED: "failed"}
# hello transition table: T[state][trans], trans 0 = linked, 1 = pending, 2 = missing
_T = {
    LINKED: (LINKED, LINKED, FAILED),
    PENDING: (LINKED, LINKED, PENDING),
    FAILED: (FAILED, PENDING, PENDING),
    UNKNOWN: (FAILED, LINKED, PENDING),
}


def dist(a: int, b: int) -> int:
    d = (a - b) % M
    return d if d <= HALF else M - d


def closer(a: int, b: int, key: int) -> bool:
    """Is `a` strictly closer to `key` than `b` under the network-wide tie-break?

    Distance is symmetric ring distance; on a tie the candidate clockwise of the
    key (the successor) wins.
    """
    da, db = dist(a, key), dist(b, key)
    if da != db:
        return da < db
    return (a - key) % M < (b - key) % M


@dataclass
class Config:
    r: int = 4  # vset size (r/2 per side)
    hello_interval: float = 1.0
    hello_jitter: float = 0.1  # fraction of the interval
    fail_hellos: float = 3.5  # neighbour failed after this many silent intervals
    gc_hellos: float = 10.0  # failed neighbour forgotten after this many intervals
    q_up: float = 0.75  # link quality needed to become linked
    q_down: float = 0.5  # link quality below which a linked neighbour fails (hysteresis)
    q_window: int = 16  # hellos in the quality window
    active_timeout: float = 3.0  # intervals without an active neighbour before self-activation
    hop_limit: int = 1024  # vset-paths exceed 64 hops at N = 1000 and 255 at N = 10,000
    max_routes: int = 16384  # N = 10,000 unit-disk: the busiest node held 4096 paths and refused more
    max_pset: int = 256
    req_backoff: float = 1.0  # ext: seconds before the same setup_req may be sent again
    probe_hellos: float = 10.0  # ext: ring probe (setup_req to own id) period; 0 = off
    rep_hellos: float = 6.0  # representative validity, in intervals
    # ext: while unsure, a round runs every 2 intervals; these thin it out (measured at
    # N = 1000-3000, results-vrr.md): most vset exchanges with members teach nothing
    refresh_span: int = 1  # vset members per side to exchange vsets with in a round
    refresh_every: int = 4  # exchange vsets every this many rounds
    probe_every: int = 2  # probe (setup_req to our own id) every this many rounds
    hints: bool = True  # answers also list the responder's candidates near the requester
    referrals: bool = True  # pass a request on to hints that belong in the requester's vset


class Nbr:
    __slots__ = ("addr", "port", "mac", "state", "active", "last", "bits", "top", "first",
                 "rep", "rep_seq", "linked_cand")

    def __init__(self, addr: int, port: int, mac: bytes) -> None:
        self.addr = addr
        self.port = port
        self.mac = mac
        self.state = UNKNOWN
        self.active = False
        self.last = 0.0
        self.bits = 0  # hello reception bitmap (bit 0 = hello `top`)
        self.top = -1  # highest hello sequence seen
        self.first = 0  # first hello sequence seen
        self.rep = 0
        self.rep_seq = 0
        self.linked_cand = False  # counted in the candidate list

    def quality(self, window: int) -> float:
        span = min(window, self.top - self.first + 1)
        if span <= 0:
            return 0.0
        return (self.bits & ((1 << span) - 1)).bit_count() / span


class Route:
    __slots__ = ("ea", "eb", "na", "nb", "pid")

    def __init__(self, ea: int, eb: int, na: int | None, nb: int | None, pid: int) -> None:
        self.ea, self.eb, self.na, self.nb, self.pid = ea, eb, na, nb, pid


STAT_NAMES = (
    "rx", "tx", "rx_bad", "rx_other", "rx_unknown_sender", "rx_auth_fail", "rx_replay",
    "rx_unauth", "rx_decrypt_fail", "hop_limit_drops", "no_route", "rt_full", "pset_full",
    "loops", "hello_tx", "setup_req_tx", "setup_tx", "setup_fail_tx", "teardown_tx",
    "data_tx", "data_fwd", "data_rx", "dht_tx", "joins", "self_activations", "repairs",
    "tx_ctl", "rate_limited", "referrals",
)


class VrrNode:
    def __init__(self, rt: Runtime, addr: int, ports: list[Port], macs: list[bytes] | None = None,
                 config: Config | None = None, key: NetworkKey | None = None) -> None:
        if not 0 <= addr < M:
            raise ValueError(f"virtual address {addr} is not 48 bits")
        self.rt = rt
        self.addr = addr
        self.me6 = addr.to_bytes(6, "big")
        self.ports = ports
        self.macs = macs if macs is not None else [self.me6] * len(ports)
        self.cfg = config or Config()
        self.key = key
        self.active = False
        self.pset: dict[int, Nbr] = {}
        self.vset: set[int] = set()
        self.routes: dict[tuple[int, int], Route] = {}
        self._by_end: dict[int, dict[tuple[int, int], Route]] = {}  # far endpoint -> routes
        self._by_nh: dict[int, dict[tuple[int, int], Route]] = {}  # next hop -> routes
        self._cand: list[int] = [addr]  # sorted forwarding candidates (with refcounts below)
        self._cand_n: dict[int, int] = {addr: 1}
        self._next_pid = rt.rng.randrange(1, 1 << 31)
        self._seq = rt.rng.randrange(0, 1 << 20)  # per-hop sequence number (replay window)
        self._hello_seq = 0
        self._seal_ctr = rt.rng.randrange(0, 1 << 32)
        self._req_sent: dict[int, float] = {}
        self._referred: dict[int, float] = {}  # requester -> when we last referred it
        self._replay = ReplayWindow(self.cfg.max_pset * 2)
        self.rep = 0  # current representative (0 = none)
        self.rep_seq = 0
        self.rep_expire = 0.0
        self._my_rep_seq = 0
        self.cand = addr  # boot: the smallest id heard from inactive neighbours (leader)
        self._cand_seen = 0.0
        self._probe_gap = 0.0
        self._probe_vset: frozenset[int] = frozenset()
        self._round = 0
        self._unsure = True  # ext: the last vset exchange showed an inconsistency
        self.rep_parent: int | None = None  # neighbour we heard the current rep from
        self._last_merge = -1e9
        self._rep_hist: dict[int, int] = {}  # rep id -> newest sequence seen (bounded)
        self._started = 0.0
        self._last_probe = 0.0
        self._timer: Timer | None = None
        self.running = False
        self.stats = dict.fromkeys(STAT_NAMES, 0)
        # hooks: data for this node (origin, next_header, payload, hops); DHT messages
        self.on_data: Callable[[int, int, bytes, int], None] | None = None
        self.on_dht: Callable[[int, int, bytes], None] | None = None
        self.on_vset_change: Callable[[set[int], set[int]], None] | None = None
        for i, p in enumerate(ports):
            p.owner = self
            p.receive = partial(self.receive, i)  # no Python frame per received frame

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.running = True
        self._started = self.rt.now()
        self._timer = self.rt.call_later(self.rt.rng.random() * self.cfg.hello_interval, self._tick)

    def stop(self) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ candidates / NextHop
    def _cand_add(self, a: int) -> None:
        n = self._cand_n.get(a)
        if n is None:
            self._cand_n[a] = 1
            bisect.insort(self._cand, a)
        else:
            self._cand_n[a] = n + 1

    def _cand_del(self, a: int) -> None:
        n = self._cand_n[a]
        if n == 1:
            del self._cand_n[a]
            c = self._cand
            del c[bisect.bisect_left(c, a)]
        else:
            self._cand_n[a] = n - 1

    def closest(self, key: int, exclude: int | None = None,
                skip: frozenset[int] | set[int] | None = None) -> int:
        """The candidate closest to `key` (tie-break: clockwise of key).

        `exclude` (one id) and `skip` (a few ids) are never chosen; -1 if nothing is left.
        """
        c = self._cand
        n = len(c)
        i = bisect.bisect_left(c, key)
        if skip is None and n > 2:
            # hot path: the best candidate is one of the two around the insertion point
            # (or the next one out when that one is excluded)
            a = c[i % n]
            if a == exclude:
                a = c[(i + 1) % n]
            b = c[i - 1]
            if b == exclude:
                b = c[i - 2]
            da = (a - key) % M
            db = (key - b) % M  # b is counter-clockwise of key: distance going back
            da2 = da if da <= HALF else M - da
            db2 = db if db <= HALF else M - db
            if da2 != db2:
                return a if da2 < db2 else b
            return a if da <= (b - key) % M else b
        best = -1
        # the closest candidate on each side is next to the insertion point; walk
        # outwards past excluded ids (at most len(skip) + 1 of them per side)
        reach = 2 + (len(skip) if skip else 0)
        for side in (0, 1):
            for k in range(min(reach, n)):
                a = c[(i + k) % n] if side == 0 else c[(i - 1 - k) % n]
                if a == exclude or (skip and a in skip):
                    continue
                if best < 0 or closer(a, best, key):
                    best = a
                break
        return best

    def next_hop(self, dst: int, exclude: int | None = None,
                 skip: frozenset[int] | set[int] | None = None) -> int | None:
        """The neighbour to forward to, or None when this node is the closest it knows."""
        e = self.closest(dst, exclude, skip)
        if e == self.addr or e < 0:
            return None
        nb = self.pset.get(e)
        if nb is not None and nb.linked_cand:
            return e
        routes = self._by_end.get(e)
        best: Route | None = None
        for r in routes.values():  # type: ignore[union-attr]
            if best is None or r.pid < best.pid:
                best = r
        assert best is not None
        return best.na if e == best.ea else best.nb

    # ------------------------------------------------------------------ sending
    def _frame(self, nbr_mac: bytes, port: int, typ: int, flags: int, hl: int, nh: int, dst: int,
               origin: int, body: bytes) -> bytes:
        self._seq = (self._seq + 1) & 0xFFFFFFFF
        if self.key is not None:
            flags |= W.F_AUTH
            f = W.build(nbr_mac, self.macs[port], typ, flags, hl, nh, self._seq, dst, origin,
                        self.addr, body)
            return f + self.key.mac(f[W.ETH_HLEN:])
        return W.build(nbr_mac, self.macs[port], typ, flags, hl, nh, self._seq, dst, origin,
                       self.addr, body)

    def _send_to(self, n: int, typ: int, flags: int, hl: int, nh: int, dst: int, origin: int,
                 body: bytes) -> bool:
        nb = self.pset.get(n)
        if nb is None or nb.state != LINKED:
            self.stats["no_route"] += 1
            return False
        self.stats["tx"] += 1
        if typ != W.DATA and typ != W.DHT:
            self.stats["tx_ctl"] += 1
        self.ports[nb.port].send(self._frame(nb.mac, nb.port, typ, flags, hl, nh, dst, origin, body))
        return True

    def _forward(self, frame: bytes, n: int, typ: int, flags: int, hl: int, length: int, nh: int,
                 dst: int, origin: int) -> bool:
        """Re-send a received message to neighbour n with a new hop header."""
        nb = self.pset.get(n)
        if nb is None or nb.state != LINKED:
            self.stats["no_route"] += 1
            return False
        body = frame[W.OFF:W.ETH_HLEN + length]
        self.stats["tx"] += 1
        if typ != W.DATA and typ != W.DHT:
            self.stats["tx_ctl"] += 1
        self.ports[nb.port].send(self._frame(nb.mac, nb.port, typ, flags & ~W.F_AUTH, hl, nh, dst,
                                             origin, body))
        return True

    # ------------------------------------------------------------------ receive path
    def receive(self, port: int, frame: bytes) -> None:
        if not self.running:
            return
        st = self.stats
        if len(frame) < 14 or frame[12] != 0x88 or frame[13] != 0x6F:
            st["rx_other"] += 1
            return
        try:
            typ, flags, hl, length, nh, seq, dst, origin, hop = W.parse(frame)
            if self.key is not None:
                if not flags & W.F_AUTH:
                    st["rx_unauth"] += 1
                    return
                end = W.ETH_HLEN + length
                if not self.key.check(frame[W.ETH_HLEN:end], frame[end:end + MAC_LEN]):
                    st["rx_auth_fail"] += 1
                    return
                if not self._replay.accept(hop, seq):
                    st["rx_replay"] += 1
                    return
            elif flags & W.F_AUTH:
                st["rx_unauth"] += 1  # secured network, and we have no key
                return
            st["rx"] += 1
            if hop == self.addr:
                st["loops"] += 1  # our own frame came back (a bridged loop)
                return
            if typ == W.HELLO:
                self._rx_hello(port, frame, flags, length, hop)
                return
            nb = self.pset.get(hop)
            if nb is None or nb.state != LINKED:
                st["rx_unknown_sender"] += 1
                return
            if typ == W.DATA or typ == W.DHT:
                self._rx_data(frame, typ, flags, hl, length, nh, dst, origin, hop)
            elif typ == W.MERGE:
                self._rx_merge(dst, hl)
            elif typ == W.TEARDOWN:
                ea, pid, vset = W.parse_path(frame, length)
                self._rx_teardown(ea, pid, vset, hop)
            else:
                # the list is decoded only where it is used (at the ends of the message's
                # trip, or for a request's skip set), not at every hop
                proxy, pid, nv = W.parse_path_head(frame, length)
                vset = W.path_vset(frame, nv) if typ == W.SETUP_REQ and dst == origin else None
                if hl == 0:
                    st["hop_limit_drops"] += 1
                    return
                if typ == W.SETUP_REQ:
                    self._rx_setup_req(frame, flags, hl - 1, length, dst, origin, proxy, vset, hop)
                elif typ == W.SETUP:
                    self._rx_setup(origin, dst, pid, proxy, [], hop, hl - 1, frame, length)
                else:
                    self._rx_setup_fail(frame, flags, hl - 1, length, origin, dst, proxy,
                                        vset or [], hop)
        except WireError:
            st["rx_bad"] += 1

    # ------------------------------------------------------------------ hellos and pset
    def _tick(self) -> None:
        if not self.running:
            return
        cfg = self.cfg
        iv = cfg.hello_interval
        now = self.rt.now()
        self._timer = self.rt.call_later(iv * (1 + cfg.hello_jitter * (2 * self.rt.rng.random() - 1)),
                                         self._tick)
        # failure detection and garbage collection
        dead = now - cfg.fail_hellos * iv
        gone = now - cfg.gc_hellos * iv
        for nb in list(self.pset.values()):
            if nb.last < dead and nb.state != FAILED:
                self._set_state(nb, FAILED)
            elif nb.state == FAILED and nb.last < gone:
                del self.pset[nb.addr]
                self._replay.forget(nb.addr)
        self._update_rep(now)
        if not self.active:
            act = [nb for nb in self.pset.values() if nb.state == LINKED and nb.active]
            if act:
                self._join(act[self.rt.rng.randrange(len(act))])
            else:
                # ext: inactive nodes flood the smallest id they hear; only a node that
                # heard of nobody smaller starts a ring alone (others wait to join it),
                # unless nothing happens for much longer (a stale candidate)
                if self.cand != self.addr and now - self._cand_seen > cfg.fail_hellos * 2 * iv:
                    self.cand = self.addr
                waited = now - self._started
                base = cfg.active_timeout * iv
                if (self.cand == self.addr and waited >= base * (1 + self.rt.rng.random())
                        or waited >= 10 * base * (1 + self.rt.rng.random())):
                    self.active = True
                    self.stats["self_activations"] += 1
        else:
            # ext: probe the ring (setup_req to our own id) while the vset is short, and
            # now and then anyway, so rings that met without a merge notice each other
            # ext: maintenance probes back off while the vset stays the same
            base = cfg.probe_hellos * iv
            if self._probe_gap <= 0:
                self._probe_gap = base
            # ext: while our vset is short, changed since the last round, or a member's
            # answer did not list us (an inconsistent ring), look again every 2 intervals
            unsure = len(self.vset) < cfg.r or self._unsure
            if base > 0 and (now - self._last_probe >= (2 * iv if unsure else self._probe_gap)
                             * (1 + 0.5 * self.rt.rng.random())):
                vs = frozenset(self.vset)
                self._probe_gap = (min(self._probe_gap * 2, 16 * base)
                                   if vs == self._probe_vset and not unsure else base)
                self._unsure = vs != self._probe_vset
                self._probe_vset = vs
                self._last_probe = now
                self._round += 1
                if len(self.vset) < cfg.r or self._round % cfg.probe_every == 0:
                    self._probe()
                if self._round % cfg.refresh_every == 0:
                    self._refresh()
                if self.rep and self.rep != self.addr:
                    # ext: route a check to the representative's id; if it ends anywhere
                    # but the rep, the ring winds more than once (or is split): merge
                    self.send_data(self.rep, W.NH_REPCHECK, b"")
        self._send_hellos()

    def _send_hellos(self) -> None:
        cfg = self.cfg
        self._hello_seq += 1
        flags = W.F_ACTIVE if self.active else 0
        rep, rseq = (self.rep, self.rep_seq) if self.rep else (0, 0)
        if rep:
            flags |= W.F_REP
        elif not self.active:
            rep, rseq = self.cand, 0
            flags |= W.F_CAND
        per_port: list[list[tuple[int, int, int]]] = [[] for _ in self.ports]
        for nb in self.pset.values():
            if nb.state == LINKED or nb.state == PENDING:
                q = int(nb.quality(cfg.q_window) * 255)
                per_port[nb.port].append((nb.addr, W.NS_LINKED if nb.state == LINKED else
                                           W.NS_PENDING, q))
        for i, port in enumerate(self.ports):
            body = W.hello_body(self._hello_seq, rep, rseq, per_port[i])
            self.stats["hello_tx"] += 1
            self.stats["tx"] += 1
            self.stats["tx_ctl"] += 1
            port.send(self._frame(W.BROADCAST, i, W.HELLO, flags, 1, 0, 0, self.addr, body))

    def _rx_hello(self, port: int, frame: bytes, flags: int, length: int, hop: int) -> None:
        hseq, rep, rseq, n = W.parse_hello(frame, length)
        nb = self.pset.get(hop)
        if nb is None:
            if len(self.pset) >= self.cfg.max_pset:
                self.stats["pset_full"] += 1
                return
            nb = Nbr(hop, port, bytes(frame[6:12]))
            nb.first = hseq
            self.pset[hop] = nb
        elif nb.port != port or nb.mac != frame[6:12]:
            nb.port = port
            nb.mac = bytes(frame[6:12])
        nb.last = self.rt.now()
        # link quality: a bitmap over the neighbour's hello sequence numbers
        if nb.top < 0:
            nb.bits, nb.top = 1, hseq
        elif hseq > nb.top:
            sh = hseq - nb.top
            nb.bits = ((nb.bits << sh) | 1) & 0xFFFFFFFF if sh < 32 else 1
            nb.top = hseq
        elif hseq < nb.top - 1000:  # the neighbour restarted
            nb.bits, nb.top, nb.first = 1, hseq, hseq
        else:
            nb.bits |= 1 << (nb.top - hseq) if nb.top - hseq < 32 else 0
        was_active = nb.active
        nb.active = bool(flags & W.F_ACTIVE)
        code = W.hello_state_of(frame, n, self.me6)
        trans = 0 if code == W.NS_LINKED else 1 if code == W.NS_PENDING else 2
        new = _T[nb.state][trans]
        q = nb.quality(self.cfg.q_window)
        if new == LINKED and nb.state != LINKED and q < self.cfg.q_up:
            new = PENDING  # hysteresis: not linked until the link is good enough
        elif nb.state == LINKED and new == LINKED and q < self.cfg.q_down:
            new = FAILED
        if new != nb.state:
            self._set_state(nb, new)
        elif was_active != nb.active and nb.state == LINKED:
            self._refresh_cand(nb)
        if flags & W.F_REP and rep:
            self._hear_rep(nb, rep, rseq)
        elif flags & W.F_CAND and not self.active and rep <= self.cand:
            self.cand = rep
            self._cand_seen = self.rt.now()
        if not self.active and nb.state == LINKED and nb.active and not was_active:
            self._join(nb)

    def _refresh_cand(self, nb: Nbr) -> None:
        want = nb.state == LINKED and nb.active
        if want and not nb.linked_cand:
            nb.linked_cand = True
            self._cand_add(nb.addr)
        elif not want and nb.linked_cand:
            nb.linked_cand = False
            self._cand_del(nb.addr)

    def _set_state(self, nb: Nbr, new: int) -> None:
        old = nb.state
        nb.state = new
        self._refresh_cand(nb)
        if old == LINKED and new != LINKED:
            self._neighbour_failed(nb.addr)
        elif new == LINKED and not self.active and nb.active:
            self._join(nb)
        if new == LINKED and old != LINKED:
            self._probe_gap = 0.0  # a new link may join two rings: look again soon

    def _neighbour_failed(self, n: int) -> None:
        for key, r in list(self._by_nh.get(n, {}).items()):
            if key in self.routes:
                self._teardown_path(r.pid, r.ea, n)

    # ------------------------------------------------------------------ representatives
    def _update_rep(self, now: int | float) -> None:
        iv = self.cfg.hello_interval
        if self.active and (not self.vset or self.addr < min(self.vset)):
            self._my_rep_seq += 1
            if (self.rep and self.rep < self.addr and now <= self.rep_expire
                    and self.rep_parent is not None and now - self._last_merge >= 2 * iv):
                # we lead a ring, yet a smaller representative is alive: two rings share
                # the network. Walk towards it; every hop re-joins via the next one, so
                # the hop that crosses from our ring into the other one merges them.
                self._last_merge = now
                self._rx_merge(self.rep, self.cfg.hop_limit)
            if not self.rep or self.rep >= self.addr or now > self.rep_expire:
                self.rep, self.rep_seq = self.addr, self._my_rep_seq
                self.rep_expire = now + self.cfg.rep_hellos * iv
        elif self.rep == self.addr or (self.rep and now > self.rep_expire):
            self.rep = 0

    def _hear_rep(self, nb: Nbr, rep: int, rseq: int) -> None:
        now = self.rt.now()
        nb.rep, nb.rep_seq = rep, rseq
        if rseq <= self._rep_hist.get(rep, -1):
            return  # nothing new: stale announcements must not keep a dead rep alive
        if len(self._rep_hist) >= 64:
            self._rep_hist.pop(next(iter(self._rep_hist)))
        self._rep_hist[rep] = rseq
        if rep == self.rep:
            if rseq > self.rep_seq:
                self.rep_seq = rseq
                self.rep_parent = nb.addr if rep != self.addr else None
                self.rep_expire = now + self.cfg.rep_hellos * self.cfg.hello_interval
            return
        if self.rep and rep > self.rep and now <= self.rep_expire:
            return
        had = self.rep
        self.rep, self.rep_seq = rep, rseq
        self.rep_parent = nb.addr
        if had != rep:
            self._probe_gap = 0.0  # the network changed: probe and check the ring again soon
        self.rep_expire = now + self.cfg.rep_hellos * self.cfg.hello_interval
        if had and had != rep and self.active and nb.state == LINKED and nb.active:
            # a smaller representative arrived: maybe another ring. Join it through the
            # neighbour that told us; the vset exchange then stitches the rings together.
            self._send_setup_req(self.addr, nb.addr, force=True)

    def _repcheck_end(self, rep: int) -> None:
        now = self.rt.now()
        if (rep != self.addr and rep == self.rep and now <= self.rep_expire
                and now - self._last_merge >= 2 * self.cfg.hello_interval):
            self._last_merge = now
            self._rx_merge(rep, self.cfg.hop_limit)

    def _rx_merge(self, rep: int, hl: int) -> None:
        if rep != self.rep or rep == self.addr or hl <= 1 or not self.active:
            return
        p = self.rep_parent
        if p is None or p not in self.pset or not self.pset[p].linked_cand:
            return
        self._send_setup_req(self.addr, p, force=True)
        self._send_to(p, W.MERGE, 0, hl - 1, 0, rep, self.addr, b"")

    # ------------------------------------------------------------------ vset
    def _window(self, ids: set[int], me: int | None = None) -> set[int]:
        """The ids of `ids` that belong in a vset: r/2 closest on each side of us (or of `me`)."""
        h = self.cfg.r // 2
        if me is None:
            me = self.addr
        cw = sorted(ids, key=lambda a: (a - me) % M)
        return set(cw[:h]) | set(cw[-h:] if len(cw) >= h else cw)

    def should_add(self, a: int) -> bool:
        if a == self.addr or a in self.vset:
            return False
        return a in self._window(self.vset | {a})

    def _add(self, src: int | None, vset2: list[int]) -> bool:
        cands = set(vset2)
        cands.discard(self.addr)
        cands -= self.vset
        if cands:
            # ext: learned ids compete with each other and with requests in flight, so a
            # node with a short vset asks only the best few it knows of, not everyone
            now = self.rt.now()
            back = self.cfg.req_backoff
            pending = {a for a, t in self._req_sent.items() if now - t < back}
            pending.discard(self.addr)
            win = self._window(self.vset | cands | pending)
            for a in sorted(cands & win):
                if not self.should_add(a):
                    continue
                if self._has_path_to(a):
                    self._insert(a)  # ext: a path already exists, no need for a new one
                else:
                    self._send_setup_req(a)
        if src is None:
            return False
        if src in self.vset:
            return True  # ext: already a member (e.g. its old path broke): keep both paths
        if not self.should_add(src):
            return False
        self._insert(src)
        return True

    def _insert(self, src: int) -> None:
        old = set(self.vset)
        self.vset.add(src)
        keep = self._window(self.vset)
        evicted = self.vset - keep
        self.vset = keep
        for a in evicted:
            self._teardown_paths_to(a)
        if self.on_vset_change is not None:
            self.on_vset_change(old, set(self.vset))

    def _remove_vset(self, a: int) -> None:
        if a in self.vset:
            old = set(self.vset)
            self.vset.discard(a)
            if self.on_vset_change is not None:
                self.on_vset_change(old, set(self.vset))

    def _teardown_paths_to(self, a: int) -> None:
        for r in list(self._by_end.get(a, {}).values()):
            if (r.ea == self.addr and r.na is None) or (r.eb == self.addr and r.nb is None):
                self._teardown_path(r.pid, r.ea, None)

    # ------------------------------------------------------------------ routing table
    def _rt_add(self, r: Route) -> bool:
        key = (r.ea, r.pid)
        if key in self.routes:
            return False
        if len(self.routes) >= self.cfg.max_routes:
            self.stats["rt_full"] += 1
            return False
        self.routes[key] = r
        for e in (r.ea, r.eb):
            if e != self.addr:
                self._by_end.setdefault(e, {})[key] = r
                self._cand_add(e)
        for n in (r.na, r.nb):
            if n is not None:
                self._by_nh.setdefault(n, {})[key] = r
        return True

    def _rt_remove(self, pid: int, ea: int) -> Route | None:
        key = (ea, pid)
        r = self.routes.pop(key, None)
        if r is None:
            return None
        for e in (r.ea, r.eb):
            if e != self.addr:
                d = self._by_end[e]
                del d[key]
                if not d:
                    del self._by_end[e]
                self._cand_del(e)
        for n in (r.na, r.nb):
            if n is not None:
                d = self._by_nh.get(n)
                if d is not None:
                    d.pop(key, None)
                    if not d:
                        del self._by_nh[n]
        return r

    def _new_pid(self) -> int:
        while True:
            self._next_pid = (self._next_pid + 1) & 0x7FFFFFFF or 1
            if (self.addr, self._next_pid) not in self.routes:
                return self._next_pid

    def _vlist(self) -> list[int]:
        return sorted(self.vset)

    def _teardown_path(self, pid: int, ea: int, sender: int | None) -> None:
        r = self._rt_remove(pid, ea)
        if r is None:
            return
        vs = self._vlist() if sender is None else None
        body = W.path_body(ea, pid, vs)
        flags = W.F_VSET if vs is not None else 0
        for n in {r.na, r.nb, sender}:
            if n is not None and n in self.pset and self.pset[n].state == LINKED:
                self.stats["teardown_tx"] += 1
                self._send_to(n, W.TEARDOWN, flags, self.cfg.hop_limit, 0, 0, self.addr, body)
        if sender is None and (r.na is None or r.nb is None):
            other = r.eb if r.na is None else r.ea
            if other != self.addr and other in self.vset and not self._has_path_to(other):
                self._remove_vset(other)  # a path we built went nowhere
        if sender is not None and (r.na is None or r.nb is None):
            # we are an endpoint of a path broken by a failure: repair it
            other = r.eb if r.na is None else r.ea
            if other == self.addr:
                return
            if not self._has_path_to(other):
                self._remove_vset(other)
                self.stats["repairs"] += 1
                self._send_setup_req(other, force=True)

    def _has_path_to(self, a: int) -> bool:
        for r in self._by_end.get(a, {}).values():
            if (r.ea == self.addr and r.na is None) or (r.eb == self.addr and r.nb is None):
                return True
        return False

    # ------------------------------------------------------------------ setup messages
    def _pick_proxy(self) -> int | None:
        act = [nb.addr for nb in self.pset.values() if nb.linked_cand]
        if not act:
            return None
        act.sort()
        return act[self.rt.rng.randrange(len(act))]

    def _join(self, nb: Nbr) -> None:
        if self._send_setup_req(self.addr, nb.addr):
            self.stats["joins"] += 1

    def _refresh(self) -> None:
        # ext: exchange vsets with each vset member along the existing path (a setup_req
        # that the member answers with setup_fail + its vset): neighbours introduce their
        # neighbours to each other, which repairs rings that formed with gaps
        cw, ccw = self.ring_neighbours()
        for v in sorted(set(cw[:self.cfg.refresh_span]) | set(ccw[:self.cfg.refresh_span])):
            first = self.next_hop(v)
            if first is not None:
                self._send_setup_req(v, first, force=True)

    def _probe(self) -> None:
        self._send_setup_req(self.addr, force=True)

    def _send_setup_req(self, dst: int, proxy: int | None = None, force: bool = False) -> bool:
        now = self.rt.now()
        key = dst
        last = self._req_sent.get(key)
        if last is not None and now - last < self.cfg.req_backoff and not force:
            self.stats["rate_limited"] += 1
            return False
        if len(self._req_sent) > 4 * self.cfg.max_pset:
            cutoff = now - self.cfg.req_backoff
            self._req_sent = {k: t for k, t in self._req_sent.items() if t >= cutoff}
        if proxy is None:
            proxy = self._pick_proxy()
            if proxy is None:
                return False
        self._req_sent[key] = now
        self.stats["setup_req_tx"] += 1
        body = W.path_body(proxy, 0, self._vlist())
        return self._send_to(proxy, W.SETUP_REQ, 0, self.cfg.hop_limit, 0, dst, self.addr, body)

    def _rx_setup_req(self, frame: bytes, flags: int, hl: int, length: int, dst: int, src: int,
                      proxy: int, vset2: list[int] | None, sender: int) -> None:
        if not self.active:
            self.stats["no_route"] += 1
            return
        # ext: a request for the sender's own id (join, rejoin, probe) also skips the
        # sender's current vset members, so it finds the closest node the sender does
        # not know yet; that is what stitches two interleaved rings into one
        skip = set(vset2) if dst == src and vset2 else None
        nh = self.next_hop(dst, exclude=src, skip=skip)
        if nh is not None:
            self._forward(frame, nh, W.SETUP_REQ, flags, hl, length, 0, dst, src)
            return
        old = self._vlist()
        if src == self.addr:
            return
        if vset2 is None and frame is not None:
            vset2 = W.parse_path(frame, length)[2]
        if self.cfg.hints:
            hints = self._hints(src, old, vset2)
            if self.cfg.referrals and vset2 is not None and hints:
                hints = self._refer(src, proxy, vset2, hints)
            old += hints
        if src in self.vset and self._has_path_to(src) and vset2 is not None \
                and self.addr not in vset2:
            # ext: the requester does not count us in its vset, yet we hold a path to it:
            # its end of that path is gone (a lost teardown or setup). Drop our half and
            # build a fresh path, or both sides would retry forever
            self._teardown_paths_to(src)
            self._remove_vset(src)
        if src in self.vset and self._has_path_to(src):
            # a probe or a duplicate request: answer with our vset, build nothing
            self._add(None, vset2 or [])
            self._rx_setup_fail(None, 0, self.cfg.hop_limit, 0, self.addr, src, proxy, old, None)
        elif self._add(src, vset2 or []):
            self._rx_setup(self.addr, src, self._new_pid(), proxy, old, None, self.cfg.hop_limit)
        else:
            self._rx_setup_fail(None, 0, self.cfg.hop_limit, 0, self.addr, src, proxy, old, None)

    def _hints(self, key: int, known: list[int], known2: list[int] | None) -> list[int]:
        """ext: up to r/2 candidates on each side of `key` that the answer does not list yet.

        A responder's vset says who is near the responder; these say who it knows near the
        requester, so a requester whose ring neighbours are wrong learns better ones in one
        round trip instead of walking towards them one vset at a time.
        """
        c = self._cand
        n = len(c)
        h = self.cfg.r // 2
        out: list[int] = []
        i = bisect.bisect_left(c, key)
        for step in (1, -1):
            got = 0
            k = i if step == 1 else i - 1
            for _ in range(min(n, 4 * h + 8)):
                a = c[k % n]
                k += step
                if a == key or a == self.addr or a in known or (known2 and a in known2) or a in out:
                    continue
                out.append(a)
                got += 1
                if got == h:
                    break
        return out

    def _refer(self, src: int, proxy: int, vset2: list[int], hints: list[int]) -> list[int]:
        """ext: pass the request on, in the requester's name, to hints it should hold.

        A node inside a knot of wrong vsets cannot reach a better neighbour by greedy
        routing: the route to that id ends at a node that does not know it either. We
        know a path towards the hint, so the request goes there from here; the hint
        answers the requester directly. At most one hint per side, only hints closer
        to the requester than we are (each referral moves inwards, so chains stop),
        at most once per requester per backoff period. Returns the hints not referred.
        """
        now = self.rt.now()
        last = self._referred.get(src)
        if last is not None and now - last < self.cfg.req_backoff:
            return hints
        if len(self._referred) >= self.cfg.max_pset:
            self._referred.pop(next(iter(self._referred)))
        mine = dist(self.addr, src)
        base = set(vset2)
        out: list[int] = []
        sides: set[bool] = set()
        body: bytes | None = None
        for h in hints:
            cw = (h - src) % M <= HALF
            if cw in sides or dist(h, src) >= mine or h not in self._window(base | {h}, src):
                out.append(h)
                continue
            nh = self.next_hop(h, exclude=src)
            if nh is None:
                out.append(h)
                continue
            if body is None:
                body = W.path_body(proxy, 0, vset2)
            sides.add(cw)
            self._referred[src] = now
            self.stats["referrals"] += 1
            self.stats["setup_req_tx"] += 1
            self._send_to(nh, W.SETUP_REQ, 0, self.cfg.hop_limit, 0, h, src, body)
        return out

    def _setup_nh(self, dst: int, proxy: int) -> int | None:
        if dst == self.addr:
            return None
        nb = self.pset.get(dst)
        if nb is not None and nb.state == LINKED:
            return dst
        n = self.next_hop(proxy)
        if n is None and self.active:
            # ext: the proxy's id is not reachable from here (the ring is still forming):
            # try the requester's own id, which an active requester may already own
            n = self.next_hop(dst)
        return n

    def _rx_setup(self, src: int, dst: int, pid: int, proxy: int, vset2: list[int],
                  sender: int | None, hl: int, frame: bytes | None = None,
                  length: int = 0) -> None:
        nh = self._setup_nh(dst, proxy)
        ok = self._rt_add(Route(src, dst, sender, nh, pid))
        if not ok:
            self.stats["loops"] += 1
            if sender is None and not self._has_path_to(dst):
                self._remove_vset(dst)  # we accepted dst but cannot hold its path
            if sender is not None:
                # duplicate (a loop) or a full table: tear the path down towards the sender
                body = W.path_body(src, pid, None)
                self.stats["teardown_tx"] += 1
                self._send_to(sender, W.TEARDOWN, 0, self.cfg.hop_limit, 0, 0, self.addr, body)
            return
        if nh is not None:
            self.stats["setup_tx"] += 1
            # a received setup goes on with its body as it came (no re-encoding per hop)
            if not (self._forward(frame, nh, W.SETUP, 0, hl, length, 0, dst, src)
                    if frame is not None else
                    self._send_to(nh, W.SETUP, 0, hl, 0, dst, src, W.path_body(proxy, pid, vset2))):
                # the next hop is gone: tear the half-built path down as a failure, so
                # the responder does not keep a vset member whose path ends nowhere
                self._teardown_path(pid, src, nh)
        elif dst == self.addr:
            if frame is not None:
                vset2 = W.parse_path(frame, length)[2] or []
            if self._add(src, vset2):
                if not self.active:
                    self.active = True
            else:
                self._teardown_path(pid, src, None)
        else:
            self._teardown_path(pid, src, None)  # dead end

    def _rx_setup_fail(self, frame: bytes | None, flags: int, hl: int, length: int, src: int,
                       dst: int, proxy: int, vset2: list[int], sender: int | None) -> None:
        nh = self._setup_nh(dst, proxy)
        if nh is not None:
            if nh == sender and nh != dst:
                # ext: it would bounce straight back (a half-torn path between the two of
                # us); an answer caught like this otherwise circles until the hop limit,
                # and the requester asks again anyway
                self.stats["loops"] += 1
                return
            self.stats["setup_fail_tx"] += 1
            if frame is not None:
                self._forward(frame, nh, W.SETUP_FAIL, 0, hl, length, 0, dst, src)
            else:
                self._send_to(nh, W.SETUP_FAIL, 0, hl, 0, dst, src, W.path_body(proxy, 0, vset2))
        elif dst == self.addr:
            if frame is not None:
                vset2 = W.parse_path(frame, length)[2] or []
            if src in self.vset and self.addr not in vset2:
                self._unsure = True  # a member that does not count us: check again soon
            self._add(None, [*vset2, src])

    def _rx_teardown(self, ea: int, pid: int, vset2: list[int] | None, sender: int) -> None:
        r = self.routes.get((ea, pid))
        if r is None or (sender != r.na and sender != r.nb):
            return  # not on this path: removing it here would strand both halves
        self._rt_remove(pid, ea)
        if sender == r.na:
            nxt, other, mine = r.nb, r.ea, r.nb is None
        elif sender == r.nb:
            nxt, other, mine = r.na, r.eb, r.na is None
        else:
            return
        if nxt is not None:
            body = W.path_body(ea, pid, vset2)
            self.stats["teardown_tx"] += 1
            self._send_to(nxt, W.TEARDOWN, W.F_VSET if vset2 is not None else 0,
                          self.cfg.hop_limit, 0, 0, self.addr, body)
            return
        if not mine or other == self.addr:
            return
        if self._has_path_to(other):
            return
        self._remove_vset(other)
        if vset2 is not None:
            self._add(None, vset2)
        else:
            self.stats["repairs"] += 1
            self._send_setup_req(other, force=True)

    # ------------------------------------------------------------------ data and DHT
    def send_data(self, dst: int, nh: int, payload: bytes, typ: int = W.DATA) -> bool:
        """Route a payload to the node closest to `dst`; False if it has nowhere to go."""
        if not self.active:
            self.stats["no_route"] += 1
            return False
        flags = 0
        if self.key is not None:
            self._seal_ctr = (self._seal_ctr + 1) & W.ADDR_MASK
            payload = self.key.seal(self._seal_ctr, typ, nh, dst, self.addr, payload)
            flags = W.F_ENC
        n = self.next_hop(dst)
        if n is None:
            if nh == W.NH_REPCHECK:
                self._repcheck_end(dst)
                return True
            self._deliver(typ, nh, self.addr, payload if not flags else
                          self.key.open(typ, nh, dst, self.addr, payload), 0)  # type: ignore[union-attr]
            return True
        self.stats["data_tx" if typ == W.DATA else "dht_tx"] += 1
        return self._send_to(n, typ, flags, self.cfg.hop_limit, nh, dst, self.addr, payload)

    def _deliver(self, typ: int, nh: int, origin: int, payload: bytes | None, hops: int) -> None:
        if payload is None:
            return
        if typ == W.DATA:
            self.stats["data_rx"] += 1
            if self.on_data is not None:
                self.on_data(origin, nh, payload, hops)
        elif self.on_dht is not None:
            self.on_dht(origin, nh, payload)

    def _rx_data(self, frame: bytes, typ: int, flags: int, hl: int, length: int, nh: int, dst: int,
                 origin: int, hop: int) -> None:
        n = self.next_hop(dst)
        if n is None:
            if nh == W.NH_REPCHECK and typ == W.DATA:
                self._repcheck_end(dst)
                return
            payload = frame[W.OFF:W.ETH_HLEN + length]
            if flags & W.F_ENC:
                if self.key is None:
                    self.stats["rx_decrypt_fail"] += 1
                    return
                payload = self.key.open(typ, nh, dst, origin, payload)
                if payload is None:
                    self.stats["rx_decrypt_fail"] += 1
                    return
            elif self.key is not None:
                self.stats["rx_unauth"] += 1
                return
            self._deliver(typ, nh, origin, bytes(payload), self.cfg.hop_limit - hl + 1)
            return
        if hl <= 1:
            self.stats["hop_limit_drops"] += 1
            return
        if n == hop and dist(hop, dst) >= dist(self.addr, dst):
            self.stats["loops"] += 1  # would bounce straight back: an inconsistent state
            return
        self.stats["data_fwd"] += 1
        self._forward(frame, n, typ, flags, hl - 1, length, nh, dst, origin)

    # ------------------------------------------------------------------ views
    def ring_neighbours(self) -> tuple[list[int], list[int]]:
        """(clockwise, counter-clockwise) vset members, nearest first."""
        me = self.addr
        cw = sorted(self.vset, key=lambda a: (a - me) % M)
        ccw = sorted(self.vset, key=lambda a: (me - a) % M)
        h = self.cfg.r // 2
        return cw[:h], ccw[:h]

    def status(self) -> dict[str, object]:
        return {
            "address": W.addr_to_str(self.addr),
            "active": self.active,
            "vset": [W.addr_to_str(a) for a in sorted(self.vset)],
            "pset": [f"{W.addr_to_str(nb.addr)}({STATE_NAMES[nb.state]}"
                     f"{',active' if nb.active else ''})" for nb in self.pset.values()],
            "routes": len(self.routes),
            "rep": W.addr_to_str(self.rep) if self.rep else None,
        }

    def pset_info(self) -> list[dict[str, object]]:
        now = self.rt.now()
        return [{"address": W.addr_to_str(nb.addr), "state": STATE_NAMES[nb.state],
                 "active": nb.active, "port": nb.port, "mac": W.addr_to_str(W.mac_to_addr(nb.mac)),
                 "quality": round(nb.quality(self.cfg.q_window), 2),
                 "age": round(now - nb.last, 2)} for nb in self.pset.values()]

    def route_info(self) -> list[dict[str, object]]:
        def s(a: int | None) -> str:
            return "-" if a is None else W.addr_to_str(a)
        return [{"ea": s(r.ea), "eb": s(r.eb), "na": s(r.na), "nb": s(r.nb), "pid": r.pid}
                for r in self.routes.values()]
