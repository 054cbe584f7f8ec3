"""verify's conditioning floor: a failed argmax agreement judged against the float model's own spread.

Run on the NIR paper's cnn_sinabs with random event frames (issue 14's verification setting), where the
float model's predictions are near ties; the floor must pass Loihi's real quantisation and still fail a
board that is wrong (its classes rotated by one).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import spikeforge as sf
from spikeforge import graph as G
from spikeforge.conditioning import agreement_floor, perturbed, weight_error
from spikeforge.emulators.reference import simulate_trace
from spikeforge.interfaces import Trace
from spikeforge.registry import get_backend
from spikeforge.semantics import WEIGHT_REL_RMS, record
from spikeforge.verify import verify as run_verify

CNN = Path(__file__).resolve().parents[2] / "shared" / "models" / "cnn_sinabs.nir"
needs_cnn = pytest.mark.skipif(not CNN.exists(), reason="shared/models/cnn_sinabs.nir not present")


def _frames(n: int, steps: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.02, 0.05, size=(1, n, 1, 1, 1))
    return (rng.random((steps, n, 2, 34, 34)) < density).astype(np.float32)


def test_weight_error_reads_only_relative_rms_weight_records():
    meta: dict = {}
    record(meta, "a", "quantisation", "weights", 0.01, WEIGHT_REL_RMS)
    record(meta, "b", "quantisation", "weights", 0.03, WEIGHT_REL_RMS)
    record(meta, "c", "quantisation", "weights", 0.02, WEIGHT_REL_RMS)
    record(meta, "d", "quantisation", "7 of 9 weights quantise to zero", 0.77)  # a fraction, not an error
    record(meta, "e", "saturation", "v saturates", 1.0)
    assert weight_error(meta) == pytest.approx(0.02)
    assert weight_error({}) is None


@needs_cnn
def test_perturbation_has_the_requested_relative_rms():
    g = G.read(CNN)
    for mag in (0.0, 0.01, 0.05):
        p = perturbed(g, mag, np.random.default_rng(1))
        for name, node in g.nodes.items():
            if hasattr(node, "weight") and np.size(node.weight) > 500:
                w, q = np.asarray(node.weight, float), np.asarray(p.nodes[name].weight, float)
                rel = np.linalg.norm(q - w) / np.linalg.norm(w)
                assert rel == pytest.approx(mag, rel=0.1, abs=1e-7)


@needs_cnn
def test_loihi_cnn_sinabs_passes_on_random_frames_and_a_rotated_board_fails():
    x = {"input": _frames(10)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        art = sf.compile(str(CNN), board="loihi2", dt=1e-3)
    # verify's own checks on precomputed sides (Lava's bit-exact run, which verify adds on Loihi, is tested
    # elsewhere and costs half a minute)
    ref = simulate_trace(art.reference, 1e-3, x)
    got = get_backend("loihi").emulator().run(art, x)
    res = run_verify(art, x, sides=(ref, None, got), backend=get_backend("reference"))
    checks = {c.name: c for c in res.checks}
    assert checks["output:output"].passed, checks["output:output"].detail
    assert checks["agreement"].passed, checks["agreement"].detail
    # the same float side against a board whose class scores are rotated: far outside any perturbation's spread
    rotated = Trace(outputs={k: np.roll(v, 1, axis=-1) for k, v in got.outputs.items()}, counts=got.counts)
    bad = run_verify(art, x, sides=(ref, None, rotated), backend=get_backend("reference"))
    agreement = next(c for c in bad.checks if c.name == "agreement")
    assert not agreement.passed
    assert "outside that spread" in agreement.detail
    # and the floor itself: zero perturbation agrees perfectly, a large one does not
    from spikeforge.verify import scores

    s_ref = scores(ref.outputs)
    assert agreement_floor(art.reference, 1e-3, x, s_ref, 0.0, seeds=1).worst == 1.0
    assert agreement_floor(art.reference, 1e-3, x, s_ref, 0.2, seeds=1).worst < 1.0
