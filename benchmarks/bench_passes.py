"""Compiler passes on the bundled digits models: accuracy vs bit budget, pruning, delay relays.

Peers measured in the same run: the float model, and uniform quantisation at the same bit budget (the
baseline the paper's bit-budget view asks allocation to beat). Writes passes.json (a `_common.Report`:
headline rows and targets), passes_raw.json, passes.md and passes_bitbudget.png into <out> (--out DIR,
$SPIKEFORGE_BENCH_OUT or a temp dir, never the tree); `benchmarks/run_all.py` renders them into docs/ and
the README. Run: .venv/bin/python benchmarks/bench_passes.py [--out DIR]  (a few minutes)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import Report, out_dir  # noqa: E402

from spikeforge import graph as G  # noqa: E402
from spikeforge import models, refsim  # noqa: E402
from spikeforge.npzio import load_npz  # noqa: E402
from spikeforge.passes import (  # noqa: E402
    allocate_bits,
    map_delays,
    prune,
    prune_gradual,
    quantize,
    quantize_tensor,
)
from tests.test_passes_helpers import BETA, T_STEPS, digits_split, rate_code  # noqa: E402

N_CALIB = 400


def _acc_snn(g, x, y) -> float:
    return float(np.mean(refsim.simulate(g, x).outputs["output"].sum(0).argmax(1) == y))


def load_snn():
    g = G.read(models.path("digits_snn.nir"))
    data = load_npz(models.path("digits_inputs.npz"))
    xtr, _, ytr, _ = digits_split(0)
    # the training inputs the bundled model saw (examples/train_digits.py codes them with seed + 1)
    calib = {"input": rate_code(xtr[:N_CALIB], T_STEPS, 1), "labels": ytr[:N_CALIB]}
    return g, calib, data["input"].astype(np.float32), data["labels"], data["analog"]


# ---------------------------------------------------------------------------------------------------
# SNN: accuracy vs bit budget
# ---------------------------------------------------------------------------------------------------


def snn_curve(g, calib, x, y) -> dict:
    float_acc = _acc_snn(g, x, y)
    rows = []
    for b in (1, 2, 3, 4, 5, 6, 8):
        budget = b * T_STEPS
        qu, ru = quantize(g, bit_budget=None, calibration=calib, timesteps=T_STEPS, weight_bits=b)
        qa, ra = quantize(g, bit_budget=budget, calibration=calib, timesteps=T_STEPS)
        qt, rt = quantize(g, bit_budget=budget, calibration=calib, timesteps=None)
        rows.append({
            "budget": budget, "uniform_bits": b, "uniform_acc": _acc_snn(qu, x, y),
            "alloc_acc": _acc_snn(qa, x, y), "alloc_bits": {L.name: L.weight_bits for L in ra.layers},
            "alloc_spent": ra.bits_spent,
            "alloc_freeT_acc": _acc_snn(qt, x[:rt.timesteps], y),
            "alloc_freeT": {"T": rt.timesteps, **{L.name: L.weight_bits for L in rt.layers}},
            "bitops_dense": ra.bitops_dense, "bitops_event": ra.bitops_event,
            "warnings": len(ra.warnings),
        })
        print(f"SNN budget {budget:4d}: uniform {b}-bit {rows[-1]['uniform_acc']:.4f}  allocated "
              f"{rows[-1]['alloc_bits']} {rows[-1]['alloc_acc']:.4f}  free-T {rows[-1]['alloc_freeT']} "
              f"{rows[-1]['alloc_freeT_acc']:.4f}   (float {float_acc:.4f})", flush=True)
    extra = {}
    for pc, mode in ((True, "symmetric"), (False, "asymmetric"), (True, "asymmetric")):
        q, _ = quantize(g, bit_budget=None, calibration=calib, timesteps=T_STEPS, weight_bits=4, per_channel=pc,
                        mode=mode)
        extra[f"4-bit {mode} {'per-channel' if pc else 'per-tensor'}"] = _acc_snn(q, x, y)
    q, rep = quantize(g, bit_budget=None, calibration=calib, timesteps=T_STEPS, weight_bits=4)
    return {"float_acc": float_acc, "rows": rows, "four_bit_variants": extra, "four_bit_report": rep.to_text()}


# ---------------------------------------------------------------------------------------------------
# ANN: quantised ReLU MLP (T = 1), budget = b_w x b_a
# ---------------------------------------------------------------------------------------------------


def load_mlp():
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(models.path("digits_mlp.onnx")))
    init = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in m.graph.initializer}
    return [(init["fc1.weight"], init["fc1.bias"]), (init["fc2.weight"], init["fc2.bias"])]


def _qact(a: np.ndarray, bits: int, hi: float) -> np.ndarray:
    levels = 2**bits - 1
    s = hi / levels
    return np.clip(np.rint(a / s), 0, levels) * s


def ann_forward(layers, x, wbits=None, abits=None, ranges=None):
    h = x
    for k, (w, b) in enumerate(layers):
        name = f"fc{k + 1}"
        if abits is not None:
            h = _qact(h, abits[name], ranges[name])
        if wbits is not None:
            qt = quantize_tensor(w, wbits[name])
            w = qt.dequantise().astype(np.float64)
            b = np.rint(b / qt.scale[0] * 64) * qt.scale[0] / 64  # bias on the 6-fraction-bit accumulator grid
        h = h @ w.T + b
        if k < len(layers) - 1:
            h = np.maximum(h, 0)
    return h


def ann_curve(layers, analog_test, y_test) -> dict:
    xtr, _, ytr, _ = digits_split(0)
    xc = xtr[:N_CALIB].astype(np.float64)
    ref_c = ann_forward(layers, xc)
    h1 = np.maximum(xc @ layers[0][0].T + layers[0][1], 0)
    ranges = {"fc1": 1.0, "fc2": float(np.percentile(h1, 99.9))}
    float_acc = float(np.mean(ann_forward(layers, analog_test).argmax(1) == y_test))
    syn = {"fc1": layers[0][0].size, "fc2": layers[1][0].size}
    widths = list(range(1, 9))

    def err(wb, ab, T):
        out = ann_forward(layers, xc, wb, ab, ranges)
        mismatch = float(np.mean(out.argmax(1) != ref_c.argmax(1)))
        return mismatch + 0.5 * float(np.sqrt(np.mean((out - ref_c) ** 2)) / np.sqrt(np.mean(ref_c**2)))

    def acc(wb, ab):
        return float(np.mean(ann_forward(layers, analog_test, wb, ab, ranges).argmax(1) == y_test))

    rows = []
    for b in (2, 3, 4, 5, 6, 8):
        budget = b * b
        uni = {n: b for n in syn}
        wb, ab, _, _ = allocate_bits(syn, bit_budget=budget, evaluate=err, allowed_weight_bits=widths,
                                     activation_choices={n: widths for n in syn}, uniform_margin=1.0 / N_CALIB)
        rows.append({"budget": budget, "uniform_bits": b, "uniform_acc": acc(uni, uni), "alloc_acc": acc(wb, ab),
                     "alloc_weight_bits": wb, "alloc_activation_bits": ab})
        print(f"ANN budget {budget:3d}: uniform W{b}A{b} {rows[-1]['uniform_acc']:.4f}  allocated W{wb} A{ab} "
              f"{rows[-1]['alloc_acc']:.4f}   (float {float_acc:.4f})", flush=True)
    four = acc({n: 4 for n in syn}, {n: 8 for n in syn})
    return {"float_acc": float_acc, "rows": rows, "w4a8_acc": four}


# ---------------------------------------------------------------------------------------------------
# Pruning
# ---------------------------------------------------------------------------------------------------


def _fine_tune_factory(epochs: int = 2):
    """A torch fine-tuning callback for the digits SNN (what a user with training data would pass)."""
    import torch

    from tests.test_passes_helpers import _snn_forward

    xtr, _, ytr, _ = digits_split(0)
    xs = torch.from_numpy(rate_code(xtr, T_STEPS, 1))
    ys = torch.from_numpy(ytr)

    def fine_tune(graph, step, sparsity):
        torch.manual_seed(step)
        g = G.validate(graph)
        ps = [torch.nn.Parameter(torch.tensor(np.asarray(getattr(g.nodes[n], f), dtype=np.float32)))
              for n in ("fc1", "fc2") for f in ("weight", "bias")]
        masks = [(ps[0] != 0).float(), (ps[2] != 0).float()]
        opt = torch.optim.Adam(ps, lr=2e-3)
        gen = torch.Generator().manual_seed(step)
        for _ in range(epochs):
            perm = torch.randperm(len(ys), generator=gen)
            for i in range(0, len(perm), 64):
                idx = perm[i:i + 64]
                counts = _snn_forward(ps[0] * masks[0], ps[1], ps[2] * masks[1], ps[3], xs[:, idx]).sum(0)
                loss = torch.nn.functional.cross_entropy(counts, ys[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        for (n, f), p in zip([(n, f) for n in ("fc1", "fc2") for f in ("weight", "bias")], ps):
            setattr(g.nodes[n], f, p.detach().numpy().astype(np.float32))
        return g

    return fine_tune


def pruning(g, calib, x, y) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    assert abs(BETA - 0.9) < 1e-12
    s0 = float(refsim.simulate(g, x).synops.sum() / x.shape[1])
    a0 = _acc_snn(g, x, y)
    rows = []
    runs = [("magnitude 50%", dict(sparsity=0.5, method="magnitude")),
            ("magnitude 80%", dict(sparsity=0.8, method="magnitude")),
            ("structured 25% neurons", dict(sparsity=0.25, method="structured")),
            ("structured 50% neurons", dict(sparsity=0.5, method="structured"))]
    for label, kw in runs:
        pg, rep = prune(g, calibration=calib, **kw)
        rows.append(_prow(label, pg, rep, x, y, s0, a0))
    pg, rep, _ = prune_gradual(g, sparsity=0.8, steps=4, fine_tune=_fine_tune_factory(2), calibration=calib)
    rows.append(_prow("gradual 80% + fine-tune (4 x 2 epochs)", pg, rep, x, y, s0, a0))
    for r in rows:
        print(f"prune {r['setting']:<40} weights {r['weight_sparsity']:.2f} sparse, synops/sample "
              f"{r['synops']:.0f} ({100 * r['synop_reduction']:.1f}% fewer), accuracy {r['accuracy']:.4f} "
              f"(float {a0:.4f})", flush=True)
    return rows


def _prow(label, pg, rep, x, y, s0, a0):
    s1 = float(refsim.simulate(pg, x).synops.sum() / x.shape[1])
    return {"setting": label, "weight_sparsity": rep.sparsity, "synops": s1, "synops_float": s0,
            "synop_reduction": 1 - s1 / s0, "accuracy": _acc_snn(pg, x, y), "float_accuracy": a0}


# ---------------------------------------------------------------------------------------------------
# Delays
# ---------------------------------------------------------------------------------------------------


def delays() -> list[dict]:
    import nir

    rng = np.random.default_rng(0)
    n_in, n_out = 32, 96
    # every target listens to one axon (3 targets per axon, each with its own delay), so coarse time bins
    # cannot merge two arrivals and spike times compare one to one
    w = np.zeros((n_out, n_in), np.float32)
    w[np.arange(n_out), np.arange(n_out) % n_in] = 1.0
    d = rng.uniform(0, 0.03, (n_out, n_in))
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([n_in])),
                            "fc": nir.Linear(weight=w, metadata={"spikeforge.synapse_delays_s": d}),
                            "lif": nir.IF(r=np.ones(n_out, np.float32), v_threshold=np.full(n_out, 0.5, np.float32),
                                          v_reset=np.zeros(n_out, np.float32)),
                            "out": nir.Output(np.array([n_out]))},
                     edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")], metadata={"spikeforge.dt": 1e-4},
                     type_check=False)
    x = np.zeros((1500, 4, n_in), np.float32)
    for b in range(4):
        for k in range(4):  # spikes 35 ms apart: longer than the longest delay
            x[k * 350 + rng.integers(0, 50, n_in), b, np.arange(n_in)] = 1
    rows = []
    for policy, H in (("relay", 4), ("relay", 8), ("chain", 8), ("native", 64)):
        _, rep = map_delays(g, dt=1e-3, max_delay_steps=H, policy=policy, verify_inputs=x)
        v = rep.verification or {}
        rows.append({"policy": policy, "max_delay_steps": H, "delayed_synapses": rep.synapses_with_delay,
                     "relays": rep.relays_added, "max_error_steps": v.get("max_error_steps"),
                     "spikes": v.get("reference_spikes"), "unmatched": v.get("unmatched_spikes")})
        print(f"delays {policy:<6} H={H:<3} relays {rep.relays_added:4d}  spike-time error "
              f"{v.get('max_error_steps', float('nan')):.2f} board steps, unmatched {v.get('unmatched_spikes')}",
              flush=True)
    return rows


# ---------------------------------------------------------------------------------------------------


def _markdown(res: dict) -> str:
    s, a = res["snn"], res["ann"]
    L = ["# Compiler passes on the bundled digits models", "",
         "Generated by `benchmarks/bench_passes.py`. Bit budget = weight bits x activation bits x time steps "
         "(synapse-weighted mean over layers; Shen et al., CVPR 2024). Calibration: 400 training samples; "
         "accuracy on the 360 held-out samples of `digits_inputs.npz`.", "",
         f"## SNN (digits_snn.nir, T = {T_STEPS}, binary spikes so b_a = 1), float accuracy {s['float_acc']:.4f}", "",
         "| budget | uniform b_w | uniform acc | allocated (T = 25) | acc | allocated (T free) | acc |",
         "|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        L.append(f"| {r['budget']} | {r['uniform_bits']} | {r['uniform_acc']:.4f} | "
                 f"{', '.join(f'{k} {v}' for k, v in r['alloc_bits'].items())} | {r['alloc_acc']:.4f} | "
                 f"T {r['alloc_freeT']['T']}, " + ", ".join(f"{k} {v}" for k, v in r['alloc_freeT'].items() if k != 'T')
                 + f" | {r['alloc_freeT_acc']:.4f} |")
    L += ["", "4-bit weight variants: " + ", ".join(f"{k} {v:.4f}" for k, v in s["four_bit_variants"].items()), "",
          f"## ANN (digits_mlp.onnx, T = 1, budget = b_w x b_a), float accuracy {a['float_acc']:.4f}", "",
          "| budget | uniform W/A | uniform acc | allocated weight bits | activation bits | acc |", "|---|---|---|---|---|---|"]
    for r in a["rows"]:
        L.append(f"| {r['budget']} | {r['uniform_bits']}/{r['uniform_bits']} | {r['uniform_acc']:.4f} | "
                 f"{r['alloc_weight_bits']} | {r['alloc_activation_bits']} | {r['alloc_acc']:.4f} |")
    L += ["", f"W4A8 (4-bit weights, 8-bit activations): {a['w4a8_acc']:.4f}", "",
          "## Pruning (digits SNN)", "", "| setting | weight sparsity | synops/sample | reduction | accuracy |",
          "|---|---|---|---|---|"]
    for r in res["prune"]:
        L.append(f"| {r['setting']} | {r['weight_sparsity']:.2f} | {r['synops']:.0f} | "
                 f"{100 * r['synop_reduction']:.1f}% | {r['accuracy']:.4f} |")
    L += [f"| float | 0.00 | {res['prune'][0]['synops_float']:.0f} | 0% | {res['prune'][0]['float_accuracy']:.4f} |",
          "", "## Delay mapping (32 axons -> 96 targets, per-synapse delays U(0, 30 ms) at 0.1 ms, board dt 1 ms)", "",
          "| policy | max delay steps | delayed synapses | relays added | max spike-time error (board steps) | "
          "unmatched spikes |", "|---|---|---|---|---|---|"]
    for r in res["delays"]:
        L.append(f"| {r['policy']} | {r['max_delay_steps']} | {r['delayed_synapses']} | {r['relays']} | "
                 f"{r['max_error_steps']:.2f} | {r['unmatched']} |")
    return "\n".join(L) + "\n"


def _plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    s = res["snn"]
    b = [r["budget"] for r in s["rows"]]
    ax = axes[0]
    ax.plot(b, [r["uniform_acc"] for r in s["rows"]], "o-", label="uniform weights")
    ax.plot(b, [r["alloc_acc"] for r in s["rows"]], "s-", label="allocated (T=25)")
    ax.plot(b, [r["alloc_freeT_acc"] for r in s["rows"]], "^-", label="allocated (T free)")
    ax.axhline(s["float_acc"], color="k", ls="--", label="float")
    ax.set(title="digits SNN", xlabel="bit budget (b_w x b_a x T)", ylabel="accuracy", ylim=(0, 1.0))
    ax.legend()
    a = res["ann"]
    b = [r["budget"] for r in a["rows"]]
    ax = axes[1]
    ax.plot(b, [r["uniform_acc"] for r in a["rows"]], "o-", label="uniform W=A")
    ax.plot(b, [r["alloc_acc"] for r in a["rows"]], "s-", label="allocated")
    ax.axhline(a["float_acc"], color="k", ls="--", label="float")
    ax.set(title="digits ReLU MLP", xlabel="bit budget (b_w x b_a)", ylabel="accuracy", ylim=(0, 1.0))
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def report(res: dict) -> Report:
    """Headline: accuracy by bit budget (uniform vs allocated vs T free); allocation never worse than uniform."""
    s = res["snn"]
    rep = Report("passes", notes=[f"digits SNN, T = 25, float accuracy {s['float_acc']:.4f}; figure: "
                                  "docs/passes_bitbudget.png"])
    for r in s["rows"]:
        rep.rows.append({"budget": r["budget"], "uniform weight bits": r["uniform_bits"],
                         "uniform acc": r["uniform_acc"],
                         "allocated": ", ".join(f"{k} {v}" for k, v in r["alloc_bits"].items()),
                         "allocated acc": r["alloc_acc"],
                         "T free": ", ".join(f"{k} {v}" for k, v in r["alloc_freeT"].items()),
                         "T free acc": r["alloc_freeT_acc"]})
    rep.target("allocated minus uniform accuracy at equal budget (worst budget)",
               min(r["alloc_acc"] - r["uniform_acc"] for r in s["rows"]), 0.0)
    r4 = next(r for r in s["rows"] if r["uniform_bits"] == 4)
    rep.target("accuracy lost with 4-bit weights vs float (points)", 100 * (s["float_acc"] - r4["uniform_acc"]),
               1.0, higher_is_better=False)
    return rep


def main() -> int:
    t0 = time.perf_counter()
    g, calib, x, y, analog = load_snn()
    res = {"snn": snn_curve(g, calib, x, y)}
    res["ann"] = ann_curve(load_mlp(), analog.astype(np.float64), y)
    res["prune"] = pruning(g, calib, x, y)
    res["delays"] = delays()
    OUT = out_dir()
    (OUT / "passes_raw.json").write_text(json.dumps({k: v for k, v in res.items()}, indent=1, sort_keys=True,
                                                    default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    (OUT / "passes.md").write_text(_markdown(res))
    _plot(res, OUT / "passes_bitbudget.png")
    report(res).save()
    s = res["snn"]
    r8 = next(r for r in s["rows"] if r["uniform_bits"] == 8)
    r4 = next(r for r in s["rows"] if r["uniform_bits"] == 4)
    print(f"\nratio allocated / uniform 8-bit accuracy at budget {r8['budget']}: {r8['alloc_acc'] / r8['uniform_acc']:.4f}")
    print(f"4-bit weights vs float: {r4['uniform_acc']:.4f} vs {s['float_acc']:.4f} "
          f"({100 * (s['float_acc'] - r4['uniform_acc']):+.2f} points lost)")
    print(f"wrote {OUT / 'passes.md'} and passes_bitbudget.png in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
