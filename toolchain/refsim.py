"""The float reference simulator: discrete-time execution of NIR graphs, vectorised over a batch.

This is the baseline every board is verified against. Conventions (see README, "Discretisation"):

* Time is a grid of steps of `dt` seconds. Inputs are arrays (T, B, *shape).
* Within a step nodes run in topological order; a node's input is the sum of its predecessors'
  outputs *of the same step*. Edges that close a loop (recurrent edges, found by `graph.schedule`)
  deliver the source's output *of the previous step* (zero at t = 0): the one-step latency of a
  recurrent connection sits on the back edge, nowhere else.
* Affine/Linear/Scale/Conv/Pool/Flatten are instantaneous. Delay(d) outputs its input from
  round(d / dt) steps earlier.
* LI/LIF (NIR: tau dv/dt = (v_leak - v) + r I):
    integration="euler" (default, what snnTorch and Norse do):  v += dt/tau * (v_leak - v + r I)
    integration="exact" (zero-order hold):  v = v_leak + (v - v_leak) e^(-dt/tau) + r I (1 - e^(-dt/tau))
* CubaLI/CubaLIF add a synaptic current (tau_syn di/dt = -i + w_in I) integrated the same way.
    cuba_order="current_first" (default): v is driven by the updated i. snnTorch's Synaptic
      (w_in = tau_syn/dt, r = tau_mem/dt) and Norse's LIFCell (jump i += I, so w_in = tau_syn/dt, r = 1)
      both are this order (verified in tests/test_refsim_peers.py).
    cuba_order="voltage_first": v is driven by the i of the previous step (one step of synaptic latency).
* IF and I integrate without dt (v += r I), as sinabs, snnTorch and Norse all do; `if_dt=True` gives
  the literal Euler form v += dt r I.
* Spikes: s = v > v_threshold (threshold_cmp=">", default) or >=. Reset:
    reset="zero": v <- v_reset (0 if absent);  reset="subtract": v <- v - v_threshold.
    reset_timing="immediate" (NIR, Norse, sinabs): applied in the step that spiked.
    reset_timing="delayed" (snnTorch subtract with reset_delay=True; Synaptic zero with reset_delay=True):
      applied after the next step's integration. (snnTorch's Leaky zero reset with reset_delay=True zeroes
      v *before* the next integration, which gives the spikes of "immediate".)
* State starts at v = 0, i = 0 (Norse starts LIF/LI at v_leak and IAF at v_reset; see docs/refsim.md).
  A node's metadata (keys `spikeforge.reset`, `spikeforge.reset_timing`, `spikeforge.cuba_order`,
  `spikeforge.threshold_cmp`) overrides the graph's defaults; frontends record what their framework did.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import nir
import numpy as np

from . import graph as G
from .errors import GraphError, InputError

CONVENTION_KEYS = ("reset", "reset_timing", "cuba_order", "threshold_cmp", "integration")
_ALLOWED = {
    "integration": ("euler", "exact"),
    "reset": ("zero", "subtract"),
    "reset_timing": ("immediate", "delayed"),
    "cuba_order": ("current_first", "voltage_first"),
    "threshold_cmp": (">", ">="),
}


@dataclass(frozen=True)
class SimConfig:
    dt: float = 1e-4
    integration: str = "euler"
    reset: str = "zero"
    reset_timing: str = "immediate"
    cuba_order: str = "current_first"
    threshold_cmp: str = ">"
    if_dt: bool = False
    dtype: str = "float32"

    def __post_init__(self) -> None:
        for key, allowed in _ALLOWED.items():
            if getattr(self, key) not in allowed:
                raise GraphError(f"simulator option {key}={getattr(self, key)!r}; allowed: {allowed}")
        if not (self.dt > 0 and np.isfinite(self.dt)):
            raise GraphError(f"time step dt must be > 0 (got {self.dt})")

    def for_node(self, node: nir.NIRNode) -> SimConfig:
        meta = getattr(node, "metadata", None) or {}
        over = {k: str(meta[f"spikeforge.{k}"]) for k in CONVENTION_KEYS if f"spikeforge.{k}" in meta}
        return replace(self, **over) if over else self


def config_for_graph(graph: nir.NIRGraph, dt: float | None = None, **overrides: Any) -> SimConfig:
    """Simulator settings from the graph's recorded conventions, then explicit overrides."""
    meta = graph.metadata or {}
    kw: dict[str, Any] = {k: str(meta[f"spikeforge.{k}"]) for k in CONVENTION_KEYS if f"spikeforge.{k}" in meta}
    step = G.get_dt(graph, dt)
    if step is not None:
        kw["dt"] = step
    kw.update({k: v for k, v in overrides.items() if v is not None})
    return SimConfig(**kw)


def _arr(x: Any, dtype: np.dtype) -> np.ndarray:
    return np.asarray(x, dtype=dtype)


# ---------------------------------------------------------------------------------------------------
# Node kernels: each has init(batch) -> state and step(x, state) -> (y, state)
# ---------------------------------------------------------------------------------------------------


class _Kernel:
    stateful = False
    in_shape: tuple[int, ...] | None = None

    def init(self, batch: int) -> Any:
        return None

    def step(self, x: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        raise NotImplementedError

    def synops(self, x: np.ndarray) -> float:
        return 0.0

    def probes(self, state: Any) -> dict[str, np.ndarray]:
        return {}


class _Pass(_Kernel):
    def step(self, x, state):
        return x, state


class _Affine(_Kernel):
    def __init__(self, node, dtype):
        self.w = _arr(node.weight, dtype)
        if self.w.ndim != 2:
            raise GraphError(f"weight must be 2-D (out, in), got shape {self.w.shape}", field="weight")
        self.b = _arr(node.bias, dtype) if isinstance(node, nir.Affine) else None
        self.in_shape = (self.w.shape[1],)
        self.wt = np.ascontiguousarray(self.w.T)
        self.fanout = (self.w != 0).sum(axis=0).astype(np.float64)

    def step(self, x, state):
        x2 = x.reshape(x.shape[0], -1)
        y = x2 @ self.wt
        if self.b is not None:
            y = y + self.b
        return y, state

    def synops(self, x):
        x2 = x.reshape(x.shape[0], -1)
        return float(((x2 != 0) * self.fanout).sum())


class _Scale(_Kernel):
    def __init__(self, node, dtype):
        self.s = _arr(node.scale, dtype)

    def step(self, x, state):
        return x * self.s, state


def _pair(v: Any, n: int) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(v)).astype(int).ravel()
    return tuple(int(a[0]) for _ in range(n)) if a.size == 1 else tuple(int(x) for x in a[:n])


class _Conv(_Kernel):
    def __init__(self, node, dtype, dims: int):
        import torch

        self.torch = torch
        self.dims = dims
        self.tdtype = torch.float64 if dtype == np.float64 else torch.float32
        self.w = torch.as_tensor(_arr(node.weight, dtype))
        bias = getattr(node, "bias", None)
        self.b = None if bias is None else torch.as_tensor(_arr(bias, dtype)).reshape(-1)
        if self.b is not None and self.b.numel() == 1 and self.w.shape[0] > 1:
            self.b = self.b.expand(self.w.shape[0]).clone()
        self.stride = _pair(node.stride, dims)
        self.dilation = _pair(node.dilation, dims)
        self.groups = int(node.groups)
        pad = node.padding
        self.padding = pad if isinstance(pad, str) else _pair(pad, dims)
        shp = G.node_shape(node, "input")
        self.in_shape = shp
        k = int(np.prod(self.w.shape[2:]))
        self.fanout = float(self.w.shape[0] * k / max(1, int(np.prod(self.stride))) / self.groups)

    def step(self, x, state):
        F = self.torch.nn.functional
        t = self.torch.from_numpy(np.ascontiguousarray(x)).to(self.tdtype)
        if t.dim() == self.dims + 1 and self.in_shape is not None:
            t = t.reshape(t.shape[0], *self.in_shape)
        conv = F.conv2d if self.dims == 2 else F.conv1d
        y = conv(t, self.w, self.b, stride=self.stride, padding=self.padding, dilation=self.dilation,
                 groups=self.groups)
        return y.numpy(), state

    def synops(self, x):
        return float((x != 0).sum()) * self.fanout


class _Pool(_Kernel):
    def __init__(self, node, dtype, summing: bool):
        import torch

        self.torch = torch
        self.tdtype = torch.float64 if dtype == np.float64 else torch.float32
        self.k = _pair(node.kernel_size, 2)
        self.s = _pair(node.stride, 2)
        self.p = _pair(node.padding, 2)
        self.summing = summing
        self.in_shape = G.node_shape(node, "input")

    def step(self, x, state):
        F = self.torch.nn.functional
        t = self.torch.from_numpy(np.ascontiguousarray(x)).to(self.tdtype)
        if self.in_shape is not None and tuple(t.shape[1:]) != tuple(self.in_shape):
            t = t.reshape(t.shape[0], *self.in_shape)
        y = F.avg_pool2d(t, self.k, self.s, self.p, divisor_override=1 if self.summing else None)
        return y.numpy(), state

    def synops(self, x):
        return float((x != 0).sum())


class _Flatten(_Kernel):
    def __init__(self, node):
        self.out = G.node_shape(node, "output")
        self.in_shape = G.node_shape(node, "input")
        self.start, self.end = int(node.start_dim), int(node.end_dim)

    def step(self, x, state):
        b = x.shape[0]
        if self.out is not None and int(np.prod(self.out)) == int(np.prod(x.shape[1:])):
            return x.reshape(b, *self.out), state
        shp = x.shape[1:]
        end = self.end if self.end >= 0 else len(shp) + self.end
        new = (*shp[: self.start], int(np.prod(shp[self.start : end + 1])), *shp[end + 1 :])
        return x.reshape(b, *new), state


class _Delay(_Kernel):
    stateful = True

    def __init__(self, node, cfg: SimConfig):
        self.steps = np.rint(np.asarray(node.delay, dtype=np.float64) / cfg.dt).astype(np.int64)
        self.maxd = int(self.steps.max()) if self.steps.size else 0
        from .validate import MAX_DELAY_STEPS

        if self.maxd > MAX_DELAY_STEPS:  # checked before the delay line is allocated
            raise GraphError(f"delay of {self.maxd} steps at dt {cfg.dt} s exceeds the maximum {MAX_DELAY_STEPS}",
                             field="delay")
        self.t = 0

    def init(self, batch):
        self.t = 0
        return None

    def step(self, x, state):
        if state is None:
            state = np.zeros((self.maxd + 1, *x.shape), dtype=x.dtype)
        n = self.maxd + 1
        state[self.t % n] = x
        if self.steps.size == 1 or np.all(self.steps == self.steps.ravel()[0]):
            d = int(self.steps.ravel()[0]) if self.steps.size else 0
            y = state[(self.t - d) % n].copy() if self.t >= d else np.zeros_like(x)
        else:
            idx = (self.t - np.broadcast_to(self.steps, x.shape[1:])) % n
            y = np.take_along_axis(state, idx[None, None].repeat(x.shape[0], axis=1), axis=0)[0]
            y = np.where(self.t >= np.broadcast_to(self.steps, x.shape[1:]), y, 0).astype(x.dtype)
        self.t += 1
        return y, state


def _decay(dt: float, tau: np.ndarray, integration: str) -> tuple[np.ndarray, np.ndarray]:
    """(keep, into) of one step of tau dx/dt = -x + u: x <- keep x + into u (float64)."""
    if integration == "exact":
        return np.exp(-dt / tau), -np.expm1(-dt / tau)
    return 1.0 - dt / tau, dt / tau


class _Neuron(_Kernel):
    """LI, LIF, CubaLI, CubaLIF, IF and I in one parameterised kernel."""

    stateful = True

    def __init__(self, node, cfg: SimConfig, dtype):
        c = cfg.for_node(node)
        self.cfg = c
        self.dtype = dtype
        self.spiking = isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF))
        self.cuba = isinstance(node, (nir.CubaLI, nir.CubaLIF))
        self.leaky = not isinstance(node, (nir.IF, nir.I))
        dt = c.dt
        # Coefficients are combined once in float64 and rounded once to `dtype`, so a step is
        # v = keep * v + gain * I (+ bias): with snnTorch's parameters (tau = dt/(1-beta), r = tau/dt)
        # gain is exactly 1 and keep is beta, the very float32 operations snnTorch performs.
        r64 = np.asarray(node.r, np.float64)
        shape = G.node_shape(node, "input")
        self.in_shape = shape
        if self.leaky:
            tau = np.asarray(node.tau_mem if self.cuba else node.tau, np.float64)
            keep, into = _decay(dt, tau, c.integration)
            bias = into * np.asarray(node.v_leak, np.float64)
            self.mem_keep = keep.astype(dtype)
            self.mem_gain = (into * r64).astype(dtype)
            self.mem_bias = bias.astype(dtype) if np.any(bias != 0) else None
        else:
            self.mem_keep = None
            self.mem_gain = (r64 * (dt if c.if_dt else 1.0)).astype(dtype)
            self.mem_bias = None
        if self.cuba:
            keep, into = _decay(dt, np.asarray(node.tau_syn, np.float64), c.integration)
            self.syn_keep = keep.astype(dtype)
            self.syn_gain = (into * np.asarray(node.w_in, np.float64)).astype(dtype)
        if self.spiking:
            self.v_th = _arr(node.v_threshold, dtype)
            vr = getattr(node, "v_reset", None)
            self.v_reset = np.zeros((), dtype) if vr is None else _arr(vr, dtype)
        self.shape = shape

    def init(self, batch):
        shp = (batch, *self.shape) if self.shape is not None else None
        return {"v": None, "i": None, "s": None, "shape": shp}

    def step(self, x, st):
        if st["v"] is None:
            z = np.zeros_like(x, dtype=self.dtype)
            st["v"] = z.copy()
            if self.cuba:
                st["i"] = z.copy()
            if self.spiking:
                st["s"] = np.zeros(x.shape, dtype=bool)
        v = st["v"]
        if self.cuba:
            i_old = st["i"]
            i_new = self.syn_keep * i_old + self.syn_gain * x
            drive = i_new if self.cfg.cuba_order == "current_first" else i_old
            st["i"] = i_new
        else:
            drive = x
        if self.leaky:
            v = self.mem_keep * v + self.mem_gain * drive
            if self.mem_bias is not None:
                v = v + self.mem_bias
        else:
            v = v + self.mem_gain * drive
        if not self.spiking:
            st["v"] = v
            return v, st
        c = self.cfg
        if c.reset_timing == "delayed":
            prev = st["s"]
            if c.reset == "subtract":
                v = v - prev * self.v_th
            else:
                v = np.where(prev, self.v_reset, v)
        s = (v > self.v_th) if c.threshold_cmp == ">" else (v >= self.v_th)
        if c.reset_timing == "immediate":
            if c.reset == "subtract":
                v = v - s * self.v_th
            else:
                v = np.where(s, self.v_reset, v)
        st["v"] = v.astype(self.dtype, copy=False)
        st["s"] = s
        return s.astype(self.dtype), st

    def probes(self, st):
        # `<node>.s` beside `.v`/`.i`: hidden spikes under NIR names, what verify's layer attribution compares
        out = {"v": st["v"]}
        if self.cuba:
            out["i"] = st["i"]
        if self.spiking:
            out["s"] = st["s"]
        return out


class _Threshold(_Kernel):
    def __init__(self, node, dtype):
        self.th = _arr(node.threshold, dtype)

    def step(self, x, state):
        return (x > self.th).astype(x.dtype), state


def make_kernel(node: nir.NIRNode, cfg: SimConfig) -> _Kernel:
    dtype = np.dtype(cfg.dtype)
    if isinstance(node, (nir.Input, nir.Output)):
        return _Pass()
    if isinstance(node, (nir.Affine, nir.Linear)):
        return _Affine(node, dtype)
    if isinstance(node, nir.Scale):
        return _Scale(node, dtype)
    if isinstance(node, nir.Conv2d):
        return _Conv(node, dtype, 2)
    if isinstance(node, nir.Conv1d):
        return _Conv(node, dtype, 1)
    if isinstance(node, nir.SumPool2d):
        return _Pool(node, dtype, True)
    if isinstance(node, nir.AvgPool2d):
        return _Pool(node, dtype, False)
    if isinstance(node, nir.Flatten):
        return _Flatten(node)
    if isinstance(node, nir.Delay):
        return _Delay(node, cfg)
    if isinstance(node, (nir.LI, nir.LIF, nir.CubaLI, nir.CubaLIF, nir.IF, nir.I)):
        return _Neuron(node, cfg, dtype)
    if isinstance(node, nir.Threshold):
        return _Threshold(node, dtype)
    raise GraphError(f"the reference simulator has no kernel for {type(node).__name__}")


@dataclass
class SimResult:
    outputs: dict[str, np.ndarray]                 # Output node -> (T, B, *shape)
    states: dict[str, np.ndarray]                  # 'node.v' etc. -> (T, B, *shape), when probed
    activity: dict[str, np.ndarray]                # node -> (T, B, *shape) node outputs, when probed
    synops: np.ndarray                             # (T,) synaptic events, summed over batch
    spikes: np.ndarray                             # (T,) spikes emitted, summed over batch
    neuron_updates: np.ndarray                     # (T,)
    layer_synops: dict[str, float]
    layer_spikes: dict[str, float]


class ReferenceSimulator:
    """Compile a graph once, run it on many inputs."""

    def __init__(self, graph: nir.NIRGraph, config: SimConfig | None = None):
        self.graph = G.validate(graph)
        self.config = config or config_for_graph(self.graph)
        self.sched = G.schedule(self.graph)
        self.kernels: dict[str, _Kernel] = {}
        for name in self.sched.order:
            try:
                self.kernels[name] = make_kernel(self.graph.nodes[name], self.config)
            except GraphError as exc:
                exc.node = exc.node or name
                raise GraphError(exc.reason, node=name, field=exc.field) from None
        self.inputs = G.input_nodes(self.graph)
        self.outputs = G.output_nodes(self.graph)
        self.preds = {n: self.sched.predecessors(n) for n in self.sched.order}

    def input_shape(self, name: str) -> tuple[int, ...] | None:
        return G.node_shape(self.graph.nodes[name], "output")

    def check_inputs(self, inputs: dict[str, np.ndarray]) -> tuple[int, int]:
        missing = [n for n in self.inputs if n not in inputs]
        if missing:
            raise InputError(f"no data for input node(s) {missing}; got keys {sorted(inputs)}")
        T = B = None
        for n in self.inputs:
            x = inputs[n]
            if x.ndim < 2:
                raise InputError(f"input '{n}' must be shaped (time, batch, ...), got {x.shape}")
            shp = self.input_shape(n)
            if shp is not None and int(np.prod(x.shape[2:])) != int(np.prod(shp)):
                raise InputError(
                    f"input '{n}' has per-sample shape {tuple(x.shape[2:])}, the graph expects {shp} "
                    f"(arrays are time x batch x {' x '.join(map(str, shp))})"
                )
            if T is None:
                T, B = x.shape[0], x.shape[1]
            elif (x.shape[0], x.shape[1]) != (T, B):
                raise InputError("all inputs must share time and batch sizes")
        return int(T), int(B)

    def run(self, inputs: dict[str, np.ndarray] | np.ndarray, *, probes: bool = False) -> SimResult:
        if isinstance(inputs, np.ndarray):
            if len(self.inputs) != 1:
                raise InputError(f"graph has {len(self.inputs)} inputs; pass a dict")
            inputs = {self.inputs[0]: inputs}
        T, B = self.check_inputs(inputs)
        dtype = np.dtype(self.config.dtype)
        states = {n: k.init(B) for n, k in self.kernels.items()}
        prev: dict[str, np.ndarray] = {}
        outs: dict[str, list[np.ndarray]] = {n: [] for n in self.outputs}
        probe_states: dict[str, list[np.ndarray]] = {}
        activity: dict[str, list[np.ndarray]] = {}
        synops = np.zeros(T)
        spikes = np.zeros(T)
        updates = np.zeros(T)
        layer_syn = {n: 0.0 for n in self.kernels}
        layer_spk = {n: 0.0 for n in self.kernels}
        rec_sources = {s for s, _ in self.sched.recurrent}
        for t in range(T):
            cur: dict[str, np.ndarray] = {}
            for name in self.sched.order:
                k = self.kernels[name]
                if name in inputs:
                    x = np.asarray(inputs[name][t], dtype=dtype)
                    shp = self.input_shape(name)
                    if shp is not None:
                        x = x.reshape(B, *shp)
                else:
                    x = None
                    for src, is_rec in self.preds[name]:
                        val = prev.get(src) if is_rec else cur[src]
                        if val is None:
                            continue
                        if x is None:
                            x = val
                        else:
                            if x.shape != val.shape:
                                val = val.reshape(x.shape)
                            x = x + val
                    if x is None:  # only recurrent inputs, first step
                        ref = cur.get(self.preds[name][0][0])
                        x = np.zeros((B, *(k.in_shape or ())), dtype=dtype) if ref is None else np.zeros_like(ref)
                    if k.in_shape is not None and x.shape[1:] != tuple(k.in_shape) and \
                            int(np.prod(x.shape[1:])) == int(np.prod(k.in_shape)):
                        x = x.reshape(B, *k.in_shape)
                s_ops = k.synops(x)
                if s_ops:
                    synops[t] += s_ops
                    layer_syn[name] += s_ops
                y, states[name] = k.step(x, states[name])
                cur[name] = y
                if isinstance(k, _Neuron):
                    updates[t] += y.size
                    if k.spiking:
                        n_spk = float(y.sum())
                        spikes[t] += n_spk
                        layer_spk[name] += n_spk
                    if probes:
                        for var, val in k.probes(states[name]).items():
                            probe_states.setdefault(f"{name}.{var}", []).append(np.array(val))
                if probes:
                    activity.setdefault(name, []).append(np.array(y))
            for n in self.outputs:
                outs[n].append(cur[n])
            prev = {s: cur[s] for s in rec_sources}
        return SimResult(
            outputs={n: np.stack(v) for n, v in outs.items()},
            states={k: np.stack(v) for k, v in probe_states.items()},
            activity={k: np.stack(v) for k, v in activity.items()},
            synops=synops,
            spikes=spikes,
            neuron_updates=updates,
            layer_synops=layer_syn,
            layer_spikes=layer_spk,
        )


def simulate(graph: nir.NIRGraph, inputs: dict[str, np.ndarray] | np.ndarray, dt: float | None = None,
             *, probes: bool = False, **options: Any) -> SimResult:
    """One-call convenience: simulate `graph` on `inputs` with the graph's recorded conventions."""
    g = G.validate(graph)
    return ReferenceSimulator(g, config_for_graph(g, dt, **options)).run(inputs, probes=probes)
