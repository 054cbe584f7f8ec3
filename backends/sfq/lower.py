"""Lowering NIR to an SFQ netlist: quantise, map synapses to pulse paths, balance delays, phase the clock.

Supported: Input, Affine, Linear, IF, LIF, Delay, Output (feed-forward). Each neuron is a clocked storage
loop; one time step of the reference simulator is one clock period.

* clocked-integer mode: a weight w becomes |round(w s)| pulse copies routed to the neuron's excitatory
  (w > 0) or inhibitory (w < 0) input; the threshold becomes an integer fluxon count.
* stochastic mode (Krylov et al. 2024): a weight becomes one (or a few) Josephson-comparator synapses that
  pass each pulse with probability p = |w| / w_scale; p is set by a quantised control current through the
  comparator's normal CDF, so the neuron integrates the right value on average (rate coding).

Per source, a balanced SPLIT tree fans the pulse out; per neuron, MERGE trees join the leaves. Leaves
reach the neuron in distinct slots `merge_stagger` apart, root-aligned so the last one lands `setup`
before the layer's clock (delay padding: JTL chains, PTLs when long). Each layer gets a clock phase after
its inputs settle; a clock tree of splitters and delay lines delivers every phase.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import nir
import numpy as np
from scipy.special import ndtr, ndtri

from spikeforge import graph as G
from spikeforge.boards import Board
from spikeforge.errors import GraphError, UnsupportedError
from spikeforge.interfaces import CompileOptions
from spikeforge.refsim import config_for_graph
from spikeforge.semantics import record

from .leak import LeakPlan, leak_plan, record_leak
from .netlist import Netlist, fs, library_from_board

CODINGS = ("clocked", "stochastic")
_MARGIN_FS = 1000  # 1 ps engineering margin on every window


@dataclass
class Layer:
    """A population of clocked storage-loop neurons and what drives it."""

    name: str
    size: int
    kind: str
    threshold: np.ndarray
    v_reset: np.ndarray
    reset: str
    reset_timing: str
    cmp: str
    keep: np.ndarray
    projections: list[tuple[str, np.ndarray]] = field(default_factory=list)
    bias: np.ndarray | None = None
    weight_bits: int | None = None      # set by the quantize pass (node metadata 'spikeforge.quant')


@dataclass
class Leaf:
    """One pulse path from a source element to a consumer port."""

    src: tuple[str, int]
    kind: str                       # "syn" | "delay" | "out"
    neuron: int = -1                # destination cell
    sign: int = 1
    p: float = 1.0
    endpoint: tuple[int, str, int] | None = None   # split-tree end (cell, port, depth)


def _vec(x: Any, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, dtype=np.float64).ravel() if np.size(x) > 1 else
                           np.asarray(x, dtype=np.float64).reshape(()), (n,)).astype(np.float64)


def _size(node: nir.NIRNode, port: str) -> int:
    shp = G.node_shape(node, port)
    if shp is None:
        raise GraphError("cannot infer the node's shape", node=getattr(node, "name", None))
    return int(np.prod(shp))


def unroll_linear(node: nir.NIRNode, cfg: Any, name: str, chunk: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Conv2d / SumPool2d / Flatten as a dense (out x in) matrix and bias: the op applied to unit inputs.

    Why: on SFQ every synapse is a pulse path, so a convolution is unrolled onto cells anyway; the matrix
    lets the clocked quantiser and the netlist treat it like any projection."""
    from spikeforge.refsim import make_kernel

    shp = G.node_shape(node, "input")
    if shp is None:
        raise GraphError("cannot infer the input shape", node=name)
    n_in = int(np.prod(shp))
    k = make_kernel(node, replace(cfg, dtype="float64"))
    zero = np.asarray(k.step(np.zeros((1, *shp)), None)[0], dtype=np.float64).reshape(1, -1)
    cols = []
    for a in range(0, n_in, chunk):
        m = min(chunk, n_in - a)
        eye = np.zeros((m, n_in))
        eye[np.arange(m), a + np.arange(m)] = 1.0
        y = np.asarray(k.step(eye.reshape(m, *shp), None)[0], dtype=np.float64).reshape(m, -1)
        cols.append((y - zero).T)
    return np.concatenate(cols, axis=1), zero.ravel()


def parse(graph: nir.NIRGraph, dt: float) -> tuple[dict[str, tuple[str, int]], list[Layer],
                                                   dict[str, tuple[str, np.ndarray]], dict[str, str], list[str]]:
    """Split the graph into spike sources, neuron layers, delay lines and outputs, or say what cannot map."""
    sched = G.schedule(graph)
    if sched.recurrent:
        s, d = sched.recurrent[0]
        raise UnsupportedError(f"recurrent edge {s} -> {d}: the SFQ backend lowers feed-forward networks only",
                               node=d, hint="unroll the recurrence or use another board")
    cfg = config_for_graph(graph, dt)
    preds = {n: [p for p, _ in sched.predecessors(n)] for n in sched.order}
    sources: dict[str, tuple[str, int]] = {}        # name -> (kind, size) spike sources
    affines: dict[str, tuple[np.ndarray, np.ndarray, list[str]]] = {}
    layers: list[Layer] = []
    delays: dict[str, tuple[str, np.ndarray]] = {}
    outputs: dict[str, str] = {}
    order: list[str] = []
    for name in sched.order:
        node = graph.nodes[name]
        if isinstance(node, nir.Input):
            sources[name] = ("input", _size(node, "output"))
            order.append(name)
        elif isinstance(node, (nir.Affine, nir.Linear, nir.Conv2d, nir.SumPool2d, nir.Flatten)):
            # synapses: a chain of linear maps between spiking nodes is one (unrolled) integer matrix
            if isinstance(node, (nir.Affine, nir.Linear)):
                W = np.asarray(node.weight, dtype=np.float64)
                if W.ndim != 2:
                    raise UnsupportedError(f"weight must be 2-D, got shape {W.shape}", node=name, field="weight")
                b = np.asarray(node.bias, dtype=np.float64) if isinstance(node, nir.Affine) else np.zeros(W.shape[0])
                b = _vec(b, W.shape[0])
            else:
                W, b = unroll_linear(node, cfg, name)
            if len(preds[name]) != 1 and not isinstance(node, (nir.Affine, nir.Linear)):
                raise UnsupportedError(f"{type(node).__name__} must have exactly one input", node=name)
            for p in preds[name]:
                if p not in sources and p not in affines:
                    raise UnsupportedError(
                        f"{type(node).__name__} must be fed by spikes (Input, IF, LIF or Delay) or synapses, not by "
                        f"{type(graph.nodes[p]).__name__} '{p}'", node=name)
            if len(preds[name]) == 1 and preds[name][0] in affines:
                W0, b0, aps = affines[preds[name][0]]
                if W.shape[1] != W0.shape[0]:
                    raise GraphError(f"{name} expects {W.shape[1]} inputs, {preds[name][0]} gives {W0.shape[0]}",
                                     node=name)
                affines[name] = (W @ W0, W @ b0 + b, aps)
            elif any(p in affines for p in preds[name]):
                raise UnsupportedError("synapse nodes fed by several synapse nodes are not supported", node=name)
            else:
                affines[name] = (W, b, preds[name])
            sizes_checked = {p: sources[p][1] for p in preds[name] if p in sources}
            for p, n_src in sizes_checked.items():
                if W.shape[1] != n_src:
                    raise GraphError(f"{name} expects {W.shape[1]} inputs, {p} gives {n_src}", node=name)
        elif isinstance(node, nir.CubaLIF):
            raise UnsupportedError(
                "CubaLIF has a synaptic current state that a storage-loop SFQ neuron does not have",
                node=name, hint="convert to LIF (tau_syn -> 0) or IF before lowering to SFQ")
        elif isinstance(node, (nir.IF, nir.LIF)):
            n = _size(node, "input")
            c = cfg.for_node(node)
            r = _vec(node.r, n)
            if isinstance(node, nir.IF):
                gain = r * (dt if c.if_dt else 1.0)
                keep = np.ones(n)
                offset = np.zeros(n)
            else:
                tau = _vec(node.tau, n)
                keep = np.exp(-dt / tau) if c.integration == "exact" else 1.0 - dt / tau
                if np.any(keep < 0) or np.any(keep > 1):
                    raise UnsupportedError(f"dt/tau = {float(np.max(dt / tau)):.3g} > 1: Euler decay is unstable",
                                           node=name, field="tau")
                gain = (1.0 - keep) * r
                offset = (1.0 - keep) * _vec(node.v_leak, n)
            th = _vec(node.v_threshold, n)
            if np.any(th <= 0):
                raise UnsupportedError(f"threshold must be > 0 for a storage-loop neuron (found {th.min()})",
                                       node=name, field="v_threshold")
            vr = getattr(node, "v_reset", None)
            layer = Layer(name, n, type(node).__name__, th, np.zeros(n) if vr is None else _vec(vr, n), c.reset,
                          c.reset_timing, c.threshold_cmp, keep)
            bias = offset.copy()
            for p in preds[name]:
                if p in affines:
                    W, b, aps = affines[p]
                    qm = (getattr(graph.nodes[p], "metadata", None) or {}).get("spikeforge.quant")
                    if isinstance(qm, dict) and "weight_bits" in qm:
                        layer.weight_bits = max(layer.weight_bits or 0, int(np.asarray(qm["weight_bits"]).ravel()[0]))
                    if W.shape[0] != n:
                        raise GraphError(f"{p} produces {W.shape[0]} values, {name} has {n} neurons", node=name)
                    for ap in aps:
                        layer.projections.append((ap, gain[:, None] * W))
                    bias += gain * b
                elif p in sources:
                    if sources[p][1] != n:
                        raise GraphError(f"{p} has {sources[p][1]} elements, {name} has {n}", node=name)
                    layer.projections.append((p, np.diag(gain)))
                else:
                    raise UnsupportedError(f"input from {type(graph.nodes[p]).__name__} '{p}' cannot be mapped",
                                           node=name)
            layer.bias = bias if np.any(bias != 0) else None
            layers.append(layer)
            sources[name] = ("layer", n)
            order.append(name)
        elif isinstance(node, nir.Delay):
            ps = preds[name]
            if len(ps) != 1 or ps[0] not in sources:
                raise UnsupportedError("Delay must follow exactly one spiking node (Input, IF, LIF, Delay)", node=name)
            n = sources[ps[0]][1]
            steps = np.rint(_vec(node.delay, n) / dt).astype(np.int64)
            delays[name] = (ps[0], steps)
            sources[name] = ("delay", n)
            order.append(name)
        elif isinstance(node, nir.Output):
            ps = preds[name]
            if len(ps) != 1 or ps[0] not in sources:
                raise UnsupportedError("Output must follow exactly one spiking node: the SFQ fabric emits pulses",
                                       node=name, hint="end the network with an IF/LIF layer")
            outputs[name] = ps[0]
        else:
            raise UnsupportedError(
                f"{type(node).__name__} is not supported by the SFQ backend "
                "(supported: Input, Affine, Linear, IF, LIF, Delay, Output)", node=name)
    return sources, layers, delays, outputs, order


# ---------------------------------------------------------------------------------------------------
# quantisation
# ---------------------------------------------------------------------------------------------------


def _is_int(x: np.ndarray) -> bool:
    return bool(np.all(np.abs(x - np.rint(x)) < 1e-6))


def _theta(threshold: np.ndarray, cmp: str, sc: np.ndarray | float) -> np.ndarray:
    """Integer firing level for a float threshold at scale sc (exact when threshold x sc is an integer)."""
    x = threshold * sc
    return (np.floor(x + 1e-9) + 1 if cmp == ">" else np.ceil(x - 1e-9)).astype(np.int64)


def _scale_bounds(layer: Layer, max_w: int, capacity: int, s_layer: float) -> np.ndarray:
    """The largest pulse-weight scale each neuron may use (see `neuron_scales`)."""
    n = layer.size
    rowg = np.zeros(n)
    exc = np.zeros(n)
    inh = np.zeros(n)
    for _, W in layer.projections:
        rowg = np.maximum(rowg, np.max(np.abs(W), axis=1, initial=0.0))
        exc = exc + np.maximum(W, 0).sum(1)
        inh = inh + np.maximum(-W, 0).sum(1)
    if layer.bias is not None:
        exc = exc + np.maximum(layer.bias, 0)
        inh = inh + np.maximum(-layer.bias, 0)
    th = layer.threshold
    keep = np.asarray(layer.keep, dtype=np.float64)
    # downward: inhibition accumulates over steps, bounded by the leak (an IF neuron has no bound to fit)
    down = np.where(keep < 1, inh / np.maximum(1.0 - keep, 1e-12), 0.0)
    with np.errstate(divide="ignore"):
        s_w = np.where(rowg > 0, max_w / np.where(rowg > 0, rowg, 1.0), np.inf)
        s_th = (capacity - 1) / th
        s_reach = (capacity + 1) / np.maximum(th + exc, down)
    s = np.minimum(np.minimum(s_w, s_th), np.maximum(s_reach, s_layer))
    return np.where(np.isfinite(s), s, s_layer)


def neuron_scales(layer: Layer, max_w: int, capacity: int, s_layer: float) -> np.ndarray:
    """One pulse-weight scale per neuron (pulses per float unit), for a layer with no exact integer scale.

    Why: a neuron's binary spike output is unchanged when its weights, bias, threshold, reset level and state
    are all multiplied by one positive factor (a multiplicative leak commutes with it), so each neuron may use
    its own scale instead of the layer's. Bounds per neuron: |q| <= max_w; the firing level fits the loop
    (threshold x s <= capacity - 1); the worst-case reach (up: threshold - 1 + all excitatory pulses and bias of
    one step; down, for a leaky neuron: its inhibition accumulated over steps, inh / (1 - keep)) stays inside
    the loop, unless the layer-wide scale already passes it, in which case the
    neuron keeps at least that scale (never coarser than one scale per layer). Within the bound the scale is
    the largest one, or s = k / threshold for an integer firing level k in [k_max / 2, k_max] (threshold exact),
    whichever has the least squared rounding error of weights, bias and firing level relative to the firing
    level (sum (x s - round(x s))^2 / (threshold s)^2): a level below k_max can round a row much better."""
    s_max = _scale_bounds(layer, max_w, capacity, s_layer)
    th = layer.threshold
    kmax = np.floor(th * s_max + 1e-9).astype(np.int64)
    kmin = np.maximum(1, (kmax + 1) // 2)
    nz = [np.nonzero(W) for _, W in layer.projections]
    vals = [W[r, c] for (_, W), (r, c) in zip(layer.projections, nz)]
    best = np.full(layer.size, np.inf)
    chosen = s_max.copy()
    # candidates: s_max itself (threshold rounded), then every integer level k_max .. k_max / 2 (threshold exact)
    for j in range(-1, int(np.max(kmax - kmin, initial=0)) + 1):      # bounded: k_max <= capacity
        k = th * s_max if j < 0 else (kmax - j).astype(np.float64)
        valid = (np.isfinite(k) & (k > 0)) if j < 0 else ((k >= kmin) & (k >= 1))
        sc = np.where(valid, k / th, 0.0)
        err = (k - np.rint(k)) ** 2                                  # the firing level's own rounding
        for (r, _), v in zip(nz, vals):
            e = v * sc[r]
            err = err + np.bincount(r, (e - np.rint(e)) ** 2, minlength=layer.size)
        if layer.bias is not None:
            e = layer.bias * sc
            err = err + (e - np.rint(e)) ** 2
        err = err / np.maximum(k, 1e-12) ** 2
        better = valid & (err < best - 1e-15)
        best = np.where(better, err, best)
        chosen = np.where(better, sc, chosen)
    return chosen


def input_rates(g: nir.NIRGraph, dt: float, calibration: Any, sources: dict[str, tuple[str, int]],
                max_samples: int = 256) -> dict[str, np.ndarray] | None:
    """Mean spikes per step of every spike source in the float model on the calibration data, or None.

    Why: rounding a neuron's weights shifts its expected input per step by sum_i (q_i / s - w_i) r_i; with the
    rates r of its sources measured on calibration data, that shift is moved into the bias (bias correction,
    Nagel et al., "Data-Free Quantization Through Weight Equalization and Bias Correction", ICCV 2019), so
    the neuron's mean drive is right and only the per-sample spread of the rounding error remains."""
    from spikeforge.refsim import simulate

    if not isinstance(calibration, dict):
        return None
    ins = {n: np.asarray(calibration[n]) for n, (kind, _) in sources.items() if kind == "input" and n in calibration}
    if not ins or len(ins) != sum(1 for kind, _ in sources.values() if kind == "input"):
        return None
    ins = {n: x[:, :max_samples] for n, x in ins.items() if x.ndim >= 2}
    if not ins:
        return None
    res = simulate(g, ins, dt, probes=True)
    rates: dict[str, np.ndarray] = {}
    for n, (kind, size) in sources.items():
        x = ins.get(n) if kind == "input" else res.states.get(f"{n}.s")
        if x is None:
            continue
        x = np.asarray(x, dtype=np.float64)
        r = x.reshape(x.shape[0] * x.shape[1], -1).mean(0)
        if r.size == size:
            rates[n] = r
    return rates


def quantise_clocked(layer: Layer, max_w: int, capacity: int, rates: dict[str, np.ndarray] | None = None
                     ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """Integer weights |q| <= max_w, integer thresholds <= capacity; exact when the graph allows it.

    Returns per-neuron scales (pulses per float unit): one value for the layer when an integer grid makes it
    exact, else `neuron_scales`; with calibration `rates` (see `input_rates`), the bias also absorbs the mean
    shift the weight rounding causes (returned as the last item, float units per step; None without)."""
    notes: list[str] = []
    gmax = max((float(np.max(np.abs(W))) for _, W in layer.projections), default=0.0)
    if gmax == 0:
        gmax = 1.0
    bias = layer.bias if layer.bias is not None else np.zeros(layer.size)
    s = max_w / gmax
    exact = False
    for m in range(1, max_w + 1):
        cand = m / gmax
        ok = all(_is_int(W * cand) for _, W in layer.projections) and _is_int(bias * cand)
        if layer.reset == "subtract":
            ok = ok and _is_int(layer.threshold * cand)
        ok = ok and _is_int(layer.v_reset * cand)
        if ok:
            s = cand
            exact = True
            break
    th = _theta(layer.threshold, layer.cmp, s)
    if th.max() > capacity:
        s = s * capacity / (float(np.max(layer.threshold * s)) + 1.0)
        th = _theta(layer.threshold, layer.cmp, s)
        exact = False
        notes.append(f"{layer.name}: threshold exceeded the storage-loop capacity {capacity}; weights rescaled "
                     f"by {s:.4g} (precision lost)")
    sv = np.full(layer.size, s) if exact else neuron_scales(layer, max_w, capacity, s)
    th = np.maximum(_theta(layer.threshold, layer.cmp, sv), 1)
    q = {src: np.rint(W * sv[:, None]).astype(np.int64) for src, W in layer.projections}
    if not all(_is_int(W * sv[:, None]) for _, W in layer.projections):
        err = max(float(np.max(np.abs(W * sv[:, None] - q[src]))) for src, W in layer.projections)
        notes.append(f"{layer.name}: weights quantised to integers |q| <= {max_w} (scale per neuron "
                     f"{float(sv.min()):.4g}..{float(sv.max()):.4g}, max error {err:.3f})")
    shift = None
    if not exact and rates is not None and all(src in rates for src, _ in layer.projections):
        shift = sum(((q[src] / sv[:, None] - W) @ rates[src]) for src, W in layer.projections)
        bias = bias - shift
    return sv, q, np.rint(bias * sv).astype(np.int64), th, notes, shift


@dataclass
class QLayer:
    """One layer's integer constants: what the netlist and the array program both use."""

    wscale: np.ndarray                  # float units per weight pulse, per neuron
    th: np.ndarray                      # firing level, counter units
    lk: LeakPlan
    q: dict[str, np.ndarray]            # clocked: integer weights per source
    bq: np.ndarray | None               # clocked: integer bias pulses per step
    notes: list[str]
    bias_shift: np.ndarray | None = None  # clocked: mean rounding shift moved into the bias (float units/step)

    @property
    def has_bias_pulses(self) -> bool:
        """Clocked: does any neuron get bias pulses (a float bias, or one from bias correction)?"""
        return self.bq is not None and bool(np.any(self.bq))


def quantise_layer(L: Layer, coding: str, max_w: int, capacity: int, extra: dict[str, Any], frac_bits: int,
                   leak_bits: int, rates: dict[str, np.ndarray] | None = None) -> QLayer:
    """Weights, thresholds and leak of one layer in the chip's integers (clocked or stochastic coding)."""
    q: dict[str, np.ndarray] = {}
    bq = None
    qn: list[str] = []
    shift = None
    if coding == "clocked":
        # weights already quantised by the bit-budget pass keep their integer grid: 2^(bits-1) - 1 levels
        lw = max(1, 2 ** (L.weight_bits - 1) - 1) if L.weight_bits and extra.get("sfq.max_weight") is None else max_w
        s, q, bq, th, qn, shift = quantise_clocked(L, lw, capacity, rates)
        wscale = 1.0 / s
    else:
        gmax = max((float(np.max(np.abs(W))) for _, W in L.projections), default=1.0) or 1.0
        p_max = float(extra.get("sfq.p_max", 1.0))
        if not 0 < p_max <= 1:
            raise UnsupportedError(f"sfq.p_max must be in (0, 1], got {p_max}", field="sfq.p_max")
        w0 = max(gmax / p_max, float(np.max(L.threshold)) / max(1, capacity - 1))
        th = np.clip(_theta(L.threshold, L.cmp, 1.0 / w0), 1, capacity)
        wscale = np.full(L.size, w0)
    lk = leak_plan(L, wscale, th, frac_bits, leak_bits)
    return QLayer(wscale, lk.threshold, lk, q, bq, qn, shift)


def saturation_reach(L: Layer, Q: QLayer, capacity: int) -> tuple[float, float]:
    """(fraction of neurons whose worst-case input can reach +-capacity, largest worst case in pulses or inf).

    Up: the count before a step is below threshold, so threshold - 1 plus every excitatory pulse of one step.
    Down: inhibition accumulates across steps, bounded by the leak: -inh / (1 - keep) (unbounded for IF)."""
    exc = sum(np.maximum(qm, 0).sum(1) for qm in Q.q.values()).astype(np.float64)
    inh = sum(np.maximum(-qm, 0).sum(1) for qm in Q.q.values()).astype(np.float64)
    if Q.has_bias_pulses:
        exc = exc + np.maximum(Q.bq, 0)
        inh = inh + np.maximum(-Q.bq, 0)
    up = (Q.th - 1) / (1 << Q.lk.frac_bits) + exc
    with np.errstate(divide="ignore"):
        down = np.where(inh > 0, np.where(L.keep < 1, inh / np.maximum(1.0 - L.keep, 1e-300), np.inf), 0.0)
    reach = np.maximum(up, down)
    frac = float(np.mean(reach > capacity)) if reach.size else 0.0
    return frac, float(np.max(reach))


def store_layer(arrays: dict[str, np.ndarray], sem: dict[str, Any], L: Layer, Q: QLayer, leak_bits: int,
                capacity: int) -> None:
    """The array program of one layer (artifact arrays) and its semantic records (with measured sizes)."""
    if Q.q:
        s = (1.0 / Q.wscale)[:, None]
        err = np.max([np.max(np.abs(W * s - Q.q[src]), axis=1, initial=0.0) for src, W in L.projections], axis=0)
        if float(np.max(err)) > 1e-6:
            row = np.max([np.max(np.abs(qm), axis=1, initial=0) for qm in Q.q.values()], axis=0)
            top = max(1, int(np.max(row)))
            record(sem, L.name, "quantisation", f"weights rounded to integer pulse counts |q| <= {top} (a scale per "
                   "neuron, exact for its spikes); largest rounding error relative to the neuron's largest weight",
                   float(np.max(err / np.maximum(row, 1))))
        frac, worst = saturation_reach(L, Q, capacity)
        if frac > 0:
            record(sem, L.name, "saturation", f"{frac:.1%} of the storage loops (capacity {capacity} fluxons = "
                   f"weight pulses) can be driven past +-{capacity} by their worst-case input ("
                   + (f"up to {worst:g} pulses" if np.isfinite(worst) else "unbounded: an IF neuron accumulates "
                      "inhibition without leak") + "; threshold - 1 + excitatory pulses in one step, or inhibition "
                   "accumulated over steps); "
                   "the escape junction then saturates the count at +-capacity. magnitude = that fraction; the "
                   "emulators count saturations per population and verify gates their effect on the outputs",
                   frac)
    arrays[f"{L.name}/threshold"] = Q.th.astype(np.int64)
    arrays[f"{L.name}/wscale"] = Q.wscale.astype(np.float64)     # float units per pulse, per neuron (probes)
    arrays[f"{L.name}/reset_sub"] = Q.lk.sub
    arrays[f"{L.name}/v_reset"] = Q.lk.v_reset
    arrays[f"{L.name}/leak_num"] = Q.lk.num
    for src, qm in Q.q.items():   # compact: one byte per synapse when the weights fit
        arrays[f"{L.name}/weight/{src}"] = qm.astype(np.int8) if np.abs(qm).max(initial=0) < 128 else qm
    if Q.has_bias_pulses:
        arrays[f"{L.name}/bias"] = Q.bq
    if Q.bias_shift is not None and np.any(Q.bias_shift != 0):
        rel = float(np.max(np.abs(Q.bias_shift) / L.threshold))
        record(sem, L.name, "quantisation", "bias corrected for the mean input shift of the weight rounding, measured "
               "with the float model's spike rates on the calibration data (Nagel et al. 2019); the mean drive per "
               "step is right, the per-sample rounding spread remains; magnitude = largest correction per step as a "
               "fraction of the threshold", rel)
    if Q.lk.fractional:
        record_leak(sem, L, Q.lk, leak_bits)


@dataclass
class Plan:
    """The array program: parsed topology, per-layer integers, artifact arrays (no per-synapse objects)."""

    parsed: tuple[Any, ...]
    q: dict[str, QLayer]
    arrays: dict[str, np.ndarray]
    program: dict[str, Any]
    notes: list[str]
    sem: dict[str, Any]


def _coding_and_sizes(extra: dict[str, Any], board: Board) -> tuple[str, int, int]:
    """The coding, loop capacity and largest pulse weight a compile uses: `--set` values, else the board's."""
    coding = str(extra.get("sfq.coding", "clocked"))
    if coding not in CODINGS:
        raise UnsupportedError(f"sfq.coding={coding!r}; allowed: {CODINGS}", field="sfq.coding")
    capacity = int(extra.get("sfq.capacity") or board.value("parameters.neuron_capacity"))
    max_w = int(extra.get("sfq.max_weight") or board.value("parameters.max_weight"))
    return coding, capacity, max_w


def plan_program(g: nir.NIRGraph, dt: float, board: Board, options: CompileOptions) -> Plan:
    """Parse and quantise every layer into arrays; what the array emulator runs and the netlist is built from."""
    extra = options.extra or {}
    coding, capacity, max_w = _coding_and_sizes(extra, board)
    frac_bits = int(extra.get("sfq.leak_frac_bits", 8))
    leak_bits = int(extra.get("sfq.leak_bits", 16))
    parsed = parse(g, dt)
    sources, layers, delays, outputs, order = parsed
    arrays: dict[str, np.ndarray] = {}
    sem: dict[str, Any] = {}
    notes: list[str] = []
    qs: dict[str, QLayer] = {}
    prog_layers: dict[str, Any] = {}
    rates = input_rates(g, dt, extra.get("calibration"), sources) if coding == "clocked" else None
    if rates is not None:
        notes.append("calibration data: weight rounding's mean input shift moved into each neuron's bias")
    for L in layers:
        Q = quantise_layer(L, coding, max_w, capacity, extra, frac_bits, leak_bits, rates)
        qs[L.name] = Q
        notes.extend(Q.notes)
        store_layer(arrays, sem, L, Q, leak_bits, capacity)
        prog_layers[L.name] = {"size": L.size, "sources": [s for s, _ in L.projections], "reset": L.reset,
                               "reset_timing": L.reset_timing, "frac_bits": Q.lk.frac_bits,
                               "leak_bits": leak_bits, "capacity": capacity, "wscale": float(np.max(Q.wscale)),
                               "bias": Q.has_bias_pulses,
                               "shape": [int(d) for d in (G.node_shape(g.nodes[L.name], "input") or (L.size,))]}
    for name, (_src, steps) in delays.items():
        arrays[f"{name}/delay_steps"] = steps
    inputs = {}
    for name, (kind, n) in sources.items():
        if kind == "input":
            enc = str((getattr(g.nodes[name], "metadata", None) or {}).get("spikeforge.encoding", "")) or \
                str((g.metadata or {}).get("spikeforge.input_encoding", ""))
            inputs[name] = {"size": n, "encoding": "sigma-delta" if enc.startswith("analog") else "spikes"}
    program = {"coding": coding, "order": order, "inputs": inputs, "layers": prog_layers,
               "delays": {name: src for name, (src, _) in delays.items()}, "outputs": outputs}
    return Plan(parsed, qs, arrays, program, notes, sem)


def comparator_probability(p: np.ndarray, board: Board) -> tuple[np.ndarray, np.ndarray]:
    """Target pass probability -> (quantised control current A, realised probability).

    P(pass) = Phi((I - I50) / sigma); I is set on a 2^bits grid spanning I50 +- R sigma.
    A target at the bottom level is pruned (probability 0)."""
    i50, sig = board.value("parameters.synapse_i50"), board.value("parameters.synapse_sigma")
    bits, rng = int(board.value("parameters.synapse_bias_bits")), float(board.value("parameters.synapse_range_sigmas"))
    lo, hi = i50 - rng * sig, i50 + rng * sig
    step = (hi - lo) / (2 ** bits - 1)
    pc = np.clip(p, 1e-12, 1 - 1e-12)
    target = np.clip(i50 + sig * ndtri(pc), lo, hi)
    level = np.rint((target - lo) / step)
    cur = lo + level * step
    real = ndtr((cur - i50) / sig)
    real = np.where((level <= 0) | (p <= 0), 0.0, real)
    return cur, real


# ---------------------------------------------------------------------------------------------------
# netlist synthesis
# ---------------------------------------------------------------------------------------------------


def _interleave(items: list[tuple[int, Leaf, tuple[int, str, int]]]) -> list[tuple[int, Leaf, tuple[int, str, int]]]:
    """Slot order for one neuron: excitatory and inhibitory pulses spread evenly (Bresenham), each kind in
    order of readiness. Keeps the running fluxon count near its final value, so a storage loop of small
    capacity overflows less than with all excitatory pulses first."""
    key = lambda x: (x[0], x[1].src, x[2][2])  # noqa: E731
    exc = sorted((x for x in items if x[1].sign > 0), key=key)
    inh = sorted((x for x in items if x[1].sign < 0), key=key)
    out = []
    i = j = 0
    n = len(exc) + len(inh)
    for k in range(n):
        # take from inh when it is behind its proportional share
        if j < len(inh) and (i >= len(exc) or (j + 1) * n <= (k + 1) * len(inh)):
            out.append(inh[j])
            j += 1
        else:
            out.append(exc[i])
            i += 1
    return out


def lower_graph(g: nir.NIRGraph, dt: float, board: Board, options: CompileOptions, plan: Plan | None = None
                ) -> tuple[Netlist, dict[str, np.ndarray], dict[str, Any]]:
    """Flat graph with dt -> (netlist, arrays for the artifact, facts for the report)."""
    extra = options.extra or {}
    coding, capacity, max_w = _coding_and_sizes(extra, board)
    arrays: dict[str, np.ndarray] = {}
    notes: list[str] = []
    sem: dict[str, Any] = {}       # semantic warnings (spikeforge.semantics) for artifact.meta
    plan = plan or plan_program(g, dt, board, options)
    sources, layers, delays, outputs, order = plan.parsed
    arrays.update(plan.arrays)
    notes.extend(plan.notes)
    sem["semantic_warnings"] = list(plan.sem.get("semantic_warnings", []))
    lib = library_from_board(board)
    nl = Netlist(mode=coding, library=lib,
                 meta={"ptl_min_delay_stages": int(board.value("timing.ptl_min_delay_stages")), "dt": dt,
                       "board": board.name})
    d_split, d_merge, d_syn = lib["SPLIT"]["delay_fs"], lib["MERGE"]["delay_fs"], lib["SYN"]["delay_fs"]
    stagger = fs(board.value("timing.merge_stagger"))
    n_setup, n_hold = lib["NEURON"]["setup_fs"], lib["NEURON"]["hold_fs"]
    f_setup, f_hold, clkq = lib["DFF"]["setup_fs"], lib["DFF"]["hold_fs"], lib["DFF"]["delay_fs"]
    period_needs: list[tuple[int, str]] = [(fs(board.value("timing.clock_target")), "clock target")]
    max_leaves = int(board.value("limits.max_fanin_leaves"))

    # ---- cells for sources and neurons ---------------------------------------------------------
    emit: dict[tuple[str, int], tuple[int, str]] = {}       # source element -> driving (cell, port)
    phase: dict[tuple[str, int], int] = {}                  # source element -> emission time, step 0
    for name, (kind, n) in sources.items():
        if kind == "input":
            enc = str((getattr(g.nodes[name], "metadata", None) or {}).get("spikeforge.encoding", "")) or \
                str((g.metadata or {}).get("spikeforge.input_encoding", ""))
            if enc.startswith("analog"):
                # the DC/SFQ front end sigma-delta encodes a value in [0, 1] into at most one pulse per step
                nl.meta.setdefault("input_encoding", {})[name] = "sigma-delta"
                notes.append(f"input '{name}' is analog: sigma-delta encoded to pulses at the DC/SFQ front end "
                             "(one pulse per step at most; values must lie in [0, 1])")
            ids = [nl.add(f"{name}[{i}]", "IN", phase_fs=0) for i in range(n)]
            nl.inputs[name] = ids
            for i, c in enumerate(ids):
                emit[(name, i)] = (c, "q")
                phase[(name, i)] = lib["IN"]["delay_fs"]
    neuron_ids: dict[str, list[int]] = {}
    leaves: dict[tuple[str, int], list[Leaf]] = {}
    per_neuron: dict[int, list[Leaf]] = {}
    layer_info: dict[str, dict[str, Any]] = {}
    for L in layers:
        ids = []
        Q = plan.q[L.name]
        wscale, th, lk, q, bq = Q.wscale, Q.th, Q.lk, Q.q, Q.bq
        for j in range(L.size):
            c = nl.add(f"{L.name}[{j}]", "NEURON", threshold=int(th[j]), reset_sub=int(lk.sub[j]), capacity=capacity,
                       reset=L.reset, reset_timing=L.reset_timing, v_reset=int(lk.v_reset[j]),
                       leak="decay" if lk.num[j] > 0 else "none", leak_frac=float(1.0 - L.keep[j]),
                       leak_num=int(lk.num[j]), leak_bits=plan.program["layers"][L.name]["leak_bits"] if lk.num[j] > 0 else 0,
                       frac_bits=lk.frac_bits, v_unit=float(wscale[j] / (1 << lk.frac_bits)), layer=L.name, index=j)
            ids.append(c)
            per_neuron[c] = []
        neuron_ids[L.name] = ids
        for j in range(L.size):
            emit[(L.name, j)] = (ids[j], "q")
        synapses = 0
        for src, W in L.projections:
            if coding == "clocked":
                qm = q[src]
                for j, i in zip(*np.nonzero(qm)):
                    for _ in range(abs(int(qm[j, i]))):
                        lf = Leaf((src, int(i)), "syn", ids[j], 1 if qm[j, i] > 0 else -1)
                        leaves.setdefault((src, int(i)), []).append(lf)
                        per_neuron[ids[j]].append(lf)
                    synapses += 1
            else:
                w0 = float(wscale[0])       # stochastic coding: one scale per layer
                copies = np.ceil(np.abs(W) / w0 - 1e-9).astype(np.int64)
                ptarget = np.where(copies > 0, np.abs(W) / (np.maximum(copies, 1) * w0), 0.0)
                cur, preal = comparator_probability(ptarget, board)
                perr = float(np.max(np.abs(preal - ptarget), initial=0.0))
                record(sem, L.name, "quantisation", "stochastic coding: each weight is a comparator pass probability "
                       "set by a quantised control current (outputs are rates); largest |p realised - p target|", perr)
                arrays[f"{L.name}/p_target/{src}"] = ptarget
                arrays[f"{L.name}/p/{src}"] = preal
                arrays[f"{L.name}/i_ctrl_uA/{src}"] = cur * 1e6
                for j, i in zip(*np.nonzero(preal)):
                    for _ in range(int(copies[j, i])):
                        lf = Leaf((src, int(i)), "syn", ids[j], 1 if W[j, i] > 0 else -1, float(preal[j, i]))
                        leaves.setdefault((src, int(i)), []).append(lf)
                        per_neuron[ids[j]].append(lf)
                    synapses += 1
        nbias = 0
        if Q.has_bias_pulses if coding == "clocked" else L.bias is not None:
            key = (f"{L.name}.bias", 0)
            if coding == "clocked":
                for j in np.nonzero(bq)[0]:
                    for _ in range(abs(int(bq[j]))):
                        lf = Leaf(key, "syn", ids[j], 1 if bq[j] > 0 else -1)
                        leaves.setdefault(key, []).append(lf)
                        per_neuron[ids[j]].append(lf)
                        nbias += 1
            else:
                copies = np.ceil(np.abs(L.bias) / wscale - 1e-9).astype(np.int64)
                pt = np.where(copies > 0, np.abs(L.bias) / (np.maximum(copies, 1) * wscale), 0.0)
                _, pr = comparator_probability(pt, board)
                arrays[f"{L.name}/bias_p"] = pr
                for j in np.nonzero(pr)[0]:
                    for _ in range(int(copies[j])):
                        lf = Leaf(key, "syn", ids[j], 1 if L.bias[j] > 0 else -1, float(pr[j]))
                        leaves.setdefault(key, []).append(lf)
                        per_neuron[ids[j]].append(lf)
                        nbias += 1
        fan = [len(per_neuron[c]) for c in ids]
        layer_info[L.name] = {"neurons": L.size, "kind": L.kind, "synapses": synapses, "bias_pulses": nbias,
                              "weight_scale": float(np.max(wscale)),
                              "weight_scale_min": float(np.min(wscale)), "max_fanin_pulses": max(fan) if fan else 0,
                              "threshold_max": int(th.max())}
        if fan and max(fan) > max_leaves:
            notes.append(f"{L.name}: up to {max(fan)} pulses merge into one neuron per step (board guideline "
                         f"{max_leaves}); the clock period grows with {stagger / 1000:.0f} ps per pulse")
    for src, steps in delays.values():
        for i in range(len(steps)):
            lf = Leaf((src, i), "delay")
            leaves.setdefault((src, i), []).append(lf)
    out_cells: dict[str, list[int]] = {}
    for name, src in outputs.items():
        n = sources[src][1]
        ids = [nl.add(f"{name}[{i}]", "OUT", offset_fs=0) for i in range(n)]
        out_cells[name] = ids
        nl.outputs[name] = ids
        for i in range(n):
            lf = Leaf((src, i), "out", ids[i])
            leaves.setdefault((src, i), []).append(lf)

    # ---- bias taps and fan-out trees -------------------------------------------------------------
    clock_consumers: list[tuple[int, str, int]] = []     # (cell, port, required arrival), step 0
    bias_tap: dict[str, int] = {}
    for L in layers:
        if (f"{L.name}.bias", 0) in leaves:
            c = nl.add(f"{L.name}.bias_tap", "JTL", stages=1, net="clock")
            bias_tap[L.name] = c
            emit[(f"{L.name}.bias", 0)] = (c, "q")
    for key in sorted(leaves, key=lambda k: (k[0], k[1])):
        lst = leaves[key]
        if key not in emit:
            continue  # delay outputs: built when the delay is placed
        c, p = emit[key]
        ends = nl.split_tree(c, p, len(lst), f"{key[0]}[{key[1]}].fo")
        for lf, e in zip(lst, ends):
            lf.endpoint = e

    # ---- place in topological order: phases, merger trees, padding -------------------------------
    def place_delay(name: str) -> None:
        src, steps = delays[name]
        n = len(steps)
        arr = {}
        for i in range(n):
            lf = next(x for x in leaves[(src, i)] if x.kind == "delay" and x.endpoint is not None
                      and id(x) not in placed)
            placed.add(id(lf))
            arr[i] = (lf, phase[(src, i)] + lf.endpoint[2] * d_split)
        lo = min(a for _, a in arr.values())
        hi = max(a for _, a in arr.values())
        clk = lo - f_hold - _MARGIN_FS
        period_needs.append((hi - clk + f_setup + _MARGIN_FS, f"delay '{name}' capture window"))
        period_needs.append((clkq + f_setup + _MARGIN_FS, f"delay '{name}' DFF chain"))
        for i in range(n):
            lf, a = arr[i]
            c, p, _ = lf.endpoint
            d = int(steps[i])
            if d == 0:
                emit[(name, i)] = (c, p)
                phase[(name, i)] = a
                continue
            prev = (c, p)
            for k in range(d):
                f = nl.add(f"{name}[{i}].dff{k}", "DFF")
                nl.connect(prev[0], prev[1], f, "d")
                clock_consumers.append((f, "clk", clk))
                prev = (f, "q")
            emit[(name, i)] = prev
            phase[(name, i)] = clk + clkq
        # the delay's own consumers: fan-out now that its driving cells exist
        for i in range(n):
            lst = leaves.get((name, i), [])
            if lst:
                c, p = emit[(name, i)]
                ends = nl.split_tree(c, p, len(lst), f"{name}[{i}].fo")
                for lf, e in zip(lst, ends):
                    lf.endpoint = e

    placed: set[int] = set()
    layer_phase: dict[str, int] = {}
    layer_by_name = {L.name: L for L in layers}
    for name in order:
        kind = sources[name][0]
        if kind == "delay":
            place_delay(name)
            continue
        if kind != "layer":
            continue
        L = layer_by_name[name]
        ids = neuron_ids[name]
        srcs = [s for s, _ in L.projections]
        if name in bias_tap:
            base = min((phase[(s, i)] for s in srcs for i in range(sources[s][1])), default=0)
            phase[(f"{name}.bias", 0)] = base
            clock_consumers.append((bias_tap[name], "a", base - lib["JTL"]["delay_fs"]))
        plans = []
        for c in ids:
            lst = per_neuron[c]
            exc = sorted((lf for lf in lst if lf.sign > 0),
                         key=lambda lf: phase[lf.src] + lf.endpoint[2] * d_split)
            inh = sorted((lf for lf in lst if lf.sign < 0),
                         key=lambda lf: phase[lf.src] + lf.endpoint[2] * d_split)
            items = []
            for group, port in ((exc, "exc"), (inh, "inh")):
                if not group:
                    continue
                ends = nl.merge_tree(c, port, len(group), f"{nl.cells[c].name}.{port}")
                ends = sorted(ends, key=lambda e: -e[2])   # deepest positions to the earliest leaves
                for lf, e in zip(group, ends):
                    ready = phase[lf.src] + lf.endpoint[2] * d_split + (d_syn if coding == "stochastic" else 0)
                    items.append((ready + e[2] * d_merge, lf, e))
            items = _interleave(items)
            a0 = max((r - k * stagger for k, (r, _, _) in enumerate(items)), default=0)
            plans.append((c, items, a0))
        clk = max((a0 + (len(items) - 1) * stagger for _, items, a0 in plans if items), default=0) \
            + n_setup + _MARGIN_FS
        mmax = max((len(items) for _, items, _ in plans), default=0)
        period_needs.append((max(0, mmax - 1) * stagger + n_setup + n_hold + 2 * _MARGIN_FS
                             + max(stagger, lib["NEURON"]["min_sep_fs"]), f"layer '{name}' fan-in window"))
        layer_phase[name] = clk
        for c, items, _ in plans:
            m = len(items)
            start = clk - n_setup - _MARGIN_FS - (m - 1) * stagger
            for k, (r, lf, (mc, mp, _)) in enumerate(items):
                sc, sp, _ = lf.endpoint
                if coding == "stochastic":
                    syn = nl.add(f"{nl.cells[lf.neuron].name}.syn{k}", "SYN", p=lf.p, src=f"{lf.src[0]}[{lf.src[1]}]")
                    nl.connect(sc, sp, syn, "a")
                    sc, sp = syn, "q"
                pad = start + k * stagger - r
                dc, dp, resid = nl.delay_line(sc, sp, pad, f"{nl.cells[lf.neuron].name}.pad{k}")
                nl.connect(dc, dp, mc, mp, resid)
            nl.cells[c].params["clk_fs"] = clk
            clock_consumers.append((c, "clk", clk))
        for j in range(len(ids)):
            phase[(name, j)] = clk + lib["NEURON"]["delay_fs"]
    # outputs
    for name, src in outputs.items():
        for i, c in enumerate(out_cells[name]):
            lf = next(x for x in leaves[(src, i)] if x.kind == "out" and x.neuron == c)
            sc, sp, depth = lf.endpoint
            nl.connect(sc, sp, c, "a")
            nl.cells[c].params["offset_fs"] = phase[(src, i)] + depth * d_split

    # ---- clock tree ------------------------------------------------------------------------------
    period = max(v for v, _ in period_needs)
    period = int(math.ceil(period / 1000.0) * 1000)
    binding = max(period_needs, key=lambda x: x[0])[1]
    root = nl.add("clk.root", "CLK", offset_fs=0, net="clock")
    nl.clock_root = root
    groups: dict[int, list[tuple[int, str]]] = {}
    for c, p, t in clock_consumers:
        groups.setdefault(t, []).append((c, p))
    gkeys = sorted(groups)
    shift = 0
    if gkeys:
        first = len(nl.cells)
        trunk = nl.split_tree(root, "q", len(gkeys), "clk.trunk")
        ends: list[tuple[int, str, int, int, str, int]] = []   # consumer, port, phase, end cell, end port, depth
        for t, (tc, tp, tdepth) in zip(gkeys, trunk):
            for (cc, cp), (ec, ep, ed) in zip(groups[t], nl.split_tree(tc, tp, len(groups[t]), f"clk.ph{t}")):
                ends.append((cc, cp, t, ec, ep, tdepth + ed))
        emit0 = min(t - depth * d_split for _, _, t, _, _, depth in ends)
        trig = emit0 - lib["CLK"]["delay_fs"]
        shift = max(0, -trig)
        nl.cells[root].params["offset_fs"] = trig + shift
        for cc, cp, t, ec, ep, depth in ends:
            pad = t - emit0 - depth * d_split
            lc, lp, lres = nl.delay_line(ec, ep, pad, f"clk.ph{t}.to.{nl.cells[cc].name}")
            nl.connect(lc, lp, cc, cp, lres)
        for cell in nl.cells[first:]:
            cell.params["net"] = "clock"
    # shift all absolute times so the clock trigger is at t >= 0
    if shift:
        for cell in nl.cells:
            for key in ("phase_fs", "offset_fs", "clk_fs"):
                if key in cell.params and not (cell.type == "CLK"):
                    cell.params[key] = int(cell.params[key]) + shift
        layer_phase = {k: v + shift for k, v in layer_phase.items()}
    nl.period_fs = period
    out_off = [nl.cells[c].params["offset_fs"] for ids in nl.outputs.values() for c in ids]
    nl.latency_fs = int(max(out_off)) if out_off else 0
    nl.validate()
    info = {"coding": coding, "period_fs": period, "period_binding": binding, "layers": layer_info,
            "layer_clock_fs": layer_phase, "notes": notes, "capacity": capacity, "max_weight": max_w,
            "pipeline_latency_fs": nl.latency_fs, "semantic_warnings": sem.get("semantic_warnings", []),
            "program": plan.program}
    nl.meta.update({"layer_clock_fs": layer_phase, "period_binding": binding})
    return nl, arrays, info
