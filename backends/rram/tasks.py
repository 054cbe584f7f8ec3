"""An event-style task buildable offline: scikit-learn's 8 x 8 digits as Bernoulli spike trains."""

from __future__ import annotations

import numpy as np


def digits_spikes(timesteps: int = 30, max_rate: float = 0.5, seed: int = 0, test_fraction: float = 0.2,
                  limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train (T, B, 64), y_train, x_test, y_test): pixel intensity / 16 x max_rate = spike probability
    per step, a fixed seeded split. Needs scikit-learn (a dev / bench dependency)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(d.target))
    if limit is not None:
        order = order[:limit]
    img = d.data[order] / 16.0
    y = d.target[order].astype(np.int64)
    x = (rng.random((timesteps, *img.shape)) < img[None] * max_rate).astype(np.float32)
    n_test = int(round(test_fraction * len(y)))
    return x[:, n_test:], y[n_test:], x[:, :n_test], y[:n_test]
