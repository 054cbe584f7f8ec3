"""Bundled example models (trained by the scripts in examples/) and their test inputs."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

#: model file -> input file used by `spikeforge demo`
BUNDLED = {
    "digits_snn.nir": "digits_inputs.npz",
    "digits_mlp.onnx": "digits_inputs.npz",
    "digits_lsm.nir": "digits_inputs.npz",
}


def path(name: str) -> Path:
    """Filesystem path of a bundled file (models/*.nir, *.onnx, *.npz)."""
    p = Path(str(resources.files("spikeforge.models").joinpath(name)))
    if not p.exists():
        raise FileNotFoundError(f"no bundled file '{name}' in {p.parent}")
    return p


def digits_split(seed: int = 0):
    """The split the bundled models were trained and tested on: scikit-learn digits scaled to [0, 1],
    80/20 stratified with `seed`. Returns (x_train, x_test, y_train, y_test). Needs scikit-learn."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return train_test_split(x, y.astype(np.int64), test_size=0.2, random_state=seed, stratify=y)


def rate_code(x, steps: int, seed: int, dtype="uint8"):
    """Bernoulli rate code of the bundled inputs: P(spike at t) = pixel intensity; (T, B, 64)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.random((steps, *x.shape)) < x[None]).astype(dtype)
