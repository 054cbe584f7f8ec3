"""Quantisation under a bit budget (Shen et al., CVPR 2024, "Are Conventional SNNs Really Efficient?").

Bit budget of a layer l: B_l = b_w,l x b_a,l x T (weight bits x activation/spike bits x time steps; binary
spikes have b_a = 1). The network's budget is the synapse-weighted mean of B_l, so a uniform allocation
reduces to the paper's product b_w x b_a x T, and the implied energy estimate, the bit-operation count
BOPs = sum_l synapses_l x b_w,l x b_a,l x T, is exactly budget x total synapses (see docs/passes.md).

The pass picks per-layer weight widths (and T, and input activation widths for graded inputs) that minimise
the output divergence from the float graph on calibration data, within the budget and the board's allowed
widths. The graph it returns is an ordinary NIR graph holding dequantised weights (integer x scale) and
neuron parameters rounded onto the same integer grid (thresholds, leaks, decays), so the float reference
simulator runs the integer dynamics; the integers themselves ride in node metadata `spikeforge.quant`.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from .. import refsim
from ..errors import BoardError, InputError
from . import _common as C
from .report import LayerQuant, QuantReport

META_KEY = "spikeforge.quant"
DEFAULT_WIDTHS = list(range(1, 17))
DEFAULT_DECAY_BITS = 12
DEFAULT_STATE_BITS = 24
DEFAULT_STATE_FRAC_BITS = 6
MODES = ("symmetric", "asymmetric")
ROUNDINGS = ("nearest", "stochastic")


# ---------------------------------------------------------------------------------------------------
# Tensor quantisation
# ---------------------------------------------------------------------------------------------------


@dataclass
class QTensor:
    """w ~= (q - zero_point) * scale, broadcast along axis 0 when per-channel."""

    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    bits: int

    def dequantise(self) -> np.ndarray:
        shp = (-1,) + (1,) * (self.q.ndim - 1)
        return ((self.q - self.zero_point.reshape(shp)) * self.scale.reshape(shp)).astype(np.float32)


def _round(x: np.ndarray, rounding: str, rng: np.random.Generator | None) -> np.ndarray:
    if rounding == "stochastic":
        assert rng is not None
        return np.floor(x + rng.random(x.shape))
    return np.rint(x)


def quantize_tensor(w: np.ndarray, bits: int, *, mode: str = "symmetric", per_channel: bool = False,
                    rounding: str = "nearest", rng: np.random.Generator | None = None,
                    search_clip: bool = True, clip: float | None = None) -> QTensor:
    """Uniform quantisation of a weight tensor; the clipping range is searched to minimise the MSE.

    Symmetric b bits: integers in [-(2^(b-1)-1), 2^(b-1)-1] (b = 1: {-1, +1}, sign x mean magnitude).
    Asymmetric: [0, 2^b - 1] with an integer zero point, so exact zeros stay zero (pruned weights survive).
    `clip` fixes the fraction of the weight range kept (else the fraction with the least squared error).
    """
    if mode not in MODES:
        raise InputError(f"quantisation mode {mode!r}; allowed {MODES}")
    if rounding not in ROUNDINGS:
        raise InputError(f"rounding {rounding!r}; allowed {ROUNDINGS}")
    w = np.asarray(w, dtype=np.float64)
    rows = w.reshape(w.shape[0], -1) if (per_channel and w.ndim >= 2) else w.reshape(1, -1)
    n_ch = rows.shape[0]
    qs, scales, zps = [], np.ones(n_ch), np.zeros(n_ch)
    for c in range(n_ch):
        x = rows[c]
        best: tuple[float, np.ndarray, float, float] | None = None
        fracs = (1.0, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5) if (search_clip and bits >= 2) else (1.0,)
        if clip is not None:
            fracs = (float(clip),)
        for frac in fracs:
            if mode == "symmetric" and bits == 1:
                nz = np.abs(x[x != 0])
                s = float(nz.mean()) if nz.size else 1.0
                q, z = np.where(x >= 0, 1.0, -1.0), 0.0
                q = np.where(x == 0, 1.0, q)
            elif mode == "symmetric":
                qmax = 2 ** (bits - 1) - 1
                m = float(np.abs(x).max()) * frac
                s = m / qmax if m > 0 else 1.0
                q, z = np.clip(_round(x / s, "nearest", None), -qmax, qmax), 0.0
            else:
                lo, hi = min(float(x.min()), 0.0) * frac, max(float(x.max()), 0.0) * frac
                levels = 2**bits - 1
                s = (hi - lo) / levels if hi > lo else 1.0
                z = float(np.clip(np.rint(-lo / s), 0, levels))
                q = np.clip(_round(x / s, "nearest", None) + z, 0, levels)
            err = float(np.sum(((q - z) * s - x) ** 2))
            if best is None or err < best[0] - 1e-15:
                best = (err, q, s, z)
        assert best is not None
        _, q, s, z = best
        if rounding == "stochastic" and not (mode == "symmetric" and bits == 1):
            if mode == "symmetric":
                qmax = 2 ** (bits - 1) - 1
                q = np.clip(_round(x / s, rounding, rng), -qmax, qmax)
            else:
                q = np.clip(_round(x / s, rounding, rng) + z, 0, 2**bits - 1)
        qs.append(q)
        scales[c], zps[c] = s, z
    q_all = np.stack(qs).reshape(w.shape).astype(np.int32)
    if not (per_channel and w.ndim >= 2):
        scales = np.full(w.shape[0] if w.ndim >= 1 else 1, scales[0]) if w.ndim >= 2 else scales
        zps = np.full(scales.shape, zps[0])
    return QTensor(q_all, scales.astype(np.float64), zps.astype(np.int32), bits)


def int_hash(q: np.ndarray) -> str:
    """sha256 over dtype, shape and bytes of an integer array: backends check they emitted these integers."""
    a = np.ascontiguousarray(q.astype(np.int32))
    h = hashlib.sha256()
    h.update(str(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------
# Board widths
# ---------------------------------------------------------------------------------------------------


def _board(board: Any):
    if board is None or not isinstance(board, str):
        return board
    from ..boardspec import get_board

    return get_board(board)


def allowed_widths(board: Any) -> tuple[list[int], list[int], int, int, int]:
    """(weight widths, activation widths, decay bits, state bits, state fraction bits) from the board, or defaults.

    Keys: arithmetic.weight_bits_allowed (list; else 1..arithmetic.weight_bits; else 1..16),
    arithmetic.activation_bits_allowed, arithmetic.decay_bits, arithmetic.state_bits, arithmetic.state_frac_bits.

    State fraction bits: the neuron state counts in units of (weight step / 2^f), as Loihi's weight
    exponent shifts weights into a wider state; biases, thresholds and leaks are rounded on that grid.
    """
    b = _board(board)

    def get(key: str, default: Any) -> Any:
        if b is None or not b.has(key):
            return default
        return b.value(key)

    if b is not None and not b.has("arithmetic.weight_bits_allowed") and b.has("arithmetic.weight_bits"):
        # a board that states one register width runs every narrower width too
        top = int(np.atleast_1d(b.value("arithmetic.weight_bits"))[0])
        w = list(range(1, top + 1))
    else:
        w = sorted({int(x) for x in np.atleast_1d(get("arithmetic.weight_bits_allowed", DEFAULT_WIDTHS))})
    a = sorted({int(x) for x in np.atleast_1d(get("arithmetic.activation_bits_allowed", DEFAULT_WIDTHS))})
    decay = int(np.atleast_1d(get("arithmetic.decay_bits", DEFAULT_DECAY_BITS))[0])
    state = int(np.atleast_1d(get("arithmetic.state_bits", DEFAULT_STATE_BITS))[0])
    frac = int(np.atleast_1d(get("arithmetic.state_frac_bits", DEFAULT_STATE_FRAC_BITS))[0])
    if not w or min(w) < 1:
        raise BoardError(f"board weight_bits_allowed must list widths >= 1, got {w}", field="arithmetic.weight_bits_allowed")
    return w, a or [1], decay, state, frac


# ---------------------------------------------------------------------------------------------------
# Applying an allocation
# ---------------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    name: str
    synapses: int
    graded_input: bool      # input is graded (not binary spikes): activation bits are a choice
    fixed_abits: int        # activation bits when not a choice (1 for spikes, data width for integer input)
    input_node: str | None  # the Input node feeding it, when graded input comes straight from data


def _input_bits(x: np.ndarray) -> tuple[bool, int]:
    """(graded?, bits) of calibration data: binary -> (False, 1); small integers -> (False, width)."""
    if np.all((x == 0) | (x == 1)):
        return False, 1
    if np.all(np.rint(x) == x) and x.min() >= 0:
        return False, max(1, int(math.ceil(math.log2(float(x.max()) + 1))))
    return True, 8


def _layers(g: nir.NIRGraph, calib: C.Calibration | None) -> list[_Layer]:
    out = []
    for name in C.weighted_layers(g):
        preds = C.predecessors(g, name)
        graded, abits, in_node = False, 1, None
        for p in preds:
            node = g.nodes[p]
            if isinstance(node, nir.Input):
                if calib is not None:
                    gr, bits = _input_bits(calib.inputs[p])
                    graded, abits = graded or gr, max(abits, bits)
                    in_node = p if gr else in_node
                # without data, inputs are taken as binary spikes (1 bit); the report says so
            elif not isinstance(node, (*C.SPIKING, nir.Threshold)):
                abits = max(abits, 8)  # graded intermediate signal: recorded, not simulated
        out.append(_Layer(name, C.synapse_count(g.nodes[name]), graded and in_node is not None, abits, in_node))
    return out


def _quantise_input(x: np.ndarray, bits: int) -> np.ndarray:
    """Unsigned uniform activation quantisation of graded input data to `bits` (range from the data)."""
    hi = float(np.max(np.abs(x))) or 1.0
    levels = 2**bits - 1
    lo = min(float(x.min()), 0.0)
    s = (hi - lo) / levels
    return (np.clip(np.rint((x - lo) / s), 0, levels) * s + lo).astype(np.float32)


def _decay(keep: np.ndarray, bits: int) -> np.ndarray:
    return np.rint(np.clip(keep, 0, 1) * 2**bits).astype(np.int64)


class _Applier:
    """Builds the quantised graph for one allocation; collects warnings when asked."""

    def __init__(self, g: nir.NIRGraph, mode: str, per_channel: bool, rounding: str, seed: int,
                 decay_bits: int, state_bits: int, frac_bits: int = DEFAULT_STATE_FRAC_BITS):
        self.g = g
        self.mode, self.per_channel, self.rounding, self.seed = mode, per_channel, rounding, seed
        self.decay_bits, self.state_bits, self.frac_bits = decay_bits, state_bits, frac_bits
        self.cfg = refsim.config_for_graph(g)
        self._cache: dict[tuple[str, int, float | None], QTensor] = {}
        self.clips: dict[str, float | None] = {}

    def qweight(self, name: str, bits: int) -> QTensor:
        clip = self.clips.get(name)
        key = (name, bits, clip)
        if key not in self._cache:
            idx = C.weighted_layers(self.g).index(name)
            rng = np.random.default_rng([self.seed, idx, bits])
            self._cache[key] = quantize_tensor(np.asarray(self.g.nodes[name].weight), bits, mode=self.mode,
                                               per_channel=self.per_channel, rounding=self.rounding, rng=rng,
                                               clip=clip)
        return self._cache[key]

    def apply(self, wbits: dict[str, int], abits: dict[str, int], *, full: bool = False
              ) -> tuple[nir.NIRGraph, list[str], dict[str, dict[str, float]]]:
        g = copy.deepcopy(self.g)
        warnings: list[str] = []
        stats: dict[str, dict[str, float]] = {}
        for name, bits in wbits.items():
            node = g.nodes[name]
            qt = self.qweight(name, bits)
            w = np.asarray(node.weight)
            node.weight = qt.dequantise().reshape(w.shape)
            rows = w.reshape(w.shape[0], -1)
            qrows = (qt.q - qt.zero_point.reshape((-1,) + (1,) * (qt.q.ndim - 1))).reshape(w.shape[0], -1)
            nz = rows != 0
            zeroed = float(np.sum(nz & (qrows == 0)) / max(1, nz.sum()))
            stats[name] = {"zeroed": zeroed, "smin": float(qt.scale.min()), "smax": float(qt.scale.max())}
            s_w = qt.scale if qt.scale.size == w.shape[0] else np.full(w.shape[0], float(qt.scale.ravel()[0]))
            meta: dict[str, Any] = {
                "weight_bits": int(bits), "activation_bits": int(abits.get(name, 1)), "mode": self.mode,
                "per_channel": bool(self.per_channel), "rounding": self.rounding,
                "scale": s_w.astype(np.float64), "zero_point": qt.zero_point.astype(np.int32),
                "weight_int": qt.q.astype(np.int32), "int_weight_hash": int_hash(qt.q),
            }
            if full:
                if zeroed > 0.5:
                    warnings.append(f"layer '{name}' parameter 'weight': {100 * zeroed:.0f}% of the non-zero "
                                    f"weights round to 0 at {bits} bits")
                lost = int(np.sum(nz.any(axis=1) & ~(qrows != 0).any(axis=1)))
                if lost:
                    warnings.append(f"layer '{name}' parameter 'weight': {lost} neuron(s) lose every input weight "
                                    f"at {bits} bits")
                for sign, label in ((1, "excitatory (positive)"), (-1, "inhibitory (negative)")):
                    cls = (rows * sign) > 0
                    if cls.sum() > 0 and not np.any(cls & (qrows * sign > 0)):
                        warnings.append(f"layer '{name}' parameter 'weight': every {label} weight rounds to 0 "
                                        f"at {bits} bits")
            bias = getattr(node, "bias", None)
            if bias is not None and np.ndim(bias) > 0 and isinstance(node, nir.Affine):
                b = np.asarray(bias, dtype=np.float64)
                s_b = (s_w.reshape(b.shape) if b.shape == s_w.shape else s_w[0]) / 2**self.frac_bits
                b_int = np.rint(b / s_b).astype(np.int64)
                node.bias = (b_int * s_b).astype(np.float32)
                meta["bias_int"] = b_int.astype(np.int64)
            C.set_meta(node, META_KEY, meta)
            neuron = C.neuron_after(g, name)
            if neuron is not None:
                self._neuron(g, neuron, s_w, warnings if full else None)
        return g, warnings, stats

    def _neuron(self, g: nir.NIRGraph, name: str, s_w: np.ndarray, warnings: list[str] | None) -> None:
        """Round decays, threshold, leak and reset onto the integer grid implied by the weight scale."""
        node = g.nodes[name]
        cfg = self.cfg.for_node(node)
        dt, db = cfg.dt, self.decay_bits
        meta: dict[str, Any] = {"decay_bits": db, "state_bits": self.state_bits, "state_frac_bits": self.frac_bits}
        exact = cfg.integration == "exact"

        def keep_of(tau: np.ndarray) -> np.ndarray:
            return np.exp(-dt / tau) if exact else 1 - dt / tau

        def tau_of(keep: np.ndarray) -> np.ndarray:
            return -dt / np.log(keep) if exact else dt / (1 - keep)

        def quant_decay(field: str, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            keep = keep_of(tau)
            k_int = _decay(keep, db)
            bad_zero = (k_int == 0) & (keep > 0)
            bad_one = (k_int >= 2**db) & (keep < 1)
            if warnings is not None and bad_zero.any():
                warnings.append(f"layer '{name}' parameter '{field}': decay {float(keep[bad_zero].ravel()[0]):.4g} "
                                f"rounds to 0 at {db} bits (the state forgets everything each step)")
            if warnings is not None and bad_one.any():
                warnings.append(f"layer '{name}' parameter '{field}': decay {float(keep[bad_one].ravel()[0]):.4g} "
                                f"rounds to 1 at {db} bits (no leak); kept one step below")
            k_int = np.clip(k_int, 1, 2**db - 1)
            keep_q = k_int / 2**db
            return k_int, keep_q

        scale = s_w.astype(np.float64)
        shape = np.shape(node.r) if np.ndim(node.r) else None
        if shape and scale.size not in (1, int(np.prod(shape))):
            return  # conv output scales do not map one-to-one onto neurons; weights only
        if shape:
            scale = np.broadcast_to(scale.reshape(-1) if scale.size > 1 else scale[:1], (int(np.prod(shape)),))
            scale = scale.reshape(shape)
        else:
            scale = scale.reshape(-1)[0] if scale.size == 1 else scale
        if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            k_int, keep_q = quant_decay("tau_syn", np.asarray(node.tau_syn, dtype=np.float64))
            node.tau_syn = tau_of(keep_q).astype(np.float32)
            meta["syn_decay_int"] = k_int
            scale = scale * np.asarray(node.w_in, dtype=np.float64) * (1 - keep_q)
            tau_field = "tau_mem"
        elif isinstance(node, (nir.LIF, nir.LI)):
            tau_field = "tau"
        else:
            tau_field = None
        if tau_field is not None:
            k_int, keep_q = quant_decay(tau_field, np.asarray(getattr(node, tau_field), dtype=np.float64))
            setattr(node, tau_field, tau_of(keep_q).astype(np.float32))
            meta["decay_int"] = k_int
            gain = 1 - keep_q
        else:
            gain = dt if cfg.if_dt else 1.0
        s_v = scale * np.asarray(node.r, dtype=np.float64) * gain / 2**self.frac_bits
        s_v = np.where(np.abs(s_v) > 0, s_v, 1.0)
        meta["state_scale"] = np.asarray(s_v, dtype=np.float64)
        limit = 2 ** (self.state_bits - 1) - 1
        if isinstance(node, C.SPIKING):
            vth = np.asarray(node.v_threshold, dtype=np.float64)
            th_int = np.rint(vth / s_v).astype(np.int64)
            if warnings is not None and np.any(np.abs(th_int) > limit):
                warnings.append(f"layer '{name}' parameter 'v_threshold': {float(np.max(np.abs(th_int))):.0f} "
                                f"state units exceeds the {self.state_bits}-bit state range; clipped")
            if warnings is not None and np.any((th_int <= 0) & (vth > 0)):
                warnings.append(f"layer '{name}' parameter 'v_threshold': rounds to 0 state units (below the "
                                f"state resolution), the neuron fires on any input")
            th_int = np.clip(th_int, -limit, limit)
            node.v_threshold = (th_int * s_v).astype(np.float32)
            meta["threshold_int"] = th_int
            vr = getattr(node, "v_reset", None)
            if vr is not None:
                r_int = np.clip(np.rint(np.asarray(vr, dtype=np.float64) / s_v), -limit, limit).astype(np.int64)
                node.v_reset = (r_int * s_v).astype(np.float32)
                meta["reset_int"] = r_int
        vl = getattr(node, "v_leak", None)
        if vl is not None and np.any(np.asarray(vl) != 0):
            g_ = np.where(np.asarray(gain) > 0, gain, 1.0)
            leak_int = np.rint(np.asarray(vl, dtype=np.float64) * g_ / s_v).astype(np.int64)
            node.v_leak = (leak_int * s_v / g_).astype(np.float32)
            meta["leak_int"] = leak_int
        C.set_meta(node, META_KEY, meta)


# ---------------------------------------------------------------------------------------------------
# The search
# ---------------------------------------------------------------------------------------------------


def bits_spent(layers: list[_Layer], wbits: dict[str, int], abits: dict[str, int], T: int) -> float:
    """Synapse-weighted mean of b_w x b_a x T over layers."""
    tot = sum(max(L.synapses, 1) for L in layers)
    return float(sum(max(L.synapses, 1) * wbits[L.name] * abits[L.name] * T for L in layers) / tot)


def quantize(graph: nir.NIRGraph, *, bit_budget: float | None, board: Any = None,
             calibration: dict | np.ndarray | None, timesteps: int | None, weight_bits: int | None = None,
             mode: str = "symmetric", per_channel: bool = False, rounding: str = "nearest",
             seed: int = 0) -> tuple[nir.NIRGraph, QuantReport]:
    """Quantise a graph's weights (and the neuron parameters that share their scale) under a bit budget.

    `bit_budget` = synapse-weighted mean of weight bits x activation bits x time steps; `weight_bits` forces
    a uniform width instead. Returns a valid NIR graph with dequantised values and integer metadata, and a
    report. Raises BoardError for budgets or widths the board cannot run.
    """
    if mode not in MODES:
        raise InputError(f"quantisation mode {mode!r}; allowed {MODES}")
    if rounding not in ROUNDINGS:
        raise InputError(f"rounding {rounding!r}; allowed {ROUNDINGS}")
    g = C.clone(graph)
    b = _board(board)
    allowed_w, allowed_a, decay_bits, state_bits, frac_bits = allowed_widths(b)
    calib = C.calibration_data(g, calibration)
    layers = _layers(g, calib)
    if not layers:
        raise InputError("graph has no weighted layer (Affine, Linear, Conv) to quantise")
    t_meta = (g.metadata or {}).get("spikeforge.timesteps")
    T_full = calib.timesteps if calib is not None else int(t_meta) if t_meta is not None else 1
    if timesteps is not None:
        if timesteps < 1:
            raise InputError(f"timesteps must be >= 1, got {timesteps}")
        if calib is not None and timesteps > calib.timesteps:
            raise InputError(f"timesteps {timesteps} exceeds the calibration data's {calib.timesteps} steps")
        t_options = [int(timesteps)]
    elif bit_budget is not None and calib is not None and T_full > 1:
        t_options = sorted({T_full, max(1, math.ceil(0.75 * T_full)), max(1, math.ceil(0.5 * T_full))}, reverse=True)
    else:
        t_options = [T_full]
    a_choices = {L.name: ([a for a in allowed_a if a <= 8] or allowed_a[:1]) if L.graded_input else [L.fixed_abits]
                 for L in layers}
    board_name = getattr(b, "name", None)
    if weight_bits is not None:
        if int(weight_bits) not in allowed_w:
            raise BoardError(f"weight_bits={weight_bits} is not a width the board allows ({allowed_w})",
                             file=getattr(b, "path", None), field="arithmetic.weight_bits_allowed")
    # minimum budget the board can run
    min_abits = {L.name: min(a_choices[L.name]) for L in layers}
    min_budget = bits_spent(layers, {L.name: min(allowed_w) for L in layers}, min_abits, min(t_options))
    if bit_budget is not None and bit_budget < min_budget - 1e-9:
        raise BoardError(
            f"bit budget {bit_budget:g} is below the minimum this graph can run with "
            f"({min_budget:g} = {min(allowed_w)}-bit weights x {max(min_abits.values())}-bit activations x "
            f"{min(t_options)} time steps{' on board ' + board_name if board_name else ''})",
            field="bit_budget", hint=f"use --bit-budget >= {min_budget:g}")
    ap = _Applier(g, mode, per_channel, rounding, seed, decay_bits, state_bits, frac_bits)

    ref_scores = None
    if calib is not None:
        ref_scores = C.output_scores(C.simulate(g, calib.inputs))

    def run(wb: dict[str, int], ab: dict[str, int], T: int, *, full: bool = False):
        qg, warns, stats = ap.apply(wb, ab, full=full)
        if calib is None:
            return qg, warns, stats, None, None
        ins = calib.truncated(T)
        for L in layers:
            if L.graded_input and L.input_node is not None:
                ins[L.input_node] = _quantise_input(ins[L.input_node], ab[L.name])
        res = C.simulate(qg, ins, probes=full)
        scores = C.output_scores(res)
        return qg, warns, stats, C.divergence(ref_scores, scores, T_full, T), (res, scores)

    candidates: list[dict[str, Any]] = []
    if weight_bits is not None or bit_budget is None:
        wb0 = int(weight_bits) if weight_bits is not None else (8 if 8 in allowed_w else max(allowed_w))
        T = t_options[0]
        wbits = {L.name: wb0 for L in layers}
        abits = {L.name: max(a_choices[L.name]) for L in layers}
        if bit_budget is not None and bits_spent(layers, wbits, abits, T) > bit_budget + 1e-9:
            raise BoardError(f"{wb0}-bit weights need a bit budget of {bits_spent(layers, wbits, abits, T):g}, "
                             f"more than the {bit_budget:g} given", field="bit_budget")
    else:
        wbits, abits, T, candidates = _search(layers, allowed_w, a_choices, t_options, float(bit_budget), run,
                                              calib is not None, 1.0 / calib.batch if calib is not None else 0.0)
    if calib is not None:
        _refine_clips(ap, layers, wbits, abits, T, run)
    qg, warns, stats, err, sim = run(wbits, abits, T, full=True)
    return _finish(g, qg, layers, wbits, abits, T, warns, stats, err, sim, calib, ref_scores, bit_budget,
                   mode, per_channel, rounding, allowed_w, allowed_a, candidates, board_name)


def _search(layers: list[_Layer], allowed_w: list[int], a_choices: dict[str, list[int]], t_options: list[int],
            budget: float, run, have_calib: bool, margin: float = 0.0):
    """Sensitivity table per layer and width, additive model over all allocations, then joint check."""
    names = [L.name for L in layers]
    T0 = t_options[0]
    top_w = max(allowed_w)
    float_wb = {n: top_w for n in names}
    float_ab = {n: max(a_choices[n]) for n in names}
    # sensitivities: one layer (or T, or activation width) at a time, the rest at the top width
    sens_w: dict[tuple[str, int], float] = {}
    sens_a: dict[tuple[str, int], float] = {}
    sens_t: dict[int, float] = {}
    if have_calib:
        base = run(float_wb, float_ab, T0)[3]["objective"]
        for n in names:
            for wb in allowed_w:
                sens_w[(n, wb)] = max(0.0, run({**float_wb, n: wb}, float_ab, T0)[3]["objective"] - base)
            for ab in a_choices[n]:
                sens_a[(n, ab)] = max(0.0, run(float_wb, {**float_ab, n: ab}, T0)[3]["objective"] - base)
        for T in t_options:
            sens_t[T] = max(0.0, run(float_wb, float_ab, T)[3]["objective"] - base)
    else:  # no data: relative weight quantisation noise, 2^-2b, as the proxy
        for n in names:
            for wb in allowed_w:
                sens_w[(n, wb)] = 4.0 ** (-wb)
            for ab in a_choices[n]:
                sens_a[(n, ab)] = 4.0 ** (-ab)
        for T in t_options:
            sens_t[T] = 0.0 if T == T0 else 1.0
    syn = np.array([max(L.synapses, 1) for L in layers], dtype=np.float64)
    tot = syn.sum()
    per_layer_opts = [[(wb, ab) for wb in allowed_w for ab in a_choices[n]] for n in names]
    scored: list[tuple[float, float, int, tuple]] = []
    n_combo = int(np.prod([len(o) for o in per_layer_opts]))
    for T in t_options:
        if n_combo <= 200_000:
            combos = itertools.product(*per_layer_opts)
        else:  # many layers: uniform choices plus greedy refinements only
            combos = _greedy_combos(per_layer_opts, syn, T, budget, sens_w, sens_a, names)
        for combo in combos:
            spent = float(sum(s * wb * ab * T for s, (wb, ab) in zip(syn, combo)) / tot)
            if spent > budget + 1e-9:
                continue
            pred = sens_t[T] + sum(sens_w[(n, wb)] + sens_a[(n, ab)] for n, (wb, ab) in zip(names, combo))
            scored.append((pred, spent, T, combo))
    if not scored:
        raise BoardError(f"no allocation of the allowed widths fits a bit budget of {budget:g}", field="bit_budget")
    # deterministic order: predicted error, then fewer bits... but prefer spending the budget on ties
    scored.sort(key=lambda x: (round(x[0], 12), -x[1], -x[2], x[3]))
    picks = scored[:4]
    # the uniform allocation at this budget (the baseline the allocation must match or beat)
    uniform = [s for s in scored if len({wb for wb, _ in s[3]}) == 1]
    if uniform:
        uniform.sort(key=lambda x: (-x[1], -x[2]))
        picks.append(uniform[0])
    candidates = []
    best = None
    for pred, spent, T, combo in picks:
        wb = {n: c[0] for n, c in zip(names, combo)}
        ab = {n: c[1] for n, c in zip(names, combo)}
        err = run(wb, ab, T)[3] if have_calib else {"objective": pred}
        cand = {"weight_bits": wb, "activation_bits": ab, "timesteps": T, "bits_spent": spent,
                "predicted_additive": pred, "objective": err["objective"],
                "uniform": len(set(wb.values())) == 1}
        if cand not in candidates:
            candidates.append(cand)
        # a non-uniform allocation must beat uniform by more than the calibration noise (one sample)
        key = (round(err["objective"] - (margin if cand["uniform"] else 0.0), 12), -spent)
        if best is None or key < best[0]:
            best = (key, wb, ab, T)
    assert best is not None
    return best[1], best[2], best[3], candidates


def allocate_bits(synapses: dict[str, int], *, bit_budget: float,
                  evaluate: Callable[[dict[str, int], dict[str, int], int], float],
                  allowed_weight_bits: list[int], activation_choices: dict[str, list[int]] | None = None,
                  timesteps: list[int] | None = None, uniform_margin: float = 0.0
                  ) -> tuple[dict[str, int], dict[str, int], int, list[dict]]:
    """The allocator on its own, for models outside NIR (e.g. a quantised ANN, T = 1).

    `evaluate(weight_bits, activation_bits, T)` returns the output error to minimise (lower is better).
    Same search as `quantize`: per-layer sensitivities, every allocation within the budget scored by the
    additive model, the best few plus the uniform one evaluated jointly; a non-uniform allocation is kept
    only if it beats the uniform one by more than `uniform_margin`. Returns (wbits, abits, T, candidates).
    """
    layers = [_Layer(n, int(s), False, 1, None) for n, s in synapses.items()]
    a_choices = activation_choices or {n: [1] for n in synapses}
    t_opts = timesteps or [1]

    def run(wb, ab, T):
        return None, None, None, {"objective": float(evaluate(wb, ab, T))}

    return _search(layers, sorted(allowed_weight_bits), a_choices, sorted(t_opts, reverse=True), float(bit_budget),
                   run, True, uniform_margin)


CLIP_CHOICES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)


def _refine_clips(ap: _Applier, layers: list[_Layer], wbits, abits, T: int, run) -> None:
    """Per layer, keep the clipping fraction that minimises the output divergence on calibration data.

    The squared-error choice of `quantize_tensor` is the starting point; outputs, not weights, decide.
    """
    best = run(wbits, abits, T)[3]["objective"]
    for L in layers:
        for clip in CLIP_CHOICES:
            prev = ap.clips.get(L.name)
            ap.clips[L.name] = clip
            obj = run(wbits, abits, T)[3]["objective"]
            if obj < best - 1e-12:
                best = obj
            else:
                ap.clips[L.name] = prev


def _greedy_combos(per_layer_opts, syn, T, budget, sens_w, sens_a, names):
    """For deep graphs: start from the widest and narrow the layer with the best error per bit saved."""
    for k in range(len(per_layer_opts[0])):
        if all(len(o) > k for o in per_layer_opts):
            yield tuple(o[k] for o in per_layer_opts)
    cur = [sorted(o, key=lambda c: -c[0] * c[1])[0] for o in per_layer_opts]
    tot = syn.sum()
    while True:
        yield tuple(cur)
        spent = sum(s * wb * ab * T for s, (wb, ab) in zip(syn, cur)) / tot
        if spent <= budget:
            return
        best = None
        for i, opts in enumerate(per_layer_opts):
            for c in opts:
                saved = syn[i] * (cur[i][0] * cur[i][1] - c[0] * c[1])
                if saved <= 0:
                    continue
                cost = (sens_w[(names[i], c[0])] + sens_a[(names[i], c[1])]
                        - sens_w[(names[i], cur[i][0])] - sens_a[(names[i], cur[i][1])]) / saved
                if best is None or cost < best[0]:
                    best = (cost, i, c)
        if best is None:
            return
        cur[best[1]] = best[2]


def _finish(g, qg, layers, wbits, abits, T, warns, stats, err, sim, calib, ref_scores, bit_budget, mode,
            per_channel, rounding, allowed_w, allowed_a, candidates, board_name):
    divergence: list[dict[str, Any]] = []
    layer_events: dict[str, float] = {}
    predicted: dict[str, float | None] = {"mismatch": None, "rate_nrmse": None, "float_accuracy": None,
                                          "quantised_accuracy": None}
    if calib is not None and sim is not None:
        res_q, scores_q = sim
        ins = calib.truncated(T)
        res_f = C.simulate(g, ins, probes=True)
        predicted.update({"mismatch": err["mismatch"], "rate_nrmse": err["rate_nrmse"],
                          "float_accuracy": C.accuracy(ref_scores, calib.labels),
                          "quantised_accuracy": C.accuracy(scores_q, calib.labels)})
        B = calib.batch
        for name in C.weighted_layers(qg):
            layer_events[name] = res_q.layer_synops.get(name, 0.0) / B
        for name, node in qg.nodes.items():
            if not isinstance(node, C.NEURONS):
                continue
            af, aq = res_f.activity[name], res_q.activity[name]
            cf = af.sum(axis=0).reshape(B, -1)
            cq = aq.sum(axis=0).reshape(B, -1)
            row: dict[str, Any] = {"layer": name, "kind": type(node).__name__}
            if isinstance(node, C.SPIKING):
                sf, sq = float(cf.sum()), float(cq.sum())
                row.update({"float_spikes": sf, "int_spikes": sq,
                            "rate_rel_diff": abs(sq - sf) / max(sf, 1.0),
                            "count_corr": _corr(cf, cq),
                            "spike_agreement": float(np.mean(af == aq))})
                if sf > 0 and sq == 0:
                    warns.append(f"layer '{name}' parameter 'v_threshold': stops spiking on the calibration data "
                                 f"after quantisation ({sf:.0f} float spikes, 0 integer)")
            key = f"{name}.v"
            if key in res_f.states and key in res_q.states:
                vf, vq = res_f.states[key], res_q.states[key]
                row["v_rmse_rel"] = float(np.sqrt(np.mean((vf - vq) ** 2)) / (np.sqrt(np.mean(vf**2)) or 1.0))
            divergence.append(row)
    Lq = []
    total_dense = 0.0
    total_event = 0.0 if layer_events else None
    for L in layers:
        dense = float(L.synapses * wbits[L.name] * abits[L.name] * T)
        total_dense += dense
        ev = None
        if layer_events:
            ev = float(layer_events.get(L.name, 0.0) * wbits[L.name] * abits[L.name])
            total_event = (total_event or 0.0) + ev
        st = stats[L.name]
        Lq.append(LayerQuant(L.name, int(wbits[L.name]), int(abits[L.name]), int(L.synapses), dense, ev,
                             st["smin"], st["smax"], st["zeroed"], C.neuron_after(qg, L.name)))
    spent = bits_spent(layers, wbits, abits, T)
    meta = dict(qg.metadata or {})
    meta[META_KEY] = {"bit_budget": float(bit_budget) if bit_budget is not None else -1.0,
                      "bits_spent": float(spent), "timesteps": int(T),
                      "definition": "synapse-weighted mean of weight_bits x activation_bits x timesteps"}
    meta["spikeforge.timesteps"] = int(T)
    out = C.rebuild(qg.nodes, qg.edges, meta)
    report = QuantReport(
        bit_budget=float(bit_budget) if bit_budget is not None else None, bits_spent=spent, timesteps=int(T),
        mode=mode, per_channel=bool(per_channel), rounding=rounding, allowed_weight_bits=allowed_w,
        allowed_activation_bits=allowed_a, layers=Lq, predicted_error=predicted, bitops_dense=total_dense,
        bitops_event=total_event, divergence=divergence, warnings=list(dict.fromkeys(warns)),
        candidates=candidates, board=board_name)
    if calib is None:
        report.warnings.append("no calibration data: inputs taken as binary spikes (1 bit), allocation used "
                               "the weight-noise proxy 2^-2b; the spiking checks (silent layers, divergence) "
                               "were not run")
    return out, report


def _corr(a: np.ndarray, b: np.ndarray) -> float | None:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    if a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])
