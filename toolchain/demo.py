"""`spikeforge demo`: every bundled model on every installed board, verified and profiled."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import models
from .artifact import Artifact
from .boardspec import list_boards
from .errors import SpikeforgeError
from .inputs import load_inputs
from .npzio import load_npz
from .progress import Steps
from .registry import backend_targets, get_backend
from .verify import verify

#: (model, board) -> why verification is expected to fail there. The demo shows these rows as findings
#: (the cost of that board's arithmetic); any other failing row makes `spikeforge demo` exit 1.
_SFQ_LOOPS = ("the board's default |w| <= 3 pulses and capacity-8 storage loops cost accuracy (the table above "
              "shows by how much): weights round coarsely and the loops saturate (counted per layer; defined "
              "escape-junction behaviour, not a timing fault: emulated timing is clean). With --set "
              "sfq.max_weight=15 --set sfq.capacity=64 the digits models pass verify (docs/sfq.md, docs/conformance.md)")
EXPECTED_FAILURES: dict[tuple[str, str], str] = {
    (model, board): _SFQ_LOOPS for model in ("digits_snn.nir", "digits_mlp.onnx") for board in ("sfq-rsfq", "sfq-ersfq")
}


def run_demo(board_names: list[str] | None = None, keep: Path | None = None, console=None,
             model_names: list[str] | None = None) -> list[dict[str, Any]]:
    installed = backend_targets()
    boards = [b for b in list_boards() if b.backend in installed]
    if board_names:
        unknown = set(board_names) - {b.name for b in boards}
        if unknown:
            raise SpikeforgeError(f"unknown or unavailable board(s) {sorted(unknown)}")
        boards = [b for b in boards if b.name in board_names]
    rows: list[dict[str, Any]] = []
    workdir = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="spikeforge-demo-"))
    jobs = [(m, i, b) for m, i in models.BUNDLED.items() if not model_names or m in model_names for b in boards]
    steps = Steps(len(jobs), console, "demo") if console is not None else None
    if steps is not None:
        steps.__enter__()
    try:
        for model_name, input_name, board in jobs:
            model_path = models.path(model_name)
            row: dict[str, Any] = {"model": model_name, "board": board.name}
            if steps is not None:
                steps.start(f"{model_name} on {board.name}")
            try:
                from .api import compile as compile_api

                # ANN models need calibration data for threshold balancing: the bundled inputs carry it
                art = compile_api(model_path, board, timesteps=25, calibration=load_npz(models.path(input_name)),
                                  warn=False)
                path = art.save(workdir / f"{Path(model_name).stem}-{board.name}")
                art = Artifact.load(path)
                inputs, labels = load_inputs(models.path(input_name), art.reference)
                res = verify(art, inputs, labels)
                if res.board_trace is None:
                    raise SpikeforgeError("; ".join(c.detail for c in res.checks if not c.passed))
                be = get_backend(art.backend)
                prof = be.cost_model().profile(art, res.board_trace)
                row.update({
                    "acc_float": res.metrics.get("accuracy_reference", float("nan")),
                    "acc_board": res.metrics.get("accuracy_board", float("nan")),
                    "agreement": res.metrics.get("prediction_agreement", float("nan")),  # absent: not evidence
                    "energy_J": prof.energy_total,
                    "latency_s": prof.latency_of("per_inference"),
                    "verified": res.passed,
                    "checks": [c.detail for c in res.checks if not c.passed],
                    "warnings": art.warnings,
                })
                if not res.passed:
                    row["expected_failure"] = EXPECTED_FAILURES.get((model_name, board.name))
            except SpikeforgeError as exc:
                row["error"] = str(exc)
            rows.append(row)
            if steps is not None:
                steps.advance()
    finally:
        if steps is not None:
            steps.__exit__(None, None, None)
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows


def unexpected_failures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that ran and failed verification without being a listed finding: `demo` exits 1 on these."""
    return [r for r in rows if not r.get("error") and not r["verified"] and not r.get("expected_failure")]
