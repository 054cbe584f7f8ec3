"""Digital readout of the reservoir, trained on emulated states: ridge, logistic, or contrastive.

Features are the reservoir's mean spike rates over the T steps of a sample. All three methods end
as one linear map (W, b) on standardised rates, which is folded into the graph's per-step readout
Affine: summing its output over the T steps gives the logits, so `argmax(sum_t y_t)` predicts and
the reference simulator, the emulator and `verify` all see the same readout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikeforge.errors import InputError

METHODS = ("ridge", "logistic", "contrastive")


@contextmanager
def _few_threads(n: int = 1) -> Iterator[None]:
    """Tiny problems: torch's thread pool costs more than it gives (and the host may be shared)."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@dataclass
class Readout:
    """Linear readout on mean-rate features: logits = W @ ((rate - mu) / sd) + b."""

    w: np.ndarray      # (C, N)
    b: np.ndarray      # (C,)
    mu: np.ndarray     # (N,)
    sd: np.ndarray     # (N,)
    method: str

    def logits(self, rates: np.ndarray) -> np.ndarray:
        return ((rates - self.mu) / self.sd) @ self.w.T + self.b

    def predict(self, rates: np.ndarray) -> np.ndarray:
        return np.argmax(self.logits(rates), axis=1)

    def per_step(self, timesteps: int) -> tuple[np.ndarray, np.ndarray]:
        """Weights of the per-step Affine whose output summed over `timesteps` steps gives the logits."""
        w = self.w / self.sd[None, :] / timesteps
        b = (self.b - (self.w / self.sd[None, :]) @ self.mu) / timesteps
        return w.astype(np.float32), b.astype(np.float32)


def rates(spikes: np.ndarray) -> np.ndarray:
    """(T, B, N) spikes -> (B, N) mean rates."""
    return np.asarray(spikes, np.float64).mean(axis=0)


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    sd = np.where(sd > 1e-9, sd, 1.0)
    return (x - mu) / sd, mu, sd


def _check(x: np.ndarray, y: np.ndarray) -> int:
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise InputError(f"features {x.shape} and labels {y.shape} do not match (need (B, N) and (B,))")
    if x.shape[0] < 2:
        raise InputError("need at least two training samples for a readout")
    return int(y.max()) + 1


def ridge(x: np.ndarray, y: np.ndarray, l2: float = 1.0, classes: int | None = None) -> Readout:
    """Closed-form ridge regression onto one-hot targets (what reservoir papers use first)."""
    c = classes or _check(x, y)
    z, mu, sd = _standardise(x)
    t = np.eye(c)[y] - 1.0 / c
    a = z.T @ z + l2 * np.eye(z.shape[1])
    w = np.linalg.solve(a, z.T @ t).T
    b = t.mean(axis=0) + 1.0 / c
    return Readout(w=w, b=b, mu=mu, sd=sd, method="ridge")


def logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, classes: int | None = None,
             iters: int = 200, seed: int = 0) -> Readout:
    """Multinomial logistic regression (cross-entropy + L2) with L-BFGS in torch."""
    c = classes or _check(x, y)
    z, mu, sd = _standardise(x)
    torch.manual_seed(seed)
    zt = torch.as_tensor(z, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    w = torch.zeros((c, z.shape[1]), dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(zt @ w.T + b, yt) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with _few_threads():
        opt.step(closure)
    return Readout(w=w.detach().numpy(), b=b.detach().numpy(), mu=mu, sd=sd, method="logistic")


def contrastive(xa: np.ndarray, xb: np.ndarray, *, dim: int = 32, temperature: float = 0.1,
                epochs: int = 200, lr: float = 1e-2, seed: int = 0,
                positives: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """CLIP-style training of two linear encoders so paired rows of xa and xb align.

    Symmetric InfoNCE on cosine similarities / temperature (Radford et al. 2021, as used by the seed
    paper's zero-shot LSM). `positives` (B,) marks rows sharing a class: all of them count as
    positives (supervised contrastive), so duplicate classes in a batch are not pushed apart.
    Returns the projection matrices (dim, Na) and (dim, Nb).
    """
    g = torch.Generator().manual_seed(seed)
    a = torch.as_tensor(xa, dtype=torch.float32)
    b = torch.as_tensor(xb, dtype=torch.float32)
    pa = (torch.randn((dim, a.shape[1]), generator=g, dtype=torch.float32) / np.sqrt(a.shape[1])).requires_grad_()
    pb = (torch.randn((dim, b.shape[1]), generator=g, dtype=torch.float32) / np.sqrt(b.shape[1])).requires_grad_()
    grp = torch.as_tensor(positives if positives is not None else np.arange(a.shape[0]))
    target = (grp[:, None] == grp[None, :]).float()
    target = target / target.sum(dim=1, keepdim=True)
    opt = torch.optim.Adam([pa, pb], lr=lr)
    with _few_threads():
        _fit_contrastive(opt, a, b, pa, pb, target, temperature, epochs)
    return pa.detach().double().numpy(), pb.detach().double().numpy()


def _fit_contrastive(opt: torch.optim.Optimizer, a: torch.Tensor, b: torch.Tensor, pa: torch.Tensor,
                     pb: torch.Tensor, target: torch.Tensor, temperature: float, epochs: int) -> None:
    for _ in range(epochs):
        opt.zero_grad()
        ea = torch.nn.functional.normalize(a @ pa.T, dim=1)
        eb = torch.nn.functional.normalize(b @ pb.T, dim=1)
        sim = ea @ eb.T / temperature
        loss = -(target * torch.log_softmax(sim, dim=1)).sum(1).mean() \
            - (target.T * torch.log_softmax(sim.T, dim=1)).sum(1).mean()
        loss.backward()
        opt.step()


def contrastive_classifier(x: np.ndarray, y: np.ndarray, classes: int | None = None, **kw: Any) -> Readout:
    """Two encoders (reservoir rates, one-hot label 'text') aligned contrastively; predict by the
    nearest class embedding. The state norm is common to all classes, so the readout stays linear:
    W = normalise(class embeddings) @ P_state / temperature."""
    c = classes or _check(x, y)
    z, mu, sd = _standardise(x)
    onehot = np.eye(c)[y]
    temperature = float(kw.get("temperature", 0.1))
    pa, pb = contrastive(z, onehot, positives=y, **kw)
    emb = pb.T                                   # (C, dim): encoder of each class's one-hot
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    w = emb @ pa / temperature
    return Readout(w=w, b=np.zeros(c), mu=mu, sd=sd, method="contrastive")


def train(x: np.ndarray, y: np.ndarray, method: str = "ridge", classes: int | None = None,
          **kw: Any) -> Readout:
    y = np.asarray(y).astype(np.int64)
    if method == "ridge":
        return ridge(x, y, classes=classes, **kw)
    if method == "logistic":
        return logistic(x, y, classes=classes, **kw)
    if method == "contrastive":
        return contrastive_classifier(x, y, classes=classes, **kw)
    raise InputError(f"readout method {method!r} is unknown; choose one of {METHODS}", field="rram.readout")


def accuracy(readout: Readout, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(readout.predict(x) == np.asarray(y)))
