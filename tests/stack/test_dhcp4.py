"""DHCPv4 client against a DHCP server built with scapy (an independent implementation
of the wire format), in simulated time; and RFC 5227 conflict detection."""

from __future__ import annotations

import ipaddress

from vnet.link.link import Link
from vnet.link.port import Port
from vnet.link.switch import Switch
from vnet.runtime.sim import SimRuntime
from vnet.stack.dhcp4_client import Dhcp4Client
from vnet.stack.host import Host

SERVER_MAC = "02:00:00:00:0d:01"


def scapy_dhcp_server(port: Port, offered: str, log: list[str], nak_first: bool = False):
    from scapy.layers.dhcp import BOOTP, DHCP
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import ARP, Ether

    state = {"nak": nak_first}

    def reply(pkt, mtype: str) -> bytes:
        opts = [("message-type", mtype), ("server_id", "10.9.0.1"), ("lease_time", 100),
                ("subnet_mask", "255.255.255.0"), ("router", "10.9.0.1"),
                ("name_server", "10.9.0.53"), "end"]
        if mtype == "nak":
            opts = [("message-type", "nak"), ("server_id", "10.9.0.1"), "end"]
        return bytes(Ether(src=SERVER_MAC, dst="ff:ff:ff:ff:ff:ff") /
                     IP(src="10.9.0.1", dst="255.255.255.255") / UDP(sport=67, dport=68) /
                     BOOTP(op=2, xid=pkt[BOOTP].xid, yiaddr=offered if mtype != "nak" else "0.0.0.0",
                           chaddr=pkt[BOOTP].chaddr, flags=pkt[BOOTP].flags) / DHCP(options=opts))

    def on_frame(frame: bytes) -> None:
        pkt = Ether(frame)
        if ARP in pkt and pkt[ARP].op == 1 and pkt[ARP].pdst == "10.9.0.1":
            port.send(bytes(Ether(src=SERVER_MAC, dst=pkt.src) /
                            ARP(op=2, hwsrc=SERVER_MAC, psrc="10.9.0.1", hwdst=pkt.src,
                                pdst=pkt[ARP].psrc)))
            return
        if DHCP not in pkt:
            return
        opts = dict(o for o in pkt[DHCP].options if isinstance(o, tuple))
        mtype = opts.get("message-type")
        log.append({1: "discover", 3: "request", 4: "decline"}.get(mtype, str(mtype)))
        if mtype == 1:
            port.send(reply(pkt, "offer"))
        elif mtype == 3:
            if state["nak"]:
                state["nak"] = False
                port.send(reply(pkt, "nak"))
            else:
                port.send(reply(pkt, "ack"))

    port.receive = on_frame


def setup(offered: str = "10.9.0.50", squatter: bool = False, nak_first: bool = False):
    rt = SimRuntime(seed=3)
    sw = Switch(rt, 8)
    h = Host(rt, "h")
    iface = h.add_interface("eth0")
    Link(rt, sw.add_port(), iface.port, delay=0.001)
    srv = Port("srv")
    Link(rt, sw.add_port(), srv, delay=0.001)
    log: list[str] = []
    scapy_dhcp_server(srv, offered, log, nak_first)
    other = None
    if squatter:
        other = Host(rt, "other")
        oi = other.add_interface("eth0")
        Link(rt, sw.add_port(), oi.port, delay=0.001)
        other.add_address("eth0", f"{offered}/24")
    client = Dhcp4Client(h, iface)
    client.start()
    return rt, h, client, log, other


def test_dhcp_lease_probe_and_renew():
    rt, h, client, log, _ = setup()
    rt.run(until=20)
    assert client.state == "bound", (client.state, log, dict(h.stats))
    assert [a["addr"] for a in h.describe_addresses() if a["origin"] == "dhcp"] == ["10.9.0.50/24"]
    assert h.stats["acd_probe_tx"] == 3  # RFC 5227 probes before using the address
    r = h.routes4.get(0, 0)
    assert r is not None and r.gateway == ipaddress.IPv4Address("10.9.0.1").packed
    assert log[:2] == ["discover", "request"]
    assert h.dns_servers() == [{"server": "10.9.0.53", "dev": "eth0", "source": "dhcp"}]
    rt.run(until=70)  # T1 = 50 s: a unicast renewal REQUEST is answered with an ACK
    assert log.count("request") >= 2 and client.state == "bound"


def test_dhcp_declines_address_in_use():
    rt, h, client, log, other = setup(squatter=True)
    rt.run(until=12)
    assert "decline" in log, log
    assert h.stats["dhcp_decline"] >= 1 and h.stats["dhcp_bound"] == 0
    assert not [a for a in h.describe_addresses() if a["origin"] == "dhcp"]


def test_dhcp_nak_restarts():
    rt, h, client, log, _ = setup(nak_first=True)
    rt.run(until=30)
    assert h.stats["dhcp_nak"] == 1 and client.state == "bound", (log, client.state)


def test_ipv4_link_local_fallback_and_conflict():
    from vnet.stack.ipv4ll import Ipv4LinkLocal

    rt = SimRuntime(seed=4)
    sw = Switch(rt, 8)
    hosts = []
    for i in range(2):
        h = Host(rt, f"h{i}")
        iface = h.add_interface("eth0", mac=bytes((2, 0, 0, 0, 0x4c, i + 1)))
        Link(rt, sw.add_port(), iface.port, delay=0.001)
        hosts.append(h)
    h0, h1 = hosts
    # h0 already uses the address h1 will try first (same pseudo-random sequence as h1's)
    probe = Ipv4LinkLocal(h1, h1.ifaces[0])
    first = probe._pick()
    assert first in ipaddress.IPv4Network("169.254.0.0/16")
    h0.add_address("eth0", f"{first}/16")
    client = Dhcp4Client(h1, h1.ifaces[0], ipv4ll_fallback=True)
    client.start()
    rt.run(until=40)  # no DHCP server: after two unanswered DISCOVERs, link-local
    ll = [a for a in h1.describe_addresses() if a["origin"] == "ipv4ll"]
    assert len(ll) == 1 and ll[0]["addr"] != f"{first}/16", h1.describe_addresses()
    assert h1.stats["ipv4ll_conflict"] == 1 and h1.stats["ipv4ll_claimed"] == 1
    got = []
    h1.ping(str(first), 1, 1, 16, lambda m, n: got.append(n))
    rt.run(until=42)
    assert got == [16]
