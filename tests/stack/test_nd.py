"""Neighbor Discovery, DAD, NUD, SLAAC lifetimes, MLD and ARP conflict detection."""

from __future__ import annotations

import ipaddress

from tests.stack.topo import Net
from vnet.link.link import Link
from vnet.link.switch import Switch
from vnet.runtime.sim import SimRuntime
from vnet.stack import neighbor
from vnet.stack.host import Host
from vnet.stack.ra_daemon import RaDaemon
from vnet.wire import icmp6, ipv6


def lan(n: int = 2, seed: int = 1):
    rt = SimRuntime(seed=seed)
    sw = Switch(rt, 16)
    hosts = []
    for i in range(n):
        h = Host(rt, f"h{i}")
        iface = h.add_interface("eth0", mac=bytes((2, 0, 0, 0, 1, i + 1)))
        Link(rt, sw.add_port(), iface.port, delay=0.0005)
        hosts.append(h)
    return rt, sw, hosts


def test_dad_detects_duplicate_manual_address():
    rt, _, (h0, h1) = lan()
    h0.add_address("eth0", "2001:db8::7/64")
    rt.run(until=3)
    h1.add_address("eth0", "2001:db8::7/64")
    rt.run(until=6)
    st0 = {x["addr"]: x["state"] for x in h0.describe_addresses()}
    st1 = {x["addr"]: x["state"] for x in h1.describe_addresses()}
    assert st0["2001:db8::7/64"] == "preferred"
    assert st1["2001:db8::7/64"] == "duplicate"
    assert h1.stats["dad_failed"] == 1


def test_dad_collision_of_link_local_regenerates_stable_iid():
    rt, _, (h0, h1) = lan()
    h1.secret = h0.secret  # same secret and same interface name: same stable IID (RFC 7217)
    h1.ifaces[0].addrs6.clear()
    h1._rebuild_local6()
    rt.run(until=3)  # h0's address is preferred; h1 now tries the identical one
    h1._start_link_local(h1.ifaces[0])
    rt.run(until=5)
    ll0 = h0.ifaces[0].ll_addr()
    ll1 = h1.ifaces[0].ll_addr()
    assert ll0 is not None and ll1 is not None and ll0.addr != ll1.addr
    assert h0.stats["dad_failed"] == 0 and h1.stats["dad_failed"] == 1
    assert ll1.dad_counter == 1  # RFC 7217: the next DAD_Counter gives a new identifier


def test_nud_states_and_unreachability():
    rt, _, (h0, h1) = lan()
    h0.add_address("eth0", "2001:db8::1/64")
    h1.add_address("eth0", "2001:db8::2/64")
    rt.run(until=2)
    peer = ipaddress.IPv6Address("2001:db8::2").packed
    got = []
    h0.ping("2001:db8::2", 1, 1, 8, lambda m, n: got.append(n))
    rt.run(until=3)
    cache = h0.ifaces[0].neigh6
    assert got == [8] and cache.state_of(peer) == neighbor.REACHABLE
    rt.run(until=3 + 46)  # past ReachableTime (at most 1.5 x 30 s)
    assert cache.state_of(peer) == neighbor.STALE
    h0.ping("2001:db8::2", 1, 2, 8, lambda m, n: got.append(n))
    assert cache.state_of(peer) == neighbor.DELAY
    rt.run(until=rt.now() + 5.5)
    # DELAY -> PROBE -> a unicast NS is answered -> REACHABLE again
    assert cache.state_of(peer) == neighbor.REACHABLE and h0.stats["nd_ns_tx"] >= 2
    # Now the peer goes away: the next probe cycle fails and the entry is removed.
    h1.ifaces[0].port.receive = lambda f: None
    rt.run(until=rt.now() + 46)
    h0.ping("2001:db8::2", 1, 3, 8, lambda m, n: got.append(n))
    rt.run(until=rt.now() + 10)
    assert cache.state_of(peer) is None and cache.failures == 1


def test_neighbor_cache_flood_is_bounded():
    """RFC 6583: unsolicited NS floods and scans of a /64 leave the cache bounded, and a
    legitimate neighbour keeps working."""
    rt, _, (h0, h1) = lan()
    h0.add_address("eth0", "2001:db8::1/64")
    h1.add_address("eth0", "2001:db8::2/64")
    rt.run(until=2)
    iface = h0.ifaces[0]
    me = ipaddress.IPv6Address("2001:db8::1").packed
    for i in range(20000):
        src = ipaddress.IPv6Address(0x20010DB8 << 96 | (i + 1000)).packed
        mac = bytes((2, 0xEE, 0, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))
        ns = icmp6.ns(me, mac, src, me)
        pkt = ipv6.build(src, me, 58, len(ns), 255) + ns
        iface.port.receive(iface.mac + mac + b"\x86\xdd" + pkt)
    # scanning: send to 20000 unresolved addresses on the link
    for i in range(20000):
        h0.ip_send(ipaddress.IPv6Address(0x20010DB8 << 96 | (i + 100000)), 59, b"")
    cache = iface.neigh6
    assert len(cache.entries) <= h0.neigh_max
    assert cache.incomplete <= h0.neigh_max_incomplete
    assert cache.evictions > 0 and cache.refused > 0
    rt.run(until=rt.now() + 5)
    got = []
    h0.ping("2001:db8::2", 9, 1, 8, lambda m, n: got.append(n))
    rt.run(until=rt.now() + 5)
    assert got == [8]


def test_prefix_and_router_lifetimes():
    net = Net()
    net.r.ra_daemon.valid = 40
    net.r.ra_daemon.preferred = 20
    net.r.ra_daemon.router_lifetime = 30
    net.rt.run(until=10)
    a6 = net.slaac(net.a)
    assert net.a.default_routers()
    net.r.ra_daemon.stop()  # final RA with router lifetime 0
    net.rt.run(until=11)
    assert not net.a.default_routers()
    net.rt.run(until=45)
    rows = {x["addr"]: x["state"] for x in net.a.describe_addresses()}
    assert rows[a6 + "/64"] == "deprecated"
    net.rt.run(until=60)
    rows = {x["addr"]: x["state"] for x in net.a.describe_addresses()}
    assert a6 + "/64" not in rows
    assert all(r["origin"] != "ra" for r in net.a.describe_routes())


def test_default_router_failover():
    rt, sw, hosts = lan(3)
    h, r1, r2 = hosts
    for r, p in ((r1, "2001:db8:1::1/64"), (r2, "2001:db8:1::2/64")):
        r.router = True
        r.accept_ra = False
        r.add_address("eth0", p)
        RaDaemon(r, 3, 4)
    rt.run(until=8)
    assert len(h.default_routers()) == 2
    first = h._select_router()
    assert first is not None
    # the selected router dies: NUD fails and selection moves to the other router
    dead = r1 if first[1] == r1.ifaces[0].ll_addr().packed else r2
    dead.ifaces[0].port.receive = lambda f: None
    dead.ifaces[0].port.detach()
    for _ in range(8):
        h.ip_send("2001:db8:99::1", 59, b"", hop_limit=5)
        rt.run(until=rt.now() + 2)
    sel = h._select_router()
    assert sel is not None and sel[1] != first[1]


def test_mld_reports_parse_with_scapy():
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
    from scapy.layers.l2 import Ether

    rt = SimRuntime(seed=1)
    h = Host(rt)
    iface = h.add_interface("eth0")
    frames = []
    iface.port.attach(frames.append)
    rt.run(until=3)
    reports = [Ether(f) for f in frames if f[12:14] == b"\x86\xdd" and f[62] == 143]
    assert reports, "joining the solicited-node group must send an MLDv2 report"
    for r in reports:
        assert r[IPv6].hlim == 1 and IPv6ExtHdrHopByHop in r
        assert r[IPv6].dst == "ff02::16"
    from scapy.layers.inet6 import ICMPv6MLReport2
    ll = iface.ll_addr()
    sn = ipaddress.IPv6Address(ipv6.solicited_node(ll.packed))
    groups = {str(rec.dst) for r in reports if ICMPv6MLReport2 in r for rec in r[ICMPv6MLReport2].records}
    assert str(sn) in groups
    # the checksum scapy computes equals ours
    for r in reports:
        ours = r[ICMPv6MLReport2].cksum
        del r[ICMPv6MLReport2].cksum
        assert Ether(bytes(r))[ICMPv6MLReport2].cksum == ours


def test_mld_query_answered():
    rt = SimRuntime(seed=1)
    h = Host(rt)
    iface = h.add_interface("eth0")
    frames = []
    iface.port.attach(frames.append)
    rt.run(until=3)
    frames.clear()
    src = ipaddress.IPv6Address("fe80::1").packed
    allnodes = bytes.fromhex("ff020000000000000000000000000001")
    q = icmp6.build(130, 0, bytes((0, 100, 0, 0)) + bytes(16) + bytes(4), src, allnodes)
    ext = ipv6.hbh_router_alert(58)
    pkt = ipv6.build(src, allnodes, 0, len(ext) + len(q), 1) + ext + q
    iface.port.receive(b"\x33\x33\0\0\0\1" + b"\x02\0\0\0\0\1" + b"\x86\xdd" + pkt)
    rt.run(until=4)
    assert h.stats["mld_query_rx"] == 1
    assert any(f[62] == 143 for f in frames if len(f) > 54)


def test_arp_conflict_detected_and_defended():
    rt, _, (h0, h1) = lan()
    h0.add_address("eth0", "10.5.0.1/24")
    rt.run(until=5)
    h1.add_address("eth0", "10.5.0.1/24")  # its announcement conflicts with h0's address
    rt.run(until=6)
    assert h0.stats["acd_conflict"] >= 1 and h0.stats["acd_defend_tx"] == 1
    assert h0.acd_conflicts[0][1] == "02:00:00:00:01:02"


def test_probe_finds_address_in_use():
    rt, _, (h0, h1) = lan()
    h0.add_address("eth0", "10.5.0.9/24")
    results = []
    h1.acd_probe(h1.ifaces[0], ipaddress.IPv4Address("10.5.0.9"), results.append)
    h1.acd_probe(h1.ifaces[0], ipaddress.IPv4Address("10.5.0.10"), results.append)
    rt.run(until=12)
    assert sorted(results) == [False, True]


def test_redirect_from_router_is_honoured():
    rt, sw, hosts = lan(3)
    h, r, other = hosts
    r.router = True
    r.accept_ra = False
    r.add_address("eth0", "2001:db8:1::1/64")
    RaDaemon(r, 3, 4)
    other.add_address("eth0", "2001:db8:2::5/64")  # on the same link, but another prefix
    rt.run(until=8)
    r.add_route("2001:db8:2::/64", dev="eth0")
    h.ip_send("2001:db8:2::5", 59, b"")
    rt.run(until=rt.now() + 1)
    assert r.stats["icmp6_redirect_tx"] == 1
    assert h.stats["nd_redirect_rx"] == 1
    nh, _ = h._route6(ipaddress.IPv6Address("2001:db8:2::5").packed)
    assert nh == ipaddress.IPv6Address("2001:db8:2::5").packed  # now direct


def test_ra_from_scapy_configures_slaac():
    """An RA built by scapy (independent encoder) is accepted and configures an address."""
    from scapy.layers.inet6 import (
        ICMPv6ND_RA,
        ICMPv6NDOptMTU,
        ICMPv6NDOptPrefixInfo,
        ICMPv6NDOptRDNSS,
        ICMPv6NDOptSrcLLAddr,
        IPv6,
    )
    from scapy.layers.l2 import Ether

    rt = SimRuntime(seed=1)
    h = Host(rt)
    iface = h.add_interface("eth0")
    rt.run(until=3)
    ra = (Ether(src="02:00:00:00:00:aa", dst="33:33:00:00:00:01") /
          IPv6(src="fe80::aa", dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=600) /
          ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:aa") / ICMPv6NDOptMTU(mtu=1400) /
          ICMPv6NDOptPrefixInfo(prefix="2001:db8:77::", prefixlen=64, validlifetime=3600,
                                preferredlifetime=1800) /
          ICMPv6NDOptRDNSS(lifetime=900, dns=["2001:db8:77::53"]))
    iface.port.receive(bytes(ra))
    rt.run(until=6)
    slaac = [a for a in iface.addrs6 if a.origin == "slaac"]
    assert len(slaac) == 1 and slaac[0].state == "preferred"
    assert slaac[0].addr in ipaddress.IPv6Network("2001:db8:77::/64")
    assert iface.mtu == 1400 and h.default_routers()
    assert [(d["server"], d["lifetime"]) for d in h.dns_servers()] == [("2001:db8:77::53", 897)]


def test_router_preference_rfc4191():
    rt, sw, hosts = lan(3)
    h, r1, r2 = hosts
    for r, p, pref in ((r1, "2001:db8:1::1/64", "low"), (r2, "2001:db8:1::2/64", "high")):
        r.router = True
        r.accept_ra = False
        r.add_address("eth0", p)
        RaDaemon(r, 3, 4, preference=pref)
    rt.run(until=8)
    prefs = {x["addr"]: x["preference"] for x in h.default_routers()}
    assert sorted(prefs.values()) == ["high", "low"]
    h.ip_send("2001:db8:99::1", 59, b"")  # both routers get probed into the cache
    rt.run(until=rt.now() + 8)
    sel = h._select_router()
    assert sel is not None and sel[1] == r2.ifaces[0].ll_addr().packed


def test_temporary_addresses_rfc8981():
    net = Net()
    a = net.a
    a.use_tempaddr = True
    a.temp_preferred_lifetime = 60.0
    a.temp_valid_lifetime = 120.0
    net.rt.run(until=10)
    temps = [x for x in a.ifaces[0].addrs6 if x.origin == "temporary"]
    assert len(temps) == 1 and temps[0].state == "preferred"
    first = temps[0]
    assert first.addr in ipaddress.IPv6Network("2001:db8:1::/64")
    assert first.packed != ipaddress.IPv6Address(net.slaac(a)).packed
    b6 = net.slaac(net.b)
    assert a.source_address_for(b6) == first.addr  # rule 7
    got = net.ping(a, b6)
    assert [str(m.dst) for m, _ in got] == [str(first.addr)]
    net.rt.run(until=75)  # past the first one's preferred lifetime (at most 60 s)
    temps = [x for x in a.ifaces[0].addrs6 if x.origin == "temporary"]
    assert first.state == "deprecated" and len(temps) == 2
    assert a.source_address_for(b6) != first.addr
    net.rt.run(until=140)  # past its valid lifetime: gone
    assert first not in a.ifaces[0].addrs6
    assert any(x.origin == "temporary" and x.state == "preferred" for x in a.ifaces[0].addrs6)


def test_mldv1_query_switches_to_v1_reports():
    from scapy.layers.inet6 import ICMPv6MLDone, ICMPv6MLReport, IPv6
    from scapy.layers.l2 import Ether

    rt = SimRuntime(seed=1)
    h = Host(rt)
    iface = h.add_interface("eth0")
    frames = []
    iface.port.attach(frames.append)
    rt.run(until=3)
    frames.clear()
    src = ipaddress.IPv6Address("fe80::1").packed
    allnodes = bytes.fromhex("ff020000000000000000000000000001")
    q = icmp6.build(130, 0, bytes((0, 100, 0, 0)) + bytes(16), src, allnodes)  # 24 bytes: v1
    ext = ipv6.hbh_router_alert(58)
    pkt = ipv6.build(src, allnodes, 0, len(ext) + len(q), 1) + ext + q
    iface.port.receive(b"\x33\x33\0\0\0\1" + b"\x02\0\0\0\0\1" + b"\x86\xdd" + pkt)
    rt.run(until=4)
    v1 = [Ether(f) for f in frames if len(f) > 62 and f[62] == 131]
    assert v1 and h.stats["mld_v1_query_rx"] == 1
    for r in v1:
        assert r[IPv6].dst == str(r[ICMPv6MLReport].mladdr)  # sent to the group itself
        assert r[IPv6].hlim == 1
    group = ipv6.solicited_node(bytes.fromhex("20010db8000000000000000000000042"))
    h.join6(iface, group)
    frames.clear()
    h.leave6(iface, group)
    done = [Ether(f) for f in frames if len(f) > 62 and f[62] == 132]
    assert done and done[0][IPv6].dst == "ff02::2"
    assert done[0][ICMPv6MLDone].mladdr == str(ipaddress.IPv6Address(group))


def test_igmp_join_report_query_and_delivery():
    from scapy.layers.igmp import IGMPv3, IGMPv3_MR
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    rt, _, (h0, h1) = lan()
    h0.add_address("eth0", "10.5.0.1/24")
    h1.add_address("eth0", "10.5.0.2/24")
    rt.run(until=1)
    frames = []
    port = h1.ifaces[0].port
    send = port.transmit
    port.attach(lambda f: (frames.append(f), send(f)))
    h1.join_group("eth0", "239.1.2.3")
    rt.run(until=3)
    reports = [Ether(f) for f in frames if f[12:14] == b"\x08\x00" and f[23] == 2]
    assert len(reports) == 2  # robustness 2
    r = reports[0]
    assert r[IP].dst == "224.0.0.22" and r[IP].ttl == 1 and r[IP].options
    assert r[IGMPv3].type == 0x22 and r[IGMPv3_MR].records[0].maddr == "239.1.2.3"
    ref = Ether(bytes(r))
    del ref[IP].chksum
    assert Ether(bytes(ref))[IP].chksum == r[IP].chksum
    # multicast UDP to the group reaches the transport; a group not joined does not
    got = []
    h1.register_transport(17, lambda m, p: got.append(str(m.dst)))
    h0.ip_send("239.1.2.3", 17, bytes(8))
    h0.ip_send("239.1.2.4", 17, bytes(8))
    rt.run(until=4)
    assert got == ["239.1.2.3"]
    # an IGMPv2 query: answered with a v2 report sent to the group itself
    from vnet.wire import igmp
    q = igmp.v2_message(igmp.QUERY, bytes(4))
    q = bytes((0x11, 10)) + q[2:]
    from vnet.wire.checksum import checksum
    q = q[:2] + checksum(q[:2] + b"\0\0" + q[4:]).to_bytes(2, "big") + q[4:]
    frames.clear()
    h0._igmp_out(h0.ifaces[0], bytes((10, 5, 0, 1)), bytes((224, 0, 0, 1)), q)
    rt.run(until=6)
    v2 = [Ether(f) for f in frames if f[12:14] == b"\x08\x00" and f[23] == 2]
    assert h1.stats["igmp_query_rx"] == 1
    assert v2 and v2[0][IP].dst == "239.1.2.3" and bytes(v2[0][IP].payload)[0] == 0x16
    h1.leave_group("eth0", "239.1.2.3")
    rt.run(until=8)
    assert "239.1.2.3" not in [str(ipaddress.IPv4Address(g)) for g in h1.ifaces[0].groups4]


def test_route_information_option_rfc4191():
    from scapy.layers.inet6 import ICMPv6NDOptRouteInfo

    net = Net()
    net.r.ra_daemon.routes = [(ipaddress.IPv6Address("2001:db8:99::").packed, 48)]
    net.rt.run(until=10)
    rows = [x for x in net.a.describe_routes() if x["prefix"] == "2001:db8:99::/48"]
    rll = net.r.ifaces[0].ll_addr()
    assert rows == [{"prefix": "2001:db8:99::/48", "dev": "eth0", "origin": "ra",
                     "via": str(rll.addr)}]
    opt = icmp6.route_info_option(ipaddress.IPv6Address("2001:db8:99::").packed, 48, 600, 1)
    sc = ICMPv6NDOptRouteInfo(opt)
    assert (sc.plen, sc.rtlifetime, sc.prf, sc.prefix) == (48, 600, 1, "2001:db8:99::")
    ours = icmp6.parse_route_info(bytes(ICMPv6NDOptRouteInfo(plen=64, prefix="2001:db8:5::",
                                                             rtlifetime=30, prf=3)))
    assert ours[1:] == (64, 30, 3) and ours[0][:8] == bytes.fromhex("20010db800050000")
