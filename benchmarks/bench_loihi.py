#!/usr/bin/env python3
"""Loihi: emulator vs Lava 0.10.0 fixed_pt (steps per second), and compile time / peak memory.

1. **Emulator vs Lava** (RingBuffer -> Dense -> LIF -> Dense -> LIF, N neurons per layer, N = 100, 1000):
   * steady state: Lava after a warm-up run (compile and process start-up excluded), REPEATS timed runs of
     STEADY steps; emulator: REPEATS timed runs of STEADY steps on a prepared program (batch 1).
   * end to end: build the processes + compile + run STEPS steps + read two spike monitors (Lava), vs a
     fresh program (its weight tables prepared inside the timing) run with both layers' spikes returned;
     the random weight matrices are generated outside the timing on both sides.
   Spikes are checked equal in every mode: the emulator's steady-state run against an untimed, monitored
   Lava run of the same steps, and both end-to-end runs against each other.
2. **Compile** (fresh process per repeat, imports done before the timer): the NIR paper's Sinabs CNN
   (shared/models/cnn_sinabs.nir, dt 1e-3) for loihi2, and MLPs of 0.25-2 M synapses (time and peak RSS
   must grow linearly).

Targets: >= 10x steady state and >= 100x end to end at N = 1000 (medians); CNN < 5 s and < 600 MB;
1 M-synapse MLP < 3 s. A target not met prints a MISSED line. Results: JSON in `_common.out_dir()`.
Run by `make bench`, never by CI.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, Timing, timeit  # noqa: E402

from spikeforge.emulators.loihi import Conn, Pop, Program, run_program  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CNN = ROOT.parent / "shared" / "models" / "cnn_sinabs.nir"


def build_program(n: int, seed: int = 0) -> tuple[Program, np.random.Generator]:
    rng = np.random.default_rng(seed)
    # thresholds scaled with fan-in so both layers fire at a few to ~10 % per step (printed)
    vth = {1: 15 * n, 2: 20 * n}
    pops = {f"l{k}": Pop(name=f"l{k}", size=n, du=3000, dv=400, vth=vth[k], bias_mant=np.zeros(n, int),
                         bias_exp=np.zeros(n, int)) for k in (1, 2)}
    conns = [Conn(name="c1", src="in", dst="l1", weights=rng.integers(-60, 100, (n, n)), weight_exp=0),
             Conn(name="c2", src="l1", dst="l2", weights=rng.integers(-60, 100, (n, n)), weight_exp=0)]
    return Program(inputs={"in": n}, pops=pops, conns=conns), rng


def _lava():
    from spikeforge.backends.loihi._lava_compat import import_lava

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    return RunSteps, Loihi2SimCfg, Dense, RingBuffer, LIF, Monitor, SignMode


def lava_build(prog: Program, data: np.ndarray, monitor_steps: int = 0):
    RunSteps, Loihi2SimCfg, Dense, RingBuffer, LIF, Monitor, SignMode = _lava()
    src = RingBuffer(data=data)
    procs = {"in": src}
    for n, p in prog.pops.items():
        procs[n] = LIF(shape=(p.size,), du=p.du, dv=p.dv, vth=p.vth, bias_mant=p.bias_mant, bias_exp=p.bias_exp)
    for c in prog.conns:
        d = Dense(weights=c.weights, weight_exp=c.weight_exp, num_weight_bits=c.num_weight_bits,
                  sign_mode=getattr(SignMode, c.sign_mode.upper()))
        procs[c.src].s_out.connect(d.s_in)
        d.a_out.connect(procs[c.dst].a_in)
    mons = {}
    if monitor_steps:
        for n in prog.pops:
            m = Monitor()
            m.probe(procs[n].s_out, monitor_steps)
            mons[n] = m
    return src, mons


def lava_spikes(mons) -> dict[str, np.ndarray]:
    return {n: np.asarray(next(iter(m.get_data().values()))["s_out"]).astype(bool) for n, m in mons.items()}


def lava_steady(prog: Program, x: np.ndarray, steps: int, repeats: int) -> Timing:
    RunSteps, Loihi2SimCfg = _lava()[:2]
    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    src, _ = lava_build(prog, x[:, 0, :].T.astype(np.int32))     # the RingBuffer cycles through its columns
    try:
        src.run(condition=RunSteps(num_steps=5), run_cfg=cfg)
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            src.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            samples.append(time.perf_counter() - t0)
    finally:
        src.stop()
    return Timing(samples)


def lava_e2e(prog: Program, x: np.ndarray, steps: int) -> dict[str, np.ndarray]:
    """Build + compile + run `steps` + read the monitors (what the end-to-end timing covers)."""
    RunSteps, Loihi2SimCfg = _lava()[:2]
    src, mons = lava_build(prog, x[:steps, 0, :].T.astype(np.int32), monitor_steps=steps)
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        return lava_spikes(mons)
    finally:
        src.stop()


def emu_spikes(res) -> dict[str, np.ndarray]:
    return {k: v[:, 0] for k, v in res.spikes.items()}


def bench_emulator(rep: Report, sizes: list[int], steady: int, steps: int, repeats: int) -> bool:
    ok = True
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)")
    print(f"{'N':>6} | {'Lava steady steps/s':>26} | {'emulator steady steps/s':>28} | ratio (median) | "
          f"{'Lava e2e s':>22} | {'emulator e2e s':>24} | ratio | spikes equal | rates l1/l2")
    for n in sizes:
        prog, rng = build_program(n)
        x = (rng.random((max(steady, steps) + 10, 1, n)) < 0.1).astype(np.int32)
        # emulator first: Lava's runtime leaves the process (threads, memory) busier afterwards
        t_es, res = timeit(lambda p=prog, x=x: run_program(p, {"in": x[:steady]}), repeats=repeats, warmup=2)
        e_steady_spk = emu_spikes(res)

        # fresh programs (same data, nothing prepared yet), generated outside the timing as Lava's weights are
        fresh = [build_program(n)[0] for _ in range(repeats + 1)]

        def fresh_e2e(x=x, fresh=fresh):
            return emu_spikes(run_program(fresh.pop(), {"in": x[:steps]}))

        t_ee, e_e2e_spk = timeit(fresh_e2e, repeats=repeats, warmup=1)
        t_ls = lava_steady(prog, x[:steady + 5], steady, repeats)
        t_le, l_e2e_spk = timeit(lambda p=prog, x=x: lava_e2e(p, x, steps), repeats=repeats, warmup=0)
        l_steady_spk = lava_e2e(prog, x, steady)                 # untimed check of the steady-state run
        same_steady = all(np.array_equal(l_steady_spk[k], e_steady_spk[k]) for k in e_steady_spk)
        same_e2e = all(np.array_equal(l_e2e_spk[k], e_e2e_spk[k]) for k in e_e2e_spk)
        ok &= same_steady and same_e2e
        r_steady = t_ls.median / t_es.median
        r_e2e = t_le.median / t_ee.median
        rates = "/".join(f"{float(np.mean(e_steady_spk[k])):.3f}" for k in sorted(e_steady_spk))
        fmt_rate = lambda t: f"{steady / t.max:,.0f} / {steady / t.median:,.0f} / {steady / t.min:,.0f}"  # noqa: E731
        print(f"{n:>6} | {fmt_rate(t_ls):>26} | {fmt_rate(t_es):>28} | {r_steady:>13.1f}x | "
              f"{t_le.min:.3f}/{t_le.median:.3f}/{t_le.max:.3f} | {t_ee.min:.4f}/{t_ee.median:.4f}/{t_ee.max:.4f} | "
              f"{r_e2e:>4.0f}x | {same_steady and same_e2e} | {rates}")
        rep.rows.append({"bench": "emulator_vs_lava", "N": n, "steady_steps": steady, "e2e_steps": steps,
                         "lava_steady_s": t_ls.to_dict(), "emu_steady_s": t_es.to_dict(),
                         "lava_e2e_s": t_le.to_dict(), "emu_e2e_s": t_ee.to_dict(),
                         "ratio_steady_median": r_steady, "ratio_steady_worst": t_ls.min / t_es.max,
                         "ratio_e2e_median": r_e2e, "spikes_equal_steady": same_steady,
                         "spikes_equal_e2e": same_e2e, "firing_rates": rates})
        if n >= 1000:
            rep.target(f"N={n} steady-state speed-up vs Lava (median of {repeats})", r_steady, 10, unit="x")
            rep.target(f"N={n} end-to-end speed-up vs Lava (median of {repeats})", r_e2e, 100, unit="x")
        rep.target(f"N={n} spikes equal to Lava (steady and end to end)", float(same_steady and same_e2e), 1)
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return ok


CHILD = r"""
import json, resource, sys, time
import numpy as np, nir, torch  # noqa: F401  (imports before the timer: what a CLI run pays anyway)
from spikeforge.pipeline import compile_model
from spikeforge.interfaces import CompileOptions
import spikeforge.backends.loihi  # noqa: F401
kind, arg = sys.argv[1], sys.argv[2]
if kind == "mlp":
    n = int(arg)
    rng = np.random.default_rng(0)
    lif = lambda k: nir.LIF(tau=np.full(k, 0.02), r=np.ones(k), v_leak=np.zeros(k), v_threshold=np.ones(k))
    model = nir.NIRGraph.from_list(nir.Input(input_type=np.array([n])),
                                   nir.Affine(weight=rng.normal(0.2, 1, (n, n)), bias=np.zeros(n)), lif(n),
                                   nir.Output(output_type=np.array([n])))
    model.metadata = {"spikeforge.dt": 1e-3}
else:
    model = arg
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
art = compile_model(model, "loihi2", CompileOptions(dt=1e-3, timesteps=30))
dt = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "peak_mb": peak, "base_mb": base, "synapses": art.meta["mapping"]["synapses"],
                  "cores": art.meta["mapping"]["cores_used"]}))
"""


def compile_once(kind: str, arg: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, kind, arg], capture_output=True, text=True, timeout=600,
                         cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"compile child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_compile(rep: Report, repeats: int, mlp_sizes: list[int]) -> None:
    cases = []
    if CNN.is_file():
        cases.append(("cnn", str(CNN), "cnn_sinabs.nir"))
    else:
        print(f"skipped: {CNN} not found")
    cases += [("mlp", str(n), f"MLP {n}x{n} ({n * n / 1e6:.2f} M synapses)") for n in mlp_sizes]
    print(f"{'model':<34} | {'compile s (min/median/max)':>28} | {'peak RSS MB (median)':>20} | base MB | synapses")
    per_syn = []
    for kind, arg, label in cases:
        runs = [compile_once(kind, arg) for _ in range(repeats)]
        t = Timing([r["seconds"] for r in runs])
        peak = float(np.median([r["peak_mb"] for r in runs]))
        base = float(np.median([r["base_mb"] for r in runs]))
        syn = runs[0]["synapses"]
        print(f"{label:<34} | {t.min:8.3f} / {t.median:8.3f} / {t.max:8.3f} | {peak:>20.0f} | {base:>7.0f} | {syn:,}")
        rep.rows.append({"bench": "compile", "model": label, "seconds": t.to_dict(), "peak_rss_mb": peak,
                         "base_rss_mb": base, "synapses": syn, "cores": runs[0]["cores"]})
        if kind == "cnn":
            rep.target("cnn_sinabs compile time for loihi2 (median)", t.median, 5.0, higher_is_better=False, unit=" s")
            rep.target("cnn_sinabs compile peak RSS", peak, 600.0, higher_is_better=False, unit=" MB")
        else:
            per_syn.append((int(arg) ** 2, t.median, peak - base))
            if int(arg) == 1000:
                rep.target("1 M-synapse MLP compile time (median)", t.median, 3.0, higher_is_better=False, unit=" s")
    if len(per_syn) >= 2:
        (s0, t0, m0), (s1, t1, m1) = per_syn[0], per_syn[-1]
        growth_t = (t1 / t0) / (s1 / s0)
        growth_m = (max(m1, 1) / max(m0, 1)) / (s1 / s0)
        print(f"growth vs linear from {s0:,} to {s1:,} weights: time x{growth_t:.2f}, memory above baseline "
              f"x{growth_m:.2f} (1.0 = linear)")
        rep.target("compile time growth relative to linear (largest / smallest MLP)", growth_t, 1.5,
                   higher_is_better=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--steps", type=int, default=100, help="end-to-end steps")
    ap.add_argument("--steady-steps", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mlp", type=int, nargs="*", default=[500, 707, 1000, 1414],
                    help="MLP layer widths for the compile scaling table (n x n synapses)")
    ap.add_argument("--only", choices=["emulator", "compile"], default=None)
    ap.add_argument("--out", default=None, help="results directory (default: $SPIKEFORGE_BENCH_OUT or a temp dir)")
    args = ap.parse_args(argv)
    rep = Report("bench_loihi")
    ok = True
    if args.only in (None, "emulator"):
        ok = bench_emulator(rep, args.sizes, args.steady_steps, args.steps, args.repeats)
    if args.only in (None, "compile"):
        bench_compile(rep, args.repeats, args.mlp)
    rep.save()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
