"""ANN-to-SNN conversion of plain torch models and ONNX files, trained here on scikit-learn digits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
datasets = pytest.importorskip("sklearn.datasets")

from spikeforge import graph as G  # noqa: E402
from spikeforge import refsim  # noqa: E402
from spikeforge.errors import InputError, UnsupportedError  # noqa: E402
from spikeforge.frontends import load_model  # noqa: E402
from spikeforge.frontends.convert import accuracy_vs_timesteps, encode, evaluate  # noqa: E402
from spikeforge.frontends.onnx import from_onnx, onnxruntime_check, parse_onnx  # noqa: E402
from spikeforge.frontends.torch import from_torch_ann, parse_torch_ann  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=DeprecationWarning)
STEPS = 100  # the time step count at which the converted SNN must be within 1 point of the ANN


@pytest.fixture(scope="module")
def digits():
    d = datasets.load_digits()
    x = (d.data / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(x))
    tr, te = idx[:1200], idx[1200:]
    return x[tr], d.target[tr], x[te], d.target[te]


def _train(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...], steps: int = 200):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    xt, yt = torch.tensor(x).reshape(-1, *shape), torch.tensor(y)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def _ann_acc(model, x, y, shape) -> float:
    with torch.no_grad():
        return float((model(torch.tensor(x).reshape(-1, *shape)).argmax(1).numpy() == y).mean())


@pytest.fixture(scope="module")
def mlp(digits):
    xtr, ytr, _, _ = digits
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(64, 48), torch.nn.ReLU(), torch.nn.Dropout(0.1), torch.nn.Linear(48, 10))
    return _train(m, xtr, ytr, (64,))


@pytest.fixture(scope="module")
def cnn(digits):
    xtr, ytr, _, _ = digits
    torch.manual_seed(0)
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.AvgPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(256, 10))
    return _train(m, xtr, ytr, (1, 8, 8), steps=120)


def _export(model, shape, path, **kw):
    torch.onnx.export(model, (torch.zeros(1, *shape),), str(path), dynamo=False, input_names=["x"],
                      dynamic_axes={"x": {0: "batch"}}, **kw)
    return path


def test_onnx_mlp_matches_onnxruntime_and_converts(digits, mlp, tmp_path) -> None:
    xtr, _, xte, yte = digits
    path = _export(mlp, (64,), tmp_path / "mlp.onnx")
    assert onnxruntime_check(path, xte) < 1e-4
    graph = from_onnx(path, xtr[:300], timesteps=STEPS)
    assert graph.metadata[G.DT_KEY] > 0
    ifs = [n for n in graph.nodes.values() if type(n).__name__ == "IF"]
    assert len(ifs) == 2 and all(n.metadata["spikeforge.reset"] == "subtract" for n in ifs)
    ann = _ann_acc(mlp, xte, yte, (64,))
    acc = accuracy_vs_timesteps(graph, xte, yte, [10, STEPS])
    assert acc[STEPS] >= ann - 0.01, (acc, ann)
    assert acc[10] <= acc[STEPS] + 0.02  # more steps never much worse: rate code converges


def test_onnx_cnn_batchnorm_kept_in_file_is_folded(digits, cnn, tmp_path) -> None:
    xtr, _, xte, yte = digits
    # keep BatchNormalization as an ONNX op (no constant folding by the exporter): we must fold it
    path = _export(cnn, (1, 8, 8), tmp_path / "cnn.onnx", do_constant_folding=False,
                   training=torch.onnx.TrainingMode.PRESERVE)
    assert "BatchNormalization" in {n.op_type for n in onnx.load(str(path)).graph.node}
    x4 = xte.reshape(-1, 1, 8, 8)
    assert onnxruntime_check(path, x4) < 1e-4
    graph = from_onnx(path, xtr[:300].reshape(-1, 1, 8, 8), timesteps=STEPS)
    ann = _ann_acc(cnn, xte, yte, (1, 8, 8))
    acc = accuracy_vs_timesteps(graph, x4, yte, [STEPS])
    assert acc[STEPS] >= ann - 0.01, (acc, ann)


def test_torch_ann_equals_onnx_path(digits, cnn, tmp_path) -> None:
    xtr, _, xte, _ = digits
    x4 = xte[:50].reshape(-1, 1, 8, 8)
    ann = parse_torch_ann(cnn, x4[:1])
    with torch.no_grad():
        ref = cnn(torch.tensor(x4)).numpy()
    np.testing.assert_allclose(evaluate(ann, x4)[ann.output], ref, atol=1e-4)
    g_torch = from_torch_ann(cnn, None, xtr[:300].reshape(-1, 1, 8, 8))
    g_onnx = from_onnx(_export(cnn, (1, 8, 8), tmp_path / "c.onnx"), xtr[:300].reshape(-1, 1, 8, 8))
    a = refsim.simulate(g_torch, encode(x4, 30)).outputs["output"]
    b = refsim.simulate(g_onnx, encode(x4, 30)).outputs["output"]
    assert (a.sum(0).argmax(-1) == b.sum(0).argmax(-1)).mean() > 0.95


def test_normalisation_uses_percentile(digits, mlp) -> None:
    xtr = digits[0][:300]
    ann = parse_torch_ann(mlp, xtr[:1])
    acts = evaluate(ann, xtr)
    relu = next(o for o in ann.ops.values() if o.kind == "relu")
    lam = np.percentile(acts[relu.name], 99.0)
    graph = from_torch_ann(mlp, None, xtr, percentile=99.0)
    node = graph.nodes[relu.name]
    assert node.metadata["spikeforge.lambda"] == pytest.approx(lam, rel=1e-5)
    first = next(n for n in graph.nodes.values() if type(n).__name__ == "Affine")
    np.testing.assert_allclose(first.weight, mlp[0].weight.detach().numpy() / lam, rtol=1e-5)


class _Residual(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = torch.nn.Linear(64, 32)
        self.b = torch.nn.Linear(32, 32)
        self.bn = torch.nn.BatchNorm1d(32)
        self.out = torch.nn.Linear(32, 10)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = torch.relu(self.bn(self.b(h)) + h)
        return self.out(h)


def test_residual_add_and_batchnorm1d(digits, tmp_path) -> None:
    xtr, ytr, xte, yte = digits
    model = _train(_Residual(), xtr, ytr, (64,), steps=150)
    path = _export(model, (64,), tmp_path / "res.onnx")
    assert onnxruntime_check(path, xte) < 1e-4
    for graph in (from_torch_ann(model, None, xtr[:300]), from_onnx(path, xtr[:300])):
        assert any(type(n).__name__ == "Scale" for n in graph.nodes.values())  # branch rescale for the add
        acc = accuracy_vs_timesteps(graph, xte, yte, [STEPS])
        assert acc[STEPS] >= _ann_acc(model, xte, yte, (64,)) - 0.02


def test_load_model_onnx_with_calibration_file(digits, mlp, tmp_path) -> None:
    xtr, _, xte, yte = digits
    path = _export(mlp, (64,), tmp_path / "m.onnx")
    np.savez(tmp_path / "calib.npz", input=xtr[:200])
    graph = load_model(path, calibration=tmp_path / "calib.npz", timesteps=50)
    assert graph.metadata["spikeforge.timesteps"] == 50
    with pytest.raises(InputError, match="calibration"):
        load_model(path)
    # spikes in, same graph: rate-coded (Bernoulli) input also classifies
    acc = accuracy_vs_timesteps(graph, xte, yte, [200], encoding="poisson")
    assert acc[200] > 0.85


def test_maxpool_is_refused_with_reason() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
    with pytest.raises(UnsupportedError, match="max pooling"):
        from_torch_ann(model, None, np.zeros((4, 1, 8, 8), np.float32))


def test_onnx_parse_reports_graph_structure(mlp, tmp_path) -> None:
    path = _export(mlp, (64,), tmp_path / "m.onnx")
    ann = parse_onnx(path)
    assert [o.kind for o in ann.ops.values()] == ["input", "linear", "relu", "linear"]
    assert ann.input_shape == (64,)
    # exported without a dynamic batch axis: still parsed and checked sample by sample
    fixed = tmp_path / "fixed.onnx"
    torch.onnx.export(mlp, (torch.zeros(1, 64),), str(fixed), dynamo=False)
    assert onnxruntime_check(fixed, np.random.default_rng(0).random((5, 64)).astype(np.float32)) < 1e-4


def test_torch_export_program_file(digits, cnn, tmp_path) -> None:
    xtr, _, xte, _ = digits
    path = tmp_path / "cnn.pt2"
    torch.export.save(torch.export.export(cnn, (torch.zeros(1, 1, 8, 8),)), str(path))
    x4 = xte[:40].reshape(-1, 1, 8, 8)
    ann = parse_torch_ann(torch.export.load(str(path)).module(), x4[:1])
    assert "conv2d" in {o.kind for o in ann.ops.values()}
    with torch.no_grad():
        np.testing.assert_allclose(evaluate(ann, x4)[ann.output], cnn(torch.tensor(x4)).numpy(), atol=1e-4)
    with pytest.raises(UnsupportedError, match="torch.export.load.*unsafe.*trust"):
        load_model(path, calibration=xtr[:200].reshape(-1, 1, 8, 8))  # it may unpickle: needs the trust flag
    graph = load_model(path, calibration=xtr[:200].reshape(-1, 1, 8, 8), trust=True)
    assert sum(type(n).__name__ == "IF" for n in graph.nodes.values()) == 3


class _BadView(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(8, 8)
        self.fc2 = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc(x)).view(-1, 2, 4))  # a view that is not a flatten


def test_parse_is_checked_against_the_module() -> None:
    with pytest.raises(UnsupportedError, match="does not reproduce _BadView"):
        from_torch_ann(_BadView(), None, np.random.default_rng(0).random((10, 8)).astype(np.float32))
