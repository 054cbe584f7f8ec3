"""SFQ column of the conformance matrix: storage-loop saturation, AvgPool2d on an exported CNN.

Models come from the real tools (torch.onnx.export, snnTorch via the conformance builders); each test would
have failed before issue 13's SFQ round: saturation was counted as a timing violation, and an exported CNN
with AvgPool2d was refused as unsupported.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from spikeforge import refsim
from spikeforge.errors import UnsupportedError
from spikeforge.frontends import load_model
from spikeforge.interfaces import CompileOptions
from spikeforge.passes import avgpool_to_sumpool
from spikeforge.pipeline import compile_model
from spikeforge.verify import verify

SFQ = {"sfq.capacity": 64, "sfq.max_weight": 7}


@pytest.fixture(scope="module")
def exported_cnn(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """An untrained Conv-BN-ReLU-AvgPool-Flatten-Linear CNN written by torch.onnx.export, and calibration data."""
    torch.manual_seed(0)
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    p = tmp_path_factory.mktemp("cnn") / "cnn.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(cnn, (torch.zeros(1, 1, 8, 8),), str(p), dynamo=False)
    return p, np.random.default_rng(0).random((64, 1, 8, 8)).astype(np.float32)


def test_avgpool_to_sumpool_is_exact_on_an_exported_cnn(exported_cnn) -> None:
    path, cal = exported_cnn
    g = load_model(path, calibration={"analog": cal}, timesteps=10)
    assert any(isinstance(n, nir.AvgPool2d) for n in g.nodes.values())
    g2, done = avgpool_to_sumpool(g)
    assert len(done) == 1 and done[0]["scale"] == pytest.approx(0.25)
    assert not any(isinstance(n, nir.AvgPool2d) for n in g2.nodes.values())
    assert any(isinstance(n, nir.AvgPool2d) for n in g.nodes.values())          # the input is untouched
    x = (np.random.default_rng(1).random((10, 4, 1, 8, 8)) < 0.3).astype(np.float32)
    inp = next(n for n, node in g.nodes.items() if isinstance(node, nir.Input))
    a, b = refsim.simulate(g, {inp: x}, probes=True), refsim.simulate(g2, {inp: x}, probes=True)
    out = next(iter(a.outputs))
    assert a.outputs[out].sum() > 0
    np.testing.assert_array_equal(a.outputs[out], b.outputs[out])


def test_avgpool_into_a_neuron_is_kept() -> None:
    """Nothing linear to fold into: the pool stays and the SFQ backend refuses it, naming the node."""
    g = nir.NIRGraph(nodes={
        "in": nir.Input(np.array([1, 4, 4])),
        "pool": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "lif": nir.IF(r=np.ones((1, 2, 2)), v_threshold=np.ones((1, 2, 2))),
        "out": nir.Output(np.array([1, 2, 2]))},
        edges=[("in", "pool"), ("pool", "lif"), ("lif", "out")], type_check=False)
    g2, done = avgpool_to_sumpool(g)
    assert done == [] and isinstance(g2.nodes["pool"], nir.AvgPool2d)
    with pytest.raises(UnsupportedError, match="AvgPool2d"):
        compile_model(g, "sfq-rsfq", CompileOptions(timesteps=4, dt=1e-3, extra=dict(SFQ)))


def test_exported_cnn_with_avgpool_compiles_and_verifies_on_sfq(exported_cnn) -> None:
    path, cal = exported_cnn
    art = compile_model(path, "sfq-rsfq", CompileOptions(timesteps=10, extra=dict(SFQ)), calibration={"analog": cal})
    assert any("AvgPool2d" in n and "SumPool2d" in n for n in art.meta["notes"])
    assert any(isinstance(n, nir.AvgPool2d) for n in art.reference.nodes.values())   # verify compares with it
    x = np.random.default_rng(2).random((6, 1, 8, 8)).astype(np.float32)
    inp = next(iter(art.meta["program"]["inputs"]))
    res = verify(art, {inp: np.broadcast_to(x, (10, *x.shape)).copy()})
    assert res.metrics["samples"] == 6 and res.metrics["board_output_total"] > 0


def test_saturation_is_recorded_and_gated_not_a_timing_fault(conformance, tmp_path) -> None:
    """snnTorch MLP on sfq-rsfq (capacity 64): loops saturate, timing is clean, the outputs decide."""
    m = conformance.build_models(tmp_path / "w", ["snntorch_mlp"])["snntorch_mlp"]
    art = compile_model(m.file, "sfq-rsfq", CompileOptions(timesteps=m.timesteps, dt=m.dt, extra=dict(SFQ)),
                        **m.frontend)
    sat = [w for w in art.meta["semantic_warnings"] if w["kind"] == "saturation"]
    assert sat and all(0 < w["magnitude"] <= 1 for w in sat)          # a fraction of neurons, not worst/capacity
    d = np.load(m.inputs)
    res = verify(art, {"input": d["input"][:, :12]}, d["labels"][:12])
    checks = {c.name: c for c in res.checks}
    timing = checks["sfq emulated timing"]
    assert timing.passed and "0 violation(s)" in timing.detail, timing.detail
    assert "storage-loop saturations" in timing.detail
    assert all(c.passed for n, c in checks.items() if n.startswith("semantic:") and "saturation" in n)
    assert res.passed, [c for c in res.checks if not c.passed]


def test_engines_agree_gates_the_array_engine_against_the_pulse_engine() -> None:
    """Where a loop saturates mid-step the array engine approximates pulse order; the check must catch a
    difference that changes predictions and accept one that does not."""
    from spikeforge.backends.sfq.backend import _engines_agree
    from spikeforge.interfaces import Trace

    rng = np.random.default_rng(0)
    p = (rng.random((10, 8, 4)) < 0.2).astype(np.float32)
    p[:, :, 0] += 1.0                                             # neuron 0 wins every sample
    def tr(x):
        return Trace(outputs={"o": x}, counts={}, meta={"saturation_count": 3, "order_dependent": 2})
    assert _engines_agree(tr(p), tr(p), 8, "first 8 of 8 samples")[1]
    near = p.copy()
    near[0, :, 1] = 1.0                                           # one extra spike: same predictions
    ok, detail = _engines_agree(tr(near), tr(p), 8, "first 8 of 8 samples")[1:]
    assert ok and "agreement 100.0%" in detail
    swapped = p[:, :, ::-1].copy()                                # every prediction moves
    assert not _engines_agree(tr(swapped), tr(p), 8, "first 8 of 8 samples")[1]
