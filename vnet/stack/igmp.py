"""IGMP membership for the IPv4 groups the host joins (RFC 3376 version 3, with the
version 2 compatibility of section 7 after an IGMPv2 or v1 query).

Reports carry the Router Alert option and TTL 1; 224.0.0.1 is never reported.
"""

from __future__ import annotations

from typing import Any

from vnet.stack.interface import Interface
from vnet.wire import igmp, ipv4
from vnet.wire.errors import WireError

ALL_SYSTEMS = bytes((224, 0, 0, 1))
ROBUSTNESS = 2
UNSOLICITED_INTERVAL = 1.0
OLDER_QUERIER_TIMEOUT = 400.0  # robustness 2 x query interval 125 s + 10 s response (x10 s)
MAX_GROUPS = 256


class IgmpMember:
    def _init_igmp(self: Any) -> None:
        self._igmp_v2_until: dict[str, float] = {}
        self._igmp_pending: dict[str, Any] = {}
        self._igmp_refs: dict[tuple[str, bytes], int] = {}

    def join4(self: Any, iface: Interface, group: bytes) -> None:
        key = (iface.name, group)
        n = self._igmp_refs.get(key, 0)
        if n == 0 and len(iface.groups4) >= MAX_GROUPS:
            raise ValueError(f"{iface.name} is in {MAX_GROUPS} groups already")
        self._igmp_refs[key] = n + 1
        if n == 0:
            iface.groups4.add(group)
            if group != ALL_SYSTEMS:
                self._igmp_unsolicited(iface, group, igmp.CHANGE_TO_EXCLUDE)

    def leave4(self: Any, iface: Interface, group: bytes) -> None:
        key = (iface.name, group)
        n = self._igmp_refs.get(key, 0)
        if n > 1:
            self._igmp_refs[key] = n - 1
            return
        if n == 1:
            del self._igmp_refs[key]
            iface.groups4.discard(group)
            if group != ALL_SYSTEMS:
                self._igmp_unsolicited(iface, group, igmp.CHANGE_TO_INCLUDE)

    def _igmp_unsolicited(self: Any, iface: Interface, group: bytes, rtype: int) -> None:
        self._igmp_send(iface, [(rtype, group)])
        for _ in range(ROBUSTNESS - 1):
            self.rt.call_later(self.rt.rng.uniform(0, UNSOLICITED_INTERVAL), self._igmp_send,
                               iface, [(rtype, group)])

    def _igmp_send(self: Any, iface: Interface, records: list[tuple[int, bytes]]) -> None:
        if iface.name not in self.by_name:
            return
        src = next((a.packed for a in iface.addrs4 if a.state == "preferred"), b"\x00" * 4)
        if self._igmp_v2_until.get(iface.name, 0.0) > self.rt.now():
            for rtype, group in records:
                if rtype == igmp.CHANGE_TO_INCLUDE:
                    self._igmp_out(iface, src, igmp.ALL_ROUTERS,
                                   igmp.v2_message(igmp.V2_LEAVE, group))
                else:
                    self._igmp_out(iface, src, group, igmp.v2_message(igmp.V2_REPORT, group))
            return
        self._igmp_out(iface, src, igmp.ALL_V3_ROUTERS, igmp.v3_report(records))

    def _igmp_out(self: Any, iface: Interface, src: bytes, dst: bytes, msg: bytes) -> None:
        pkt = ipv4.build(src, dst, 2, len(msg), 1, self._next_ident4(), 0, 0xC0,
                         igmp.ROUTER_ALERT) + msg
        self.stats["igmp_report_tx"] += 1
        self._l2_out4(iface, dst, pkt)

    def _igmp_report_all(self: Any, iface: Interface) -> None:
        self._igmp_pending.pop(iface.name, None)
        groups = [(igmp.MODE_IS_EXCLUDE, g) for g in sorted(iface.groups4) if g != ALL_SYSTEMS]
        if groups:
            self._igmp_send(iface, groups)

    def _igmp_rx(self: Any, iface: Interface, h: ipv4.IPv4Header, msg: memoryview) -> None:
        if len(msg) < 8 or msg[0] != igmp.QUERY:
            self.stats["igmp_ignored"] += 1  # others' reports: we are not a router
            return
        try:
            version, max_resp, group = igmp.parse_query(msg)
        except WireError:
            self.stats["igmp_bad"] += 1
            return
        self.stats["igmp_query_rx"] += 1
        if version < 3:
            self._igmp_v2_until[iface.name] = self.rt.now() + OLDER_QUERIER_TIMEOUT
        delay = self.rt.rng.uniform(0, max(max_resp, 0.1))
        if group == b"\x00" * 4:
            if iface.name not in self._igmp_pending:
                self._igmp_pending[iface.name] = self.rt.call_later(delay, self._igmp_report_all,
                                                                    iface)
        elif group in iface.groups4 and group != ALL_SYSTEMS:
            self.rt.call_later(delay, self._igmp_send, iface, [(igmp.MODE_IS_EXCLUDE, group)])
