"""Pruning: unstructured magnitude, structured (whole neurons), and GraNet's gradual schedule.

Pruned weights are exact zeros in the returned NIR graph and every pruned node records its sparsity in
metadata `spikeforge.prune` (sparsity, mask hash, method), so backends can emit sparse structures (Lava
Sparse, PyNN FromListConnector, fewer crossbar tiles). Structured pruning removes neurons for real: the
Affine rows, the neuron parameters and the next layer's columns all shrink.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import nir
import numpy as np

from ..errors import GraphError, InputError
from . import _common as C
from .quantize import int_hash
from .report import PruneReport

META_KEY = "spikeforge.prune"
METHODS = ("magnitude", "structured")


def gradual_schedule(s_i: float, s_f: float, t: int, T: int) -> float:
    """GraNet / Zhu & Gupta cubic schedule: s_t = s_f + (s_i - s_f)(1 - t/T)^3, held at s_f after T."""
    if T <= 0:
        return float(s_f)
    frac = min(max(t / T, 0.0), 1.0)
    return float(s_f + (s_i - s_f) * (1.0 - frac) ** 3)


def _check_sparsity(s: float) -> None:
    if not (0.0 <= s < 1.0):
        raise InputError(f"sparsity must be in [0, 1), got {s}", field="sparsity")


def _magnitude(g: nir.NIRGraph, sparsity: float) -> dict[str, dict[str, Any]]:
    """Zero the smallest-magnitude weights of every weighted layer, layer by layer (same sparsity each)."""
    info = {}
    for name in C.weighted_layers(g):
        node = g.nodes[name]
        w = np.asarray(node.weight, dtype=np.float32)
        k = int(np.floor(sparsity * w.size))
        mask = np.ones(w.size, dtype=bool)
        if k > 0:
            order = np.argsort(np.abs(w).ravel(), kind="stable")  # ties broken by index: deterministic
            mask[order[:k]] = False
        mask = mask.reshape(w.shape) & (w != 0)
        node.weight = np.where(mask, w, 0).astype(np.float32)
        info[name] = {"mask": mask}
    return info


def _hidden_neurons(g: nir.NIRGraph) -> list[tuple[str, str, list[str]]]:
    """(affine_in, neuron, [affines_out]) for neuron layers between Affine layers (removable units)."""
    out = []
    for name in C.weighted_layers(g):
        if not isinstance(g.nodes[name], (nir.Affine, nir.Linear)):
            continue
        neuron = C.neuron_after(g, name)
        if neuron is None:
            continue
        succ = C.successors(g, neuron)
        if succ and all(isinstance(g.nodes[s], (nir.Affine, nir.Linear)) for s in succ):
            out.append((name, neuron, succ))
    return out


def _slice_neuron(node: nir.NIRNode, keep: np.ndarray) -> nir.NIRNode:
    kwargs = {}
    n = keep.size
    for f in node.__dataclass_fields__:
        if f in ("input_type", "output_type"):
            continue
        v = getattr(node, f)
        if f == "metadata":
            kwargs[f] = dict(v or {})
        elif isinstance(v, np.ndarray) and v.ndim >= 1 and v.shape[0] == n:
            kwargs[f] = v[keep]
        else:
            kwargs[f] = v
    return type(node)(**kwargs)


def _structured(g: nir.NIRGraph, sparsity: float, calib: C.Calibration | None,
                means: dict[str, np.ndarray] | None = None) -> dict[str, int]:
    """Remove the fraction `sparsity` of hidden neurons whose removal changes the outputs least.

    Score per neuron = activity on calibration data (spike count; or 1 without data) x the L2 norm of its
    outgoing weights: a neuron that rarely fires or barely projects changes the next layer's input least.
    """
    removed: dict[str, int] = {}
    activity = None
    if calib is not None:
        activity = C.simulate(g, calib.inputs, probes=True).activity
    for a_in, neuron, outs in _hidden_neurons(g):
        w_in = np.asarray(g.nodes[a_in].weight)
        n = w_in.shape[0]
        k = int(np.floor(sparsity * n))
        if k <= 0:
            continue
        k = min(k, n - 1)
        out_norm = np.zeros(n)
        for o in outs:
            out_norm += np.linalg.norm(np.asarray(g.nodes[o].weight), axis=0) ** 2
        out_norm = np.sqrt(out_norm)
        act = np.ones(n) if activity is None else activity[neuron].reshape(-1, n).mean(axis=0) + 1e-6
        score = act * out_norm
        order = np.argsort(score, kind="stable")
        keep = np.ones(n, dtype=bool)
        keep[order[:k]] = False
        node_in = g.nodes[a_in]
        if isinstance(node_in, nir.Affine):
            g.nodes[a_in] = nir.Affine(weight=w_in[keep], bias=np.asarray(node_in.bias)[keep],
                                       metadata=dict(node_in.metadata or {}))
        else:
            g.nodes[a_in] = nir.Linear(weight=w_in[keep], metadata=dict(node_in.metadata or {}))
        g.nodes[neuron] = _slice_neuron(g.nodes[neuron], keep)
        for o in outs:
            node_o = g.nodes[o]
            w_full = np.asarray(node_o.weight)
            w_o = w_full[:, keep]
            if isinstance(node_o, nir.Affine):
                bias = np.asarray(node_o.bias, dtype=np.float64)
                if means and o in means:  # removed neurons' mean output moves into the next bias
                    bias = bias + w_full[:, ~keep].astype(np.float64) @ means[o][~keep]
                g.nodes[o] = nir.Affine(weight=w_o, bias=bias.astype(np.float32),
                                        metadata=dict(node_o.metadata or {}))
            else:
                g.nodes[o] = nir.Linear(weight=w_o, metadata=dict(node_o.metadata or {}))
        removed[neuron] = int(k)
    if not removed:
        raise GraphError("structured pruning found no hidden neuron layer between two Affine/Linear layers")
    return removed


def _measure(g: nir.NIRGraph, calib: C.Calibration | None) -> tuple[float | None, np.ndarray | None]:
    if calib is None:
        return None, None
    res = C.simulate(g, calib.inputs)
    return float(res.synops.sum() / calib.batch), C.output_scores(res)


def _mean_inputs(g: nir.NIRGraph, calib: C.Calibration) -> dict[str, np.ndarray]:
    """Mean presynaptic activity (per input column) of every Affine/Linear layer on the calibration data."""
    res = C.simulate(g, calib.inputs, probes=True)
    out = {}
    for name in C.weighted_layers(g):
        if not isinstance(g.nodes[name], (nir.Affine, nir.Linear)):
            continue
        preds = C.predecessors(g, name)
        n_in = np.asarray(g.nodes[name].weight).shape[1]
        acc = np.zeros(n_in)
        for p in preds:
            a = calib.inputs[p] if p in calib.inputs else res.activity[p]
            acc += np.asarray(a, dtype=np.float64).reshape(-1, n_in).mean(axis=0)
        out[name] = acc
    return out


def _compensate(g0: nir.NIRGraph, g: nir.NIRGraph, means: dict[str, np.ndarray]) -> list[str]:
    """Bias correction: add the pruned synapses' mean contribution to the Affine bias, so the membrane's
    average drive is kept (what pruning removes is then only the fluctuation those synapses carried)."""
    done = []
    for name, mu in means.items():
        old, new = g0.nodes[name], g.nodes[name]
        if not isinstance(new, nir.Affine) or np.asarray(old.weight).shape != np.asarray(new.weight).shape:
            continue
        lost = (np.asarray(old.weight, dtype=np.float64) - np.asarray(new.weight, dtype=np.float64)) @ mu
        if np.any(lost != 0):
            new.bias = (np.asarray(new.bias, dtype=np.float64) + lost).astype(np.float32)
            done.append(name)
    return done


def prune(graph: nir.NIRGraph, *, sparsity: float, method: str = "magnitude", calibration: Any = None,
          compensate: bool = True) -> tuple[nir.NIRGraph, PruneReport]:
    """Prune weights ('magnitude': fraction of weights per layer) or neurons ('structured': fraction of
    hidden neurons). With calibration data the pruned synapses' mean drive moves into the bias
    (`compensate`), and the report measures synaptic operations and accuracy/agreement."""
    if method not in METHODS:
        raise InputError(f"pruning method {method!r}; allowed {METHODS}", field="method")
    _check_sparsity(sparsity)
    g0 = C.clone(graph)
    g = C.clone(graph)
    calib = C.calibration_data(g, calibration)
    removed: dict[str, int] = {}
    means = _mean_inputs(g0, calib) if (calib is not None and compensate) else {}
    if method == "magnitude":
        _magnitude(g, sparsity)
        _compensate(g0, g, means)
    else:
        removed = _structured(g, sparsity, calib, means)
    return _finish(g0, g, method, sparsity, calib, removed)


def _finish(g0: nir.NIRGraph, g: nir.NIRGraph, method: str, sparsity: float, calib: C.Calibration | None,
            removed: dict[str, int]) -> tuple[nir.NIRGraph, PruneReport]:
    before = {n: int(np.count_nonzero(g0.nodes[n].weight)) for n in C.weighted_layers(g0)}
    layers = []
    warnings = []
    for name in C.weighted_layers(g):
        node = g.nodes[name]
        w = np.asarray(node.weight)
        nnz = int(np.count_nonzero(w))
        mask = (w != 0)
        C.set_meta(node, META_KEY, {"method": method, "sparsity": float(1 - nnz / max(1, w.size)),
                                    "nonzero": nnz, "mask_hash": int_hash(mask.astype(np.int32))})
        rows = w.reshape(w.shape[0], -1)
        dead = int(np.sum(~(rows != 0).any(axis=1)))
        if dead:
            warnings.append(f"layer '{name}' parameter 'weight': {dead} neuron(s) left with no input weights")
        layers.append({"layer": name, "shape": "x".join(map(str, w.shape)), "nonzero_before": before.get(name),
                       "nonzero_after": nnz, "sparsity": float(1 - nnz / max(1, w.size))})
    syn_b, sc_b = _measure(g0, calib)
    syn_a, sc_a = _measure(g, calib)
    acc_b = C.accuracy(sc_b, calib.labels) if calib is not None and sc_b is not None else None
    acc_a = C.accuracy(sc_a, calib.labels) if calib is not None and sc_a is not None else None
    agree = None
    if sc_b is not None and sc_a is not None:
        agree = float(np.mean(sc_b.argmax(1) == sc_a.argmax(1)))
        if sc_a.sum() == 0 and sc_b.sum() > 0:
            warnings.append("the pruned network's outputs are silent on the calibration data")
    meta = dict(g.metadata or {})
    meta[META_KEY] = {"method": method, "sparsity_requested": float(sparsity)}
    out = C.rebuild(g.nodes, g.edges, meta)
    report = PruneReport(method=method, sparsity_requested=float(sparsity), layers=layers,
                         weights_before=sum(before.values()),
                         weights_after=sum(int(np.count_nonzero(g.nodes[n].weight)) for n in C.weighted_layers(g)),
                         neurons_removed=removed, synops_before=syn_b, synops_after=syn_a,
                         accuracy_before=acc_b, accuracy_after=acc_a, agreement=agree, warnings=warnings)
    return out, report


FineTune = Callable[[nir.NIRGraph, int, float], "nir.NIRGraph | None"]


def prune_gradual(graph: nir.NIRGraph, *, sparsity: float, steps: int, initial: float = 0.0,
                  fine_tune: FineTune | None = None, calibration: Any = None
                  ) -> tuple[nir.NIRGraph, PruneReport, list[float]]:
    """Magnitude pruning along the cubic schedule over `steps` rounds; after each round the optional
    `fine_tune(graph, step, sparsity_t)` callback may retrain and return a new graph (pruned weights are
    re-masked, so retraining cannot revive them). Returns the graph, the final report and the schedule."""
    _check_sparsity(sparsity)
    if steps < 1:
        raise InputError(f"steps must be >= 1, got {steps}", field="steps")
    g = C.clone(graph)
    schedule = []
    masks: dict[str, np.ndarray] = {}
    for t in range(1, steps + 1):
        s_t = gradual_schedule(initial, sparsity, t, steps)
        schedule.append(s_t)
        _magnitude(g, s_t)
        for name in C.weighted_layers(g):
            w = np.asarray(g.nodes[name].weight)
            masks[name] = (w != 0) & masks.get(name, np.ones_like(w, dtype=bool))
        if fine_tune is not None:
            tuned = fine_tune(g, t, s_t)
            if tuned is not None:
                g = C.clone(tuned)
            for name, m in masks.items():
                node = g.nodes[name]
                node.weight = np.where(m, np.asarray(node.weight), 0).astype(np.float32)
    g0 = C.clone(graph)
    pruned, report = _finish(g0, g, "gradual-magnitude", sparsity, C.calibration_data(g0, calibration), {})
    return pruned, report, schedule
