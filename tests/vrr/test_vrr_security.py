"""Network key: forged, modified and replayed frames are rejected and counted; no key, no join."""

from __future__ import annotations

import os

from vnet.vrr import sim
from vnet.vrr.security import NetworkKey, ReplayWindow, load_key
from vnet.wire import vrr as W

KEY = NetworkKey(b"k" * 32)


def _secured_line(n=5):
    net = sim.build(sim.line(n), seed=6, key=KEY)
    assert net.run_until_converged(60) is not None
    return net


def test_secured_ring_forms_and_carries_encrypted_data():
    net = _secured_line()
    seen = []
    orig = net.medium._tx

    def spy(i, frame):
        seen.append(frame)
        orig(i, frame)
    for i, p in enumerate(net.medium.ports):
        p.attach(lambda f, i=i: spy(i, f))
    net.nodes[0].send_data(net.addrs[4], 0x88B5, (77).to_bytes(8, "big") + b"secret payload")
    net.rt.run(until=net.rt.now() + 1)
    assert net.delivered[77] == (4, 4)
    data = [f for f in seen if W.parse(f)[0] == W.DATA]
    assert data and all(b"secret payload" not in f for f in data)
    assert all(W.parse(f)[1] & W.F_AUTH and W.parse(f)[1] & W.F_ENC for f in data)


def test_forged_modified_replayed_are_rejected():
    net = _secured_line()
    victim, port = net.nodes[2], net.medium.ports[2]
    captured = []
    orig = net.medium.ports[1].transmit
    net.medium.ports[1].attach(lambda f: (captured.append(f), orig(f)))
    net.rt.run(until=net.rt.now() + 2)
    hello = next(f for f in captured if W.parse(f)[0] == W.HELLO)
    st = victim.stats
    b = dict(st)
    port.receive(hello)  # replayed (already delivered once through the medium)
    assert st["rx_replay"] == b["rx_replay"] + 1
    mod = bytearray(hello)
    mod[W.OFF + 2] ^= 0x40  # modified body
    port.receive(bytes(mod))
    assert st["rx_auth_fail"] == b["rx_auth_fail"] + 1
    forger = NetworkKey(b"x" * 32)  # forged with another key
    body = W.hello_body(999, 0, 0, [])
    f = W.build(W.BROADCAST, b"\x02" * 6, W.HELLO, W.F_ACTIVE | W.F_AUTH, 1, 0, 5, 0,
                0x020000000099, 0x020000000099, body)
    port.receive(f + forger.mac(f[14:]))
    assert st["rx_auth_fail"] == b["rx_auth_fail"] + 2
    f = W.build(W.BROADCAST, b"\x02" * 6, W.HELLO, W.F_ACTIVE, 1, 0, 6, 0, 0x020000000099,
                0x020000000099, body)
    port.receive(f)  # no MAC at all
    assert st["rx_unauth"] == b["rx_unauth"] + 1
    assert 0x020000000099 not in victim.pset
    net.rt.run(until=net.rt.now() + 3)
    assert net.ring_errors() == 0


def test_keyless_node_cannot_join():
    g = sim.line(5)
    net = sim.build(g, seed=6, key=KEY, start=False)
    from vnet.link.port import Port
    from vnet.vrr.node import VrrNode
    port = Port("keyless")
    net.nodes[4] = VrrNode(net.rt, net.addrs[4], [port], key=None)
    net.medium.attach(4, port)
    net._hook(4)
    for n in net.nodes:
        n.start()
    net.rt.run(until=40)
    outsider = net.nodes[4]
    assert net.addrs[4] not in net.nodes[3].pset  # its hellos are rejected
    assert outsider.stats["rx_unauth"] > 0
    assert all(net.addrs[4] not in n.vset for n in net.nodes[:4])
    assert all(nb.state != 2 for nb in outsider.pset.values())  # it links with nobody
    ids = sorted(net.addrs[:4])
    for n in net.nodes[:4]:
        assert n.vset == set(ids) - {n.addr}


def test_replay_window_and_key_file(tmp_path):
    w = ReplayWindow()
    assert w.accept(1, 10) and w.accept(1, 12) and w.accept(1, 11)
    assert not w.accept(1, 11) and not w.accept(1, 12)
    assert w.accept(1, 200) and not w.accept(1, 100)
    p = tmp_path / "key"
    p.write_text(os.urandom(32).hex() + "\n")
    assert len(load_key(str(p))) == 32
    p.write_text("abcd")
    try:
        load_key(str(p))
    except ValueError as e:
        assert "at least 16" in str(e)
    else:
        raise AssertionError("short key accepted")
