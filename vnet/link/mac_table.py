"""The switch's forwarding database: (VLAN, MAC) -> port, with aging, anti-flap and a size cap.

Keys are bytes: the 6-byte MAC for VLAN 0 and MAC + 2-byte VID otherwise, so the
common untagged case needs no tuple per frame. Time is a coarse tick (seconds,
advanced by the switch's GC timer) so learning reads no clock per frame.
"""

from __future__ import annotations

from collections import OrderedDict


def key_for(mac: bytes, vlan: int) -> bytes:
    return mac if vlan == 0 else mac + vlan.to_bytes(2, "big")


def split_key(key: bytes) -> tuple[bytes, int]:
    return (key[:6], int.from_bytes(key[6:8], "big") if len(key) == 8 else 0)


class MacTable:
    """Learned entries as key -> [port, last_seen_tick]. Insertion-ordered so eviction is O(1)."""

    def __init__(self, max_entries: int = 65536, expire: float = 100.0,
                 min_persistence: float = 3.0) -> None:
        if max_entries < 1:
            raise ValueError(f"MAC table size must be >= 1, not {max_entries}")
        self.entries: OrderedDict[bytes, list] = OrderedDict()
        self.max_entries = max_entries
        self.expire = expire
        self.min_persistence = min_persistence
        self.tick = 0.0
        self.evicted = 0
        self.moved = 0
        self.flap_refused = 0

    def learn(self, key: bytes, port: int) -> None:
        e = self.entries.get(key)
        if e is not None:
            if e[0] != port:
                # Anti-flap: a MAC seen recently on another port stays there (loops, spoofing).
                if self.tick - e[1] < self.min_persistence:
                    self.flap_refused += 1
                    return
                e[0] = port
                self.moved += 1
            e[1] = self.tick
            return
        if len(self.entries) >= self.max_entries:
            self.entries.popitem(last=False)
            self.evicted += 1
        self.entries[key] = [port, self.tick]

    def lookup(self, key: bytes) -> int | None:
        e = self.entries.get(key)
        return None if e is None else e[0]

    def age(self, now: float, expire: float | None = None) -> int:
        """Advance the tick to `now` and drop entries idle longer than `expire`. Returns removed."""
        self.tick = now
        limit = now - (self.expire if expire is None else expire)
        dead = [k for k, e in self.entries.items() if e[1] < limit]
        for k in dead:
            del self.entries[k]
        return len(dead)

    def flush_port(self, port: int) -> int:
        dead = [k for k, e in self.entries.items() if e[0] == port]
        for k in dead:
            del self.entries[k]
        return len(dead)

    def flush_vlan(self, vlan: int) -> None:
        for k in [k for k in self.entries if split_key(k)[1] == vlan]:
            del self.entries[k]

    def clear(self) -> None:
        self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)

    def rows(self) -> list[tuple[bytes, int, int, float]]:
        """(mac, vlan, port, age seconds) for display."""
        out = []
        for k, (port, seen) in self.entries.items():
            mac, vlan = split_key(k)
            out.append((mac, vlan, port, self.tick - seen))
        return out
