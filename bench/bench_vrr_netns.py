"""Real daemon figures (root): ping RTT and TCP goodput across a chain of namespaces running
`vnet vrr` (4 VRR hops, kernel TAPs at both ends) beside a direct veth between two namespaces.

    sudo python bench/bench_vrr_netns.py [--nodes 5] [--seconds 5]

Prints a small table and the ratio VRR/direct measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid


def sh(*cmd, check=True, timeout=60):
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def ns_run(ns, *cmd, **kw):
    return sh("ip", "netns", "exec", ns, *cmd, **kw)


def ping(ns, dst, n=20):
    r = ns_run(ns, "ping", "-q", "-c", str(n), "-i", "0.2", "-W", "2", dst, check=False)
    m = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)", r.stdout)
    return float(m.group(2)) if m and " 0% packet loss" in r.stdout else None


def iperf(server_ns, client_ns, dst, seconds):
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        r = ns_run(client_ns, "iperf3", "-c", dst, "-t", str(seconds), "-J",
                   timeout=seconds + 30, check=False)
        data = json.loads(r.stdout)
        return data["end"]["sum_received"]["bits_per_second"] / 1e6
    except (ValueError, KeyError):
        return None
    finally:
        srv.kill()
        srv.wait()


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, default=5)
    p.add_argument("--seconds", type=int, default=5)
    a = p.parse_args()
    if os.geteuid() != 0:
        print("bench_vrr_netns: needs root (namespaces, TAPs)", file=sys.stderr)
        return 2
    tag = uuid.uuid4().hex[:5]
    nss = [f"vb{tag}{i}" for i in range(a.nodes)]
    direct = [f"vb{tag}da", f"vb{tag}db"]
    tmp = tempfile.mkdtemp()
    procs = []
    try:
        for ns in nss + direct:
            sh("ip", "netns", "add", ns)
            ns_run(ns, "ip", "link", "set", "lo", "up")
        sh("ip", "link", "add", "dva", "netns", direct[0], "type", "veth", "peer", "name", "dvb",
           "netns", direct[1])
        for ns, i, addr in ((direct[0], "dva", "10.98.0.1/24"), (direct[1], "dvb", "10.98.0.2/24")):
            ns_run(ns, "ip", "addr", "add", addr, "dev", i)
            ns_run(ns, "ip", "link", "set", i, "up")
        ifs = [[] for _ in nss]
        for k in range(a.nodes - 1):
            ia, ib = f"vb{tag}{k}a", f"vb{tag}{k}b"
            sh("ip", "link", "add", ia, "netns", nss[k], "type", "veth", "peer", "name", ib,
               "netns", nss[k + 1])
            for ns, i in ((nss[k], ia), (nss[k + 1], ib)):
                ns_run(ns, "sysctl", "-qw", f"net.ipv6.conf.{i}.disable_ipv6=1")
                ns_run(ns, "ip", "link", "set", i, "up")
            ifs[k].append(ia)
            ifs[k + 1].append(ib)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for i, ns in enumerate(nss):
            cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "vnet", "vrr", "--tap", "vrr0",
                   "--ctl", f"{tmp}/n{i}.sock"]
            for f in ifs[i]:
                cmd += ["--iface", f]
            procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        for i, ns in enumerate(nss):
            for _ in range(100):  # wait for the daemon's TAP
                if ns_run(ns, "ip", "link", "show", "vrr0", check=False).returncode == 0:
                    break
                time.sleep(0.2)
            ns_run(ns, "ip", "addr", "add", f"10.99.0.{i + 1}/24", "dev", "vrr0")
        time.sleep(12)  # ring formation, address publication
        last = f"10.99.0.{a.nodes}"
        for _ in range(10):  # warm up: ARP both ways through the DHT
            if ping(nss[0], last, 3) is not None:
                break
        rows = {
            "ping_rtt_ms": (ping(nss[0], last), ping(direct[0], "10.98.0.2")),
            "tcp_mbit_s": (iperf(nss[-1], nss[0], last, a.seconds),
                           iperf(direct[1], direct[0], "10.98.0.2", a.seconds)),
        }
        print(f"{'metric':<14} {'vrr ' + str(a.nodes - 1) + ' hops':>14} {'direct veth':>12} "
              f"{'ratio':>8}")
        for k, (v, d) in rows.items():
            ratio = f"{v / d:.3g}" if v and d else "-"
            print(f"{k:<14} {v if v is not None else '-':>14} {d if d is not None else '-':>12} "
                  f"{ratio:>8}")
        return 0
    finally:
        for pr in procs:
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(5)
            except subprocess.TimeoutExpired:
                pr.kill()
        for ns in nss + direct:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
