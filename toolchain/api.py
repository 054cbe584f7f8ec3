"""The Python API: load, compile, emulate, verify and profile a model from a notebook or a script.

Why: researchers work in notebooks. Every CLI command is a thin layer over these functions, so what the
CLI does, Python can do, with the same validation and errors (`SpikeforgeError` subclasses). Compile
warnings are raised as `SpikeforgeWarning` (each once) and kept on the artifact (`Artifact.warnings`).

Example::

    import spikeforge as sf

    art = sf.compile(sf.bundled("digits_snn.nir"), board="loihi2", bit_budget=100)
    art                                   # board, passes' decisions, mapping, warnings
    res = sf.verify(art, sf.bundled("digits_inputs.npz"))
    res.passed, res.metrics["prediction_agreement"]
    sf.profile(art, sf.bundled("digits_inputs.npz")).energy_total   # J per inference
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import nir
import numpy as np

from .artifact import Artifact
from .boardspec import Board
from .errors import SpikeforgeError
from .interfaces import CompileOptions, Profile, Trace
from .verify import VerifyResult

__all__ = ["SpikeforgeWarning", "Artifact", "load", "compile", "emulate", "verify", "profile", "boards",
           "bundled", "parse_set", "sweep", "report"]

#: a model argument: a file path or an NIR graph already in memory
ModelLike = str | os.PathLike | nir.NIRGraph
#: an input argument: an .npz path, a dict {input node: (T, B, ...) array}, or one array for one input
InputsLike = str | os.PathLike | dict[str, np.ndarray] | np.ndarray


class SpikeforgeWarning(UserWarning):
    """A compile decision that changes or may change behaviour (a leak rounded, a weight clipped ...)."""


def bundled(name: str) -> Path:
    """Path of a bundled example file: digits_snn.nir, digits_mlp.onnx, digits_lsm.nir, digits_inputs.npz."""
    from . import models

    try:
        return models.path(name)
    except FileNotFoundError:
        raise SpikeforgeError(f"no bundled file '{name}'; bundled: {', '.join(sorted(models.BUNDLED))}, "
                              "digits_inputs.npz") from None


def load(model: str | os.PathLike, *, dt: float | None = None, timesteps: int | None = None,
         calibration: InputsLike | None = None, trust: bool = False, model_class: str | None = None) -> nir.NIRGraph:
    """Read a model file (.nir, .onnx, .pt/.pt2/state_dict, Brian2 .py) into a validated flat NIR graph."""
    from .pipeline import load as load_graph

    return load_graph(model, dt=dt, timesteps=timesteps, calibration=_calibration(calibration),
                      trust=trust or None, model_class=model_class)


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`--set key=value` strings -> {key: value}; values are JSON where they parse (7, true, [1,2])."""
    extras: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpikeforgeError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            extras[key] = json.loads(value)
        except json.JSONDecodeError:
            extras[key] = value
    return extras


def compile(model: ModelLike, board: str | Board, *, output: str | os.PathLike | None = None,
            bit_budget: float | None = None, prune: float | None = None, prune_method: str = "magnitude",
            timesteps: int | None = None, dt: float | None = None, delay_policy: str = "auto",
            calibration: InputsLike | None = None, seed: int = 0, trust: bool = False,
            model_class: str | None = None, input_shape: tuple[int, ...] | None = None, lenient: bool = False,
            options: dict[str, Any] | None = None, warn: bool = True) -> Artifact:
    """Compile a model for a board; save it to `output` when given.

    `options` are the backend's `--set` keys (e.g. ``{"sfq.capacity": 64}``). `calibration` is a path or
    arrays in the one calibration format (`spikeforge.calibration`); `input_shape` is the per-sample input
    shape of a state_dict model; `lenient` repairs unambiguous shape mismatches in foreign NIR files.
    With `warn` (default), each compile warning is raised once as a `SpikeforgeWarning`; either way they
    stay on `artifact.warnings`.
    """
    from .pipeline import compile_model

    if prune is not None and not (0 <= prune < 1):
        raise SpikeforgeError(f"prune must be in [0, 1), got {prune}", field="prune")
    if bit_budget is not None and bit_budget <= 0:
        raise SpikeforgeError(f"bit budget must be > 0, got {bit_budget}", field="bit_budget")
    extra: dict[str, Any] = {"prune_method": prune_method, **(options or {})}
    opts = CompileOptions(dt=dt, timesteps=timesteps, bit_budget=bit_budget, prune=prune,
                          delay_policy=delay_policy, seed=seed, extra=extra)
    frontend: dict[str, Any] = {"trust": trust or None, "model_class": model_class, "input_shape": input_shape,
                                "lenient": lenient or None} if not isinstance(model, nir.NIRGraph) else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        art = compile_model(model, board, opts, calibration=_calibration(calibration), **frontend)
    # spikeforge's own Python warnings (a backend's, a frontend's) join the recorded ones, deduplicated, so
    # each is shown exactly once; third-party warnings (torch, onnx ...) are passed on untouched.
    ours = {Path(m.__file__).parent for name, m in list(sys.modules.items())
            if name.startswith("spikeforge") and getattr(m, "__file__", None)}
    recorded = art.meta.setdefault("warnings", [])
    for w in caught:
        if not issubclass(w.category, UserWarning) or Path(w.filename).parent not in ours:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            continue
        text = str(w.message)
        if text not in recorded:
            recorded.append(text)
    art.meta["warnings"] = list(dict.fromkeys(recorded))
    if output is not None:
        art.save(output)
    if warn:
        for text in art.warnings:
            warnings.warn(SpikeforgeWarning(text), stacklevel=2)
    return art


def _open_artifact(artifact: Artifact | str | os.PathLike) -> Artifact:
    return artifact if isinstance(artifact, Artifact) else Artifact.load(artifact)


def _calibration(data: InputsLike | None) -> Any:
    """A calibration path is read in the one calibration format (errors name the file and the shape)."""
    from .calibration import Calibration, read_calibration

    if data is None or isinstance(data, (dict, np.ndarray, Calibration)):
        return data

    p = Path(data)
    if not p.exists():
        raise SpikeforgeError("calibration file not found", file=str(p))
    return read_calibration(p)


def inputs_of(data: InputsLike, graph: nir.NIRGraph, *, batch_first: bool = False,
              ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Checked inputs and optional labels from a path, a dict of arrays or a single array.

    `batch_first` reads (batch, time, ...) arrays; a likely mix-up is raised as a `SpikeforgeWarning`.
    """
    from .inputs import check_inputs, load_inputs

    notes: list[str] = []
    if isinstance(data, np.ndarray):
        out = check_inputs({"input": data}, graph, batch_first=batch_first, notes=notes)
    elif isinstance(data, dict):
        out = check_inputs(dict(data), graph, batch_first=batch_first, notes=notes)
    else:
        out = load_inputs(data, graph, batch_first=batch_first, notes=notes)
    for n in notes:
        warnings.warn(SpikeforgeWarning(n), stacklevel=3)
    return out


def emulate(artifact: Artifact | str | os.PathLike, inputs: InputsLike, *, probes: bool = False,
            batch_first: bool = False) -> Trace:
    """Run the compiled program on the board's emulator; `probes` also records hidden-layer state."""
    from .registry import get_backend

    art = _open_artifact(artifact)
    x, _ = inputs_of(inputs, art.reference, batch_first=batch_first)
    return get_backend(art.backend).emulator().run(art, x, probes=probes)


def verify(artifact: Artifact | str | os.PathLike, inputs: InputsLike, labels: np.ndarray | None = None, *,
           tolerance: float | None = None, batch_first: bool = False, **gates: Any) -> VerifyResult:
    """Compare the emulated board with the float reference; `.passed`, `.checks`, `.metrics`.

    `gates` are `spikeforge.gates.Gates` fields (max_accuracy_drop, min_agreement, max_count_error,
    min_spike_match, timing_tolerance, max_analog_error, allow_silent, layers, conditioning); `tolerance` is an
    alias of max_accuracy_drop, the largest accepted accuracy drop (fraction: 0.01 = 1 point). Labels come from the input file's `labels`
    array unless given.
    """
    from dataclasses import fields

    from .gates import Gates
    from .verify import verify as run_verify

    known = {f.name for f in fields(Gates)}
    unknown = sorted(set(gates) - known)
    if unknown:
        raise SpikeforgeError(f"unknown verify gate(s) {unknown}; known: {sorted(known)}")
    if tolerance is not None:
        if not 0 <= tolerance <= 1:
            raise SpikeforgeError(f"tolerance must be in [0, 1], got {tolerance}", field="tolerance")
        gates["max_accuracy_drop"] = tolerance
    art = _open_artifact(artifact)
    x, file_labels = inputs_of(inputs, art.reference, batch_first=batch_first)
    return run_verify(art, x, labels if labels is not None else file_labels, **gates)


def profile(artifact: Artifact | str | os.PathLike, inputs: InputsLike | None = None, *,
            timesteps: int | None = None, batch_first: bool = False) -> Profile:
    """Energy per inference, latency and resources, each figure with its formula and sources.

    Without inputs the activity comes from Bernoulli(0.1) spikes (noted in `profile.notes`). The trace the
    figures come from is kept as `profile.trace`.
    """
    from .inputs import synthetic_inputs
    from .registry import get_backend

    art = _open_artifact(artifact)
    be = get_backend(art.backend)
    if inputs is not None:
        x, _ = inputs_of(inputs, art.reference, batch_first=batch_first)
        note = f"activity from {inputs}" if isinstance(inputs, (str, os.PathLike)) else "activity from the given inputs"
    else:
        steps = int(timesteps or art.options.timesteps or art.reference.metadata.get("spikeforge.timesteps", 25))
        x = synthetic_inputs(art.reference, timesteps=steps)
        note = f"activity from synthetic Bernoulli(0.1) input, {steps} steps, batch 1 (pass an input for real data)"
    trace = be.emulator().run(art, x)
    prof = be.cost_model().profile(art, trace)
    prof.notes.insert(0, note)
    prof.trace = trace  # type: ignore[attr-defined]  # kept for callers that want the activity too
    return prof


class BoardList(list):
    """The boards as a list of `Board`, shown as a table in a notebook."""

    def __repr__(self) -> str:
        return "\n".join(f"{b.name:<20} {b.backend:<10} {b.description}" for b in self)

    def _repr_html_(self) -> str:
        from .display import _html_table

        return _html_table("spikeforge boards", ["board", "backend", "description"],
                           [[b.name, b.backend, b.description] for b in self])


def boards(installed_only: bool = False) -> BoardList:
    """Every board spec (name, backend, constants with sources); `installed_only` keeps runnable ones."""
    from .boardspec import list_boards
    from .registry import backend_targets

    names = backend_targets()
    return BoardList(b for b in list_boards() if not installed_only or b.backend in names)


def sweep(spec: str | os.PathLike | Any, output: str | os.PathLike, *, workers: int | None = None,
          ray: str | None = None) -> Any:
    """Run a design-space sweep (a sweep TOML path or a `spikeforge.sweep.SweepSpec`) into `output`.

    Finished points in `output` are skipped; returns a `SweepResult` (records with Pareto marks).
    """
    from .sweep import SweepSpec, load_spec, run_sweep

    s = spec if isinstance(spec, SweepSpec) else load_spec(spec)
    return run_sweep(s, output, workers=workers, ray=ray)


def report(target: str | os.PathLike, output: str | os.PathLike, *, inputs: str | os.PathLike | None = None,
           samples: int = 3) -> Path:
    """Write a self-contained HTML report for an artifact directory or a sweep results directory."""
    from .atomic import atomic_file
    from .report import artifact_report, sweep_report

    t = Path(target)
    if (t / "results.jsonl").exists() or (t / "results.json").exists():
        html = sweep_report(t)
    elif (t / "manifest.json").exists():
        html = artifact_report(t, inputs, samples=samples)
    else:
        raise SpikeforgeError("neither an artifact directory (manifest.json) nor a sweep directory (results.jsonl)",
                              file=str(t))
    with atomic_file(output, suffix=".html") as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return Path(output)
