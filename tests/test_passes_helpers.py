"""Small trained models for the pass tests: an LIF SNN and a ReLU MLP on scikit-learn digits.

Used until (and alongside) the bundled toolchain/models files: training takes a few seconds, is
deterministic for a seed, and the SNN follows the bundled model's conventions (snnTorch Leaky, beta 0.9,
reset to zero, immediate; tau = dt / (1 - beta), r = tau / dt so the refsim Euler step is v = beta v + I).
"""

from __future__ import annotations

import functools

import nir
import numpy as np
import pytest
import torch

from spikeforge.models import digits_split  # noqa: F401  (re-exported for the benchmark)
from spikeforge.models import rate_code as _rate_code

DT = 1e-4
T_STEPS = 25
BETA = 0.9


def rate_code(x: np.ndarray, steps: int, seed: int) -> np.ndarray:
    return _rate_code(x, steps, seed, dtype=np.float32)


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return (v > 0).float()

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad / (1 + 10 * v.abs()) ** 2


def _snn_forward(w1, b1, w2, b2, x):
    v1 = torch.zeros(x.shape[1], w1.shape[0])
    v2 = torch.zeros(x.shape[1], w2.shape[0])
    out = []
    for t in range(x.shape[0]):
        v1 = BETA * v1 + x[t] @ w1.T + b1
        s1 = _Spike.apply(v1 - 1.0)
        v1 = v1 * (1 - s1)
        v2 = BETA * v2 + s1 @ w2.T + b2
        s2 = _Spike.apply(v2 - 1.0)
        v2 = v2 * (1 - s2)
        out.append(s2)
    return torch.stack(out)


def lif_graph(w1, b1, w2, b2) -> nir.NIRGraph:
    tau = DT / (1 - BETA)
    n_h, n_o = w1.shape[0], w2.shape[0]

    def lif(n):
        return nir.LIF(tau=np.full(n, tau, np.float32), r=np.full(n, tau / DT, np.float32),
                       v_leak=np.zeros(n, np.float32), v_threshold=np.ones(n, np.float32),
                       v_reset=np.zeros(n, np.float32))

    nodes = {
        "input": nir.Input(np.array([w1.shape[1]])),
        "fc1": nir.Affine(np.asarray(w1, np.float32), np.asarray(b1, np.float32)),
        "lif1": lif(n_h),
        "fc2": nir.Affine(np.asarray(w2, np.float32), np.asarray(b2, np.float32)),
        "lif2": lif(n_o),
        "output": nir.Output(np.array([n_o])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    meta = {"spikeforge.dt": DT, "spikeforge.reset": "zero", "spikeforge.reset_timing": "immediate",
            "spikeforge.threshold_cmp": ">", "spikeforge.timesteps": T_STEPS}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=False)


@functools.lru_cache(maxsize=4)
def trained_snn(seed: int = 0, hidden: int = 64, epochs: int = 12):
    """(graph, test inputs (T, B, 64), test labels, train inputs, train labels)."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    xtr, xte, ytr, yte = digits_split(seed)
    str_ = torch.from_numpy(rate_code(xtr, T_STEPS, seed + 1))
    ste = rate_code(xte, T_STEPS, seed + 2)
    w1 = torch.nn.Parameter(torch.randn(hidden, 64) * (1.0 / 8))
    b1 = torch.nn.Parameter(torch.zeros(hidden))
    w2 = torch.nn.Parameter(torch.randn(10, hidden) * (1.0 / np.sqrt(hidden)))
    b2 = torch.nn.Parameter(torch.zeros(10))
    opt = torch.optim.Adam([w1, b1, w2, b2], lr=3e-3)
    y = torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            counts = _snn_forward(w1, b1, w2, b2, str_[:, idx]).sum(0)
            loss = torch.nn.functional.cross_entropy(counts, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    g = lif_graph(*(p.detach().numpy() for p in (w1, b1, w2, b2)))
    return g, ste, yte, rate_code(xtr, T_STEPS, seed + 1), ytr


@functools.lru_cache(maxsize=2)
def trained_mlp(seed: int = 0, hidden: int = 64, epochs: int = 40):
    """(weights [(w1, b1), (w2, b2)], x_test, y_test, x_train, y_train) of a ReLU MLP on analog pixels."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    xtr, xte, ytr, yte = digits_split(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(yt), generator=gen)
        for i in range(0, len(perm), 64):
            idx = perm[i:i + 64]
            loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    layers = [(net[0].weight.detach().numpy().copy(), net[0].bias.detach().numpy().copy()),
              (net[2].weight.detach().numpy().copy(), net[2].bias.detach().numpy().copy())]
    return layers, xte, yte, xtr, ytr


@functools.lru_cache(maxsize=1)
def digits_model(n_calib: int = 150):
    """(graph, calibration dict, eval inputs (T, B, 64), eval labels): the bundled snnTorch digits SNN with
    its held-out inputs when present, else the model trained here; calibration = rate-coded training data."""
    from spikeforge import graph as G
    from spikeforge import models

    xtr, _, ytr, _ = digits_split(0)
    calib = {"input": rate_code(xtr[:n_calib], T_STEPS, 1), "labels": ytr[:n_calib]}
    try:
        g = G.read(models.path("digits_snn.nir"))
        from spikeforge.npzio import load_npz

        data = load_npz(models.path("digits_inputs.npz"))
        return g, calib, data["input"].astype(np.float32), data["labels"]
    except FileNotFoundError:
        g, x, y, _, _ = trained_snn()
        return g, calib, x, y


@pytest.mark.slow
def test_trained_snn_learns():
    from spikeforge import refsim

    g, x, y, _, _ = trained_snn()
    res = refsim.simulate(g, x)
    acc = float(np.mean(res.outputs["output"].sum(0).argmax(1) == y))
    assert acc > 0.85, acc
