"""Direct Feedback Alignment training of an MLP: backprop, digital DFA and optical DFA on the same seeds.

DFA (Nøkland 2016; Launay et al. 2020): with output error e = softmax(a_L) - onehot(y), every hidden
layer l receives delta_l = g_l (e B)[slice_l] * f'(a_l) from ONE random projection B of e, and all
layers update in parallel; the output layer uses its true gradient. Optical DFA (Launay et al.,
arXiv 2012.06373) computes e B on the OPU: e is ternarised, projected with the
anchor scheme (4 frames per non-zero vector) and rescaled by the row's max |e| on the host.
Ternarisation is stochastic by default (P(+-1) = |e_j| / max|e|, unbiased), which on sklearn digits
closes most of the gap a fixed threshold leaves to digital DFA (see docs/photonic.md), and one all-ones
vector per step is projected so the host can restore the zero sum of softmax errors (tB - mean(t) 1B).

Layer roles: "dfa" (hidden, optical/digital feedback), "bp" (trained by backprop from the layer above's
delta: for DFA-hostile layers), "freeze" (not trained), "output" (true gradient).
A convolutional front end (`FeatureSpec`: conv, pool, relu, flatten in front of the first Affine layer)
is either frozen (a fixed feature extractor) or "bp": trained with the local backprop gradient of the
first Affine layer's DFA delta, dL/dfeatures ~ delta_0 W_0, pushed through the conv stack by autograd
(DFA does not train conv stacks well; the head keeps its optical feedback).
Spiking graphs are trained here through their rate (ANN) equivalent: an IF neuron with reset by
subtraction fires at a rate proportional to relu of its input, so h = relu(W x + b); a LIF/CubaLIF
layer uses the same rate surrogate (documented approximation, see docs/photonic.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from spikeforge.emulators.opu import CameraConfig, LinearProjector
from spikeforge.threads import torch_single_thread


@dataclass
class LayerSpec:
    """One Affine layer of the program and what follows it."""

    name: str
    weight: np.ndarray          # (out, in)
    bias: np.ndarray            # (out,)
    act: str = "relu"           # relu | none
    role: str = "dfa"           # dfa | bp | freeze | output
    offset: int = 0             # first projection column of this layer's feedback slice
    neuron: dict[str, Any] | None = None  # spiking layers: keep, gain, v_th (arrays) and reset (zero|subtract)

    @property
    def width(self) -> int:
        return int(self.weight.shape[0])


@dataclass
class FeatureSpec:
    """One op of the convolutional front end: conv (Conv1d/Conv2d), pool (sum/avg 2-D), relu or flatten."""

    name: str
    kind: str                   # conv | pool | relu | flatten
    weight: np.ndarray | None = None  # conv: (out_ch, in_ch / groups, *kernel)
    bias: np.ndarray | None = None
    role: str = "fixed"         # conv: bp | freeze; other ops: fixed (no parameters)
    params: dict[str, Any] = field(default_factory=dict)  # conv: dims, stride, padding, dilation, groups;
    #                                                       pool: kernel, stride, padding, sum


def apply_feature(spec: FeatureSpec, h: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor:
    """One front-end op on a (B, C, *spatial) batch, with the reference simulator's conventions."""
    F = torch.nn.functional
    p = spec.params
    if spec.kind == "conv":
        conv = F.conv2d if int(p["dims"]) == 2 else F.conv1d
        pad = p["padding"] if isinstance(p["padding"], str) else tuple(p["padding"])
        return conv(h, w, b, stride=tuple(p["stride"]), padding=pad, dilation=tuple(p["dilation"]),
                    groups=int(p["groups"]))
    if spec.kind == "pool":
        return F.avg_pool2d(h, tuple(p["kernel"]), tuple(p["stride"]), tuple(p["padding"]),
                            divisor_override=1 if p["sum"] else None)
    if spec.kind == "relu":
        return torch.relu(h)
    if spec.kind == "flatten":
        return h.reshape(h.shape[0], -1)
    raise ValueError(f"unknown front-end op {spec.kind!r}")


@dataclass
class Feedback:
    """Digital DFA feedback: e (B, C) -> e B (B, P) with a fixed Gaussian B."""

    n_classes: int
    n_out: int
    seed: int = 0
    vectors: int = 0
    frames: int = 0
    matrix: torch.Tensor = field(init=False)

    def __post_init__(self) -> None:
        g = torch.Generator().manual_seed(int(self.seed))
        self.matrix = torch.randn((self.n_classes, self.n_out), generator=g) / math.sqrt(self.n_classes)

    def project(self, e: torch.Tensor) -> torch.Tensor:
        self.vectors += int(e.shape[0])
        return e @ self.matrix


def ternarise(e: torch.Tensor, threshold: float, mode: str = "stochastic",
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Ternary code t in {-1, 0, 1} and row scale s with s t ~ e; rows with s = 0 are skipped (no frames).

    stochastic (default): entries with |e_j| < threshold are 0, the others are sign(e_j) with probability
      |e_j| / max|e| (unbiased for those entries: E[s t_j] = e_j); rows whose max|e| < threshold are skipped.
    threshold: sign(e_j) where |e_j| > threshold x max|e| of the row (deterministic, biased).
    """
    scale = e.abs().amax(dim=1)
    if mode == "stochastic":
        scale = torch.where(scale >= threshold, scale, torch.zeros_like(scale))
        p = e.abs() / scale.clamp_min(1e-12)[:, None]
        u = torch.rand(e.shape, generator=generator, dtype=e.dtype)
        keep = (u < p) & (e.abs() >= threshold)
    elif mode == "threshold":
        scale = torch.where(scale > 1e-3, scale, torch.zeros_like(scale))
        keep = e.abs() > threshold * scale[:, None]
    else:
        raise ValueError(f"ternarisation mode must be 'stochastic' or 'threshold' (got {mode!r})")
    t = torch.sign(e) * keep * (scale[:, None] > 0)
    return t, scale


class OpticalFeedback:
    """Optical DFA feedback through the OPU emulator's linear (anchor) scheme on ternary errors."""

    def __init__(self, n_classes: int, n_out: int, *, seed: int = 0, threshold: float = 0.01,
                 mode: str = "stochastic", macro: int = 1, n_anchor: int | None = None,
                 camera: CameraConfig | None = None, center: bool = True, **device_kw: Any) -> None:
        self.threshold, self.mode = float(threshold), mode
        self.rng = torch.Generator().manual_seed(int(seed) + 17)
        self.center = bool(center)
        self.n_classes = int(n_classes)
        self.projector = LinearProjector(n_classes, n_out, n_anchor=n_anchor, seed=seed, macro=macro,
                                         camera=camera, **device_kw)
        # one global normalisation so feedback has unit-order entries like the digital B
        z = float(np.sqrt(self.projector.n_anchor * macro))
        self.norm = 1.0 / (z * math.sqrt(macro) * math.sqrt(n_classes) / math.sqrt(2.0))
        self.vectors = 0

    @property
    def frames(self) -> int:
        return self.projector.device.frames

    def project(self, e: torch.Tensor) -> torch.Tensor:
        t, scale = ternarise(e, self.threshold, self.mode, self.rng)
        self.vectors += int((scale > 0).sum())
        rows = t.to(torch.float32)
        if self.center:  # one extra vector per call: the all-ones pattern, to restore zero-sum errors
            rows = torch.cat([rows, torch.ones((1, self.n_classes))])
        y = self.projector.project(rows)
        if self.center:
            ones, y = y[-1:], y[:-1]
            y = y - t.mean(dim=1, keepdim=True).to(y.dtype) * ones
        return y.to(e.dtype) * (scale[:, None] * self.norm)


class MLPTrainer:
    """Trains the program's layers with `method` in {"bp", "dfa", "odfa"} (odfa: feedback is OpticalFeedback)."""

    def __init__(self, layers: list[LayerSpec], method: str, *, seed: int = 0, lr: float = 2e-3,
                 feedback: Feedback | OpticalFeedback | None = None, init: str = "random",
                 gains: dict[str, float] | None = None, features: list[FeatureSpec] | None = None,
                 input_shape: tuple[int, ...] | None = None) -> None:
        if method not in ("bp", "dfa", "odfa"):
            raise ValueError(f"method must be bp, dfa or odfa (got {method!r})")
        if method != "bp" and feedback is None:
            raise ValueError(f"method {method} needs a feedback projection")
        self.layers, self.method, self.feedback = layers, method, feedback
        self.gains = dict(gains or {})
        g = torch.Generator().manual_seed(int(seed))
        self.W: list[torch.Tensor] = []
        self.b: list[torch.Tensor] = []
        for spec in layers:
            if init == "graph" or spec.role == "freeze":
                w = torch.tensor(np.asarray(spec.weight, dtype=np.float32))
                b = torch.tensor(np.asarray(spec.bias, dtype=np.float32))
            else:  # same scheme as torch.nn.Linear, from the seed
                fan_in = spec.weight.shape[1]
                bound = 1.0 / math.sqrt(fan_in)
                w = (torch.rand(spec.weight.shape, generator=g) * 2 - 1) * bound
                b = (torch.rand(spec.bias.shape, generator=g) * 2 - 1) * bound
            self.W.append(w.requires_grad_(spec.role != "freeze"))
            self.b.append(b.requires_grad_(spec.role != "freeze"))
        # convolutional front end (drawn after the MLP so an MLP's initial weights do not depend on it)
        self.features = list(features or [])
        self.input_shape = tuple(int(d) for d in input_shape) if input_shape else None
        if self.features and self.input_shape is None:
            raise ValueError("a convolutional front end needs the input shape")
        self.FW: list[tuple[torch.Tensor, torch.Tensor] | None] = []
        for f in self.features:
            if f.kind != "conv":
                self.FW.append(None)
                continue
            assert f.weight is not None
            fb = f.bias if f.bias is not None else np.zeros(f.weight.shape[0], np.float32)
            if init == "graph" or f.role == "freeze":
                w, b = torch.tensor(np.asarray(f.weight, np.float32)), torch.tensor(np.asarray(fb, np.float32))
            else:  # torch.nn.Conv default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in_ch / groups x kernel
                bound = 1.0 / math.sqrt(int(np.prod(f.weight.shape[1:])))
                w = (torch.rand(f.weight.shape, generator=g) * 2 - 1) * bound
                b = (torch.rand(fb.shape, generator=g) * 2 - 1) * bound
            self.FW.append((w.requires_grad_(f.role == "bp"), b.requires_grad_(f.role == "bp")))
        self.feature_params = [p for pair in self.FW if pair is not None for p in pair if p.requires_grad]
        self.feature_grads: list[torch.Tensor] | None = None
        params = [p for p in self.W + self.b if p.requires_grad] + self.feature_params
        self.opt = torch.optim.Adam(params, lr=lr)

    # ---- forward -------------------------------------------------------------------------------
    def featurise(self, x: torch.Tensor) -> torch.Tensor:
        """The convolutional front end: flat input (B, n_in) -> flat features (B, n_features); identity without one."""
        if not self.features:
            return x
        assert self.input_shape is not None
        h = x.reshape(x.shape[0], *self.input_shape)
        for f, pair in zip(self.features, self.FW):
            h = apply_feature(f, h, *(pair if pair is not None else (None, None)))
        return h.reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor, feats: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pre-activations a_l and activations h_l (h_0 = the front end's features, or x without one)."""
        h = self.featurise(x) if feats is None else feats
        hs, As = [h], []
        for spec, w, b in zip(self.layers, self.W, self.b):
            a = h @ w.T + b
            As.append(a)
            h = torch.relu(a) if spec.act == "relu" else a
            hs.append(h)
        return As, hs

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.forward(x)[1][-1].argmax(dim=1)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.predict(x) == y).float().mean())

    # ---- gradients -----------------------------------------------------------------------------
    def bp_grads(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """True gradients of the mean cross-entropy (for BP training and the alignment check)."""
        As, hs = self.forward(x)
        loss = torch.nn.functional.cross_entropy(hs[-1], y)
        params = [p for pair in zip(self.W, self.b) for p in pair]
        trainable = [p for p in params if p.requires_grad]
        grads = torch.autograd.grad(loss, trainable + self.feature_params, allow_unused=True)
        self.feature_grads = [g if g is not None else torch.zeros_like(p)
                              for g, p in zip(grads[len(trainable):], self.feature_params)]
        it = iter(grads[:len(trainable)])
        out = []
        for w, b in zip(self.W, self.b):
            gw = next(it) if w.requires_grad else torch.zeros_like(w)
            gb = next(it) if b.requires_grad else torch.zeros_like(b)
            out.append((gw if gw is not None else torch.zeros_like(w), gb if gb is not None else torch.zeros_like(b)))
        return out

    def dfa_grads(self, x: torch.Tensor, y: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """DFA updates: one projection of the output error per sample feeds every "dfa" layer.

        A trainable ("bp") conv front end gets the local backprop gradient of layer 0's delta: the gradient of
        sum(features * (delta_0 W_0)) / n with respect to the conv parameters (autograd through the convs only).
        """
        feats = None
        if self.feature_params:
            with torch.enable_grad():
                feats = self.featurise(x)
        with torch.no_grad():
            As, hs = self.forward(x, feats.detach() if feats is not None else None)
            n = x.shape[0]
            p = torch.softmax(hs[-1], dim=1)
            e = p - torch.nn.functional.one_hot(y, p.shape[1]).to(p.dtype)
            proj = self.feedback.project(e) if any(s.role == "dfa" for s in self.layers) else None
            deltas: list[torch.Tensor | None] = [None] * len(self.layers)
            for i in reversed(range(len(self.layers))):
                spec = self.layers[i]
                fprime = (As[i] > 0).to(x.dtype) if spec.act == "relu" else torch.ones_like(As[i])
                if spec.role == "output":
                    deltas[i] = e
                elif spec.role == "dfa":
                    sl = proj[:, spec.offset:spec.offset + spec.width]
                    deltas[i] = self.gains.get(spec.name, 1.0) * sl * fprime
                elif spec.role == "bp" and i + 1 < len(self.layers) and deltas[i + 1] is not None:
                    deltas[i] = (deltas[i + 1] @ self.W[i + 1]) * fprime
            top = deltas[0] @ self.W[0] / n if feats is not None and deltas[0] is not None else None
        if feats is not None:
            if top is None:  # no delta reaches the front end (its first layer is frozen): no update
                self.feature_grads = [torch.zeros_like(p) for p in self.feature_params]
            else:
                self.feature_grads = list(torch.autograd.grad(feats, self.feature_params, grad_outputs=top))
        with torch.no_grad():
            out = []
            for i, (w, b) in enumerate(zip(self.W, self.b)):
                d = deltas[i]
                if d is None or not w.requires_grad:
                    out.append((torch.zeros_like(w), torch.zeros_like(b)))
                else:
                    out.append((d.T @ hs[i] / n, d.sum(dim=0) / n))
            return out

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        grads = self.bp_grads(x, y) if self.method == "bp" else self.dfa_grads(x, y)
        for (gw, gb), w, b in zip(grads, self.W, self.b):
            if w.requires_grad:
                w.grad, b.grad = gw.detach(), gb.detach()
        if self.feature_params and self.feature_grads is not None:
            for p, gp in zip(self.feature_params, self.feature_grads):
                p.grad = gp.detach()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)

    def alignment(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Cosine between the DFA update and the BP gradient of each hidden DFA layer on the same batch."""
        bp = self.bp_grads(x, y)
        dfa = self.dfa_grads(x, y)
        out = {}
        for spec, (gb, _), (gd, _) in zip(self.layers, bp, dfa):
            if spec.role == "dfa":
                # DFA descends along +update; compare with the BP gradient direction
                out[spec.name] = float(torch.nn.functional.cosine_similarity(gb.flatten(), gd.flatten(), dim=0))
        return out

    def calibrate_gains(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Per-layer feedback gain: ||BP grad|| / ||DFA update|| on one batch (then used for every step)."""
        self.gains = {}
        bp = self.bp_grads(x, y)
        dfa = self.dfa_grads(x, y)
        for spec, (gb, _), (gd, _) in zip(self.layers, bp, dfa):
            if spec.role == "dfa":
                nd = float(gd.norm())
                self.gains[spec.name] = float(gb.norm()) / nd if nd > 0 else 1.0
        return dict(self.gains)

    def feature_alignment(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """Cosine between the conv update (BP of the DFA delta) and the true BP gradient, per trainable conv."""
        if not self.feature_params:
            return {}
        self.bp_grads(x, y)
        bp = self.feature_grads or []
        self.dfa_grads(x, y)
        dfa = self.feature_grads or []
        names = [f.name for f, pair in zip(self.features, self.FW) if pair is not None and pair[0].requires_grad]
        return {n: float(torch.nn.functional.cosine_similarity(gb.flatten(), gd.flatten(), dim=0))
                for n, gb, gd in zip(names, bp[0::2], dfa[0::2])}

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(w.detach().numpy().copy(), b.detach().numpy().copy()) for w, b in zip(self.W, self.b)]

    def feature_weights(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Conv weights and biases of the front end, by node name."""
        return {f.name: (pair[0].detach().numpy().copy(), pair[1].detach().numpy().copy())
                for f, pair in zip(self.features, self.FW) if pair is not None}


class LightonmlFeedback:
    """Optical feedback through lightonml's `OPU.linear_transform` (a LightOn device, or its simulator).

    lightonml takes binary inputs, so a ternary error is sent as its positive and negative parts. Untested
    against hardware here (no device); the default path is spikeforge's emulator.
    """

    def __init__(self, program: dict[str, Any], simulated: bool = False) -> None:
        from lightonml import OPU as LightonOPU  # optional dependency

        proj = program["projection"]
        self.n_classes, self.threshold, self.mode = program["n_classes"], program["ternary_threshold"], program["ternary_mode"]
        self.opu = LightonOPU(n_components=int(proj["n_out"]), simulated=simulated,
                              max_n_features=max(1000, self.n_classes))
        self.opu.fit1d(n_features=self.n_classes)
        self.rng = torch.Generator().manual_seed(int(program["opu_seed"]) + 17)
        self.vectors = 0
        self.norm = 1.0

    def _lt(self, x: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(self.opu.linear_transform(x.numpy().astype(np.uint8))), dtype=torch.float32)

    def project(self, e: torch.Tensor) -> torch.Tensor:
        t, scale = ternarise(e, self.threshold, self.mode, self.rng)
        self.vectors += int((scale > 0).sum())
        rows = torch.cat([t, torch.ones((1, self.n_classes))])
        y = self._lt((rows > 0).float()) - self._lt((rows < 0).float())
        ones, y = y[-1:], y[:-1]
        y = y - t.mean(dim=1, keepdim=True) * ones
        return y * scale[:, None]


SURROGATE_SLOPE = 5.0


def surrogate(u: torch.Tensor) -> torch.Tensor:
    """Fast-sigmoid surrogate derivative of the spike (Zenke & Ganguli 2018), u = (v - v_th) / v_th."""
    return 1.0 / (1.0 + SURROGATE_SLOPE * u.abs()) ** 2


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, u: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(u)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (u,) = ctx.saved_tensors
        return grad * surrogate(u)


class SpikingTrainer(MLPTrainer):
    """Time-stepped training of a spiking MLP: Euler LIF/IF layers, count-coded cross-entropy loss.

    Inputs are rate-coded (Bernoulli spikes per step from x in [0, 1]); logits are the output layer's spike
    counts (or summed values for a non-spiking readout) times `out_scale`. DFA uses ONE projection of the
    sample's error for all T steps: delta_l[t] = g_l (e B)_l * surrogate(v_l[t]); dW_l = sum_t delta_l[t]^T h[t].
    BP (the baseline and the alignment reference) is backprop through time with the same surrogate.
    """

    def __init__(self, layers: list[LayerSpec], method: str, *, timesteps: int = 20, out_scale: float = 1.0,
                 **kw: Any) -> None:
        if kw.get("features"):
            raise ValueError("spiking mode does not train a convolutional front end (use train_mode=rate)")
        super().__init__(layers, method, **kw)
        self.T, self.out_scale = int(timesteps), float(out_scale)
        self.enc = torch.Generator().manual_seed(int(kw.get("seed", 0)) + 31)
        self.params = [{k: torch.as_tensor(np.asarray(v, np.float32)) for k, v in (s.neuron or {}).items()
                        if k != "reset"} for s in layers]
        # Train in threshold units with the input gain folded into the weights (v' = v / v_th, W' = W gain / v_th):
        # the dynamics are the same, and the training no longer depends on how an exporter splits the drive
        # between weights and gain (Norse's LIFBox integrates dt/tau = 0.1 of its input, snnTorch's Leaky all
        # of it, with 10x smaller weights). Random init and Adam's steps then act on the effective weights.
        self.unit: list[torch.Tensor | None] = []
        with torch.no_grad():
            for i, (spec, w, b) in enumerate(zip(layers, self.W, self.b)):
                prm = self.params[i]
                if spec.neuron is None:
                    self.unit.append(None)
                    continue
                unit = prm["gain"] / prm["v_th"]
                if not bool(torch.all(torch.isfinite(unit) & (unit > 0))):  # a dead neuron: nothing to normalise by
                    self.unit.append(None)
                    continue
                if kw.get("init", "random") == "graph" or spec.role == "freeze":  # graph weights -> threshold units
                    w.mul_(unit[:, None])
                    b.mul_(unit)
                self.unit.append(unit)
                prm["gain"], prm["v_th"] = torch.ones_like(unit), torch.ones_like(unit)

    def weights(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The trained weights in the graph's units (the trainer works in threshold units, see __init__)."""
        out = []
        for (w, b), unit in zip(super().weights(), self.unit):
            if unit is not None:
                u = unit.numpy()
                w, b = w / u[:, None], b / u
            out.append((w, b))
        return out

    def encode(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.ndim == 3:
            return x
        p = x.clamp(0, 1)
        return (torch.rand((self.T, *p.shape), generator=generator or self.enc) < p).to(torch.float32)

    def run(self, xs: torch.Tensor) -> tuple[torch.Tensor, list[list[tuple[torch.Tensor, torch.Tensor | None]]]]:
        """logits (B, C) and, per layer and step, (input h[t], surrogate derivative or None)."""
        B = xs.shape[1]
        v = [torch.zeros((B, s.width)) for s in self.layers]
        rec: list[list[tuple[torch.Tensor, torch.Tensor | None]]] = [[] for _ in self.layers]
        total = torch.zeros((B, self.layers[-1].width))
        for t in range(xs.shape[0]):
            h = xs[t]
            for i, (spec, w, b) in enumerate(zip(self.layers, self.W, self.b)):
                a = h @ w.T + b
                if spec.neuron is None:
                    rec[i].append((h, None))
                    h = a
                    continue
                prm = self.params[i]
                v[i] = prm["keep"] * v[i] + prm["gain"] * a
                u = (v[i] - prm["v_th"]) / prm["v_th"]
                spk = _Spike.apply(u)
                rec[i].append((h, surrogate(u.detach()) / prm["v_th"]))
                if spec.neuron.get("reset") == "subtract":
                    v[i] = v[i] - spk.detach() * prm["v_th"]
                else:
                    v[i] = v[i] * (1 - spk.detach())
                h = spk
            total = total + h
        return total * self.out_scale, rec

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        logits, _ = self.run(self.encode(x, torch.Generator().manual_seed(12345)))
        return [logits], [logits]

    def bp_grads(self, x: torch.Tensor, y: torch.Tensor, xs: torch.Tensor | None = None
                 ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        logits, _ = self.run(self.encode(x) if xs is None else xs)
        loss = torch.nn.functional.cross_entropy(logits, y)
        pairs = list(zip(self.W, self.b))
        trainable = [p for pair in pairs for p in pair if p.requires_grad]
        grads = iter(torch.autograd.grad(loss, trainable, allow_unused=True))
        out = []
        for w, b in pairs:
            gw = next(grads) if w.requires_grad else None
            gb = next(grads) if b.requires_grad else None
            out.append((torch.zeros_like(w) if gw is None else gw, torch.zeros_like(b) if gb is None else gb))
        return out

    def dfa_grads(self, x: torch.Tensor, y: torch.Tensor, xs: torch.Tensor | None = None
                  ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        with torch.no_grad():
            logits, rec = self.run(self.encode(x) if xs is None else xs)
            n = logits.shape[0]
            e = torch.softmax(logits, 1) - torch.nn.functional.one_hot(y, logits.shape[1]).to(logits.dtype)
            proj = self.feedback.project(e) if any(s.role == "dfa" for s in self.layers) else None
            out = []
            for i, (spec, w, b) in enumerate(zip(self.layers, self.W, self.b)):
                if spec.role == "output":
                    d0 = e * self.out_scale
                elif spec.role == "dfa":
                    d0 = self.gains.get(spec.name, 1.0) * proj[:, spec.offset:spec.offset + spec.width]
                else:  # bp/freeze roles are not supported in spiking mode: frozen
                    out.append((torch.zeros_like(w), torch.zeros_like(b)))
                    continue
                gw, gb = torch.zeros_like(w), torch.zeros_like(b)
                for h, sg in rec[i]:
                    d = d0 if sg is None else d0 * sg
                    gw += d.T @ h
                    gb += d.sum(0)
                out.append((gw / n, gb / n))
            return out

    def alignment(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        xs = self.encode(x)
        bp, dfa = self.bp_grads(x, y, xs), self.dfa_grads(x, y, xs)
        return {s.name: float(torch.nn.functional.cosine_similarity(gb.flatten(), gd.flatten(), dim=0))
                for s, (gb, _), (gd, _) in zip(self.layers, bp, dfa) if s.role == "dfa"}

    def calibrate_gains(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        self.gains = {}
        xs = self.encode(x)
        bp, dfa = self.bp_grads(x, y, xs), self.dfa_grads(x, y, xs)
        for spec, (gb, _), (gd, _) in zip(self.layers, bp, dfa):
            if spec.role == "dfa":
                nd = float(gd.norm())
                self.gains[spec.name] = float(gb.norm()) / nd if nd > 0 else 1.0
        return dict(self.gains)


def fit(trainer: MLPTrainer, x: np.ndarray, y: np.ndarray, *, epochs: int, batch: int = 32, seed: int = 0,
        x_test: np.ndarray | None = None, y_test: np.ndarray | None = None) -> dict[str, Any]:
    """Mini-batch training with a seeded shuffle; returns per-epoch test accuracy and the final one."""
    with torch_single_thread():
        return _fit(trainer, x, y, epochs=epochs, batch=batch, seed=seed, x_test=x_test, y_test=y_test)


def _fit(trainer: MLPTrainer, x: np.ndarray, y: np.ndarray, *, epochs: int, batch: int, seed: int,
         x_test: np.ndarray | None, y_test: np.ndarray | None) -> dict[str, Any]:
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)
    xe = torch.tensor(x_test if x_test is not None else x, dtype=torch.float32)
    ye = torch.tensor(y_test if y_test is not None else y, dtype=torch.int64)
    g = torch.Generator().manual_seed(int(seed))
    history = []
    for _ in range(epochs):
        order = torch.randperm(xt.shape[0], generator=g)
        for s in range(0, xt.shape[0], batch):
            idx = order[s:s + batch]
            trainer.step(xt[idx], yt[idx])
        history.append(trainer.accuracy(xe, ye))
    return {"history": history, "accuracy": history[-1] if history else trainer.accuracy(xe, ye)}
