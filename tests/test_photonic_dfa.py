"""DFA training: ternarisation, alignment, and optical DFA vs digital DFA vs backprop on sklearn digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikeforge.backends.photonic.dfa import Feedback, LayerSpec, MLPTrainer, OpticalFeedback, fit, ternarise
from spikeforge.emulators.opu import CameraConfig

sklearn_datasets = pytest.importorskip("sklearn.datasets")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits():
    d = sklearn_datasets.load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    perm = np.random.default_rng(0).permutation(len(x))
    tr, te = perm[:1200], perm[1200:]
    return x[tr], y[tr], x[te], y[te]


def layers_for(hidden: list[int]) -> tuple[list[LayerSpec], int]:
    dims, layers, off = [64, *hidden, 10], [], 0
    for i in range(len(dims) - 1):
        last = i == len(dims) - 2
        layers.append(LayerSpec(f"fc{i}", np.zeros((dims[i + 1], dims[i]), np.float32),
                                np.zeros(dims[i + 1], np.float32), act="none" if last else "relu",
                                role="output" if last else "dfa", offset=off))
        off += 0 if last else dims[i + 1]
    return layers, off


def train(method: str, hidden: list[int], seed: int, epochs: int, lr: float, data, **opt) -> tuple[float, MLPTrainer]:
    layers, width = layers_for(hidden)
    fb = None
    if method == "dfa":
        fb = Feedback(10, width, seed=seed + 100)
    elif method == "odfa":  # 8-bit camera, ternary error, the board's macro-pixel choice for 10 classes
        fb = OpticalFeedback(10, width, seed=seed + 100, macro=75, n_anchor=5, **opt)
    trainer = MLPTrainer(layers, "bp" if method == "bp" else "dfa", seed=seed, lr=lr, feedback=fb)
    x, y, xt, yt = data
    return fit(trainer, x, y, epochs=epochs, seed=seed, x_test=xt, y_test=yt)["accuracy"], trainer


def test_stochastic_ternarisation_is_unbiased_and_skips_small_errors():
    e = torch.tensor([[0.5, -0.3, 0.1, -0.3, 0.005], [0.004, -0.002, 0.0, 0.001, -0.003]])
    g = torch.Generator().manual_seed(0)
    draws = [ternarise(e, 0.01, "stochastic", g) for _ in range(4000)]
    t0, s0 = draws[0]
    assert set(torch.unique(t0).tolist()) <= {-1.0, 0.0, 1.0}
    assert float(s0[1]) == 0.0 and float(t0[1].abs().sum()) == 0.0  # whole row below threshold: no frames
    mean = torch.stack([t * s[:, None] for t, s in draws]).mean(dim=0)
    assert torch.allclose(mean[0, :4], e[0, :4], atol=0.02)
    assert float(mean[0, 4]) == 0.0
    t, _ = ternarise(e, 0.25, "threshold")
    assert t[0].tolist() == [1.0, -1.0, 0.0, -1.0, 0.0]


def test_optical_feedback_counts_four_frames_per_live_vector_plus_centering():
    fb = OpticalFeedback(10, 64, seed=1, macro=75, n_anchor=5)
    e = torch.softmax(torch.randn(8, 10, generator=torch.Generator().manual_seed(2)), 1)
    e = e - torch.nn.functional.one_hot(torch.arange(8) % 10, 10).float()
    e[5] = 0.0
    y = fb.project(e)
    assert y.shape == (8, 64) and float(y[5].abs().max()) == 0.0
    assert fb.vectors == 7 and fb.frames == 4 * 7 + 4


def test_dfa_alignment_grows_with_training(digits):
    x, y, _, _ = digits
    layers, width = layers_for([100])
    trainer = MLPTrainer(layers, "dfa", seed=0, lr=2e-3,
                         feedback=OpticalFeedback(10, width, seed=100, macro=75, n_anchor=5))
    xb, yb = torch.tensor(x[:256]), torch.tensor(y[:256])
    before = trainer.alignment(xb, yb)["fc0"]
    fit(trainer, x, y, epochs=3, seed=0)
    after = trainer.alignment(xb, yb)["fc0"]
    assert after > before + 0.1 and after > 0.15


def test_optical_dfa_within_two_points_of_digital_dfa_and_backprop(digits):
    """CI size: 64-100-10, 10 epochs, two seeds (the full comparison is benchmarks/bench_photonic.py)."""
    acc = {m: np.mean([train(m, [100], s, 10, 2e-3, digits)[0] for s in (0, 1)]) for m in ("bp", "dfa", "odfa")}
    assert acc["odfa"] > 0.9
    assert abs(acc["odfa"] - acc["dfa"]) <= 0.02, acc
    assert acc["bp"] - acc["odfa"] <= 0.02, acc


def test_a_dim_camera_degrades_optical_dfa(digits):
    """The comparison above is sensitive to the physics: without macro-pixels, read noise drowns the feedback."""
    good, _ = train("odfa", [100], 0, 4, 2e-3, digits)
    layers, width = layers_for([100])
    dim = OpticalFeedback(10, width, seed=100, macro=1, n_anchor=5, camera=CameraConfig(read_noise=3.0))
    trainer = MLPTrainer(layers, "dfa", seed=0, lr=2e-3, feedback=dim)
    x, y, xt, yt = digits
    bad = fit(trainer, x, y, epochs=4, seed=0, x_test=xt, y_test=yt)["accuracy"]
    xb, yb = torch.tensor(x[:256]), torch.tensor(y[:256])
    assert trainer.alignment(xb, yb)["fc0"] < 0.15
    assert bad < good


@pytest.mark.slow
def test_full_comparison_three_seeds(digits):
    """What docs/photonic.md reports: 64-128-128-10, 30 epochs, lr 1e-3, seeds 0-2."""
    acc = {m: np.mean([train(m, [128, 128], s, 30, 1e-3, digits)[0] for s in (0, 1, 2)]) for m in ("bp", "dfa", "odfa")}
    assert abs(acc["odfa"] - acc["dfa"]) <= 0.02, acc
    assert acc["bp"] - acc["odfa"] <= 0.02, acc
