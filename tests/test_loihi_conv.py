"""Convolutional networks on Loihi: structured lowering, the NIR paper's Sinabs CNN, Lava equality."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge import refsim
from spikeforge.artifact import Artifact
from spikeforge.backends.loihi import LoihiBackend
from spikeforge.backends.loihi._lava_compat import lava_available
from spikeforge.backends.loihi.structured import linear_map
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model
from spikeforge.refsim import SimConfig, make_kernel

from .lava_script import run_network_py

SHARED = Path(__file__).resolve().parents[2] / "shared"
CNN = SHARED / "models" / "cnn_sinabs.nir"
needs_cnn = pytest.mark.skipif(not CNN.is_file(), reason="shared/models/cnn_sinabs.nir not present")
needs_lava = pytest.mark.skipif(not lava_available(), reason="lava-nc not installed")


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_structured_conv_and_pool_maps_equal_reference_kernels(data):
    """A @ x + c of the sparse map equals the reference simulator's conv/pool kernel on random inputs."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31)))
    groups = data.draw(st.sampled_from([1, 2]))
    cin = groups * data.draw(st.integers(1, 3))
    cout = groups * data.draw(st.integers(1, 3))
    kh, kw = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4))
    h, w = data.draw(st.integers(max(kh, 2), 9)), data.draw(st.integers(max(kw, 2), 9))
    kind = data.draw(st.sampled_from(["conv2d", "conv1d", "sumpool", "avgpool"]))
    stride = data.draw(st.integers(1, 3))
    pad = data.draw(st.integers(0, 2))
    dil = data.draw(st.integers(1, 2))
    if kind == "conv2d":
        if (kh - 1) * dil + 1 > h + 2 * pad or (kw - 1) * dil + 1 > w + 2 * pad:
            dil = 1
        node = nir.Conv2d(input_shape=(h, w), weight=rng.normal(0, 1, (cout, cin // groups, kh, kw)),
                          stride=stride, padding=pad, dilation=dil, groups=groups, bias=rng.normal(0, 1, cout))
        shape = (cin, h, w)
    elif kind == "conv1d":
        node = nir.Conv1d(input_shape=w, weight=rng.normal(0, 1, (cout, cin // groups, kw)), stride=stride,
                          padding=pad, dilation=1, groups=groups, bias=rng.normal(0, 1, cout))
        shape = (cin, w)
    else:
        pad = min(pad, kh // 2, kw // 2)
        cls = nir.SumPool2d if kind == "sumpool" else nir.AvgPool2d
        node = cls(kernel_size=np.array([kh, kw]), stride=np.array([stride, stride]), padding=np.array([pad, pad]))
        node.input_type = {"input": np.array(shape := (cin, h, w))}
    node.input_type = {"input": np.array(shape)}
    cfg = SimConfig(dt=1e-3)
    n_in = int(np.prod(shape))
    A, c, _ = linear_map("n", node, n_in, cfg)
    kern = make_kernel(node, replace(cfg, dtype="float64"))
    x = rng.normal(0, 1, (3, *shape))
    y, _ = kern.step(x, kern.init(3))
    np.testing.assert_allclose((A @ x.reshape(3, -1).T).T + c, np.asarray(y).reshape(3, -1), atol=1e-9)
    assert A.nnz <= A.shape[0] * max(1, int(np.prod(getattr(node, "weight", np.ones((1, 1, kh, kw))).shape[1:])))


def _frames(seed: int, T: int, B: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.02, 0.05, (1, B, 1, 1, 1))                  # 2-5 % events per pixel and step
    return (rng.random((T, B, 2, 34, 34)) < density).astype(np.float32)


@pytest.fixture(scope="module")
def cnn_art():
    return compile_model(CNN, "loihi2", CompileOptions(dt=1e-3, timesteps=30))


@needs_cnn
def test_cnn_sinabs_compiles_structured_and_fits_loihi2(cnn_art):
    art = cnn_art
    m = art.meta["mapping"]
    assert m["cores_used"] <= m["cores_available"]
    assert all(c["fan_out_axons"] <= 4096 and c["fan_in_axons"] <= 4096 for c in m["cores"])
    assert all(c["synaptic_bytes"] <= 131072 and c["neurons"] <= 8192 for c in m["cores"])
    kinds = {c["name"]: c["kind"] for c in art.meta["program"]["conns"]}
    conv = [c for c in art.meta["program"]["conns"] if c["src"] == "input"]
    # source -> Conv2d -> IF becomes Lava's Conv process: the artifact stores the 16x2x5x5 kernel (split by sign)
    assert conv and all(c["kind"] == "Conv" for c in conv)
    assert sum(art.arrays[f"conn/{c['name']}/kernel"].size for c in conv) == 2 * 16 * 2 * 5 * 5
    assert kinds.get("1->3+") == "Conv"
    # pool -> conv (a composite kernel) stays structured too: CSR with the taps only, no dense matrix
    pooled = [c for c in art.meta["program"]["conns"] if c["src"] == "3"]
    assert pooled and all(c["kind"] == "Sparse" and c["csr"] for c in pooled)
    assert all(v.ndim == 1 or v.size < 300_000 for v in art.arrays.values())
    assert not [k for k in art.arrays if k.endswith("/weights") and art.arrays[k].size > 300_000]


@needs_cnn
def test_cnn_sinabs_tracks_float_reference_on_event_frames(cnn_art):
    """Random N-MNIST-like frames (2x34x34, 2-5 % density, T=30): output spikes step by step vs the float
    reference (the verify gate's own comparison is strengthened elsewhere; here spike counts and steps)."""
    x = _frames(3, 30, 8)
    tr = LoihiBackend().emulator().run(cnn_art, {"input": x})
    ref = refsim.simulate(cnn_art.reference, {"input": x})
    a, b = tr.outputs["output"], ref.outputs["output"]
    assert a.shape == b.shape == (30, 8, 10)
    assert b.sum() >= 20                                      # not vacuous: the float CNN spikes
    assert (a == b).mean() >= 0.95                            # step-identical output entries
    assert abs(a.sum() - b.sum()) <= 0.2 * b.sum()            # total spike count within 20 %
    assert np.abs(a.sum(0) - b.sum(0)).mean() <= 0.5          # per sample and class, < 0.5 spikes off


@needs_cnn
@needs_lava
@pytest.mark.slow
def test_cnn_sinabs_emitted_network_py_equals_emulator_under_lava(cnn_art, tmp_path):
    out_dir = cnn_art.save(tmp_path / "art")
    loaded = Artifact.load(out_dir)
    x = _frames(4, 12, 2)
    f = run_network_py(out_dir, {"input": x}, tmp_path, timeout=900)
    tr = LoihiBackend().emulator().run(loaded, {"input": x}, probes=True)
    np.testing.assert_array_equal(f["output"].reshape(tr.outputs["output"].shape), tr.outputs["output"])
    for pop in loaded.meta["program"]["pops"]:
        n = pop["name"]
        assert f[f"loihi/{n}/s"].sum() > 0
        for var in ("s", "u", "v"):
            np.testing.assert_array_equal(f[f"loihi/{n}/{var}"], tr.states[f"loihi/{n}/{var}"].reshape(
                f[f"loihi/{n}/{var}"].shape))


def check_conv_vs_lava(seed: int, steps: int = 12) -> None:
    from spikeforge.backends.loihi.network_template import run_lava
    from spikeforge.backends.loihi.testing import random_conv_program
    from spikeforge.emulators.loihi import Program, run_program

    rng = np.random.default_rng(seed)
    prog = random_conv_program(rng, layers=int(rng.integers(1, 3)))
    spec, arrays = prog.to_data()
    prog = Program.from_data(spec, arrays)                          # the on-disk form is what runs
    x = (rng.random((steps, 1, prog.inputs["in"])) < rng.uniform(0.2, 0.6)).astype(np.int32)
    lava = run_lava(spec, arrays, {"in": x}, probes=True)
    for method in ("layered", "stepwise"):
        emu = run_program(prog, {"in": x}, probes=True, method=method)
        for n in prog.pops:
            for var, mine in (("s", emu.spikes[n]), ("u", emu.u[n]), ("v", emu.v[n])):
                got = lava[f"{n}/{var}"].astype(np.int64).reshape(mine.shape)
                mismatches = int(np.count_nonzero(got != mine.astype(np.int64)))
                assert mismatches == 0, (seed, method, n, var, mismatches)
    assert any(lava[f"{n}/u"].any() for n in prog.pops)          # not vacuous: the conv delivered input


@needs_lava
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_conv_layers_equal_lava_conv_process(seed):
    """Random kernels, strides, paddings, dilations, groups, channels and weight bits: zero mismatches in
    u, v and spikes between the emulator and Lava's own Conv process (fixed_pt)."""
    check_conv_vs_lava(seed)


@needs_lava
@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(st.integers(3, 2**31))
def test_random_conv_layers_equal_lava_conv_process_many(seed):
    check_conv_vs_lava(seed)
