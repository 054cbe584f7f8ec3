"""The photonic DFA backend: lowering, refusals, emulator, cost model, verify and the emitted script."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

from spikeforge.artifact import Artifact
from spikeforge.backends.photonic import PhotonicBackend
from spikeforge.backends.photonic.backend import run_verification
from spikeforge.backends.photonic.dfa import LayerSpec
from spikeforge.backends.photonic.lower import layout
from spikeforge.boards import get_board
from spikeforge.errors import UnsupportedError
from spikeforge.interfaces import CompileOptions
from spikeforge.refsim import simulate

pytest.importorskip("sklearn")


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mlp_graph(dims: list[int], neuron: str = "if", seed: int = 0) -> nir.NIRGraph:
    """Input -> (Affine -> IF/LIF) x n -> Output, random weights."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([dims[0]])})}
    edges, prev = [], "input"
    for i in range(len(dims) - 1):
        n_out = dims[i + 1]
        w = rng.normal(0, 1 / np.sqrt(dims[i]), (n_out, dims[i])).astype(np.float32)
        nodes[f"fc{i}"] = nir.Affine(weight=w, bias=np.zeros(n_out, np.float32))
        if neuron == "if":
            nodes[f"n{i}"] = nir.IF(r=np.ones(n_out), v_threshold=np.ones(n_out))
        else:
            nodes[f"n{i}"] = nir.LIF(tau=np.full(n_out, 0.01), r=np.full(n_out, 10.0), v_leak=np.zeros(n_out),
                                     v_threshold=np.ones(n_out))  # r = tau / dt, as snnTorch exports
        edges += [(prev, f"fc{i}"), (f"fc{i}", f"n{i}")]
        prev = f"n{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([dims[-1]])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": 1e-3})


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Artifact:
    art = PhotonicBackend().lower(mlp_graph([64, 48, 32, 10]), get_board("lighton-opu"), CompileOptions(seed=0))
    return Artifact.load(art.save(tmp_path_factory.mktemp("opu") / "art"))


def _digest(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(d).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_program_layout_and_settings(compiled):
    prog = compiled.meta["program"]
    assert prog["feedback_points"] == ["fc0", "fc1"]
    roles = {d["name"]: (d["role"], d["offset"]) for d in prog["layers"]}
    assert roles == {"fc0": ("dfa", 0), "fc1": ("dfa", 48), "fc2": ("output", 0)}
    proj = prog["projection"]
    assert proj["layout"] == "concatenated" and proj["n_out"] == 80
    board = get_board("lighton-opu")
    # macro-pixels: the dimmest frame (anchor + 1 class) reaches the target mean at the maximum exposure
    light = board.value("physics.flux_per_mirror") * board.value("timing.exposure") * 1e6
    assert (proj["n_anchor"] + 1) * proj["macro"] * light >= board.value("physics.target_mean_counts")
    assert (proj["n_anchor"] + 1) * (proj["macro"] - 1) * light < board.value("physics.target_mean_counts")
    assert prog["frames_per_vector"] == 4 and prog["mode"] == "rate"
    assert all(d["gain"] > 0 for d in prog["layers"] if d["role"] == "dfa")
    assert compiled.files["code/train_dfa.py"].startswith("#!/usr/bin/env python3")


def test_compile_is_byte_reproducible(tmp_path):
    g = mlp_graph([64, 20, 10])
    a = PhotonicBackend().lower(g, get_board("lighton-opu"), CompileOptions(seed=3)).save(tmp_path / "a")
    b = PhotonicBackend().lower(g, get_board("lighton-opu"), CompileOptions(seed=3)).save(tmp_path / "b")
    assert _digest(a) == _digest(b)


def test_dfa_hostile_layers_are_refused_or_handled():
    board = get_board("lighton-opu")
    g = mlp_graph([64, 6, 32, 10])  # 6 < 10 classes: bottleneck
    with pytest.raises(UnsupportedError, match="fewer than the 10 outputs") as exc:
        PhotonicBackend().lower(g, board, CompileOptions(extra={"narrow": "refuse", "max_samples": 200}))
    assert exc.value.node == "fc0"
    g = mlp_graph([64, 32, 6, 10])
    art = PhotonicBackend().lower(g, board, CompileOptions(extra={"max_samples": 200}))
    roles = {d["name"]: d["role"] for d in art.meta["program"]["layers"]}
    assert roles["fc1"] == "bp" and roles["fc0"] == "dfa"
    assert any("fc1" in w and "backprop" in w for w in art.meta["warnings"])
    art = PhotonicBackend().lower(g, board, CompileOptions(extra={"narrow": "freeze", "max_samples": 200}))
    assert {d["name"]: d["role"] for d in art.meta["program"]["layers"]}["fc1"] == "freeze"
    conv = nir.NIRGraph(nodes={
        "input": nir.Input(input_type={"input": np.array([1, 8, 8])}),
        "conv": nir.Conv2d(input_shape=(8, 8), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                           groups=1, bias=np.zeros(2)),
        "output": nir.Output(output_type={"output": np.array([2, 8, 8])}),
    }, edges=[("input", "conv"), ("conv", "output")], metadata={"spikeforge.dt": 1e-3})
    with pytest.raises(UnsupportedError, match="convolutional") as exc:
        PhotonicBackend().lower(conv, board, CompileOptions(extra={"conv": "refuse"}))
    assert exc.value.node == "conv"
    with pytest.raises(UnsupportedError, match="at least one hidden layer"):  # conv front end without an MLP head
        PhotonicBackend().lower(conv, board, CompileOptions())


def test_layout_shares_leading_slices_when_camera_is_too_small():
    layers = [LayerSpec(n, np.zeros((w, 4), np.float32), np.zeros(w, np.float32)) for n, w in (("a", 300), ("b", 200))]
    assert layout(layers, 10_000) == {"layout": "concatenated", "n_out": 500}
    assert [s.offset for s in layers] == [0, 300]
    assert layout(layers, 400) == {"layout": "shared", "n_out": 300}
    assert [s.offset for s in layers] == [0, 0]
    with pytest.raises(UnsupportedError, match="exceeds the camera"):
        layout(layers, 250)


def test_emulator_forward_matches_reference_and_counts_frames(compiled):
    x = (np.random.default_rng(1).random((12, 5, 64)) < 0.3).astype(np.float32)
    trace = PhotonicBackend().emulator().run(compiled, {"input": x})
    ref = simulate(compiled.reference, {"input": x})
    np.testing.assert_array_equal(trace.outputs["output"], ref.outputs["output"])
    assert trace.total("opu_frames") == 4 * 5 + 4
    assert trace.total("host_bytes_out") == (4 * 5 + 4) * 80


def test_cost_model_per_epoch_figures_with_sources(compiled):
    board = get_board("lighton-opu")
    x = np.zeros((4, 8, 64), np.float32)
    trace = PhotonicBackend().emulator().run(compiled, {"input": x})
    prof = PhotonicBackend().cost_model().profile(compiled, trace)
    res = {i.component: i for i in prof.resources}
    n = compiled.arrays["data/x_train"].shape[0]
    frames = 4 * n + 4 * math.ceil(n / 32)  # upper bound: the calibration batch had no all-zero error
    assert res["frames_per_epoch"].value == frames
    assert res["opu_energy_per_epoch"].value == pytest.approx(frames * 30.0 / 1500.0)
    assert res["opu_time_per_epoch"].value == pytest.approx(frames * 500e-6)
    assert res["digital_gpu_energy_per_epoch"].value == pytest.approx(2 * 10 * 80 * n * 300 / 15.7e12)
    for key in ("opu_energy_per_epoch", "opu_time_per_epoch", "digital_gpu_energy_per_epoch",
                "host_link_time_per_epoch"):
        assert res[key].sources and all("[" in s for s in res[key].sources)
    assert prof.energy[0].value == pytest.approx(frames * board.value("energy.frame") / n)


def test_verify_extra_passes_and_a_frame_slip_fault_is_caught(compiled):
    checks = PhotonicBackend().verify_extra(compiled, {})
    assert [c[0] for c in checks] == ["photonic.alignment.fc0", "photonic.alignment.fc1", "photonic.accuracy",
                                      "photonic.gap_to_digital_dfa", "photonic.gap_to_backprop"]
    assert all(ok for _, ok, _ in checks), checks
    faulty = dict((name, ok) for name, ok, _ in run_verification(compiled, {}, frame_offset=1))
    assert not faulty["photonic.accuracy"] and not faulty["photonic.gap_to_digital_dfa"], faulty
    assert not faulty["photonic.gap_to_backprop"], faulty  # a broken OPU also trails backprop
    drifting = dict((name, ok) for name, ok, _ in run_verification(compiled, {}, drift_per_frame=0.01))
    assert not all(drifting.values()), drifting


def test_emitted_script_trains_against_the_emulator(compiled, tmp_path):
    out = tmp_path / "w.npz"
    r = subprocess.run([sys.executable, str(compiled.path / "code" / "train_dfa.py"), "--epochs", "1",
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "odfa test accuracy" in r.stdout and "OPU frames used" in r.stdout
    with np.load(out) as z:
        assert z["fc0/weight"].shape == (48, 64)


def test_spiking_graph_gets_a_time_stepped_program_that_verifies(tmp_path):
    g = mlp_graph([64, 64, 10], neuron="lif")
    art = PhotonicBackend().lower(g, get_board("lighton-opu"), CompileOptions(timesteps=10, seed=0))
    prog = art.meta["program"]
    assert prog["mode"] == "spiking" and prog["spiking"] == {"timesteps": 10, "out_scale": 0.5}
    np.testing.assert_allclose(art.arrays["layer/fc0/keep"], 0.9, rtol=1e-6)  # Euler: 1 - dt / tau
    np.testing.assert_allclose(art.arrays["layer/fc0/gain"], 1.0, rtol=1e-6)  # dt / tau x r
    art = Artifact.load(art.save(tmp_path / "snn"))
    checks = {name: ok for name, ok, _ in PhotonicBackend().verify_extra(art, {})}
    assert all(checks.values()), checks
    faulty = {name: ok for name, ok, _ in run_verification(art, {}, frame_offset=1)}
    assert not faulty["photonic.accuracy"], faulty


def test_without_training_data_compile_refuses_and_names_the_option(tmp_path):
    g = mlp_graph([32, 40, 10], seed=4)  # 32 inputs: no bundled data set fits
    with pytest.raises(UnsupportedError) as exc:
        PhotonicBackend().lower(g, get_board("lighton-opu"), CompileOptions(seed=0))
    msg = str(exc.value)
    assert "labelled training data" in msg and "32 inputs and 10 classes" in msg and "photonic.train_data" in msg
    rng = np.random.default_rng(0)
    x = (rng.random((25, 300, 32)) < 0.3).astype(np.float32)  # spike trains (T, N, 32) are taken as rates
    np.savez(tmp_path / "train.npz", x=x, y=rng.integers(0, 10, 300))
    art = PhotonicBackend().lower(g, get_board("lighton-opu"),
                                  CompileOptions(seed=0, extra={"photonic.train_data": str(tmp_path / "train.npz")}))
    assert art.arrays["data/x_train"].shape == (201, 32)
    np.testing.assert_allclose(art.arrays["data/x_train"].max(), x.mean(axis=0).max(), rtol=1e-6)
    assert all(d["gain"] != 1.0 for d in art.meta["program"]["layers"] if d["role"] == "dfa")  # calibrated


def test_verify_trains_and_tests_on_the_users_labelled_inputs(compiled):
    from spikeforge.models import path
    from spikeforge.verify import verify

    with np.load(path("digits_inputs.npz")) as d:
        x, y = d["input"][:25, :150], d["labels"][:150]
    res = verify(compiled, {"input": x}, y)
    acc = next(c for c in res.checks if c.name == "photonic.accuracy")
    assert acc.passed and "tested on the 150 labelled verify inputs" in acc.detail, acc
    # the labels really are what it learns from: random labels cannot be learnt (embedded data would pass)
    noise = np.random.default_rng(1).integers(0, 10, y.shape)
    checks = dict((n, (ok, d)) for n, ok, d in PhotonicBackend().verify_extra_labelled(compiled, {"input": x}, noise))
    assert not checks["photonic.accuracy"][0], checks["photonic.accuracy"]
    # without labels the embedded training data stays the default
    checks = dict((n, (ok, d)) for n, ok, d in PhotonicBackend().verify_extra_labelled(compiled, {"input": x}, None))
    assert "embedded training data" in checks["photonic.accuracy"][1]
