"""Photonic DFA backend with a convolutional front end: conv=backprop|freeze|refuse on sklearn digits (8x8)."""

from __future__ import annotations

import math
import subprocess
import sys

import nir
import numpy as np
import pytest
import torch

from spikeforge.artifact import Artifact
from spikeforge.backends.photonic import PhotonicBackend
from spikeforge.backends.photonic.dfa import Feedback, fit
from spikeforge.backends.photonic.lower import make_feedback, make_trainer
from spikeforge.boards import get_board
from spikeforge.errors import UnsupportedError
from spikeforge.interfaces import CompileOptions
from spikeforge.refsim import simulate

pytest.importorskip("sklearn")

BOARD = get_board("lighton-opu")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def conv_graph(ch: int = 8, hidden: int = 64, neuron: str = "if", seed: int = 0) -> nir.NIRGraph:
    """(1, 8, 8) -> Conv2d 3x3 (ch) -> IF -> SumPool 2x2 -> Flatten -> Affine(hidden) -> IF -> Affine(10)."""
    rng = np.random.default_rng(seed)

    def spiking(shape: tuple[int, ...]) -> nir.NIRNode:
        if neuron == "lif":
            return nir.LIF(tau=np.full(shape, 0.01), r=np.full(shape, 10.0), v_leak=np.zeros(shape),
                           v_threshold=np.ones(shape))
        return nir.IF(r=np.ones(shape), v_threshold=np.ones(shape))

    nodes = {
        "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=rng.normal(0, 1 / 3, (ch, 1, 3, 3)).astype(np.float32),
                           stride=1, padding=1, dilation=1, groups=1, bias=np.zeros(ch, np.float32)),
        "n0": spiking((ch, 8, 8)),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([ch, 4, 4])}, start_dim=0, end_dim=-1),
        "fc0": nir.Affine(weight=rng.normal(0, 0.1, (hidden, ch * 16)).astype(np.float32),
                          bias=np.zeros(hidden, np.float32)),
        "n1": spiking((hidden,)),
        "fc1": nir.Affine(weight=rng.normal(0, 0.1, (10, hidden)).astype(np.float32), bias=np.zeros(10, np.float32)),
        "output": nir.Output(output_type={"output": np.array([10])}),
    }
    order = ["input", "conv", "n0", "pool", "flat", "fc0", "n1", "fc1", "output"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(order[:-1], order[1:])), metadata={"spikeforge.dt": 1e-3})


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, Artifact]:
    out = {}
    for pol in ("backprop", "freeze"):
        art = PhotonicBackend().lower(conv_graph(), BOARD, CompileOptions(seed=0, extra={"photonic.conv": pol,
                                                                                       "verify_epochs": 6}))
        out[pol] = Artifact.load(art.save(tmp_path_factory.mktemp("conv") / pol))
    return out


def train(art: Artifact, method: str, epochs: int) -> tuple[dict, object, object]:
    prog, a = art.meta["program"], art.arrays
    fb = make_feedback(prog, BOARD, method)
    tr = make_trainer(prog, a, method, fb, seed=0)
    r = fit(tr, a["data/x_train"], a["data/y_train"], epochs=epochs, batch=32, seed=0,
            x_test=a["data/x_test"], y_test=a["data/y_test"])
    return r, tr, fb


def test_program_records_roles_and_front_end(compiled):
    prog = compiled["backprop"].meta["program"]
    assert prog["roles"] == {"conv": "bp", "fc0": "dfa", "fc1": "output"}
    assert prog["feedback_points"] == ["fc0"]
    assert prog["projection"]["n_out"] == 64  # camera columns for the DFA layer only, none for the conv
    fe = prog["front_end"]
    assert fe["input_shape"] == [1, 8, 8] and fe["policy"] == "backprop"
    assert [(op["name"], op["kind"]) for op in fe["ops"]] == [("conv", "conv"), ("n0", "relu"), ("pool", "pool"),
                                                             ("flat", "flatten")]
    assert fe["ops"][0]["out_shape"] == [8, 8, 8] and fe["ops"][0]["macs"] == 8 * 8 * 8 * 9
    assert fe["ops"][-1]["out_shape"] == [128]
    assert any("'conv'" in w and "convolutional stacks" in w and "backprop" in w
               for w in compiled["backprop"].meta["warnings"])
    assert compiled["backprop"].arrays["layer/conv/weight"].shape == (8, 1, 3, 3)
    assert compiled["freeze"].meta["program"]["roles"]["conv"] == "freeze"
    assert any("frozen" in w for w in compiled["freeze"].meta["warnings"])
    assert "conv (bp)" in compiled["backprop"].files["code/train_dfa.py"]


def test_refuse_and_unsupported_placements():
    with pytest.raises(UnsupportedError, match="convolutional stacks") as exc:
        PhotonicBackend().lower(conv_graph(), BOARD, CompileOptions(extra={"conv": "refuse"}))
    assert exc.value.node == "conv" and "conv=backprop" in exc.value.hint
    with pytest.raises(UnsupportedError, match="allowed: backprop, freeze, refuse") as exc:
        PhotonicBackend().lower(conv_graph(), BOARD, CompileOptions(extra={"conv": "dfa"}))
    assert exc.value.field == "conv"
    # a convolution after the first Affine layer is not a front end
    g = conv_graph()
    g2 = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([64])}),
        "fc0": nir.Affine(weight=np.ones((64, 64), np.float32), bias=np.zeros(64, np.float32)),
        "conv": g.nodes["conv"], "output": nir.Output(output_type={"output": np.array([8, 8, 8])}),
    }, edges=[("input", "fc0"), ("fc0", "conv"), ("conv", "output")], metadata={"spikeforge.dt": 1e-3},
        type_check=False)
    with pytest.raises(UnsupportedError, match="after the Affine layer 'fc0'"):
        PhotonicBackend().lower(g2, BOARD, CompileOptions())
    # LIF graphs default to spiking mode, which has no conv path: refused with the way out
    with pytest.raises(UnsupportedError, match="rate mode only") as exc:
        PhotonicBackend().lower(conv_graph(neuron="lif"), BOARD, CompileOptions(extra={"max_samples": 200}))
    assert "train_mode=rate" in exc.value.hint
    art = PhotonicBackend().lower(conv_graph(neuron="lif"), BOARD,
                                  CompileOptions(extra={"max_samples": 200, "train_mode": "rate"}))
    assert art.meta["program"]["mode"] == "rate"


def test_conv_update_is_backprop_of_the_first_layers_dfa_delta(compiled):
    art = compiled["backprop"]
    prog, a = art.meta["program"], art.arrays
    fb = Feedback(prog["n_classes"], prog["projection"]["n_out"], seed=5)
    tr = make_trainer(prog, a, "dfa", fb, seed=0)
    x, y = torch.tensor(a["data/x_train"][:40]), torch.tensor(a["data/y_train"][:40])
    tr.dfa_grads(x, y)
    got = [g.clone() for g in tr.feature_grads]
    # independently: conv -> relu -> sum pool -> fc0 -> relu -> fc1, delta_0 = g (e B)[:, :64] relu'(a_0)
    w, b = [p.detach().clone().requires_grad_(True) for p in tr.FW[0]]
    h = torch.nn.functional.conv2d(x.reshape(-1, 1, 8, 8), w, b, padding=1).relu()
    feats = torch.nn.functional.avg_pool2d(h, 2, 2, divisor_override=1).reshape(40, -1)
    a0 = feats @ tr.W[0].detach().T + tr.b[0].detach()
    logits = a0.relu() @ tr.W[1].detach().T + tr.b[1].detach()
    e = torch.softmax(logits, 1) - torch.nn.functional.one_hot(y, 10).float()
    delta0 = tr.gains["fc0"] * (e @ fb.matrix)[:, :64] * (a0 > 0).float()
    want = torch.autograd.grad((feats * (delta0.detach() @ tr.W[0].detach())).sum() / 40, [w, b])
    torch.testing.assert_close(got[0], want[0].detach(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(got[1], want[1].detach(), rtol=1e-4, atol=1e-6)
    assert float(got[0].norm()) > 0


def test_optical_dfa_trains_the_conv_net_on_digits(compiled):
    acc = {}
    for pol, art in compiled.items():
        w0 = art.arrays["layer/conv/weight"]
        r, tr, fb = train(art, "odfa", epochs=10)
        acc[pol] = r["accuracy"]
        # frames: 4 per non-zero error vector + 4 per step, i.e. only what the DFA layer's feedback needs
        n = len(art.arrays["data/x_train"])
        assert fb.frames == 4 * fb.vectors + 4 * 10 * math.ceil(n / 32)
        conv_w = tr.feature_weights()["conv"][0]
        if pol == "freeze":
            np.testing.assert_array_equal(conv_w, w0)  # the graph's extractor, untouched
        else:
            assert not np.allclose(conv_w, w0)
            xb, yb = torch.tensor(art.arrays["data/x_train"][:256]), torch.tensor(art.arrays["data/y_train"][:256])
            assert tr.feature_alignment(xb, yb)["conv"] > 0.2
        assert r["accuracy"] >= 0.85, (pol, r["history"])
        if pol == "backprop":  # optical vs digital DFA on the same seed (verify checks it again for both)
            digital, _, _ = train(art, "dfa", epochs=10)
            assert digital["accuracy"] - r["accuracy"] <= 0.05, (digital["accuracy"], r["accuracy"])
    assert min(acc.values()) >= 0.85


def test_verify_emulate_profile_and_emitted_script(compiled, tmp_path):
    art = compiled["backprop"]
    checks = {name: (ok, msg) for name, ok, msg in PhotonicBackend().verify_extra(art, {})}
    assert set(checks) == {"photonic.alignment.fc0", "photonic.alignment.conv", "photonic.accuracy",
                           "photonic.gap_to_digital_dfa", "photonic.gap_to_backprop"}
    assert all(ok for ok, _ in checks.values()), checks
    x = (np.random.default_rng(1).random((6, 5, 1, 8, 8)) < 0.3).astype(np.float32)
    trace = PhotonicBackend().emulator().run(art, {"input": x})
    np.testing.assert_array_equal(trace.outputs["output"], simulate(art.reference, {"input": x}).outputs["output"])
    assert trace.total("opu_frames") == 4 * 5 + 4
    res = {i.component: i.value for i in PhotonicBackend().cost_model().profile(art, trace).resources}
    n = len(art.arrays["data/x_train"])
    assert res["frames_per_epoch"] == 4 * n + 4 * math.ceil(n / 32)
    macs = 8 * 8 * 8 * 9
    assert res["host_backprop_flops_per_epoch"] == pytest.approx(n * (2 * 128 * 64 + 2 * macs))
    frozen = {i.component: i.value for i in PhotonicBackend().cost_model().profile(compiled["freeze"], trace).resources}
    assert frozen["host_backprop_flops_per_epoch"] == 0 and frozen["frames_per_epoch"] == res["frames_per_epoch"]
    out = tmp_path / "w.npz"
    r = subprocess.run([sys.executable, str(art.path / "code" / "train_dfa.py"), "--epochs", "1", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        assert z["conv/weight"].shape == (8, 1, 3, 3) and z["fc0/weight"].shape == (64, 128)
        assert not np.allclose(z["conv/weight"], art.arrays["layer/conv/weight"])


def test_no_dfa_layer_means_no_opu_frames():
    """Every hidden layer frozen (narrow=freeze on a 6-unit bottleneck): nothing is projected optically."""
    g = conv_graph(hidden=6)
    art = PhotonicBackend().lower(g, BOARD, CompileOptions(extra={"narrow": "freeze", "max_samples": 200}))
    prog = art.meta["program"]
    assert prog["roles"] == {"conv": "freeze", "fc0": "freeze", "fc1": "output"}
    assert prog["feedback_points"] == [] and prog["projection"]["n_out"] == 0
    assert any("no delta reaches the convolutional front end" in w for w in art.meta["warnings"])
    x = np.zeros((3, 4, 1, 8, 8), np.float32)
    trace = PhotonicBackend().emulator().run(art, {"input": x})
    assert trace.total("opu_frames") == 0
    res = {i.component: i.value for i in PhotonicBackend().cost_model().profile(art, trace).resources}
    assert res["frames_per_epoch"] == 0 and res["opu_energy_per_epoch"] == 0


def test_conv_program_is_byte_reproducible(tmp_path):
    opts = CompileOptions(seed=2, extra={"max_samples": 200})
    dirs = [PhotonicBackend().lower(conv_graph(), BOARD, opts).save(tmp_path / k) for k in ("a", "b")]
    files = [sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()) for d in dirs]
    assert files[0] == files[1] and "arrays.npz" in files[0]
    for rel in files[0]:
        assert (dirs[0] / rel).read_bytes() == (dirs[1] / rel).read_bytes(), rel
