"""TorchScript models (scripted and traced) converted by walking their IR, trained here on sklearn digits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
datasets = pytest.importorskip("sklearn.datasets")

from click.testing import CliRunner  # noqa: E402

from spikeforge.cli import main  # noqa: E402
from spikeforge.errors import InputError, UnsupportedError  # noqa: E402
from spikeforge.frontends import load_model  # noqa: E402
from spikeforge.frontends.convert import accuracy_vs_timesteps, evaluate  # noqa: E402
from spikeforge.frontends.torch import from_module  # noqa: E402
from spikeforge.frontends.torchscript import parse_torchscript  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.* is deprecated in torch 2.13
nn = torch.nn
STEPS = 100


@pytest.fixture(scope="module")
def digits():
    d = datasets.load_digits()
    x = (d.data / 16.0).astype(np.float32)
    idx = np.random.default_rng(1).permutation(len(x))
    tr, te = idx[:1200], idx[1200:]
    return x[tr], d.target[tr], x[te], d.target[te]


def _train(model: nn.Module, x: np.ndarray, y: np.ndarray, shape: tuple[int, ...], steps: int) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    xt, yt = torch.tensor(x).reshape(-1, *shape), torch.tensor(y)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xt), yt).backward()
        opt.step()
    return model.eval()


def _acc(module, x, y) -> float:
    with torch.no_grad():
        return float((module(torch.tensor(x)).argmax(1).numpy() == y).mean())


@pytest.fixture(scope="module")
def scripted_mlp(digits, tmp_path_factory):
    xtr, ytr, _, _ = digits
    torch.manual_seed(0)
    model = _train(nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Dropout(0.1), nn.Linear(48, 10)),
                   xtr[:600], ytr[:600], (64,), 100)
    path = tmp_path_factory.mktemp("ts") / "mlp.ts"
    torch.jit.save(torch.jit.script(model), str(path))
    return path


@pytest.fixture(scope="module")
def traced_cnn(digits, tmp_path_factory):
    xtr, ytr, _, _ = digits
    torch.manual_seed(0)
    model = _train(nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AvgPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(256, 10)), xtr[:600], ytr[:600], (1, 8, 8), 60)
    path = tmp_path_factory.mktemp("ts") / "cnn.pt"  # a TorchScript archive under the usual suffix
    torch.jit.save(torch.jit.trace(model, torch.zeros(1, 1, 8, 8)), str(path))
    return path


def test_scripted_mlp_parses_exactly_and_converts(digits, scripted_mlp) -> None:
    xtr, _, xte, yte = digits
    module = torch.jit.load(str(scripted_mlp), map_location="cpu")
    ann = parse_torchscript(module, xte[:1])
    assert [o.kind for o in ann.ops.values()] == ["input", "linear", "relu", "linear"]  # dropout removed
    with torch.no_grad():
        ref = module(torch.tensor(xte)).numpy()
    np.testing.assert_allclose(evaluate(ann, xte)[ann.output], ref, rtol=1e-5, atol=1e-5)
    graph = load_model(scripted_mlp, calibration=xtr[:300], timesteps=STEPS, trust=True)
    assert graph.metadata["spikeforge.frontend"] == "torchscript"
    ifs = [n for n in graph.nodes.values() if type(n).__name__ == "IF"]
    assert len(ifs) == 2 and all(n.metadata["spikeforge.reset"] == "subtract" for n in ifs)
    acc = accuracy_vs_timesteps(graph, xte, yte, [STEPS])
    assert acc[STEPS] >= _acc(module, xte, yte) - 0.01, acc


def test_traced_cnn_batchnorm_folded_and_converts(digits, traced_cnn) -> None:
    xtr, _, xte, yte = digits
    module = torch.jit.load(str(traced_cnn), map_location="cpu")
    assert "aten::batch_norm" in {n.kind() for n in module.inlined_graph.nodes()}
    x4 = xte.reshape(-1, 1, 8, 8)
    ann = parse_torchscript(module, x4[:1])  # traced with batch 1, evaluated on the whole test set
    assert [o.kind for o in ann.ops.values()] == ["input", "conv2d", "relu", "avgpool", "conv2d", "relu",
                                                  "flatten", "linear"]
    assert "batch_norm(folded)" in ann.ops["conv2d_1"].source
    with torch.no_grad():
        ref = module(torch.tensor(x4)).numpy()
    np.testing.assert_allclose(evaluate(ann, x4)[ann.output], ref, rtol=1e-4, atol=1e-4)
    graph = load_model(traced_cnn, calibration=xtr[:300].reshape(-1, 1, 8, 8), trust=True)
    assert sum(type(n).__name__ == "IF" for n in graph.nodes.values()) == 3
    acc = accuracy_vs_timesteps(graph, x4[:200], yte[:200], [STEPS])
    assert acc[STEPS] >= _acc(module, x4[:200], yte[:200]) - 0.01, acc


class _Functional(nn.Module):
    """matmul + add bias, addmm with a transposed weight, a view that flattens, a residual add."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(64, 32, generator=g) * 0.2)
        self.b1 = nn.Parameter(torch.randn(32, generator=g) * 0.1)
        self.w2 = nn.Parameter(torch.randn(32, 32, generator=g) * 0.2)
        self.w3 = nn.Parameter(torch.randn(10, 32, generator=g) * 0.2)

    def forward(self, x):
        h = torch.relu(x.view(x.size(0), -1) @ self.w1 + self.b1)
        h = torch.relu(torch.mm(h, self.w2) + h)
        return torch.addmm(self.b1[:10], h, self.w3.t())


@pytest.mark.parametrize("how", ["script", "trace"])
def test_functional_ops_scripted_and_traced(how) -> None:
    x = np.random.default_rng(0).random((20, 8, 8)).astype(np.float32)
    model = _Functional().eval()
    module = torch.jit.script(model) if how == "script" else torch.jit.trace(model, torch.zeros(2, 8, 8))
    ann = parse_torchscript(module, x[:1])
    kinds = [o.kind for o in ann.ops.values()]
    assert kinds.count("linear") == 3 and "add" in kinds and "flatten" in kinds
    with torch.no_grad():
        ref = model(torch.tensor(x)).numpy()
    np.testing.assert_allclose(evaluate(ann, x)[ann.output], ref, rtol=1e-5, atol=1e-5)
    graph = from_module(module, calibration=x)  # in-memory ScriptModules go through the IR as well
    assert graph.metadata["spikeforge.frontend"] == "torchscript"


class _ConvResidual(nn.Module):
    """Conv residual block with BatchNorm after a bias-free conv, in-place ReLU, global average pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = nn.functional.relu(self.c1(x))
        h = nn.functional.relu(self.bn(self.c2(h)) + h, inplace=True)
        return self.fc(torch.flatten(self.pool(h), 1))


class _Conv1dRelu6(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(2, 4, 3, stride=2)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(nn.functional.relu6(self.c(x)).reshape(x.shape[0], -1))


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("cls,shape", [(_ConvResidual, (1, 8, 8)), (_Conv1dRelu6, (2, 8))])
def test_conv_blocks_parse_exactly(cls, shape, how) -> None:
    torch.manual_seed(0)
    model = cls().eval()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial statistics, so that folding is exercised
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    x = torch.rand(16, *shape)
    module = torch.jit.script(model) if how == "script" else torch.jit.trace(model, x[:1])
    ann = parse_torchscript(module, x[:1].numpy())
    assert "batch_norm" not in {o.kind for o in ann.ops.values()}
    with torch.no_grad():
        np.testing.assert_allclose(evaluate(ann, x.numpy())[ann.output], model(x).numpy(), rtol=1e-5, atol=1e-5)
    if cls is _Conv1dRelu6:
        assert next(o for o in ann.ops.values() if o.kind == "relu").params["clip"] == 6.0


class _DataBranch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if bool(x.sum() > 0):
            return self.fc(x)
        return self.fc(-x)


def test_data_dependent_control_flow_and_lstm_refused() -> None:
    with pytest.raises(UnsupportedError, match="aten::sum is not supported"):  # the branch condition
        parse_torchscript(torch.jit.script(_DataBranch()), np.ones((1, 4), np.float32))

    class LSTMNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(8, 4, batch_first=True)
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    with pytest.raises(UnsupportedError, match=r"%\S+ = aten::lstm.*supported: linear"):
        parse_torchscript(torch.jit.script(LSTMNet()), np.zeros((1, 5, 8), np.float32))
    with pytest.raises(InputError, match="rejects the input"):  # scripted BatchNorm2d's own shape check
        parse_torchscript(torch.jit.script(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm2d(4))),
                          np.zeros((1, 4), np.float32))


def _convert(*args):
    res = CliRunner().invoke(main, ["convert", *map(str, args)], catch_exceptions=False)
    lines = [ln for ln in (res.stderr or res.output).splitlines() if ln.strip()]
    return res.exit_code, lines


def test_cli_trust_flag_and_unsupported_op(digits, scripted_mlp, tmp_path) -> None:
    xtr = digits[0]
    calib = tmp_path / "calib.npz"
    np.savez(calib, input=xtr[:100])
    out = tmp_path / "x.nir"
    # torch.jit.load can execute code from a crafted archive: refused without --trust
    code, lines = _convert(scripted_mlp, "-o", out, "--calibration", calib)
    assert code == 2 and len(lines) == 1
    assert "TorchScript" in lines[0] and "--trust" in lines[0] and not out.exists()
    code, _ = _convert(scripted_mlp, "-o", out, "--calibration", calib, "--trust")
    assert code == 0
    assert [type(n).__name__ for n in load_model(out).nodes.values()].count("IF") == 2
    # an op without a spiking equivalent: one line naming the op, the IR value and the supported set
    pool = tmp_path / "pool.ts"
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(36, 10))
    torch.jit.save(torch.jit.script(model.eval()), str(pool))
    np.savez(calib, input=xtr[:100].reshape(-1, 1, 8, 8))
    code, lines = _convert(pool, "-o", tmp_path / "p.nir", "--calibration", calib, "--trust")
    assert code == 2 and len(lines) == 1, lines
    assert "pool.ts" in lines[0] and "aten::max_pool2d" in lines[0] and "%" in lines[0]
    assert "supported: linear" in lines[0] and "avg_pool2d" in lines[0]
    assert not (tmp_path / "p.nir").exists()
