"""Models as users make them: ONNX files written by torch.onnx.export (both exporters), hostile node names.

The ONNX files come from the real exporters, not from hand-written graphs; the parse is checked against
onnxruntime on the same file, and the compiled artifact must be usable by every later command.
"""

from __future__ import annotations

import json
import warnings

import nir
import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from spikeforge import graph as G
from spikeforge.cli import main
from spikeforge.frontends.onnx import onnxruntime_check, parse_onnx
from spikeforge.names import ORIGINAL_KEY, safe_name


class MatMulBN(torch.nn.Module):
    """x @ W + b written by hand (MatMul + Add with the constant first), ReLU, BatchNorm after the ReLU."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter(torch.randn(64, 16, generator=g) / 8)
        self.b = torch.nn.Parameter(torch.randn(16, generator=g) / 8)
        self.bn = torch.nn.BatchNorm1d(16)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.nn.functional.dropout(self.bn(torch.relu(self.b + x @ self.w)), 0.2, self.training))


def _models() -> dict[str, tuple[torch.nn.Module, tuple[int, ...]]]:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(32, 10))
    cnn = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                              torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(64, 10))
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that folding them matters
        cnn[1].running_mean.uniform_(-0.2, 0.2)
        cnn[1].running_var.uniform_(0.5, 2.0)
    return {"mlp": (mlp.eval(), (64,)), "cnn": (cnn.eval(), (1, 8, 8)), "matmul_bn": (MatMulBN().eval(), (64,))}


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, tuple]:
    d = tmp_path_factory.mktemp("onnx")
    out = {}
    for name, (m, shape) in _models().items():
        for dynamo in (False, True):
            p = d / f"{name}_{'dynamo' if dynamo else 'ts'}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(m, (torch.randn(2, *shape),), str(p), dynamo=dynamo, verbose=False)
            out[p.stem] = (p, shape)
    return out


@pytest.mark.parametrize("stem", ["mlp_ts", "mlp_dynamo", "cnn_ts", "cnn_dynamo", "matmul_bn_ts", "matmul_bn_dynamo"])
def test_exported_onnx_parses_like_onnxruntime(exported, stem):
    path, shape = exported[stem]
    x = np.random.default_rng(0).random((8, *shape)).astype(np.float32)
    assert onnxruntime_check(path, x) < 1e-5
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    if stem.startswith("matmul_bn"):
        assert {"MatMul", "Add", "BatchNormalization"} <= ops  # the spellings this test is about


def _const_first_model(path) -> None:
    """MatMul + Add(bias, x) with the constant first, a Gemm with a (1, N) bias, Identity, Constant + Reshape."""
    rng = np.random.default_rng(1)
    w1, b1 = rng.normal(size=(6, 5)).astype(np.float32), rng.normal(size=(5,)).astype(np.float32)
    w2, b2 = rng.normal(size=(3, 5)).astype(np.float32), rng.normal(size=(1, 3)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([-1, 6], np.int64))),
        helper.make_node("Reshape", ["x", "shape"], ["xr"], name="flat/1"),
        helper.make_node("MatMul", ["xr", "w1"], ["h"], name="layer 1/MatMul"),
        helper.make_node("Add", ["b1", "h"], ["hb"], name="layer 1/Add"),
        helper.make_node("Relu", ["hb"], ["r"], name="relu.1"),
        helper.make_node("Identity", ["r"], ["ri"], name="id"),
        helper.make_node("Gemm", ["ri", "w2", "b2"], ["y"], name="head/Gemm", transB=1),
    ]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
                          [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
                           numpy_helper.from_array(w2, "w2"), numpy_helper.from_array(b2, "b2")])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_valid_onnx_spellings_load(tmp_path):
    p = tmp_path / "spellings.onnx"
    _const_first_model(p)
    ann = parse_onnx(p)
    assert [op.kind for op in ann.ops.values()] == ["input", "flatten", "linear", "relu", "linear"]
    assert onnxruntime_check(p, np.random.default_rng(2).random((7, 6)).astype(np.float32)) < 1e-5


def _hostile_graph() -> nir.NIRGraph:
    names = ["in put", "/0/Gemm", "0.Gemm", "神经", "café", "lif 1", "out/put"]
    lif = dict(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    nodes = {names[0]: nir.Input(np.array([3])), names[1]: nir.Affine(np.arange(6.0).reshape(2, 3), np.zeros(2)),
             names[2]: nir.Affine(np.eye(2), np.ones(2)), names[3]: nir.LIF(**lif), names[4]: nir.Scale(np.ones(2)),
             names[5]: nir.LIF(**lif), names[6]: nir.Output(np.array([2]))}
    return nir.NIRGraph(nodes=nodes, edges=[(names[i], names[i + 1]) for i in range(6)])


def test_hostile_names_round_trip(tmp_path):
    g = _hostile_graph()
    renamed = G.write(g, tmp_path / "h.nir")
    back = G.read(tmp_path / "h.nir")
    assert len(back.nodes) == len(g.nodes) == len(set(renamed.values()))          # nothing swallowed, all unique
    assert renamed["/0/Gemm"] == "0_Gemm" and renamed["0.Gemm"] == "0_Gemm_2" and renamed["café"] == "cafe"
    assert all(safe_name(n) == n for n in back.nodes)
    originals = {(node.metadata or {}).get(ORIGINAL_KEY) for node in back.nodes.values()}
    assert originals == set(g.nodes)
    for old, new in renamed.items():                                               # same parameters, same edges
        assert type(back.nodes[new]) is type(g.nodes[old])
    assert sorted(back.edges) == sorted((renamed[s], renamed[d]) for s, d in g.edges)
    np.testing.assert_array_equal(back.nodes["0_Gemm"].weight, np.arange(6.0).reshape(2, 3))
    assert G.difference(back, G.read(tmp_path / "h.nir")) is None
    G.write(back, tmp_path / "h2.nir")                                             # a second write renames nothing
    assert G.difference(back, G.read(tmp_path / "h2.nir")) is None


def test_torch_onnx_export_compiles_and_every_later_command_works(exported, tmp_path):
    path, _ = exported["mlp_ts"]
    rng = np.random.default_rng(0)
    x = rng.random((40, 64)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", analog=x)
    np.savez(tmp_path / "in.npz", input=(rng.random((30, 40, 64)) < x).astype(np.uint8))
    r = CliRunner()
    res = r.invoke(main, ["compile", str(path), "-b", "cpu-reference", "-o", str(tmp_path / "a"), "-T", "30",
                          "--calibration", str(tmp_path / "cal.npz")])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["inspect", str(tmp_path / "a"), "--json"])
    assert res.exit_code == 0, res.output
    nodes = {n["name"]: n["original_name"] for n in json.loads(res.output)["graph"]["nodes"]}
    assert nodes["0_Gemm"] == "/0/Gemm"
    res = r.invoke(main, ["emulate", str(tmp_path / "a"), "-i", str(tmp_path / "in.npz"), "-o", str(tmp_path / "t.npz")])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["verify", str(tmp_path / "a"), "-i", str(tmp_path / "in.npz")])
    assert res.exit_code == 0, res.output
