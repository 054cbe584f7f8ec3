"""The block-wise emulator is bit-identical to the literal per-step ring-buffer emulator it replaced.

Covers what changes the fast path: exponential synapses with a bias ramp, refractory timers, saturated ring
buffers (statistical bound, dense input), shift 16 (wrapping inputs), recurrent loops (blocks of one step),
long delays, IF populations with their rounding offset, and batches.
"""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest

from spikeforge.backends.spinnaker import SpiNNakerBackend
from spikeforge.backends.spinnaker.program import Program
from spikeforge.boardspec import get_board
from spikeforge.emulators.spinnaker import simulate
from spikeforge.interfaces import CompileOptions
from tests._spinnaker_stepwise import simulate_stepwise

BE = SpiNNakerBackend()


def _lif(n, tau=0.01):
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                   v_reset=np.zeros(n))


def _cuba(n):
    return nir.CubaLIF(tau_syn=np.full(n, 0.004), tau_mem=np.full(n, 0.015), r=np.full(n, 15.0),
                       v_leak=np.full(n, 0.05), v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.full(n, 4.0))


def _graph(kind: str) -> nir.NIRGraph:
    rng = np.random.default_rng(11)
    nodes = {"input": nir.Input(np.array([30])), "fc": nir.Affine(rng.normal(0.15, 0.3, (40, 30)),
                                                                   rng.normal(0.0, 0.05, 40))}
    edges = [("input", "fc"), ("fc", "h")]
    if kind == "sparse":  # 1.5% of the weights: sparse matrices on the emulator's side too
        w = nodes["fc"].weight * (rng.random((40, 30)) < 0.015) * 8.0
        nodes["fc"] = nir.Affine(w, nodes["fc"].bias)
    if kind == "cuba_rec":
        nodes.update(h=_cuba(40), rec=nir.Linear(rng.normal(0, 0.2, (40, 40))))
        edges += [("h", "rec"), ("rec", "h")]
    elif kind == "if":
        nodes.update(h=nir.IF(r=np.ones(40), v_threshold=np.full(40, 2.0)))
    else:
        nodes.update(h=_lif(40))
    nodes.update(fc2=nir.Linear(rng.normal(0.1, 0.4, (8, 40))), d=nir.Delay(np.linspace(0.001, 0.04, 8)),
                 out=_lif(8), output=nir.Output(np.array([8])))
    edges += [("h", "fc2"), ("fc2", "d"), ("d", "out"), ("out", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": 1e-3})


@pytest.mark.parametrize("kind,extra", [
    ("lif", {}),
    ("lif", {"spinnaker.tau_refrac_ms": 2.0, "spinnaker.ring_buffer": "statistical", "spinnaker.rate_hz": 1.0}),
    ("cuba_rec", {}),
    ("cuba_rec", {"spinnaker.max_expected_summed_weight": {"h": [40000.0, 40000.0]}}),   # shift 16: wrapping
    ("if", {}),
    ("sparse", {}),
])
def test_fast_emulator_is_bit_identical_to_the_stepwise_one(kind, extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        art = BE.lower(_graph(kind), get_board("spinn5"), CompileOptions(extra=extra))
    prog = Program.from_artifact(art.meta, art.arrays)
    x = (np.random.default_rng(3).random((300, 3, 30)) < 0.4).astype(np.float32) * 2  # counts of 2: saturation
    fast = simulate(prog, {"input": x}, probes=True)
    slow = simulate_stepwise(prog, {"input": x}, probes=True)
    for p in prog.populations:
        if p.is_source:
            continue
        np.testing.assert_array_equal(fast.states[f"{p.node}.v"].reshape(slow["v"][p.name].shape), slow["v"][p.name])
        if p.spiking:
            np.testing.assert_array_equal(fast.states[f"{p.node}.s"].reshape(slow["spikes"][p.name].shape),
                                          slow["spikes"][p.name])
    np.testing.assert_array_equal(fast.counts["ring_buffer_saturations"], slow["saturations"])
    assert fast.outputs["output"].sum() > 0 and fast.states["h.v"].std() > 0
    if "statistical" in str(extra):
        assert slow["saturations"].sum() > 0
