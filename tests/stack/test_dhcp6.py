"""DHCPv6 client against a server built with scapy, in simulated time: lease, renewal at
T1, DNS servers, and bad checksums dropped."""

from __future__ import annotations

import ipaddress

from vnet.link.link import Link
from vnet.link.port import Port
from vnet.link.switch import Switch
from vnet.runtime.sim import SimRuntime
from vnet.stack.dhcp6_client import Dhcp6Client
from vnet.stack.host import Host

SMAC = "02:00:00:00:06:01"


def server(port: Port, log: list[str], corrupt: list[bool]):
    from scapy.layers.dhcp6 import (
        DHCP6,
        DHCP6_Advertise,
        DHCP6_Reply,
        DHCP6OptClientId,
        DHCP6OptDNSServers,
        DHCP6OptIA_NA,
        DHCP6OptIAAddress,
        DHCP6OptServerId,
    )
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether

    names = {1: "solicit", 3: "request", 5: "renew", 6: "rebind"}

    def on_frame(frame: bytes) -> None:
        pkt = Ether(frame)
        if UDP not in pkt or pkt[UDP].dport != 547:
            return
        msg = pkt[UDP].payload
        if not isinstance(msg, DHCP6):
            return
        log.append(names.get(msg.msgtype, str(msg.msgtype)))
        cls = DHCP6_Advertise if msg.msgtype == 1 else DHCP6_Reply
        reply = (Ether(src=SMAC, dst=pkt.src) / IPv6(src="fe80::6:1", dst=pkt[IPv6].src) /
                 UDP(sport=547, dport=546) /
                 cls(trid=msg.trid) / DHCP6OptClientId(duid=msg[DHCP6OptClientId].duid) /
                 DHCP6OptServerId() /
                 DHCP6OptIA_NA(iaid=msg[DHCP6OptIA_NA].iaid, T1=10, T2=16, ianaopts=[
                     DHCP6OptIAAddress(addr="2001:db8:6::77", preflft=30, validlft=60)]) /
                 DHCP6OptDNSServers(dnsservers=["2001:db8:6::53"]))
        raw = bytearray(bytes(reply))
        if corrupt and corrupt.pop():
            raw[-1] ^= 0xFF  # break the UDP checksum
        port.send(bytes(raw))

    port.receive = on_frame


def test_dhcpv6_lease_renew_and_bad_checksum():
    rt = SimRuntime(seed=5)
    sw = Switch(rt, 8)
    h = Host(rt, "h")
    iface = h.add_interface("eth0")
    Link(rt, sw.add_port(), iface.port, delay=0.001)
    srv = Port("srv")
    Link(rt, sw.add_port(), srv, delay=0.001)
    log: list[str] = []
    corrupt = [True]  # the first ADVERTISE arrives with a bad checksum
    server(srv, log, corrupt)
    rt.run(until=3)  # link-local address ready
    client = Dhcp6Client(h, iface)
    client.start()
    rt.run(until=8)
    assert h.stats["dhcp6_bad"] == 1 and log[:3] == ["solicit", "solicit", "request"], log
    assert client.state == "bound"
    assert client.addrs == [ipaddress.IPv6Address("2001:db8:6::77").packed]
    rows = [a for a in h.describe_addresses() if a["origin"] == "dhcp6"]
    assert rows and rows[0]["addr"] == "2001:db8:6::77/128"
    assert h.dns_servers() == [{"server": "2001:db8:6::53", "dev": "eth0", "source": "dhcp6"}]
    rt.run(until=20)  # T1 = 10 s after binding: RENEW, answered, lifetimes extended
    assert "renew" in log and client.state == "bound"
    row = [a for a in h.describe_addresses() if a["origin"] == "dhcp6"][0]
    assert row["valid_lft"] > 50
