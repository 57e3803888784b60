"""Wire formats of the IP layer cross-checked against scapy, and fuzzed with hypothesis
(parsers raise only WireError; the engine counts and drops whatever it is fed)."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6ND_RA,
    ICMPv6ND_RS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptMTU,
    ICMPv6NDOptPrefixInfo,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Ether

from vnet.runtime.sim import SimRuntime
from vnet.stack.host import Host
from vnet.wire import arp, dhcp4, dhcp6, icmp4, icmp6, igmp, ipv4, ipv6
from vnet.wire.errors import WireError

A4 = ipaddress.IPv4Address("192.0.2.1").packed
B4 = ipaddress.IPv4Address("198.51.100.7").packed
A6 = ipaddress.IPv6Address("2001:db8::1").packed
B6 = ipaddress.IPv6Address("fe80::abcd").packed
MAC = bytes.fromhex("020000000001")


def test_ipv4_header_matches_scapy():
    ours = ipv4.build(A4, B4, 17, 12, ttl=33, ident=0x1234, frag=ipv4.FLAG_DF, tos=0x10)
    theirs = bytes(IP(src="192.0.2.1", dst="198.51.100.7", proto=17, ttl=33, id=0x1234,
                      flags="DF", tos=0x10, len=32))
    assert ours == theirs
    pkt = bytes(IP(src="192.0.2.1", dst="198.51.100.7", options=b"\x94\x04\x00\x00", frag=3,
                   flags="MF") / UDP() / b"xyz")
    h = ipv4.parse(pkt)
    assert (h.ihl, h.total_len, h.offset, h.more_fragments, h.proto) == (24, len(pkt), 24, True, 17)


def test_ttl_decrement_keeps_checksum_valid():
    for ttl in (1, 2, 64, 255):
        p = bytearray(bytes(IP(src="10.0.0.1", dst="10.0.0.2", ttl=ttl) / ICMP()))
        ipv4.decrement_ttl(p)
        ref = IP(bytes(p))
        del ref.chksum
        assert bytes(p[:20]) == bytes(IP(bytes(ref)))[:20]
        ipv4.parse(p)


def test_icmp4_and_arp_match_scapy():
    assert icmp4.echo(True, 7, 9, b"data") == bytes(ICMP(type=8, id=7, seq=9) / b"data")
    err = icmp4.error(3, 4, bytes(40), mtu=1400)
    assert ICMP(err).nexthopmtu == 1400 and ICMP(err).chksum == ICMP(bytes(ICMP(err))).chksum
    ours = arp.build(arp.REQUEST, MAC, A4, b"\0" * 6, B4)
    assert ours == bytes(ARP(op=1, hwsrc="02:00:00:00:00:01", psrc="192.0.2.1",
                             hwdst="00:00:00:00:00:00", pdst="198.51.100.7"))
    p = arp.parse(bytes(ARP(op=2, hwsrc="02:00:00:00:00:09", psrc="10.1.1.1", pdst="10.1.1.2")))
    assert p.op == 2 and p.sha == bytes.fromhex("020000000009")


def test_ipv6_header_and_extension_chain_vs_scapy():
    assert ipv6.build(A6, B6, 58, 8, 255, tclass=0x20, flow=0x12345) == bytes(
        IPv6(src="2001:db8::1", dst="fe80::abcd", nh=58, plen=8, hlim=255, tc=0x20, fl=0x12345))
    pkt = bytes(IPv6(src="2001:db8::1", dst="fe80::abcd") / IPv6ExtHdrHopByHop() /
                IPv6ExtHdrRouting(type=2, segleft=0, addresses=[]) / IPv6ExtHdrDestOpt() /
                IPv6ExtHdrFragment(offset=5, m=1, id=77) / UDP() / (b"x" * 8))
    h = ipv6.parse(pkt)
    ch = ipv6.walk(pkt, h.next_header, len(pkt))
    assert ch.hbh is not None and len(ch.dstopts) == 1 and ch.routing[:2] == (2, 0)
    assert ch.frag is not None and (ch.frag.offset, ch.frag.more, ch.frag.ident) == (40, True, 77)
    assert ch.frag.next_header == 17
    fh = ipv6.fragment_header(17, 40, True, 77)
    assert fh == bytes(IPv6ExtHdrFragment(nh=17, offset=5, m=1, id=77))


def test_nd_messages_match_scapy():
    ns = icmp6.ns(B6, MAC, A6, B6)
    ref = IPv6(bytes(IPv6(src="2001:db8::1", dst="fe80::abcd") / ICMPv6ND_NS(tgt="fe80::abcd") /
                     ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:01")))
    assert ns == bytes(ref[ICMPv6ND_NS])
    na = icmp6.na(B6, icmp6.NA_SOLICITED | icmp6.NA_OVERRIDE, MAC, B6, A6)
    assert na == bytes(IPv6(bytes(IPv6(src="fe80::abcd", dst="2001:db8::1") /
                                  ICMPv6ND_NA(tgt="fe80::abcd", R=0, S=1, O=1) /
                                  ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:01")))[ICMPv6ND_NA])
    rs = icmp6.rs(MAC, B6, A6)
    assert IPv6(bytes(IPv6(src="fe80::abcd", dst="2001:db8::1") / ICMPv6ND_RS()))  # builds
    assert rs[0] == 133
    opts = (icmp6.lla_option(icmp6.OPT_SLLA, MAC) + icmp6.mtu_option(1400)
            + icmp6.prefix_option(ipaddress.IPv6Address("2001:db8:5::").packed, 64, 3600, 1800))
    ra = icmp6.ra(64, 0, 1800, 0, 0, opts, B6, A6)
    sc = IPv6(bytes(IPv6(src="fe80::abcd", dst="2001:db8::1", nh=58) / ra))
    assert sc[ICMPv6ND_RA].routerlifetime == 1800
    assert sc[ICMPv6NDOptMTU].mtu == 1400
    assert sc[ICMPv6NDOptPrefixInfo].prefix == "2001:db8:5::"
    assert sc[ICMPv6NDOptPrefixInfo].validlifetime == 3600
    del sc[ICMPv6ND_RA].cksum
    assert bytes(IPv6(bytes(sc))[ICMPv6ND_RA])[:4] == ra[:4]
    parsed = icmp6.parse_ra(ra)
    assert [t for t, _ in parsed.options] == [1, 5, 3]
    icmp6.verify(ra, B6, A6)
    echo = icmp6.echo(True, 1, 2, b"abc", A6, B6)
    assert echo == bytes(IPv6(bytes(IPv6(src="2001:db8::1", dst="fe80::abcd") /
                                    ICMPv6EchoRequest(id=1, seq=2, data=b"abc")))[ICMPv6EchoRequest])


def test_dhcp_messages_vs_scapy():
    ours = dhcp4.build(dhcp4.BOOTREQUEST, 0xABCD, MAC, [(dhcp4.OPT_MSG_TYPE, b"\x01")],
                       flags=dhcp4.FLAG_BROADCAST)
    sc = BOOTP(ours)
    assert sc.xid == 0xABCD and sc[DHCP].options[0] == ("message-type", 1)
    theirs = bytes(BOOTP(op=2, xid=5, yiaddr="10.0.0.9", chaddr=MAC) /
                   DHCP(options=[("message-type", "ack"), ("lease_time", 60),
                                 ("router", "10.0.0.1"), "end"]))
    m = dhcp4.parse(theirs)
    assert m.msg_type == dhcp4.ACK and m.yiaddr == bytes((10, 0, 0, 9))
    assert m.options[dhcp4.OPT_LEASE_TIME] == (60).to_bytes(4, "big")


PARSERS = [
    lambda b: ipv4.parse(b),
    lambda b: ipv6.walk(b, ipv6.parse(b).next_header, len(b)),
    lambda b: arp.parse(b),
    lambda b: icmp6.parse_options(b, 0),
    lambda b: icmp6.parse_ra(b),
    lambda b: icmp6.parse_mld2_report(b),
    lambda b: icmp6.parse_prefix(b),
    lambda b: dhcp4.parse(b),
    lambda b: icmp4.parse(b),
    lambda b: igmp.parse_query(b),
    lambda b: icmp6.parse_rdnss(b),
    lambda b: icmp6.parse_route_info(b),
    lambda b: dhcp6.parse(b),
    lambda b: dhcp6.parse_ia_na(b),
]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400), st.integers(0, len(PARSERS) - 1))
def test_parsers_raise_only_wire_error(data, which):
    try:
        PARSERS[which](data)
    except WireError:
        pass


def _host():
    rt = SimRuntime(seed=1)
    h = Host(rt, router=True)
    i0 = h.add_interface("eth0", mac=MAC)
    h.add_interface("eth1")
    h.add_address("eth0", "192.0.2.1/24")
    h.add_address("eth0", "2001:db8::1/64")
    h.add_address("eth1", "198.51.100.1/24")
    rt.run(until=3)
    return rt, h, i0


_SEEDS = [
    bytes(IP(src="192.0.2.9", dst="192.0.2.1") / ICMP() / (b"x" * 20)),
    bytes(IP(src="192.0.2.9", dst="198.51.100.5", flags="MF") / UDP() / (b"x" * 16)),
    bytes(IPv6(src="2001:db8::9", dst="2001:db8::1") / ICMPv6EchoRequest()),
    bytes(IPv6(src="fe80::9", dst="ff02::1", hlim=255) / ICMPv6ND_RA() /
          ICMPv6NDOptPrefixInfo(prefix="2001:db8:9::")),
    bytes(IPv6(src="2001:db8::9", dst="2001:db8::1") / IPv6ExtHdrFragment(m=1) / (b"y" * 16)),
    bytes(ARP(op=1, psrc="192.0.2.9", pdst="192.0.2.1", hwsrc="02:00:00:00:00:09")),
]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(_SEEDS) - 1), st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)),
                                                 max_size=6),
       st.integers(0, 200))
def test_engine_counts_and_drops_mutated_packets(seed, flips, cut):
    rt, h, iface = _host()
    pkt = bytearray(_SEEDS[seed])
    for pos, val in flips:
        if pos < len(pkt):
            pkt[pos] = val
    pkt = pkt[:max(0, len(pkt) - cut)] if cut < 40 else pkt
    et = {0: b"\x08\x00", 1: b"\x08\x00", 5: b"\x08\x06"}.get(seed, b"\x86\xdd")
    frame = bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:09")) [:12] + et + bytes(pkt)
    iface.port.receive(frame)
    rt.run(until=rt.now() + 15)  # let any resolution it started finish or fail
    # and the host still answers a well-formed ping
    out = []
    iface.port.attach(out.append)
    iface.port.receive(bytes(Ether(dst="02:00:00:00:00:01", src="02:00:00:00:00:09") /
                             IP(src="192.0.2.9", dst="192.0.2.1") / ICMP(id=1, seq=1)))
    rt.run(until=rt.now() + 5)
    assert any(ICMP in Ether(f) and Ether(f)[ICMP].type == 0 for f in out) or \
        any(ARP in Ether(f) for f in out)


def test_dhcpv6_messages_vs_scapy():
    from scapy.layers.dhcp6 import (
        DHCP6_Reply,
        DHCP6_Solicit,
        DHCP6OptClientId,
        DHCP6OptDNSServers,
        DHCP6OptIA_NA,
        DHCP6OptIAAddress,
        DHCP6OptServerId,
    )

    ours = dhcp6.build(dhcp6.SOLICIT, 0xABCDE, [dhcp6.option(dhcp6.OPT_CLIENTID,
                                                              dhcp6.duid_ll(MAC)),
                                                 dhcp6.ia_na(7)])
    sc = DHCP6_Solicit(ours)
    assert sc.trid == 0xABCDE and sc[DHCP6OptIA_NA].iaid == 7
    assert bytes(sc[DHCP6OptClientId].duid)[-6:] == MAC
    reply = bytes(DHCP6_Reply(trid=5) / DHCP6OptClientId() / DHCP6OptServerId() /
                  DHCP6OptIA_NA(iaid=7, T1=100, T2=160, ianaopts=[
                      DHCP6OptIAAddress(addr="2001:db8::77", preflft=200, validlft=300)]) /
                  DHCP6OptDNSServers(dnsservers=["2001:db8::53"]))
    m = dhcp6.parse(reply)
    assert m.msg_type == dhcp6.REPLY and m.xid == 5
    iaid, t1, t2, addrs, status = dhcp6.parse_ia_na(m.get(dhcp6.OPT_IA_NA))
    assert (iaid, t1, t2, status) == (7, 100, 160, 0)
    assert addrs == [dhcp6.IaAddress(ipaddress.IPv6Address("2001:db8::77").packed, 200, 300)]
    assert m.get(dhcp6.OPT_DNS_SERVERS) == ipaddress.IPv6Address("2001:db8::53").packed
