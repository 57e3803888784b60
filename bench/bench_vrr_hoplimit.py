"""VRR hop limit against convergence and traffic: one static unit-disk run per limit.

    python bench/bench_vrr_hoplimit.py -n 3000 --limits 255,1024     # ~10 min wall

Prints, per hop limit: convergence (simulated s), frames sent until then, hop-limit
drops, setup_fail hops and the wall time. The reference is the same graph and seed
under the other limit, measured in the same run. Results: docs/results-vrr.md.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vnet.vrr import sim  # noqa: E402
from vnet.vrr.node import Config  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=3000)
    p.add_argument("--limits", default="255,1024")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--settle", type=float, default=80.0)
    a = p.parse_args()
    cols = ("hop_limit", "converge_s", "frames", "hop_limit_drops", "setup_fail_tx", "loops",
            "delivery", "wall_s")
    print(" | ".join(cols))
    base = None
    for hl in (int(x) for x in a.limits.split(",")):
        r = sim.run_scenario("static", a.n, seed=a.seed, settle=a.settle,
                             cfg=Config(hop_limit=hl))
        net = r.pop("_net")
        row = {"hop_limit": hl, **{k: sum(nd.stats[k] for nd in net.nodes)
                                   for k in ("hop_limit_drops", "setup_fail_tx", "loops")},
               **{k: r[k] for k in ("converge_s", "frames", "delivery", "wall_s")}}
        print(" | ".join("-" if row[c] is None else str(row[c]) for c in cols), flush=True)
        if base is None:
            base = row
        else:
            print(f"frames ratio {row['frames'] / base['frames']:.2f} against hop limit "
                  f"{base['hop_limit']}")
        del net
    return 0


if __name__ == "__main__":
    sys.exit(main())
