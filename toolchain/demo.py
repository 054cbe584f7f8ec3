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
from .interfaces import CompileOptions
from .npzio import load_npz
from .pipeline import compile_model
from .registry import backend_targets, get_backend
from .verify import verify


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
    progress = None
    if console is not None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                            TimeElapsedColumn(), console=console, transient=True)
        progress.start()
        task = progress.add_task("demo", total=len(jobs))
    try:
        for model_name, input_name, board in jobs:
            model_path = models.path(model_name)
            row: dict[str, Any] = {"model": model_name, "board": board.name}
            if progress is not None:
                progress.update(task, description=f"{model_name} on {board.name}")
            try:
                opts = CompileOptions(timesteps=25)
                # ANN models need calibration data for threshold balancing: the bundled inputs carry it
                art = compile_model(model_path, board, opts, calibration=load_npz(models.path(input_name)))
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
                })
            except SpikeforgeError as exc:
                row["error"] = str(exc)
            rows.append(row)
            if progress is not None:
                progress.advance(task)
    finally:
        if progress is not None:
            progress.stop()
        if keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return rows
