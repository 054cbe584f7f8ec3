"""Speed of the SpiNNaker emulator against Brian2 on the same LIF network, in one run.

Network: SpikeSourceArray(N_IN) -> IF_curr_delta-style LIF(N_HID) -> LIF(N_OUT), random weights, 1 ms
steps, delay 1 step on every projection, Bernoulli(p) input spikes, one sample (Brian2 simulates one network
at a time). The emulator runs the network spikeforge lowers from NIR (s16.15 integer arithmetic, event and
cycle counting included); Brian2 runs the same equations in float64 (exact integration of dv/dt = -v/tau,
`v += w` on a spike arriving after 1 ms, reset to 0, threshold v > 1), with the numpy code-generation target
(`--target runtime` for Cython, which adds a compile the first time). The ratio printed is Brian2 time /
emulator time (> 1: the emulator is faster). Batch: the emulator also runs B samples in one call and the
per-sample time is printed (Brian2 would need B runs).

Brian2's thresholder and resetter are moved after the synapses (sPyNNaker's order: decay, add the step's
input, then threshold and reset). Spike counts of both are printed as a sanity check: they differ slightly
(s16.15 fixed point and quantised weights vs float64).

Usage: python benchmarks/bench_spinnaker.py [--steps T] [--hidden N] [--batch B] [--target numpy|runtime]
"""

from __future__ import annotations

import argparse
import time
import warnings

import nir
import numpy as np

from spikeforge.backends.spinnaker import SpiNNakerBackend
from spikeforge.boardspec import get_board
from spikeforge.interfaces import CompileOptions

DT = 1e-3
TAU = 0.02


def build(n_in: int, n_hid: int, n_out: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.02, 0.15, (n_hid, n_in))
    w2 = rng.normal(0.0, 0.1, (n_out, n_hid))

    def lif(n):
        return nir.LIF(tau=np.full(n, TAU), r=np.full(n, TAU / DT), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n_in])), "fc1": nir.Linear(w1), "lif1": lif(n_hid),
               "fc2": nir.Linear(w2), "lif2": lif(n_out), "output": nir.Output(np.array([n_out]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        metadata={"spikeforge.dt": DT, "spikeforge.integration": "exact"},
    )
    return g, w1, w2


def run_brian2(x: np.ndarray, w1: np.ndarray, w2: np.ndarray, target: str) -> tuple[float, int, int]:
    import brian2 as b2

    b2.prefs.codegen.target = target
    b2.start_scope()
    b2.defaultclock.dt = DT * b2.second
    T, n_in = x.shape
    t_idx, n_idx = np.nonzero(x)
    src = b2.SpikeGeneratorGroup(n_in, n_idx, t_idx * DT * b2.second)
    eqs = "dv/dt = -v / tau : 1"
    ns = {"tau": TAU * b2.second}
    g1 = b2.NeuronGroup(w1.shape[0], eqs, threshold="v > 1", reset="v = 0", method="exact", namespace=ns)
    g2 = b2.NeuronGroup(w2.shape[0], eqs, threshold="v > 1", reset="v = 0", method="exact", namespace=ns)
    # refsim "exact": v <- v e^(-dt/tau) + r (1 - e^(-dt/tau)) x ; the jump per spike is w r (1 - e^(-dt/tau))
    gain = (TAU / DT) * (1 - np.exp(-DT / TAU))
    s1 = b2.Synapses(src, g1, "w : 1", on_pre="v += w", delay=DT * b2.second)
    i, j = np.nonzero(w1.T)
    s1.connect(i=i, j=j)
    s1.w = w1.T[i, j] * gain
    s2 = b2.Synapses(g1, g2, "w : 1", on_pre="v += w", delay=DT * b2.second)
    i, j = np.nonzero(w2.T)
    s2.connect(i=i, j=j)
    s2.w = w2.T[i, j] * gain
    for grp in (g1, g2):  # sPyNNaker's order: decay, add this step's input, then threshold and reset
        grp.thresholder["spike"].when = "after_synapses"
        grp.resetter["spike"].when = "after_synapses"
        grp.resetter["spike"].order = 1
    m1, m2 = b2.SpikeMonitor(g1), b2.SpikeMonitor(g2)
    net = b2.Network(src, g1, g2, s1, s2, m1, m2)
    t0 = time.perf_counter()
    net.run(T * DT * b2.second)
    return time.perf_counter() - t0, int(m1.num_spikes), int(m2.num_spikes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--inputs", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--outputs", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--target", default="numpy", choices=["numpy", "runtime", "cython"])
    a = ap.parse_args(argv)
    g, w1, w2 = build(a.inputs, a.hidden, a.outputs)
    be = SpiNNakerBackend()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        art = be.lower(g, get_board("spinn5"), CompileOptions())
        t_lower = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    x = (rng.random((a.steps, a.batch, a.inputs)) < a.rate).astype(np.float32)
    emu = be.emulator()
    tr1 = emu.run(art, {"input": x[:, :1]}, probes=True)  # for the spike counts (probes cost time)
    t0 = time.perf_counter()
    emu.run(art, {"input": x[:, :1]})
    t_emu1 = time.perf_counter() - t0
    t0 = time.perf_counter()
    emu.run(art, {"input": x})
    t_emuB = time.perf_counter() - t0
    target = "cython" if a.target == "runtime" else a.target
    t_b2, n1_b2, n2_b2 = run_brian2(x[:, 0], w1, w2, target)
    n1 = int(tr1.states["lif1.s"].sum())
    n2 = int(tr1.outputs["output"].sum())
    print(f"network {a.inputs} -> {a.hidden} -> {a.outputs} LIF, {a.steps} steps of 1 ms, input rate {a.rate}/step, "
          f"{art.meta['synapses']} synapses, {art.meta['mapping']['n_cores']} SpiNNaker cores")
    print(f"lowering + mapping: {t_lower:.2f} s")
    print(f"emulator, 1 sample:         {t_emu1:8.3f} s   spikes hidden {n1}, out {n2}")
    print(f"emulator, {a.batch} samples:       {t_emuB:8.3f} s   ({t_emuB / a.batch:.3f} s per sample)")
    print(f"Brian2 ({target}), 1 sample:  {t_b2:8.3f} s   spikes hidden {n1_b2}, out {n2_b2}")
    print(f"ratio Brian2 / emulator (1 sample): {t_b2 / t_emu1:.2f}x")
    print(f"ratio Brian2 / emulator per sample (batch {a.batch}): {t_b2 / (t_emuB / a.batch):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
