"""Steps per second of the reference simulator against snnTorch and Norse on the same graph, in one run.

Graph: Input(100) -> Affine(1000x100) -> LIF(1000) -> Affine(100x1000) -> LIF(100), batch 32, 200 steps,
Bernoulli(0.1) input spikes. snnTorch runs Linear + Leaky (reset_delay as the refsim's "delayed"
subtract), Norse runs Linear + LIFBoxCell (subtract reset, immediate); both in a Python time loop under torch.no_grad(), which is how
these frameworks are used for inference. Thread counts are pinned (default 1, --threads N) for numpy's
BLAS and torch alike, so the ratio compares the simulators, not their thread pools. The output spike
counts of the three runs are printed as a sanity check (snnTorch must match exactly; Norse resets
immediately rather than one step late, so its counts are only close).

Timings: `_common.timeit` (one warm-up, then --repeat runs: min / median / max); results go to
<out>/refsim.json (`--out DIR`, $SPIKEFORGE_BENCH_OUT or a temp dir), with a MISSED line for a target not met.

Usage: python benchmarks/bench_refsim.py [--threads N] [--steps T] [--batch B] [--repeat R] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nir
import numpy as np
import torch

from spikeforge import refsim

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, timeit  # noqa: E402

DT = 1e-3
BETA = 0.9


def build(n_in: int, n_hid: int, n_out: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    w1 = (rng.normal(size=(n_hid, n_in)) * 0.35).astype(np.float32)
    w2 = (rng.normal(size=(n_out, n_hid)) * 0.1).astype(np.float32)
    tau = DT / (1 - BETA)

    def lif(n):
        node = nir.LIF(tau=np.full(n, tau), r=np.full(n, tau / DT), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))
        node.metadata = {"spikeforge.reset": "subtract", "spikeforge.reset_timing": "delayed"}
        return node

    g = nir.NIRGraph(
        nodes={"input": nir.Input(np.array([n_in])), "fc1": nir.Affine(w1, np.zeros(n_hid, np.float32)),
               "lif1": lif(n_hid), "fc2": nir.Affine(w2, np.zeros(n_out, np.float32)), "lif2": lif(n_out),
               "output": nir.Output(np.array([n_out]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
        metadata={"spikeforge.dt": DT},
    )
    return g, w1, w2


def linear(w: np.ndarray) -> torch.nn.Linear:
    layer = torch.nn.Linear(w.shape[1], w.shape[0])
    layer.weight.data = torch.tensor(w)
    layer.bias.data.zero_()
    return layer


def run_refsim(sim: refsim.ReferenceSimulator, x: np.ndarray) -> np.ndarray:
    return sim.run(x).outputs["output"]


def run_snntorch(w1, w2, x: np.ndarray) -> np.ndarray:
    import snntorch as snn

    fc1, fc2 = linear(w1), linear(w2)
    lif1, lif2 = snn.Leaky(beta=BETA), snn.Leaky(beta=BETA)
    xt = torch.from_numpy(x)
    out = []
    with torch.no_grad():
        m1, m2 = lif1.reset_mem(), lif2.reset_mem()
        for t in range(len(xt)):
            s1, m1 = lif1(fc1(xt[t]), m1)
            s2, m2 = lif2(fc2(s1), m2)
            out.append(s2)
    return torch.stack(out).numpy()


def run_norse(w1, w2, x: np.ndarray) -> np.ndarray:
    import norse.torch as norse
    from norse.torch.functional.lif_box import LIFBoxParameters
    from norse.torch.functional.reset import reset_subtract

    # Norse's LIF has r = 1: the weights carry r = tau/dt = 1/(1-beta) so that the two models coincide.
    gain = 1.0 / (1.0 - BETA)
    fc1, fc2 = linear(w1 * gain), linear(w2 * gain)
    p = LIFBoxParameters(tau_mem_inv=torch.tensor((1 - BETA) / DT), v_th=torch.tensor(1.0),
                         reset_method=reset_subtract)
    c1, c2 = norse.LIFBoxCell(p, dt=DT), norse.LIFBoxCell(p, dt=DT)
    xt = torch.from_numpy(x)
    out = []
    with torch.no_grad():
        s1 = s2 = None
        for t in range(len(xt)):
            z1, s1 = c1(fc1(xt[t]), s1)
            z2, s2 = c2(fc2(z1), s2)
            out.append(z2)
    return torch.stack(out).numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=None, help="results directory (read by _common.out_dir)")
    args = ap.parse_args(argv)

    from threadpoolctl import threadpool_limits

    torch.set_num_threads(args.threads)
    g, w1, w2 = build(100, args.hidden, 100)
    rng = np.random.default_rng(1)
    x = (rng.random((args.steps, args.batch, 100)) < 0.1).astype(np.float32)
    with threadpool_limits(limits=args.threads):
        sim = refsim.ReferenceSimulator(g)
        t_ref, y_ref = timeit(lambda: run_refsim(sim, x), repeats=args.repeat)
        t_snn, y_snn = timeit(lambda: run_snntorch(w1, w2, x), repeats=args.repeat)
        t_nor, y_nor = timeit(lambda: run_norse(w1, w2, x), repeats=args.repeat)

    steps = args.steps
    report = Report("refsim", notes=[f"graph 100 -> {args.hidden} LIF -> 100 LIF, batch {args.batch}, {steps} steps, "
                                     f"{args.threads} thread(s); seconds per run, one warm-up, {args.repeat} repeats"])
    print(report.notes[0])
    for name, t, y in (("refsim", t_ref, y_ref), ("snntorch", t_snn, y_snn), ("norse", t_nor, y_nor)):
        print(f"{name:<10} {t.fmt()}  {steps / t.median:10.1f} steps/s (median)  output spikes {int(y.sum())}")
        report.rows.append({"simulator": name, "seconds": t.to_dict(), "steps_per_s_median": steps / t.median,
                            "output_spikes": int(y.sum())})
    same = bool(np.array_equal(y_ref, y_snn))
    print(f"refsim == snntorch output spikes: {same}")
    # Norse resets immediately (snnTorch one step late) and rounds differently: close, not identical.
    print(f"refsim vs norse output spike count: {int(y_ref.sum())} vs {int(y_nor.sum())}")
    report.target("refsim output spikes identical to snnTorch (fraction of equal entries)",
                  float(np.mean(y_ref == y_snn)), 1.0)
    report.target("refsim / snnTorch steps per second (median)", t_snn.median / t_ref.median, 1.0, unit="x")
    report.target("refsim / Norse steps per second (median)", t_nor.median / t_ref.median, 1.0, unit="x")
    report.save()
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
