import re

from vnet.cli.main import main


def test_demo_in_simulated_time(tmp_path, capsys):
    pcap = tmp_path / "demo.pcapng"
    assert main(["demo", "--pcap", str(pcap), "--pings", "100"]) == 0
    out = capsys.readouterr().out
    assert "spanning tree converged" in out
    # exactly one port blocked breaks the one loop
    blocked = re.search(r"blocked to break the loop: (.*)", out).group(1)
    assert len(blocked.split(", ")) == 1 and blocked != "none"
    m = re.search(r"(\d+) broadcasts from h1 reached h2 (\d+)x and h3 (\d+)x", out)
    n, h2, h3 = map(int, m.groups())
    assert h2 <= n and h3 <= n and h2 + h3 >= n  # no storm, not everything lost
    assert pcap.stat().st_size > 1000
    assert re.search(r"SLAAC from the router's RAs after [\d.]+ s: a=2001:db8:1:\S+ +b=2001:db8:2:", out)
    assert re.search(r"ping a -> 10.0.2.2: 10 sent, \d+ received", out)
    assert re.search(r"TCP a -> .* 5,000,000 bytes in .* Mbit/s goodput .* data intact", out)


def test_demo_is_deterministic(tmp_path, capsys):
    outs = []
    for i in range(2):
        assert main(["demo", "--pcap", str(tmp_path / f"d{i}.pcapng"), "--pings", "50"]) == 0
        outs.append(re.sub(r"simulated .* wall time.*|capture of .*", "", capsys.readouterr().out))
    assert outs[0] == outs[1]


def test_demo_rejects_bad_loss(capsys):
    assert main(["demo", "--loss", "150"]) == 2
    assert "not a percentage" in capsys.readouterr().err


def test_demo_in_real_time_runs_the_same_engines(tmp_path, capsys):
    pcap = tmp_path / "rt.pcapng"
    assert main(["demo", "--realtime", "--pcap", str(pcap), "--pings", "20",
                 "--tcp-bytes", "300000"]) == 0
    out = capsys.readouterr().out
    assert "spanning tree converged" in out and "data intact" in out
