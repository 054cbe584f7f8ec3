"""Keras models exported with tf2onnx (committed files, examples/models/make_keras_onnx.py): the NHWC spellings
tf2onnx writes import exactly, compile for the boards, and the ANN conversion targets each board's reset."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import spikeforge as sf
from spikeforge.errors import UnsupportedError
from spikeforge.frontends.onnx import onnxruntime_check, parse_onnx
from spikeforge.models import path as bundled

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"


def _digits(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = np.load(bundled("digits_inputs.npz"))
    return d["analog"][:n], d["input"][:, :n], d["labels"][:n]


@pytest.mark.parametrize("name, shape", [("keras_mlp_tf2onnx", (64,)), ("keras_cnn_tf2onnx", (8, 8, 1))])
def test_tf2onnx_files_parse_exactly(name, shape):
    analog, _, _ = _digits(100)
    p = MODELS / f"{name}.onnx"
    ann = parse_onnx(p)
    assert onnxruntime_check(p, analog.reshape(-1, *shape)) < 1e-4
    kinds = [o.kind for o in ann.ops.values()]
    assert kinds.count("linear") >= 1 and "relu" in kinds
    if "cnn" in name:  # the (N, 8, 8, 1) -> (N, 1, 8, 8) Reshape of the input is a view; the NHWC flatten is undone
        assert ann.input_shape == (1, 8, 8)
        assert kinds == ["input", "conv2d", "relu", "avgpool", "flatten", "linear"]


def test_channels_last_input_with_several_channels_names_the_exporter_flag(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 4, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 4, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 3, 1, 1], np.ones(6, np.float32))
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 3, 1, 2], name="to_nchw"),
             helper.make_node("Conv", ["t", "w"], ["c"], name="conv"), helper.make_node("Relu", ["c"], ["y"])]
    m = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, tmp_path / "nhwc.onnx")
    with pytest.raises(UnsupportedError, match="inputs-as-nchw"):
        parse_onnx(tmp_path / "nhwc.onnx")


def test_conversion_targets_the_boards_reset_and_reports_its_cost(tmp_path):
    analog, spikes, labels = _digits(360)  # the whole test split: one sample is 0.28 points of the 1-point gate
    cal = tmp_path / "cal.npz"
    np.savez(cal, analog=analog.reshape(-1, 8, 8, 1))
    model = MODELS / "keras_cnn_tf2onnx.onnx"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loihi = sf.compile(str(model), board="loihi2", calibration=str(cal), timesteps=25)
        ref = sf.compile(str(model), board="cpu-reference", calibration=str(cal), timesteps=25)
    resets = {n.metadata.get("spikeforge.reset") for n in loihi.reference.nodes.values()
              if getattr(n, "metadata", None) and "spikeforge.reset" in n.metadata}
    assert resets == {"zero"}
    assert {n.metadata.get("spikeforge.reset") for n in ref.reference.nodes.values()
            if getattr(n, "metadata", None) and "spikeforge.reset" in n.metadata} == {"subtract"}
    assert any("resets to zero" in str(w.message) and "agree" in str(w.message) for w in caught)
    # no reset approximation is left for verify to gate: the chip runs the converted SNN's reset exactly
    kinds = {w["kind"] for w in loihi.meta.get("semantic_warnings", [])}
    assert "reset_changed" not in kinds
    res = sf.verify(loihi, inputs=spikes.reshape(spikes.shape[0], -1, 1, 8, 8), labels=labels)
    acc = {c.name: c for c in res.checks}["accuracy"]
    assert acc.passed, acc.detail
