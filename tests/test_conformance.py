"""The CI subset of the conformance matrix (`make conformance` runs all of it): real-tool models, real boards."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(conformance, tmp_path_factory):
    return conformance.build_models(tmp_path_factory.mktemp("conf"), ["torch_mlp_onnx", "nir_lif_norse"])


@pytest.mark.parametrize("model,board", [("torch_mlp_onnx", "cpu-reference"), ("nir_lif_norse", "loihi2")])
def test_cells_pass(conformance, models, model, board, tmp_path):
    cell = conformance.run_cell(models[model], board, tmp_path / "art")
    assert cell["status"] == "pass", cell
    assert cell["metrics"]["samples"] >= 1 and cell["metrics"]["reference_output_total"] > 0


def test_refusal_is_a_cell_with_its_reason(conformance, models, tmp_path):
    cell = conformance.run_cell(models["nir_lif_norse"], "lighton-opu", tmp_path / "art")
    assert cell["status"] == "refused" and cell["kind"] == "method" and "DFA" in cell["reason"]
    doc = conformance.render({"nir_lif_norse": models["nir_lif_norse"]}, [cell], ["lighton-opu"], 1.0)
    assert "refused: method [1]" in doc and "1. **nir_lif_norse / lighton-opu**" in doc


def test_make_conformance_writes_the_document():
    assert "benchmarks/conformance.py --doc docs/conformance.md" in (ROOT / "Makefile").read_text()
