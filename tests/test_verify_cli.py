"""verify as a CI gate: flags, the project TOML, JSON/JUnit reports and golden baselines."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from click.testing import CliRunner

from spikeforge import graph as G
from spikeforge.cli import main
from spikeforge.npzio import save_npz

from .verify_helpers import LIF_NORSE, chain, lif_norse_drive


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def compiled(tmp_path):
    G.write(chain([6, 12, 4]), tmp_path / "m.nir")
    assert run("compile", tmp_path / "m.nir", "--board", "cpu-reference", "-o", tmp_path / "art").exit_code == 0
    rng = np.random.default_rng(0)
    save_npz(tmp_path / "x.npz", {"input": (rng.random((50, 6, 6)) < 0.3).astype(np.uint8),
                                  "labels": rng.integers(0, 4, 6)})
    return tmp_path


def test_baseline_round_trip_and_a_deliberate_change_fails(compiled):
    t = compiled
    r = run("verify", t / "art", "--input", t / "x.npz", "--save-baseline", t / "golden.npz")
    assert r.exit_code == 0, r.output
    r = run("verify", t / "art", "--input", t / "x.npz", "--baseline", t / "golden.npz", "--json")
    assert r.exit_code == 0, r.output
    names = [c["name"] for c in json.loads(r.output)["checks"]]
    assert "baseline:trace:output" in names and "baseline:output.spikes_board" in names
    # a deliberate change: the output layer's threshold raised by 10 %, recompiled
    g = chain([6, 12, 4])
    g.nodes["lif2"].v_threshold = g.nodes["lif2"].v_threshold * 1.1
    G.write(g, t / "m2.nir")
    r = run("compile", t / "m2.nir", "--board", "cpu-reference", "-o", t / "art2")
    assert r.exit_code == 0, r.output
    r = run("verify", t / "art2", "--input", t / "x.npz", "--baseline", t / "golden.npz", "--json",
            "--max-count-error", 10, "--min-spike-match", 0, "--min-agreement", 0, "--max-accuracy-drop", 1)
    assert r.exit_code == 1, r.output
    failed = [c["name"] for c in json.loads(r.output)["checks"] if not c["passed"]]
    assert failed and all(n.startswith("baseline:") for n in failed), failed
    # a baseline recorded on other inputs is refused with exit 2, naming the file
    save_npz(t / "y.npz", {"input": np.ones((50, 6, 6), np.uint8)})
    r = run("verify", t / "art", "--input", t / "y.npz", "--baseline", t / "golden.npz")
    assert r.exit_code == 2 and "different inputs" in r.output


def test_project_toml_sets_gates_and_flags_override_it(compiled):
    t = compiled
    (t / "spikeforge.toml").write_text("[verify]\nmin_agreement = 1.01\n")
    r = run("verify", t / "art", "--input", t / "x.npz", "--config", t / "spikeforge.toml")
    assert r.exit_code == 2 and "min_agreement" in r.output  # validated, one line
    (t / "spikeforge.toml").write_text("[verify]\nmax_count_error = 0.0\nmin_spike_match = 1.0\n"
                                       "timing_tolerance = 0\nmax_acuracy_drop = 0.1\n")
    r = run("verify", t / "art", "--input", t / "x.npz", "--config", t / "spikeforge.toml")
    assert r.exit_code == 2 and "max_acuracy_drop" in r.output  # a misspelled gate is an error
    (t / "pyproject.toml").write_text("[tool.spikeforge.verify]\nmin_agreement = 0.95\ntiming_tolerance = 2\n")
    d = json.loads(run("verify", t / "art", "--input", t / "x.npz", "--config", t / "pyproject.toml",
                       "--json").output)
    assert d["gates"]["min_agreement"] == 0.95 and d["gates"]["timing_tolerance"] == 2
    d = json.loads(run("verify", t / "art", "--input", t / "x.npz", "--config", t / "pyproject.toml",
                       "--timing-tolerance", 0, "--tolerance", 0.2, "--json").output)
    assert d["gates"]["timing_tolerance"] == 0 and d["gates"]["max_accuracy_drop"] == 0.2


def test_json_has_every_metric_and_junit_one_testcase_per_check_and_output(compiled):
    t = compiled
    r = run("verify", t / "art", "--input", t / "x.npz", "--json", "--junit", t / "j.xml")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for key in ("count_error_abs", "count_error_rel", "spike_match", "first_spike_diff_mean", "van_rossum",
                "step_identity", "latency_steps", "best_shift"):
        assert key in d["outputs"]["output"] and f"output.{key}" in d["metrics"]
    assert {"prediction_agreement", "argmax_tie", "accuracy_board", "stage.board.loss"} <= set(d["metrics"])
    cases = [c.get("name") for c in ET.parse(t / "j.xml").getroot().iter("testcase")]
    assert cases == [c["name"] for c in d["checks"]] and "output:output" in cases


def test_sfq_lif_norse_through_the_cli_is_not_a_silent_pass(tmp_path):
    """The issue's opening case: SFQ fired 11 times where the float model fires 4, and verify said exit 0."""
    art = tmp_path / "sfq"
    r = run("compile", LIF_NORSE, "--board", "sfq-rsfq", "--dt", 1e-4, "-o", art)
    if r.exit_code == 2:  # the SFQ backend refuses the leak it cannot represent: acceptable
        return
    save_npz(tmp_path / "x.npz", {"input": lif_norse_drive()})
    r = run("verify", art, "--input", tmp_path / "x.npz", "--json")
    d = json.loads(r.output)
    if r.exit_code == 0:  # fixed: then the board fires the published 4 spikes
        assert d["outputs"]["output"]["spikes_board"] == 4 and d["outputs"]["output"]["spike_match"] == 1.0
    else:
        assert r.exit_code == 1
        m = d["outputs"]["output"]
        assert m["spikes_board"] != 4 or m["spike_match"] < 0.9
        assert "count error" in next(c["detail"] for c in d["checks"] if c["name"] == "output:output")
