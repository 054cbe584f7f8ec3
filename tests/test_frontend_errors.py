"""Unsupported constructs tried as a new user would: one clear line on stderr and exit code 2 from the CLI."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("brian2")

from spikeforge.cli import main  # noqa: E402
from spikeforge.errors import InputError, UnsupportedError  # noqa: E402
from spikeforge.frontends import load_model  # noqa: E402

from .test_frontend_brian2 import HH_SCRIPT  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _convert(*args):
    res = CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)
    lines = [ln for ln in (res.stderr or res.output).splitlines() if ln.strip()]
    return res.exit_code, lines


class _LSTMNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 4, batch_first=True)
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


def test_onnx_lstm(tmp_path) -> None:
    path = tmp_path / "lstm.onnx"
    torch.onnx.export(_LSTMNet(), (torch.zeros(1, 5, 8),), str(path), dynamo=False)
    calib = tmp_path / "calib.npz"
    np.savez(calib, input=np.zeros((4, 5, 8), np.float32))
    code, lines = _convert(path, "-o", tmp_path / "out.nir", "--calibration", calib)
    assert code == 2
    assert len(lines) == 1
    assert "LSTM" in lines[0] and "supported:" in lines[0] and "Gemm" in lines[0]
    assert not (tmp_path / "out.nir").exists()


def test_brian2_hodgkin_huxley(tmp_path) -> None:
    path = tmp_path / "hh.py"
    path.write_text(HH_SCRIPT)
    code, lines = _convert(path, "-o", tmp_path / "out.nir")
    assert code == 2 and len(lines) == 1 and "trust" in lines[0]  # a .py runs code: refused by default
    code, lines = _convert(path, "-o", tmp_path / "out.nir", "--trust")
    assert code == 2
    assert len(lines) == 1
    assert "'hh'" in lines[0] and "dh/dt" in lines[0] and "Hodgkin-Huxley" in lines[0]


def test_pickled_module_needs_trust(tmp_path) -> None:
    path = tmp_path / "model.pt"
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    torch.save(model, path)  # a full pickle, not a state_dict
    calib = tmp_path / "calib.npz"
    np.savez(calib, input=np.random.default_rng(0).random((20, 3)).astype(np.float32))
    code, lines = _convert(path, "-o", tmp_path / "out.nir", "--calibration", calib)
    assert code == 2
    assert len(lines) == 1
    assert "pickled" in lines[0] and "trust" in lines[0]
    # with the explicit flag the same file converts
    code, _ = _convert(path, "-o", tmp_path / "out.nir", "--calibration", calib, "--trust")
    assert code == 0
    graph = load_model(tmp_path / "out.nir")
    assert [type(n).__name__ for n in graph.nodes.values()].count("IF") == 2


def test_state_dict_needs_importable_class(tmp_path) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 2))
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(InputError, match="model_class"):
        load_model(tmp_path / "sd.pt")
    with pytest.raises(InputError, match="cannot import --model-class"):
        load_model(tmp_path / "sd.pt", model_class="no_such_module:Net")


def test_onnx_unsupported_clip_and_missing_calibration(tmp_path) -> None:
    import onnx
    from onnx import TensorProto, helper

    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], np.ones(6, np.float32))
    lo = helper.make_tensor("lo", TensorProto.FLOAT, [], [-1.0])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
         helper.make_node("Clip", ["h", "lo"], ["y"], name="clip")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=[w, lo])
    path = tmp_path / "clip.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(InputError, match="calibration"):
        load_model(path)
    with pytest.raises(UnsupportedError, match="node 'clip'.*min=-1"):
        load_model(path, calibration=np.zeros((2, 3), np.float32))
