"""Frontends: how faithful is each import, measured against the source framework in the same run.

1. ANN-to-SNN: the bundled digits_mlp.onnx and a small CNN trained here (exported to ONNX); peers: the ANN
   itself (onnxruntime) and max-normalisation (percentile 100) against the default 99.9th percentile.
   Accuracy vs time steps, analog (constant current) and Poisson spike input.
2. snnTorch / Norse round trips: fraction of identical spikes, refsim vs the framework's own run.
3. Brian2: fraction of spikes within one step, and wall time of Brian2 (numpy target) vs the reference simulator.
4. TorchScript: the same CNN traced and saved with torch.jit.save, converted through its IR; peer: the ONNX
   path on the same model (parse error vs the module, SNN accuracy, prediction agreement at T=100).

Writes <out>/frontends.json (a `_common.Report`: headline rows and targets, MISSED when not met),
frontends_raw.json (everything measured) and frontends.md (the detailed tables), where <out> is --out DIR,
$SPIKEFORGE_BENCH_OUT or a temp dir (never the source tree). `benchmarks/run_all.py` renders them.
Run: .venv/bin/python benchmarks/bench_frontends.py [--out DIR]  (about a minute or two)
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
warnings.filterwarnings("ignore")

from _common import Report, out_dir  # noqa: E402

from spikeforge import models, refsim  # noqa: E402
from spikeforge.frontends.convert import accuracy_vs_timesteps  # noqa: E402
from spikeforge.frontends.onnx import from_onnx, onnxruntime_check  # noqa: E402
from spikeforge.npzio import load_npz  # noqa: E402

STEPS = [5, 10, 20, 50, 100, 200]


def _ort_acc(path, x, y) -> float:
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return float((s.run(None, {s.get_inputs()[0].name: x})[0].argmax(1) == y).mean())


def _train_cnn(tmp: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import torch
    from sklearn.datasets import load_digits

    torch.set_num_threads(1)
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    idx = np.random.default_rng(0).permutation(len(x))
    tr, te = idx[:1200], idx[1200:]
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 10))
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    xt, yt = torch.tensor(x[tr]), torch.tensor(d.target[tr])
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(xt), yt).backward()
        opt.step()
    m.eval()
    path = tmp / "digits_cnn.onnx"
    torch.onnx.export(m, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "b"}})
    torch.jit.save(torch.jit.trace(m, torch.zeros(1, 1, 8, 8)), str(tmp / "digits_cnn.ts"))
    return path, x[tr], d.target[tr], x[te], d.target[te]


def ann_to_snn(tmp: Path) -> tuple[list[dict], dict]:
    rows = []
    data = load_npz(models.path("digits_inputs.npz"))
    mlp = models.path("digits_mlp.onnx")
    cnn, xtr, _, xte, yte = _train_cnn(tmp)
    cases = [("digits_mlp.onnx (bundled)", mlp, data["analog"], data["labels"], data["analog"]),
             ("digits CNN (trained here)", cnn, xte, yte, xtr[:400])]
    for name, path, x, y, calib in cases:
        ann = _ort_acc(path, x, y)
        err = onnxruntime_check(path, x)
        for pct in (99.9, 100.0):
            t0 = time.perf_counter()
            g = from_onnx(path, calib, percentile=pct)
            t_conv = time.perf_counter() - t0
            t0 = time.perf_counter()
            acc = accuracy_vs_timesteps(g, x, y, STEPS)
            t_sim = time.perf_counter() - t0
            pois = accuracy_vs_timesteps(g, x, y, STEPS, encoding="poisson") if pct == 99.9 else {}
            rows.append({"model": name, "percentile": pct, "ann_acc": ann, "ort_max_abs_err": err,
                         "snn_acc_analog": acc, "snn_acc_poisson": pois, "convert_s": t_conv, "simulate_s": t_sim,
                         "n_test": int(len(y))})
            first = next((t for t in STEPS if acc[t] >= ann - 0.01), None)
            print(f"{name:28s} p={pct:5.1f}  ANN {ann:.4f}  SNN@100 {acc[100]:.4f} (ratio {acc[100] / ann:.4f})  "
                  f"within 1 pt from T={first}  |ort-ours|={err:.1e}")
    return rows, torchscript_vs_onnx(tmp, cnn, xtr, xte, yte)


def torchscript_vs_onnx(tmp: Path, onnx_path: Path, xtr: np.ndarray, xte: np.ndarray, yte: np.ndarray) -> dict:
    """The traced CNN through its TorchScript IR, against the ONNX path on the same trained model."""
    import torch

    from spikeforge.frontends.convert import encode, evaluate
    from spikeforge.frontends.torchscript import from_torchscript, parse_torchscript

    module = torch.jit.load(str(tmp / "digits_cnn.ts"), map_location="cpu")
    t0 = time.perf_counter()
    ann = parse_torchscript(module, xte[:1])
    t_parse = time.perf_counter() - t0
    with torch.no_grad():
        out = module(torch.tensor(xte)).numpy()
    err = float(np.abs(evaluate(ann, xte)[ann.output] - out).max())
    g_ts = from_torchscript(module, None, xtr[:400])
    g_onnx = from_onnx(onnx_path, xtr[:400])
    acc = accuracy_vs_timesteps(g_ts, xte, yte, STEPS)
    preds = [refsim.simulate(g, encode(xte, 100)).outputs["output"].sum(0).argmax(-1) for g in (g_ts, g_onnx)]
    res = {"ann_acc": float((out.argmax(1) == yte).mean()), "module_max_abs_err": err, "parse_s": t_parse,
           "snn_acc_analog": acc, "agree_with_onnx_T100": float((preds[0] == preds[1]).mean())}
    print(f"TorchScript CNN: ANN {res['ann_acc']:.4f}  SNN@100 {acc[100]:.4f}  |module-ours|={err:.1e}  "
          f"same prediction as the ONNX path at T=100: {res['agree_with_onnx_T100']:.4f}")
    return res


def snn_round_trips() -> list[dict]:
    sys.path.insert(0, str(ROOT))
    from tests import test_frontend_snn as S

    rows = []
    for reset in ("subtract", "zero"):
        net = S._mlp(reset)
        x = S._inputs((5,))
        ref = S._run_snntorch(net, x)
        ours = S._refsim(S.from_snntorch(net, x[0]), x).reshape(ref.shape)
        rows.append({"case": f"snnTorch Leaky/RLeaky/Synaptic reset={reset}", "spikes": int(ref.sum()),
                     "identical_fraction": float((ours == ref).mean())})
    net = S._norse_net()
    x = S._inputs((5,), amp=4.0)
    ref = S._run_norse(net, x)
    ours = S._refsim(S.from_norse(net, x[0]), x)
    rows.append({"case": "Norse LIFCell/LIFBoxCell/IAFCell", "spikes": int(ref.sum()),
                 "identical_fraction": float((ours == ref).mean())})
    for r in rows:
        print(f"{r['case']:45s} spikes {r['spikes']:5d}  identical {r['identical_fraction']:.4f}")
    return rows


def brian2_fidelity(T: int = 5000) -> dict:
    import brian2 as b2

    from spikeforge.frontends.brian2 import from_brian2
    from tests.test_frontend_brian2 import match_fraction

    b2.prefs.codegen.target = "numpy"
    b2.start_scope()
    b2.seed(7)
    b2.defaultclock.dt = 0.1 * b2.ms
    tau = 10 * b2.ms  # noqa: F841
    lif = "dv/dt = (-65*mV - v)/tau : volt"
    P = b2.PoissonGroup(200, 20 * b2.Hz, name="poisson")
    G1 = b2.NeuronGroup(100, lif, threshold="v > -55*mV", reset="v = -68*mV", method="exact", name="hidden")
    G2 = b2.NeuronGroup(50, lif, threshold="v > -55*mV", reset="v = -65*mV", method="exact", name="out")
    G1.v = G2.v = -65 * b2.mV
    S1 = b2.Synapses(P, G1, "w : volt", on_pre="v_post += w", name="s1")
    S1.connect(p=0.2)
    S1.w = "rand()*3*mV"
    S1.delay = "rand()*5*ms"
    S2 = b2.Synapses(G1, G2, "w : volt", on_pre="v_post += w", name="s2")
    S2.connect(p=0.2)
    S2.w = "rand()*4*mV"
    S2.delay = "rand()*5*ms"
    mons = {g.name: b2.SpikeMonitor(g) for g in (P, G1, G2)}
    net = b2.Network(P, G1, G2, S1, S2, *mons.values())
    graph = from_brian2(net)
    t0 = time.perf_counter()
    net.run(T * b2.defaultclock.dt)
    t_b2 = time.perf_counter() - t0
    dt = float(b2.defaultclock.dt)
    steps = {k: (np.rint(np.asarray(m.t / b2.second) / dt).astype(int), np.asarray(m.i)) for k, m in mons.items()}
    x = np.zeros((T, 1, 200), np.float32)
    x[steps["poisson"][0], 0, steps["poisson"][1]] = 1
    t0 = time.perf_counter()
    outs = refsim.simulate(graph, {"poisson": x}).outputs
    t_ref = time.perf_counter() - t0
    res = {"steps": T, "brian2_s": t_b2, "refsim_s": t_ref}
    for g in ("hidden", "out"):
        res[g] = {"brian2_spikes": int(len(steps[g][0])), "refsim_spikes": int(outs[f"{g}_out"].sum()),
                  "within_one_step": match_fraction(*steps[g], outs[f"{g}_out"][:, 0]),
                  "exact": match_fraction(*steps[g], outs[f"{g}_out"][:, 0], tol=0)}
        print(f"brian2 {g:6s}: {res[g]['brian2_spikes']} spikes, within 1 step {res[g]['within_one_step']:.4f}, "
              f"same step {res[g]['exact']:.4f}")
    print(f"brian2 numpy {t_b2:.2f} s vs refsim {t_ref:.2f} s for {T} steps (ratio {t_b2 / max(t_ref, 1e-9):.2f})")
    return res


def _md(ann: list[dict], rt: list[dict], b2r: dict, ts: dict) -> str:
    lines = ["# Frontend fidelity (benchmarks/bench_frontends.py)", "",
             "## ANN-to-SNN (IF, reset by subtraction, data-based normalisation); test-set accuracy", "",
             "| model | percentile | ANN (onnxruntime) | input | " + " | ".join(f"T={t}" for t in STEPS) + " |",
             "|---|---|---|---|" + "---|" * len(STEPS)]
    for r in ann:
        for enc in ("analog", "poisson"):
            acc = r[f"snn_acc_{enc}"]
            if acc:
                lines.append(f"| {r['model']} | {r['percentile']} | {r['ann_acc']:.4f} | {enc} | "
                             + " | ".join(f"{acc[t]:.4f}" for t in STEPS) + " |")
    lines += ["", "Parsed ANN vs onnxruntime, max |difference|: "
              + ", ".join(f"{r['model']}: {r['ort_max_abs_err']:.1e}" for r in ann if r["percentile"] == 99.9), "",
              "## TorchScript (the CNN above, traced, converted through its IR; peer: the ONNX path)", "",
              "| ANN (module) | max \\|module - parsed\\| | " + " | ".join(f"T={t}" for t in STEPS)
              + " | same prediction as ONNX path, T=100 |", "|---|---|" + "---|" * (len(STEPS) + 1),
              f"| {ts['ann_acc']:.4f} | {ts['module_max_abs_err']:.1e} | "
              + " | ".join(f"{ts['snn_acc_analog'][t]:.4f}" for t in STEPS) + f" | {ts['agree_with_onnx_T100']:.4f} |",
              "", "## snnTorch / Norse round trips (refsim vs the framework, same inputs)", "",
              "| case | spikes | identical fraction |", "|---|---|---|"]
    lines += [f"| {r['case']} | {r['spikes']} | {r['identical_fraction']:.4f} |" for r in rt]
    lines += ["", f"## Brian2 (200 Poisson -> 100 LIF -> 50 LIF, per-synapse delays, {b2r['steps']} steps of 0.1 ms)",
              "", "| group | Brian2 spikes | refsim spikes | within one step | same step |", "|---|---|---|---|---|"]
    for g in ("hidden", "out"):
        r = b2r[g]
        lines.append(f"| {g} | {r['brian2_spikes']} | {r['refsim_spikes']} | {r['within_one_step']:.4f} | "
                     f"{r['exact']:.4f} |")
    lines += ["", f"Wall time: Brian2 (numpy target) {b2r['brian2_s']:.2f} s, reference simulator "
              f"{b2r['refsim_s']:.2f} s.", ""]
    return "\n".join(lines)


def report(ann: list[dict], rt: list[dict], b2r: dict, ts: dict) -> Report:
    """Headline figures and targets: exact round trips, Brian2 spikes within one step, ANN-to-SNN within 1 point."""
    rep = Report("frontends", notes=["ANN-to-SNN: IF neurons, reset by subtraction, 99.9th-percentile normalisation; "
                                     "accuracy on the digits test set (details in the tables below)"])
    for r in ann:
        if r["percentile"] == 99.9 and r["snn_acc_analog"]:
            acc = r["snn_acc_analog"]
            rep.rows.append({"case": f"{r['model']} ANN -> SNN, analog input", "ANN": r["ann_acc"],
                             **{f"T={t}": acc[t] for t in (10, 20, 50, 100)}})
            rep.target(f"{r['model']}: SNN at T=100 within 1 point of the ANN (accuracy drop)",
                       r["ann_acc"] - acc[100], 0.01, higher_is_better=False)
    rep.notes += [f"round trip {r['case']}: {r['spikes']} spikes, identical fraction {r['identical_fraction']:.4f}"
                  for r in rt]
    worst = min((r["identical_fraction"] for r in rt), default=float("nan"))
    rep.target("snnTorch/Norse round trips: identical spike fraction (worst case)", worst, 1.0)
    within = min(b2r[g]["within_one_step"] for g in ("hidden", "out"))
    rep.notes.append(f"Brian2 200 -> 100 -> 50 LIF with per-synapse delays: "
                     f"{sum(b2r[g]['brian2_spikes'] for g in ('hidden', 'out'))} spikes, {within:.4f} within one step; "
                     f"wall time Brian2 (numpy) {b2r['brian2_s']:.2f} s, reference simulator {b2r['refsim_s']:.2f} s")
    rep.target("Brian2: spikes within one step (worst group)", within, 0.99)
    rep.target("TorchScript path agrees with the ONNX path at T=100", ts["agree_with_onnx_T100"], 0.99)
    return rep


def main() -> None:
    import tempfile

    out = out_dir()
    with tempfile.TemporaryDirectory() as tmp:
        ann, ts = ann_to_snn(Path(tmp))
    rt = snn_round_trips()
    b2r = brian2_fidelity()
    (out / "frontends_raw.json").write_text(json.dumps({"ann_to_snn": ann, "torchscript": ts, "round_trips": rt,
                                                        "brian2": b2r}, indent=1, sort_keys=True, default=str))
    (out / "frontends.md").write_text(_md(ann, rt, b2r, ts))
    report(ann, rt, b2r, ts).save()
    print(f"wrote {out / 'frontends.md'}")


if __name__ == "__main__":
    main()
