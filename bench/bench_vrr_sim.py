"""VRR simulator at scale: scenarios x sizes, one process, one core.

    python bench/bench_vrr_sim.py --sizes 100,1000 --scenarios static,failures,churn,partition
    python bench/bench_vrr_sim.py --sizes 10000 --scenarios static --settle 90   # ~1 h, converges at 42.5 s

Prints one row per run (delivery ratio, stretch against BFS shortest paths on the
same graph, routing-table entries per node, control messages per node,
convergence time in simulated seconds, wall time) and writes JSON rows and a
scaling plot with --out DIR. Results are recorded in docs/results-vrr.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vnet.vrr import sim  # noqa: E402

COLS = ("scenario", "n", "degree", "converge_s", "delivery", "stretch", "rt_mean", "rt_max",
        "ctl_nonhello_per_node", "hello_per_node", "heal_s", "merge_s", "split_s",
        "delivery_after", "delivery_churn", "sim_s", "events", "frames", "wall_s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="100,300,1000")
    p.add_argument("--scenarios", default="static,failures,churn,partition")
    p.add_argument("--topology", default="disk")
    p.add_argument("--degree", type=float, default=8.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--settle", type=float, default=120.0)
    p.add_argument("--pairs", type=int, default=200)
    p.add_argument("--out", help="directory for results.json and plots")
    a = p.parse_args()
    if a.out:
        from vnet.vrr.pictures import require_matplotlib
        try:
            require_matplotlib()
        except RuntimeError as e:
            print(f"bench_vrr_sim: {e}", file=sys.stderr)
            return 2
    rows = []
    print(" | ".join(COLS))
    for n in (int(x) for x in a.sizes.split(",")):
        for sc in a.scenarios.split(","):
            r = sim.run_scenario(sc, n, topology=a.topology, degree=a.degree, seed=a.seed,
                                 pairs=a.pairs, settle=a.settle)
            net = r.pop("_net")
            rows.append(r)
            print(" | ".join("-" if r.get(c) is None else str(r.get(c)) for c in COLS), flush=True)
            if a.out:
                os.makedirs(a.out, exist_ok=True)
                with open(os.path.join(a.out, "results.json"), "w") as f:
                    json.dump(rows, f, indent=1)
                if n <= 2000 and sc == "static":
                    from vnet.vrr.pictures import plot_all
                    plot_all(net, r, a.out)
            del net
    if a.out and len({r["n"] for r in rows}) > 1:
        from vnet.vrr.pictures import scaling_plot
        scaling_plot([r for r in rows if r["scenario"] == "static"],
                     os.path.join(a.out, "scaling.png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
