"""Readable CLI output (issue 16): summarised arrays, tables that keep names whole, help with examples."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

import spikeforge as sf
from spikeforge.cli import main


def run(*args, columns: int = 80):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, env={"COLUMNS": str(columns)})


@pytest.mark.parametrize("board", ["cpu-reference", "loihi2", "spinn3"])
def test_inspect_of_the_bundled_digits_artifact_is_short(tmp_path, board):
    sf.compile(sf.bundled("digits_snn.nir"), board, output=tmp_path / "art", warn=False)
    r = run("inspect", tmp_path / "art")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert 10 < len(lines) < 60, r.output
    assert all(len(line) <= 80 for line in lines)
    assert "weight: float32 (64, 64)" in r.output  # summarised: dtype and shape, then the range
    js = run("inspect", tmp_path / "art", "--json")
    weight = __import__("json").loads(js.output)["graph"]["nodes"][1]["params"]["weight"]
    assert re.fullmatch(r"float32 \(64, 64\) \[-?[\d.]+, -?[\d.]+\](, nonzero \d+%)?", weight), weight
    assert not re.search(r"(-?\d+\.\d+,\s+){8}", r.output)  # no dumped value runs
    full = run("inspect", tmp_path / "art", "--full")
    assert full.exit_code == 0 and len(full.output.splitlines()) > 2 * len(lines)
    js = run("inspect", tmp_path / "art", "--json", "--full")
    weight = __import__("json").loads(js.output)["graph"]["nodes"][1]["params"]["weight"]
    assert np.asarray(weight).shape == (64, 64)  # --full keeps the values


def test_compile_prints_decisions_and_each_warning_once(tmp_path):
    r = CliRunner().invoke(main, ["compile", str(sf.bundled("digits_snn.nir")), "--board", "loihi2",
                                  "--bit-budget", "50", "-o", str(tmp_path / "a")], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "fc1 w2/a1" in r.output and "T 25" in r.output and "cores_used 2" in r.output
    warns = [line for line in r.output.splitlines() if line.startswith("warning:")]
    assert warns and len(warns) == len(set(warns))
    assert "UserWarning" not in r.output and "warnings.warn" not in r.output


def test_npy_input_is_a_clean_error(tmp_path):
    sf.compile(sf.bundled("digits_snn.nir"), "cpu-reference", output=tmp_path / "art", warn=False)
    np.save(tmp_path / "x.npy", np.zeros((5, 2, 64), np.float32))
    for cmd in ("verify", "emulate", "profile"):
        extra = ["-o", str(tmp_path / "t.npz")] if cmd == "emulate" else []
        r = run(cmd, tmp_path / "art", "--input", tmp_path / "x.npy", *extra)
        assert r.exit_code == 2, (cmd, r.output)
        assert "single .npy array" in r.output and "Traceback" not in r.output and "TypeError" not in r.output


def test_demo_exit_code_follows_unexpected_failures(monkeypatch):
    """A FAIL row that is not a listed finding makes `demo` exit 1; a listed finding or n/a does not."""
    import spikeforge.demo as demo_mod

    base = {"acc_float": 0.97, "acc_board": 0.8, "agreement": 0.8, "energy_J": 1e-6, "latency_s": 1e-3,
            "checks": ["accuracy drop"], "warnings": []}
    rows = [{"model": "digits_snn.nir", "board": "loihi2", **base, "verified": True},
            {"model": "digits_snn.nir", "board": "sfq-rsfq", **base, "verified": False,
             "expected_failure": "storage loops"},
            {"model": "digits_lsm.nir", "board": "spinn3", "error": "x: cannot map"}]
    monkeypatch.setattr(demo_mod, "run_demo", lambda *a, **k: list(rows))
    r = run("demo")
    assert r.exit_code == 0, r.output
    assert "finding: digits_snn.nir on sfq-rsfq" in r.output and "1 pass, 1 known findings, 0 unexpected" in r.output
    rows.append({"model": "digits_mlp.onnx", "board": "loihi2", **base, "verified": False})
    r = run("demo")
    assert r.exit_code == 1 and "FAIL: digits_mlp.onnx on loihi2" in r.output
    assert "│ digits_mlp.onnx │" in r.output and "…" not in r.output  # names kept whole at 80 columns
    assert demo_mod.EXPECTED_FAILURES[("digits_snn.nir", "sfq-rsfq")]


def _commands(group, prefix=()):
    import click

    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_has_an_example_and_every_option_help():
    missing = []
    for path, cmd in _commands(main):
        r = run(*path, "--help", columns=120)
        assert r.exit_code == 0, (path, r.output)
        assert "Example:\n    spikeforge " + " ".join(path) in r.output, path
        missing += [f"{' '.join(path)} {p.opts[0]}" for p in cmd.params
                    if getattr(p, "help", None) is None and p.param_type_name == "option"]
    assert not missing, missing
    assert "bundled inputs" not in run("verify", "--help").output  # no promise of a default that does not exist


def test_progress_when_piped_is_plain_periodic_lines():
    import io
    import time

    from rich.console import Console

    from spikeforge.progress import Steps, activity

    buf = io.StringIO()
    con = Console(file=buf, force_terminal=False, width=80)
    with activity("compiling m.nir", con, first=0.05, every=0.05):
        time.sleep(0.3)
    lines = buf.getvalue().splitlines()
    assert len(lines) >= 2 and all(re.fullmatch(r"compiling m\.nir \.\.\. \d+ s", x) for x in lines), lines
    assert "\x1b[" not in buf.getvalue()  # no terminal control codes in a log
    buf.truncate(0)
    buf.seek(0)
    with Steps(2, con) as steps:
        for name in ("a on b", "c on d"):
            steps.start(name)
            steps.advance()
    assert [x.split(" (")[0] for x in buf.getvalue().splitlines()] == ["[1/2] a on b", "[2/2] c on d"]


def test_spinnaker_compile_prints_each_warning_once_without_source_lines(tmp_path):
    """sPyNNaker lowering warns via Python warnings and records the same text: the CLI shows it once."""
    from spikeforge import graph as G

    from .test_api import _if_graph

    G.write(_if_graph(), tmp_path / "if.nir")
    res = __import__("subprocess").run(
        [__import__("sys").executable, "-m", "spikeforge.cli", "compile", str(tmp_path / "if.nir"), "--board", "spinn3",
         "-o", str(tmp_path / "a")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    warns = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert warns and len(warns) == len(set(warns))
    assert "UserWarning" not in res.stderr and "lower.py" not in res.stderr
    assert not any(w.split("warning: ", 1)[1].startswith("spinnaker: ") and
                   any(w.endswith(o.split("warning: ", 1)[1]) for o in warns if o != w) for w in warns)


def test_narrow_tables_fit_and_keep_every_citation(tmp_path):
    from spikeforge.boardspec import get_board

    r = run("boards", "show", "loihi2", columns=80)
    assert r.exit_code == 0 and all(len(x) <= 80 for x in r.output.splitlines())
    for c in get_board("loihi2").sections["energy"].values():
        assert c.source in " ".join(r.output.split())  # cited in full, as a footnote
    r = run("boards", columns=80)
    assert all(len(x) <= 80 for x in r.output.splitlines())
    for b in sf.boards():
        assert f"│ {b.name} " in r.output  # board names whole
