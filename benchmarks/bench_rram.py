"""Benchmark of the RRAM LSM backend (run by `make bench`, never by CI).

1. Emulator speed: time steps per second of a 512-neuron reservoir (64 inputs, 4 macros) with every
   non-ideality on at its typical value, batch 1 and 100, against the same emulator ideal.
2. One 512 x 512 analog tile forward (programmed weights; programming noise, variation, stuck
   cells, relaxation, IR drop, read noise, 6-bit ADC), batch 1 and 100, against a plain numpy matmul,
   a plain torch Linear and IBM aihwkit 1.2.0's C++ tile (AnalogLinear with the closest non-idealities,
   its default inference preset, and ideal), all in the same run. aihwkit runs in a subprocess of its
   own venv (.venv-aihwkit, built by benchmarks/aihwkit_setup.sh, which `make bench` calls, or
   $SPIKEFORGE_AIHWKIT_PYTHON); without it the comparison falls back to numpy / torch.
3. Accuracy on sklearn digits as spike trains (zero-shot 200-neuron reservoir): float software vs
   zero-shot with typical non-idealities, and accuracy vs read noise and vs ADC bits.

Timings: warm-up, then 5 samples (min / median / max via benchmarks/_common.py); results JSON outside
the tree (--out DIR or $SPIKEFORGE_BENCH_OUT); a MISSED line when spikeforge is not faster than aihwkit.
The programmed-weight mode (any trained graph) has its own benchmark, bench_rram_programmed.py.

usage: python benchmarks/bench_rram.py [--quick] [--plot docs/rram_curves.png] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, Timing, timeit  # noqa: E402

REPORT = Report("bench_rram")


def _timeit(fn: Callable[[], object], min_time: float = 0.5, repeat: int = 5) -> Timing:
    """Seconds per call over `repeat` timed samples (after a warm-up); each sample runs enough calls to
    last about min_time / repeat, so sub-millisecond calls are not dominated by timer overhead."""
    t0 = time.perf_counter()
    fn()
    n = max(1, int(min_time / repeat / max(time.perf_counter() - t0, 1e-9)))
    t, _ = timeit(lambda: [fn() for _ in range(n)], repeats=repeat, warmup=1)
    return Timing([x / n for x in t.samples])


def bench_emulator(quick: bool) -> None:
    from spikeforge.backends.rram import RRAMBackend, generate
    from spikeforge.backends.rram.device import load_board
    from spikeforge.emulators.rram import RRAMEmulator
    from spikeforge.interfaces import CompileOptions

    board = load_board()
    g = generate(size=512, inputs=64, p_connect=0.1, spectral_radius=0.9, seed=0)
    art = RRAMBackend().lower(g, board, CompileOptions(seed=0, extra={"rram.nonideal": "typical"}))
    T = 20 if quick else 50
    print(f"\n## 1. emulator: 512-neuron reservoir, {art.meta['macros']} macros, T={T}")
    print("| batch | non-idealities | dtype | steps/s | sample-steps/s |")
    print("|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for B in (1, 100):
        x = (rng.random((T, B, 64)) < 0.2).astype(np.float32)
        for ni in ("typical", "off"):
            for dtype in ("float64", "float32"):
                emu = RRAMEmulator(nonideal=ni, dtype=dtype)
                tm = _timeit(lambda emu=emu, x=x: emu.run(art, {"input": x}), min_time=0.3, repeat=3)
                sec = tm.median
                print(f"| {B} | {ni} | {dtype} | {T / sec:,.0f} (min-max {T / tm.max:,.0f}-{T / tm.min:,.0f}) | "
                      f"{T * B / sec:,.0f} |")
                REPORT.rows.append({"part": "emulator", "batch": B, "nonideal": ni, "dtype": dtype,
                                    "seconds_per_run": tm.to_dict(), "steps": T})


def bench_tile(quick: bool) -> None:
    import torch

    from spikeforge.backends.rram.device import NonIdeal, load_board
    from spikeforge.backends.rram.lower import build_tiles
    from spikeforge.emulators.rram import RRAMEmulator, read_tile

    board = load_board()
    rng = np.random.default_rng(1)
    w = rng.normal(0, 1, (256, 512)).astype(np.float32)         # 512 rows x 256 differential pairs
    ni = NonIdeal.typical(board)
    arrays, _ = build_tiles([{"kind": "recurrent", "w": w, "offset": 0}], 256, board, ni, "programmed",
                            {"recurrent": 0.2, "input": 0.2})

    class _Art:  # the emulator's chip() reads only these fields
        pass

    art = _Art()
    art.arrays, art.board, art.meta = arrays, board.name, {"g_off": board.value("physics.g_hrs") / board.value("physics.g_max")}
    tile = RRAMEmulator().chip(art, ni, np.random.default_rng(2))[0]
    tile32 = RRAMEmulator(dtype="float32").chip(art, ni, np.random.default_rng(2))[0]
    lin = torch.nn.Linear(512, 256, bias=False)
    xs = {B: (rng.random((B, 512)) < 0.2).astype(np.float32) for B in (1, 100)}
    print("\n## 2. one 512 x 512 tile forward (512 rows x 256 differential pairs), all non-idealities on")
    print(f"non-idealities: {ni.levels} levels, prog. noise {ni.prog_noise}, d2d {ni.d2d}, relaxation "
          f"{ni.relax_sigma}/decade at {ni.relax_time:g} s, stuck {ni.stuck_lrs}/{ni.stuck_hrs}, IR drop "
          f"r_wire*G_max = {ni.ir_drop:g}, read noise {ni.read_noise}, {ni.adc_bits}-bit ADC; binary inputs, "
          "20 % rows active; torch threads "
          f"{torch.get_num_threads()}")
    aih = _aihwkit_peer(w, xs, ni, quick)
    print("| batch | spikeforge f64 (ms) | spikeforge f32 (ms) | numpy matmul f32 (ms) | torch Linear (ms) "
          "| aihwkit, same effects (ms) | aihwkit default preset (ms) | aihwkit ideal (ms) "
          "| aihwkit / spikeforge f32 | spikeforge f32 / matmul |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    errs = {}
    for B in (1, 100):
        x64 = xs[B].astype(np.float64)
        x32 = xs[B]
        xt = torch.from_numpy(x32)
        wf = tile32.w
        r = np.random.default_rng(3)
        tms = {"sf64": _timeit(lambda x=x64, r=r: read_tile(tile, x, ni.adc_bits, r)),
               "sf32": _timeit(lambda x=x32, r=r: read_tile(tile32, x, ni.adc_bits, r)),
               "matmul": _timeit(lambda x=x32, wf=wf: x @ wf)}
        with torch.no_grad():
            tms["torch"] = _timeit(lambda x=xt: lin(x))
        t_sf, t_sf32, t_mm, t_tl = (tms[k].median for k in ("sf64", "sf32", "matmul", "torch"))
        ideal = x64 @ w.T.astype(np.float64)
        errs[B] = _rel_err(read_tile(tile, x64, ni.adc_bits, np.random.default_rng(4)), ideal)
        cell = ["n/a", "n/a", "n/a"]
        ratio = "n/a"
        row = {"part": "tile", "batch": B, **{k: v.to_dict() for k, v in tms.items()}, "spikeforge_err": errs[B]}
        if aih is not None:
            cell = [f"{aih[c]['ms'][str(B)]:.3f}" for c in ("same", "default", "ideal")]
            ratio = f"{aih['same']['ms'][str(B)] / (t_sf32 * 1e3):.1f}x"
            row.update(aihwkit={c: {"ms": aih[c]["ms"][str(B)], "err": aih[c]["err"][str(B)]}
                                for c in ("same", "default", "ideal")})
            REPORT.target(f"tile forward batch {B}: aihwkit (same effects) / spikeforge f32 time",
                          aih["same"]["ms"][str(B)] / (t_sf32 * 1e3), 1.0)
        REPORT.rows.append(row)
        print(f"| {B} | {t_sf * 1e3:.3f} | {t_sf32 * 1e3:.3f} | {t_mm * 1e3:.3f} | {t_tl * 1e3:.3f} | "
              f"{' | '.join(cell)} | {ratio} | {t_sf32 / t_mm:.1f}x |")
    print("\nrelative output error ||y - x W|| / ||x W|| (shows the non-idealities are on): "
          + ", ".join(f"spikeforge B={B}: {e:.3f}" for B, e in errs.items())
          + ("" if aih is None else ", " + ", ".join(
              f"aihwkit {c} B={B}: {aih[c]['err'][str(B)]:.3f}" for c in ("same", "default", "ideal") for B in (1, 100))))
    if aih is None:
        print("aihwkit: not measured in this run (build it with `bash benchmarks/aihwkit_setup.sh`, which "
              "`make bench` runs). Issue 8's planning measurement on another machine: 0.20 ms / 11 ms.")


def _rel_err(y: np.ndarray, ideal: np.ndarray) -> float:
    return float(np.linalg.norm(y - ideal) / np.linalg.norm(ideal))


def _aihwkit_python() -> str | None:
    """The aihwkit venv's interpreter: $SPIKEFORGE_AIHWKIT_PYTHON, else .venv-aihwkit in the repository."""
    import os
    from pathlib import Path

    env = os.environ.get("SPIKEFORGE_AIHWKIT_PYTHON")
    if env:
        return env
    py = Path(__file__).resolve().parents[1] / ".venv-aihwkit" / "bin" / "python"
    return str(py) if py.exists() else None


def _aihwkit_peer(w: np.ndarray, xs: dict[int, np.ndarray], ni: object, quick: bool) -> dict | None:
    """Time aihwkit's C++ analog tile on the same weights and inputs, in a subprocess of its own venv.

    aihwkit lives in a separate venv (benchmarks/aihwkit_setup.sh): it is a peer, not a dependency,
    and the process boundary keeps its torch and OpenBLAS apart from ours. Returns
    {config: {"ms": {batch: ms}, "err": {batch: relative error}}} or None when it is not available.
    """
    import json
    import subprocess
    import tempfile
    from pathlib import Path

    py = _aihwkit_python()
    if py is None:
        print("aihwkit: no .venv-aihwkit (run `bash benchmarks/aihwkit_setup.sh`)")
        return None
    with tempfile.TemporaryDirectory() as d:
        np.save(Path(d) / "w.npy", w)
        for B, x in xs.items():
            np.save(Path(d) / f"x{B}.npy", x)
        cfg = {"read_noise": ni.read_noise, "adc_bits": ni.adc_bits, "ir_drop": ni.ir_drop,
               "relax_time": ni.relax_time, "batches": sorted(xs), "min_time": 0.2 if quick else 0.5}
        (Path(d) / "cfg.json").write_text(json.dumps(cfg))
        try:
            p = subprocess.run([py, str(Path(__file__).resolve()), "--aihwkit-worker", d],
                               capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"aihwkit: could not run {py}: {e}")
            return None
        if p.returncode != 0:
            tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
            print(f"aihwkit: worker failed (exit {p.returncode}): {' / '.join(tail)}")
            return None
        res = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"aihwkit {res.pop('version')} (torch {res.pop('torch')}), separate venv {py}")
    return res


def aihwkit_worker(d: str) -> None:
    """Runs inside the aihwkit venv (no spikeforge there): time AnalogLinear forwards, print JSON."""
    import json
    from pathlib import Path

    import aihwkit
    import torch
    from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator.configs import InferenceRPUConfig
    from aihwkit.simulator.parameters.enums import BoundManagementType, WeightNoiseType

    cfg = json.loads((Path(d) / "cfg.json").read_text())
    w = torch.from_numpy(np.load(Path(d) / "w.npy"))
    xs = {B: torch.from_numpy(np.load(Path(d) / f"x{B}.npy")) for B in cfg["batches"]}
    ideal = {B: (x.double() @ w.double().T).numpy() for B, x in xs.items()}
    torch.manual_seed(0)

    def same() -> InferenceRPUConfig:
        # the emulator's typical effects, as far as aihwkit has them: ReRAM programming noise and
        # relaxation (Wan et al. 2022 model, programmed then read after 1 day), per-read
        # conductance-dependent noise (PCM_READ: scales with each cell's current), first-order IR drop
        # with the same r_wire * G_max, the same ADC bits with clipping (no bound management re-reads),
        # no extra output noise (the emulator has none). Binary inputs: the DAC is exact at any bits.
        c = InferenceRPUConfig()
        c.noise_model = ReRamWan2022NoiseModel()
        f = c.forward
        f.w_noise_type, f.w_noise = WeightNoiseType.PCM_READ, cfg["read_noise"]
        f.ir_drop, f.ir_drop_g_ratio = 1.0, 1.0 / cfg["ir_drop"]
        f.out_res = 1.0 / (2 ** cfg["adc_bits"] - 2)
        f.out_noise = 0.0
        f.bound_management = BoundManagementType.NONE
        return c

    def ideal_cfg() -> InferenceRPUConfig:
        c = InferenceRPUConfig()
        c.forward.is_perfect = True
        return c

    out: dict = {"version": aihwkit.__version__, "torch": torch.__version__}
    for name, make in (("same", same), ("default", InferenceRPUConfig), ("ideal", ideal_cfg)):
        m = AnalogLinear(512, w.shape[0], bias=False, rpu_config=make())
        m.set_weights(w)
        m.eval()
        if name != "ideal":
            # Wan et al.'s ReRAM fit exists only at 1 s, 1 day and 2 days: read it after 1 day
            m.program_analog_weights()
            m.drift_analog_weights(86400.0 if name == "same" else cfg["relax_time"])
        ms, err = {}, {}
        with torch.no_grad():
            for B, x in xs.items():
                ms[str(B)] = _timeit(lambda m=m, x=x: m(x), min_time=cfg["min_time"]).median * 1e3
                err[str(B)] = _rel_err(m(x).double().numpy(), ideal[B])
        out[name] = {"ms": ms, "err": err}
    print(json.dumps(out))


def bench_accuracy(quick: bool, plot: str | None) -> None:
    from spikeforge.backends.rram import RRAMBackend, fit_readout, generate
    from spikeforge.backends.rram import readout as R
    from spikeforge.backends.rram.device import NonIdeal, load_board
    from spikeforge.backends.rram.tasks import digits_spikes
    from spikeforge.emulators.rram import RRAMEmulator
    from spikeforge.interfaces import CompileOptions
    from spikeforge.refsim import simulate

    board = load_board()
    xtr, ytr, xte, yte = digits_spikes(30, limit=800 if quick else None)
    g = generate(size=200, inputs=64, p_connect=0.1, spectral_radius=0.9, seed=1)

    def f_sw(x: np.ndarray) -> np.ndarray:
        return R.rates(simulate(g, x, probes=True).activity["lif"])

    ro = R.train(f_sw(xtr), ytr, "ridge", classes=10)
    sw = R.accuracy(ro, f_sw(xte), yte)
    art = RRAMBackend().lower(g, board, CompileOptions(seed=3, extra={"rram.mode": "zero_shot"}))

    def hw(ni: object, seed: int = 0) -> float:
        emu = RRAMEmulator(nonideal=ni, seed=seed)
        r = fit_readout(art, xtr, ytr, emulator=emu)
        return R.accuracy(r, R.rates(emu.run(art, xte, probes=True).states["lif.spikes"]), yte)

    typical = NonIdeal.typical(board)
    print(f"\n## 3. digits as spike trains (T=30, {xtr.shape[1]} train / {xte.shape[1]} test), 200-neuron LSM")
    print(f"float software reservoir: {sw:.3f}")
    print(f"zero-shot, ideal read:    {hw('off'):.3f}")
    print(f"zero-shot, typical non-idealities ({typical.adc_bits}-bit ADC, read noise {typical.read_noise}): "
          f"{hw(typical):.3f}")
    noises = [0.0, 0.02, 0.05, 0.1, 0.2, 0.4] if not quick else [0.0, 0.05, 0.2]
    bits = [2, 3, 4, 5, 6, 8] if not quick else [2, 4, 6]
    from dataclasses import fields, replace

    seeds = (0,) if quick else (0, 1, 2)               # chip instances averaged per point

    def curve(nis: list[NonIdeal]) -> tuple[list[float], list[float]]:
        acc = np.array([[hw(n, s) for s in seeds] for n in nis])
        return list(acc.mean(axis=1)), list(acc.std(axis=1))

    base = replace(typical, read_noise=0.0)
    acc_n, sd_n = curve([replace(base, read_noise=n) for n in noises])
    acc_b, sd_b = curve([replace(typical, adc_bits=b) for b in bits])
    print(f"\nother non-idealities at their typical values; mean +- std over {len(seeds)} chip instance(s)")
    print("\n| read noise (relative, per cell per read) | " + " | ".join(f"{n:g}" for n in noises) + " |")
    print("|---|" + "---|" * len(noises))
    print("| accuracy | " + " | ".join(f"{a:.3f} +- {d:.3f}" for a, d in zip(acc_n, sd_n)) + " |")
    print("\n| ADC bits | " + " | ".join(str(b) for b in bits) + " |")
    print("|---|" + "---|" * len(bits))
    print("| accuracy | " + " | ".join(f"{a:.3f} +- {d:.3f}" for a, d in zip(acc_b, sd_b)) + " |")
    print("\neach non-ideality alone (typical value; stuck cells also at 10 %)")
    print("| non-ideality | accuracy |\n|---|---|")
    alone = [(f.name, getattr(typical, f.name)) for f in fields(NonIdeal) if f.name not in ("levels", "relax_time")]
    alone.append(("stuck_lrs", 0.1))
    alone.append(("stuck_hrs", 0.1))
    for name, val in alone:
        extra = {"relax_time": typical.relax_time} if name == "relax_sigma" else {}
        print(f"| {name} = {val:g} | {hw(NonIdeal(**{name: val}, **extra)):.3f} |")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        ax[0].errorbar(noises, acc_n, yerr=sd_n, fmt="o-", label="zero-shot RRAM")
        ax[0].axhline(sw, ls="--", c="gray", label="float software")
        ax[0].set_xlabel("read noise (relative std per cell)")
        ax[0].set_ylabel("test accuracy")
        ax[0].legend()
        ax[1].errorbar(bits, acc_b, yerr=sd_b, fmt="o-")
        ax[1].axhline(sw, ls="--", c="gray")
        ax[1].set_xlabel("column ADC bits")
        fig.suptitle("200-neuron zero-shot LSM on digits spike trains (other non-idealities typical)")
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        print(f"plot written to {plot}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller runs (a smoke test of the benchmark)")
    ap.add_argument("--plot", default=None, help="write the accuracy curves as a PNG")
    ap.add_argument("--skip", default="", help="comma list of parts to skip: emulator,tile,accuracy")
    ap.add_argument("--out", default=None, help="results directory (see _common.out_dir)")
    ap.add_argument("--aihwkit-worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.aihwkit_worker:
        aihwkit_worker(a.aihwkit_worker)
        return
    skip = set(filter(None, a.skip.split(",")))
    print("# bench_rram")
    if "emulator" not in skip:
        bench_emulator(a.quick)
    if "tile" not in skip:
        bench_tile(a.quick)
    if "accuracy" not in skip:
        bench_accuracy(a.quick, a.plot)
    REPORT.save()


if __name__ == "__main__":
    main()
