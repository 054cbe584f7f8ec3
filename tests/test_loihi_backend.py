"""Loihi lowering, mapping, emitted Lava code and cost model."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest

from spikeforge import refsim
from spikeforge.artifact import Artifact
from spikeforge.backends.loihi import LoihiBackend
from spikeforge.backends.loihi._lava_compat import lava_available
from spikeforge.boards import get_board, load_board_file
from spikeforge.errors import FitError, UnsupportedError
from spikeforge.interfaces import CompileOptions

from .lava_script import run_network_py

needs_lava = pytest.mark.skipif(not lava_available(), reason="lava-nc not installed")


def lif(n, tau=0.02, vth=1.0, **kw):
    return nir.LIF(tau=np.full(n, tau), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, vth), **kw)


def mlp(seed=0, n_in=20, n_h=30, n_out=5, dt=1e-3):
    rng = np.random.default_rng(seed)
    g = nir.NIRGraph.from_list(
        nir.Input(input_type=np.array([n_in])),
        nir.Affine(weight=rng.normal(0.3, 3, (n_h, n_in)), bias=rng.normal(0, 0.05, n_h)),
        lif(n_h),
        nir.Linear(weight=rng.normal(0.3, 3, (n_out, n_h))),
        lif(n_out),
        nir.Output(output_type=np.array([n_out])),
    )
    g.metadata = {"spikeforge.dt": dt}
    return g


def spikes_in(rng, T, B, n, p=0.3):
    return (rng.random((T, B, n)) < p).astype(np.float32)


def compile_(g, board="loihi2", **kw):
    return LoihiBackend().lower(g, get_board(board), CompileOptions(**kw))


def _agreement(art, x):
    tr = LoihiBackend().emulator().run(art, {"input": x})
    ref = refsim.simulate(art.reference, {"input": x})
    name = next(iter(ref.outputs))
    a, b = tr.outputs[name], ref.outputs[name]
    assert a.shape == b.shape
    return a, b


def test_mlp_matches_float_reference_closely():
    g = mlp()
    art = compile_(g, timesteps=50)
    x = spikes_in(np.random.default_rng(1), 50, 16, 20)
    a, b = _agreement(art, x)
    ca, cb = a.sum(0), b.sum(0)
    assert cb.sum() > 50                                       # not vacuous: the float model spikes
    assert np.corrcoef(ca.ravel(), cb.ravel())[0, 1] > 0.97
    assert np.mean(ca.argmax(1) == cb.argmax(1)) >= 0.9
    assert (a == b).mean() > 0.97                              # spike trains aligned in time, not just counts
    layers = art.meta["layers"]
    assert [L["offset"] for L in layers] == [2, 3]             # one Loihi step per synapse hop
    assert all(c["rel_rms_error"] < 0.02 for L in layers for c in L["connections"])


def test_recurrent_delay_cuba_if_li_network_tracks_reference():
    rng = np.random.default_rng(2)
    n = 12
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([8])),
            "fc1": nir.Linear(weight=rng.normal(0.5, 2, (n, 8))),
            "cuba": nir.CubaLIF(tau_syn=np.full(n, 0.005), tau_mem=np.full(n, 0.02), r=np.ones(n),
                                v_leak=np.zeros(n), v_threshold=np.full(n, 0.5), w_in=np.ones(n)),
            "rec": nir.Linear(weight=rng.normal(0, 0.5, (n, n))),
            "delay": nir.Delay(delay=np.full(n, 0.003)),
            "fc2": nir.Linear(weight=rng.normal(0.3, 1, (6, n))),
            "if": nir.IF(r=np.ones(6), v_threshold=np.full(6, 2.0)),
            "fc3": nir.Linear(weight=rng.normal(0, 1, (3, 6))),
            "li": nir.LI(tau=np.full(3, 0.01), r=np.ones(3), v_leak=np.zeros(3)),
            "output": nir.Output(output_type=np.array([3])),
        },
        edges=[("input", "fc1"), ("fc1", "cuba"), ("cuba", "rec"), ("rec", "cuba"), ("cuba", "delay"),
               ("delay", "fc2"), ("fc2", "if"), ("if", "fc3"), ("fc3", "li"), ("li", "output")],
        metadata={"spikeforge.dt": 1e-3},
    )
    art = compile_(g, timesteps=40)
    x = spikes_in(rng, 40, 4, 8, 0.4)
    a, b = _agreement(art, x)
    assert np.abs(b).max() > 0.05                              # the readout moves
    # Recurrent spiking amplifies threshold-borderline differences (8-bit weights), so compare statistically.
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert np.abs(a - b).mean() < 0.1 * np.abs(b).max()
    kinds = {c["name"]: c["kind"] for c in art.meta["program"]["conns"]}
    assert any(k.startswith("Delay") for k in kinds.values())  # the 3-step Delay became synaptic delay


@needs_lava
def test_verify_extra_runs_lava_bit_exact():
    art = compile_(mlp(seed=3, n_in=10, n_h=12, n_out=4), timesteps=15)
    x = spikes_in(np.random.default_rng(4), 15, 2, 10)
    checks = dict((k, (ok, d)) for k, ok, d in LoihiBackend().verify_extra(art, {"input": x}))
    assert checks["lava_bit_exact"][0], checks["lava_bit_exact"][1]
    assert checks["fits_board"][0]


@needs_lava
def test_emitted_network_py_runs_and_equals_emulator(tmp_path):
    art = compile_(mlp(seed=5, n_in=10, n_h=12, n_out=4), board="loihi1", timesteps=20)
    out_dir = art.save(tmp_path / "art")
    loaded = Artifact.load(out_dir)
    x = spikes_in(np.random.default_rng(6), 20, 2, 10, 0.4)
    f = run_network_py(out_dir, {"input": x}, tmp_path)
    tr = LoihiBackend().emulator().run(loaded, {"input": x}, probes=True)
    lava_out = f["output"]
    assert lava_out.sum() > 0
    np.testing.assert_array_equal(lava_out, tr.outputs["output"])
    for pop in art.meta["program"]["pops"]:
        n = pop["name"]
        np.testing.assert_array_equal(f[f"loihi/{n}/v"], tr.states[f"loihi/{n}/v"])
        np.testing.assert_array_equal(f[f"loihi/{n}/u"], tr.states[f"loihi/{n}/u"])
    assert "USE_HARDWARE" in (out_dir / "code" / "network.py").read_text()
    assert "Loihi2HwCfg" in (out_dir / "code" / "network.py").read_text()


def test_artifacts_are_byte_identical(tmp_path):
    g = mlp(seed=7)
    d1 = compile_(g, timesteps=10, seed=1).save(tmp_path / "a")
    d2 = compile_(g, timesteps=10, seed=1).save(tmp_path / "b")
    files = sorted(p.relative_to(d1) for p in d1.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(d2) for p in d2.rglob("*") if p.is_file())
    for rel in files:
        assert (d1 / rel).read_bytes() == (d2 / rel).read_bytes(), rel


def test_conv_and_sumpool_lower_to_dense_and_track_reference():
    rng = np.random.default_rng(8)
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([1, 6, 6])),
            "conv": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0.5, 1, (2, 1, 3, 3)), stride=1, padding=1,
                               dilation=1, groups=1, bias=np.zeros(2)),
            "lif1": nir.LIF(tau=np.full((2, 6, 6), 0.02), r=np.ones((2, 6, 6)), v_leak=np.zeros((2, 6, 6)),
                            v_threshold=np.ones((2, 6, 6))),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
            "fc": nir.Linear(weight=rng.normal(0.2, 0.5, (4, 18))),
            "lif2": lif(4, vth=0.5),
            "output": nir.Output(output_type=np.array([4])),
        },
        edges=[("input", "conv"), ("conv", "lif1"), ("lif1", "pool"), ("pool", "flat"), ("flat", "fc"),
               ("fc", "lif2"), ("lif2", "output")],
        metadata={"spikeforge.dt": 1e-3},
    )
    g.nodes["lif1"].input_type = {"input": np.array([2, 6, 6])}
    g.nodes["lif1"].output_type = {"output": np.array([2, 6, 6])}
    g.nodes["pool"].input_type = {"input": np.array([2, 6, 6])}
    g.nodes["pool"].output_type = {"output": np.array([2, 3, 3])}
    art = compile_(g, timesteps=30)
    x = spikes_in(rng, 30, 4, 36, 0.5).reshape(30, 4, 1, 6, 6)
    tr = LoihiBackend().emulator().run(art, {"input": x})
    ref = refsim.simulate(art.reference, {"input": x})
    a, b = tr.outputs["output"].sum(0), ref.outputs["output"].sum(0)
    assert b.sum() > 10
    assert np.abs(a - b).sum() <= 0.1 * b.sum() + 2


def test_fit_error_names_limit_and_shortfall():
    g = nir.NIRGraph.from_list(nir.Input(input_type=np.array([5000])), nir.Linear(weight=np.ones((1, 5000))),
                               lif(1), nir.Output(output_type=np.array([1])))
    g.metadata = {"spikeforge.dt": 1e-3}
    with pytest.raises(FitError, match=r"5000 fan-in axons; a core has 4096 \(short by 904\)"):
        compile_(g, board="loihi1")


def test_fit_error_when_cores_run_out(tmp_path):
    text = Path(get_board("loihi1").path).read_text().replace('name = "loihi1"', 'name = "tiny"')
    text = text.replace("[limits.cores]\nvalue = 128", "[limits.cores]\nvalue = 1")
    (tmp_path / "tiny.toml").write_text(text)
    board = load_board_file(tmp_path / "tiny.toml")
    with pytest.raises(FitError, match=r"needs 2 cores; the board has 1 \(short by 1;.*board .loihi1. has enough"):
        LoihiBackend().lower(mlp(), board, CompileOptions())


def test_refusals_are_clear():
    g = mlp()
    g.nodes["lif"].tau[0] = 0.005
    with pytest.raises(UnsupportedError, match="per-neuron dv differ"):
        compile_(g)
    g = mlp()
    g.nodes["lif"].v_reset = np.full(30, 0.2)
    with pytest.raises(UnsupportedError, match="resets v to 0"):
        compile_(g)
    g = mlp()
    g.nodes["back"] = nir.Linear(weight=np.ones((30, 5)))
    g.edges += [("lif_1", "back"), ("back", "lif")]
    with pytest.raises(UnsupportedError, match="less latency"):
        compile_(g)
    art = compile_(g, extra={"loihi.allow_extra_latency": True})
    assert any("arrives 1 step(s) later" in w for w in art.meta["warnings"])


def test_profile_cites_davies_and_marks_loihi2_estimates():
    art = compile_(mlp(), timesteps=30)
    x = spikes_in(np.random.default_rng(9), 30, 4, 20)
    be = LoihiBackend()
    tr = be.emulator().run(art, {"input": x})
    prof = be.cost_model().profile(art, tr)
    assert prof.energy_total > 0 and prof.latency_of("per_inference") > 0
    assert all(any("Davies" in s for s in item.sources) for item in prof.energy)
    assert any("Loihi-1-derived" in n for n in prof.notes)
    syn = next(i for i in prof.energy if i.component == "synaptic_ops")
    assert syn.value == pytest.approx(tr.total("synops") / 4 * 23.6e-12)
    p1 = be.cost_model().profile(compile_(mlp(), board="loihi1", timesteps=30), tr)
    assert not any("Loihi-1-derived" in n for n in p1.notes)


def test_timing_of_delays_skips_and_recurrence_is_exact():
    """Weights with wide margins around threshold: any off-by-one in offsets or delays shows as a mismatch."""
    n = 3
    eye = np.eye(n)
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type=np.array([n])),
            "fc1": nir.Linear(weight=2 * eye),
            "if1": nir.IF(r=np.ones(n), v_threshold=np.ones(n)),
            "rec": nir.Linear(weight=-0.3 * eye),
            "delay": nir.Delay(delay=np.full(n, 0.002)),
            "fc2": nir.Linear(weight=2 * eye),
            "skip": nir.Linear(weight=0.6 * eye),
            "if2": nir.IF(r=np.ones(n), v_threshold=np.ones(n)),
            "output": nir.Output(output_type=np.array([n])),
        },
        edges=[("input", "fc1"), ("fc1", "if1"), ("if1", "rec"), ("rec", "if1"), ("if1", "delay"),
               ("delay", "fc2"), ("fc2", "if2"), ("input", "skip"), ("skip", "if2"), ("if2", "output")],
        metadata={"spikeforge.dt": 1e-3},
    )
    art = compile_(g, timesteps=30)
    x = spikes_in(np.random.default_rng(10), 30, 6, n, 0.3)
    a, b = _agreement(art, x)
    assert b.sum() > 20
    np.testing.assert_array_equal(a, b)


def test_probes_follow_the_trace_contract_in_float_units():
    """<node>.s / <node>.v under NIR names, on the reference's time axis, v in float units; latency_steps 0
    because outputs are already re-aligned (the chip's own latency is pipeline_latency_steps)."""
    g = mlp(seed=11)
    art = compile_(g, timesteps=30)
    x = spikes_in(np.random.default_rng(12), 30, 4, 20)
    tr = LoihiBackend().emulator().run(art, {"input": x}, probes=True)
    assert art.meta["latency_steps"] == 0 and art.meta["pipeline_latency_steps"] == 2
    assert set(art.meta["layer_map"]) == {n for n, v in g.nodes.items() if isinstance(v, nir.LIF)}
    for node in art.meta["layer_map"]:
        assert tr.states[f"{node}.s"].shape == (30, 4, g.nodes[node].tau.shape[0])
        assert tr.states[f"{node}.s"].sum() > 0
    # thresholds out of reach: no resets on either side, so v itself must agree step by step in float units
    first = next(n for n, v in g.nodes.items() if isinstance(v, nir.LIF))
    g.nodes[first].v_threshold = np.full_like(np.asarray(g.nodes[first].v_threshold), 50.0)
    art = compile_(g, timesteps=30)
    tr = LoihiBackend().emulator().run(art, {"input": x}, probes=True)
    v_ref = np.asarray(refsim.simulate(art.reference, {"input": x}, probes=True).states[f"{first}.v"])
    v_got = tr.states[f"{first}.v"]
    assert v_got.shape == v_ref.reshape(v_got.shape).shape and np.abs(v_ref).max() > 1
    np.testing.assert_allclose(v_got, v_ref.reshape(v_got.shape), atol=0.01 * np.abs(v_ref).max())


def test_reset_approximation_is_recorded_with_its_measured_effect():
    g = mlp(seed=13)
    g.metadata = {**g.metadata, "spikeforge.reset": "subtract"}
    art = compile_(g, timesteps=20)
    recs = [w for w in art.meta["semantic_warnings"] if w["kind"] == "reset_changed"]
    assert {w["node"] for w in recs} == {n for n, v in g.nodes.items() if isinstance(v, nir.LIF)}
    assert all(0 < w["magnitude"] < 5 and "measured" in w["detail"] for w in recs)
    plain = compile_(mlp(seed=13), timesteps=20)
    assert not [w for w in plain.meta["semantic_warnings"] if w["kind"] == "reset_changed"]
