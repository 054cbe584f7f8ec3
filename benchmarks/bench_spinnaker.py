"""Speed of the SpiNNaker emulator against Brian2 on the same LIF network, with equal spike counts checked.

Network: SpikeSourceArray(N_IN) -> LIF(N_HID) -> LIF(N_OUT), random weights, 1 ms steps, one step of delay on
every projection, Bernoulli(p) input spikes. spikeforge lowers it from NIR (exact integration, tau 20 ms) and
the emulator runs the cores' s16.15 arithmetic, event and cycle counting included. Brian2 (numpy target,
float64) runs the network the chip runs: the artifact's dequantised weights (w_int 2**(s - 15), times the
core's membrane gain, in model volts), the core's own decay exp_TC, its threshold, reset to 0, and sPyNNaker's
step order (threshold and reset after the synapses). Both sides therefore simulate the same equations; the
counts differ only where float64 and s16.15 rounding put V on different sides of the threshold.

Timing: warm-up on both sides, then repeats (min / median / max). The emulator time is a whole `run` call
(simulation and per-core event counts; the program's weight matrices are built on the first run of an
artifact and reused, like Brian2's network); Brian2's is `net.run` only (network construction and code
generation excluded). Batch: the emulator runs B samples in one call; Brian2 needs B runs,
so its per-sample time is its one-sample time.

Targets (issue 15): emulator >= 3x Brian2 on one sample, >= 10x per sample in a batch of 16 (medians), and
equal spike counts (hidden and output) on the first sample.

Usage: python benchmarks/bench_spinnaker.py [--steps T] [--hidden N] [--batch B] [--repeats R] [--out DIR]
"""

from __future__ import annotations

import argparse
import time
import warnings

import nir
import numpy as np
from _common import Report, Timing, timeit  # benchmarks/ is on sys.path when run as a script

from spikeforge.artifact import Artifact
from spikeforge.backends.spinnaker import SpiNNakerBackend
from spikeforge.backends.spinnaker import fixed as F
from spikeforge.backends.spinnaker.program import Program
from spikeforge.boardspec import get_board
from spikeforge.interfaces import CompileOptions

DT = 1e-3
TAU = 0.02


def build(n_in: int, n_hid: int, n_out: int, seed: int = 0) -> tuple[nir.NIRGraph, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.02, 0.15, (n_hid, n_in))
    w2 = rng.normal(0.0, 0.1, (n_out, n_hid))

    def lif(n: int) -> nir.LIF:
        return nir.LIF(tau=np.full(n, TAU), r=np.full(n, TAU / DT), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n_in])), "fc1": nir.Linear(w1), "lif1": lif(n_hid),
               "fc2": nir.Linear(w2), "lif2": lif(n_out), "output": nir.Output(np.array([n_out]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        metadata={"spikeforge.dt": DT, "spikeforge.integration": "exact"},
    )
    return g, w1, w2


def chip_network(art: Artifact) -> dict[str, dict[str, np.ndarray]]:
    """What the cores compute, in model units: per population decay, threshold, and V jump per input spike."""
    prog = Program.from_artifact(art.meta, art.arrays)
    out: dict[str, dict[str, np.ndarray]] = {}
    for p in prog.populations:
        if p.is_source:
            continue
        keep = p.raw["exp_tc"] / F.ONE
        out[p.name] = {"keep": keep, "thresh": p.raw["v_thresh"] / (F.ONE * p.v_scale), "in": {}}
    for pr in prog.projections:
        post = prog.pop(pr.post)
        s = post.shifts[0 if pr.receptor == "excitatory" else 1]
        sign = 1.0 if pr.receptor == "excitatory" else -1.0
        g = 1.0 - out[pr.post]["keep"][pr.post_idx]
        jump = sign * pr.w_int * 2.0 ** (s - 15) * g / post.v_scale
        W = out[pr.post]["in"].setdefault(pr.pre, np.zeros((prog.pop(pr.pre).size, post.size)))
        np.add.at(W, (pr.pre_idx, pr.post_idx), jump)
    return out


def run_brian2(x: np.ndarray, net: dict[str, dict], target: str = "numpy") -> tuple[float, dict[str, int]]:
    """One sample (T, n_in) of the chip's network on Brian2: (seconds in net.run, spike count per population)."""
    import brian2 as b2

    b2.prefs.codegen.target = target
    b2.start_scope()
    b2.defaultclock.dt = DT * b2.second
    T, n_in = x.shape
    t_idx, n_idx = np.nonzero(x)
    groups = {"input": b2.SpikeGeneratorGroup(n_in, n_idx, t_idx * DT * b2.second)}
    objs: list = [groups["input"]]
    monitors = {}
    for name, p in net.items():
        tau_s = -DT / np.log(p["keep"])
        grp = b2.NeuronGroup(len(tau_s), "dv/dt = -v / tau : 1\ntau : second\nth : 1", threshold="v >= th",
                             reset="v = 0", method="exact")
        grp.tau = tau_s * b2.second
        grp.th = p["thresh"]
        grp.thresholder["spike"].when = "after_synapses"   # sPyNNaker's order: input, then threshold and reset
        grp.resetter["spike"].when = "after_synapses"
        grp.resetter["spike"].order = 1
        groups[name] = grp
        monitors[name] = b2.SpikeMonitor(grp)
        objs += [grp, monitors[name]]
    for name, p in net.items():
        for pre, W in p["in"].items():
            # a neuron group's spikes (thresholder after the synapses) reach its pathway in the next step:
            # Brian2 delay 0 there gives sPyNNaker's one step; a SpikeGeneratorGroup spikes before the synapses
            delay = DT * b2.second if pre == "input" else 0 * b2.second
            syn = b2.Synapses(groups[pre], groups[name], "w : 1", on_pre="v += w", delay=delay)
            i, j = np.nonzero(W)
            syn.connect(i=i, j=j)
            syn.w = W[i, j]
            objs.append(syn)
    network = b2.Network(*objs)
    t0 = time.perf_counter()
    network.run(T * DT * b2.second)
    return time.perf_counter() - t0, {k: int(m.num_spikes) for k, m in monitors.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--inputs", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--outputs", type=int, default=100)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--target", default="numpy", choices=["numpy", "cython"])
    ap.add_argument("--out", default=None, help="results directory (read by benchmarks/_common.out_dir)")
    a = ap.parse_args(argv)
    g, _, _ = build(a.inputs, a.hidden, a.outputs)
    be = SpiNNakerBackend()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t_lower, art = timeit(lambda: be.lower(g, get_board("spinn5"), CompileOptions()), repeats=1, warmup=0)
    rng = np.random.default_rng(1)
    x = (rng.random((a.steps, a.batch, a.inputs)) < a.rate).astype(np.float32)
    emu = be.emulator()
    tr = emu.run(art, {"input": x[:, :1]}, probes=True)  # hidden-layer counts (probes record V: not timed)
    t_one, tr1 = timeit(lambda: emu.run(art, {"input": x[:, :1]}), repeats=a.repeats)
    assert np.array_equal(tr1.outputs["output"], tr.outputs["output"])
    t_batch, trb = timeit(lambda: emu.run(art, {"input": x}), repeats=a.repeats)
    net = chip_network(art)
    b2_samples, counts_b2 = [], {}
    for i in range(1 + max(3, min(a.repeats, 5))):  # first run: warm-up (code generation), not timed
        dt_b2, counts_b2 = run_brian2(x[:, 0], net, a.target)
        if i:
            b2_samples.append(dt_b2)
    t_b2 = Timing(b2_samples)
    counts_emu = {"lif1": int(tr.states["lif1.s"].sum()), "lif2": int(tr.outputs["output"].sum())}
    assert int(trb.outputs["output"][:, :1].sum()) == counts_emu["lif2"]   # the batch run agrees with the single one
    rep = Report("bench_spinnaker")
    rep.rows += [
        {"what": "lowering + mapping", "seconds": t_lower.to_dict()},
        {"what": "emulator, 1 sample", "seconds": t_one.to_dict(), "spikes": counts_emu},
        {"what": f"emulator, {a.batch} samples", "seconds": t_batch.to_dict(),
         "per_sample_median": t_batch.median / a.batch},
        {"what": f"Brian2 ({a.target}), 1 sample, net.run", "seconds": t_b2.to_dict(), "spikes": counts_b2},
    ]
    print(f"network {a.inputs} -> {a.hidden} -> {a.outputs} LIF, {a.steps} steps of 1 ms, input rate {a.rate}/step, "
          f"{art.meta['synapses']} synapses, {art.meta['mapping']['n_cores']} SpiNNaker cores")
    print(f"lowering + mapping:        {t_lower.fmt()}")
    print(f"emulator, 1 sample:        {t_one.fmt()}   spikes {counts_emu}")
    print(f"emulator, {a.batch} samples:     {t_batch.fmt()}   ({t_batch.median / a.batch:.4f} s per sample)")
    print(f"Brian2 ({a.target}), 1 sample:  {t_b2.fmt()}   spikes {counts_b2}")
    rep.target("Brian2 / emulator, one sample (medians)", t_b2.median / t_one.median, 3.0, unit="x")
    rep.target(f"Brian2 / emulator per sample, batch {a.batch} (medians)",
               t_b2.median / (t_batch.median / a.batch), 10.0, unit="x")
    for k in counts_emu:
        rep.target(f"spike count difference {k} (emulator {counts_emu[k]} vs Brian2 {counts_b2[k]})",
                   abs(counts_emu[k] - counts_b2[k]), 0, higher_is_better=False)
    rep.save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
