"""The array emulator equals the pulse-level emulator (and the reference) wherever it claims exactness,
and says so where a storage loop could overflow mid-step."""

from __future__ import annotations

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge import refsim
from spikeforge.backends.sfq import SFQBackend
from spikeforge.boards import get_board
from spikeforge.emulators.sfq import SFQEmulator
from spikeforge.emulators.sfq_array import OverflowPossible, run_arrays
from spikeforge.errors import SpikeforgeError
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model

from .test_sfq import digits_like, xor_graph, xor_inputs
from .test_sfq_leak import SHARED, needs_models, paper_input

DT = 1e-3


def _both(art, x: dict, probes: bool = True):
    return (SFQEmulator(mode="error", engine="pulse").run(art, x, probes=probes),
            SFQEmulator(engine="array").run(art, x, probes=probes))


def test_xor_array_equals_pulse() -> None:
    art = SFQBackend().lower(xor_graph(), get_board("sfq-rsfq"), CompileOptions(timesteps=8))
    p, a = _both(art, {"in": xor_inputs(8)})
    np.testing.assert_array_equal(a.outputs["out"], p.outputs["out"])
    np.testing.assert_array_equal(a.counts["spikes"], p.counts["spikes"])
    np.testing.assert_array_equal(a.counts["synops"], p.counts["synops"])
    for k in ("hid.s", "cls.s", "hid.v", "cls.v"):
        np.testing.assert_array_equal(a.states[k], p.states[k])
    assert a.meta["possible_overflow"] == 0


@needs_models
def test_lif_norse_array_equals_pulse() -> None:
    art = compile_model(SHARED / "models" / "lif_norse.nir", "sfq-rsfq", CompileOptions(dt=1e-4, timesteps=1000))
    p, a = _both(art, {"input": paper_input()})
    np.testing.assert_array_equal(a.outputs["output"], p.outputs["output"])
    np.testing.assert_allclose(a.states["1.v"], p.states["1.v"], rtol=0, atol=1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), reset=st.sampled_from(["zero", "subtract"]), tau=st.sampled_from([DT, 4 * DT, 0.0]),
       delay=st.booleans(), timing=st.sampled_from(["immediate", "delayed"]))
def test_random_networks_array_equals_pulse(seed: int, reset: str, tau: float, delay: bool, timing: str) -> None:
    rng = np.random.default_rng(seed)
    n0, n1, n2 = (int(v) for v in rng.integers(2, 6, size=3))
    W1 = rng.integers(-2, 3, size=(n1, n0)).astype(float)
    W2 = rng.integers(-2, 3, size=(n2, n1)).astype(float)
    b1 = rng.integers(-1, 2, size=n1).astype(float)

    def neuron(n: int) -> nir.NIRNode:
        th = rng.integers(1, 4, size=n) + (0.0 if reset == "subtract" else 0.5)
        if tau:
            return nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=th)
        return nir.IF(r=np.ones(n), v_threshold=th)

    nodes = {"in": nir.Input(np.array([n0])), "fc1": nir.Affine(W1, b1), "h": neuron(n1),
             "fc2": nir.Linear(W2), "o": neuron(n2), "out": nir.Output(np.array([n2]))}
    edges = [("in", "fc1"), ("fc1", "h"), ("fc2", "o"), ("o", "out")]
    if delay:
        nodes["d"] = nir.Delay(rng.integers(0, 3, size=n1) * DT)
        edges += [("h", "d"), ("d", "fc2")]
    else:
        edges.append(("h", "fc2"))
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": DT, "spikeforge.reset": reset,
                                                         "spikeforge.reset_timing": timing})
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(extra={"sfq.capacity": 1000}))
    x = {"in": (rng.random((15, 3, n0)) < 0.5).astype(np.float32)}
    p, a = _both(art, x)
    np.testing.assert_array_equal(a.outputs["out"], p.outputs["out"])
    np.testing.assert_array_equal(a.states["h.v"], p.states["h.v"])
    if tau in (0.0, DT):          # integer dynamics: both equal the reference simulator too
        np.testing.assert_array_equal(a.outputs["out"], refsim.simulate(g, x).outputs["out"])


def test_overflow_is_flagged_not_hidden() -> None:
    g, x, _ = digits_like()
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=x.shape[0]))   # capacity 8
    with pytest.raises(OverflowPossible):
        run_arrays(art.meta["program"], art.arrays, {"in": x}, strict=True)
    tr = SFQEmulator(engine="array").run(art, {"in": x})
    assert tr.meta["possible_overflow"] > 0 and tr.meta["saturation_count"] > 0 and tr.meta["violation_count"] == 0
    assert tr.meta["possible_overflow"] == tr.meta["saturation_count"] + tr.meta["order_dependent"]
    big = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=x.shape[0],
                                                                      extra={"sfq.capacity": 256}))
    p, a = _both(big, {"in": x}, probes=False)
    np.testing.assert_array_equal(a.outputs["out"], p.outputs["out"])
    assert a.meta["possible_overflow"] == 0


def test_stochastic_needs_the_pulse_engine() -> None:
    art = SFQBackend().lower(xor_graph(), get_board("sfq-rsfq"), CompileOptions(extra={"sfq.coding": "stochastic"}))
    with pytest.raises(SpikeforgeError, match="pulse"):
        SFQEmulator(engine="array").run(art, {"in": xor_inputs(4)})
