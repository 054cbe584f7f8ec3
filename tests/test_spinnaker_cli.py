"""The SpiNNaker backend through the CLI: compile / verify / profile the bundled digits SNN, and a model that
does not fit failing with one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import nir
import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge import graph as G
from spikeforge import registry
from spikeforge.cli import main

MODELS = Path(__file__).resolve().parents[1] / "toolchain" / "models"
BOARDS = Path(__file__).resolve().parents[1] / "boards"


@pytest.fixture(autouse=True)
def spinnaker_registered(monkeypatch):
    """Make the backend findable whether or not the package metadata registers it yet."""
    monkeypatch.setitem(registry.BUILTIN, "spinnaker", "spikeforge.backends.spinnaker:SpiNNakerBackend")
    registry.backend_targets.cache_clear()
    yield
    registry.backend_targets.cache_clear()


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.skipif(not (MODELS / "digits_snn.nir").exists(), reason="bundled digits model not present")
def test_digits_compile_verify_profile(tmp_path):
    art = tmp_path / "digits_spinn5"
    r = run("compile", MODELS / "digits_snn.nir", "--board", "spinn5", "-o", art)
    assert r.exit_code == 0, r.output
    assert (art / "code" / "network.py").exists() and (art / "code" / "network_data.npz").exists()
    r = run("verify", art, "--input", MODELS / "digits_inputs.npz", "--json")
    assert r.exit_code == 0, r.output
    r = run("profile", art, "--input", MODELS / "digits_inputs.npz", "--json")
    assert r.exit_code == 0, r.output
    prof = json.loads(r.output)
    res = {i["component"]: i for i in prof["resources"]}
    for key in ("cores", "chips", "max_routing_entries", "time_scale_factor"):
        assert key in res and res[key]["sources"]
    assert prof["energy_total_J"] > 0
    assert any(i["component"] == "per_inference" for i in prof["latency"])


def test_one_chip_board_does_not_fit(tmp_path):
    text = (BOARDS / "spinn3.toml").read_text().replace('name = "spinn3"', 'name = "spinn1chip"')
    text = text.replace("[limits.chips]\nvalue = 4", "[limits.chips]\nvalue = 1")
    board = tmp_path / "spinn1chip.toml"
    board.write_text(text)
    n = 5000
    g = nir.NIRGraph.from_list(
        nir.Input(np.array([10])), nir.Linear(np.full((n, 10), 0.2)),
        nir.LIF(tau=np.full(n, 0.01), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                v_reset=np.zeros(n)), nir.Output(np.array([n])))
    g.metadata = {"spikeforge.dt": 1e-3}
    model = tmp_path / "big.nir"
    G.write(g, model)
    r = CliRunner().invoke(main, ["compile", str(model), "--board", str(board), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2
    msg = r.output + (r.stderr if hasattr(r, "stderr") else "")
    assert "short by" in msg and "cores" in msg and "bigger board" in msg
    assert "Traceback" not in msg


def test_forced_neurons_per_core_exit_2(tmp_path):
    n = 3000
    g = nir.NIRGraph.from_list(
        nir.Input(np.array([10])), nir.Linear(np.full((n, 10), 0.2)),
        nir.LIF(tau=np.full(n, 0.01), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                v_reset=np.zeros(n)), nir.Output(np.array([n])))
    g.metadata = {"spikeforge.dt": 1e-3}
    model = tmp_path / "m.nir"
    G.write(g, model)
    r = CliRunner().invoke(main, ["compile", str(model), "--board", "spinn5", "-o", str(tmp_path / "o"),
                                  "--set", "spinnaker.neurons_per_core=4096"])
    assert r.exit_code == 2
    assert "DTCM" in r.output and "fewer neurons per core" in r.output


SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


@pytest.mark.skipif(not (SHARED / "cnn_sinabs.nir").exists(), reason="shared cnn_sinabs.nir not present")
def test_cnn_sinabs_default_compile_verifies(tmp_path):
    """Defaults alone (no --set) must give a program that verifies: IF leak, voltage scale, ring-buffer policy
    and time scale factor are chosen by the backend and reported in the artifact and by `inspect`."""
    art = tmp_path / "cnn"
    r = run("compile", SHARED / "cnn_sinabs.nir", "--board", "spinn5", "--dt", "0.001", "-o", art)
    assert r.exit_code == 0, r.output
    # sparse random N-MNIST-like events (2 polarities x 34 x 34), 2% per pixel and step: within the planning
    # rates (at 4% the conv cores can need time_scale_factor 2.1 > the planned 2.0, and verify says so).
    # Random inputs leave near-tied class scores: a 1e-4 weight jitter of the float model itself flips some
    # predictions (docs/spinnaker.md), so agreement is checked on this one fixed input; counts are checked too.
    x = (np.random.default_rng(1).random((100, 16, 2, 34, 34)) < 0.02).astype(np.float32)
    np.savez(tmp_path / "x.npz", input=x)
    r = run("verify", art, "--input", tmp_path / "x.npz", "--json")
    res = json.loads(r.output)
    assert r.exit_code == 0, r.output
    checks = {c["name"]: c["passed"] for c in res["checks"]}
    assert checks["agreement"] and checks["tick_budget"] and checks["ring_buffer_no_saturation"]
    ref_total, got_total = res["metrics"]["reference_output_total"], res["metrics"]["board_output_total"]
    assert ref_total > 50 and abs(got_total - ref_total) <= 0.1 * ref_total
    r = run("inspect", art, "--json")
    info = json.loads(r.output)
    auto = info["quantisation"]["automatic"]
    assert set(auto["if_neurons"]) == {"n_1", "n_3", "n_6", "n_10", "n_12"}
    for d in auto["if_neurons"].values():
        assert d["leak_per_step"] * 300 < 0.05 and d["max_current"] < 2 ** 14
    assert auto["time_scale_factor"]["chosen"] == info["time_scale_factor"] >= 1.0
    assert any(k.startswith("if_leak.") for k in info["summary"])
