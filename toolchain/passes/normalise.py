"""Normalisation passes: rewrite a graph into the primitives a board has, without changing what it computes.

* `fold_scales`: Scale -> Affine becomes one Affine (W diag(s)); Affine -> Scale becomes diag(s) W, s b.
* `fold_affines`: Affine -> Affine (a BatchNorm exported as an element-wise Affine) becomes one Affine.
* `conv_to_affine`: Conv1d/Conv2d/SumPool2d/AvgPool2d lowered to an (mostly zero) Affine matrix, built by
  running the reference simulator's own kernel on the unit basis, so the lowering matches refsim exactly.
* `split_cubalif` / `fuse_cubalif`: CubaLIF <-> LI (the synaptic filter) + LIF, for boards with or without
  a current-based neuron. Under cuba_order="voltage_first" the split inserts a one-step Delay.
All are exact under the reference simulator's conventions (tests check outputs step by step).
"""

from __future__ import annotations

import nir
import numpy as np

from .. import graph as G
from .. import refsim
from ..errors import GraphError, UnsupportedError
from . import _common as C

MAX_LOWERED_ELEMENTS = 50_000_000


def _single_link(g: nir.NIRGraph, a: str, b: str) -> bool:
    return C.successors(g, a) == [b] and C.predecessors(g, b) == [a]


def _splice(g: nir.NIRGraph, keep: str, drop: str, new_node: nir.NIRNode) -> nir.NIRGraph:
    """Replace the chain keep->drop (or drop->keep) by `new_node` under the name `keep`."""
    nodes = {k: v for k, v in g.nodes.items() if k != drop}
    nodes[keep] = new_node
    edges = []
    for s, d in g.edges:
        if {s, d} == {keep, drop}:
            continue
        edges.append((keep if s == drop else s, keep if d == drop else d))
    return C.rebuild(nodes, list(dict.fromkeys(edges)), g.metadata)


def _affine(w: np.ndarray, b: np.ndarray | None, meta: dict | None) -> nir.NIRNode:
    w = np.asarray(w, dtype=np.float32)
    if b is None:
        return nir.Linear(weight=w, metadata=dict(meta or {}))
    return nir.Affine(weight=w, bias=np.asarray(b, dtype=np.float32), metadata=dict(meta or {}))


def _bias(node: nir.NIRNode) -> np.ndarray | None:
    return np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else None


def fold_scales(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, list[str]]:
    """Fold every Scale into a neighbouring Affine/Linear (next one preferred). Returns (graph, folded)."""
    g = C.clone(graph)
    folded: list[str] = []
    changed = True
    while changed:
        changed = False
        for name, node in list(g.nodes.items()):
            if not isinstance(node, nir.Scale):
                continue
            s = np.asarray(node.scale, dtype=np.float64).reshape(-1)
            succ, pred = C.successors(g, name), C.predecessors(g, name)
            if len(succ) == 1 and isinstance(g.nodes[succ[0]], (nir.Affine, nir.Linear)) and \
                    _single_link(g, name, succ[0]):
                nxt = g.nodes[succ[0]]
                w = np.asarray(nxt.weight, dtype=np.float64)
                if s.size not in (1, w.shape[1]):
                    continue
                new = _affine(w * s.reshape(1, -1), _bias(nxt), nxt.metadata)
                g = _splice(g, succ[0], name, new)
            elif len(pred) == 1 and isinstance(g.nodes[pred[0]], (nir.Affine, nir.Linear)) and \
                    _single_link(g, pred[0], name):
                prv = g.nodes[pred[0]]
                w = np.asarray(prv.weight, dtype=np.float64)
                if s.size not in (1, w.shape[0]):
                    continue
                b = _bias(prv)
                new = _affine(w * s.reshape(-1, 1), None if b is None else b * s, prv.metadata)
                g = _splice(g, pred[0], name, new)
            else:
                continue
            folded.append(name)
            changed = True
            break
    return g, folded


def fold_affines(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, list[str]]:
    """Compose Affine -> Affine chains (e.g. a BatchNorm exported as a diagonal Affine) into one Affine."""
    g = C.clone(graph)
    folded: list[str] = []
    changed = True
    while changed:
        changed = False
        for name, node in list(g.nodes.items()):
            if not isinstance(node, (nir.Affine, nir.Linear)):
                continue
            succ = C.successors(g, name)
            if len(succ) != 1 or not isinstance(g.nodes[succ[0]], (nir.Affine, nir.Linear)) or \
                    not _single_link(g, name, succ[0]):
                continue
            second = g.nodes[succ[0]]
            w1, w2 = np.asarray(node.weight, dtype=np.float64), np.asarray(second.weight, dtype=np.float64)
            b1, b2 = _bias(node), _bias(second)
            b = None
            if b1 is not None or b2 is not None:
                b = (w2 @ b1 if b1 is not None else 0) + (b2 if b2 is not None else 0)
                b = np.asarray(b, dtype=np.float64).reshape(-1)
            new = _affine(w2 @ w1, b, {**dict(node.metadata or {}), **dict(second.metadata or {})})
            g = _splice(g, name, succ[0], new)
            folded.append(succ[0])
            changed = True
            break
    return g, folded


def _lower_linear_kernel(g: nir.NIRGraph, name: str) -> nir.NIRNode:
    node = g.nodes[name]
    shp = G.node_shape(node, "input")
    if shp is None:
        raise UnsupportedError("cannot lower to Affine: the node's input shape is not recorded", node=name,
                               field="input_type")
    n_in = int(np.prod(shp))
    out_shape = G.node_shape(node, "output")
    n_out = int(np.prod(out_shape)) if out_shape is not None else None
    if n_out is not None and n_in * n_out > MAX_LOWERED_ELEMENTS:
        raise UnsupportedError(f"lowering to a dense Affine needs {n_in}x{n_out} entries (limit "
                               f"{MAX_LOWERED_ELEMENTS})", node=name)
    cfg = refsim.SimConfig(dt=G.get_dt(g) or 1e-4, dtype="float64")
    k = refsim.make_kernel(node, cfg)
    basis = np.eye(n_in, dtype=np.float64).reshape(n_in, *shp)
    zero = np.zeros((1, *shp), dtype=np.float64)
    b = np.asarray(k.step(zero, None)[0], dtype=np.float64).reshape(-1)
    cols = np.asarray(k.step(basis, None)[0], dtype=np.float64).reshape(n_in, -1) - b[None]
    w = cols.T
    w[np.abs(w) < 1e-12] = 0.0
    meta = dict(node.metadata or {})
    meta["spikeforge.lowered_from"] = type(node).__name__
    meta["spikeforge.sparse"] = {"nonzero": int(np.count_nonzero(w)), "density": float(np.count_nonzero(w) / w.size)}
    if out_shape is not None:
        meta["spikeforge.output_shape"] = np.asarray(out_shape, dtype=np.int64)
    has_bias = bool(np.any(b != 0)) or getattr(node, "bias", None) is not None
    return _affine(w, b if has_bias else None, meta)


def conv_to_affine(graph: nir.NIRGraph, *, drop_flatten: bool = True) -> tuple[nir.NIRGraph, list[str]]:
    """Lower Conv1d/Conv2d/SumPool2d/AvgPool2d nodes to Affine/Linear (and drop Flatten, a no-op on flat
    vectors) for boards without convolution. Returns (graph, names lowered)."""
    g = C.clone(graph)
    lowered = []
    nodes = dict(g.nodes)
    for name, node in g.nodes.items():
        if isinstance(node, (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)):
            nodes[name] = _lower_linear_kernel(g, name)
            lowered.append(name)
    edges = list(g.edges)
    if drop_flatten:
        for name, node in list(nodes.items()):
            if not isinstance(node, nir.Flatten):
                continue
            preds = [s for s, d in edges if d == name]
            succs = [d for s, d in edges if s == name]
            if not preds or not succs:
                continue
            del nodes[name]
            edges = [e for e in edges if name not in e] + [(p, s) for p in preds for s in succs]
            lowered.append(name)
    return C.rebuild(nodes, list(dict.fromkeys(edges)), g.metadata), lowered


def split_cubalif(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, list[str]]:
    """CubaLIF -> LI (synaptic current, tau_syn, r = w_in) + LIF (tau_mem); CubaLI -> LI + LI.

    Exact under refsim: the LI node computes i_t = keep_syn i + (1 - keep_syn) w_in x, which drives the
    membrane in the same step (current_first) or, through an inserted Delay(dt), in the next (voltage_first).
    """
    g = C.clone(graph)
    cfg = refsim.config_for_graph(g)
    nodes = dict(g.nodes)
    edges = list(g.edges)
    split = []
    for name, node in g.nodes.items():
        if not isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            continue
        c = cfg.for_node(node)
        meta = dict(node.metadata or {})
        n_shape = np.shape(node.tau_mem)
        syn = nir.LI(tau=np.asarray(node.tau_syn, np.float32),
                     r=np.broadcast_to(np.asarray(node.w_in, np.float32), n_shape).copy(),
                     v_leak=np.zeros(n_shape, np.float32), metadata={**meta, "spikeforge.split_from": name})
        if isinstance(node, nir.CubaLIF):
            mem = nir.LIF(tau=np.asarray(node.tau_mem, np.float32), r=np.asarray(node.r, np.float32),
                          v_leak=np.asarray(node.v_leak, np.float32), v_threshold=np.asarray(node.v_threshold, np.float32),
                          v_reset=np.asarray(node.v_reset if node.v_reset is not None else np.zeros(n_shape), np.float32),
                          metadata=meta)
        else:
            mem = nir.LI(tau=np.asarray(node.tau_mem, np.float32), r=np.asarray(node.r, np.float32),
                         v_leak=np.asarray(node.v_leak, np.float32), metadata=meta)
        syn_name = f"{name}.syn"
        if syn_name in nodes:
            raise GraphError(f"cannot split: a node named '{syn_name}' already exists", node=name)
        nodes[syn_name] = syn
        nodes[name] = mem
        new_edges = [(s, syn_name if d == name else d) for s, d in edges]
        if c.cuba_order == "voltage_first":
            dly = f"{name}.syn_delay"
            nodes[dly] = nir.Delay(delay=np.full(n_shape, c.dt, np.float32))
            new_edges += [(syn_name, dly), (dly, name)]
        else:
            new_edges.append((syn_name, name))
        edges = new_edges
        split.append(name)
    return C.rebuild(nodes, edges, g.metadata), split


def fuse_cubalif(graph: nir.NIRGraph) -> tuple[nir.NIRGraph, list[str]]:
    """LI (v_leak = 0, sole input of) -> LIF/LI  becomes CubaLIF/CubaLI (the inverse of split_cubalif's
    current_first form)."""
    g = C.clone(graph)
    fused = []
    changed = True
    while changed:
        changed = False
        for name, node in list(g.nodes.items()):
            if not isinstance(node, nir.LI) or np.any(np.asarray(node.v_leak) != 0):
                continue
            succ = C.successors(g, name)
            if len(succ) != 1 or not _single_link(g, name, succ[0]):
                continue
            mem = g.nodes[succ[0]]
            if not isinstance(mem, (nir.LIF, nir.LI)):
                continue
            meta = {k: v for k, v in dict(mem.metadata or {}).items() if k != "spikeforge.split_from"}
            if isinstance(mem, nir.LIF):
                new = nir.CubaLIF(tau_syn=node.tau, tau_mem=mem.tau, r=mem.r, v_leak=mem.v_leak,
                                  v_threshold=mem.v_threshold, v_reset=mem.v_reset, w_in=node.r, metadata=meta)
            else:
                new = nir.CubaLI(tau_syn=node.tau, tau_mem=mem.tau, r=mem.r, v_leak=mem.v_leak, w_in=node.r,
                                 metadata=meta)
            g = _splice(g, succ[0], name, new)
            fused.append(succ[0])
            changed = True
            break
    return g, fused


def normalise(graph: nir.NIRGraph, *, lower_conv: bool = False, cuba: str | None = None
              ) -> tuple[nir.NIRGraph, dict[str, list[str]]]:
    """Run the folds (and optionally conv lowering, and cuba='split'|'fuse'); returns (graph, what changed)."""
    g, scales = fold_scales(graph)
    g, affines = fold_affines(g)
    done = {"fold_scales": scales, "fold_affines": affines}
    if lower_conv:
        g, done["conv_to_affine"] = conv_to_affine(g)
        g, more = fold_affines(g)
        done["fold_affines"] += more
    if cuba == "split":
        g, done["split_cubalif"] = split_cubalif(g)
    elif cuba == "fuse":
        g, done["fuse_cubalif"] = fuse_cubalif(g)
    elif cuba is not None:
        raise UnsupportedError(f"cuba={cuba!r}; allowed 'split', 'fuse' or None")
    return g, done
