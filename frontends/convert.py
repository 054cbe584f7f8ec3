"""ANN-to-SNN conversion shared by the torch and ONNX frontends (rate coding, Rueckauer et al. 2017).

Both frontends first parse their model into a small layer graph (`AnnGraph`: linear, conv, relu, avgpool,
flatten, add), which `evaluate` runs in numpy/torch; that is what is checked against torch/onnxruntime.
`to_snn` then turns it into NIR:

* every ReLU becomes an IF neuron (threshold 1, reset by subtraction, immediate, `v >= 1` fires);
* data-based weight normalisation: lambda_l = the `percentile` (99.9 by default) of layer l's ReLU
  activations on the calibration data; an affine layer between neurons with scales lambda_in and
  lambda_out gets W * lambda_in / lambda_out and b / lambda_out, so a unit firing rate stands for lambda;
* the last layer (logits, no ReLU) gets IF neurons too, normalised by the percentile of its positive
  activations; the prediction is the neuron with the most spikes;
* input encoding: the Input node carries the *analog* input (e.g. pixel intensities in [0, 1]) as a
  constant current every time step (`encode(x, T)`); Bernoulli rate-coded spikes with the same mean
  (`encode(x, T, "poisson")`) drive the same graph with lower accuracy at equal T;
* AvgPool/Flatten/Add stay linear; Add of two branches is two edges into the same node (NIR sums inputs),
  with a Scale node where the branch scales differ. MaxPool has no exact rate-coded equivalent: error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from spikeforge import graph as G
from spikeforge.errors import InputError, SpikeforgeError, UnsupportedError

NEURON_META = {
    "spikeforge.reset": "subtract",
    "spikeforge.reset_timing": "immediate",
    "spikeforge.threshold_cmp": ">=",
}


@dataclass
class Op:
    """One layer of the parsed ANN. params: linear {w (out,in), b}; conv {w, b, stride, padding, dilation,
    groups}; avgpool {kernel, stride, padding}; relu {clip: upper bound or None}."""

    name: str
    kind: str
    inputs: list[str]
    params: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the original op/module, for messages and metadata


@dataclass
class AnnGraph:
    ops: dict[str, Op]          # in topological order; the first is the input
    output: str
    input_shape: tuple[int, ...]  # per sample, no batch
    source: str = ""

    def consumers(self, name: str) -> list[str]:
        return [o.name for o in self.ops.values() if name in o.inputs]


def fold_batchnorm(op: Op, gamma, beta, mean, var, eps: float) -> None:
    """Fold y = gamma (x - mean) / sqrt(var + eps) + beta into the preceding linear/conv op."""
    s = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(var, np.float64) + eps)
    w = np.asarray(op.params["w"], np.float64)
    b = np.asarray(op.params.get("b", np.zeros(w.shape[0])), np.float64)
    op.params["w"] = (w * s.reshape(-1, *([1] * (w.ndim - 1)))).astype(np.float32)
    op.params["b"] = ((b - np.asarray(mean, np.float64)) * s + np.asarray(beta, np.float64)).astype(np.float32)


# --------------------------------------------------------------------------- ANN evaluation


def evaluate(ann: AnnGraph, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run the parsed ANN on a batch (B, *input_shape); every op's activation (float32)."""
    import torch
    import torch.nn.functional as F

    acts: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for op in ann.ops.values():
            ins = [acts[i] for i in op.inputs]
            p = op.params
            if op.kind == "input":
                y = torch.as_tensor(np.asarray(x, np.float32)).reshape(-1, *ann.input_shape)
            elif op.kind == "linear":
                y = F.linear(ins[0].reshape(ins[0].shape[0], -1), torch.as_tensor(p["w"]), torch.as_tensor(p["b"]))
            elif op.kind in ("conv1d", "conv2d"):
                conv = F.conv2d if op.kind == "conv2d" else F.conv1d
                y = conv(ins[0], torch.as_tensor(p["w"]), torch.as_tensor(p["b"]), stride=p["stride"],
                         padding=p["padding"], dilation=p["dilation"], groups=p["groups"])
            elif op.kind == "relu":
                y = torch.relu(ins[0])
                if p.get("clip") is not None:
                    y = torch.clamp(y, max=float(p["clip"]))
            elif op.kind == "avgpool":
                y = F.avg_pool2d(ins[0], p["kernel"], p["stride"], p["padding"], count_include_pad=True)
            elif op.kind == "flatten":
                y = ins[0].reshape(ins[0].shape[0], -1)
            elif op.kind == "add":
                y = ins[0]
                for t in ins[1:]:
                    y = y + t.reshape(y.shape)
            else:
                raise UnsupportedError(f"internal: unknown op kind {op.kind}", node=op.name)
            acts[op.name] = y
    return {k: v.numpy() for k, v in acts.items()}


# --------------------------------------------------------------------------- conversion

_PASS = ("avgpool", "flatten")


def _target_scale(ann: AnnGraph, name: str, lam: dict[str, float]) -> float:
    """Scale of the neuron that a linear chain starting at `name` ends in."""
    if name == ann.output and ann.ops[name].kind != "relu":
        return lam["__output__"]
    cons = ann.consumers(name)
    scales = set()
    for c in cons:
        op = ann.ops[c]
        if op.kind == "relu":
            scales.add(lam[c])
        elif op.kind in _PASS or op.kind == "add":
            scales.add(_target_scale(ann, c, lam))
        else:
            raise UnsupportedError(f"{op.kind} directly after a linear layer without ReLU between them "
                                   f"(fold it into one layer)", node=c)
    if len(scales) != 1:
        raise UnsupportedError("a linear layer feeds several neuron layers; not supported", node=name)
    return scales.pop()


def _calibration_array(calibration: Any, input_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Calibration samples (N, *input_shape) in the one calibration format (`spikeforge.calibration`).

    `analog` (N, *input_shape) is used as it is; without it, spike trains (T, N, *input_shape) under the
    input's name are averaged over time (the rate is what the converted network sees).
    """
    from spikeforge.calibration import analog_samples, read_calibration

    if calibration is None:
        raise InputError("ANN-to-SNN conversion needs calibration data (a few hundred typical inputs): "
                         "--calibration FILE.npz with 'analog' (N, *input_shape) (Python: calibration=...)")
    return analog_samples(read_calibration(calibration), input_shape)


def to_snn(ann: AnnGraph, calibration: Any, *, timesteps: int = 100, percentile: float = 99.9,
           dt: float = 1e-3, input_scale: float | None = None, reset: str = "subtract") -> nir.NIRGraph:
    """Convert a parsed ANN into an IF-neuron NIR graph, normalised on calibration data.

    `reset` = "zero" converts for a chip whose neurons reset to zero (Loihi's compartments, SpiNNaker's
    IF_curr_*): the float reference is then the SNN that chip can run exactly, and what reset to zero
    costs against reset by subtraction is measured on the calibration data and reported as a warning."""
    if reset not in RESETS:
        raise InputError(f"reset must be one of {RESETS}, got {reset!r}", field="reset")
    x = _calibration_array(calibration, ann.input_shape)
    if not 0 < percentile <= 100:
        raise InputError(f"percentile must be in (0, 100], got {percentile}")
    acts = evaluate(ann, x)
    lam: dict[str, float] = {}
    for op in ann.ops.values():
        if op.kind == "relu":
            a = acts[op.name]
            lam[op.name] = float(np.percentile(a, percentile)) if np.any(a > 0) else 1.0
            lam[op.name] = max(lam[op.name], 1e-6)
    out_act = acts[ann.output]
    pos = out_act[out_act > 0]
    lam["__output__"] = max(float(np.percentile(pos, percentile)) if pos.size else 1.0, 1e-6)
    s_in = float(input_scale) if input_scale is not None else 1.0

    scale: dict[str, float] = {}
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    outs: dict[str, list[str]] = {}

    def shape(name: str) -> tuple[int, ...]:
        return tuple(int(v) for v in acts[name].shape[1:])

    def connect(src_op: str, dst: str) -> None:
        edges.extend((s, dst) for s in outs[src_op])

    for op in ann.ops.values():
        p = op.params
        meta = {"spikeforge.source_op": op.source or op.kind}
        if op.kind == "input":
            nodes[op.name] = nir.Input(input_type={"input": np.array(ann.input_shape)},
                                       metadata={"spikeforge.encoding": "analog current (constant each step)"})
            scale[op.name] = s_in
            outs[op.name] = [op.name]
            continue
        src = op.inputs[0]
        if op.kind in ("linear", "conv1d", "conv2d"):
            tgt = _target_scale(ann, op.name, lam)
            w = np.asarray(p["w"], np.float64) * scale[src] / tgt
            b = np.asarray(p["b"], np.float64) / tgt
            meta["spikeforge.weight_scale"] = scale[src] / tgt
            if op.kind == "linear":
                node: nir.NIRNode = nir.Affine(weight=w.astype(np.float32), bias=b.astype(np.float32), metadata=meta)
            elif op.kind == "conv2d":
                node = nir.Conv2d(input_shape=shape(src)[1:], weight=w.astype(np.float32), stride=p["stride"],
                                  padding=p["padding"], dilation=p["dilation"], groups=p["groups"],
                                  bias=b.astype(np.float32), metadata=meta)
            else:
                node = nir.Conv1d(input_shape=shape(src)[1], weight=w.astype(np.float32), stride=p["stride"][0],
                                  padding=p["padding"][0], dilation=p["dilation"][0], groups=p["groups"],
                                  bias=b.astype(np.float32), metadata=meta)
            nodes[op.name] = node
            connect(src, op.name)
            scale[op.name] = tgt
            outs[op.name] = [op.name]
        elif op.kind == "relu":
            if any(scale[i] != lam[op.name] for i in op.inputs):
                raise UnsupportedError("ReLU not preceded by a linear layer (cannot normalise)", node=op.name)
            meta.update(NEURON_META, **{"spikeforge.reset": reset})
            meta.update({"spikeforge.converted_from": "relu", "spikeforge.lambda": lam[op.name],
                         "spikeforge.percentile": float(percentile)})
            if p.get("clip") is not None:
                meta["spikeforge.clip_ignored"] = float(p["clip"])
            shp = shape(op.name)
            nodes[op.name] = nir.IF(r=np.ones(shp, np.float32), v_threshold=np.ones(shp, np.float32),
                                    v_reset=np.zeros(shp, np.float32), metadata=meta)
            connect(src, op.name)
            scale[op.name] = lam[op.name]
            outs[op.name] = [op.name]
        elif op.kind == "avgpool":
            k, s, pad = (np.array(p[key], dtype=int) for key in ("kernel", "stride", "padding"))
            node = nir.AvgPool2d(kernel_size=k, stride=s, padding=pad, metadata=meta)
            node.input_type = {"input": np.array(shape(src))}
            node.output_type = {"output": np.array(shape(op.name))}
            nodes[op.name] = node
            connect(src, op.name)
            scale[op.name] = scale[src]
            outs[op.name] = [op.name]
        elif op.kind == "flatten":
            nodes[op.name] = nir.Flatten(input_type={"input": np.array(shape(src))}, start_dim=0, end_dim=-1,
                                         metadata=meta)
            connect(src, op.name)
            scale[op.name] = scale[src]
            outs[op.name] = [op.name]
        elif op.kind == "add":
            tgt = _target_scale(ann, op.name, lam)
            outs[op.name] = []
            for i in op.inputs:
                if abs(scale[i] - tgt) <= 1e-12 * max(1.0, tgt):
                    outs[op.name].extend(outs[i])
                else:
                    sname = f"{op.name}_scale_{i}"
                    nodes[sname] = nir.Scale(scale=np.full(shape(i), scale[i] / tgt, np.float32),
                                             metadata={"spikeforge.source_op": "branch rescale for add"})
                    connect(i, sname)
                    outs[op.name].append(sname)
            scale[op.name] = tgt
        else:
            raise UnsupportedError(f"internal: unknown op kind {op.kind}", node=op.name)

    last = ann.output
    if ann.ops[last].kind != "relu":
        shp = shape(last)
        meta = dict(NEURON_META, **{"spikeforge.reset": reset})
        meta.update({"spikeforge.converted_from": "output layer (logits)", "spikeforge.lambda": lam["__output__"],
                     "spikeforge.percentile": float(percentile)})
        nodes["output_if"] = nir.IF(r=np.ones(shp, np.float32), v_threshold=np.ones(shp, np.float32),
                                    v_reset=np.zeros(shp, np.float32), metadata=meta)
        connect(last, "output_if")
        last_names = ["output_if"]
    else:
        last_names = outs[last]
    nodes["output"] = nir.Output(output_type={"output": np.array(shape(ann.output))})
    edges.extend((s, "output") for s in last_names)
    metadata = {
        G.DT_KEY: float(dt),
        "spikeforge.frontend": ann.source or "ann",
        "spikeforge.conversion": f"ANN-to-SNN, IF neurons, reset {RESET_WORDS[reset]}, data-based normalisation",
        "spikeforge.timesteps": int(timesteps),
        "spikeforge.percentile": float(percentile),
        "spikeforge.input_encoding": "analog",
    }
    g = G.validate(nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=False))
    if reset == "zero":
        G.add_warning(g, reset_cost(g, x, timesteps, dt))
    return g


#: reset modes the converter can target
RESETS = ("subtract", "zero")
RESET_WORDS = {"subtract": "by subtraction", "zero": "to zero"}
#: calibration samples the reset comparison runs on (bounded: it is two float simulations at compile time)
RESET_COST_SAMPLES = 256


def reset_cost(graph: nir.NIRGraph, x: np.ndarray, timesteps: int, dt: float) -> str:
    """What converting with reset to zero costs: argmax agreement with the reset-by-subtraction SNN on
    calibration samples (no labels needed), and the output spike totals of both."""
    from spikeforge.emulators.reference import simulate_trace

    xs = np.asarray(x[:RESET_COST_SAMPLES], np.float32)
    drive = {G.input_nodes(graph)[0]: encode(xs, int(timesteps))}
    sub = nir.NIRGraph(nodes={k: _with_reset(v, "subtract") for k, v in graph.nodes.items()},
                       edges=list(graph.edges), metadata=dict(graph.metadata), type_check=False)
    counts = []
    for gg in (graph, sub):
        out = simulate_trace(gg, dt, drive).outputs
        counts.append(np.concatenate([np.asarray(v).sum(0).reshape(len(xs), -1) for _, v in sorted(out.items())], 1))
    agree = float((counts[0].argmax(1) == counts[1].argmax(1)).mean())
    return (f"ANN conversion targets a chip that resets to zero: IF neurons reset to zero (Rueckauer et al. 2017); "
            f"on {len(xs)} calibration samples its predictions agree {agree:.1%} with the reset-by-subtraction "
            f"conversion ({counts[0].sum():.0f} vs {counts[1].sum():.0f} output spikes). verify compares the chip "
            "with this reset-to-zero SNN")


def _with_reset(node: nir.NIRNode, reset: str) -> nir.NIRNode:
    meta = getattr(node, "metadata", None)
    if not meta or "spikeforge.reset" not in meta:
        return node
    from dataclasses import replace

    return replace(node, metadata={**meta, "spikeforge.reset": reset})


# --------------------------------------------------------------------------- running converted networks


def encode(x: np.ndarray, timesteps: int, encoding: str = "analog", seed: int = 0) -> np.ndarray:
    """(B, ...) -> (T, B, ...): the analog value every step, or Bernoulli spikes with p = clip(x, 0, 1)."""
    x = np.asarray(x, np.float32)
    if encoding == "analog":
        return np.broadcast_to(x, (timesteps, *x.shape)).copy()
    if encoding == "poisson":
        rng = np.random.default_rng(seed)
        return (rng.random((timesteps, *x.shape)) < np.clip(x, 0, 1)).astype(np.float32)
    raise InputError(f"unknown input encoding {encoding!r}; use 'analog' or 'poisson'")


def accuracy_vs_timesteps(graph: nir.NIRGraph, x: np.ndarray, labels: np.ndarray, steps: list[int],
                          encoding: str = "analog", seed: int = 0) -> dict[int, float]:
    """Classification accuracy (argmax of output spike counts) after each number of steps, one run."""
    from spikeforge import refsim

    T = int(max(steps))
    res = refsim.simulate(graph, encode(x, T, encoding, seed))
    out = next(iter(res.outputs.values()))
    counts = np.cumsum(out.reshape(T, out.shape[1], -1), axis=0)
    labels = np.asarray(labels)
    acc = {}
    for t in steps:
        if not 1 <= t <= T:
            raise SpikeforgeError(f"time step count {t} outside 1..{T}")
        acc[int(t)] = float((counts[t - 1].argmax(axis=1) == labels).mean())
    return acc
