"""Lowering NIR to sPyNNaker populations and projections (see docs/spinnaker.md for the conventions).

Neuron nodes become populations; every chain of linear nodes between two populations (Affine, Linear,
Scale, Conv2d, SumPool2d, AvgPool2d, Flatten, Delay) is composed into one sparse matrix per delay value and
split by sign into an excitatory and an inhibitory `FromListConnector` projection.

NIR -> PyNN parameter conversion (dt in ms; `keep` is the refsim's per-step membrane factor:
1 - dt/tau for Euler, exp(-dt/tau) for exact):

* tau_m is searched on the core's own `expk` so that exp_TC is the s16.15 value nearest `keep` (fit.py);
  cm = tau_m, so R = tau_m / cm is exactly 1.0 on the core. Voltages are scaled by a power of two for
  resolution, and an offset current centres the core's flooring V update; the residual is recorded.
* v_rest = v_leak, v_thresh = v_threshold (one raw step above it when the node compares with '>', since
  the core compares V >= V_thresh), v_reset = v_reset, tau_refrac = 0 (NIR has no refractory period), except a delayed reset to v_reset
  (Brian2's reset: the spiking step's input is lost), which is exactly one refractory step (tau_refrac = dt).
* The input gain (1 - keep) r / (1 - exp_TC) is folded into the weights, with exp_TC the exact value the
  core will compute: the step response of V matches the refsim's. CubaLIF/CubaLI use IF_curr_exp with
  tau_syn fitted to keep_syn the same way and the synapse gain (1 - keep_syn) w_in / init folded in as well;
  LIF/LI/IF use IF_curr_delta (input applied for exactly one step).
* IF (no leak) cannot be expressed: sPyNNaker's LIF with exp_TC = 1 ignores its input. It becomes a LIF with
  a long tau_m (chosen so the largest possible input current stays inside s16.15), reported as a warning.
* sPyNNaker delivers a spike sent in step t in step t + d, d >= 1, where the refsim's feed-forward edges take
  effect in the same step: latency.py gives each population a latency and each projection the delay that
  makes the population's output a pure shift of the reference's (meta["latency_steps"]).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np
import scipy.sparse as sp

from spikeforge import graph as G
from spikeforge.emitsafe import py_ident
from spikeforge.errors import FitError, UnsupportedError
from spikeforge.interfaces import CompileOptions
from spikeforge.refsim import SimConfig, config_for_graph, make_kernel
from spikeforge.semantics import record

from . import fit, latency
from . import fixed as F
from .program import Population, Program, Projection, Readout

NEURON_TYPES = (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI)
LINEAR_TYPES = (nir.Affine, nir.Linear, nir.Scale, nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d,
                nir.Flatten, nir.Delay)
_CHUNK = 1024


def sanitise(name: str) -> str:
    """A PyNN label / Python identifier for a node name (spikeforge.emitsafe.py_ident)."""
    return py_ident(name)


def _vec(x: Any, n: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    return np.full(n, float(a[0])) if a.size == 1 else a.reshape(n)


@dataclass
class _Map:
    """out = sum over (pop, delay) of spikes(pop, t - delay) @ W + bias."""

    terms: dict[tuple[str, int], sp.csr_matrix]
    bias: np.ndarray
    via: tuple[str, ...]


# ---------------------------------------------------------------------------------------------------
# Composition of linear chains
# ---------------------------------------------------------------------------------------------------
def _apply_linear(node: nir.NIRNode, X: np.ndarray, cfg: SimConfig) -> np.ndarray:
    """Apply a linear node to rows of X with the refsim's own kernel (same semantics as the reference)."""
    k = make_kernel(node, cfg)
    shp = k.in_shape or G.node_shape(node, "input")
    x = X.reshape(X.shape[0], *shp) if shp is not None else X
    y, _ = k.step(x, None)
    return np.asarray(y, dtype=np.float64).reshape(X.shape[0], -1)


def _compose(node_name: str, node: nir.NIRNode, src: _Map, cfg: SimConfig) -> _Map:
    n_in = src.bias.size
    zero = _apply_linear(node, np.zeros((1, n_in)), cfg)[0] if not isinstance(node, nir.Delay) else src.bias * 0
    if isinstance(node, nir.Delay):
        steps = np.rint(np.asarray(node.delay, dtype=np.float64) / cfg.dt).astype(np.int64).ravel()
        steps = np.broadcast_to(steps, (n_in,)) if steps.size == 1 else steps
        terms: dict[tuple[str, int], sp.csr_matrix] = {}
        for (pop, d), W in src.terms.items():
            for dv in np.unique(steps):
                mask = sp.diags((steps == dv).astype(np.float64))
                part = (W @ mask).tocsr()
                part.eliminate_zeros()
                if part.nnz:
                    key = (pop, d + int(dv))
                    terms[key] = (terms[key] + part).tocsr() if key in terms else part
        return _Map(terms, src.bias.copy(), (*src.via, node_name))
    bias = _apply_linear(node, src.bias[None, :], cfg)[0]  # node(bias) includes the node's own bias
    terms = {}
    for key, W in src.terms.items():
        rows = []
        for start in range(0, W.shape[0], _CHUNK):
            blk = W[start:start + _CHUNK].toarray()
            out = _apply_linear(node, blk, cfg) - zero[None, :]
            out[np.abs(out) < 1e-12] = 0.0
            rows.append(sp.csr_matrix(out))
        terms[key] = sp.vstack(rows).tocsr()
    return _Map(terms, bias, (*src.via, node_name))


def _add_maps(a: _Map | None, b: _Map) -> _Map:
    if a is None:
        return b
    terms = dict(a.terms)
    for k, W in b.terms.items():
        terms[k] = (terms[k] + W).tocsr() if k in terms else W
    return _Map(terms, a.bias + b.bias, tuple(dict.fromkeys(a.via + b.via)))


# ---------------------------------------------------------------------------------------------------
# Lowering
# ---------------------------------------------------------------------------------------------------
def _ms(seconds: float) -> float:
    return float(seconds) * 1000.0


def _tau_for_keep(keep: np.ndarray, dt_ms: float) -> np.ndarray:
    """tau (ms) with exp(-dt/tau) = keep; keep <= 0 (instant decay) maps to dt/16 (exp_TC = 0 on core)."""
    out = np.empty_like(keep)
    zero = keep <= 1e-6
    out[zero] = dt_ms / 16.0
    out[~zero] = -dt_ms / np.log(keep[~zero])
    return out


def _per_unique(fn: Any, raw: np.ndarray) -> np.ndarray:
    """Apply a scalar on-core routine once per distinct raw value (populations share parameters)."""
    vals, inv = np.unique(np.asarray(raw, dtype=np.int64), return_inverse=True)
    return np.array([fn(int(v)) for v in vals], dtype=np.int64)[inv.reshape(-1)]


def _bound(W_abs: sp.csr_matrix, policy: str, rate: float) -> np.ndarray:
    """Per-target upper bound of the summed weight in one ring-buffer slot."""
    col_sum = np.asarray(W_abs.sum(axis=0)).ravel()
    if policy == "worst":
        return col_sum
    sq = np.asarray(W_abs.multiply(W_abs).sum(axis=0)).ravel()
    mean = rate * col_sum
    sd = np.sqrt(rate * (1 - rate) * sq)
    wmax = np.asarray(W_abs.max(axis=0).toarray()).ravel()
    return np.maximum(mean + 5.0 * sd, wmax)


def choose_shift(w_max: float) -> int:
    """Smallest s with W_max < 2**s (sPyNNaker: 2**(s-1) < W_max < 2**s), clamped to 0..16."""
    if w_max <= 0:
        return 0
    s = int(math.floor(math.log2(w_max))) + 1
    return max(0, s)


def quantise(weights: np.ndarray, shift: int) -> np.ndarray:
    """Host conversion: rint(|w| * 2**(15 - s)) & 0xFFFF."""
    return (np.rint(np.abs(weights) * 2.0 ** (15 - shift)).astype(np.int64)) & 0xFFFF


class Lowering:
    def __init__(self, graph: nir.NIRGraph, dt: float, options: CompileOptions):
        self.g = graph
        self.dt = dt
        self.dt_ms = _ms(dt)
        self.cfg = config_for_graph(graph, dt, dtype="float64")
        self.opts = options
        self.extra = dict(options.extra or {})
        self.sched = G.schedule(graph)
        self.rec = set(self.sched.recurrent)
        self.maps: dict[str, _Map] = {}
        self.pops: dict[str, Population] = {}
        self.warnings: list[str] = []
        self.auto: dict[str, Any] = {}  # every automatic choice, reported in the artifact meta
        self.calib: dict[str, dict[str, np.ndarray]] = {}
        self.labels: dict[str, str] = {}  # NIR node -> unique PyNN label
        self.sem: dict[str, Any] = {}  # structured semantic warnings (spikeforge.semantics), copied to the artifact

    def pname(self, node: str) -> str:
        """Unique population label of a node: names that sanitise alike ('a.b', 'a_b') get a numeric suffix."""
        if node not in self.labels:
            base = label = sanitise(node)
            taken = set(self.labels.values())
            i = 1
            while label in taken:
                label, i = f"{base}_{i}", i + 1
            self.labels[node] = label
        return self.labels[node]

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        warnings.warn(f"spinnaker: {msg}", stacklevel=3)

    # -- the value a node produces, as a linear map of population outputs ---------------------------
    def _node_map(self, name: str) -> _Map:
        if name in self.maps:
            return self.maps[name]
        node = self.g.nodes[name]
        if isinstance(node, nir.Input) or isinstance(node, NEURON_TYPES):
            size = int(np.prod(G.node_shape(node, "output") or G.node_shape(node, "input")))
            m = _Map({(self.pname(name), 0): sp.identity(size, format="csr")}, np.zeros(size), ())
        elif isinstance(node, LINEAR_TYPES):
            m = _compose(name, node, self._input_map(name), self.cfg)
        else:
            raise UnsupportedError(f"{type(node).__name__} has no SpiNNaker mapping", node=name,
                                   hint="supported: LIF, CubaLIF, IF, LI, CubaLI and linear/conv/pool nodes")
        self.maps[name] = m
        return m

    def _input_map(self, name: str) -> _Map:
        total = None
        for src, is_rec in self.sched.predecessors(name):
            m = self._node_map(src)
            if is_rec or (src, name) in self.rec:
                m = _Map({(p, d + 1): W for (p, d), W in m.terms.items()}, m.bias, m.via)
            total = _add_maps(total, m)
        if total is None:
            raise UnsupportedError("node has no input", node=name)
        return total

    # -- neuron populations ---------------------------------------------------------------------------
    def _neuron(self, name: str, node: nir.NIRNode) -> tuple[Population, np.ndarray]:
        """Population parameters and the per-neuron factor folded into incoming weights."""
        c = self.cfg.for_node(node)
        shape = tuple(G.node_shape(node, "input") or G.node_shape(node, "output"))
        n = int(np.prod(shape))
        dt_ms = self.dt_ms
        spiking = isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF))
        cuba = isinstance(node, (nir.CubaLIF, nir.CubaLI))
        r = _vec(node.r, n)
        if isinstance(node, nir.IF):
            in_gain = r * (self.dt if c.if_dt else 1.0)
            keep = None
            v_leak = np.zeros(n)
        else:
            tau = _vec(node.tau_mem if cuba else node.tau, n)
            keep = np.exp(-self.dt / tau) if c.integration == "exact" else 1.0 - self.dt / tau
            if np.any(keep < -1e-12):
                raise UnsupportedError(
                    f"Euler step dt={self.dt} s exceeds tau ({tau.min()} s): the refsim's membrane factor "
                    "1 - dt/tau is negative, which no exponential decay can reproduce",
                    node=name, field="tau", hint="use a smaller dt or integration='exact'")
            keep = np.clip(keep, 0.0, None)
            in_gain = (1.0 - keep) * r
            v_leak = _vec(node.v_leak, n)
        pyn: dict[str, np.ndarray] = {}
        if keep is None:
            tau_m = np.full(n, np.nan)  # chosen in _if_leak_and_scale (spinnaker.if_tau_ms overrides)
        else:
            tau_m = _tau_for_keep(keep, dt_ms)
        pyn["tau_m"] = tau_m
        pyn["v_rest"] = v_leak
        if spiking:
            v_th = _vec(node.v_threshold, n)
            vr = getattr(node, "v_reset", None)
            v_reset = np.zeros(n) if vr is None else _vec(vr, n)
            if c.reset == "subtract":
                self.warn(f"node '{name}': reset by subtraction is not available in sPyNNaker's IF_curr_*; "
                          "mapped to reset to v_reset (the overshoot above threshold is lost)")
                record(self.sem, name, "reset_changed", "reset by subtraction runs as reset to v_reset "
                       "(the overshoot above threshold, up to one step's input, is lost)", 1.0)
            if c.reset_timing == "delayed" and c.reset != "zero":
                self.warn(f"node '{name}': delayed reset (snnTorch reset_delay) runs as sPyNNaker's "
                          "immediate reset")
                record(self.sem, name, "reset_changed", "delayed reset (snnTorch reset_delay) runs as an "
                       "immediate reset (one step earlier)", 1.0)
        else:
            v_th = np.full(n, 65535.0)
            v_reset = np.zeros(n)
        pyn["v_thresh"], pyn["v_reset"] = v_th, v_reset
        pyn["tau_refrac"] = np.full(n, float(self.extra.get("spinnaker.tau_refrac_ms", 0.0)))
        if spiking and c.reset_timing == "delayed" and c.reset == "zero":
            # exact: the refsim's delayed reset to v_reset (Brian2's reset, which drops the spiking step's
            # input) is the core's reset to v_reset plus one refractory step (V held, that step's input dropped)
            pyn["tau_refrac"] = np.maximum(pyn["tau_refrac"], dt_ms)
        pyn["i_offset"] = np.zeros(n)
        pyn["v_init"] = np.zeros(n)
        if cuba:
            tau_s = _vec(node.tau_syn, n)
            keep_s = np.exp(-self.dt / tau_s) if c.integration == "exact" else 1.0 - self.dt / tau_s
            keep_s = np.clip(keep_s, 0.0, None)
            pyn["tau_syn_E"] = pyn["tau_syn_I"] = _tau_for_keep(keep_s, dt_ms)
            syn_gain = (1.0 - keep_s) * _vec(node.w_in, n)
            # The core adds a step's input to isyn before the membrane update (current first). With the
            # projection's one-step delay, x(t) reaches V in t+1, which is exactly the refsim's voltage_first
            # order (v(t+1) uses i(t)); current_first graphs gain one step, like every feed-forward edge.
        else:
            pyn["tau_syn_E"] = pyn["tau_syn_I"] = np.full(n, 5.0)  # unused by IF_curr_delta
            syn_gain = np.ones(n)
        kind = "IF_curr_exp" if cuba else "IF_curr_delta"
        pop = Population(self.pname(name), name, kind, n, shape, spiking, pyn, {})
        pop.raw["_in_gain"] = in_gain * syn_gain  # refsim: v += in_gain * syn_gain * x (before the core's gains)
        pop.raw["_is_if"] = np.asarray(keep is None)
        if keep is not None:  # the reference's per-step factors: the core's decays are fitted to them
            pop.raw["_keep"] = keep
        if cuba:
            pop.raw["_keep_syn"] = keep_s
        return pop, in_gain * syn_gain

    def _finish_raw(self, pop: Population, if_bound: float, bound: np.ndarray | None = None,
                    bias: np.ndarray | None = None) -> np.ndarray:
        """Compute the on-core values from the PyNN floats; return the weight factor per neuron.

        `if_bound` is the per-step summed input bound (model voltage units) the ring-buffer policy assumes;
        for IF populations the leak and voltage scale are chosen from it. For the others, tau_m / tau_syn are
        fitted on the core's own arithmetic to the reference's per-step factors, and the voltages are scaled by
        the power of two k that keeps |alpha| (per-neuron input bound `bound`, bias `bias`) below the headroom
        (fit.py says why); the residual error is recorded.
        """
        p = pop.pynn
        dt_raw = F.to_accum(self.dt_ms)
        n = pop.size
        gain_ref = pop.raw.pop("_in_gain")
        is_if = bool(pop.raw.pop("_is_if"))
        keep = pop.raw.pop("_keep", None)
        keep_s = pop.raw.pop("_keep_syn", None)
        v_scale = 1.0
        if is_if and not np.all(np.isfinite(p["tau_m"])):
            p["tau_m"], v_scale = self._if_leak_and_scale(pop, if_bound * float(np.max(np.abs(gain_ref))))
            for k in ("v_rest", "v_reset", "v_thresh", "v_init"):
                p[k] = np.asarray(p[k], dtype=np.float64) * v_scale
        if keep is not None:
            p["tau_m"] = fit.per_unique_keep(fit.tau_m_raw_for_keep, keep, dt_raw) / F.ONE
        if keep_s is not None:
            p["tau_syn_E"] = p["tau_syn_I"] = fit.per_unique_keep(fit.tau_syn_raw_for_keep, keep_s, dt_raw) / F.ONE
        p["tau_m"] = np.clip(p["tau_m"], dt_raw / F.ONE / 16.0, 32767.0)
        p["cm"] = p["tau_m"].copy()
        for k in ("v_rest", "v_reset", "v_thresh", "i_offset", "v_init", "tau_m", "cm", "tau_refrac", "tau_syn_E",
                  "tau_syn_I"):
            p[k] = np.asarray(p[k], dtype=np.float64)
        raw = pop.raw
        tau_raw = F.to_accum_array(p["tau_m"])
        cm_raw = F.to_accum_array(p["cm"])
        raw["exp_tc"] = _per_unique(lambda t: F.lif_exp_tc(dt_raw, t), tau_raw)
        raw["r_mem"] = _per_unique(lambda tc: F.lif_r_membrane(tc >> 32, tc & 0xFFFFFFFF),
                                   (tau_raw << 32) | (cm_raw & 0xFFFFFFFF))
        if pop.kind == "IF_curr_exp":
            for rec in ("exc", "inh"):
                t_raw = F.to_accum_array(p[f"tau_syn_{rec[0].upper()}"])
                raw[f"{rec}_decay"] = _per_unique(lambda t: F.exp_synapse_decay_init(dt_raw, t)[0], t_raw)
                raw[f"{rec}_init"] = _per_unique(lambda t: F.exp_synapse_decay_init(dt_raw, t)[1], t_raw)
            syn = raw["exc_init"] / 2.0 ** 32
            syn_ss = syn / np.maximum(1.0 - raw["exc_decay"] / 2.0 ** 32, 1e-9)  # steady-state current gain
        else:
            for k in ("exc_decay", "exc_init", "inh_decay", "inh_init"):
                raw[k] = np.zeros(n, np.int64)
            syn = syn_ss = np.ones(n)
        mem = (1.0 - raw["exp_tc"] / F.ONE) * (raw["r_mem"] / F.ONE)
        with np.errstate(divide="ignore", invalid="ignore"):
            fac1 = np.where(mem * syn > 0, gain_ref / (mem * syn), 0.0)
        v_top = float(np.max(np.abs(np.concatenate([np.ravel(p["v_rest"]), np.ravel(p["v_reset"]),
                                                     np.ravel(p["v_thresh"]) if pop.spiking else []]))))
        if keep is not None:
            b = np.zeros(n) if bound is None else np.asarray(bound, dtype=np.float64)
            bb = np.zeros(n) if bias is None else np.abs(np.asarray(bias, dtype=np.float64))
            alpha_unit = float(np.max(np.abs(fac1) * syn_ss * (b + bb) * (raw["r_mem"] / F.ONE))) + v_top
            pinned = self.extra.get("spinnaker.voltage_scale")
            v_scale = float(pinned) if pinned is not None else fit.voltage_scale(
                alpha_unit, float(self.extra.get("spinnaker.v_headroom", 16384.0)))
            if pinned is not None and v_scale * (alpha_unit + v_top) >= 65536.0:
                raise UnsupportedError(f"voltage scale {v_scale:g} puts |alpha| = {v_scale * alpha_unit:.4g} "
                                       "outside s16.15 (65536)", node=pop.node, field="spinnaker.voltage_scale",
                                       hint="use a smaller spinnaker.voltage_scale or leave it automatic")
            for k in ("v_rest", "v_reset", "v_init") + (("v_thresh",) if pop.spiking else ()):
                p[k] = p[k] * v_scale
            if bool(self.extra.get("spinnaker.round_nearest", True)):
                # the V update floors e (alpha - V), which adds [0, 1) LSB per step (+0.5 on average, up to
                # 0.5 / g LSB in steady state): a constant current of -0.5 LSB / g centres it on zero
                g_core = np.maximum(1.0 - raw["exp_tc"] / F.ONE, 1e-9)
                raw["_offset_comp"] = -np.rint(0.5 / g_core).astype(np.int64)
            self._residual(pop, keep, raw["exp_tc"], v_scale, alpha_unit, keep_s,
                           raw["exc_decay"] if keep_s is not None else None)
        pop.v_scale = v_scale
        raw["v_rest"] = F.to_accum_array(p["v_rest"])
        raw["v_reset"] = F.to_accum_array(p["v_reset"])
        vth = F.to_accum_array(np.minimum(p["v_thresh"], 65535.0))
        strict = self.cfg.for_node(self.g.nodes[pop.node]).threshold_cmp == ">"
        raw["v_thresh"] = vth + (1 if (strict and pop.spiking) else 0)
        raw["v_init"] = F.to_accum_array(p["v_init"])
        raw["t_refract"] = _per_unique(lambda t: F.lif_t_refract(t, dt_raw), F.to_accum_array(p["tau_refrac"]))
        return fac1 * v_scale

    def _residual(self, pop: Population, keep: np.ndarray, exp_tc: np.ndarray, v_scale: float, v_span: float,
                  keep_s: np.ndarray | None, decay: np.ndarray | None) -> None:
        """Record the population's residual integration error (bound, model units) in the artifact."""
        node = self.g.nodes[pop.node]
        if pop.spiking:
            ref = float(np.min(np.abs(_vec(node.v_threshold, pop.size) - pop.pynn["v_reset"] / v_scale)))
        else:
            ref = v_span
        res = fit.residual(keep, exp_tc, v_scale, v_span, ref, keep_s, decay)
        res["v_scale"] = v_scale
        self.auto.setdefault("integration", {})[pop.name] = {"node": pop.node, **res}
        record(self.sem, pop.node, "integration",
               f"{pop.kind}: core factor exp_TC {res['keep_core']:.6f} vs reference {res['keep_ref']:.6f}, voltage "
               f"scale {v_scale:g}; |V - v_ref| <= {res['v_error_bound']:.3g} below threshold "
               f"({100 * res['relative']:.3g}% of the threshold distance)", res["relative"])

    def calibration_inputs(self) -> dict[str, np.ndarray] | None:
        """Calibration inputs: `--set spinnaker.calibration=FILE.npz` or an in-memory dict in extra['calibration'].

        Keys are input node names; a single input node also accepts the key `input` or the file's only array.
        At most `spinnaker.calibration_samples` (default 16) samples are used.
        """
        src = self.extra.get("spinnaker.calibration", self.extra.get("calibration"))
        if src is None:
            return None
        if isinstance(src, (str, bytes)) or hasattr(src, "__fspath__"):
            from spikeforge.errors import InputError
            from spikeforge.npzio import load_npz

            try:
                src = load_npz(src)
            except OSError as e:
                raise InputError(f"cannot read calibration file: {e}", file=str(src),
                                 field="spinnaker.calibration") from e
        if isinstance(src, np.ndarray):
            src = {"input": src}
        names = list(G.input_nodes(self.g))
        out: dict[str, np.ndarray] = {}
        for name in names:
            arr = src.get(name)
            if arr is None and len(names) == 1:
                arr = src.get("input", next(iter(src.values())) if len(src) == 1 else None)
            if arr is None:
                raise UnsupportedError(f"calibration data has no array for input node '{name}' "
                                       f"(keys: {sorted(src)})", field="spinnaker.calibration")
            n = int(self.extra.get("spinnaker.calibration_samples", 16))
            out[name] = np.asarray(arr, dtype=np.float64)[:, :n]
        return out

    def _calibrate(self, pops: list[Population], in_maps: dict[str, _Map]) -> None:
        """Per neuron and receptor: the largest summed input of one step seen on the calibration data (x margin).

        The float reference runs on the calibration inputs; each population's presynaptic spikes are pushed
        through its composed weight matrices split by sign, exactly as the ring buffers will sum them.
        """
        self.calib: dict[str, dict[str, np.ndarray]] = {}
        x = self.calib_inputs = self.calibration_inputs()
        if x is None:
            return
        from spikeforge.refsim import simulate

        res = simulate(self.g, x, dt=self.dt, probes=True)
        margin = float(self.extra.get("spinnaker.calibration_margin", 1.25))
        node_of = {p.name: p.node for p in pops}
        self.calib_info = {"samples": int(next(iter(x.values())).shape[1]),
                           "timesteps": int(next(iter(x.values())).shape[0]), "margin": margin}
        for post in pops:
            if post.is_source:
                continue
            T = next(iter(x.values())).shape[0]
            best = {"excitatory": np.zeros(post.size), "inhibitory": np.zeros(post.size)}
            for t0 in range(0, T, 32):
                acc = {"excitatory": None, "inhibitory": None}
                for (pre, d), W in in_maps[post.name].terms.items():
                    node = node_of[pre]
                    act = x[node] if node in x else res.activity[node]
                    act = np.asarray(act, dtype=np.float64).reshape(act.shape[0], act.shape[1], -1)
                    dd = max(1, int(d))  # the core's delay: spikes of step t - dd land in slot t
                    lo, hi = t0 - dd, min(T, t0 + 32) - dd
                    blk = np.zeros((min(T, t0 + 32) - t0, act.shape[1], act.shape[2]))
                    a, b = max(lo, 0), max(hi, 0)
                    if b > a:
                        blk[a - lo:b - lo] = act[a:b]
                    flat = blk.reshape(-1, act.shape[2])
                    for rec, sel in (("excitatory", W.multiply(W > 0)), ("inhibitory", W.multiply(W < 0))):
                        v = np.asarray(sp.csr_matrix(abs(sp.csr_matrix(sel))).T.dot(flat.T)).T
                        acc[rec] = v if acc[rec] is None else acc[rec] + v
                for rec in best:
                    if acc[rec] is not None:
                        best[rec] = np.maximum(best[rec], acc[rec].max(axis=0))
            worst = {"excitatory": np.zeros(post.size), "inhibitory": np.zeros(post.size)}
            for W in in_maps[post.name].terms.values():
                worst["excitatory"] += _bound(abs(sp.csr_matrix(W.multiply(W > 0))), "worst", 0.0)
                worst["inhibitory"] += _bound(abs(sp.csr_matrix(W.multiply(W < 0))), "worst", 0.0)
            # observed x margin, never above the worst case (which cannot saturate)
            self.calib[post.name] = {k: np.minimum(v * margin, worst[k]) for k, v in best.items()}

    def _timesteps(self) -> int | None:
        """Run length the IF leak is planned for: --timesteps, else the graph's spikeforge.timesteps."""
        t = self.opts.timesteps or (self.g.metadata or {}).get("spikeforge.timesteps")
        return int(t) if t else None

    def _if_leak_and_scale(self, pop: Population, dv_bound: float) -> tuple[np.ndarray, float]:
        """Leak (tau_m) and voltage scale for an IF population: see docs/spinnaker.md, "IF (no leak)".

        On the core one step is V += ceil(g (I R - V)) with g = 1 - exp_TC, so a step's input dv needs a current
        I = dv / g, and alpha = I R + V_rest must stay inside s16.15. g = m / 2**15 with m balancing current
        headroom against voltage resolution (capped by the leak budget over the run); the model's voltages are
        scaled by a power of two k <= 1 so the policy's per-step bound gives a current below 2**14 and
        |g V| < 0.5 LSB up to the threshold; an offset current turns the core's round-up into round-to-nearest,
        so V without input is kept exactly (no leak below threshold).
        """
        n = pop.size
        dt_raw = F.to_accum(self.dt_ms)
        T = self._timesteps()
        user_tau = float(self.extra.get("spinnaker.if_tau_ms", 0.0) or 0.0)
        budget = float(self.extra.get("spinnaker.if_leak_budget", 0.01))
        if user_tau > 0:
            target, why = None, "spinnaker.if_tau_ms (user)"
            tau = user_tau
        else:
            # g = m / 2**15. Below threshold the rounding offset cancels the leak, so g only trades the current
            # headroom (k <= 2**14 g / bound) against the voltage resolution (k <= 0.5 / (2**15 g v_max)): the
            # two meet at m = sqrt(bound / v_max). Capped by the leak budget over the run (for |V| > v_max).
            v_top = float(np.max(np.abs(np.concatenate([np.ravel(pop.pynn["v_thresh"]),
                                                        np.ravel(pop.pynn["v_reset"])]))))
            m_opt = max(1, int(round(math.sqrt(dv_bound / v_top)))) if dv_bound > 0 and v_top > 0 else 1
            m_cap = max(1, int(math.floor(budget * F.ONE / T))) if T else 4
            m = min(m_opt, m_cap)
            target = F.ONE - m
            why = (f"exp_TC = 1 - {m}/2**15: headroom vs resolution optimum {m_opt}, leak budget {budget:g} over "
                   + (f"{T} steps allows {m_cap}" if T else "an unknown run length (no --timesteps / "
                      f"spikeforge.timesteps) capped at {m_cap}"))
            # tau for exp(-dt/tau) = target / 2**15, then nudged so the core's own expk gives exactly target
            tau = min(-self.dt_ms / math.log(target / F.ONE), 32767.0)
            lo, hi = F.to_accum(self.dt_ms), F.to_accum(32767.0)
            tr = F.to_accum(tau)
            if F.lif_exp_tc(dt_raw, tr) != target:
                while hi - lo > 1:  # exp_TC grows with tau: smallest raw tau whose exp_TC reaches target
                    mid = (lo + hi) // 2
                    if F.lif_exp_tc(dt_raw, mid) >= target:
                        hi = mid
                    else:
                        lo = mid
                tr = hi
            tau = tr / F.ONE
        exp_tc = F.lif_exp_tc(dt_raw, F.to_accum(tau))
        g = 1.0 - exp_tc / F.ONE
        if g <= 0:
            raise UnsupportedError(f"tau_m = {tau} ms gives exp_TC = 1 on the core: the neuron would ignore input",
                                   node=pop.node, field="spinnaker.if_tau_ms", hint="use a shorter tau_m")
        # 2**14: shifts stay <= 14, so a saturated cell gives at most 2**15 and exc - inh + V never wraps
        headroom = float(self.extra.get("spinnaker.if_current_headroom", 16384.0)) * (1.0 - 1e-9)
        k = 1.0 if dv_bound <= 0 else min(1.0, 2.0 ** math.floor(math.log2(headroom * g / dv_bound)))
        # the core's V update rounds g (I - V) up (ceil): an offset current of -0.5 LSB / g per step makes it
        # round to nearest, which also stops the leak entirely while |g V| < 0.5 LSB: scale V so that holds up
        # to the threshold (below threshold IF then integrates exactly; only V < -threshold still leaks)
        nearest = bool(self.extra.get("spinnaker.if_round_nearest", True))
        v_max = float(np.max(np.abs(np.concatenate([np.ravel(pop.pynn["v_thresh"]), np.ravel(pop.pynn["v_reset"])]))))
        if nearest and v_max > 0:
            k = min(k, 2.0 ** math.floor(math.log2(0.5 / (g * F.ONE * v_max))))
        # with input the leak g V (<= 0.5 LSB below threshold) still biases a step down: centre the offset on the
        # bias at half the threshold, -0.5 + g V(threshold/2) LSB (a step without input still keeps V exactly)
        lsb_leak = g * F.ONE * k * v_max / 2.0
        comp = -int(round((0.5 - lsb_leak) / g)) if nearest else 0
        pop.raw["_offset_comp"] = np.asarray(comp)
        self.auto.setdefault("if_neurons", {})[pop.name] = {
            "node": pop.node, "tau_m_ms": tau, "exp_tc_raw": int(exp_tc), "leak_per_step": g,
            "leak_over_run": (1.0 - (1.0 - g) ** T) if T else None, "timesteps": T, "why": why,
            "v_scale": k, "per_step_input_bound": dv_bound,
            "max_current": dv_bound * k / g if g > 0 else None,
            "v_lsb_model_units": 1.0 / (F.ONE * k), "i_offset_rounding_raw": comp,
        }
        info = self.auto["if_neurons"][pop.name]
        record(self.sem, pop.node, "leak_rounded",
               f"IF (no leak) runs as a LIF with tau_m = {tau:.1f} ms: below threshold the rounding offset keeps V "
               f"exactly, V < -threshold leaks {g:.3g} per step", info["leak_over_run"] or g)
        self.warn(f"node '{pop.node}': IF (no leak) mapped to sPyNNaker's LIF with tau_m = {tau:.1f} ms "
                  f"(V leaks {100 * g:.4f}% per step"
                  + (f", {100 * self.auto['if_neurons'][pop.name]['leak_over_run']:.2f}% over {T} steps" if T else "")
                  + f"; {why}), voltages scaled by {k:g} for s16.15 headroom")
        return np.full(n, tau), k

    def run(self) -> Program:
        g = self.g
        order = self.sched.order
        inputs: dict[str, str] = {}
        pop_list: list[Population] = []
        factors: dict[str, np.ndarray] = {}
        for name in order:
            node = g.nodes[name]
            if isinstance(node, nir.Input):
                shape = tuple(G.node_shape(node, "output") or ())
                pop = Population(self.pname(name), name, "SpikeSourceArray", int(np.prod(shape)), shape)
                inputs[name] = pop.name
                pop_list.append(pop)
            elif isinstance(node, NEURON_TYPES):
                pop, _ = self._neuron(name, node)
                pop_list.append(pop)
            elif isinstance(node, (nir.I, nir.Threshold)):
                raise UnsupportedError(f"{type(node).__name__} has no sPyNNaker neuron model", node=name,
                                       hint="use LIF/IF/LI (IF_curr_delta) or CubaLIF/CubaLI (IF_curr_exp)")
        self.pops = {p.name: p for p in pop_list}
        # incoming maps of each neuron population
        in_maps: dict[str, _Map] = {}
        for p in pop_list:
            if not p.is_source:
                in_maps[p.name] = self._input_map(p.node)
        vf = {p.name for p in pop_list if p.kind == "IF_curr_exp"
              and self.cfg.for_node(g.nodes[p.node]).cuba_order == "voltage_first"}
        self.latency, self.core_delay = latency.plan([p.name for p in pop_list],
                                                     {k: list(m.terms) for k, m in in_maps.items()}, vf,
                                                     {p.name: p.node for p in pop_list}, self.sem)
        # bound of the summed input per step (raw NIR weights, the ring-buffer policy's bound): the IF leak
        # is chosen so that the largest current the ring buffers can deliver stays inside s16.15
        self._calibrate(pop_list, in_maps)
        for p in pop_list:
            if p.is_source:
                continue
            policy, rate = self._policy(p)
            m = in_maps[p.name]
            if policy == "calibration":
                exc, inh = self.calib[p.name]["excitatory"], self.calib[p.name]["inhibitory"]
            else:
                exc, inh = np.zeros(p.size), np.zeros(p.size)
                for W in m.terms.values():
                    exc = exc + _bound(abs(sp.csr_matrix(W.multiply(W > 0))), policy, rate)
                    inh = inh + _bound(abs(sp.csr_matrix(W.multiply(W < 0))), policy, rate)
            bound = float(np.maximum(exc, inh).max()) if p.size else 1.0
            factors[p.name] = self._finish_raw(p, bound, np.maximum(exc, inh), m.bias)
        projections = self._projections(pop_list, in_maps, factors)
        readouts = self._readouts()
        prog = Program(self.dt_ms, pop_list, projections, readouts, inputs, warnings=self.warnings)
        if getattr(self, "calib_info", None):
            self.auto["calibration"] = self.calib_info
        self.report["automatic"] = self.auto
        prog.report = self.report
        prog.semantic = self.sem.get("semantic_warnings", [])
        prog.latency = dict(self.latency)
        prog.calibration = self.calib_inputs  # not serialised: the backend emulates it to plan the tick budget
        return prog

    def _projections(self, pops: list[Population], in_maps: dict[str, _Map],
                     factors: dict[str, np.ndarray]) -> list[Projection]:
        pins = self.extra.get("spinnaker.max_expected_summed_weight", {}) or {}
        out: list[Projection] = []
        self.report: dict[str, Any] = {"policy": str(self.extra.get("spinnaker.ring_buffer", "auto")),
                                       "populations": {}, "projections": []}
        for post in pops:
            if post.is_source:
                continue
            policy, rate = self._policy(post)
            m = in_maps[post.name]
            fac = factors[post.name]
            # bias: a constant input. IF_curr_exp: the refsim filters it through the synapse, the core adds
            # I_offset after it; use the synapse's steady-state gain init / (1 - decay).
            off = m.bias * fac
            if post.kind == "IF_curr_exp":
                off = off * (post.raw["exc_init"] / 2.0 ** 32) / np.maximum(1.0 - post.raw["exc_decay"] / 2.0 ** 32,
                                                                             1e-9)
            comp = np.asarray(post.raw.pop("_offset_comp", 0), dtype=np.int64)
            post.raw["i_offset"] = F.to_accum_array(np.clip(off, -65535, 65535)) + comp
            post.pynn["i_offset"] = post.raw["i_offset"] / F.ONE
            if post.kind == "IF_curr_exp":
                self._bias_ramp(post, off)
            parts: list[tuple[str, int, str, sp.coo_matrix]] = []
            bound = {"excitatory": np.zeros(post.size), "inhibitory": np.zeros(post.size)}
            for (pre, d), W in sorted(m.terms.items()):
                if pre not in self.pops:
                    raise UnsupportedError(f"input from '{pre}' is not a population", node=post.node)
                Wf = (W @ sp.diags(fac)).tocsr()
                delay = self.core_delay[(post.name, pre, int(d))]  # latency.py: a pure shift per population
                for rec, sel in (("excitatory", Wf.multiply(Wf > 0)), ("inhibitory", Wf.multiply(Wf < 0))):
                    sel = sp.csr_matrix(sel)
                    sel.eliminate_zeros()
                    if sel.nnz == 0:
                        continue
                    if policy != "calibration":
                        bound[rec] = bound[rec] + _bound(abs(sel), policy, rate)
                    parts.append((pre, delay, rec, sel.tocoo()))
            if policy == "calibration":  # observed raw sums x the per-neuron factor folded into the weights
                for rec in bound:
                    bound[rec] = self.calib[post.name][rec] * np.abs(fac)
            shifts = []
            for rec in ("excitatory", "inhibitory"):
                pin = pins.get(post.node, pins.get(post.name)) if isinstance(pins, dict) else None
                w_max = float(np.asarray(pin).ravel()[0 if rec == "excitatory" else -1]) if pin is not None else \
                    float(bound[rec].max()) if bound[rec].size else 0.0
                s = choose_shift(w_max)
                if s > 16:
                    raise FitError(
                        f"population '{post.name}': summed {rec} weight bound {w_max:.4g} exceeds what a 16-bit "
                        f"ring buffer with the largest shift (16) can hold (65536)",
                        node=post.node, hint="scale the weights and thresholds down, or prune")
                shifts.append(s)
            post.shifts = (shifts[0], shifts[1])
            self.report["populations"][post.name] = {
                "policy": policy, "shift_exc": shifts[0], "shift_inh": shifts[1],
                "bound_exc": float(bound["excitatory"].max(initial=0.0)),
                "bound_inh": float(bound["inhibitory"].max(initial=0.0)),
            }
            for pre, delay, rec, coo in parts:
                s = shifts[0] if rec == "excitatory" else shifts[1]
                w = coo.data.astype(np.float64)
                wi = quantise(w, s)
                name = f"{pre}_to_{post.name}_{'exc' if rec == 'excitatory' else 'inh'}_d{delay}"
                pr = Projection(name, pre, post.name, rec, coo.row.astype(np.int32), coo.col.astype(np.int32),
                                w, np.full(w.size, delay, np.int32), wi, m.via)
                out.append(pr)
                self._report_projection(pr, s, post)
        return out

    def _bias_ramp(self, post: Population, off: np.ndarray) -> None:
        """Start the synaptic current at -I_offset decay**(1 - L), so I_offset + isyn ramps up like the reference.

        The reference filters a bias through the synapse (its current rises from 0 to the steady state); the core
        adds I_offset at full strength from step 0. An initial isyn (PyNN `initialize(isyn_exc=, isyn_inh=)`)
        makes the sum equal the reference's current L steps later, exactly for L = 1; with L >= 2 the first L
        steps see a small negative remainder, recorded as `bias_moved` with its size.
        """
        lat = int(self.latency.get(post.name, 1))
        decay = post.raw["exc_decay"] / 2.0 ** 32
        start = -off * np.where(decay > 0, decay, 1.0) ** (1 - lat)
        start_raw = F.to_accum_array(np.clip(start, -65535, 65535))
        post.raw["isyn_exc_init"] = np.maximum(start_raw, 0)
        post.raw["isyn_inh_init"] = np.maximum(-start_raw, 0)
        post.pynn["isyn_exc"] = post.raw["isyn_exc_init"] / F.ONE
        post.pynn["isyn_inh"] = post.raw["isyn_inh_init"] / F.ONE
        if lat >= 2 and np.any(off != 0):
            early = float(np.max(np.abs(off) * (1.0 / np.maximum(decay, 1e-9) - 1.0))) / post.v_scale
            record(self.sem, post.node, "bias_moved",
                   f"the bias current starts {lat} steps behind the reference's (latency {lat}); in the first "
                   f"{lat - 1} step(s) the core sees a remainder of up to {early:.3g} (model current units)", early)

    def _policy(self, pop: Population) -> tuple[str, float]:
        """Ring-buffer bound policy of one population, and the spike probability per step it assumes.

        `auto` (default): sPyNNaker's statistical bound (30 Hz, 5 sigma) for IF populations, whose leak and
        voltage scale follow the bound (the worst case costs them a fast leak or a coarse voltage), and the
        worst case (never saturates) for the others, whose gain does not depend on it.
        """
        policy = str(self.extra.get("spinnaker.ring_buffer", "auto"))
        if policy not in ("auto", "worst", "statistical", "calibration"):
            raise UnsupportedError(f"extra 'spinnaker.ring_buffer' = {policy!r}; allowed: auto, worst, statistical, "
                                   "calibration")
        if policy == "calibration" and not getattr(self, "calib", None):
            raise UnsupportedError("ring_buffer=calibration needs calibration inputs",
                                   field="spinnaker.calibration", hint="--set spinnaker.calibration=FILE.npz")
        if policy == "auto":
            node = self.g.nodes.get(pop.node)
            if getattr(self, "calib", None):
                policy = "calibration"
            else:
                policy = "statistical" if isinstance(node, nir.IF) else "worst"
        return policy, float(self.extra.get("spinnaker.rate_hz", 30.0)) * self.dt

    def _report_projection(self, pr: Projection, shift: int, post: Population) -> None:
        n = int(pr.weight.size)
        zero = int(np.sum(pr.w_int == 0))
        step = 2.0 ** (shift - 15)
        rel = np.abs(pr.w_int * step - np.abs(pr.weight)) / np.maximum(np.abs(pr.weight), 1e-30)
        worst_sum = np.bincount(pr.post_idx, weights=pr.w_int.astype(np.float64), minlength=post.size).max()
        headroom = 0xFFFF / worst_sum if worst_sum > 0 else float("inf")
        item = {"projection": pr.name, "receptor": pr.receptor, "synapses": n, "shift": shift,
                "zero_weights": zero, "zero_fraction": zero / max(n, 1),
                "median_rel_error": float(np.median(rel)) if n else 0.0,
                "lsb": step, "worst_slot_sum_int": float(worst_sum),
                "saturation_headroom": float(headroom)}
        self.report["projections"].append(item)
        if n and zero:
            record(self.sem, post.node, "quantisation",
                   f"projection {pr.name}: {zero} of {n} {pr.receptor} weights quantise to zero (ring-buffer shift "
                   f"{shift}); median relative error of the rest {item['median_rel_error']:.2g}", zero / n)
        if worst_sum > 0xFFFF:
            record(self.sem, post.node, "saturation",
                   f"projection {pr.name}: worst-case ring-buffer slot sum {worst_sum:.0f} > 65535 (16-bit cells "
                   "saturate; the emulator counts it)", worst_sum / 0xFFFF)
        if n and zero == n:
            self.warn(f"PROJECTION {pr.name}: ALL {n} {pr.receptor} weights quantise to zero with ring-buffer "
                      f"shift {shift} (LSB {step:.3g}): this weight class VANISHES on SpiNNaker "
                      "(pin 'spinnaker.max_expected_summed_weight' lower, or use ring_buffer='statistical')")
        elif n and zero / n > 0.05:
            self.warn(f"projection {pr.name}: {zero}/{n} ({100 * zero / n:.1f}%) {pr.receptor} weights "
                      f"quantise to zero (shift {shift}, LSB {step:.3g})")
        if worst_sum > 0xFFFF:
            self.warn(f"projection {pr.name}: worst-case ring-buffer sum {worst_sum:.0f} > 65535: input can "
                      "saturate (counted by the emulator)")

    def _readouts(self) -> list[Readout]:
        out = []
        for name in G.output_nodes(self.g):
            preds = self.sched.predecessors(name)
            if len(preds) != 1:
                raise UnsupportedError("an Output must be fed by exactly one node", node=name)
            src = preds[0][0]
            node = self.g.nodes[src]
            if isinstance(node, NEURON_TYPES):
                pop = self.pops[self.pname(src)]
                out.append(Readout(name, pop.name, "spikes" if pop.spiking else "v"))
            else:
                raise UnsupportedError(
                    f"Output fed by {type(node).__name__}: a SpiNNaker program can only output a population's "
                    "spikes or membrane voltage", node=name, hint="end the graph with a neuron layer (LIF/IF/LI)")
        return out


def lower_graph(graph: nir.NIRGraph, dt: float, options: CompileOptions) -> Program:
    return Lowering(graph, dt, options).run()
