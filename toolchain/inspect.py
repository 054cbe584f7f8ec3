"""Human- and machine-readable descriptions of graphs and artifacts (for `spikeforge inspect`).

Why: an artifact holds whole weight matrices and integer tables; printing them buries what a user
wants to see. By default every array is summarised (dtype, shape, range, nonzeros) and nested
dicts are flattened into short `key=value` lists; `full=True` (`inspect --full`) keeps the values.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import nir
import numpy as np

from . import graph as G
from .artifact import Artifact
from .names import original_name


def _summary(arr: np.ndarray) -> str:
    """One line for an array: dtype, shape, range (or its one value) and the fraction of nonzeros."""
    a = np.asarray(arr)
    if a.size == 1:
        return f"{a.ravel()[0]:.6g}" if a.dtype.kind in "biuf" else str(a.ravel()[0])
    if a.dtype.kind not in "biuf":
        return f"{a.dtype} {a.shape}"
    if a.size <= 4:  # strides, paddings, shapes: the values say more than a summary
        return "[" + ", ".join(f"{v:.6g}" for v in a.ravel().tolist()) + "]"
    lo, hi = float(a.min()), float(a.max())
    if lo == hi:
        return f"{a.dtype} {a.shape} all {lo:.4g}"
    nz = np.count_nonzero(a) / max(1, a.size)
    return f"{a.dtype} {a.shape} [{lo:.4g}, {hi:.4g}]" + (f", nonzero {nz:.0%}" if nz < 1 else "")


def summarise(value: Any, full: bool = False, depth: int = 0) -> Any:
    """A value as inspect shows it: arrays and long lists summarised unless `full`."""
    if full:
        return value
    if isinstance(value, np.ndarray):
        return _summary(value)
    if isinstance(value, dict):
        if depth >= 1:
            return "{" + ", ".join(f"{k}={summarise(v, full, depth + 1)}" for k, v in value.items()) + "}"
        return {k: summarise(v, full, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value) and len(value) > 8:
            return _summary(np.asarray(value))
        if len(value) > 8 or any(isinstance(v, (dict, list, tuple)) for v in value):
            return f"{len(value)} entries (--full lists them)"
        return [summarise(v, full, depth + 1) for v in value]
    if isinstance(value, str) and len(value) > 80:
        return value[:64] + f"... ({len(value)} chars)"
    return value


def _brief(v: Any) -> Any:
    """A metadata value in one short line: a dict keeps its short scalar entries and counts the rest."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, (int, float, bool)) or (isinstance(v, str) and len(v) <= 80):
        return v
    if isinstance(v, dict):
        shown = [f"{k}={x}" for k, x in v.items()
                 if isinstance(x, (int, float, bool, np.number, np.bool_)) or (isinstance(x, str) and len(x) <= 24)]
        hidden = len(v) - len(shown)
        return ", ".join(shown) + (f" (+{hidden} more: --full)" if hidden else "")
    return summarise(v)


def _scalar(v: Any) -> Any:
    return v if isinstance(v, (str, int, float, bool)) else str(v)


def describe_graph(graph: nir.NIRGraph, full: bool = False) -> dict[str, Any]:
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
                arr = np.asarray(v)
                params[f.name] = arr.tolist() if full else _summary(arr)
            except (TypeError, ValueError):
                params[f.name] = str(v)
        meta = dict(getattr(node, "metadata", {}) or {})
        conventions = {k: summarise(v, full) if full or isinstance(v, (dict, list, np.ndarray)) else _scalar(v)
                       for k, v in meta.items()}
        if not full:
            conventions = {k: _brief(v) for k, v in meta.items()}
        nodes.append({
            "name": name,
            "original_name": original_name(node, name),
            "type": type(node).__name__,
            "input": G.node_shape(node, "input"),
            "output": G.node_shape(node, "output"),
            "params": params,
            "conventions": conventions,
        })
    meta = {k: (summarise(v, full) if full else _brief(v)) for k, v in (g.metadata or {}).items()}
    return {"nodes": nodes, "edges": [list(e) for e in g.edges], "recurrent": [list(e) for e in sched.recurrent],
            "metadata": meta}


def describe_artifact(art: Artifact, full: bool = False) -> dict[str, Any]:
    from .display import artifact_warnings, decisions

    arrays = ({k: v for k, v in sorted(art.arrays.items())} if full else
              {k: _summary(v) for k, v in sorted(art.arrays.items())})
    info: dict[str, Any] = {"board": art.board, "backend": art.backend, "input_hash": art.input_hash,
                            "options": art.options.to_dict(), "files": sorted(art.files),
                            "arrays": arrays, "decisions": decisions(art.meta),
                            "warnings": artifact_warnings(art.meta)}
    for key, value in art.meta.items():  # as recorded: --json consumers read these (the text view summarises)
        info.setdefault(key, value)
    info["graph"] = describe_graph(art.program if art.program is not None else art.reference, full)
    return info
