"""A DHT on the VRR ring: keys are 48-bit ids, owned by the node whose id is closest.

put/get/remove are VRR messages (type DHT) routed to the key; the owner keeps
the primary copy and replicates it on its vset members. When the vset changes
the owner hands keys to a new member that is now closer (STORE) and sends
replicas to new members (REPLICA); a replica holder that finds itself closest
(its owner left) promotes its copy. Tables are bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from vnet.runtime.base import Timer
from vnet.vrr.node import VrrNode, closer
from vnet.wire import vrr as W
from vnet.wire.errors import WireError

OK, MISSING = 0, 1


def key_of(name: str | bytes) -> int:
    """The DHT key of a name: the first 48 bits of its SHA-256."""
    raw = name.encode() if isinstance(name, str) else name
    return int.from_bytes(hashlib.sha256(raw).digest()[:6], "big")


GetCallback = Callable[[bytes | None], None]


class Dht:
    def __init__(self, node: VrrNode, max_entries: int = 4096, max_value: int = 1024,
                 timeout: float = 2.0) -> None:
        self.node = node
        self.rt = node.rt
        self.max_entries = max_entries
        self.max_value = max_value
        self.timeout = timeout
        self.store: dict[int, tuple[bytes, bool]] = {}  # key -> (value, primary?)
        self._pending: dict[int, tuple[GetCallback, Timer]] = {}
        self._req = self.rt.rng.randrange(1, 1 << 31)
        self.stats = {"puts": 0, "gets": 0, "hits": 0, "misses": 0, "timeouts": 0, "stored": 0,
                      "handed_over": 0, "replicas_sent": 0, "full": 0, "bad": 0}
        node.on_dht = self._receive
        node.on_vset_change = self._vset_changed

    # ---------------------------------------------------------------- API
    def put(self, key: int, value: bytes) -> bool:
        if len(value) > self.max_value:
            raise ValueError(f"DHT value of {len(value)} bytes exceeds {self.max_value}")
        self.stats["puts"] += 1
        return self._send(key, W.DHT_PUT, 0, 0, key, value)

    def remove(self, key: int) -> bool:
        return self._send(key, W.DHT_REMOVE, 0, 0, key)

    def get(self, key: int, callback: GetCallback) -> None:
        """Look `key` up; `callback(value or None)` runs once (None: missing or timed out)."""
        self.stats["gets"] += 1
        if self.node.next_hop(key) is None and key in self.store:
            self.rt.call_soon(callback, self.store[key][0])
            return
        self._req = (self._req + 1) & 0x7FFFFFFF or 1
        req = self._req
        if len(self._pending) >= 1024:
            self.rt.call_soon(callback, None)
            return
        timer = self.rt.call_later(self.timeout, self._expire, req)
        self._pending[req] = (callback, timer)
        if not self._send(key, W.DHT_GET, 0, req, key):
            self._expire(req)

    # ---------------------------------------------------------------- internals
    def _send(self, dst: int, op: int, status: int, req: int, key: int, value: bytes = b"") -> bool:
        return self.node.send_data(dst, W.NH_DHT, W.dht_body(op, status, req, key, value), W.DHT)

    def _expire(self, req: int) -> None:
        p = self._pending.pop(req, None)
        if p is not None:
            self.stats["timeouts"] += 1
            p[0](None)

    def _put_local(self, key: int, value: bytes, primary: bool) -> None:
        if key not in self.store and len(self.store) >= self.max_entries:
            # make room by dropping a replica; primaries are never dropped for a new key
            victim = next((k for k, (_, p) in self.store.items() if not p), None)
            if victim is None:
                self.stats["full"] += 1
                return
            del self.store[victim]
        self.store[key] = (value, primary)
        self.stats["stored"] += 1

    def _replicate(self, key: int, value: bytes) -> None:
        for v in sorted(self.node.vset):
            self.stats["replicas_sent"] += 1
            self._send(v, W.DHT_REPLICA, 0, 0, key, value)

    def _receive(self, origin: int, nh: int, payload: bytes) -> None:
        try:
            op, status, req, key, value = W.parse_dht(payload)
        except WireError:
            self.stats["bad"] += 1
            return
        if op == W.DHT_PUT or op == W.DHT_STORE:
            if len(value) > self.max_value:
                self.stats["bad"] += 1
                return
            self._put_local(key, value, True)
            self._replicate(key, value)
        elif op == W.DHT_REPLICA:
            if len(value) <= self.max_value and not (key in self.store and self.store[key][1]):
                self._put_local(key, value, False)
        elif op == W.DHT_GET:
            got = self.store.get(key)
            if got is not None:
                self.stats["hits"] += 1
                self._send(origin, W.DHT_REPLY, OK, req, key, got[0])
            else:
                self.stats["misses"] += 1
                self._send(origin, W.DHT_REPLY, MISSING, req, key)
        elif op == W.DHT_REPLY:
            p = self._pending.pop(req, None)
            if p is not None:
                p[1].cancel()
                p[0](value if status == OK else None)
        elif op == W.DHT_REMOVE:
            had = self.store.pop(key, None)
            if had is not None and had[1]:
                for v in sorted(self.node.vset):
                    self._send(v, W.DHT_REMOVE, 0, 0, key)

    def _vset_changed(self, old: set[int], new: set[int]) -> None:
        # run after the current message: the vset-path to a new member is installed by
        # then, so hand-over messages can follow it
        self.rt.call_soon(self._handover, old)

    def _handover(self, old: set[int]) -> None:
        new = set(self.node.vset)
        added = new - old
        me = self.node.addr
        for key, (value, primary) in list(self.store.items()):
            owner = me
            for v in new:
                if closer(v, owner, key):
                    owner = v
            if owner != me:
                if primary:
                    # a closer node joined: it owns the key now; we keep a replica
                    self.stats["handed_over"] += 1
                    self._send(owner, W.DHT_STORE, 0, 0, key, value)
                    self.store[key] = (value, False)
                continue
            if not primary:
                self.store[key] = (value, True)  # the owner left and we are closest: promote
                self._replicate(key, value)
            else:
                for v in sorted(added):
                    self.stats["replicas_sent"] += 1
                    self._send(v, W.DHT_REPLICA, 0, 0, key, value)
