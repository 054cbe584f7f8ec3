"""Graph semantics of the reference simulator: recurrent latency, Delay, pooling/flatten shapes, and the
public NIR files of the NIR paper (written by Norse and Sinabs, not by us)."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from spikeforge import graph as G
from spikeforge import refsim

MODELS = Path("/work/shared/models")
needs_models = pytest.mark.skipif(not MODELS.is_dir(), reason="shared NIR paper models not present")


def chain(nodes: dict[str, nir.NIRNode], n_in, n_out, extra_edges=(), extra_nodes=None) -> nir.NIRGraph:
    """input -> nodes (in the given order) -> output, plus extra nodes and edges."""
    names = list(nodes)
    edges = [("input", names[0])] + list(zip(names[:-1], names[1:])) + [(names[-1], "output")]
    return nir.NIRGraph(
        nodes={"input": nir.Input(np.atleast_1d(n_in)), **nodes, **(extra_nodes or {}),
               "output": nir.Output(np.atleast_1d(n_out))},
        edges=edges + list(extra_edges),
    )


def test_recurrent_edge_has_one_step_latency():
    """a = x + d[t-1], d = b = 0.5 a: an impulse at t = 0 gives b[t] = 0.5^(t+1).

    The loop holds a zero Delay: a loop of stateless nodes only is an algebraic loop, which the validator
    refuses (test_validate_hardening.py); the latency sits on the back edge either way."""
    g = chain({"a": nir.Scale(np.ones(1)), "b": nir.Scale(np.full(1, 0.5))}, 1, 1, [("b", "d"), ("d", "a")],
              {"d": nir.Delay(np.zeros(1))})
    assert G.schedule(G.validate(g)).recurrent == (("d", "a"),)
    x = np.zeros((8, 1, 1), np.float32)
    x[0] = 1.0
    out = refsim.simulate(g, x, dt=1e-3).outputs["output"][:, 0, 0]
    np.testing.assert_allclose(out, 0.5 ** (np.arange(8) + 1))


def test_recurrent_self_excitation_latency_through_neuron():
    """IF neuron exciting itself through a recurrent Affine: one input spike at t = 0 makes it fire at 0,
    then every step after (each spike arrives one step later and re-crosses the threshold)."""
    neuron = nir.IF(r=np.ones(1), v_threshold=np.full(1, 0.5), v_reset=np.zeros(1))
    rec = nir.Affine(np.ones((1, 1), np.float32), np.zeros(1, np.float32))
    g = chain({"neuron": neuron}, 1, 1, [("neuron", "rec"), ("rec", "neuron")], {"rec": rec})
    x = np.zeros((6, 1, 1), np.float32)
    x[0] = 1.0
    out = refsim.simulate(g, x, dt=1e-3, probes=True)
    np.testing.assert_array_equal(out.outputs["output"][:, 0, 0], np.ones(6))
    np.testing.assert_array_equal(out.activity["rec"][:, 0, 0], np.ones(6))  # rec[t] feeds neuron[t+1]


@pytest.mark.parametrize("delay_steps,expected", [(3.0, 3), (2.6, 3), (2.4, 2), (0.0, 0)])
def test_delay_shifts_by_rounded_steps(delay_steps, expected):
    dt = 1e-3
    g = chain({"d": nir.Delay(np.full(2, delay_steps * dt))}, 2, 2)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3, 2)).astype(np.float32)
    out = refsim.simulate(g, x, dt=dt).outputs["output"]
    want = np.zeros_like(x)
    want[expected:] = x[: len(x) - expected]
    np.testing.assert_array_equal(out, want)


def test_delay_per_element():
    dt = 1e-3
    g = chain({"d": nir.Delay(np.array([1, 4, 0]) * dt)}, 3, 3)
    x = np.random.default_rng(1).normal(size=(10, 2, 3)).astype(np.float32)
    out = refsim.simulate(g, x, dt=dt).outputs["output"]
    for j, d in enumerate([1, 4, 0]):
        np.testing.assert_array_equal(out[d:, :, j], x[: 10 - d, :, j])
        np.testing.assert_array_equal(out[:d, :, j], 0)


def pool_graph(kind, c=2, hw=8) -> nir.NIRGraph:
    node = kind(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    node.input_type = {"input": np.array([c, hw, hw])}
    node.output_type = {"output": np.array([c, hw // 2, hw // 2])}
    flat = nir.Flatten(input_type={"input": np.array([c, hw // 2, hw // 2])}, start_dim=0, end_dim=-1)
    return chain({"pool": node, "flat": flat}, [c, hw, hw], [c * (hw // 2) ** 2])


@pytest.mark.parametrize("kind,reduce", [(nir.SumPool2d, np.sum), (nir.AvgPool2d, np.mean)])
def test_pooling_and_flatten_shapes_and_values(kind, reduce):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 3, 2, 8, 8)).astype(np.float32)
    res = refsim.simulate(pool_graph(kind), x, dt=1e-3, probes=True)
    pooled = res.activity["pool"]
    assert pooled.shape == (5, 3, 2, 4, 4)
    want = reduce(x.reshape(5, 3, 2, 4, 2, 4, 2), axis=(4, 6))
    np.testing.assert_allclose(pooled, want, rtol=1e-6, atol=1e-6)
    out = res.outputs["output"]
    assert out.shape == (5, 3, 32)
    np.testing.assert_array_equal(out, pooled.reshape(5, 3, 32))  # C-order flatten of (C, H, W)


# ------------------------------------------------------------------------------------ NIR paper files


def paper_input() -> np.ndarray:
    """The NIR paper's single-neuron stimulus (shared/README.md): gaps -> 0/1 train, 100 entries, each
    followed by 9 zero steps; 1,000 steps."""
    gaps = [6, 15, 4, 3, 0, 2, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
            0, 14]
    train: list[float] = []
    for gap in gaps:
        train += [0.0] * gap + [1.0]
    x = np.zeros(1000, np.float32)
    x[::10] = np.array(train[:100], np.float32)
    return x[:, None, None]


def hand_euler(x: np.ndarray, w: float, b: float, tau: float, r: float, v_leak: float, thr: float, v_reset: float,
               dt: float):
    """An independent scalar float64 loop: v += dt/tau (v_leak - v + r (w x + b)); spike when v > thr."""
    v, vs, ss = 0.0, [], []
    for xt in x.ravel():
        v = v + dt / tau * (v_leak - v + r * (w * float(xt) + b))
        s = v > thr
        if s:
            v = v_reset
        vs.append(v)
        ss.append(float(s))
    return np.array(ss), np.array(vs)


@needs_models
def test_lif_norse_paper_model():
    g = G.read(MODELS / "lif_norse.nir")
    assert G.get_dt(g) is None  # the file records no dt; the paper used 1e-4 s
    x = paper_input()
    assert x.shape == (1000, 1, 1) and x.sum() == 34
    a = refsim.simulate(g, x, dt=1e-4, probes=True)
    b = refsim.simulate(g, x, dt=1e-4, probes=True)
    out = a.outputs["output"]
    assert out.shape == (1000, 1, 1)
    np.testing.assert_array_equal(out, b.outputs["output"])  # deterministic
    np.testing.assert_array_equal(a.states["1.v"], b.states["1.v"])

    aff, lif = g.nodes["0"], g.nodes["1"]
    params = dict(w=float(aff.weight.ravel()[0]), b=float(aff.bias.ravel()[0]), tau=float(lif.tau.ravel()[0]),
                  r=float(lif.r.ravel()[0]), v_leak=float(lif.v_leak.ravel()[0]),
                  thr=float(lif.v_threshold.ravel()[0]), v_reset=float(lif.v_reset.ravel()[0]))
    s_hand, v_hand = hand_euler(x, dt=1e-4, **params)
    spikes = out[:, 0, 0]
    np.testing.assert_array_equal(spikes, s_hand)
    np.testing.assert_allclose(a.states["1.v"][:, 0, 0], v_hand, atol=1e-6)
    # Plausible: it fires, less often than its input, only on steps that carry an input spike (a 1-input
    # LIF with v_leak = 0 can only rise on an input), and only inside the dense bursts of the stimulus.
    times = np.flatnonzero(spikes)
    assert 0 < len(times) < x.sum()
    assert np.all(x[times, 0, 0] == 1)
    assert np.all(x[times - 10, 0, 0] == 1)  # the previous input slot fired too: a burst


@needs_models
def test_cnn_sinabs_paper_model_runs():
    g = G.read(MODELS / "cnn_sinabs.nir")
    rng = np.random.default_rng(3)
    x = (rng.random((6, 2, 2, 34, 34)) < 0.15).astype(np.float32)
    sim = refsim.ReferenceSimulator(G.validate(g), refsim.config_for_graph(g, dt=1e-3))
    res = sim.run(x, probes=True)
    assert res.outputs["output"].shape == (6, 2, 10)
    assert set(np.unique(res.outputs["output"])) <= {0.0, 1.0}
    shapes = {k: v.shape[2:] for k, v in res.activity.items()}
    assert shapes["0"] == (16, 16, 16) and shapes["4"] == (16, 8, 8) and shapes["7"] == (8, 4, 4)
    assert shapes["8"] == (128,) and shapes["11"] == (10,)
    assert res.spikes.sum() > 0  # the IF layers do fire on this input
    again = sim.run(x)
    np.testing.assert_array_equal(again.outputs["output"], res.outputs["output"])


# ------------------------------------------------------------------------------------ conventions


def _one_lif(meta: dict | None = None, graph_meta: dict | None = None) -> nir.NIRGraph:
    node = nir.IF(r=np.ones(1), v_threshold=np.ones(1), v_reset=np.zeros(1))
    node.metadata = dict(meta or {})
    g = chain({"neuron": node}, 1, 1)
    g.metadata = dict(graph_meta or {})
    return g


def test_convention_precedence_node_over_option_over_graph():
    """Constant input 0.75 into IF(thr 1): reset to zero fires every 2nd step (4 of 8);
    subtract: v = .75, 1.5*, 1.25*, 1.0 (not > 1), 1.75*, 1.5*, 1.25*, 1.0 -> 5 of 8."""
    x = np.full((8, 1, 1), 0.75, np.float32)

    def count(g, **opt):
        return int(refsim.simulate(g, x, dt=1e-3, **opt).outputs["output"].sum())

    assert count(_one_lif()) == 4  # default: zero
    assert count(_one_lif(graph_meta={"spikeforge.reset": "subtract"})) == 5
    assert count(_one_lif(graph_meta={"spikeforge.reset": "subtract"}), reset="zero") == 4
    assert count(_one_lif(meta={"spikeforge.reset": "subtract"}), reset="zero") == 5
    assert count(_one_lif(), threshold_cmp=">=", reset="zero") == 4
    # ">=" matters when v lands exactly on the threshold: 0.5 + 0.5 == 1.0
    half = np.full((4, 1, 1), 0.5, np.float32)
    gt = refsim.simulate(_one_lif(), half, dt=1e-3).outputs["output"][:, 0, 0]
    ge = refsim.simulate(_one_lif(), half, dt=1e-3, threshold_cmp=">=").outputs["output"][:, 0, 0]
    np.testing.assert_array_equal(gt, [0, 0, 1, 0])
    np.testing.assert_array_equal(ge, [0, 1, 0, 1])


def test_bad_convention_is_a_clear_error():
    from spikeforge.errors import GraphError

    with pytest.raises(GraphError, match="reset_timing"):
        refsim.SimConfig(reset_timing="later")
    with pytest.raises(GraphError, match="dt"):
        refsim.SimConfig(dt=0.0)
