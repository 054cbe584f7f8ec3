"""Readout training on emulated states, reservoir dynamics measures, and zero-shot accuracy on digits."""

from __future__ import annotations

import numpy as np
import pytest

from spikeforge.backends.rram import RRAMBackend, fit_readout, generate
from spikeforge.backends.rram import readout as R
from spikeforge.backends.rram.device import load_board
from spikeforge.backends.rram.reservoir import branching_ratio, class_separation, dynamics
from spikeforge.emulators.rram import RRAMEmulator
from spikeforge.interfaces import CompileOptions
from spikeforge.refsim import simulate

BOARD = load_board()


def _blobs(n=600, d=40, c=4, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (c, d))
    y = rng.integers(0, c, n)
    return centres[y] + rng.normal(0, 1.2, (n, d)), y


@pytest.mark.parametrize("method", ["ridge", "logistic", "contrastive"])
def test_readout_methods_learn(method):
    x, y = _blobs()
    kw = {"epochs": 80} if method == "contrastive" else {}
    ro = R.train(x[:450], y[:450], method, classes=4, **kw)
    chance = 0.25
    assert R.accuracy(ro, x[450:], y[450:]) > 0.85 > chance
    # the per-step Affine folding reproduces the logits when summed over T steps
    T = 7
    w, b = ro.per_step(T)
    summed = T * (x[450:] @ w.T.astype(np.float64) + b)
    np.testing.assert_allclose(summed, ro.logits(x[450:]), rtol=1e-4, atol=1e-4)


def test_contrastive_aligns_two_modalities():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(120, 5))                                   # shared latent
    a = z @ rng.normal(size=(5, 30)) + 0.1 * rng.normal(size=(120, 30))
    b = z @ rng.normal(size=(5, 20)) + 0.1 * rng.normal(size=(120, 20))
    pa, pb = R.contrastive(a, b, dim=8, epochs=150, lr=3e-2)
    ea = a @ pa.T
    eb = b @ pb.T
    ea /= np.linalg.norm(ea, axis=1, keepdims=True)
    eb /= np.linalg.norm(eb, axis=1, keepdims=True)
    match = np.argmax(ea @ eb.T, axis=1) == np.arange(120)         # cross-modal retrieval
    assert match.mean() > 0.5                                       # chance is 1/120


def test_fit_readout_is_stored_and_consistent_with_reference():
    from spikeforge.backends.rram.tasks import digits_spikes

    xtr, ytr, xte, yte = digits_spikes(20, limit=500)
    g = generate(size=100, inputs=64, seed=0)
    art = RRAMBackend().lower(g, BOARD, CompileOptions(seed=0))
    ro = fit_readout(art, xtr, ytr, method="ridge")
    assert art.meta["readout"]["method"] == "ridge" and art.meta["readout"]["train_accuracy"] > 0.8
    np.testing.assert_array_equal(art.arrays["readout.w"], np.asarray(art.reference.nodes["readout"].weight))
    # predictions from the reference graph's summed readout == the readout on emulated rates
    ref = simulate(art.reference, xte, dtype="float64")
    pred_ref = ref.outputs["output"].sum(axis=0).argmax(axis=1)
    feats = R.rates(RRAMEmulator().run(art, xte, probes=True).states["lif.spikes"])
    np.testing.assert_array_equal(pred_ref, ro.predict(feats))
    assert np.mean(pred_ref == yte) > 0.7


def test_dynamics_track_spectral_radius():
    rng = np.random.default_rng(0)
    x = (rng.random((30, 20, 32)) < 0.3).astype(np.float32)
    out = {}
    for rho in (0.2, 3.0):
        g = generate(size=150, inputs=32, p_connect=0.1, spectral_radius=rho, input_scale=1.0, seed=1)
        out[rho] = dynamics(g, x)
    assert 0 < out[0.2]["mean_rate"] < 1
    assert out[0.2]["branching_ratio"] < out[3.0]["branching_ratio"]
    assert out[0.2]["branching_ratio"] < 1.0
    assert out[0.2]["separation"] < out[3.0]["separation"]


def test_branching_ratio_and_class_separation_on_known_data():
    a = np.array([8, 4, 2, 1, 0, 0], float)                          # each spike has half a descendant
    s = np.zeros((6, 1, 8))
    for t, k in enumerate(a.astype(int)):
        s[t, 0, :k] = 1
    assert branching_ratio(s) == pytest.approx(7 / 15)
    f = np.array([[0, 0], [0.1, 0], [5, 5], [5.1, 5]])
    assert class_separation(f, np.array([0, 0, 1, 1])) > 10 > class_separation(f, np.array([0, 1, 0, 1]))


def test_zero_shot_reservoir_within_3_points_of_software_on_digits():
    """The definition of done: zero-shot (formed) weights with typical non-idealities vs float software."""
    from spikeforge.backends.rram.tasks import digits_spikes

    xtr, ytr, xte, yte = digits_spikes(30)
    g = generate(size=200, inputs=64, p_connect=0.1, spectral_radius=0.9, seed=1)

    def software(graph):
        f = lambda x: R.rates(simulate(graph, x, probes=True).activity["lif"])  # noqa: E731
        ro = R.train(f(xtr), ytr, "ridge", classes=10)
        return R.accuracy(ro, f(xte), yte)

    sw = software(g)
    art = RRAMBackend().lower(g, BOARD, CompileOptions(seed=3, extra={"rram.mode": "zero_shot",
                                                                     "rram.nonideal": "typical"}))
    emu = RRAMEmulator()
    ro = fit_readout(art, xtr, ytr, emulator=emu)
    hw = R.accuracy(ro, R.rates(emu.run(art, xte, probes=True).states["lif.spikes"]), yte)
    assert sw > 0.85
    assert hw >= sw - 0.03, (hw, sw)


def test_readout_on_chip_and_reference_states():
    from spikeforge.backends.rram.tasks import digits_spikes
    from spikeforge.errors import InputError

    xtr, ytr, xte, yte = digits_spikes(15, limit=300)
    art = RRAMBackend().lower(generate(size=80, inputs=64, seed=0), BOARD,
                              CompileOptions(seed=0, extra={"rram.nonideal": "typical"}))
    fit_readout(art, xtr, ytr, states="both")
    assert art.meta["readout"]["states"] == "both"
    assert "states" not in art.files["code/report.md"] and "ridge" in art.files["code/report.md"]
    chip = RRAMEmulator().run(art, xte).outputs["output"].sum(axis=0).argmax(axis=1)
    ref = simulate(art.reference, xte).outputs["output"].sum(axis=0).argmax(axis=1)
    assert np.mean(chip == yte) > 0.6 and np.mean(ref == yte) > 0.6
    with pytest.raises(InputError, match="states"):
        fit_readout(art, xtr, ytr, states="dream")
