"""SFQ backend end to end: XOR (clocked and stochastic), a quantised digits-like model, emitted files."""

from __future__ import annotations

import json
from itertools import product

import nir
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeforge import refsim
from spikeforge.artifact import Artifact
from spikeforge.backends.sfq import SFQBackend
from spikeforge.backends.sfq.casestudy import XOR_PATTERNS
from spikeforge.backends.sfq.casestudy import xor_graph as _xor_graph
from spikeforge.backends.sfq.netlist import Netlist
from spikeforge.backends.sfq.sta import analyse
from spikeforge.boards import get_board
from spikeforge.emulators.sfq import SFQEmulator
from spikeforge.errors import InputError, UnsupportedError
from spikeforge.interfaces import CompileOptions
from spikeforge.verify import verify

DT = 1e-3
PATTERNS = XOR_PATTERNS


def xor_graph() -> nir.NIRGraph:
    return _xor_graph(DT)


def xor_inputs(T: int) -> np.ndarray:
    x = np.zeros((T, 4, 2), np.float32)
    for b, (a, c) in enumerate(PATTERNS):
        x[:, b, 0], x[:, b, 1] = a, c
    return x


def test_xor_clocked_error_mode_exact() -> None:
    g, T = xor_graph(), 8
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=T))
    assert art.meta["sta"]["violations"] == 0
    x = xor_inputs(T)
    tr = SFQEmulator(mode="error").run(art, {"in": x})
    assert tr.meta["violation_count"] == 0
    counts = tr.outputs["out"].sum(0)
    xor = np.array([a ^ c for a, c in PATTERNS])
    assert (counts.argmax(1) == 1 - xor).all()          # column 0 = XOR true, column 1 = XOR false
    assert (counts.max(1) == T).all() and (counts.min(1) == 0).all()
    ref = refsim.simulate(g, {"in": x})
    np.testing.assert_array_equal(tr.outputs["out"], ref.outputs["out"])      # spike for spike, step for step
    np.testing.assert_array_equal(tr.counts["spikes"], ref.spikes)


def test_xor_stochastic_rate_margins() -> None:
    g, T = xor_graph(), 600
    opts = CompileOptions(timesteps=T, seed=3, extra={"sfq.coding": "stochastic", "sfq.p_max": 0.9})
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), opts)
    assert art.meta["sta"]["violations"] == 0
    assert sum(c.type == "SYN" for c in Netlist.from_json(art.files["code/netlist.json"]).cells) == 9
    p = float(art.arrays["hid/p/in"][0, 0])          # every synapse realises the same quantised probability
    assert abs(p - 0.9) < 0.01 and np.allclose(art.arrays["cls/p/hid"], p) and art.arrays["cls/bias_p"][1] == p
    # Expected firing probabilities per step, enumerated independently of the emulator (thresholds 1 and 2).
    def expect(a: int, c: int) -> tuple[float, float]:
        n_in = a + c
        h1 = 1 - (1 - p) ** n_in                     # OR: at least one pass
        h2 = p ** 2 if n_in == 2 else 0.0            # AND: both pass
        e_h1, e_h2 = h1 * p, h2 * p                  # pulse reaches the output layer
        xor = e_h1 * (1 - e_h2)                      # h1 - h2 >= 1
        nxor = 0.0                                   # bias + h2 - h1 >= 1
        for bb, ee, ii in product((0, 1), repeat=3):
            pr = (p if bb else 1 - p) * (e_h2 if ee else 1 - e_h2) * (e_h1 if ii else 1 - e_h1)
            nxor += pr * (bb + ee - ii >= 1)
        return xor, nxor
    tr = SFQEmulator(mode="error").run(art, {"in": xor_inputs(T)})
    assert tr.meta["violation_count"] == 0
    rates = tr.outputs["out"].mean(0)
    for b, (a, c) in enumerate(PATTERNS):
        exp = np.array(expect(a, c))
        sd = np.sqrt(exp * (1 - exp) / T) + 1e-3
        assert np.all(np.abs(rates[b] - exp) < 5 * sd), (a, c, rates[b], exp)
        right, wrong = (0, 1) if a ^ c else (1, 0)
        assert rates[b, right] - rates[b, wrong] > 0.3      # the rate margin that classifies
    again = SFQEmulator(mode="error").run(art, {"in": xor_inputs(T)})
    np.testing.assert_array_equal(again.outputs["out"], tr.outputs["out"])     # seeded
    other = SFQEmulator(mode="error", seed=99).run(art, {"in": xor_inputs(T)})
    assert not np.array_equal(other.outputs["out"], tr.outputs["out"])


def test_cubalif_rejected_with_reason() -> None:
    g = xor_graph()
    nodes = dict(g.nodes)
    nodes["hid"] = nir.CubaLIF(tau_syn=np.full(2, 5e-3), tau_mem=np.full(2, 1e-2), r=np.ones(2),
                               v_leak=np.zeros(2), v_threshold=np.ones(2))
    bad = nir.NIRGraph(nodes=nodes, edges=g.edges, metadata=g.metadata)
    with pytest.raises(UnsupportedError) as exc:
        SFQBackend().lower(bad, get_board("sfq-rsfq"), CompileOptions())
    assert exc.value.node == "hid" and "CubaLIF" in str(exc.value)


def test_delay_node_lowers_to_dff_chain() -> None:
    """Input -> Delay(3 steps) -> Linear -> IF: the output is the input shifted by three steps."""
    nodes = {"in": nir.Input(np.array([2])), "d": nir.Delay(np.array([3 * DT, 1 * DT])),
             "fc": nir.Linear(np.eye(2)), "n": nir.IF(r=np.ones(2), v_threshold=np.full(2, 0.5)),
             "out": nir.Output(np.array([2]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "d"), ("d", "fc"), ("fc", "n"), ("n", "out")],
                     metadata={"spikeforge.dt": DT})
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions())
    nl = Netlist.from_json(art.files["code/netlist.json"])
    assert sum(c.type == "DFF" for c in nl.cells) == 4
    assert analyse(nl).ok
    rng = np.random.default_rng(1)
    x = (rng.random((12, 3, 2)) < 0.4).astype(np.float32)
    tr = SFQEmulator(mode="error").run(art, {"in": x})
    np.testing.assert_array_equal(tr.outputs["out"], refsim.simulate(g, {"in": x}).outputs["out"])


def digits_like(seed: int = 0) -> tuple[nir.NIRGraph, np.ndarray, np.ndarray]:
    """A small quantised classifier on sklearn's 8x8 digits (first 4 classes): ternary random features,
    integer read-out fitted by least squares, IF neurons with subtract reset, rate-coded inputs."""
    from sklearn.datasets import load_digits

    X, y = load_digits(n_class=4, return_X_y=True)
    X = X / 16.0
    rng = np.random.default_rng(seed)
    H, T = 24, 20
    W1 = rng.integers(-1, 2, size=(H, 64)).astype(np.float64)
    hid = np.clip(X @ W1.T / 3.0, 0, 1)                         # approx. hidden rates (threshold 3)
    Y = np.eye(4)[y]
    W2 = np.linalg.lstsq(np.c_[hid, np.ones(len(hid))], Y, rcond=None)[0].T
    W2 = np.clip(np.rint(W2[:, :H] / np.abs(W2[:, :H]).max() * 3), -3, 3)
    sub = {"spikeforge.reset": "subtract"}
    nodes = {"in": nir.Input(np.array([64])), "fc1": nir.Linear(W1),
             "h": nir.IF(r=np.ones(H), v_threshold=np.full(H, 3.0), metadata=sub),
             "fc2": nir.Linear(W2), "o": nir.IF(r=np.ones(4), v_threshold=np.full(4, 2.0), metadata=sub),
             "out": nir.Output(np.array([4]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")],
                     metadata={"spikeforge.dt": DT, "spikeforge.reset": "subtract"})
    idx = rng.choice(len(X), size=8, replace=False)
    x = (rng.random((T, 8, 64)) < X[idx][None] * 0.5).astype(np.float32)
    return g, x, y[idx]


def test_digits_like_compiles_reports_and_verifies(tmp_path) -> None:
    g, x, labels = digits_like()
    be = SFQBackend()
    art = be.lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=x.shape[0], extra={"sfq.capacity": 256}))
    rep = art.files["code/report.txt"]
    for needle in ("Josephson junctions", "total bias current", "static power", "latency", "with cooling",
                   "plumbing"):
        assert needle in rep
    assert art.meta["sta"]["violations"] == 0 and art.meta["jj"] > 1000
    art.save(tmp_path / "a")
    loaded = Artifact.load(tmp_path / "a")
    tr = be.emulator().run(loaded, {"in": x})
    ref = refsim.simulate(g, {"in": x})
    # integer weights and thresholds, capacity large enough: the SFQ fabric is exact
    np.testing.assert_array_equal(tr.outputs["out"], ref.outputs["out"])
    assert tr.meta["violation_count"] == 0
    res = verify(loaded, {"in": x}, labels, backend=be)
    assert res.passed, res.to_dict()
    assert res.metrics["prediction_agreement"] == 1.0 and res.metrics["mean_abs_count_diff_per_step"] == 0.0
    assert {c.name for c in res.checks} >= {"sfq static timing", "sfq emulated timing"}
    prof = be.cost_model().profile(loaded, tr)
    assert prof.energy_total > 0 and prof.latency_of("per_inference") > 0
    res = {i.component: i for i in prof.resources}
    assert res["josephson_junctions"].value == art.meta["jj"]
    assert res["energy_with_cooling"].value == pytest.approx(prof.energy_total * (1 + 400.0))
    assert all(i.sources for i in prof.energy)
    # with the board's capacity-8 loops the same model saturates: STA warns, the emulator counts saturations
    # per population (defined behaviour of the escape junction), not timing violations
    small = be.lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=x.shape[0]))
    assert json.loads(small.files["code/sta.json"])["summary"]["warnings"] > 0
    tr8 = be.emulator().run(small, {"in": x})
    assert tr8.meta["violation_count"] == 0 and tr8.meta["saturation_count"] > 0
    assert set(tr8.meta["saturations_by_population"]) <= {"h", "o"}


def test_ersfq_has_no_static_power_and_costs_less() -> None:
    g, x, _ = digits_like()
    opts = CompileOptions(timesteps=x.shape[0], extra={"sfq.capacity": 256})
    be = SFQBackend()
    profs = {}
    for board in ("sfq-rsfq", "sfq-ersfq"):
        art = be.lower(g, get_board(board), opts)
        profs[board] = be.cost_model().profile(art, be.emulator().run(art, {"in": x}))
    static = {b: next(i.value for i in p.energy if i.component == "static") for b, p in profs.items()}
    dyn = {b: next(i.value for i in p.energy if i.component == "dynamic") for b, p in profs.items()}
    assert static["sfq-ersfq"] == 0 and static["sfq-rsfq"] > 0
    assert dyn["sfq-ersfq"] == pytest.approx(2 * dyn["sfq-rsfq"])
    assert profs["sfq-ersfq"].energy_total < profs["sfq-rsfq"].energy_total


def test_netlist_json_schema_roundtrip_and_determinism() -> None:
    g = xor_graph()
    a = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=4))
    b = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=4))
    assert a.files == b.files and a.meta == b.meta
    assert a.arrays.keys() == b.arrays.keys() and all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)
    d = json.loads(a.files["code/netlist.json"])
    assert d["schema"] == "spikeforge.sfq.netlist/1"
    assert set(d) >= {"mode", "period_fs", "library", "cells", "wires", "inputs", "outputs", "clock"}
    nl = Netlist.from_dict(d)
    assert nl.to_json() == a.files["code/netlist.json"]
    for w in d["wires"]:
        assert len(w) == 5 and isinstance(w[4], int) and w[4] >= 0
    lib = d["library"]
    assert lib["MERGE"]["delay_fs"] == 9000 and lib["JTL"]["jj"] == 2 and lib["SPLIT"]["bias_uA"] == 525.0


def test_josim_deck_instantiates_every_cell() -> None:
    art = SFQBackend().lower(xor_graph(), get_board("sfq-rsfq"),
                             CompileOptions(timesteps=2, extra={"sfq.cell_library": "RSFQlib"}))
    deck = art.files["code/top.cir"]
    nl = Netlist.from_json(art.files["code/netlist.json"])
    assert ".include RSFQlib/LSmitll_MERGET.cir" in deck and ".tran" in deck and deck.rstrip().endswith(".end")
    assert ".include cells.cir" in deck and ".subckt SF_NEURON exc inh clk q" in art.files["code/cells.cir"]
    jtl_stages = sum(int(c.params.get("stages", 1)) for c in nl.cells if c.type == "JTL")
    n_ptl = sum(c.type == "PTL" for c in nl.cells)
    inst = [ln for ln in deck.splitlines() if ln.startswith("X")]
    assert len(inst) == len(nl.cells) - sum(c.type in ("JTL", "PTL") for c in nl.cells) + jtl_stages + 2 * n_ptl
    assert sum(ln.startswith(".print") for ln in deck.splitlines()) == 2


def test_bundled_digits_model_compiles_and_verifies_honestly() -> None:
    """The bundled snnTorch digits model (64-64-10 LIF, float weights) on capacity-8 loops: it compiles with
    clean static timing; quantisation to |w| <= 3 and loop overflow make it differ from the float model,
    which `verify` reports rather than hides."""
    from spikeforge import graph as G
    from spikeforge import models

    g = G.read(models.path("digits_snn.nir"))
    data = np.load(models.path("digits_inputs.npz"))
    x = data["input"][:, :3].astype(np.float32)
    be = SFQBackend()
    art = be.lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=x.shape[0]))
    assert art.meta["sta"]["violations"] == 0 and art.meta["jj"] > 10_000
    # merger/splitter/delay plumbing and the exact-leak units (24 bit slices x 30 JJ per LIF neuron) dominate
    assert art.meta["plumbing_fraction"] > 0.3 and art.meta["jj"] > art.meta["neurons"] * 24 * 30
    res = verify(art, {"input": x}, data["labels"][:3], backend=be)
    names = {c.name: c for c in res.checks}
    assert names["sfq static timing"].passed
    timing = names["sfq emulated timing"]
    assert timing.passed and "storage-loop saturations" in timing.detail and "violation(s)" in timing.detail
    assert 0 <= res.metrics["prediction_agreement"] <= 1 and res.metrics["board_output_total"] > 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), reset=st.sampled_from(["zero", "subtract"]), lif=st.booleans(),
       delay=st.booleans())
def test_random_integer_networks_match_reference_exactly(seed: int, reset: str, lif: bool, delay: bool) -> None:
    """Integer weights, integer(+1/2 for zero reset) thresholds: the clocked SFQ netlist is the reference
    simulator, spike for spike (loops large enough not to overflow)."""
    rng = np.random.default_rng(seed)
    n0, n1, n2 = (int(v) for v in rng.integers(2, 6, size=3))
    W1 = rng.integers(-2, 3, size=(n1, n0)).astype(float)
    W2 = rng.integers(-2, 3, size=(n2, n1)).astype(float)
    b1 = rng.integers(-1, 2, size=n1).astype(float)
    half = 0.0 if reset == "subtract" else 0.5
    th1 = rng.integers(1, 4, size=n1) + half
    th2 = rng.integers(1, 3, size=n2) + half

    def neuron(n: int, th: np.ndarray) -> nir.NIRNode:
        if lif:
            return nir.LIF(tau=np.full(n, DT), r=np.ones(n), v_leak=np.zeros(n), v_threshold=th)
        return nir.IF(r=np.ones(n), v_threshold=th)

    nodes = {"in": nir.Input(np.array([n0])), "fc1": nir.Affine(W1, b1), "h": neuron(n1, th1),
             "fc2": nir.Linear(W2), "o": neuron(n2, th2), "out": nir.Output(np.array([n2]))}
    edges = [("in", "fc1"), ("fc1", "h"), ("fc2", "o"), ("o", "out")]
    if delay:
        nodes["d"] = nir.Delay(rng.integers(0, 3, size=n1) * DT)
        edges += [("h", "d"), ("d", "fc2")]
    else:
        edges.append(("h", "fc2"))
    g = nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": DT, "spikeforge.reset": reset})
    art = SFQBackend().lower(g, get_board("sfq-ersfq"), CompileOptions(extra={"sfq.capacity": 1000}))
    assert art.meta["sta"]["violations"] == 0
    x = (rng.random((15, 2, n0)) < 0.5).astype(np.float32)
    tr = SFQEmulator(mode="error").run(art, {"in": x})
    ref = refsim.simulate(g, {"in": x})
    np.testing.assert_array_equal(tr.outputs["out"], ref.outputs["out"])
    np.testing.assert_array_equal(tr.counts["spikes"], ref.spikes)


def test_analog_input_is_sigma_delta_encoded() -> None:
    """ANN-converted graphs take analog inputs; the DC/SFQ front end turns a value in [0, 1] into pulses."""
    nodes = {"in": nir.Input(np.array([2]), metadata={"spikeforge.encoding": "analog current (constant each step)"}),
             "fc": nir.Linear(np.eye(2)), "n": nir.IF(r=np.ones(2), v_threshold=np.full(2, 0.5)),
             "out": nir.Output(np.array([2]))}
    g = nir.NIRGraph(nodes=nodes, edges=[("in", "fc"), ("fc", "n"), ("n", "out")], metadata={"spikeforge.dt": DT})
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions())
    assert any("sigma-delta" in n for n in art.meta["notes"])
    x = np.zeros((8, 1, 2), np.float32)
    x[:, 0, 0], x[:, 0, 1] = 0.25, 1.0
    out = SFQEmulator(mode="error").run(art, {"in": x}).outputs["out"][:, 0]
    np.testing.assert_array_equal(np.nonzero(out[:, 0])[0], [3, 7])       # running sum crosses 1 and 2
    assert out[:, 1].sum() == 8
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        SFQEmulator().run(art, {"in": -x})


def test_compiled_fanout_equals_event_per_cell() -> None:
    """The compiled fan-out shortcut changes speed only: outputs and per-cell operation counts are identical."""
    g, x, _ = digits_like(seed=2)
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=x.shape[0]))
    runs = []
    for fast in (True, False):
        em = SFQEmulator(mode="physical", fast=fast)
        tr = em.run(art, {"in": x[:, :3]})
        runs.append((tr, em.last_cell_ops))
    (a, ops_a), (b, ops_b) = runs
    np.testing.assert_array_equal(a.outputs["out"], b.outputs["out"])
    np.testing.assert_array_equal(ops_a, ops_b)
    assert a.meta["violations_by_kind"] == b.meta["violations_by_kind"] and a.meta["events"] == int(ops_a.sum())
    nl = Netlist.from_json(art.files["code/netlist.json"])
    jtl_ops = sum(int(ops_a[i]) for i, c in enumerate(nl.cells) if c.type in ("JTL", "PTL", "SPLIT"))
    assert jtl_ops > 0                      # pass-through cells are credited although never scheduled
