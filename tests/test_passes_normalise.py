"""Normalisation passes are exact under the reference simulator."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeforge import graph as G
from spikeforge import refsim
from spikeforge.passes import (
    conv_to_affine,
    fold_affines,
    fold_scales,
    fuse_cubalif,
    normalise,
    split_cubalif,
)

DT = 1e-3


def _lif(n, tau=5e-3, vth=1.0):
    return nir.LIF(tau=np.full(n, tau, np.float32), r=np.ones(n, np.float32), v_leak=np.zeros(n, np.float32),
                   v_threshold=np.full(n, vth, np.float32), v_reset=np.zeros(n, np.float32))


def _graph(nodes, edges, **meta):
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": DT, **meta}, type_check=False)


def _same(g1, g2, x, **kw):
    a = refsim.simulate(g1, x, probes=False, dtype="float64", **kw).outputs["out"]
    b = refsim.simulate(g2, x, probes=False, dtype="float64", **kw).outputs["out"]
    assert a.shape == b.shape
    assert a.sum() > 0, "test network should be active"
    np.testing.assert_allclose(a, b, atol=1e-9)


@pytest.fixture
def spikes():
    return (np.random.default_rng(0).random((30, 4, 6)) < 0.4).astype(np.float32)


def test_fold_scale_before_and_after_affine(spikes):
    rng = np.random.default_rng(1)
    w1 = rng.normal(size=(5, 6)).astype(np.float32) * 2
    g = _graph({"in": nir.Input(np.array([6])), "s0": nir.Scale(rng.uniform(0.5, 2, 6).astype(np.float32)),
                "fc": nir.Affine(w1, rng.normal(size=5).astype(np.float32)),
                "s1": nir.Scale(rng.uniform(0.5, 2, 5).astype(np.float32)), "lif": _lif(5),
                "out": nir.Output(np.array([5]))},
               [("in", "s0"), ("s0", "fc"), ("fc", "s1"), ("s1", "lif"), ("lif", "out")])
    f, folded = fold_scales(g)
    assert sorted(folded) == ["s0", "s1"]
    assert not any(isinstance(n, nir.Scale) for n in f.nodes.values())
    _same(g, f, spikes)


def test_fold_batchnorm_affine(spikes):
    rng = np.random.default_rng(2)
    w = rng.normal(size=(5, 6)).astype(np.float32) * 2
    gamma, beta = rng.uniform(0.5, 1.5, 5), rng.normal(size=5)
    bn = nir.Affine(np.diag(gamma).astype(np.float32), beta.astype(np.float32))
    g = _graph({"in": nir.Input(np.array([6])), "fc": nir.Linear(w), "bn": bn, "lif": _lif(5),
                "out": nir.Output(np.array([5]))}, [("in", "fc"), ("fc", "bn"), ("bn", "lif"), ("lif", "out")])
    f, folded = fold_affines(g)
    assert folded == ["bn"] and len(f.nodes) == 4
    _same(g, f, spikes)


def test_conv_and_pool_lowered_to_sparse_affine():
    rng = np.random.default_rng(3)
    w = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    conv = nir.Conv2d(input_shape=(6, 6), weight=w, stride=1, padding=1, dilation=1, groups=1,
                      bias=rng.normal(size=3).astype(np.float32) * 0.1)
    g = _graph({"in": nir.Input(np.array([2, 6, 6])), "conv": conv, "lif": _lif(1),
                "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
                "flat": nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([3, 3, 3])}),
                "fc": nir.Linear(rng.normal(size=(4, 27)).astype(np.float32)), "lif2": _lif(4, vth=0.5),
                "out": nir.Output(np.array([4]))},
               [("in", "conv"), ("conv", "lif"), ("lif", "pool"), ("pool", "flat"), ("flat", "fc"),
                ("fc", "lif2"), ("lif2", "out")])
    # LIF shaped like the conv output
    g.nodes["lif"] = nir.LIF(tau=np.full((3, 6, 6), 5e-3, np.float32), r=np.ones((3, 6, 6), np.float32),
                             v_leak=np.zeros((3, 6, 6), np.float32), v_threshold=np.full((3, 6, 6), 0.5, np.float32),
                             v_reset=np.zeros((3, 6, 6), np.float32))
    g = nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata=g.metadata)  # type inference fills shapes
    x = (rng.random((20, 3, 2 * 6 * 6)) < 0.3).astype(np.float32)
    lowered, names = conv_to_affine(g)
    assert {"conv", "pool", "flat"} <= set(names)
    assert isinstance(lowered.nodes["conv"], nir.Affine) and lowered.nodes["conv"].weight.shape == (108, 72)
    assert lowered.nodes["conv"].metadata["spikeforge.sparse"]["density"] < 0.3
    assert "flat" not in lowered.nodes
    G.validate(lowered)
    _same(g, lowered, x)


@pytest.mark.parametrize("order", ["current_first", "voltage_first"])
@pytest.mark.parametrize("integration", ["euler", "exact"])
def test_split_and_fuse_cubalif_are_exact(spikes, order, integration):
    rng = np.random.default_rng(4)
    n = 5
    cuba = nir.CubaLIF(tau_syn=np.full(n, 3e-3), tau_mem=np.full(n, 8e-3), r=np.full(n, 2.0),
                       v_leak=np.zeros(n), v_threshold=np.full(n, 0.3), v_reset=np.zeros(n), w_in=np.full(n, 1.5))
    g = _graph({"in": nir.Input(np.array([6])), "fc": nir.Linear(rng.normal(size=(n, 6)).astype(np.float32) + 0.5),
                "cuba": cuba, "out": nir.Output(np.array([n]))}, [("in", "fc"), ("fc", "cuba"), ("cuba", "out")],
               **{"spikeforge.cuba_order": order, "spikeforge.integration": integration})
    s, names = split_cubalif(g)
    assert names == ["cuba"] and isinstance(s.nodes["cuba"], nir.LIF) and isinstance(s.nodes["cuba.syn"], nir.LI)
    assert ("cuba.syn_delay" in s.nodes) == (order == "voltage_first")
    _same(g, s, spikes)
    if order == "current_first":
        f, fused = fuse_cubalif(s)
        assert fused == ["cuba"] and isinstance(f.nodes["cuba"], nir.CubaLIF)
        _same(g, f, spikes)


def test_normalise_runs_everything(spikes):
    rng = np.random.default_rng(5)
    g = _graph({"in": nir.Input(np.array([6])), "s": nir.Scale(np.full(6, 2.0, np.float32)),
                "fc": nir.Linear(rng.normal(size=(5, 6)).astype(np.float32)),
                "bn": nir.Affine(np.eye(5, dtype=np.float32) * 1.5, np.full(5, 0.1, np.float32)), "lif": _lif(5),
                "out": nir.Output(np.array([5]))},
               [("in", "s"), ("s", "fc"), ("fc", "bn"), ("bn", "lif"), ("lif", "out")])
    f, done = normalise(g)
    assert done["fold_scales"] == ["s"] and done["fold_affines"] == ["bn"]
    _same(g, f, spikes)
