"""Photonic DFA on models exported by real tools: training must not depend on how an exporter scales a layer.

Norse's LIFBoxCell integrates dt/tau = 0.1 of its input per step, snnTorch's Leaky all of it (with 10x
smaller weights): the same network, and optical DFA must train both the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from spikeforge.backends.photonic.dfa import SpikingTrainer
from spikeforge.backends.photonic.lower import layers_from_program, make_feedback, make_trainer
from spikeforge.boards import get_board
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("sklearn")
pytest.importorskip("norse")
pytest.importorskip("snntorch")


@pytest.fixture(scope="module")
def arts(conformance, tmp_path_factory):
    models = conformance.build_models(tmp_path_factory.mktemp("exp"), ["norse_mlp", "snntorch_mlp"])
    out = {}
    for name, m in models.items():
        out[name] = compile_model(m.file, "lighton-opu", CompileOptions(seed=0), **dict(m.frontend))
    return out


def test_norse_and_snntorch_programs_differ_only_in_the_split_of_gain_and_weights(arts):
    norse, snn = arts["norse_mlp"].meta["program"], arts["snntorch_mlp"].meta["program"]
    assert norse["mode"] == snn["mode"] == "spiking"
    # the exporters really differ: Norse's gain is dt/tau = 0.1, snnTorch's 1
    assert np.allclose(arts["norse_mlp"].arrays["layer/net_0/gain"], 0.1, rtol=1e-5)
    assert np.allclose(arts["snntorch_mlp"].arrays["layer/fc1/gain"], 1.0, rtol=1e-5)
    # ... and the calibrated feedback gain does not see it (was 0.00037 for Norse vs 0.080 for snnTorch)
    g_norse = [d["gain"] for d in norse["layers"] if d["role"] == "dfa"]
    g_snn = [d["gain"] for d in snn["layers"] if d["role"] == "dfa"]
    assert g_norse == pytest.approx(g_snn, rel=1e-4)


def test_training_steps_are_identical_across_the_rescaling(arts):
    board = get_board("lighton-opu")
    data = {k: arts["snntorch_mlp"].arrays[f"data/{k}"] for k in ("x_train", "y_train")}
    x, y = torch.tensor(data["x_train"][:64]), torch.tensor(data["y_train"][:64])
    logits = []
    for name in ("norse_mlp", "snntorch_mlp"):
        prog, arrays = arts[name].meta["program"], arts[name].arrays
        tr = make_trainer(prog, arrays, "dfa", make_feedback(prog, board, "dfa"), seed=3)
        for _ in range(3):
            tr.step(x, y)
        logits.append(tr.forward(x)[1][-1])
    assert float(logits[0].detach().abs().sum()) > 0
    assert torch.allclose(logits[0], logits[1], atol=1e-4)


def test_graph_init_round_trips_the_graphs_weights(arts):
    art = arts["norse_mlp"]
    prog = art.meta["program"]
    layers = layers_from_program(prog, art.arrays)
    tr = SpikingTrainer(layers, "bp", init="graph", **prog["spiking"])
    for spec, (w, b) in zip(layers, tr.weights()):
        np.testing.assert_allclose(w, spec.weight, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, spec.bias, rtol=1e-5, atol=1e-6)
    # internally the first layer works in threshold units: the graph's 10x weights times the 0.1 gain
    np.testing.assert_allclose(tr.W[0].detach().numpy(), 0.1 * layers[0].weight, rtol=1e-5, atol=1e-6)


def test_sinabs_cnn_without_training_data_is_a_method_refusal(conformance, tmp_path):
    """shared/models/cnn_sinabs.nir (2x34x34 -> 10): no labelled data fits it here, so no DFA program."""
    models = conformance.build_models(tmp_path / "w", ["nir_cnn_sinabs"])
    cell = conformance.run_cell(models["nir_cnn_sinabs"], "lighton-opu", tmp_path / "art")
    assert cell["status"] == "refused" and cell["kind"] == "method", cell
    assert "2312 inputs (2x34x34) and 10 classes" in cell["reason"] and "photonic.train_data" in cell["reason"]


def test_sinabs_cnn_with_training_data_compiles_its_conv_front_end(tmp_path):
    """Given labelled data, the same graph is a DFA program: conv stack trained on the host, head on the OPU."""
    rng = np.random.default_rng(0)
    x = (rng.random((90, 2, 34, 34)) < 0.04).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x, y=rng.integers(0, 10, 90))
    shared = ROOT.parent / "shared" if (ROOT.parent / "shared").is_dir() else ROOT.parents[2] / "shared"
    art = compile_model(str(shared / "models" / "cnn_sinabs.nir"), "lighton-opu",
                        CompileOptions(dt=1e-3, seed=0, extra={"photonic.train_data": str(tmp_path / "train.npz")}))
    prog = art.meta["program"]
    assert prog["mode"] == "rate" and prog["front_end"]["input_shape"] == [2, 34, 34]
    assert [r for r in prog["roles"].values()].count("bp") == 3 and "dfa" in prog["roles"].values()
    assert art.arrays["data/x_train"].shape == (60, 2312)
    assert all(d["gain"] != 1.0 for d in prog["layers"] if d["role"] == "dfa")  # calibrated on the data
