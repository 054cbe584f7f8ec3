"""Pruning: exact sparsity, measured synop reduction, structured removal, GraNet schedule, fine-tune hook."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeforge import graph as G
from spikeforge import refsim
from spikeforge.errors import InputError
from spikeforge.passes import gradual_schedule, prune, prune_gradual, quantize

from .test_passes_helpers import digits_model


@pytest.fixture(scope="module")
def model():
    return digits_model()


def _acc(g, x, y):
    return float(np.mean(refsim.simulate(g, x).outputs["output"].sum(0).argmax(1) == y))


@pytest.mark.parametrize("sparsity", [0.5, 0.8])
def test_magnitude_pruning_hits_sparsity_and_cuts_synops(model, sparsity):
    g, calib, x, y = model
    pg, rep = prune(g, sparsity=sparsity, calibration=calib)
    for name in ("fc1", "fc2"):
        w0, w1 = np.asarray(g.nodes[name].weight), np.asarray(pg.nodes[name].weight)
        assert np.count_nonzero(w1) == w0.size - int(np.floor(sparsity * w0.size))
        kept = w1 != 0
        np.testing.assert_array_equal(w1[kept], w0[kept])  # survivors untouched
        assert np.abs(w0[~kept]).max() <= np.abs(w0[kept]).min()  # the smallest went
        assert pg.nodes[name].metadata["spikeforge.prune"]["sparsity"] == pytest.approx(
            1 - np.count_nonzero(w1) / w1.size)
    assert rep.sparsity == pytest.approx(sparsity, abs=0.01)
    # synaptic operations measured by the reference simulator fall roughly in proportion
    s0 = refsim.simulate(g, x).synops.sum()
    s1 = refsim.simulate(pg, x).synops.sum()
    assert s1 < s0 * (1 - sparsity + 0.1)
    assert rep.synops_after < rep.synops_before
    G.validate(pg)


def test_bias_compensation_keeps_accuracy_at_half_sparsity(model):
    g, calib, x, y = model
    base = _acc(g, x, y)
    p_comp, _ = prune(g, sparsity=0.5, calibration=calib)
    p_raw, _ = prune(g, sparsity=0.5, calibration=calib, compensate=False)
    assert _acc(p_comp, x, y) >= base - 0.05
    assert _acc(p_comp, x, y) > _acc(p_raw, x, y)


def test_structured_pruning_removes_neurons(model):
    g, calib, x, y = model
    pg, rep = prune(g, sparsity=0.25, method="structured", calibration=calib)
    assert np.asarray(pg.nodes["fc1"].weight).shape == (48, 64)
    assert np.asarray(pg.nodes["fc2"].weight).shape == (10, 48)
    assert np.asarray(pg.nodes["lif1"].tau).shape == (48,)
    assert rep.neurons_removed == {"lif1": 16}
    G.validate(pg)
    assert _acc(pg, x, y) >= _acc(g, x, y) - 0.05
    assert refsim.simulate(pg, x).synops.sum() < refsim.simulate(g, x).synops.sum()
    # activity-aware choice beats removing the same number of neurons at random
    rng = np.random.default_rng(0)
    drop = rng.choice(64, 16, replace=False)
    keep = np.setdiff1d(np.arange(64), drop)
    rg = G.validate(g)
    nodes = dict(rg.nodes)
    nodes["fc1"] = nir.Affine(np.asarray(g.nodes["fc1"].weight)[keep], np.asarray(g.nodes["fc1"].bias)[keep])
    lif = g.nodes["lif1"]
    nodes["lif1"] = nir.LIF(tau=lif.tau[keep], r=lif.r[keep], v_leak=lif.v_leak[keep],
                            v_threshold=lif.v_threshold[keep], v_reset=lif.v_reset[keep])
    nodes["fc2"] = nir.Affine(np.asarray(g.nodes["fc2"].weight)[:, keep], g.nodes["fc2"].bias)
    rand = nir.NIRGraph(nodes=nodes, edges=rg.edges, metadata=rg.metadata, type_check=False)
    assert rep.agreement >= float(np.mean(
        refsim.simulate(rand, calib["input"]).outputs["output"].sum(0).argmax(1)
        == refsim.simulate(g, calib["input"]).outputs["output"].sum(0).argmax(1)))


def test_gradual_schedule_is_the_granet_cubic():
    assert gradual_schedule(0.0, 0.8, 0, 10) == 0.0
    assert gradual_schedule(0.0, 0.8, 10, 10) == pytest.approx(0.8)
    assert gradual_schedule(0.0, 0.8, 20, 10) == pytest.approx(0.8)
    assert gradual_schedule(0.1, 0.9, 5, 10) == pytest.approx(0.9 + (0.1 - 0.9) * 0.5**3)
    vals = [gradual_schedule(0.0, 0.9, t, 8) for t in range(9)]
    assert all(b >= a for a, b in zip(vals, vals[1:]))


def test_fine_tune_callback_runs_each_round_and_cannot_revive_pruned(model):
    g, calib, x, y = model
    calls = []

    def fine_tune(graph, step, s):
        calls.append((step, s))
        out = G.validate(graph)
        for name in ("fc1", "fc2"):
            out.nodes[name].weight = np.ones_like(np.asarray(out.nodes[name].weight))  # tries to revive all
        return out

    pg, rep, sched = prune_gradual(g, sparsity=0.8, steps=3, fine_tune=fine_tune, calibration=calib)
    assert [c[0] for c in calls] == [1, 2, 3]
    assert sched[-1] == pytest.approx(0.8) and sched == sorted(sched)
    assert rep.sparsity == pytest.approx(0.8, abs=0.01)
    w = np.asarray(pg.nodes["fc1"].weight)
    assert set(np.unique(w)) <= {0.0, 1.0}


def test_pruned_then_quantised_keeps_zeros_and_determinism(model, tmp_path):
    g, calib, x, y = model
    a, _ = prune(g, sparsity=0.5, calibration=calib)
    b, _ = prune(g, sparsity=0.5, calibration=calib)
    G.write(a, tmp_path / "a.nir")
    G.write(b, tmp_path / "b.nir")
    assert (tmp_path / "a.nir").read_bytes() == (tmp_path / "b.nir").read_bytes()
    q, rep = quantize(a, bit_budget=None, calibration=calib, timesteps=None, weight_bits=4, mode="asymmetric")
    w0, w1 = np.asarray(a.nodes["fc1"].weight), np.asarray(q.nodes["fc1"].weight)
    assert np.all(w1[w0 == 0] == 0)
    assert rep.layers[0].synapses == np.count_nonzero(w0)


def test_invalid_requests(model):
    g, _, _, _ = model
    with pytest.raises(InputError):
        prune(g, sparsity=1.0)
    with pytest.raises(InputError):
        prune(g, sparsity=0.5, method="random")
