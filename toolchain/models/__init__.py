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
