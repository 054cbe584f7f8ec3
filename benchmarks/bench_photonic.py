#!/usr/bin/env python3
"""Photonic DFA benchmark: (1) accuracy of optical DFA vs digital DFA vs backprop on sklearn digits,
(2) projection speed of spikeforge's OPU emulator vs lightonml's simulated OPU, measured in the same run,
(3) a small conv net (Conv2d 8x3x3 -> SumPool 2 -> 64 -> 10) compiled with conv=backprop and conv=freeze.

lightonml does not install cleanly beside current packages, so it runs in its own scratch venv
(`--lightonml-python`, default $LIGHTONML_PYTHON or /tmp/spikeforge-lightonml/bin/python, created when
missing unless --no-venv: setuptools<81, numpy<2, numexpr, attrs, requests, then lightonml --no-deps). Where it cannot run,
the peer is a plain torch complex matmul (always measured too) and the report says so.

    python benchmarks/bench_photonic.py                 # both parts, 10k -> 10k batch 64, 3 seeds
    python benchmarks/bench_photonic.py --quick         # 2k -> 2k, 1 seed, 8 epochs
    python benchmarks/bench_photonic.py --skip-accuracy --skip-speed --json /tmp/conv.json   # conv part only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import nir
import numpy as np
import torch

from spikeforge.backends.photonic.dfa import (
    Feedback,
    LayerSpec,
    MLPTrainer,
    OpticalFeedback,
    fit,
)
from spikeforge.emulators.opu import CameraConfig, LinearProjector, OPUConfig, OPUDevice
from spikeforge.threads import torch_single_thread

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Report, out_dir  # noqa: E402

DEFAULT_VENV = Path("/tmp/spikeforge-lightonml")


# ---- accuracy ------------------------------------------------------------------------------------
def digits_split(seed: int = 0) -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    tr, te = perm[:1200], perm[1200:]
    return x[tr], y[tr], x[te], y[te]


def layers_for(hidden: list[int]) -> tuple[list[LayerSpec], int]:
    dims, layers, off = [64, *hidden, 10], [], 0
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        layers.append(LayerSpec(f"fc{i}", np.zeros((dims[i + 1], dims[i]), np.float32), np.zeros(dims[i + 1], np.float32),
                                act="none" if last else "relu", role="output" if last else "dfa", offset=off))
        off += 0 if last else dims[i + 1]
    return layers, off


METHODS = {
    "backprop": None,
    "digital DFA (float error, Gaussian B)": "dfa",
    "optical DFA (8-bit camera, stochastic ternary error)": {},
    "optical DFA, threshold ternarisation (0.25 x max|e|)": {"mode": "threshold", "threshold": 0.25},
    "optical DFA, ideal camera (float mode)": {"camera": CameraConfig(float_mode=True)},
}


def accuracy_part(seeds: list[int], hidden: list[int], epochs: int, lr: float) -> dict:
    data = digits_split()
    rows = {}
    for name, how in METHODS.items():
        accs, frames, vectors = [], [], []
        t0 = time.perf_counter()
        for s in seeds:
            layers, width = layers_for(hidden)
            if how is None:
                fb, method = None, "bp"
            elif how == "dfa":
                fb, method = Feedback(10, width, seed=s + 100), "dfa"
            else:
                fb, method = OpticalFeedback(10, width, seed=s + 100, macro=75, n_anchor=5, **how), "odfa"
            trainer = MLPTrainer(layers, method, seed=s, lr=lr, feedback=fb)
            r = fit(trainer, data[0], data[1], epochs=epochs, seed=s, x_test=data[2], y_test=data[3])
            accs.append(r["accuracy"])
            if isinstance(fb, OpticalFeedback):
                frames.append(fb.frames / epochs)
                vectors.append(fb.vectors / (epochs * len(data[0])))
        rows[name] = {"acc": accs, "mean": float(np.mean(accs)), "seconds": time.perf_counter() - t0,
                      "frames_per_epoch": float(np.mean(frames)) if frames else None,
                      "live_vector_fraction": float(np.mean(vectors)) if vectors else None}
        print(f"  {name:55s} {100 * np.mean(accs):6.2f} %  seeds {[round(100 * a, 1) for a in accs]}", flush=True)
    return rows


# ---- convolutional front end ---------------------------------------------------------------------
def conv_graph(ch: int = 8, hidden: int = 64, seed: int = 0) -> nir.NIRGraph:
    """(1, 8, 8) -> Conv2d 3x3 (ch, padding 1) -> IF -> SumPool 2x2 -> Flatten -> Affine(hidden) -> IF -> Affine(10)."""
    rng = np.random.default_rng(seed)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 1 / 3, (ch, 1, 3, 3)).astype(np.float32),
                           stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(ch, np.float32)),
        "n0": nir.IF(r=np.ones((ch, 8, 8)), v_threshold=np.ones((ch, 8, 8))),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([ch, 4, 4])}, start_dim=0, end_dim=-1),
        "fc0": nir.Affine(weight=rng.normal(0, 0.1, (hidden, ch * 16)).astype(np.float32),
                          bias=np.zeros(hidden, np.float32)),
        "n1": nir.IF(r=np.ones(hidden), v_threshold=np.ones(hidden)),
        "fc1": nir.Affine(weight=rng.normal(0, 0.1, (10, hidden)).astype(np.float32), bias=np.zeros(10, np.float32)),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    order = ["input", "conv", "n0", "pool", "flat", "fc0", "n1", "fc1", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata={"spikeforge.dt": 1e-3})


def conv_part(seeds: list[int], epochs: int) -> dict:
    """conv=backprop vs conv=freeze (the graph's random conv weights as a fixed extractor), each trained with
    optical DFA, digital DFA and backprop; the compiled program's own data split (1204 train / 593 test)."""
    from spikeforge.backends.photonic import PhotonicBackend
    from spikeforge.backends.photonic.lower import make_feedback, make_trainer
    from spikeforge.boards import get_board
    from spikeforge.interfaces import CompileOptions

    board = get_board("lighton-opu")
    rows: dict = {}
    for pol in ("backprop", "freeze"):
        for method in ("odfa", "dfa", "bp"):
            accs, frames = [], []
            for s in seeds:
                art = PhotonicBackend().lower(conv_graph(), board, CompileOptions(seed=s, extra={"conv": pol}))
                prog, a = art.meta["program"], art.arrays
                fb = make_feedback(prog, board, method)
                tr = make_trainer(prog, a, method, fb, seed=s)
                r = fit(tr, a["data/x_train"], a["data/y_train"], epochs=epochs, batch=int(prog["training"]["batch"]),
                        seed=s, x_test=a["data/x_test"], y_test=a["data/y_test"])
                accs.append(r["accuracy"])
                if isinstance(fb, OpticalFeedback):
                    frames.append(fb.frames / epochs)
            name = f"conv={pol}, {method}"
            rows[name] = {"acc": accs, "mean": float(np.mean(accs)),
                          "frames_per_epoch": float(np.mean(frames)) if frames else None}
            print(f"  {name:30s} {100 * np.mean(accs):6.2f} %  seeds {[round(100 * x, 1) for x in accs]}"
                  + (f"  {np.mean(frames):.0f} frames/epoch" if frames else ""), flush=True)
    return rows


# ---- speed ---------------------------------------------------------------------------------------
def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


LIGHTONML_SNIPPET = textwrap.dedent("""
    import json, sys, time, warnings
    import numpy as np
    warnings.filterwarnings("ignore")
    from lightonml import OPU
    n, batch, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    x = (np.random.default_rng(0).random((batch, n)) < 0.5).astype(np.uint8)
    out = {}
    for mode in ("transform", "linear_transform"):
        opu = OPU(n_components=n, simulated=True, max_n_features=n)
        t = time.perf_counter(); opu.fit1d(x); build = time.perf_counter() - t
        fn = getattr(opu, mode); fn(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter(); fn(x); times.append(time.perf_counter() - t)
        out[mode] = {"build_s": build, "call_s": min(times)}
        del opu
    import lightonml
    out["version"] = lightonml.__version__
    print(json.dumps(out))
""")


def make_venv(venv: Path) -> Path | None:
    """Scratch venv for lightonml (it needs --no-deps, setuptools<81 and numpy<2 on Python 3.11)."""
    py = venv / "bin" / "python"
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run(pip + ["setuptools<81", "numpy<2", "numexpr", "attrs", "requests"], check=True)
        subprocess.run(pip + ["--no-deps", "lightonml"], check=True)
        return py
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"  could not build the lightonml venv: {exc}")
        return None


def run_lightonml(py: Path | None, n: int, batch: int, repeats: int) -> tuple[dict | None, str]:
    if py is None or not Path(py).exists():
        return None, "lightonml venv not found"
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "OPENBLAS_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    r = subprocess.run([str(py), "-c", LIGHTONML_SNIPPET, str(n), str(batch), str(repeats)],
                       capture_output=True, text=True, timeout=1800, env=env)
    if r.returncode != 0:
        return None, (r.stderr.strip().splitlines() or ["failed"])[-1]
    return json.loads(r.stdout.strip().splitlines()[-1]), "ok"


def speed_part(n: int, batch: int, repeats: int, lightonml_py: Path | None, device: str) -> dict:
    x = (torch.rand(batch, n, generator=torch.Generator().manual_seed(0)) < 0.5).float().to(device)
    res: dict = {"n": n, "batch": batch, "device": device}
    big = 4 << 30
    t = time.perf_counter()
    dev = OPUDevice(OPUConfig(n_in=n, n_out=n, seed=0, cache_bytes=big, device=device))
    dev.R0.real_matrix()
    res["ours_build_s"] = time.perf_counter() - t
    dev.acquire(x)
    res["ours_transform_s"] = best_of(lambda: dev.acquire(x), repeats)
    fl = OPUDevice(OPUConfig(n_in=n, n_out=n, seed=0, cache_bytes=big, device=device,
                             camera=CameraConfig(float_mode=True)))
    fl.R0 = dev.R0  # same seed and size: share the one matrix
    res["ours_transform_float_s"] = best_of(lambda: fl.acquire(x), repeats)
    lp = LinearProjector(n - n // 8, n, n_anchor=n // 8, seed=0, cache_bytes=big, device=device)
    lp.device.R0 = dev.R0
    xl = x[:, : n - n // 8]
    lp.project(xl)
    res["ours_linear_s"] = best_of(lambda: lp.project(xl), repeats)  # 2 frames per binary vector + 2 calibration
    stream = OPUDevice(OPUConfig(n_in=n, n_out=n, seed=0, cache_bytes=0, device=device))
    res["ours_streaming_transform_s"] = best_of(lambda: stream.acquire(x), 1)
    Rc = dev.R0.complex_matrix()
    xc = x.to(torch.complex64)
    (xc @ Rc).abs().square()
    res["torch_complex_matmul_s"] = best_of(lambda: (xc @ Rc).abs().square(), repeats)
    dev = fl = lp = Rc = xc = None  # free the matrices before lightonml builds its own
    lo, why = run_lightonml(lightonml_py, n, batch, repeats)
    res["lightonml"] = lo
    res["lightonml_status"] = why
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-conv", action="store_true")
    ap.add_argument("--n", type=int, default=None, help="projection size n -> n (default 10000, quick 2000)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for both sides of the speed comparison")
    ap.add_argument("--lightonml-python", default=os.environ.get("LIGHTONML_PYTHON", str(DEFAULT_VENV / "bin/python")))
    ap.add_argument("--no-venv", action="store_true", help="do not create the lightonml scratch venv when missing")
    ap.add_argument("--json", default=None, help="also write the raw results here (default <out>/photonic_raw.json)")
    ap.add_argument("--out", default=None, help="results directory (read by _common.out_dir)")
    a = ap.parse_args(argv)
    out: dict = {}
    if not a.skip_accuracy:
        seeds = [0] if a.quick else [0, 1, 2]
        epochs = 8 if a.quick else 30
        print(f"[accuracy] sklearn digits, MLP 64-128-128-10, Adam lr 1e-3, {epochs} epochs, seeds {seeds}, "
              "1200 train / 597 test")
        with torch_single_thread():
            out["accuracy"] = accuracy_part(seeds, [128, 128], epochs, 1e-3)
        rows = out["accuracy"]
        opt = rows["optical DFA (8-bit camera, stochastic ternary error)"]
        print(f"  optical - digital DFA: {100 * (opt['mean'] - rows['digital DFA (float error, Gaussian B)']['mean']):+.2f} "
              f"points; optical - backprop: {100 * (opt['mean'] - rows['backprop']['mean']):+.2f} points")
        print(f"  optical DFA used {opt['frames_per_epoch']:.0f} frames per epoch "
              f"({100 * opt['live_vector_fraction']:.1f} % of error vectors non-zero)")
    if not a.skip_conv:
        seeds = [0] if a.quick else [0, 1, 2]
        epochs = 8 if a.quick else 30
        print(f"[conv] sklearn digits 8x8, Conv2d(8, 3x3) -> SumPool 2 -> 64 -> 10, Adam lr 1e-3, {epochs} epochs, "
              f"seeds {seeds}")
        with torch_single_thread():
            out["conv"] = conv_part(seeds, epochs)
    if not a.skip_speed:
        n = a.n or (2000 if a.quick else 10000)
        py = Path(a.lightonml_python)
        if not a.no_venv and not py.exists():
            py = make_venv(py.parent.parent) or py
        print(f"[speed] {n} -> {n}, batch {a.batch}, best of 3, device {a.device}, {a.threads} CPU thread(s) each side")
        before = torch.get_num_threads()
        torch.set_num_threads(a.threads)
        try:
            s = speed_part(n, a.batch, 3, py, a.device)
        finally:
            torch.set_num_threads(before)
        out["speed"] = s
        print(f"  ours |xR|^2 + 8-bit camera      {s['ours_transform_s'] * 1e3:9.1f} ms  (R built in {s['ours_build_s']:.1f} s)")
        print(f"  ours |xR|^2, float mode         {s['ours_transform_float_s'] * 1e3:9.1f} ms")
        print(f"  ours linear (anchor, 2 frames)  {s['ours_linear_s'] * 1e3:9.1f} ms")
        print(f"  ours streaming (R never stored) {s['ours_streaming_transform_s'] * 1e3:9.1f} ms")
        print(f"  torch complex matmul + |.|^2    {s['torch_complex_matmul_s'] * 1e3:9.1f} ms")
        lo = s["lightonml"]
        if lo:
            print(f"  lightonml {lo['version']} simulated transform    {lo['transform']['call_s'] * 1e3:9.1f} ms "
                  f"(build {lo['transform']['build_s']:.1f} s)")
            print(f"  lightonml simulated linear_transform {lo['linear_transform']['call_s'] * 1e3:9.1f} ms")
            print(f"  ratio lightonml / ours (transform):  {lo['transform']['call_s'] / s['ours_transform_s']:.2f}x")
            print(f"  ratio lightonml / ours (linear):     {lo['linear_transform']['call_s'] / s['ours_linear_s']:.2f}x")
        else:
            print(f"  lightonml not measured ({s['lightonml_status']}); peer = torch complex matmul")
        print(f"  ratio torch matmul / ours (transform): {s['torch_complex_matmul_s'] / s['ours_transform_s']:.2f}x")
    raw = Path(a.json) if a.json else out_dir() / "photonic_raw.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(out, indent=2, sort_keys=True, default=str) + "\n")
    report(out).save()
    return 0


def report(out: dict) -> Report:
    """Headline rows (accuracy by training rule, projection speed) and targets for the rendered results."""
    rep = Report("photonic")
    for name, r in (out.get("accuracy") or {}).items():
        rep.rows.append({"case": name, "accuracy mean": r.get("mean"), "accuracy std": r.get("std", "")})
    acc = out.get("accuracy") or {}
    opt = acc.get("optical DFA (8-bit camera, stochastic ternary error)")
    dig = acc.get("digital DFA (float error, Gaussian B)")
    if opt and dig:
        rep.target("optical DFA minus digital DFA accuracy (points)", 100 * (opt["mean"] - dig["mean"]), -1.0)
    s = out.get("speed")
    if s:
        rep.rows.append({"case": "projection |xR|^2 + 8-bit camera", "seconds": s["ours_transform_s"]})
        rep.rows.append({"case": "torch complex matmul + |.|^2 (peer)", "seconds": s["torch_complex_matmul_s"]})
        lo = s.get("lightonml")
        if lo:
            rep.target("lightonml simulated OPU / ours, transform time", lo["transform"]["call_s"] / s["ours_transform_s"],
                       1.0, unit="x")
        else:
            rep.notes.append(f"lightonml not measured ({s.get('lightonml_status')})")
    return rep


if __name__ == "__main__":
    raise SystemExit(main())
