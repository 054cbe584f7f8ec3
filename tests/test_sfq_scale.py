"""SFQ at scale: convolutions unrolled onto cells, analytic counts that match built netlists, a chip budget
that refuses with numbers, and designs too big for a netlist compiled to arrays and emulated per layer."""

from __future__ import annotations

import nir
import numpy as np
import pytest

from spikeforge import graph as G
from spikeforge import refsim
from spikeforge.backends.sfq import SFQBackend
from spikeforge.boards import get_board
from spikeforge.emulators.sfq import SFQEmulator
from spikeforge.errors import FitError
from spikeforge.interfaces import CompileOptions
from spikeforge.pipeline import compile_model

from .test_sfq import digits_like
from .test_sfq_leak import SHARED

needs_cnn = pytest.mark.skipif(not (SHARED / "models" / "cnn_sinabs.nir").is_file(), reason="shared models missing")


def conv_graph(seed: int = 0) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    W = rng.integers(-1, 2, size=(2, 1, 3, 3)).astype(float)
    nodes = {"in": nir.Input(np.array([1, 6, 6])),
             "c": nir.Conv2d(input_shape=(6, 6), weight=W, stride=1, padding=1, dilation=1, groups=1,
                             bias=np.zeros(2)),
             "n": nir.IF(r=np.ones((2, 6, 6)), v_threshold=np.full((2, 6, 6), 1.5)),
             "p": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
             "f": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0),
             "fc": nir.Linear(rng.integers(-1, 2, size=(3, 18)).astype(float)),
             "o": nir.IF(r=np.ones(3), v_threshold=np.full(3, 0.5)), "out": nir.Output(np.array([3]))}
    edges = [("in", "c"), ("c", "n"), ("n", "p"), ("p", "f"), ("f", "fc"), ("fc", "o"), ("o", "out")]
    return G.validate(nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": 1e-3}))


def test_conv_sumpool_lowered_exactly() -> None:
    g = conv_graph()
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=10, extra={"sfq.capacity": 64}))
    assert art.meta["sta"]["violations"] == 0
    x = (np.random.default_rng(2).random((10, 2, 1, 6, 6)) < 0.4).astype(np.float32)
    tr = SFQEmulator(mode="error").run(art, {"in": x}, probes=True)
    ref = refsim.simulate(g, {"in": x}, probes=True)
    np.testing.assert_array_equal(tr.outputs["out"], ref.outputs["out"])
    assert tr.outputs["out"].sum() > 0
    assert tr.states["n.s"].shape == (10, 2, 2, 6, 6)                     # probes in the NIR node's shape
    np.testing.assert_array_equal(tr.states["n.s"], ref.activity["n"])
    assert art.meta["budget"]["chips"] == 1 and art.meta["estimate"]["synapses"] > 0


@pytest.mark.parametrize("which", ["digits", "conv"])
def test_analytic_counts_match_built_netlist(which: str) -> None:
    g = digits_like()[0] if which == "digits" else conv_graph()
    art = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(extra={"sfq.capacity": 256}))
    est = art.meta["estimate"]["cells_by_type"]
    built = {t: d["cells"] for t, d in
             __import__("spikeforge.backends.sfq.netlist", fromlist=["Netlist"]).Netlist.from_json(
                 art.files["code/netlist.json"]).totals()["by_type"].items()}
    for t in ("IN", "OUT", "NEURON", "MERGE"):      # exact counts
        assert est[t] == built.get(t, 0), t
    assert abs(est["SPLIT"] - built["SPLIT"]) <= 0.02 * built["SPLIT"] + 2
    # junctions (delay lines and clock tree are estimated): within 25 % of the built netlist
    assert abs(art.meta["estimate"]["jj"] - art.meta["jj"]) <= 0.25 * art.meta["jj"]
    assert art.meta["estimate"]["period_fs"] == art.meta["period_fs"]


def test_budget_refusal_names_the_numbers() -> None:
    g = digits_like()[0]
    with pytest.raises(FitError) as e:
        SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(extra={"sfq.junction_budget": 100}))
    msg = str(e.value)
    assert "Josephson junctions" in msg and "chips of 100 JJ" in msg and "allows 64 chips" in msg
    assert "synapses" in msg and "MERGE" in msg


def test_large_design_compiles_to_arrays_and_emulates() -> None:
    """Above sfq.netlist_max_pulses no netlist is built: the array program runs, equal to the pulse engine
    on the same design with a netlist."""
    g, x, _ = digits_like()
    opts = {"sfq.capacity": 256}
    small = SFQBackend().lower(g, get_board("sfq-rsfq"), CompileOptions(timesteps=20, extra=opts))
    big = SFQBackend().lower(g, get_board("sfq-rsfq"),
                             CompileOptions(timesteps=20, extra={**opts, "sfq.netlist_max_pulses": 10}))
    assert big.meta["netlist"] == "not built" and "code/netlist.json" not in big.files
    assert "not built" in big.files["code/report.txt"]
    a = SFQEmulator().run(big, {"in": x})
    p = SFQEmulator(mode="error").run(small, {"in": x})
    assert a.meta["mode"] == "array" and p.meta["mode"] == "error"
    np.testing.assert_array_equal(a.outputs["out"], p.outputs["out"])
    be = SFQBackend()
    prof = be.cost_model().profile(big, a)
    assert prof.energy_total > 0 and prof.latency_of("per_step") == big.meta["period_fs"] * 1e-15
    checks = be.verify_extra(big, {"in": x})
    assert checks[0][0] == "sfq array emulation exact" and checks[0][1]


@needs_cnn
@pytest.mark.slow
def test_cnn_sinabs_compiles_with_cell_counts() -> None:
    art = compile_model(SHARED / "models" / "cnn_sinabs.nir", "sfq-rsfq", CompileOptions(dt=1e-3, timesteps=5))
    est = art.meta["estimate"]
    assert est["synapses"] > 300_000 and art.meta["budget"]["chips"] <= art.meta["budget"]["max_chips"]
    x = (np.random.default_rng(0).random((5, 2, 2, 34, 34)) < 0.1).astype(np.float32)
    tr = SFQEmulator().run(art, {"input": x})
    assert tr.outputs["output"].shape == (5, 2, 10)


@needs_cnn
@pytest.mark.slow
def test_cnn_sinabs_refused_on_small_chips_with_numbers() -> None:
    with pytest.raises(FitError, match=r"needs about [0-9,]+ Josephson junctions .* chips of 10,000 JJ.*allows 64"):
        compile_model(SHARED / "models" / "cnn_sinabs.nir", "sfq-rsfq",
                      CompileOptions(dt=1e-3, timesteps=5, extra={"sfq.junction_budget": 10_000}))
