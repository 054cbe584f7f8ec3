"""Delay mapping: per-synapse and NIR Delay node delays, relays beyond the board range, verified timing."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeforge import graph as G
from spikeforge import refsim
from spikeforge.errors import BoardError
from spikeforge.passes import expand_synapse_delays, map_delays, verify_delays
from spikeforge.passes.delays import STEPS_KEY

DT_FINE = 1e-4
DT_BOARD = 1e-3
N_IN, N_OUT = 5, 12


def _if(n):
    return nir.IF(r=np.ones(n, np.float32), v_threshold=np.full(n, 0.5, np.float32), v_reset=np.zeros(n, np.float32))


def _net(seed=0, d_max=0.02):
    """Each output neuron listens to one input through a synapse with its own delay (up to d_max s);
    axons are shared, so delays are heterogeneous per axon."""
    rng = np.random.default_rng(seed)
    w = np.zeros((N_OUT, N_IN), np.float32)
    w[np.arange(N_OUT), np.arange(N_OUT) % N_IN] = 1.0
    d = rng.uniform(0, d_max, (N_OUT, N_IN))
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([N_IN])),
                            "fc": nir.Linear(weight=w, metadata={"spikeforge.synapse_delays_s": d}),
                            "lif": _if(N_OUT), "out": nir.Output(np.array([N_OUT]))},
                     edges=[("in", "fc"), ("fc", "lif"), ("lif", "out")],
                     metadata={"spikeforge.dt": DT_FINE}, type_check=False)
    return g, w, d


def _spikes(seed=0, T=900, B=3):
    """Input spikes far enough apart that no two reach the same target within the longest delay."""
    rng = np.random.default_rng(seed)
    x = np.zeros((T, B, N_IN), np.float32)
    for b in range(B):
        for j in range(N_IN):
            for t0 in (rng.integers(0, 50), 300 + rng.integers(0, 50), 600 + rng.integers(0, 50)):
                x[t0, b, j] = 1
    return x


def test_expansion_is_the_float_reference():
    g, w, d = _net()
    x = _spikes()
    out = refsim.simulate(expand_synapse_delays(g), x).outputs["out"]
    # each output spike must sit exactly round(d / dt) steps after its input spike
    for i in range(N_OUT):
        j = i % N_IN
        steps = int(np.rint(d[i, j] / DT_FINE))
        for b in range(x.shape[1]):
            t_in = np.flatnonzero(x[:, b, j])
            t_out = np.flatnonzero(out[:, b, i])
            np.testing.assert_array_equal(t_out, t_in + steps)


def test_relays_bring_long_delays_within_one_board_step():
    g, w, d = _net()
    H = 4
    mapped, rep = map_delays(g, dt=DT_BOARD, max_delay_steps=H, policy="relay", verify_inputs=_spikes())
    v = rep.verification
    assert v["reference_spikes"] > 0 and v["unmatched_spikes"] == 0
    assert v["within_one_step"] and v["max_error_s"] <= DT_BOARD + 1e-12
    # every synapse in the mapped graph is within the board range
    for node in mapped.nodes.values():
        if STEPS_KEY in (node.metadata or {}):
            assert int(np.max(node.metadata[STEPS_KEY])) <= H
    # relays: per axon, the longest of its synapses sets the chain length ceil(d / H) - 1
    steps = np.rint(d / DT_BOARD).astype(int) * (w != 0)
    expected = sum(max(0, int(np.ceil(steps[:, j].max() / H)) - 1) for j in range(N_IN))
    assert rep.relays_added == expected > 0
    n_if = sum(int(np.asarray(n.r).size) for k, n in mapped.nodes.items() if isinstance(n, nir.IF) and k != "lif")
    assert n_if == rep.relays_added
    assert rep.max_quantisation_error_s <= DT_BOARD / 2 + 1e-12
    G.validate(mapped)


def test_chain_uses_more_relays_and_native_refuses():
    g, _, _ = _net()
    _, relay = map_delays(g, dt=DT_BOARD, max_delay_steps=4, policy="relay")
    _, chain = map_delays(g, dt=DT_BOARD, max_delay_steps=4, policy="chain", verify_inputs=_spikes())
    assert chain.relays_added > relay.relays_added
    assert chain.verification["within_one_step"]
    with pytest.raises(BoardError, match="allows at most 4"):
        map_delays(g, dt=DT_BOARD, max_delay_steps=4, policy="native")
    _, native = map_delays(g, dt=DT_BOARD, max_delay_steps=64, policy="native", verify_inputs=_spikes())
    assert native.relays_added == 0 and native.verification["within_one_step"]


def test_verification_detects_a_wrong_mapping():
    g, _, _ = _net()
    mapped, _ = map_delays(g, dt=DT_BOARD, max_delay_steps=64, policy="native")
    meta = dict(mapped.nodes["fc"].metadata)
    bad = np.asarray(meta[STEPS_KEY]).copy()
    bad[bad > 0] += 3
    meta[STEPS_KEY] = bad
    mapped.nodes["fc"].metadata = meta
    v = verify_delays(g, mapped, _spikes())
    assert not v["within_one_step"] and v["max_error_steps"] > 1


def test_delay_nodes_fold_into_synapses():
    rng = np.random.default_rng(1)
    d = rng.uniform(0, 0.012, N_IN)
    w = np.eye(N_IN, dtype=np.float32)
    g = nir.NIRGraph(nodes={"in": nir.Input(np.array([N_IN])), "dl": nir.Delay(delay=d),
                            "fc": nir.Linear(weight=w), "lif": _if(N_IN), "out": nir.Output(np.array([N_IN]))},
                     edges=[("in", "dl"), ("dl", "fc"), ("fc", "lif"), ("lif", "out")],
                     metadata={"spikeforge.dt": DT_FINE}, type_check=False)
    mapped, rep = map_delays(g, dt=DT_BOARD, max_delay_steps=3, policy="relay", verify_inputs=_spikes(T=700))
    assert rep.delay_nodes_folded == ["dl"]
    assert not any(isinstance(n, nir.Delay) for n in mapped.nodes.values())
    assert rep.verification["within_one_step"] and rep.verification["reference_spikes"] > 0


def test_deterministic_bytes(tmp_path):
    g, _, _ = _net()
    a, _ = map_delays(g, dt=DT_BOARD, max_delay_steps=4)
    b, _ = map_delays(g, dt=DT_BOARD, max_delay_steps=4)
    G.write(a, tmp_path / "a.nir")
    G.write(b, tmp_path / "b.nir")
    assert (tmp_path / "a.nir").read_bytes() == (tmp_path / "b.nir").read_bytes()
    back = nir.read(str(tmp_path / "a.nir"))
    assert np.asarray(back.nodes["fc"].metadata[STEPS_KEY]).dtype.kind == "i"
