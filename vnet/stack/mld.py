"""MLDv2 listener (RFC 3810) for the groups the host joins: unsolicited reports on
join and leave (robustness 2), and answers to general and group queries. After an
MLDv1 query the interface falls back to MLDv1 (RFC 3810 section 8) for the Older
Version Querier Present Timeout: one v1 report per group, sent to the group, and a
Done message to all-routers on leave.

Reports carry the hop-by-hop Router Alert option and hop limit 1; they come from
the link-local address, or from :: before it is ready (RFC 3810 5.2.13). The
all-nodes group is never reported (section 6).
"""

from __future__ import annotations

from typing import Any

from vnet.stack.interface import Interface
from vnet.wire import icmp6, ipv6

MLDV2_ROUTERS = bytes.fromhex("ff020000000000000000000000000016")
ALL_NODES = bytes.fromhex("ff020000000000000000000000000001")
ROBUSTNESS = 2
UNSOLICITED_INTERVAL = 1.0
UNSPEC = b"\x00" * 16
ALL_ROUTERS = bytes.fromhex("ff020000000000000000000000000002")
OLDER_VERSION_QUERIER_TIMEOUT = 260.0  # robustness 2 x query interval 125 s + 10 s


def _reportable(group: bytes) -> bool:
    return group != ALL_NODES and (group[1] & 0x0F) > 1


class MldListener:
    def _init_mld(self: Any) -> None:
        self._mld_pending: dict[str, Any] = {}
        self._mld_v1_until: dict[str, float] = {}  # interface -> end of MLDv1 compatibility

    def join6(self: Any, iface: Interface, group: bytes) -> None:
        n = iface.groups6.get(group, 0)
        iface.groups6[group] = n + 1
        if n == 0 and _reportable(group):
            self._mld_unsolicited(iface, group, icmp6.CHANGE_TO_EXCLUDE)

    def leave6(self: Any, iface: Interface, group: bytes) -> None:
        n = iface.groups6.get(group, 0)
        if n <= 1:
            iface.groups6.pop(group, None)
            if n == 1 and _reportable(group):
                self._mld_unsolicited(iface, group, icmp6.CHANGE_TO_INCLUDE)
        else:
            iface.groups6[group] = n - 1

    def _mld_unsolicited(self: Any, iface: Interface, group: bytes, rtype: int) -> None:
        self._mld_send(iface, [(rtype, group)])
        for _ in range(ROBUSTNESS - 1):
            self.rt.call_later(self.rt.rng.uniform(0, UNSOLICITED_INTERVAL), self._mld_send,
                               iface, [(rtype, group)])

    def _mld_ready(self: Any, iface: Interface) -> None:
        """The link-local address is ready: report all groups again from it."""
        self._mld_report_all(iface)

    def _mld_report_all(self: Any, iface: Interface) -> None:
        self._mld_pending.pop(iface.name, None)
        groups = [(icmp6.MODE_IS_EXCLUDE, g) for g in iface.groups6 if _reportable(g)]
        if groups:
            self._mld_send(iface, groups)

    def _mld_send(self: Any, iface: Interface, records: list[tuple[int, bytes]]) -> None:
        if iface.name not in self.by_name:
            return
        ll = iface.ll_addr()
        src = ll.packed if ll is not None else UNSPEC
        if self._mld_v1_until.get(iface.name, 0.0) > self.rt.now():
            for rtype, group in records:
                if rtype == icmp6.CHANGE_TO_INCLUDE:
                    self._mld_out(iface, src, ALL_ROUTERS,
                                  icmp6.mld1(icmp6.MLD1_DONE, group, src, ALL_ROUTERS))
                else:
                    self._mld_out(iface, src, group, icmp6.mld1(icmp6.MLD1_REPORT, group, src, group))
            return
        self._mld_out(iface, src, MLDV2_ROUTERS, icmp6.mld2_report(records, src, MLDV2_ROUTERS))

    def _mld_out(self: Any, iface: Interface, src: bytes, dst: bytes, msg: bytes) -> None:
        ext = ipv6.hbh_router_alert(ipv6.ICMPV6)
        pkt = ipv6.build(src, dst, ipv6.HOPOPTS, len(ext) + len(msg), 1) + ext + msg
        self.stats["mld_report_tx"] += 1
        self._xmit(iface, ipv6.multicast_mac(dst), b"\x86\xdd", pkt)

    def _mld_query_rx(self: Any, iface: Interface, h: Any, msg: memoryview) -> None:
        if h.hop_limit != 1 or not (h.src[0] == 0xFE and (h.src[1] & 0xC0) == 0x80):
            self.stats["mld_bad"] += 1
            return
        delay_ms, group = icmp6.parse_mld_query(msg)
        self.stats["mld_query_rx"] += 1
        if len(msg) == 24:  # an MLDv1 query: fall back (RFC 3810 8.2.1)
            self.stats["mld_v1_query_rx"] += 1
            self._mld_v1_until[iface.name] = self.rt.now() + OLDER_VERSION_QUERIER_TIMEOUT
        delay = self.rt.rng.uniform(0, max(delay_ms, 1) / 1000.0)
        if group == UNSPEC:
            if iface.name not in self._mld_pending:
                self._mld_pending[iface.name] = self.rt.call_later(delay, self._mld_report_all,
                                                                   iface)
        elif group in iface.groups6 and _reportable(group):
            self.rt.call_later(delay, self._mld_send, iface, [(icmp6.MODE_IS_EXCLUDE, group)])
