"""Benchmark of the RRAM programmed-weight mode (run by `make bench`, never by CI).

1. Accuracy vs noise for the bundled digits SNN on the NeuRRAM-like board: the float vs programmed-weight
   accuracy gap as a function of the write-verify residual (multiples of the published Wan et al. 2022
   distribution) and of the column ADC bits, each with and without per-column gain calibration, every
   other effect at its default; mean and std over chip instances (seeds). `--plot` writes the curve.
2. One programmed 256 x 256 core MVM (256 rows x 128 differential pairs; binary inputs, 20 % active)
   against IBM aihwkit 1.2.0's AnalogLinear with matched settings: the same Wan 2022 programming
   residual (read 1 s after programming), no levels, 8-bit ADC, 1 % read noise, no IR drop; output error
   ||y - xW|| / ||xW|| and time per call side by side (aihwkit in its own venv, see bench_rram.py).

usage: python benchmarks/bench_rram_programmed.py [--quick] [--plot docs/rram_programmed_curve.png] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report  # noqa: E402

BOARD = "rram-neurram-48x256"


def accuracy_curve(rep: Report, quick: bool, plot: str | None) -> None:
    from spikeforge import models
    from spikeforge.emulators.rram_graph import GraphEmulator
    from spikeforge.inputs import load_inputs
    from spikeforge.interfaces import CompileOptions
    from spikeforge.metrics import expected_accuracy
    from spikeforge.npzio import load_npz
    from spikeforge.pipeline import compile_model
    from spikeforge.refsim import simulate
    from spikeforge.verify import scores

    data = load_npz(models.path("digits_inputs.npz"))
    path = models.path("digits_snn.nir")
    seeds = (0,) if quick else (0, 1, 2)
    base = compile_model(path, BOARD, CompileOptions(timesteps=25, extra={"rram.noise": "off"}), calibration=data)
    inputs, labels = load_inputs(models.path("digits_inputs.npz"), base.reference)
    acc_float = expected_accuracy(scores(simulate(base.reference, inputs).outputs), labels)   # verify's accuracy

    def acc(extra: dict, seed: int) -> tuple[float, float]:
        art = compile_model(path, BOARD, CompileOptions(timesteps=25, seed=seed, extra=dict(extra)), calibration=data)
        out = []
        for cal in (False, True):
            tr = GraphEmulator(calibrated=cal).run(art, inputs)
            out.append(expected_accuracy(scores(tr.outputs), labels))
        return out[0], out[1]

    sweeps = {
        "prog_noise": [0.0, 1.0, 2.0, 4.0] if quick else [0.0, 0.5, 1.0, 2.0, 3.0, 4.0],
        "adc_bits": [3, 5, 8] if quick else [3, 4, 5, 6, 8, 10],
    }
    curves: dict[str, dict[str, list[float]]] = {}
    print(f"\n## 1. digits SNN on {BOARD}: accuracy vs noise (float model {acc_float:.4f}; "
          f"{inputs['input'].shape[1]} samples, {len(seeds)} chip instance(s) per point)")
    for key, values in sweeps.items():
        res = np.array([[acc({f"rram.{key}": v}, s) for s in seeds] for v in values])     # (values, seeds, 2)
        curves[key] = {"values": list(map(float, values)), "raw_mean": list(res[:, :, 0].mean(1)),
                       "raw_std": list(res[:, :, 0].std(1)), "cal_mean": list(res[:, :, 1].mean(1)),
                       "cal_std": list(res[:, :, 1].std(1))}
        print(f"\n| {key} | " + " | ".join(f"{v:g}" for v in values) + " |")
        print("|---|" + "---|" * len(values))
        c = curves[key]
        print("| accuracy, no calibration | " + " | ".join(f"{m:.3f} +- {d:.3f}" for m, d in
                                                        zip(c["raw_mean"], c["raw_std"])) + " |")
        print("| accuracy, per-column gain calibration | " + " | ".join(f"{m:.3f} +- {d:.3f}" for m, d in
                                                                      zip(c["cal_mean"], c["cal_std"])) + " |")
        for v, m0, m1 in zip(values, c["raw_mean"], c["cal_mean"]):
            rep.rows.append({"part": "accuracy", "sweep": key, "value": float(v), "acc_float": acc_float,
                             "acc_raw": float(m0), "acc_calibrated": float(m1)})
    i = curves["prog_noise"]["values"].index(1.0)
    rep.target("digits SNN accuracy gap at the published programming noise (calibrated)",
               acc_float - curves["prog_noise"]["cal_mean"][i], 0.01, higher_is_better=False)
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(1, 2, figsize=(9, 3.4))
        for a, key, label in ((ax[0], "prog_noise", "write-verify residual (x Wan et al. 2022)"),
                              (ax[1], "adc_bits", "column ADC bits")):
            c = curves[key]
            a.errorbar(c["values"], c["raw_mean"], yerr=c["raw_std"], fmt="o-", label="programmed")
            a.errorbar(c["values"], c["cal_mean"], yerr=c["cal_std"], fmt="s-", label="+ per-column gain calibration")
            a.axhline(acc_float, ls="--", c="gray", label="float model")
            a.set_xlabel(label)
        ax[0].set_ylabel("test accuracy")
        ax[0].legend(fontsize=8)
        fig.suptitle(f"bundled digits SNN on {BOARD}, other effects at their defaults")
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        print(f"plot written to {plot}")


def core_mvm(rep: Report, quick: bool) -> None:
    from bench_rram import _timeit
    from threadpoolctl import threadpool_limits

    from spikeforge.backends.rram import xbar as X
    from spikeforge.boards import get_board

    b = get_board(BOARD)
    rng = np.random.default_rng(1)
    w = rng.normal(0, 1, (128, 256))
    w = (w / np.abs(w).max(axis=1, keepdims=True)).astype(np.float32)     # equal column peaks: per-column
    M = w.T.astype(np.float64)                                            # scale == per-tile scale (aihwkit)
    g_off = b.value("physics.g_hrs") / b.value("physics.g_max")
    fx = X.Effects(prog_noise=1.0, drift_time=0.0, drift_nu=b.value("parameters.drift_nu"), read_noise=0.01,
                   adc_bits=8)
    gp, gn, ws = X.targets(M, g_off, None)
    wt = ws * (gp - gn)
    fs = X.adc_full_scale(gp - gn, 0.2, float(b.value("parameters.adc_clip_sigma")))
    tile = X.chip_tile((0, 256, 0, 128), ws, fs, wt, gp, gn, fx, np.random.default_rng(2), np.dtype(np.float64))[0]
    xs = {B: (rng.random((B, 256)) < 0.2).astype(np.float64) for B in (1, 100)}
    peer = _aihwkit(w, xs, quick)
    print(f"\n## 2. one {BOARD} core MVM (256 rows x 128 pairs), matched effects: Wan 2022 programming residual at "
          "1 s, no levels, 1 % read noise, 8-bit ADC, no IR drop; binary inputs, 20 % active")
    print("| batch | spikeforge (ms) | spikeforge error | aihwkit (ms) | aihwkit error | aihwkit / spikeforge |")
    print("|---|---|---|---|---|---|")
    for B, x in xs.items():
        r = np.random.default_rng(3)
        with threadpool_limits(1):      # one thread on both sides: a 256 x 128 MVM is too small to share
            t = _timeit(lambda x=x, r=r: X.read(tile, x, fx, 1.0, r), min_time=0.3, repeat=3 if quick else 7)
        y = X.read(tile, x, fx, 1.0, r)
        err = float(np.linalg.norm(y - x @ M) / np.linalg.norm(x @ M))
        row = {"part": "core_mvm", "batch": B, "spikeforge_ms": t.to_dict(), "spikeforge_err": err}
        cell = "n/a | n/a | n/a"
        if peer is not None:
            pm, pe = peer["ms"][str(B)], peer["err"][str(B)]
            row.update(aihwkit_ms=pm, aihwkit_err=pe)
            cell = f"{pm['median']:.3f} | {pe:.3f} | {pm['median'] / (t.median * 1e3):.1f}x"
            rep.target(f"core MVM batch {B}: spikeforge faster than aihwkit (median ratio)",
                       pm["median"] / (t.median * 1e3), 1.0)
        print(f"| {B} | {t.median * 1e3:.3f} ({t.fmt('s')}) | {err:.3f} | {cell} |")
        rep.rows.append(row)
    if peer is None:
        rep.notes.append("aihwkit not available in this run: no peer timing for the programmed core MVM")


def _aihwkit(w: np.ndarray, xs: dict[int, np.ndarray], quick: bool) -> dict | None:
    import json
    import subprocess
    import tempfile

    from bench_rram import _aihwkit_python

    py = _aihwkit_python()
    if py is None:
        print("aihwkit: no .venv-aihwkit (run `bash benchmarks/aihwkit_setup.sh`, which `make bench` does)")
        return None
    with tempfile.TemporaryDirectory() as d:
        np.save(Path(d) / "w.npy", w)
        for B, x in xs.items():
            np.save(Path(d) / f"x{B}.npy", x.astype(np.float32))
        (Path(d) / "cfg.json").write_text(json.dumps({"batches": sorted(xs), "repeats": 3 if quick else 7}))
        try:
            p = subprocess.run([py, str(Path(__file__).resolve()), "--aihwkit-worker", d], capture_output=True,
                               text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            print(f"aihwkit: could not run {py}: {e}")
            return None
        if p.returncode != 0:
            print(f"aihwkit: worker failed (exit {p.returncode}): {(p.stderr or p.stdout).strip()[-300:]}")
            return None
        return json.loads(p.stdout.strip().splitlines()[-1])


def aihwkit_worker(d: str) -> None:
    """Inside the aihwkit venv: program the matrix with the Wan 2022 ReRAM model, read at 1 s, time reads."""
    import json
    import time

    import torch
    from aihwkit.inference.noise.reram import ReRamWan2022NoiseModel
    from aihwkit.nn import AnalogLinear
    from aihwkit.simulator.configs import InferenceRPUConfig
    from aihwkit.simulator.parameters.enums import BoundManagementType, WeightNoiseType

    cfg = json.loads((Path(d) / "cfg.json").read_text())
    torch.set_num_threads(1)                     # the same single thread spikeforge is timed on
    w = torch.from_numpy(np.load(Path(d) / "w.npy"))
    c = InferenceRPUConfig()
    c.noise_model = ReRamWan2022NoiseModel()
    c.forward.w_noise_type, c.forward.w_noise = WeightNoiseType.ADDITIVE_CONSTANT, 0.01
    c.forward.out_res = 1.0 / (2 ** 8 - 2)
    c.forward.out_noise = 0.0
    c.forward.bound_management = BoundManagementType.NONE
    torch.manual_seed(0)
    m = AnalogLinear(w.shape[1], w.shape[0], bias=False, rpu_config=c)
    m.set_weights(w)
    m.eval()
    m.program_analog_weights()
    m.drift_analog_weights(1.0)                  # the 1-s fit: the distribution our prog_noise=1 draws
    out: dict = {"ms": {}, "err": {}}
    with torch.no_grad():
        for B in cfg["batches"]:
            x = torch.from_numpy(np.load(Path(d) / f"x{B}.npy"))
            ideal = (x.double() @ w.double().T).numpy()
            y = m(x)
            t0 = time.perf_counter()
            m(x)
            n = max(1, int(0.3 / cfg["repeats"] / max(time.perf_counter() - t0, 1e-9)))   # calls per sample
            samples = []
            for _ in range(cfg["repeats"]):
                t0 = time.perf_counter()
                for _ in range(n):
                    m(x)
                samples.append((time.perf_counter() - t0) * 1e3 / n)
            out["ms"][str(B)] = {"min": min(samples), "median": float(np.median(samples)), "max": max(samples)}
            out["err"][str(B)] = float(np.linalg.norm(y.double().numpy() - ideal) / np.linalg.norm(ideal))
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--plot", default=None, help="write the accuracy-vs-noise curve as a PNG")
    ap.add_argument("--skip", default="", help="comma list: accuracy,mvm")
    ap.add_argument("--out", default=None, help="results directory (see _common.out_dir)")
    ap.add_argument("--aihwkit-worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.aihwkit_worker:
        aihwkit_worker(a.aihwkit_worker)
        return
    rep = Report("bench_rram_programmed")
    skip = set(filter(None, a.skip.split(",")))
    if "accuracy" not in skip:
        accuracy_curve(rep, a.quick, a.plot)
    if "mvm" not in skip:
        core_mvm(rep, a.quick)
    rep.save()


if __name__ == "__main__":
    main()
