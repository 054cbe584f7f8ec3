"""Readouts (Affine/Linear -> Output) on Loihi: the bundled liquid state machine and exact weighted sums."""

from __future__ import annotations

import nir
import numpy as np

from spikeforge import graph as G
from spikeforge import models, refsim
from spikeforge.artifact import Artifact
from spikeforge.backends.loihi import LoihiBackend
from spikeforge.boards import get_board
from spikeforge.interfaces import CompileOptions
from spikeforge.verify import verify


def _lsm():
    """The bundled model and its inputs ship with the package: a missing file is a failure, not a skip."""
    return models.path("digits_lsm.nir"), models.path("digits_inputs.npz")


def test_bundled_lsm_compiles_and_verifies_on_loihi2(tmp_path):
    model, data = _lsm()
    with np.load(data) as f:
        x, labels = f["input"], f["labels"]
    art = LoihiBackend().lower(G.read(model), get_board("loihi2"), CompileOptions(timesteps=int(x.shape[0])))
    assert art.meta["io"]["outputs"]["output"]["var"] == "u"              # read from the readout's u
    assert art.meta["readouts"] == {"output": "readout"}
    art = Artifact.load(art.save(tmp_path / "lsm"))
    res = verify(art, {"input": x}, labels, backend=LoihiBackend(), max_accuracy_drop=0.01)
    assert res.passed, [(c.name, c.detail) for c in res.checks if not c.passed]
    assert res.metrics["accuracy_board"] > 0.85
    ref = refsim.simulate(art.reference, {"input": x}).outputs["output"].sum(0).argmax(-1)
    board = res.board_trace.outputs["output"].sum(0).argmax(-1)
    assert np.mean(ref == board) >= 0.98                               # measured 99.7 % (359 of 360)
    assert {c.name: c for c in res.checks}["lava_bit_exact"].passed   # Lava fixed_pt == emulator, s/u/v


def test_readout_of_inputs_is_the_exact_weighted_sum_up_to_16_bit_weights():
    """Input -> Affine -> Output: the board's output is W x + b at the same time step, x the input spikes."""
    rng = np.random.default_rng(0)
    w, b = rng.normal(0, 1, (7, 30)), rng.normal(0, 1, 7)
    g = nir.NIRGraph.from_list(nir.Input(input_type=np.array([30])), nir.Affine(weight=w, bias=b),
                               nir.Output(output_type=np.array([7])))
    g.metadata = {"spikeforge.dt": 1e-3}
    art = LoihiBackend().lower(g, get_board("loihi2"), CompileOptions(timesteps=20))
    x = (rng.random((20, 4, 30)) < 0.3).astype(np.float32)
    got = LoihiBackend().emulator().run(art, {"input": x}).outputs
    ref = refsim.simulate(art.reference, {"input": x}).outputs
    name = next(iter(ref))
    np.testing.assert_allclose(got[name], ref[name], atol=2e-3 * np.abs(w).max())
    assert not np.allclose(got[name], 0)
    one = LoihiBackend().lower(g, get_board("loihi2"), CompileOptions(timesteps=20,
                                                                       extra={"loihi.readout_weight_bytes": 1}))
    err1 = np.abs(LoihiBackend().emulator().run(one, {"input": x}).outputs[name] - ref[name]).max()
    err2 = np.abs(got[name] - ref[name]).max()
    assert err2 < err1 / 20                               # the residual connection buys ~8 more bits
