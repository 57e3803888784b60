"""Test helpers for phy tests: a scapy-built ARP/ICMP answerer on a Port."""

from __future__ import annotations

from vnet.link.port import Port

MY_MAC = "02:00:5e:00:00:02"


def responder(port: Port, my_ip: str, seen: list[str]):
    """Answer ARP for my_ip and ICMP echo to it, using scapy to parse and build."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import ARP, Ether

    def on_frame(frame: bytes) -> None:
        pkt = Ether(frame)
        if ARP in pkt and pkt[ARP].op == 1 and pkt[ARP].pdst == my_ip:
            seen.append("arp")
            reply = Ether(dst=pkt.src, src=MY_MAC) / ARP(
                op=2, hwsrc=MY_MAC, psrc=my_ip, hwdst=pkt.src, pdst=pkt[ARP].psrc)
            port.send(bytes(reply))
        elif IP in pkt and ICMP in pkt and pkt[IP].dst == my_ip and pkt[ICMP].type == 8:
            seen.append("echo")
            ip = pkt[IP]
            reply = Ether(dst=pkt.src, src=MY_MAC) / IP(src=my_ip, dst=ip.src) / ICMP(
                type=0, id=pkt[ICMP].id, seq=pkt[ICMP].seq) / bytes(pkt[ICMP].payload)
            port.send(bytes(reply))

    port.receive = on_frame
