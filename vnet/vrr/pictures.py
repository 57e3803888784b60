"""Pictures of a simulated VRR network (matplotlib, PNG).

* ring.png: the physical graph in grey, each node placed by position (disk graphs)
  or on a circle by virtual address, and the vset-paths drawn over it: every
  path from a node to its clockwise ring neighbour, hop by hop, coloured by
  position on the ring;
* tables.png: histogram of routing-table entries per node.
"""

from __future__ import annotations

import math
import os
from typing import Any

from vnet.vrr.node import M


def require_matplotlib() -> None:
    """Fail before a long run, in one line, if the plots could not be drawn after it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise RuntimeError("plots need matplotlib: pip install 'vnet[plot]' "
                           "(or run without --plot/--out)") from None


def _positions(net: Any) -> list[tuple[float, float]]:
    if net.pos is not None:
        return net.pos
    out = []
    for a in net.addrs:
        t = 2 * math.pi * a / M
        out.append((0.5 + 0.45 * math.sin(t), 0.5 + 0.45 * math.cos(t)))
    return out


def _path(net: Any, i: int, j: int, limit: int = 256) -> list[int]:
    """Follow the routing tables from node i to node j (vset-path hop by hop)."""
    index = {a: k for k, a in enumerate(net.addrs)}
    hops = [i]
    cur = i
    for _ in range(limit):
        if cur == j:
            return hops
        nh = net.nodes[cur].next_hop(net.addrs[j])
        if nh is None or nh not in index:
            return hops
        cur = index[nh]
        hops.append(cur)
    return hops


def ring_picture(net: Any, path: str, max_nodes: int = 2000) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pos = _positions(net)
    alive = sorted(net.alive)
    fig, ax = plt.subplots(figsize=(8, 8))
    for u in alive[:max_nodes]:
        for v in net.g[u]:
            if u < v and v in net.alive:
                ax.plot([pos[u][0], pos[v][0]], [pos[u][1], pos[v][1]], color="0.85", lw=0.5,
                        zorder=1)
    order = sorted(alive, key=lambda k: net.addrs[k])
    cmap = plt.get_cmap("hsv")
    for rank, i in enumerate(order[:max_nodes]):
        j = order[(rank + 1) % len(order)]
        hops = _path(net, i, j)
        xs = [pos[k][0] for k in hops]
        ys = [pos[k][1] for k in hops]
        ax.plot(xs, ys, color=cmap(rank / len(order)), lw=1.0, alpha=0.8, zorder=2)
    ax.scatter([pos[k][0] for k in alive], [pos[k][1] for k in alive], s=6, c="k", zorder=3)
    ax.set_title(f"VRR ring over the physical graph: {len(alive)} nodes, vset-paths "
                 f"to the clockwise neighbour (colour = ring position)", fontsize=9)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def tables_picture(net: Any, path: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [len(net.nodes[i].routes) for i in net.alive]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(sizes, bins=40, color="steelblue")
    ax.set_xlabel("routing-table entries (vset-paths through the node)")
    ax.set_ylabel("nodes")
    ax.set_title(f"{len(sizes)} nodes: mean {sum(sizes) / max(1, len(sizes)):.1f}, "
                 f"max {max(sizes, default=0)}", fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_all(net: Any, res: dict[str, Any], outdir: str) -> list[str]:
    os.makedirs(outdir, exist_ok=True)
    stem = f"{res['scenario']}-{res['topology']}-{res['n']}"
    return [ring_picture(net, os.path.join(outdir, f"ring-{stem}.png")),
            tables_picture(net, os.path.join(outdir, f"tables-{stem}.png"))]


def scaling_plot(rows: list[dict[str, Any]], path: str) -> str:
    """Table size, control messages and wall time against N (from bench rows)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(rows, key=lambda r: r["n"])
    ns = [r["n"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(ns, [r["rt_mean"] for r in rows], "o-", label="mean")
    axes[0].plot(ns, [r["rt_max"] for r in rows], "s--", label="max")
    axes[0].set_title("routing-table entries per node")
    axes[0].legend()
    axes[1].plot(ns, [r["ctl_nonhello_per_node"] for r in rows], "o-")
    axes[1].set_title("control messages per node (not hellos)")
    axes[2].plot(ns, [r["wall_s"] for r in rows], "o-")
    axes[2].set_title("wall time (s), one core")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("N")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
