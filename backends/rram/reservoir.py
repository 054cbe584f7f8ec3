"""Liquid state machines: generate one from a small spec, and measure its dynamics.

A reservoir is an ordinary NIR graph so every frontend, the reference simulator and every backend
can use it::

    input (Input) -> w_in (Affine) -> lif (LIF) -> readout (Affine) -> output (Output)
                                        ^   |
                                        +- w_rec (Affine) <-+   (recurrent: one step latency)

The LIF is the discrete-time neuron of the seed paper: v <- beta v + I, hard reset to 0, written
in NIR's continuous form with tau = dt / (1 - beta) and r = tau / dt (the reference simulator's
Euler step then gives exactly beta v + I).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import nir
import numpy as np

from spikeforge import graph as G
from spikeforge.errors import InputError


@dataclass(frozen=True)
class ReservoirSpec:
    """What a user specifies to get a reservoir without writing a model."""

    size: int = 200                  # reservoir neurons
    inputs: int = 64                 # input channels
    outputs: int = 10                # readout classes
    e_ratio: float = 0.8             # fraction of excitatory neurons (Dale's law on rows)
    p_connect: float = 0.1           # recurrent connection probability
    spectral_radius: float = 0.9     # of the recurrent weight matrix
    p_input: float = 0.2             # input connection probability
    input_scale: float = 0.5         # input weight magnitude, in units of the threshold
    beta: float = 0.9                # membrane decay per step
    threshold: float = 1.0
    dt: float = 1e-3
    seed: int = 0

    def check(self) -> None:
        for name in ("size", "inputs", "outputs"):
            if getattr(self, name) < 1:
                raise InputError(f"reservoir {name}={getattr(self, name)} must be >= 1", field=name)
        for name in ("e_ratio", "p_connect", "p_input"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise InputError(f"reservoir {name}={v} must lie in [0, 1]", field=name)
        if not 0.0 < self.beta < 1.0:
            raise InputError(f"reservoir beta={self.beta} must lie in (0, 1)", field="beta")
        if self.spectral_radius < 0 or self.threshold <= 0 or self.dt <= 0:
            raise InputError("spectral_radius must be >= 0, threshold and dt > 0", field="spec")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def spectral_radius(w: np.ndarray) -> float:
    """Largest |eigenvalue|; ARPACK on the sparse matrix for large reservoirs (dense eig is O(n^3))."""
    a = np.asarray(w, dtype=np.float64)
    if a.size == 0 or not np.any(a):
        return 0.0
    if a.shape[0] > 128:
        from scipy.sparse import csr_matrix
        from scipy.sparse.linalg import ArpackNoConvergence, eigs

        try:
            vals = eigs(csr_matrix(a), k=1, which="LM", return_eigenvectors=False, tol=1e-10,
                        v0=np.ones(a.shape[0]), maxiter=5000)
            return float(np.abs(vals).max())
        except ArpackNoConvergence:
            pass
    return float(np.max(np.abs(np.linalg.eigvals(a))))


def random_weights(spec: ReservoirSpec) -> tuple[np.ndarray, np.ndarray]:
    """(w_in (N, inputs), w_rec (N, N)) in float32: sparse, signed by presynaptic type, scaled."""
    spec.check()
    rng = np.random.default_rng(spec.seed)
    n = spec.size
    n_exc = int(round(spec.e_ratio * n))
    sign = np.where(np.arange(n) < n_exc, 1.0, -1.0)             # presynaptic (column) sign
    mask = rng.random((n, n)) < spec.p_connect
    np.fill_diagonal(mask, False)
    mag = rng.lognormal(0.0, 0.5, (n, n))
    # balance: inhibitory synapses stronger so the mean input is about zero at E/I = 4:1
    inh_gain = n_exc / max(1, n - n_exc)
    w = mask * mag * np.where(sign > 0, 1.0, inh_gain)[None, :] * sign[None, :]
    rho = spectral_radius(w)
    if rho > 0:
        w *= spec.spectral_radius / rho
    w_in = (rng.random((n, spec.inputs)) < spec.p_input) * rng.choice([-1.0, 1.0], (n, spec.inputs))
    w_in = w_in * spec.input_scale * spec.threshold * rng.lognormal(0.0, 0.25, w_in.shape)
    return w_in.astype(np.float32), (w * spec.threshold).astype(np.float32)


def reservoir_graph(spec: ReservoirSpec, w_in: np.ndarray | None = None, w_rec: np.ndarray | None = None,
                    readout: tuple[np.ndarray, np.ndarray] | None = None) -> nir.NIRGraph:
    """The NIR graph of an LSM (weights from `random_weights(spec)` unless given)."""
    if w_in is None or w_rec is None:
        w_in, w_rec = random_weights(spec)
    n = spec.size
    tau = spec.dt / (1.0 - spec.beta)
    ro_w, ro_b = readout if readout is not None else (
        np.zeros((spec.outputs, n), np.float32), np.zeros(spec.outputs, np.float32))
    nodes = {
        "input": nir.Input(input_type={"input": np.array([spec.inputs])}),
        "w_in": nir.Affine(weight=np.asarray(w_in, np.float32), bias=np.zeros(n, np.float32)),
        "lif": nir.LIF(
            tau=np.full(n, tau, np.float32), r=np.full(n, tau / spec.dt, np.float32),
            v_leak=np.zeros(n, np.float32), v_threshold=np.full(n, spec.threshold, np.float32),
            v_reset=np.zeros(n, np.float32),
        ),
        "w_rec": nir.Affine(weight=np.asarray(w_rec, np.float32), bias=np.zeros(n, np.float32)),
        "readout": nir.Affine(weight=np.asarray(ro_w, np.float32), bias=np.asarray(ro_b, np.float32)),
        "output": nir.Output(output_type={"output": np.array([spec.outputs])}),
    }
    edges = [("input", "w_in"), ("w_in", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "readout"),
             ("readout", "output")]
    meta = {G.DT_KEY: float(spec.dt), "spikeforge.reset": "zero", "spikeforge.reset_timing": "immediate",
            "spikeforge.reservoir_spec": str(spec.to_dict())}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


def generate(spec: ReservoirSpec | None = None, **kw: Any) -> nir.NIRGraph:
    """`generate(size=512, p_connect=0.1, spectral_radius=1.0)`: a ready-to-compile LSM graph."""
    return reservoir_graph(spec or ReservoirSpec(**kw))


# ---------------------------------------------------------------------------------------------------
# Dynamics measures (edge of chaos): mean rate, branching ratio, separation
# ---------------------------------------------------------------------------------------------------


def mean_rate(spikes: np.ndarray) -> float:
    """Spikes per neuron per step; spikes (T, B, N)."""
    return float(np.mean(spikes))


def branching_ratio(spikes: np.ndarray) -> float:
    """Mean descendants per ancestor: sum_t A(t+1) / sum_t A(t) over steps with activity.

    A(t) is the population spike count of each sample. Measure it on the free decay after a short
    input burst (see `dynamics`): below 1 activity dies out, above 1 it grows: 1 is the edge of chaos.
    """
    a = spikes.reshape(spikes.shape[0], spikes.shape[1], -1).sum(axis=2)   # (T, B)
    prev, nxt = a[:-1], a[1:]
    live = prev > 0
    den = float(prev[live].sum())
    return float(nxt[live].sum() / den) if den > 0 else 0.0


def separation(states_a: np.ndarray, states_b: np.ndarray) -> float:
    """Mean Euclidean distance between two runs' state trajectories, per sqrt(neuron).

    states: (T, B, N) filtered spikes (or spikes) for two input sets of equal shape.
    """
    d = np.linalg.norm(np.asarray(states_a, np.float64) - np.asarray(states_b, np.float64), axis=-1)
    return float(d.mean() / np.sqrt(states_a.shape[-1]))


def class_separation(features: np.ndarray, labels: np.ndarray) -> float:
    """Separation property on rate features: mean inter-class centroid distance / mean intra-class spread."""
    classes = np.unique(labels)
    cents = np.stack([features[labels == c].mean(axis=0) for c in classes])
    inter = np.mean([np.linalg.norm(cents[i] - cents[j]) for i in range(len(classes))
                     for j in range(i + 1, len(classes))]) if len(classes) > 1 else 0.0
    intra = np.mean([np.linalg.norm(features[labels == c] - cents[k], axis=1).mean()
                     for k, c in enumerate(classes)])
    return float(inter / intra) if intra > 0 else float("inf")


def reservoir_node(graph: nir.NIRGraph) -> str:
    """The spiking population with a recurrent loop (the liquid)."""
    sched = G.schedule(G.validate(graph))
    loops = {dst for _, dst in sched.recurrent} | {src for src, _ in sched.recurrent}
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.LIF, nir.CubaLIF)) and name in loops:
            return name
    for name, node in graph.nodes.items():
        if isinstance(node, (nir.LIF, nir.CubaLIF)):
            return name
    raise InputError("graph has no LIF/CubaLIF population to measure")


def dynamics(graph: nir.NIRGraph, inputs: np.ndarray, *, burst: int = 5, free: int = 30,
             seed: int = 0, tau_filter: float = 5.0) -> dict[str, float]:
    """Mean rate (driven), branching ratio (free decay after a `burst`-step input) and separation.

    inputs: (T, B, n_in) spike trains. Separation compares the run on `inputs` with the run on the
    same inputs with 10 % of the spikes moved (a small input perturbation): a chaotic reservoir
    amplifies it, an ordered one forgets it.
    """
    from spikeforge.refsim import simulate

    g = G.validate(graph)
    pop = reservoir_node(g)
    x = np.asarray(inputs, np.float32)
    driven = simulate(g, x, probes=True).activity[pop]
    rng = np.random.default_rng(seed)
    flip = rng.random(x.shape) < 0.1
    x2 = np.where(flip, rng.permutation(x.reshape(-1)).reshape(x.shape), x).astype(np.float32)
    driven2 = simulate(g, x2, probes=True).activity[pop]
    decay = np.exp(-1.0 / tau_filter)

    def filt(s: np.ndarray) -> np.ndarray:
        out = np.zeros_like(s, dtype=np.float64)
        acc = np.zeros(s.shape[1:])
        for t in range(s.shape[0]):
            acc = decay * acc + s[t]
            out[t] = acc
        return out

    xb = np.concatenate([x[:burst], np.zeros((free, *x.shape[1:]), np.float32)])
    freerun = simulate(g, xb, probes=True).activity[pop]
    return {
        "mean_rate": mean_rate(driven),
        "branching_ratio": branching_ratio(freerun[burst - 1:]),
        "separation": separation(filt(driven), filt(driven2)),
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m spikeforge.backends.rram.reservoir --size 512 --out lsm.nir`: a model to start from."""
    import argparse

    ap = argparse.ArgumentParser(description="write a random LSM reservoir as an NIR file")
    for f in ReservoirSpec.__dataclass_fields__.values():
        ap.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    ap.add_argument("--out", required=True)
    a = vars(ap.parse_args(argv))
    out = a.pop("out")
    G.write(generate(ReservoirSpec(**a)), out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
