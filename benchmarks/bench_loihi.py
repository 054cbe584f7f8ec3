#!/usr/bin/env python3
"""Loihi emulator vs Lava 0.10.0 fixed_pt (CPU), same program, same run, steps per second.

Network (as in issue 5): RingBuffer -> Dense -> LIF -> Dense -> LIF, N neurons per layer, N = 100 and 1000.
* steady state: Lava after a 5-step warm-up run (compile and process start-up excluded), median of 3
  timed runs of STEPS steps; emulator: median of 15 timed runs of STEPS steps on a prepared program
  (batch 1; one emulator run lasts ~1/20 of a Lava run, so more of them cover a comparable stretch of a
  shared machine's load).
* end to end: build the processes + compile + run 100 steps + read two spike monitors (Lava), vs preparing
  a fresh program (weight tables) and running it with the spikes of both layers returned (emulator, median
  of 5 fresh programs); the weight matrices themselves are generated outside the timed region on both sides.
Both sides are checked to produce identical spikes. Prints the ratios; targets: >= 10x steady state,
>= 100x end to end. Run by `make bench`, never by CI.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from spikeforge.emulators.loihi import Conn, Pop, Program, run_program


def build_program(n: int, seed: int = 0) -> tuple[Program, np.ndarray]:
    rng = np.random.default_rng(seed)
    # thresholds scaled with fan-in so both layers fire at a few to ~10 % per step (printed)
    vth = {1: 15 * n, 2: 20 * n}
    pops = {f"l{k}": Pop(name=f"l{k}", size=n, du=3000, dv=400, vth=vth[k], bias_mant=np.zeros(n, int),
                         bias_exp=np.zeros(n, int)) for k in (1, 2)}
    conns = [Conn(name="c1", src="in", dst="l1", weights=rng.integers(-60, 100, (n, n)), weight_exp=0),
             Conn(name="c2", src="l1", dst="l2", weights=rng.integers(-60, 100, (n, n)), weight_exp=0)]
    return Program(inputs={"in": n}, pops=pops, conns=conns), rng


def lava_run(prog: Program, x: np.ndarray, steps: int, warmup: int,
             repeats: int = 3) -> tuple[float, float, dict[str, np.ndarray]]:
    """(steady steps/s, end-to-end seconds for `steps` incl. monitors, spikes)"""
    from spikeforge.backends.loihi._lava_compat import import_lava

    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.source import RingBuffer
    from lava.proc.lif.process import LIF
    from lava.proc.monitor.process import Monitor
    from lava.utils.weightutils import SignMode

    def build(data):
        src = RingBuffer(data=data)
        procs = {"in": src}
        for n, p in prog.pops.items():
            procs[n] = LIF(shape=(p.size,), du=p.du, dv=p.dv, vth=p.vth, bias_mant=p.bias_mant, bias_exp=p.bias_exp)
        for c in prog.conns:
            d = Dense(weights=c.weights, weight_exp=c.weight_exp, num_weight_bits=c.num_weight_bits,
                      sign_mode=getattr(SignMode, c.sign_mode.upper()))
            procs[c.src].s_out.connect(d.s_in)
            d.a_out.connect(procs[c.dst].a_in)
        return src, procs

    cfg = Loihi2SimCfg(select_tag="fixed_pt")
    # steady state
    data = x[:, 0, :].T.astype(np.int32)          # the RingBuffer cycles through its columns
    src, _ = build(data)
    try:
        src.run(condition=RunSteps(num_steps=warmup), run_cfg=cfg)
        rates = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            src.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            rates.append(steps / (time.perf_counter() - t0))
        steady = float(np.median(rates))
    finally:
        src.stop()
    # end to end with two spike monitors
    t0 = time.perf_counter()
    src, procs = build(data)
    mons = {}
    for n in prog.pops:
        m = Monitor()
        m.probe(procs[n].s_out, steps)
        mons[n] = m
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        spikes = {n: next(iter(m.get_data().values()))["s_out"] for n, m in mons.items()}
    finally:
        src.stop()
    e2e = time.perf_counter() - t0
    return steady, e2e, spikes


def emu_run(n: int, x: np.ndarray, steps: int) -> tuple[float, float, dict[str, np.ndarray]]:
    prog, _ = build_program(n)
    run_program(prog, {"in": x[:5]})                                   # prepare tables, warm BLAS threads
    rates = []
    for _ in range(15):
        t0 = time.perf_counter()
        run_program(prog, {"in": x[:steps]})
        rates.append(steps / (time.perf_counter() - t0))
    steady = float(np.median(rates))
    times = []
    for _ in range(5):                                                # median of 5, each on a fresh program
        fresh, _ = build_program(n)                                   # same data, nothing prepared yet
        t0 = time.perf_counter()
        res = run_program(fresh, {"in": x[:steps]})
        spikes = {k: v[:, 0].astype(np.float64) for k, v in res.spikes.items()}
        times.append(time.perf_counter() - t0)
    return steady, float(np.median(times)), spikes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--steady-steps", type=int, default=300)
    args = ap.parse_args(argv)
    # both sides are CPU-bound on a shared machine: the load decides the absolute numbers (and the ratios)
    print("load average before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} CPUs)")
    print(f"{'N':>6} {'lava steady':>12} {'emu steady':>12} {'ratio':>7} | {'lava e2e s':>10} {'emu e2e s':>10} "
          f"{'ratio':>7} | spikes equal, firing rate l1/l2")
    ok = True
    for n in args.sizes:
        prog, rng = build_program(n)
        total = max(args.steps, args.steady_steps) + 10
        x = (rng.random((total, 1, n)) < 0.1).astype(np.int32)
        # emulator first: Lava's runtime leaves the process (threads, memory) busier afterwards
        e_steady, _, _ = emu_run(n, x, args.steady_steps)
        _, e_e2e, e_spk = emu_run(n, x, args.steps)
        l_steady, _, _ = lava_run(prog, x[: args.steady_steps + 5], args.steady_steps, 5)
        _, l_e2e, l_spk = lava_run(prog, x[: args.steps], args.steps, 1, repeats=1)
        same = all(np.array_equal(l_spk[k].astype(bool), e_spk[k].astype(bool)) for k in e_spk)
        ok &= same
        rates = "/".join(f"{float(np.mean(e_spk[k])):.3f}" for k in sorted(e_spk))
        print(f"{n:>6} {l_steady:>10.0f}/s {e_steady:>10.0f}/s {e_steady / l_steady:>6.1f}x | {l_e2e:>10.3f} "
              f"{e_e2e:>10.4f} {l_e2e / e_e2e:>6.0f}x | {same}, {rates}")
    print("load average after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    print("targets (issue 5): >= 10x steady state, >= 100x end to end; spikes must be equal")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
