"""AvgPool2d -> SumPool2d with the 1/(kh*kw) scale folded into the next weighted node (exact in float).

Why: on fabrics that add pulses (SFQ merger trees, event-driven cores) a sum pool is free wiring while a
mean needs a divider. Scaling is linear, so mean-pool -> W equals sum-pool -> W/(kh*kw) exactly (up to float
rounding), provided every path from the pool reaches one weighted node through shape-only ops (Flatten) and
that node has no other input (its weights scale only the pool's contribution). Otherwise the pool is kept
and the backend says what it cannot lower.
"""

from __future__ import annotations

import copy
from typing import Any

import nir
import numpy as np

from ._common import clone, predecessors, rebuild, set_meta, successors

_FOLD_INTO = (nir.Affine, nir.Linear, nir.Conv2d)


def _consumer(graph: nir.NIRGraph, pool: str) -> str | None:
    """The weighted node the pool reaches through Flatten-only single paths, or None."""
    cur = pool
    for _ in range(len(graph.nodes)):       # bounded by the graph size
        succ = successors(graph, cur)
        if len(succ) != 1 or predecessors(graph, succ[0]) != [cur]:
            return None
        nxt = succ[0]
        node = graph.nodes[nxt]
        if isinstance(node, _FOLD_INTO):
            return nxt
        if not isinstance(node, nir.Flatten):
            return None
        cur = nxt
    return None


def avgpool_to_sumpool(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, list[dict[str, Any]]]:
    """Rewrite every foldable AvgPool2d; return (graph, one record per rewrite). The input is not changed."""
    pools = [n for n, node in graph.nodes.items() if isinstance(node, nir.AvgPool2d)]
    if not pools:
        return graph, []
    g = clone(graph)
    done: list[dict[str, Any]] = []
    for name in pools:
        target = _consumer(g, name)
        if target is None:
            continue
        old = g.nodes[name]
        k = np.broadcast_to(np.asarray(old.kernel_size, dtype=np.int64).ravel(), (2,))
        scale = 1.0 / float(k[0] * k[1])
        new = nir.SumPool2d(kernel_size=np.asarray(old.kernel_size), stride=np.asarray(old.stride),
                            padding=np.asarray(old.padding), metadata=dict(getattr(old, "metadata", None) or {}))
        for attr in ("input_type", "output_type"):
            if hasattr(old, attr):
                setattr(new, attr, copy.deepcopy(getattr(old, attr)))
        set_meta(new, "spikeforge.rewritten_from", "AvgPool2d")
        g.nodes[name] = new
        w = g.nodes[target]
        w.weight = np.asarray(w.weight) * np.asarray(scale, dtype=np.asarray(w.weight).dtype)
        set_meta(w, "spikeforge.folded_pool_scale", scale)
        done.append({"pool": name, "into": target, "scale": scale})
    return rebuild(g.nodes, g.edges, g.metadata), done
