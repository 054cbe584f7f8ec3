"""Lowering: an NIR MLP (Affine + nonlinearity, or a spiking chain) -> an optical DFA training program.

The program says which layers receive optical feedback (feedback points), where each layer's slice
of the projection lies on the camera (layout), how the output error is encoded on the DMD
(ternarisation threshold, frames per vector, macro-pixel factor, anchor size), how the camera
exposure is set, and the per-layer feedback gains calibrated on one batch. DFA-hostile structures
are refused or handled as the user asks (options.extra):

* convolutional stacks (DFA does not train conv stacks well: Launay, Poli & Krzakala 2019, 'Principled
  training of NNs with DFA'; Bartunov et al. 2018, 'Assessing the scalability of biologically-motivated
  deep learning algorithms'): a front end of Conv1d/Conv2d, neurons, SumPool2d/AvgPool2d and Flatten in
  front of the Affine head is kept off the OPU, as `extra["conv"]` says: "backprop" (default, with a
  warning; trained on the host by backprop of the first head layer's DFA delta), "freeze" (the graph's
  conv weights are a fixed feature extractor) or "refuse". Conv nodes after the first Affine are refused.
* hidden layers narrower than the output (the bottleneck effect: a width-w layer cannot carry a
  C-dimensional error when w < C): `extra["narrow"]` = "bp" (default; backprop from the layer above),
  "freeze", "dfa" (force) or "refuse".
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch

from spikeforge import graph as G
from spikeforge.boards import Board
from spikeforge.errors import GraphError, InputError, UnsupportedError
from spikeforge.interfaces import CompileOptions
from spikeforge.threads import torch_single_thread

from .dfa import (
    FeatureSpec,
    Feedback,
    LayerSpec,
    MLPTrainer,
    OpticalFeedback,
    SpikingTrainer,
    apply_feature,
    ternarise,
)

NEURONS = (nir.IF, nir.LIF, nir.CubaLIF, nir.Threshold)
READOUTS = (nir.LI, nir.CubaLI, nir.I)
PASSIVE = (nir.Flatten, nir.Delay)
CONV = (nir.Conv1d, nir.Conv2d, nir.SumPool2d, nir.AvgPool2d)

#: defaults of the training program (each can be overridden with options.extra[key])
DEFAULTS: dict[str, Any] = {
    "threshold": 0.01,       # ternarisation: |e_j| below it -> 0; rows with max|e| below it cost no frame
    "ternary_mode": "stochastic",  # or "threshold": sign(e_j) where |e_j| > threshold x max|e|
    "epochs": 30,
    "batch": 32,
    "lr": 1e-3,
    "narrow": "bp",
    "conv": "backprop",      # convolutional front end: backprop | freeze | refuse (see module docstring)
    "init": "random",        # random (seeded, like torch.nn.Linear) or graph (fine-tune the graph's weights)
    "train_mode": "auto",    # auto: LIF graphs time-stepped ("spiking"), others as their rate/ReLU equivalent ("rate")
    "verify_epochs": 8,
    "min_alignment": 0.05,
    "min_accuracy": 0.75,
    "max_gap_to_dfa": 0.05,
    "max_gap_to_bp": 0.10,   # optical DFA vs backprop on the same data and seed (DFA trails BP by a few points)
    "max_samples": 2000,
}


def chain(graph: nir.NIRGraph) -> list[str]:
    """The graph's nodes from Input to Output; refuses branches and loops (DFA programs are feed-forward chains)."""
    sched = G.schedule(graph)
    if sched.recurrent:
        s, d = sched.recurrent[0]
        raise UnsupportedError(f"recurrent edge {s} -> {d}: the photonic DFA backend trains feed-forward chains only",
                               node=d)
    ins = G.input_nodes(graph)
    outs = G.output_nodes(graph)
    if len(ins) != 1 or len(outs) != 1:
        raise UnsupportedError(f"the photonic DFA backend needs exactly one Input and one Output node (DFA projects "
                               f"one classifier's output error onto the hidden layers); the graph has "
                               f"{len(ins)} Input(s) {ins} and {len(outs)} Output(s) {outs}",
                               hint="export only the classifier's output")
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for s, d in graph.edges:
        succ[s].append(d)
    order, cur = [ins[0]], ins[0]
    while succ[cur]:
        if len(succ[cur]) > 1:
            raise UnsupportedError(f"node fans out to {succ[cur]}; only chains (MLPs) can be trained with DFA here",
                                   node=cur)
        cur = succ[cur][0]
        order.append(cur)
    if len(order) != len(graph.nodes):
        raise UnsupportedError("graph is not a single chain from Input to Output (branches or stray nodes)")
    return order


def neuron_params(node: nir.NIRNode, graph: nir.NIRGraph, dt: float) -> dict[str, Any]:
    """Euler (or exact, per the graph's conventions) step v = keep v + gain I of a spiking node; its threshold and reset."""
    meta = {**(graph.metadata or {}), **(getattr(node, "metadata", None) or {})}
    w = int(np.asarray(node.v_threshold if hasattr(node, "v_threshold") else node.threshold).size)
    if isinstance(node, nir.Threshold):
        keep, gain, th = np.zeros(w), np.ones(w), np.asarray(node.threshold, np.float64)
    elif isinstance(node, nir.IF):
        keep, gain, th = np.ones(w), np.asarray(node.r, np.float64), np.asarray(node.v_threshold, np.float64)
    else:
        tau = np.asarray(node.tau_mem if isinstance(node, nir.CubaLIF) else node.tau, np.float64)
        if str(meta.get("spikeforge.integration", "euler")) == "exact":
            keep, into = np.exp(-dt / tau), -np.expm1(-dt / tau)
        else:
            keep, into = 1.0 - dt / tau, dt / tau
        gain, th = into * np.asarray(node.r, np.float64), np.asarray(node.v_threshold, np.float64)
    f32 = lambda a: np.broadcast_to(np.asarray(a, np.float64), (w,)).astype(np.float32)  # noqa: E731
    return {"keep": f32(keep), "gain": f32(gain), "v_th": f32(th), "reset": str(meta.get("spikeforge.reset", "zero"))}


CONV_POLICIES = {"backprop": "bp", "bp": "bp", "freeze": "freeze", "refuse": "refuse"}
CONV_WHY = "DFA is known to fail on convolutional stacks (Launay, Poli & Krzakala 2019; Bartunov et al. 2018)"


def _ints(v: Any, n: int) -> list[int]:
    a = np.atleast_1d(np.asarray(v)).astype(int).ravel()
    return [int(a[0])] * n if a.size == 1 else [int(x) for x in a[:n]]


def front_end_op(name: str, node: nir.NIRNode, role: str) -> FeatureSpec:
    """A FeatureSpec for a conv / pool / flatten node of the front end (conventions of the reference simulator)."""
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        dims = 2 if isinstance(node, nir.Conv2d) else 1
        w = np.asarray(node.weight, np.float32)
        b = getattr(node, "bias", None)
        b = np.zeros(w.shape[0], np.float32) if b is None else np.asarray(b, np.float32).reshape(-1)
        if b.size == 1 and w.shape[0] > 1:
            b = np.full(w.shape[0], float(b[0]), np.float32)
        pad = node.padding if isinstance(node.padding, str) else _ints(node.padding, dims)
        return FeatureSpec(name, "conv", w, b, role, {
            "dims": dims, "stride": _ints(node.stride, dims), "padding": pad,
            "dilation": _ints(node.dilation, dims), "groups": int(node.groups)})
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return FeatureSpec(name, "pool", params={
            "kernel": _ints(node.kernel_size, 2), "stride": _ints(node.stride, 2), "padding": _ints(node.padding, 2),
            "sum": isinstance(node, nir.SumPool2d)})
    return FeatureSpec(name, "flatten")


def front_end_shapes(features: list[FeatureSpec], input_shape: tuple[int, ...]) -> list[dict[str, Any]]:
    """Input/output shape and forward multiply-accumulates per sample of each front-end op (by a dry run)."""
    h = torch.zeros((1, *input_shape))
    out = []
    with torch.no_grad():
        for f in features:
            w = None if f.weight is None else torch.as_tensor(f.weight)
            b = None if f.bias is None else torch.as_tensor(f.bias)
            try:
                y = apply_feature(f, h, w, b)
            except RuntimeError as exc:
                raise GraphError(f"front-end op cannot take an input of shape {tuple(h.shape[1:])}: {exc}",
                                 node=f.name) from None
            macs = int(y[0].numel() * np.prod(f.weight.shape[1:])) if f.kind == "conv" and f.weight is not None else 0
            out.append({"in_shape": list(h.shape[1:]), "out_shape": list(y.shape[1:]), "macs": macs})
            h = y
    return out


def extract_layers(graph: nir.NIRGraph, narrow: str = "bp", dt: float = 1e-3, conv: str = "backprop"
                   ) -> tuple[list[LayerSpec], str, list[str], dict[str, Any]]:
    """Affine layers with their activation, neuron and role; whether the graph is a native SNN (LIF); warnings;
    the convolutional front end ({"features": [FeatureSpec], "input_shape": shape}, empty without one)."""
    if narrow not in ("bp", "freeze", "dfa", "refuse"):
        raise UnsupportedError(f"extra narrow={narrow!r}; allowed: bp, freeze, dfa, refuse", field="narrow")
    if conv not in CONV_POLICIES:
        raise UnsupportedError(f"extra conv={conv!r}; allowed: backprop, freeze, refuse", field="conv")
    conv_role = CONV_POLICIES[conv]
    layers: list[LayerSpec] = []
    features: list[FeatureSpec] = []
    spiking = False
    warnings: list[str] = []
    order = chain(graph)
    for name in order:
        node = graph.nodes[name]
        if isinstance(node, CONV):
            if conv_role == "refuse" and isinstance(node, (nir.Conv1d, nir.Conv2d)):
                raise UnsupportedError(f"{type(node).__name__} layer: {CONV_WHY}", node=name,
                                       hint="pass extra conv=backprop or conv=freeze to keep the convolutional "
                                            "stack off the OPU, or compile only the MLP head")
            if layers:
                raise UnsupportedError(f"{type(node).__name__} after the Affine layer '{layers[-1].name}': only a "
                                       "convolutional front end in front of the MLP head is supported", node=name,
                                       hint="move the convolutions before the first Affine layer")
            features.append(front_end_op(name, node, conv_role))
            if features[-1].kind == "conv":
                warnings.append(f"{type(node).__name__} layer '{name}': {CONV_WHY}; kept off the OPU and "
                                + ("trained by backprop of the first head layer's DFA delta (conv=backprop)"
                                   if conv_role == "bp" else "frozen at the graph's weights (conv=freeze)"))
            continue
        if isinstance(node, nir.Flatten) and features and not layers:
            features.append(front_end_op(name, node, "fixed"))
            continue
        if isinstance(node, NEURONS) and features and not layers:
            features.append(FeatureSpec(name, "relu"))
            spiking = spiking or isinstance(node, (nir.LIF, nir.CubaLIF))
            continue
        if isinstance(node, (nir.Affine, nir.Linear)):
            w = np.asarray(node.weight, dtype=np.float32)
            if w.ndim != 2:
                raise UnsupportedError(f"weight of rank {w.ndim}; expected a (out, in) matrix", node=name, field="weight")
            b = np.asarray(getattr(node, "bias", np.zeros(w.shape[0])), dtype=np.float32).reshape(-1)
            if b.size == 1 and w.shape[0] > 1:
                b = np.full(w.shape[0], float(b[0]), dtype=np.float32)
            if layers and layers[-1].weight.shape[0] != w.shape[1]:
                raise GraphError(f"layer expects {w.shape[1]} inputs but the previous layer has "
                                 f"{layers[-1].weight.shape[0]} outputs", node=name, field="weight")
            layers.append(LayerSpec(name=name, weight=w, bias=b, act="none"))
        elif isinstance(node, NEURONS):
            if not layers:
                raise UnsupportedError("neuron layer before any Affine layer: nothing to train", node=name)
            layers[-1].act = "relu"
            layers[-1].neuron = neuron_params(node, graph, dt)
            spiking = spiking or isinstance(node, (nir.LIF, nir.CubaLIF))
            if isinstance(node, nir.CubaLIF):
                warnings.append(f"'{name}': CubaLIF trained as LIF with tau_mem (synaptic current ignored)")
        elif isinstance(node, READOUTS + PASSIVE + (nir.Input, nir.Output)):
            continue
        elif isinstance(node, nir.Scale):
            raise UnsupportedError("Scale nodes are not supported by the DFA program (fold them into the Affine)",
                                   node=name)
        else:
            raise UnsupportedError(f"{type(node).__name__} is not supported by the photonic DFA backend", node=name)
    if len(layers) < 2:
        raise UnsupportedError(f"DFA needs at least one hidden layer; the graph has {len(layers)} Affine layer(s) "
                               "(the OPU projects the output error onto hidden Affine layers, and a convolutional "
                               "front end learns through the first one: with none, nothing would run on the OPU)")
    out = layers[-1]
    out.role, out.act = "output", "none"  # (a spiking output keeps its neuron: counts are the logits)
    n_classes = out.width
    for spec in layers[:-1]:
        spec.role = "dfa"
        if spec.width < n_classes:
            why = (f"layer '{spec.name}' has {spec.width} units, fewer than the {n_classes} outputs: DFA's feedback "
                   "cannot carry the error through this bottleneck")
            if narrow == "refuse":
                raise UnsupportedError(why, node=spec.name, hint="pass extra narrow=bp or narrow=freeze")
            spec.role = "dfa" if narrow == "dfa" else narrow
            warnings.append(f"{why}; trained by {'backprop' if narrow == 'bp' else narrow}")
    if layers[0].role == "bp":
        layers[0].role = "freeze"
        warnings.append(f"layer '{layers[0].name}' cannot be backprop-trained without a DFA layer above; frozen")
    for i, spec in enumerate(layers[:-1]):
        if spec.role == "bp" and layers[i + 1].role not in ("dfa", "bp", "output"):
            spec.role = "freeze"
    front: dict[str, Any] = {}
    if features:
        input_shape = tuple(int(d) for d in (G.node_shape(graph.nodes[order[0]], "output") or ()))
        if not input_shape:
            raise GraphError("the Input node of a convolutional graph needs a shape", node=order[0])
        shapes = front_end_shapes(features, input_shape)
        n_feat = int(np.prod(shapes[-1]["out_shape"]))
        if n_feat != layers[0].weight.shape[1]:
            raise GraphError(f"the convolutional front end yields {n_feat} features but '{layers[0].name}' expects "
                             f"{layers[0].weight.shape[1]}", node=layers[0].name, field="weight")
        if conv_role == "bp" and layers[0].role == "freeze":
            for f in features:
                if f.kind == "conv":
                    f.role = "freeze"
            warnings.append(f"layer '{layers[0].name}' is frozen, so no delta reaches the convolutional front end: "
                            "its convolutions are frozen too")
        front = {"features": features, "input_shape": input_shape, "shapes": shapes}
    return layers, ("snn" if spiking else "ann"), warnings, front


def layout(layers: list[LayerSpec], camera_pixels: int) -> dict[str, Any]:
    """Each DFA layer its own columns (concatenated) when they fit the camera; else shared leading slices."""
    fb = [s for s in layers if s.role == "dfa"]
    total = sum(s.width for s in fb)
    if not fb:
        return {"layout": "none", "n_out": 0}
    if total <= camera_pixels:
        off = 0
        for s in fb:
            s.offset = off
            off += s.width
        return {"layout": "concatenated", "n_out": total}
    widest = max(s.width for s in fb)
    if widest > camera_pixels:
        raise UnsupportedError(f"a hidden layer of {widest} units exceeds the camera's {camera_pixels} pixels",
                               node=max(fb, key=lambda s: s.width).name)
    for s in fb:
        s.offset = 0
    return {"layout": "shared", "n_out": widest}


def as_samples(x: np.ndarray, n_in: int, what: str) -> np.ndarray:
    """(N, *input) samples, or (T, N, *input) spike trains as their rates, -> (N, n_in) float32."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim >= 2 and int(np.prod(x.shape[1:])) == n_in:
        return x.reshape(x.shape[0], n_in)
    if x.ndim >= 3 and int(np.prod(x.shape[2:])) == n_in:
        return x.mean(axis=0).reshape(x.shape[1], n_in)
    raise InputError(f"expected samples (N, {n_in}) or spike trains (T, N, {n_in}), found shape {x.shape}",
                     file=what)


def load_training_data(options: CompileOptions, n_in: int, n_classes: int, max_samples: int
                       ) -> tuple[dict[str, np.ndarray] | None, str]:
    """Data for gain calibration and `verify`: extra["train_data"] (.npz with x/y), else sklearn's digits."""
    path = options.extra.get("train_data", options.extra.get("photonic.train_data"))
    if path:
        p = Path(str(path))
        if not p.exists():
            raise InputError("training data file not found", file=str(p))
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            xk = next((k for k in ("x", "input", "data") if k in keys), None)
            yk = next((k for k in ("y", "labels", "target") if k in keys), None)
            if xk is None or yk is None:
                raise InputError(f"needs arrays x (or input) and y (or labels); found {sorted(keys)}", file=str(p))
            x, y = np.asarray(z[xk], dtype=np.float32), np.asarray(z[yk]).astype(np.int64)
        x = as_samples(x, n_in, str(p))
        source = f"file {p.name}"
    elif n_in == 64 and n_classes == 10:
        try:
            from spikeforge.models import digits_split

            xtr, xte, ytr, yte = digits_split(0)
        except ImportError:
            return None, "none (scikit-learn not installed; pass extra train_data=FILE.npz)"
        # the bundled models' own split: their test samples (bundled digits_inputs.npz, what users verify with)
        # are never trained on, so verify's test on the user's labelled inputs is held out
        rng = np.random.default_rng(int(options.seed))
        tr = rng.permutation(len(xtr))[:max(1, int(round(0.8 * max_samples)))]
        te = rng.permutation(len(xte))[:max(1, max_samples - len(tr))]
        return ({"x_train": xtr[tr], "y_train": ytr[tr], "x_test": xte[te], "y_test": yte[te]},
                "sklearn digits / 16, the bundled models' training split (spikeforge.models.digits_split)")
    else:
        return None, "none (pass extra train_data=FILE.npz with x and y)"
    if x.shape[1] != n_in:
        raise InputError(f"training data has {x.shape[1]} features, the graph's input has {n_in}")
    if y.shape != (x.shape[0],):
        raise InputError(f"training data has {x.shape[0]} samples but labels of shape {y.shape}")
    if y.min() < 0 or y.max() >= n_classes:
        raise InputError(f"labels must lie in [0, {n_classes}); found [{y.min()}, {y.max()}]")
    rng = np.random.default_rng(int(options.seed))
    perm = rng.permutation(x.shape[0])[:max_samples]
    n_train = int(round(0.67 * len(perm)))
    tr, te = perm[:n_train], perm[n_train:]
    return {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}, source


def no_training_data(n_in: int, n_classes: int, front: dict[str, Any], source: str) -> UnsupportedError:
    """The refusal for a graph no training data fits: a DFA program is calibrated and verified by training.

    Why refuse: the feedback gains are measured on a labelled batch at compile time, and verify's evidence is a
    training run; without labels neither exists (labels made by the float model on the verify inputs gave a
    check that measured the sample count, not the OPU: 11 held-out random frames for cnn_sinabs)."""
    shape = f" ({'x'.join(str(d) for d in front['input_shape'])})" if front else ""
    why = "; scikit-learn, which provides it, is not installed" if "scikit-learn" in source else ""
    return UnsupportedError(
        f"optical DFA trains the network, so its program needs labelled training data (the feedback gains are "
        f"calibrated on a training batch at compile time and verify trains on it): none fits this graph's "
        f"{n_in} inputs{shape} and {n_classes} classes (the embedded default is sklearn digits, 64 inputs -> 10 "
        f"classes{why})",
        hint=f"pass --set photonic.train_data=FILE.npz with x (N, {n_in}) or spike trains (T, N, {n_in}) and labels "
             f"y (N,) in [0, {n_classes})")


def macro_factor(board: Board, n_features: int, n_anchor: int) -> int:
    """Mirrors per feature so the dimmest frame (anchor + one error class) reaches the target mean at max exposure."""
    flux = float(board.value("physics.flux_per_mirror"))
    t_max = float(board.value("timing.exposure")) * 1e6
    target = float(board.value("physics.target_mean_counts"))
    m = math.ceil(target / (flux * t_max * (n_anchor + 1)))
    cap = int(board.value("limits.dmd_mirrors")) // (n_features + n_anchor)
    return max(1, min(m, cap))


def camera_from_board(board: Board, **changes: Any) -> Any:
    from spikeforge.emulators.opu import CameraConfig

    cam = CameraConfig(
        bits=int(board.value("arithmetic.camera_bits")),
        flux=float(board.value("physics.flux_per_mirror")),
        target_mean=float(board.value("physics.target_mean_counts")),
        exposure_us=float(board.value("timing.exposure")) * 1e6,
        read_noise=float(board.value("physics.read_noise_counts")),
        dark_offset=float(board.value("physics.dark_offset_counts")),
        electrons_per_count=float(board.value("physics.electrons_per_count")),
    )
    for k, v in changes.items():
        setattr(cam, k, v)
    return cam


def _calibrate(layers: list[LayerSpec], board: Board, data: dict[str, np.ndarray], n_classes: int, n_out: int,
               seed: int, threshold: float, tmode: str, macro: int, n_anchor: int, gains: dict[str, float],
               init: str, spiking: dict[str, Any] | None, front: dict[str, Any]) -> dict[str, Any]:
    """Per-layer feedback gains (updated in `gains`), exposure and error statistics on one batch through the emulator."""
    xb = torch.tensor(data["x_train"][:128])
    yb = torch.tensor(data["y_train"][:128])
    fb = OpticalFeedback(n_classes, n_out, seed=seed + 1000, threshold=threshold, mode=tmode, macro=macro,
                         n_anchor=n_anchor, camera=camera_from_board(board))
    if spiking:
        trainer: MLPTrainer = SpikingTrainer(layers, "odfa", seed=seed, feedback=fb, init=init, **spiking)
    else:
        trainer = MLPTrainer(layers, "odfa", seed=seed, feedback=fb, init=init, features=front.get("features"),
                             input_shape=front.get("input_shape"))
    gains.update(trainer.calibrate_gains(xb, yb))
    with torch.no_grad():
        logits = trainer.forward(xb)[1][-1]
        e = torch.softmax(logits, 1) - torch.nn.functional.one_hot(yb, n_classes).float()
        t, scale = ternarise(e, threshold, tmode, torch.Generator().manual_seed(seed))
    return {
        "batch": int(xb.shape[0]),
        "nonzero_error_fraction": float((scale > 0).float().mean()),
        "mean_on_per_vector": float((t != 0).sum(1).float().mean()),
        "exposure_us": fb.projector.device.last_exposure_us,
        "saturated_fraction": fb.projector.device.counters()["saturated_fraction"],
    }


def build_program(graph: nir.NIRGraph, board: Board, options: CompileOptions) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The DFA training program (JSON-able meta) and its arrays (initial weights, embedded data)."""
    cfg = dict(DEFAULTS)
    extra = {(k[len("photonic."):] if k.startswith("photonic.") else k): v for k, v in options.extra.items()}
    for k, v in extra.items():
        if k in DEFAULTS:
            try:
                cfg[k] = type(DEFAULTS[k])(v)
            except (TypeError, ValueError):
                raise UnsupportedError(f"extra {k}={v!r} is not a {type(DEFAULTS[k]).__name__}", field=k) from None
    dt = float(G.get_dt(graph, options.dt) or 1e-3)
    layers, kind, warnings, front = extract_layers(graph, str(cfg["narrow"]), dt, str(cfg["conv"]))
    mode = str(cfg["train_mode"])
    if mode not in ("auto", "rate", "spiking"):
        raise UnsupportedError(f"train_mode={mode!r}; allowed: auto, rate, spiking", field="train_mode")
    if mode == "auto":
        mode = "spiking" if kind == "snn" else "rate"
    if mode == "spiking" and all(s.neuron is None for s in layers):
        raise UnsupportedError("train_mode=spiking needs spiking neurons (IF/LIF) after the Affine layers")
    if mode == "spiking" and front:
        raise UnsupportedError("a convolutional front end is trained in rate mode only (time-stepped DFA through "
                               "spiking convolutions is not implemented)", node=front["features"][0].name,
                               hint="pass extra train_mode=rate (LIF layers trained as their rate/ReLU equivalent)")
    if mode == "spiking" and any(s.role in ("bp", "freeze") for s in layers):
        warnings.append("spiking mode keeps bp/freeze layers frozen (no backprop path through time in DFA mode)")
    timesteps = int(options.timesteps or 20)
    if mode == "spiking" and "lr" not in extra:
        cfg["lr"] = 2e-3  # surrogate-gradient SNNs learn slower at 1e-3 within a short verify run
    n_classes = layers[-1].width
    n_in = int(np.prod(front["input_shape"])) if front else int(layers[0].weight.shape[1])
    lay = layout(layers, int(board.value("limits.camera_pixels")))
    n_anchor = max(1, n_classes // 2)
    macro = macro_factor(board, n_classes, n_anchor)
    data, source = load_training_data(options, n_in, n_classes, int(cfg["max_samples"]))
    spk = {"timesteps": timesteps, "out_scale": 5.0 / timesteps} if mode == "spiking" else None
    seed = int(options.seed)
    threshold = float(cfg["threshold"])
    tmode = str(cfg["ternary_mode"])
    if cfg["init"] not in ("random", "graph"):
        raise UnsupportedError(f"init={cfg['init']!r}; allowed: random, graph", field="init")
    if tmode not in ("stochastic", "threshold"):
        raise UnsupportedError(f"ternary_mode={tmode!r}; allowed: stochastic, threshold", field="ternary_mode")
    if data is None:
        raise no_training_data(n_in, n_classes, front, source)
    gains = {s.name: 1.0 for s in layers if s.role == "dfa"}
    calib: dict[str, Any] = {"data": source}
    if lay["n_out"] > 0:
        with torch_single_thread():
            calib.update(_calibrate(layers, board, data, n_classes, lay["n_out"], seed, threshold, tmode, macro,
                                    n_anchor, gains, str(cfg["init"]), spk, front))
    flux = float(board.value("physics.flux_per_mirror"))
    target = float(board.value("physics.target_mean_counts"))
    t_max = float(board.value("timing.exposure")) * 1e6
    program = {
        "mode": mode,
        "loss": ("cross-entropy on output spike counts x out_scale (count-coded), rate-coded inputs; one projection "
                 "per sample serves all time steps" if mode == "spiking" else
                 "cross-entropy on the output layer's values; spiking (IF) layers trained as their rate (ReLU) "
                 "equivalent" if kind == "ann" and any(s.neuron for s in layers) else
                 "cross-entropy on the output layer's values"),
        "spiking": spk,
        "layers": [{"name": s.name, "in": int(s.weight.shape[1]), "out": s.width, "act": s.act, "role": s.role,
                    "offset": s.offset, "gain": float(gains.get(s.name, 0.0)),
                    "reset": s.neuron["reset"] if s.neuron else None} for s in layers],
        "feedback_points": [s.name for s in layers if s.role == "dfa"],
        # every trainable node and how it learns: dfa (optical feedback), bp (host backprop), freeze, output
        "roles": {**{f.name: f.role for f in front.get("features", []) if f.kind == "conv"},
                  **{s.name: s.role for s in layers}},
        "front_end": None if not front else {
            "input_shape": list(front["input_shape"]), "policy": str(cfg["conv"]),
            "ops": [{"name": f.name, "kind": f.kind, "role": f.role, "params": f.params, **shp}
                    for f, shp in zip(front["features"], front["shapes"])]},
        "n_classes": n_classes,
        "n_inputs": n_in,
        "projection": {
            **lay, "n_features": n_classes, "n_anchor": n_anchor, "macro": macro,
            "mirrors": (n_classes + n_anchor) * macro, "encoding": "ternary, anchor scheme",
            "centering": "one all-ones vector per step restores the zero sum of softmax errors",
            "camera_pixels": int(board.value("limits.camera_pixels")),
        },
        "ternary_threshold": threshold,
        "ternary_mode": tmode,
        "frames_per_vector": 4,
        "frames_per_step_overhead": 4,
        "exposure": {
            "policy": "auto (brightest frame's mean at target counts, capped at the board's exposure)",
            "target_mean_counts": target,
            "brightest_frame_us": min(t_max, target / (flux * macro * (n_classes + n_anchor))),
            "dimmest_frame_us": min(t_max, target / (flux * macro * (1 + n_anchor))),
            "calibrated": calib,
        },
        "opu_seed": seed + 1000,
        "training": {k: cfg[k] for k in ("epochs", "batch", "lr", "init", "conv")},
        "warnings": warnings,
    }
    verify = {k: cfg[k] for k in ("verify_epochs", "min_alignment", "min_accuracy", "max_gap_to_dfa",
                                  "max_gap_to_bp")}
    if mode == "spiking":  # short surrogate-gradient runs are noisier (seeds 0-2 at T=10: gaps up to 0.052)
        verify["verify_epochs"] = int(extra.get("verify_epochs", 5))
        verify["max_gap_to_dfa"] = float(extra.get("max_gap_to_dfa", 0.08))
    arrays: dict[str, np.ndarray] = {}
    for f in front.get("features", []):
        if f.kind == "conv":
            assert f.weight is not None and f.bias is not None
            arrays[f"layer/{f.name}/weight"] = f.weight
            arrays[f"layer/{f.name}/bias"] = f.bias
    for s in layers:
        arrays[f"layer/{s.name}/weight"] = s.weight
        arrays[f"layer/{s.name}/bias"] = s.bias
        if s.neuron and mode == "spiking":
            for k in ("keep", "gain", "v_th"):
                arrays[f"layer/{s.name}/{k}"] = s.neuron[k]
    if data is not None:
        arrays.update({f"data/{k}": v for k, v in data.items()})
    program["verify"] = verify
    return program, arrays


def layers_from_program(program: dict[str, Any], arrays: dict[str, np.ndarray]) -> list[LayerSpec]:
    """Rebuild the layer list of a saved program."""
    out = []
    for d in program["layers"]:
        key = f"layer/{d['name']}/"
        neuron = None
        if program["mode"] == "spiking" and key + "v_th" in arrays:
            neuron = {k: arrays[key + k] for k in ("keep", "gain", "v_th")}
            neuron["reset"] = d.get("reset") or "zero"
        out.append(LayerSpec(name=d["name"], weight=arrays[key + "weight"], bias=arrays[key + "bias"], act=d["act"],
                             role=d["role"], offset=int(d["offset"]), neuron=neuron))
    return out


def features_from_program(program: dict[str, Any], arrays: dict[str, np.ndarray]
                          ) -> tuple[list[FeatureSpec], tuple[int, ...] | None]:
    """Rebuild the convolutional front end of a saved program (empty without one)."""
    fe = program.get("front_end")
    if not fe:
        return [], None
    feats = []
    for d in fe["ops"]:
        key = f"layer/{d['name']}/"
        w = arrays.get(key + "weight") if d["kind"] == "conv" else None
        b = arrays.get(key + "bias") if d["kind"] == "conv" else None
        feats.append(FeatureSpec(d["name"], d["kind"], w, b, d["role"], dict(d["params"])))
    return feats, tuple(int(v) for v in fe["input_shape"])


def make_trainer(program: dict[str, Any], arrays: dict[str, np.ndarray], method: str,
                 feedback: Feedback | OpticalFeedback | Any | None, *, seed: int = 0) -> MLPTrainer:
    """The trainer a program asks for (rate/ANN or time-stepped spiking), with its gains and settings."""
    layers = layers_from_program(program, arrays)
    kw: dict[str, Any] = dict(seed=seed, lr=float(program["training"]["lr"]), feedback=feedback,
                              init=program["training"].get("init", "random"),
                              gains={d["name"]: d["gain"] for d in program["layers"] if d["role"] == "dfa"})
    if program["mode"] == "spiking":
        return SpikingTrainer(layers, method, **kw, **program["spiking"])
    features, input_shape = features_from_program(program, arrays)
    return MLPTrainer(layers, method, features=features, input_shape=input_shape, **kw)


def make_feedback(program: dict[str, Any], board: Board | None, method: str, *, seed_offset: int = 0,
                  device: dict[str, Any] | None = None, **camera_changes: Any) -> Feedback | OpticalFeedback | None:
    """The feedback projection a program asks for: "odfa" (emulated OPU), "dfa" (digital) or None (BP).

    `device`: OPUConfig fields (drift_per_frame, frame_offset, ...); `camera_changes`: CameraConfig fields."""
    proj = program["projection"]
    if method == "bp":
        return None
    if method == "dfa":
        return Feedback(program["n_classes"], proj["n_out"], seed=program["opu_seed"] + seed_offset)
    if board is None:
        from spikeforge.emulators.opu import CameraConfig
        cam = CameraConfig(**camera_changes)
    else:
        cam = camera_from_board(board, **camera_changes)
    return OpticalFeedback(program["n_classes"], proj["n_out"], seed=program["opu_seed"] + seed_offset,
                           threshold=program["ternary_threshold"], mode=program["ternary_mode"], macro=proj["macro"],
                           n_anchor=proj["n_anchor"], camera=cam, **(device or {}))
