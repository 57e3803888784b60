"""IP-layer behaviour in simulated time: path MTU, ICMP errors, forwarding rules,
fragment abuse, bad packets counted and dropped."""

from __future__ import annotations

import ipaddress
import struct

from tests.stack.topo import Net
from vnet.wire import icmp6, ipv4, ipv6
from vnet.wire.checksum import checksum


def ready(**kw) -> Net:
    net = Net(**kw)
    net.rt.run(until=10)
    return net


def test_packet_too_big_sets_path_mtu_v6():
    net = ready(mtu_b=1280)
    b6 = net.slaac(net.b)
    errors = []
    net.a.register_error_handler(58, lambda m, t, c, q: errors.append((t, c)))
    assert net.ping(net.a, b6, size=1400) == []  # dropped by the router, PTB comes back
    assert net.r.stats["ip6_fwd_too_big"] == 1
    assert net.a.path_mtu(b6) == 1280
    got = net.ping(net.a, b6, size=1400, seq=2)
    assert [n for _, n in got] == [1400]
    assert net.a.stats["ip6_frag_tx"] == 2


def test_frag_needed_sets_path_mtu_v4_and_reaches_transport():
    net = ready(mtu_b=1000)
    errors = []
    net.a.register_error_handler(6, lambda m, t, c, q: errors.append((str(m.dst), t, c, q[:4])))
    seg = struct.pack("!HHII", 1234, 80, 0, 0) + bytes(1400)
    assert net.a.ip_send("10.0.2.2", 6, seg)  # TCP gets DF: the router must not fragment
    net.rt.run(until=net.rt.now() + 1)
    assert net.r.stats["ip4_fwd_too_big"] == 1
    assert errors == [("10.0.2.2", 3, 4, seg[:4])]
    assert net.a.path_mtu("10.0.2.2") == 1000
    # A datagram without DF is fragmented by the router instead.
    got = net.ping(net.a, "10.0.2.2", size=1400)
    assert [n for _, n in got] == [1400] and net.b.stats["ip4_reassembled"] == 1


def test_ttl_and_hop_limit_exceeded():
    net = ready()
    seen = []
    net.a.register_error_handler(17, lambda m, t, c, q: seen.append((m.version, t, c)))
    udp = struct.pack("!HHHH", 5000, 33434, 8, 0)
    assert net.a.ip_send("10.0.2.2", 17, udp, hop_limit=1)
    assert net.a.ip_send(net.slaac(net.b), 17, udp, hop_limit=1)
    net.rt.run(until=net.rt.now() + 1)
    assert sorted(seen) == [(4, 11, 0), (6, 3, 0)]


def test_unknown_protocol_and_no_route_errors():
    net = ready()
    seen = []
    net.a.register_error_handler(253, lambda m, t, c, q: seen.append((m.version, t, c)))
    net.a.ip_send("10.0.2.2", 253, b"x" * 8)
    net.a.ip_send(net.slaac(net.b), 253, b"x" * 8)
    net.rt.run(until=net.rt.now() + 1)
    # protocol unreachable (v4); parameter problem, unrecognized next header (v6)
    assert sorted(seen) == [(4, 3, 2), (6, 4, 1)]
    net.a.ip_send("10.99.0.1", 253, b"x")  # the router has no route
    net.rt.run(until=net.rt.now() + 1)
    assert (4, 3, 0) in seen


def test_icmp_errors_are_rate_limited():
    net = ready()
    net.ping(net.a, "10.0.2.2")  # resolve the router first
    udp = struct.pack("!HHHH", 5000, 33434, 8, 0)
    for _ in range(200):
        net.a.ip_send("10.0.2.2", 17, udp, hop_limit=1)
    net.rt.run(until=net.rt.now() + 0.01)
    assert net.r.stats["icmp4_error_tx"] <= 12
    assert net.r.icmp_limit.limited >= 180


def raw6(net: Net, src: bytes, dst: bytes, nh: int, body: bytes, hl: int = 64) -> None:
    """Inject an IPv6 packet into a's interface from the router's MAC."""
    pkt = ipv6.build(src, dst, nh, len(body), hl) + body
    frame = net.a.ifaces[0].mac + net.r.ifaces[0].mac + b"\x86\xdd" + pkt
    net.a.ifaces[0].port.receive(frame)


def test_routing_header_type0_refused_and_unknown_options():
    net = ready()
    a6 = ipaddress.IPv6Address(net.slaac(net.a)).packed
    r6 = ipaddress.IPv6Address("2001:db8:1::1").packed
    echo = icmp6.echo(True, 1, 1, b"hi", r6, a6)
    rh0 = bytes((58, 2, 0, 1)) + bytes(4) + bytes(16)  # type 0, segments left 1
    before = net.a.stats["icmp6_echo_rx"]
    raw6(net, r6, a6, ipv6.ROUTING, rh0 + echo)
    assert net.a.stats["ip6_routing_refused"] == 1
    # destination option 0xC3 (unknown, "discard and send ICMP")
    dopt = bytes((58, 0, 0xC3, 4, 0, 0, 0, 0))
    raw6(net, r6, a6, ipv6.DSTOPTS, dopt + echo)
    assert net.a.stats["ip6_unknown_option"] == 1
    # an unknown option with action 00 is skipped: the echo is answered
    dopt = bytes((58, 0, 0x1E, 4, 0, 0, 0, 0))
    raw6(net, r6, a6, ipv6.DSTOPTS, dopt + echo)
    assert net.a.stats["icmp6_echo_rx"] == before + 1
    net.rt.run(until=net.rt.now() + 1)
    assert net.a.stats["icmp6_error_tx"] == 2


def test_overlapping_fragments_are_dropped():
    net = ready()
    a6 = ipaddress.IPv6Address(net.slaac(net.a)).packed
    r6 = ipaddress.IPv6Address("2001:db8:1::1").packed
    echo = icmp6.echo(True, 1, 1, bytes(200), r6, a6)
    f1 = ipv6.fragment_header(58, 0, True, 99) + echo[:128]
    f2 = ipv6.fragment_header(58, 64, False, 99) + echo[64:]  # overlaps bytes 64..128
    raw6(net, r6, a6, ipv6.FRAGMENT, f1)
    raw6(net, r6, a6, ipv6.FRAGMENT, f2)
    assert net.a.reasm6.overlaps == 1 and len(net.a.reasm6) == 0
    assert net.a.stats["icmp6_echo_rx"] == 0
    # the same datagram, properly cut, is reassembled and answered
    f2 = ipv6.fragment_header(58, 128, False, 100) + echo[128:]
    raw6(net, r6, a6, ipv6.FRAGMENT, ipv6.fragment_header(58, 0, True, 100) + echo[:128])
    raw6(net, r6, a6, ipv6.FRAGMENT, f2)
    assert net.a.stats["icmp6_echo_rx"] == 1


def test_fragment_flood_stays_bounded_and_pings_still_work():
    net = ready()
    a = net.a
    iface = a.ifaces[0]
    src = ipaddress.IPv4Address("10.0.1.1").packed
    for i in range(5000):
        body = bytes(1000)
        hdr = ipv4.build(src, ipaddress.IPv4Address("10.0.1.2").packed, 17, len(body),
                         ident=i & 0xFFFF, frag=ipv4.FLAG_MF)
        iface.port.receive(iface.mac + net.r.ifaces[0].mac + b"\x08\x00" + hdr + body)
    assert len(a.reasm4) <= 64 and a.reasm4.bytes <= 1 << 20
    assert a.reasm4.evicted >= 5000 - 64
    got = net.ping(a, "10.0.2.2", size=3000)
    assert [n for _, n in got] == [3000]
    net.rt.run(until=net.rt.now() + 40)
    assert len(a.reasm4) == 0 and a.reasm4.bytes == 0  # timed out and freed


def test_bad_packets_counted_and_dropped():
    net = ready()
    a = net.a
    iface = a.ifaces[0]
    eth = iface.mac + net.r.ifaces[0].mac
    src = ipaddress.IPv4Address("10.0.1.1").packed
    dst = ipaddress.IPv4Address("10.0.1.2").packed
    good = ipv4.build(src, dst, 1, 8) + bytes(8)
    bad_cksum = bytearray(good)
    bad_cksum[10] ^= 0xFF
    bad_len = bytearray(good)
    bad_len[2:4] = (2000).to_bytes(2, "big")
    bad_ihl = bytearray(good)
    bad_ihl[0] = 0x43
    echo = ipv4.build(src, dst, 1, 8) + bytes((8, 0, 0, 0, 0, 1, 0, 1))  # wrong ICMP checksum
    for f in (bad_cksum, bad_len, bad_ihl, good[:10]):
        iface.port.receive(eth + b"\x08\x00" + bytes(f))
    iface.port.receive(eth + b"\x08\x00" + echo)
    assert a.stats["ip4_bad"] == 4 and a.stats["icmp4_bad"] == 1
    iface.port.receive(eth + b"\x86\xdd" + bytes(30))
    iface.port.receive(eth + b"\x08\x06" + bytes(10))
    iface.port.receive(b"\x01")
    assert a.stats["ip6_bad"] == 1 and a.stats["arp_bad"] == 1 and a.stats["eth_short"] == 1
    # ND with hop limit below 255 is forged from off-link
    a6 = ipaddress.IPv6Address(net.slaac(a)).packed
    ll = iface.ll_addr().packed
    r6 = ipaddress.IPv6Address("fe80::99").packed
    ns = icmp6.ns(a6, b"\x02\0\0\0\0\x99", r6, a6)
    raw6(net, r6, a6, 58, ns, hl=64)
    assert a.stats["nd_bad"] == 1
    # a zero-length ND option
    ns = bytearray(icmp6.ns(a6, None, r6, a6) + b"\x01\x00" + bytes(6))
    ns[2:4] = b"\0\0"
    ns[2:4] = checksum(ns, __import__("vnet.wire.checksum", fromlist=["pseudo6"]).pseudo6(
        r6, a6, 58, len(ns))).to_bytes(2, "big")
    raw6(net, r6, a6, 58, bytes(ns), hl=255)
    assert a.stats["nd_bad"] == 2
    assert ll is not None
    # still working
    assert [n for _, n in net.ping(a, "10.0.2.2")] == [56]


def test_loopback_to_own_address():
    net = ready()
    got = []
    net.a.register_transport(253, lambda m, p: got.append((str(m.src), bytes(p))))
    net.a.ip_send("10.0.1.2", 253, b"self")
    net.a.ip_send(net.slaac(net.a), 253, b"self6")
    net.rt.run(until=net.rt.now() + 0.1)
    assert sorted(got) == sorted([("10.0.1.2", b"self"), (net.slaac(net.a), b"self6")])


def test_transport_seam_source_address_and_hop_limit():
    net = ready()
    got = []
    net.b.register_transport(253, lambda m, p: got.append((m, bytes(p))))
    b6 = net.slaac(net.b)
    assert str(net.a.source_address_for(b6)) == net.slaac(net.a)
    assert str(net.a.source_address_for("10.0.2.2")) == "10.0.1.2"
    assert net.a.source_address_for("fe80::1").is_link_local
    assert net.a.ip_send(b6, 253, b"v6", hop_limit=9)
    assert net.a.ip_send("10.0.2.2", 253, b"v4")
    net.rt.run(until=net.rt.now() + 1)
    assert sorted((m.version, m.hop_limit, str(m.src), p) for m, p in got) == [
        (4, 63, "10.0.1.2", b"v4"), (6, 8, net.slaac(net.a), b"v6")]
    assert not net.a.ip_send("2001:db8:99::1", 253, b"x") or net.a.default_routers()


def test_port_unreachable_for_transports():
    net = ready()
    b6 = net.slaac(net.b)
    seen = []
    net.a.register_error_handler(17, lambda m, t, c, q: seen.append((m.version, t, c, q[:4])))
    net.b.register_transport(17, lambda m, p: net.b.port_unreachable(m, 17, p))
    udp = struct.pack("!HHHH", 5000, 9999, 12, 0) + b"ping"
    net.a.ip_send("10.0.2.2", 17, udp)
    net.a.ip_send(b6, 17, udp)
    net.rt.run(until=net.rt.now() + 1)
    assert sorted(seen) == [(4, 3, 3, udp[:4]), (6, 1, 4, udp[:4])]


def test_static_neighbor_and_scoped_gateway():
    net = ready()
    a = net.a
    a.add_neighbor("eth0", "10.0.1.1", "02:00:00:00:01:01")
    n = a.ifaces[0].neigh4.entries[bytes((10, 0, 1, 1))]
    assert n.static and n.mac == bytes.fromhex("020000000101")
    rll = net.r.ifaces[0].ll_addr()
    a.add_route("2001:db8:77::/64", via=f"{rll.addr}%eth0")
    nh, iface = a._route6(bytes.fromhex("20010db8007700000000000000000001"))
    assert nh == rll.packed and iface is a.ifaces[0]
    a.del_neighbor("eth0", "10.0.1.1")
    assert bytes((10, 0, 1, 1)) not in a.ifaces[0].neigh4.entries


def test_ipv4_redirect_sent_and_honoured():
    from vnet.link.link import Link
    from vnet.stack.host import Host

    net = ready()
    # a second router on a's link, reachable directly, routes 10.0.9.0/24
    r2 = Host(net.rt, "r2", router=True)
    i2 = r2.add_interface("eth0", mac=bytes.fromhex("020000000201"))
    Link(net.rt, net.s1.add_port(), i2.port, delay=0.001)
    r2.add_address("eth0", "10.0.1.9/24")
    net.r.add_route("10.0.9.0/24", via="10.0.1.9")
    net.a.ip_send("10.0.9.1", 253, b"x")
    net.rt.run(until=net.rt.now() + 1)
    assert net.r.stats["icmp4_redirect_tx"] == 1
    assert net.a.stats["icmp4_redirect_rx"] == 1
    _, _, nh = net.a._route4(bytes((10, 0, 9, 1)))
    assert nh == bytes((10, 0, 1, 9))
