"""One test per programmed-mode non-ideality: the output error grows with its strength and is zero when off."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeforge.backends.rram import xbar as X
from spikeforge.emulators.rram_graph import GraphEmulator
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model

N_IN, N = 200, 100
OFF = {"prog_noise": 0.0, "drift_time": 0.0, "read_noise": 0.0, "ir_drop": 0.0, "adc_bits": None, "dac_bits": None}


def _integrator(seed: int = 0) -> nir.NIRGraph:
    """Affine into non-spiking IF neurons: v is the running sum of the crossbar's outputs."""
    rng = np.random.default_rng(seed)
    return nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([N_IN])}),
        "fc": nir.Affine(weight=rng.normal(0, 0.2, (N, N_IN)).astype(np.float32), bias=np.zeros(N, np.float32)),
        "acc": nir.IF(r=np.ones(N), v_threshold=np.full(N, 1e12)),
        "output": nir.Output(output_type={"output": np.array([N])})},
        edges=[("input", "fc"), ("fc", "acc"), ("acc", "output")], metadata={"spikeforge.dt": 1e-3})


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(1)
    spikes = (rng.random((8, 16, N_IN)) < 0.3).astype(np.float32)
    graded = rng.random((8, 16, N_IN)).astype(np.float32)
    arts = {}
    for kind, x in (("spikes", spikes), ("graded", graded)):
        arts[kind] = compile_model(_integrator(), "rram-neurram-48x256",
                                   CompileOptions(extra={"rram.mode": "programmed", "rram.noise": "off",
                                                         "rram.levels": 16, "rram.calibrate": False}),
                                   calibration={"input": x})
    return arts, {"spikes": spikes, "graded": graded}


def _error(setup, kind: str, **effects) -> float:
    arts, xs = setup
    art = arts[kind]
    ideal = GraphEmulator(effects=dict(OFF)).run(art, {"input": xs[kind]}, probes=True).states["acc.v"]
    got = GraphEmulator(effects={**OFF, **effects}, seed=3).run(art, {"input": xs[kind]}, probes=True).states["acc.v"]
    return float(np.linalg.norm(got - ideal) / np.linalg.norm(ideal))


def test_programming_noise_grows_and_is_zero_when_off(setup):
    errs = [_error(setup, "spikes", prog_noise=s) for s in (0.0, 0.5, 1.0, 2.0)]
    assert errs[0] == 0.0 and 0 < errs[1] < errs[2] < errs[3]
    # the published residual is about 2-2.3 uS of 40 uS: a few percent of the output
    assert 0.005 < errs[2] < 0.3


def test_drift_grows_with_time_since_programming(setup):
    errs = [_error(setup, "spikes", prog_noise=1.0, drift_time=t) for t in (0.0, 1.0, 1e3, 1e6)]
    assert errs[0] == errs[1] > 0                                 # no extra spread before 1 s
    assert errs[1] < errs[2] < errs[3]
    assert _error(setup, "spikes", drift_time=1e6) == 0.0         # drift grows the write-verify spread only
    assert X.drift_factor(86400.0, 0.057) == pytest.approx(1.91, abs=0.02)   # the 1-day fit it came from


def test_read_noise_grows_and_is_zero_when_off(setup):
    errs = [_error(setup, "spikes", read_noise=s) for s in (0.0, 0.01, 0.05)]
    assert errs[0] == 0.0 and 0 < errs[1] < errs[2]


def test_ir_drop_grows_with_wire_resistance(setup):
    errs = [_error(setup, "spikes", ir_drop=r * 40e-6) for r in (0.0, 2.0, 10.0)]
    assert errs[0] == 0.0 and 0 < errs[1] < errs[2]


def test_fewer_adc_bits_larger_error(setup):
    errs = [_error(setup, "spikes", adc_bits=b) for b in (None, 10, 8, 6, 4)]
    assert errs[0] == 0.0 and 0 < errs[1] < errs[2] < errs[3] < errs[4]


def test_dac_exact_for_spikes_and_coarser_for_fewer_bits_on_graded_inputs(setup):
    assert _error(setup, "spikes", dac_bits=1) < 1e-12              # spikes are 1-bit: exact
    errs = [_error(setup, "graded", dac_bits=b) for b in (None, 8, 4, 2)]
    assert errs[0] == 0.0 and 0 < errs[1] < errs[2] < errs[3]


def test_gain_calibration_recovers_systematic_error(setup):
    """Per-column gains fitted on calibration data undo most of a strong IR drop (a systematic loss)."""
    _, xs = setup
    x = xs["spikes"]
    opts = {"rram.mode": "programmed", "rram.noise": "off", "rram.levels": 16, "rram.r_wire": 0.5}
    art = compile_model(_integrator(), "rram-neurram-48x256", CompileOptions(extra=opts), calibration={"input": x})
    ideal = GraphEmulator(effects=dict(OFF)).run(art, {"input": x}, probes=True).states["acc.v"]
    err = {}
    for cal in (False, True):
        v = GraphEmulator(calibrated=cal).run(art, {"input": x}, probes=True).states["acc.v"]
        err[cal] = float(np.linalg.norm(v - ideal) / np.linalg.norm(ideal))
    assert err[False] > 0.02 and err[True] < 0.5 * err[False]


def test_graded_input_on_a_layer_compiled_for_spikes_is_refused():
    from spikeforge.errors import InputError

    art = compile_model(_integrator(), "rram-neurram-48x256", CompileOptions(extra={"rram.mode": "programmed"}))
    x = np.full((2, 1, N_IN), 0.5, np.float32)
    with pytest.raises(InputError, match="compiled for input .assumed spikes.* graded values"):
        GraphEmulator().run(art, {"input": x})
