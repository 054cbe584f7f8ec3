"""RRAM LSM backend: lowering, the ideal crossbar against the reference simulator, artifacts, cost."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeforge.artifact import Artifact
from spikeforge.backends.rram import ReservoirSpec, RRAMBackend, fit_readout, generate
from spikeforge.backends.rram.device import NonIdeal, load_board
from spikeforge.backends.rram.reservoir import reservoir_graph, spectral_radius
from spikeforge.emulators.rram import RRAMEmulator
from spikeforge.errors import InputError, UnsupportedError
from spikeforge.interfaces import CompileOptions
from spikeforge.refsim import simulate

BOARD = load_board()


def _spikes(T: int, B: int, n: int, p: float = 0.2, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((T, B, n)) < p).astype(np.float32)


def _lower(g: nir.NIRGraph, **extra) -> Artifact:
    return RRAMBackend().lower(g, BOARD, CompileOptions(seed=5, extra={f"rram.{k}": v for k, v in extra.items()}))


def test_generated_reservoir_matches_spec():
    spec = ReservoirSpec(size=120, inputs=16, e_ratio=0.75, p_connect=0.2, spectral_radius=1.3, seed=2)
    g = generate(spec)
    w = np.asarray(g.nodes["w_rec"].weight, np.float64)
    assert abs(spectral_radius(w) - 1.3) < 1e-4
    density = (w != 0).sum() / (120 * 119)
    assert abs(density - 0.2) < 0.03
    col_sign = np.sign(w.sum(axis=0))
    n_exc = 90
    assert np.all(w[:, :n_exc] >= 0) and np.all(w[:, n_exc:] <= 0)          # Dale's law
    assert (col_sign[:n_exc] >= 0).all()
    # the LIF is beta v + I with hard reset
    res = simulate(g, np.zeros((3, 1, 16), np.float32), probes=True)
    assert res.states["lif.v"].shape == (3, 1, 120)


@pytest.mark.parametrize("weights", ["programmed", "zero_shot"])
def test_ideal_crossbar_equals_reference_simulator(weights):
    # 300 neurons + 64 inputs: 2 row blocks x 2 column blocks = 4 tiles, partial sums added digitally
    g = generate(size=300, inputs=64, p_connect=0.1, spectral_radius=1.0, seed=1)
    art = _lower(g, mode="reservoir", reservoir_weights=weights)
    assert art.meta["macros"] == 4
    x = _spikes(25, 6, 64)
    tr = RRAMEmulator(nonideal="off").run(art, {"input": x}, probes=True)
    ref = simulate(art.reference, {"input": x}, probes=True, dtype="float64")
    assert ref.activity["lif"].sum() > 100                                   # a live reservoir, not a trivial match
    np.testing.assert_array_equal(tr.states["lif.spikes"], ref.activity["lif"])
    np.testing.assert_array_equal(tr.states["lif.v"], ref.states["lif.v"])
    np.testing.assert_allclose(tr.outputs["output"], ref.outputs["output"], rtol=1e-6, atol=1e-9)
    # and against the default float32 reference the spikes agree too
    ref32 = simulate(art.reference, {"input": x}, probes=True)
    assert np.mean(ref32.activity["lif"] == tr.states["lif.spikes"]) > 0.999


def test_ideal_crossbar_cuba_subtract_delayed_with_bias():
    spec = ReservoirSpec(size=90, inputs=12, p_connect=0.2, spectral_radius=0.8, seed=4, input_scale=0.8)
    g = reservoir_graph(spec)
    n = 90
    g.nodes["lif"] = nir.CubaLIF(tau_mem=np.full(n, 0.01), tau_syn=np.full(n, 0.004), r=np.full(n, 10.0),
                                 v_leak=np.zeros(n), v_threshold=np.full(n, 1.0), v_reset=np.zeros(n),
                                 w_in=np.full(n, 2.0))
    g.nodes["w_in"] = nir.Affine(weight=g.nodes["w_in"].weight, bias=np.full(n, 0.02, np.float32))
    g.metadata.update({"spikeforge.reset": "subtract", "spikeforge.reset_timing": "delayed"})
    art = _lower(g)
    x = _spikes(30, 4, 12, p=0.3)
    tr = RRAMEmulator().run(art, {"input": x}, probes=True)
    ref = simulate(art.reference, {"input": x}, probes=True, dtype="float64")
    assert ref.activity["lif"].sum() > 50
    np.testing.assert_array_equal(tr.states["lif.spikes"], ref.activity["lif"])


def test_verify_extra_and_counts():
    g = generate(size=64, inputs=10, seed=0)
    art = _lower(g, nonideal="typical")
    x = np.ones((4, 3, 10), np.float32)                       # every input row active every step
    checks = RRAMBackend().verify_extra(art, {"input": x})
    assert checks and all(ok for _, ok, _ in checks)
    tr = RRAMEmulator().run(art, {"input": x})
    # input tile is read every step by every sample: 64 conversions each; the recurrent tile only when spikes exist
    spikes_prev = np.concatenate([[0.0], tr.counts["spikes"][:-1]])
    assert np.all(tr.counts["adc_conversions"] >= 3 * 64)
    assert np.all(tr.counts["reads"] == 3 * 10 + spikes_prev)
    assert np.all(tr.counts["neuron_updates"] == 3 * 64)


def test_artifact_is_deterministic_and_round_trips(tmp_path):
    g = generate(size=80, inputs=8, seed=3)
    a = _lower(g, mode="zero_shot", nonideal="typical")
    b = _lower(g, mode="zero_shot", nonideal="typical")
    pa, pb = a.save(tmp_path / "a"), b.save(tmp_path / "b")
    for name in ("manifest.json", "arrays.npz", "code/programming_map.json", "code/report.md"):
        assert (pa / name).read_bytes() == (pb / name).read_bytes(), name
    loaded = Artifact.load(pa)
    x = _spikes(10, 2, 8, p=0.4)
    t1 = RRAMEmulator().run(a, {"input": x}, probes=True)
    t2 = RRAMEmulator().run(loaded, {"input": x}, probes=True)
    np.testing.assert_array_equal(t1.states["lif.current"], t2.states["lif.current"])
    # a different chip instance (seed) reads differently with non-idealities on
    t3 = RRAMEmulator(seed=99).run(loaded, {"input": x}, probes=True)
    assert not np.array_equal(t1.states["lif.current"], t3.states["lif.current"])
    assert "forming" in (pa / "code/programming_map.json").read_text()


def test_tiling_partitions_rows_and_columns():
    g = generate(size=600, inputs=40, p_connect=0.02, seed=0)
    art = _lower(g)
    idx = art.arrays["tiles.index"]
    # input rows (40) and recurrent rows (600 -> 512 + 88) are separate row blocks; 600 neurons -> 3 column blocks
    assert len(idx) == 3 * 3
    assert (idx[:, 1] - idx[:, 0]).max() <= 512 and (idx[:, 3] - idx[:, 2]).max() <= 256
    cover = np.zeros((640, 600), int)
    for r0, r1, c0, c1 in idx:
        cover[r0:r1, c0:c1] += 1
    assert (cover == 1).all()
    full = np.zeros((640, 600))
    for k, (r0, r1, c0, c1) in enumerate(idx):
        full[r0:r1, c0:c1] = art.arrays[f"tile{k:03d}.w"]
    np.testing.assert_array_equal(full[:40].T, np.asarray(g.nodes["w_in"].weight))
    np.testing.assert_array_equal(full[40:].T, np.asarray(g.nodes["w_rec"].weight))


def test_profile_cites_every_figure():
    g = generate(size=512, inputs=64, seed=0)
    art = _lower(g, nonideal="typical")
    x = _spikes(20, 4, 64)
    tr = RRAMEmulator().run(art, {"input": x})
    p = RRAMBackend().cost_model().profile(art, tr)
    assert all(i.sources for i in p.energy)
    assert {i.component for i in p.latency} == {"per_step", "per_inference"}
    per_step = next(i.value for i in p.resources if i.component == "energy_per_step")
    assert 0.1e-9 < per_step < 5e-9                       # the planning estimate is 0.5-1.5 nJ
    adc = next(i.value for i in p.energy if i.component == "adc")
    assert adc == pytest.approx(tr.total("adc_conversions") / 4 * 0.24e-12)
    assert next(i.value for i in p.resources if i.component == "tiles") == 4


def test_errors_name_the_problem():
    g = generate(size=20, inputs=4, seed=0)
    with pytest.raises(InputError, match="rram.mode"):
        _lower(g, mode="quantum")
    with pytest.raises(InputError, match="unknown non-ideality"):
        _lower(g, nonideal={"telepathy": 1})
    art = _lower(g)
    with pytest.raises(InputError, match="binary"):
        RRAMEmulator().run(art, {"input": np.full((3, 1, 4), 0.5, np.float32)})
    two = nir.NIRGraph.from_list(nir.Affine(np.ones((3, 2), np.float32), np.zeros(3, np.float32)),
                                 nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
                                 nir.Affine(np.ones((3, 3), np.float32), np.zeros(3, np.float32)),
                                 nir.LIF(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)))
    with pytest.raises(UnsupportedError, match="one reservoir population"):
        RRAMBackend().lower(two, BOARD, CompileOptions(dt=1e-3, extra={"rram.mode": "reservoir"}))
    # auto mode compiles the same two-layer graph with programmed weights instead, and says why
    art = RRAMBackend().lower(two, BOARD, CompileOptions(dt=1e-3))
    assert art.meta["mode"] == "programmed" and "not a single-reservoir LSM" in art.meta["warnings"][0]


def test_nonideal_parse():
    assert NonIdeal.parse("off") == NonIdeal()
    t = NonIdeal.parse("typical", BOARD)
    assert t.levels == 16 and t.adc_bits == 6 and t.read_noise == pytest.approx(0.015)
    d = NonIdeal.parse({"base": "typical", "read_noise": "0.05", "adc_bits": "none"}, BOARD)
    assert d.read_noise == 0.05 and d.adc_bits is None and d.levels == 16


def test_cli_compile_train_profile(tmp_path, monkeypatch):
    """`spikeforge compile ... --set rram.*` then `profile --json`: tiles, energy per step / inference, latency, sources."""
    import json

    from click.testing import CliRunner

    from spikeforge import graph as G
    from spikeforge import registry
    from spikeforge.cli import main
    from spikeforge.npzio import save_npz

    monkeypatch.setitem(registry.BUILTIN, "rram", "spikeforge.backends.rram:RRAMBackend")
    registry.backend_targets.cache_clear()
    try:
        rng = np.random.default_rng(0)
        x = (rng.random((15, 40, 16)) < 0.3).astype(np.float32)
        y = (x[:, :, :8].sum(axis=(0, 2)) > x[:, :, 8:].sum(axis=(0, 2))).astype(np.int64)
        save_npz(tmp_path / "data.npz", {"input": x, "labels": y})
        G.write(generate(size=60, inputs=16, outputs=2, seed=0), tmp_path / "lsm.nir")
        r = CliRunner()
        res = r.invoke(main, ["compile", str(tmp_path / "lsm.nir"), "--board", "rram-40nm-512x512", "-o",
                              str(tmp_path / "art"), "--set", "rram.mode=zero_shot", "--set", "rram.nonideal=typical",
                              "--set", f"rram.train={tmp_path / 'data.npz'}"])
        assert res.exit_code == 0, res.output
        art = Artifact.load(tmp_path / "art")
        assert art.meta["readout"]["method"] == "ridge" and "code/train_readout.py" in art.files
        res = r.invoke(main, ["profile", str(tmp_path / "art"), "-i", str(tmp_path / "data.npz"), "--json"])
        assert res.exit_code == 0, res.output
        d = json.loads(res.output)
        names = {i["component"]: i for i in d["resources"] + d["latency"] + d["energy"]}
        for key in ("tiles", "energy_per_step", "energy_per_inference", "per_step", "per_inference", "adc", "array"):
            assert key in names, key
        assert names["tiles"]["value"] == 2 and names["per_step"]["sources"]
        assert any("timing.mvm_cycle" in s for s in names["per_step"]["sources"])
    finally:
        registry.backend_targets.cache_clear()


def test_any_lsm_graph_with_linear_nodes_and_lif_to_projection_back_edge():
    """Not only generated reservoirs: Linear (bias-free) projections, readout Linear, written by hand."""
    rng = np.random.default_rng(7)
    n, n_in = 40, 6
    w_rec = (rng.random((n, n)) < 0.2) * rng.normal(0, 0.4, (n, n))
    nodes = {
        "x": nir.Input(input_type={"input": np.array([n_in])}),
        "proj": nir.Linear(weight=rng.normal(0.3, 0.5, (n, n_in)).astype(np.float32)),
        "liquid": nir.LIF(tau=np.full(n, 0.02), r=np.full(n, 1.0), v_leak=np.zeros(n), v_threshold=np.full(n, 0.1)),
        "rec": nir.Linear(weight=w_rec.astype(np.float32)),
        "ro": nir.Linear(weight=rng.normal(0, 1, (3, n)).astype(np.float32)),
        "y": nir.Output(output_type={"output": np.array([3])}),
    }
    g = nir.NIRGraph(nodes=nodes, edges=[("x", "proj"), ("proj", "liquid"), ("liquid", "rec"), ("rec", "liquid"),
                                         ("liquid", "ro"), ("ro", "y")], type_check=False)
    art = RRAMBackend().lower(g, BOARD, CompileOptions(dt=1e-3))
    st = art.meta["structure"]
    assert (st["input"], st["w_in"], st["pop"], st["w_rec"], st["readout"], st["output"]) == \
        ("x", "proj", "liquid", "rec", "ro", "y")
    x = _spikes(30, 3, n_in, p=0.4)
    tr = RRAMEmulator().run(art, {"x": x}, probes=True)
    ref = simulate(art.reference, {"x": x}, probes=True, dtype="float64")
    assert ref.activity["liquid"].sum() > 20
    np.testing.assert_array_equal(tr.states["liquid.spikes"], ref.activity["liquid"])
    np.testing.assert_allclose(tr.outputs["y"], ref.outputs["y"], rtol=1e-6, atol=1e-9)


def test_brian2_reservoir_compiles_with_delays_and_gets_a_readout():
    """A reservoir written in Brian2 (via spikeforge's frontend: uniform synaptic Delays, no readout)."""
    b2 = pytest.importorskip("brian2")
    from spikeforge.backends.rram import readout as R
    from spikeforge.frontends.brian2 import from_brian2

    b2.start_scope()
    b2.BrianLogger.suppress_name("unused_brian_object")       # the network is converted, never run
    b2.defaultclock.dt = 1 * b2.ms
    rng = np.random.default_rng(0)
    n, n_in = 40, 8
    inp = b2.SpikeGeneratorGroup(n_in, [0], [0] * b2.ms)
    grp = b2.NeuronGroup(n, "dv/dt = -v / (10*ms) : volt", threshold="v > 1*volt", reset="v = 0*volt", method="exact")
    s_in = b2.Synapses(inp, grp, "w : volt", on_pre="v += w")
    s_in.connect(p=0.4)
    s_in.w = rng.uniform(0.3, 0.9, len(s_in.i)) * b2.volt
    s_rec = b2.Synapses(grp, grp, "w : volt", on_pre="v += w")
    s_rec.connect(p=0.2, condition="i != j")
    s_rec.w = rng.normal(0.05, 0.3, len(s_rec.i)) * b2.volt
    g = from_brian2(b2.Network(inp, grp, s_in, s_rec))
    assert any(isinstance(v, nir.Delay) for v in g.nodes.values())
    art = RRAMBackend().lower(g, BOARD, CompileOptions(seed=0))
    st = art.meta["structure"]
    assert st["delay_in"] >= 1 and st["delay_rec"] >= 1
    x = _spikes(25, 40, n_in, p=0.3)
    ref = simulate(art.reference, {st["input"]: x}, probes=True, dtype="float64")
    tr = RRAMEmulator().run(art, {st["input"]: x}, probes=True)
    assert ref.activity[st["pop"]].sum() > 20
    np.testing.assert_array_equal(tr.states[f"{st['pop']}.spikes"], ref.activity[st["pop"]])
    # no readout in the Brian2 model: training inserts one, and the float graph then predicts like the chip
    y = (x[:, :, :4].sum(axis=(0, 2)) > x[:, :, 4:].sum(axis=(0, 2))).astype(np.int64)
    ro = fit_readout(art, x, y)
    assert st["readout"] in art.reference.nodes
    ref2 = simulate(art.reference, {st["input"]: x}, dtype="float64")
    feats = R.rates(tr.states[f"{st['pop']}.spikes"])
    np.testing.assert_array_equal(ref2.outputs[st["output"]].sum(axis=0).argmax(axis=1), ro.predict(feats))
