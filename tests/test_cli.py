"""CLI behaviour as a new user meets it: happy path, and bad inputs giving one line and exit code 2."""

from __future__ import annotations

import json
import subprocess
import sys

import nir
import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge import graph as G
from spikeforge import models
from spikeforge.cli import main
from spikeforge.npzio import save_npz

from .conftest import lif_mlp


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def run_proc(*args):
    return subprocess.run([sys.executable, "-m", "spikeforge.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "x.npz"
    save_npz(p, {"input": (rng.random((40, 8, 4)) < 0.6).astype(np.uint8), "labels": rng.integers(0, 3, 8)})
    return p


def test_compile_emulate_verify_profile(tmp_path, model, inputs):
    r = run("compile", model, "--board", "cpu-reference", "-o", tmp_path / "art", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["board"] == "cpu-reference"
    r = run("emulate", tmp_path / "art", "--input", inputs, "-o", tmp_path / "y.npz", "--json")
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "y.npz") as y:
        assert y["output/output"].shape == (40, 8, 3)
    r = run("verify", tmp_path / "art", "--input", inputs, "--json", "--junit", tmp_path / "j.xml")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["passed"] is True
    assert "<testsuite" in (tmp_path / "j.xml").read_text()
    r = run("profile", tmp_path / "art", "--input", inputs, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["energy_total_J"] > 0


def test_verify_refuses_silent_outputs(tmp_path, model):
    p = tmp_path / "zeros.npz"
    save_npz(p, {"input": np.zeros((10, 2, 4), np.float32)})
    run("compile", model, "--board", "cpu-reference", "-o", tmp_path / "art")
    r = run("verify", tmp_path / "art", "--input", p)
    assert r.exit_code == 1 and "no output activity" in r.output
    assert run("verify", tmp_path / "art", "--input", p, "--allow-silent").exit_code == 0


def test_verify_fails_on_zero_samples(tmp_path, model):
    p = tmp_path / "empty.npz"
    save_npz(p, {"input": np.zeros((10, 0, 4), np.float32)})
    run("compile", model, "--board", "cpu-reference", "-o", tmp_path / "art")
    r = run("verify", tmp_path / "art", "--input", p, "--json")
    assert r.exit_code == 1 and json.loads(r.output)["passed"] is False


def _bad_graph(tmp_path, field, value):
    g = lif_mlp()
    arr = np.array(getattr(g.nodes["lif1"], field), dtype=np.float64)
    arr[:] = value
    setattr(g.nodes["lif1"], field, arr)
    p = tmp_path / f"bad_{field}.nir"
    nir.write(str(p), g)
    return p


@pytest.mark.parametrize("case", ["missing", "corrupt", "tau0", "nan", "board", "shape"])
def test_bad_input_one_line_exit_2_no_partial_output(tmp_path, model, case):
    out = tmp_path / "out"
    if case == "missing":
        args = ["compile", tmp_path / "nope.nir", "--board", "cpu-reference", "-o", out]
    elif case == "corrupt":
        bad = tmp_path / "bad.nir"
        bad.write_bytes(b"\x89HDF garbage")
        args = ["compile", bad, "--board", "cpu-reference", "-o", out]
    elif case == "tau0":
        args = ["compile", _bad_graph(tmp_path, "tau", 0.0), "--board", "cpu-reference", "-o", out]
    elif case == "nan":
        args = ["compile", _bad_graph(tmp_path, "v_threshold", np.nan), "--board", "cpu-reference", "-o", out]
    elif case == "board":
        args = ["compile", model, "--board", "no-such-chip", "-o", out]
    else:
        run("compile", model, "--board", "cpu-reference", "-o", tmp_path / "art")
        x = tmp_path / "x.npz"
        save_npz(x, {"input": np.zeros((10, 2, 5), np.float32)})
        args = ["verify", tmp_path / "art", "--input", x]
    proc = run_proc(*args)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and lines[0].startswith("spikeforge: error:")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_error_names_node_and_field(tmp_path):
    proc = run_proc("compile", _bad_graph(tmp_path, "tau", 0.0), "--board", "cpu-reference", "-o", tmp_path / "o")
    assert "node 'lif1'" in proc.stderr and "field 'tau'" in proc.stderr and "found 0" in proc.stderr


def test_boards_and_show_and_inspect(tmp_path, model):
    r = run("boards", "--json")
    assert any(b["name"] == "cpu-reference" for b in json.loads(r.output))
    r = run("boards", "show", "cpu-reference", "--json")
    assert "energy" in json.loads(r.output)["constants"]
    assert run_proc("boards", "show", "nope").returncode == 2
    r = run("inspect", model, "--json")
    info = json.loads(r.output)
    assert [n["type"] for n in info["graph"]["nodes"]][:3] == ["Input", "Affine", "LIF"]


def test_convert_nir_roundtrip(tmp_path, model):
    r = run("convert", model, "-o", tmp_path / "c.nir", "--dt", "0.002")
    assert r.exit_code == 0, r.output
    assert float(G.read(tmp_path / "c.nir").metadata["spikeforge.dt"]) == 0.002


def test_demo_reference_board_on_bundled_snn():
    from spikeforge.demo import run_demo

    rows = run_demo(["cpu-reference"], model_names=["digits_snn.nir"])
    assert len(rows) == 1 and rows[0]["verified"]
    assert rows[0]["acc_float"] > 0.9 and rows[0]["acc_board"] == rows[0]["acc_float"]
    assert models.path("digits_inputs.npz").exists()


def test_verify_gate_catches_aggressive_quantisation(tmp_path):
    """The CI gate: the float model vs its quantised program on the bundled digits SNN."""
    model, data = models.path("digits_snn.nir"), models.path("digits_inputs.npz")
    results = {}
    for budget in (50, 200):
        art = tmp_path / f"q{budget}"
        r = run("compile", model, "--board", "cpu-reference", "--bit-budget", budget, "--calibration", data, "-o", art)
        assert r.exit_code == 0, r.output
        r = run("verify", art, "--input", data, "--json")
        results[budget] = (r.exit_code, json.loads(r.output))
    assert results[200][0] == 0 and results[200][1]["metrics"]["accuracy_board"] >= 0.96
    assert results[50][0] == 1
    failed = [c["name"] for c in results[50][1]["checks"] if not c["passed"]]
    assert "accuracy" in failed


def test_unanticipated_option_values_still_give_one_line_exit_2(tmp_path, model):
    """A bad --set value reaching backend code (int('abc')) must not end in a traceback."""
    proc = run_proc("compile", models.path("digits_snn.nir"), "--board", "sfq-rsfq", "-o", tmp_path / "o",
                    "--set", "sfq.capacity=xyz")
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "sfq.capacity" in lines[0] and "expected int" in lines[0]
    assert not (tmp_path / "o").exists()
    assert run_proc("compile", model, "--board", "cpu-reference", "-o", tmp_path / "o2", "-T", "0").returncode == 2


def test_empty_time_axis_and_directory_outputs_are_clear_errors(tmp_path, model):
    run("compile", model, "--board", "cpu-reference", "-o", tmp_path / "art")
    empty = tmp_path / "empty.npz"
    save_npz(empty, {"input": np.zeros((0, 2, 4), np.float32)})
    proc = run_proc("verify", tmp_path / "art", "--input", empty)
    assert proc.returncode == 2 and "no time steps" in proc.stderr
    (tmp_path / "adir").mkdir()
    x = tmp_path / "x.npz"
    save_npz(x, {"input": np.ones((5, 2, 4), np.float32)})
    proc = run_proc("emulate", tmp_path / "art", "--input", x, "-o", tmp_path / "adir")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = run_proc("compile", model, "--board", "cpu-reference", "-o", afile)
    assert proc.returncode == 2 and "is a file" in proc.stderr
