"""The bundled digits SNN compiled for loihi2: verify against the float reference, profile with sources."""

from __future__ import annotations

import numpy as np

from spikeforge import graph as G
from spikeforge import models
from spikeforge.artifact import Artifact
from spikeforge.backends.loihi import LoihiBackend
from spikeforge.boards import get_board
from spikeforge.interfaces import CompileOptions
from spikeforge.verify import verify


def _bundled():
    """The bundled model and its inputs ship with the package: a missing file is a failure, not a skip."""
    return models.path("digits_snn.nir"), models.path("digits_inputs.npz")


def test_digits_snn_on_loihi2_within_one_point_of_float(tmp_path):
    model, data = _bundled()
    with np.load(data) as f:
        x, labels = f["input"], f["labels"]
    # (the registry entry for `loihi` is added by the lead; compile through the backend directly)
    art = LoihiBackend().lower(G.read(model), get_board("loihi2"), CompileOptions(timesteps=int(x.shape[0])))
    art = Artifact.load(art.save(tmp_path / "digits"))
    res = verify(art, {"input": x}, labels, backend=LoihiBackend(), max_accuracy_drop=0.01)
    checks = {c.name: c for c in res.checks}
    assert res.passed, [(c.name, c.detail) for c in res.checks if not c.passed]
    assert res.metrics["accuracy_reference"] - res.metrics["accuracy_board"] <= 0.01
    assert res.metrics["accuracy_board"] > 0.8                       # the model really classifies
    assert checks["lava_bit_exact"].passed                           # Lava fixed_pt == emulator, bit for bit
    prof = LoihiBackend().cost_model().profile(art, res.board_trace)
    assert prof.energy_total > 0 and prof.latency_of("per_inference") > 0
    for item in prof.energy + prof.latency[:1]:
        assert item.sources and all("Davies" in s for s in item.sources)
