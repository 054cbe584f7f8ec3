"""Human- and machine-readable descriptions of graphs and artifacts (for `spikeforge inspect`)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import nir
import numpy as np

from . import graph as G
from .artifact import Artifact
from .names import original_name


def _summary(arr: np.ndarray) -> str:
    a = np.asarray(arr, dtype=np.float64)
    if a.size == 1:
        return f"{a.ravel()[0]:.6g}"
    nz = np.count_nonzero(a) / a.size
    return f"shape {a.shape}, range [{a.min():.4g}, {a.max():.4g}], mean {a.mean():.4g}, nonzero {nz:.0%}"


def describe_graph(graph: nir.NIRGraph) -> dict[str, Any]:
    g = G.flatten(graph)
    sched = G.schedule(g)
    nodes = []
    for name in sched.order:
        node = g.nodes[name]
        params = {}
        for f in fields(node):
            if f.name in ("input_type", "output_type", "metadata"):
                continue
            v = getattr(node, f.name)
            if v is None:
                continue
            try:
                params[f.name] = _summary(np.asarray(v))
            except (TypeError, ValueError):
                params[f.name] = str(v)
        meta = dict(getattr(node, "metadata", {}) or {})
        nodes.append({
            "name": name,
            "original_name": original_name(node, name),
            "type": type(node).__name__,
            "input": G.node_shape(node, "input"),
            "output": G.node_shape(node, "output"),
            "params": params,
            "conventions": {k: (v if isinstance(v, (str, int, float, bool)) else str(v)) for k, v in meta.items()},
        })
    meta = {k: (v if isinstance(v, (str, int, float, bool)) else str(v)) for k, v in (g.metadata or {}).items()}
    return {"nodes": nodes, "edges": [list(e) for e in g.edges], "recurrent": [list(e) for e in sched.recurrent],
            "metadata": meta}


def describe_artifact(art: Artifact) -> dict[str, Any]:
    info: dict[str, Any] = {"board": art.board, "backend": art.backend, "input_hash": art.input_hash,
                            "options": art.options.to_dict(), "files": sorted(art.files),
                            "arrays": {k: list(v.shape) for k, v in sorted(art.arrays.items())}}
    for key, value in art.meta.items():
        info.setdefault(key, value)
    info["graph"] = describe_graph(art.program if art.program is not None else art.reference)
    return info
