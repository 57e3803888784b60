"""Programs run by the Linux kernel's stack inside a test namespace (python3 -c ...).

Each prints one JSON line. Data is the vnet test pattern (bytes 0..250 repeated), so
both ends check it byte for byte without shipping it around.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any


async def ns_python(ns, code: str, *args: str) -> asyncio.subprocess.Process:
    """Run `python3 -c code args...` inside namespace `ns`, its output piped."""
    return await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns.name, sys.executable, "-c", code, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)


@contextlib.contextmanager
def vnet_host(ctl: str, *args: str) -> Iterator[Callable[..., tuple[int, Any]]]:
    """A `vnet host ... --ctl CTL` daemon for the block's duration; yields `vctl(*words)`,
    which runs `vnet ctl --json CTL words...` and returns (exit status, JSON or text)."""
    host = subprocess.Popen([sys.executable, "-m", "vnet", "host", *args, "--ctl", ctl],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def vctl(*words: str) -> tuple[int, Any]:
        r = subprocess.run([sys.executable, "-m", "vnet", "ctl", "--json", ctl, *words],
                           capture_output=True, text=True, timeout=60)
        try:
            return r.returncode, json.loads(r.stdout)
        except ValueError:
            return r.returncode, r.stdout + r.stderr

    try:
        for _ in range(100):
            if os.path.exists(ctl):
                break
            time.sleep(0.1)
        yield vctl
    finally:
        subprocess.run([sys.executable, "-m", "vnet", "ctl", ctl, "shutdown"],
                       capture_output=True, timeout=10)
        try:
            host.wait(10)
        except subprocess.TimeoutExpired:
            host.kill()
            host.wait()
        if host.stdout:
            host.stdout.close()


class UdpReverser(asyncio.DatagramProtocol):
    """The vnet side for UDP_CLIENT: answers each datagram with its bytes reversed."""

    def connection_made(self, transport) -> None:
        self.t = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.t.sendto(data[::-1], addr)


async def json_result(proc: asyncio.subprocess.Process, timeout: float = 40) -> dict:
    """The last JSON line a kernel-side program printed (it must exit 0)."""
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, (out.decode(), err.decode())
    return json.loads(lines[-1])

PATTERN_FN = '''
P = bytes(range(251))
def pattern(n, off=0):
    s = off % 251
    return (P * ((s + n) // 251 + 1))[s:s + n]
'''

# the start of every kernel TCP server here: listen on ADDR PORT (argv 1, 2), say "ready"
LISTEN_ONE = '''
import json, socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
ls = socket.socket(fam, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind((sys.argv[1], int(sys.argv[2])))
ls.listen(1)
print("ready", flush=True)
ls.settimeout(30)
'''

# kernel client -> vnet echo server: send N pattern bytes, half-close, read the echo
TCP_CLIENT = PATTERN_FN + '''
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=30)
t0 = time.monotonic()
data = pattern(n)
got = bytearray()
s.setblocking(True)
import threading
def rx():
    while True:
        d = s.recv(1 << 16)
        if not d:
            break
        got.extend(d)
th = threading.Thread(target=rx); th.start()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
th.join(60)
dt = time.monotonic() - t0
print(json.dumps({"sent": n, "received": len(got), "equal": bytes(got) == data, "seconds": dt}))
'''

# kernel server for vnet clients: accept one connection, echo everything, close at EOF;
# prints how much came and whether it was the pattern
TCP_ECHO_SERVER = PATTERN_FN + LISTEN_ONE + '''
c, peer = ls.accept()
c.settimeout(30)
n = 0
ok = True
while True:
    d = c.recv(1 << 16)
    if not d:
        break
    ok = ok and d == pattern(len(d), n)
    n += len(d)
    c.sendall(d)
c.close()
print(json.dumps({"received": n, "pattern_ok": ok, "peer": peer[0]}), flush=True)
'''

UDP_CLIENT = '''
import json, socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.settimeout(2)
out = []
for i in range(5):
    msg = bytes([i]) * (100 + 700 * i)  # the last ones fragment over a 1500 MTU link
    for _ in range(3):
        s.sendto(msg, (sys.argv[1], int(sys.argv[2])))
        try:
            d, a = s.recvfrom(65535)
            out.append(d == msg[::-1])
            break
        except socket.timeout:
            continue
    else:
        out.append(False)
print(json.dumps({"replies_ok": out}))
'''

UDP_ECHO_SERVER = '''
import json, socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
s.settimeout(10)
print("ready", flush=True)
d, a = s.recvfrom(65535)
s.sendto(d.upper(), a)
print(json.dumps({"got": d.decode(), "from": a[0]}), flush=True)
'''

# SYN flood from spoofed off-link sources, as raw Ethernet frames on the TAP's kernel side
SYN_FLOOD = '''
import json, random, socket, struct, sys
ifname, dst_mac, dst_ip, port, count = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
src_mac = open(f"/sys/class/net/{ifname}/address").read().strip()
src_mac = bytes.fromhex(src_mac.replace(":", ""))
def csum(b):
    if len(b) % 2:
        b += b"\\0"
    v = sum(struct.unpack(f"!{len(b)//2}H", b))
    while v >> 16:
        v = (v & 0xFFFF) + (v >> 16)
    return ~v & 0xFFFF
dst = socket.inet_aton(dst_ip)
rng = random.Random(1)
sent = 0
for i in range(count):
    src = bytes([198, 18, rng.randrange(256), rng.randrange(1, 255)])
    sport = rng.randrange(1024, 65535)
    opts = b"\\x02\\x04\\x05\\xb4"
    tcp = struct.pack("!HHIIBBHHH", sport, port, rng.getrandbits(32), 0, 6 << 4, 2, 65535, 0, 0) + opts
    ph = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", csum(ph + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    s.send(dst_mac + src_mac + b"\\x08\\x00" + ip + tcp)
    sent += 1
print(json.dumps({"sent": sent}))
'''
