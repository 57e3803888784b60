"""Two hosts and a router on vnet switches, in simulated time."""

from __future__ import annotations

import ipaddress

from tests.stack.topo import Net


def test_slaac_from_router_advertisements():
    net = Net()
    net.rt.run(until=10)
    for h, prefix in ((net.a, "2001:db8:1::/64"), (net.b, "2001:db8:2::/64")):
        addr = ipaddress.IPv6Address(net.slaac(h))
        assert addr in ipaddress.IPv6Network(prefix)
        assert h.default_routers(), "the router's RA must install a default router"
        lls = [x for x in h.describe_addresses() if x["origin"] == "link-local"]
        assert lls[0]["state"] == "preferred"


def test_ping_and_ping6_through_router():
    net = Net()
    net.rt.run(until=10)
    got = net.ping(net.a, "10.0.2.2")
    assert [(str(m.src), n) for m, n in got] == [("10.0.2.2", 56)]
    assert got[0][0].hop_limit == 63  # one router on the way
    b6 = net.slaac(net.b)
    got = net.ping(net.a, b6, seq=2)
    assert [(str(m.src), n) for m, n in got] == [(b6, 56)]
    assert got[0][0].hop_limit == 63
    assert net.r.stats["ip4_forwarded"] >= 2 and net.r.stats["ip6_forwarded"] >= 2


def test_large_pings_fragment_and_reassemble():
    net = Net()
    net.rt.run(until=10)
    got = net.ping(net.a, "10.0.2.2", size=5000)
    assert [n for _, n in got] == [5000]
    assert net.a.stats["ip4_frag_tx"] == 4 and net.b.stats["ip4_reassembled"] == 1
    got = net.ping(net.a, net.slaac(net.b), size=5000, seq=2)
    assert [n for _, n in got] == [5000]
    assert net.a.stats["ip6_frag_tx"] == 4 and net.b.stats["ip6_reassembled"] == 1
