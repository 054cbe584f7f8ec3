"""spikeforge report: one self-contained HTML file for an artifact (with verify) and for a sweep;
user strings stay text; a real browser renders the plots (headless Chromium, when installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from spikeforge import models
from spikeforge.cli import main
from spikeforge.sweep import SweepSpec, run_sweep


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("report")
    runner = CliRunner()
    art = tmp / "art"
    r = runner.invoke(main, ["compile", str(models.path("digits_snn.nir")), "-b", "loihi2", "-o", str(art),
                             "--bit-budget", "100"])
    assert r.exit_code == 0, r.output
    art_html = tmp / "art.html"
    r = runner.invoke(main, ["report", str(art), "-i", str(models.path("digits_inputs.npz")), "-o", str(art_html)])
    assert r.exit_code == 0, r.output
    spec = SweepSpec(model=models.path("digits_snn.nir"), inputs=models.path("digits_inputs.npz"),
                     boards=["cpu-reference", "loihi2"], grid={"bit_budget": [0, 100]}, max_samples=16)
    run_sweep(spec, tmp / "sweep", workers=1)
    sweep_html = tmp / "sweep.html"
    r = runner.invoke(main, ["report", str(tmp / "sweep"), "-o", str(sweep_html)])
    assert r.exit_code == 0, r.output
    return {"artifact": art_html, "sweep": sweep_html, "dir": tmp}


def test_artifact_report_sections(reports):
    text = reports["artifact"].read_text()
    for needle in ("Model graph", "Resources and quantisation", "Verification: board vs float model",
                   "spike rasters", "Energy and latency", "Davies"):  # a cited source appears in the table
        assert needle in text, needle
    assert "<script src=\"http" not in text  # plotly.js is inlined: no network needed to view it
    assert text.count("plotly-graph-div") >= 3


def test_sweep_report_sections(reports):
    text = reports["sweep"].read_text()
    assert "Accuracy vs energy" in text and "Accuracy vs latency" in text and "Overall Pareto set" in text
    assert "Pareto per board" in text  # the board / front filter
    assert "<script src=\"http" not in text


def test_report_refuses_other_directories(tmp_path):
    r = CliRunner().invoke(main, ["report", str(tmp_path), "-o", str(tmp_path / "x.html")])
    assert r.exit_code == 2 and "neither an artifact" in r.output


def test_hostile_labels_are_escaped(tmp_path):
    from spikeforge.report import _Doc

    d = _Doc("<script>alert(1)</script>")
    d.table(["h"], [["<img src=x onerror=alert(1)>"]])
    html = d.render()
    assert "<img src=x" not in html and "&lt;img src=x" in html and "<script>alert" not in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="Debian's chromium is not installed (make test installs it as root "
                                                 "via tools/ensure_chromium.sh; it could not here)")
@pytest.mark.parametrize("kind", ["artifact", "sweep"])
def test_report_renders_in_a_real_browser(reports, kind):
    page = reports[kind]
    shot = reports["dir"] / f"{kind}.png"
    base = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            "--virtual-time-budget=10000", f"--user-data-dir={reports['dir'] / ('profile-' + kind)}"]
    dom = subprocess.run([*base, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    n_plots = dom.stdout.count('class="plot-container plotly"')
    expected = 3 if kind == "artifact" else 2
    assert n_plots >= expected, f"{n_plots} plots rendered"
    assert "main-svg" in dom.stdout
    # Chromium logs every console message (log, warning, error, uncaught exception) as INFO:CONSOLE;
    # the report writes none, so any such line is a failure
    console = [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, console
    snap = subprocess.run([*base, "--window-size=1280,2000", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert snap.returncode == 0 and shot.stat().st_size > 20_000, snap.stderr[-2000:]
