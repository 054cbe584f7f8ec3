"""Benchmark results live outside the tree and the README's figures are rendered from them (issue 16)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run_all():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_render_rewrites_only_the_marked_block(tmp_path):
    run_all = _run_all()
    results = tmp_path / "results"
    results.mkdir()
    report = {"name": "startup", "notes": ["n"], "rows": [{"command": "boards", "import_s": {
        "min": 0.2, "median": 0.3, "max": 0.9, "n": 5}}], "targets": [
        {"what": "boards import", "measured": 0.7, "goal": 0.5, "unit": " s", "met": False, "higher_is_better": False},
        {"what": "spikes equal", "measured": 1.0, "goal": 1.0, "unit": "", "met": True, "higher_is_better": True}]}
    (results / "startup.json").write_text(json.dumps(report))
    (results / "not_a_report.json").write_text("{}")
    (results / "fig.png").write_bytes(b"png")
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text(f"intro 1.5x\n{run_all.BEGIN}\nold 12.8x\n{run_all.END}\noutro\n")
    run_all.render(results, root)
    readme = (root / "README.md").read_text()
    assert readme.startswith("intro 1.5x\n") and readme.endswith("\noutro\n") and "12.8x" not in readme
    assert "**MISSED**: boards import: 0.7 s (target <= 0.5 s)" in readme
    assert "met: spikes equal: 1 (target >= 1)" in readme
    doc = (root / "docs" / "benchmarks.md").read_text()
    assert "| command | import_s |" in doc and "0.2 / 0.3 / 0.9" in doc
    assert (root / "docs" / "fig.png").read_bytes() == b"png"


def test_no_benchmark_writes_into_the_tree():
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        text = script.read_text()
        assert not re.search(r"""["']results["']""", text), f"{script.name} writes into benchmarks/results"
        assert "benchmarks\" / \"results" not in text and "benchmarks/results" not in text, script.name


def test_readme_figures_come_from_the_generated_block():
    readme = (ROOT / "README.md").read_text()
    run_all = _run_all()
    assert readme.count(run_all.BEGIN) == 1 and readme.count(run_all.END) == 1
    outside = readme.split(run_all.BEGIN)[0] + readme.split(run_all.END)[1]
    assert "closing notes" not in readme
    # no measured speed ratios or energy/throughput figures are written by hand outside the block
    assert not re.search(r"\d+(\.\d+)?-\d+(\.\d+)?x\b|\d\.\d+x (as )?fast|\d M events/s", outside)
