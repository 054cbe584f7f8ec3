"""The one data flow: model file -> NIR -> passes -> backend lowering -> artifact.

The CLI and the demo call these functions; so can users from Python.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import nir

from . import graph as G
from .artifact import Artifact, hash_file
from .boardspec import Board
from .calibration import for_passes, read_calibration
from .errors import BoardError, SpikeforgeError
from .guards import dt_warnings
from .interfaces import CompileOptions
from .names import sanitise
from .options import validate_options
from .registry import backend_for

#: keys the pipeline itself passes to backends in `options.extra`; they are not user `--set` keys
INTERNAL_KEYS = ("prune_method", "calibration")


def check_backend_options(backend: Any, options: CompileOptions) -> None:
    """Parse the user's `--set` keys against the backend's declared options, before any work is done."""
    user = {k: v for k, v in options.extra.items() if k not in INTERNAL_KEYS}
    parsed = validate_options(backend.name, backend.options, user)
    options.extra.update(parsed)


def load(model: str | os.PathLike, **frontend_options: Any) -> nir.NIRGraph:
    from spikeforge.frontends import load_model

    return load_model(model, **{k: v for k, v in frontend_options.items() if v is not None})


def apply_passes(graph: nir.NIRGraph, board: Board, options: CompileOptions,
                 calibration: Any = None) -> tuple[nir.NIRGraph, dict[str, Any]]:
    """Run the optional passes the user asked for; return the transformed graph and their reports."""
    reports: dict[str, Any] = {}
    if options.delay_policy in ("relay", "chain", "native"):
        from spikeforge import passes

        max_steps = passes.board_max_delay(board)
        if max_steps is None:
            raise BoardError(f"board '{board.name}' states no delay range (arithmetic.max_delay)",
                             hint="use --delay-policy auto to let the backend map delays")
        graph, rep = passes.map_delays(graph, dt=float(options.dt), max_delay_steps=int(max_steps),
                                       policy=options.delay_policy)
        reports["delays"] = rep.to_dict() if hasattr(rep, "to_dict") else rep
    if options.prune:
        from spikeforge import passes

        if not hasattr(passes, "prune"):
            raise SpikeforgeError("pruning is not available in this build of spikeforge")
        graph, rep = passes.prune(graph, sparsity=float(options.prune),
                                  method=str(options.extra.get("prune_method", "magnitude")),
                                  calibration=calibration)
        reports["prune"] = rep.to_dict() if hasattr(rep, "to_dict") else rep
    if options.bit_budget:
        from spikeforge import passes

        if not hasattr(passes, "quantize"):
            raise SpikeforgeError("bit-budget quantization is not available in this build of spikeforge")
        steps = options.timesteps or (graph.metadata or {}).get("spikeforge.timesteps")
        graph, rep = passes.quantize(graph, bit_budget=float(options.bit_budget), board=board,
                                     calibration=calibration, timesteps=int(steps) if steps else None,
                                     seed=options.seed)
        reports["quantize"] = rep.to_dict() if hasattr(rep, "to_dict") else rep
    return graph, reports


def compile_model(model: str | os.PathLike | nir.NIRGraph, board: str | Board,
                  options: CompileOptions | None = None, *, calibration: Any = None,
                  **frontend_options: Any) -> Artifact:
    """Compile a model file (or an in-memory NIR graph) for a board."""
    options = options or CompileOptions()
    b, backend = backend_for(board)
    check_backend_options(backend, options)
    if isinstance(model, nir.NIRGraph):
        graph, digest = sanitise(G.validate(model))[0], ""
    else:
        if calibration is not None:
            calibration = read_calibration(calibration)
        frontend_options.setdefault("reset", backend.ann_reset)  # an ANN converts for the board's neurons
        graph = load(model, dt=options.dt, timesteps=options.timesteps, calibration=calibration, **frontend_options)
        digest = hash_file(model) if Path(model).is_file() else ""
    load_warnings = G.pop_warnings(graph)
    from spikeforge.backends.reference.backend import with_dt

    reference, dt = with_dt(graph, options)
    options.dt = dt
    load_warnings += dt_warnings(reference, dt)
    if calibration is not None:  # one format in, spike trains by input name out (spikeforge.calibration)
        steps = options.timesteps or (reference.metadata or {}).get("spikeforge.timesteps") or 25
        calibration = for_passes(read_calibration(calibration), reference, int(steps))
    transformed, reports = apply_passes(reference, b, options, calibration)
    if calibration is not None:  # backends may size ranges from data; never written into the manifest
        options.extra["calibration"] = calibration
    try:
        artifact = backend.lower(transformed, b, options)
    finally:
        options.extra.pop("calibration", None)
    if not isinstance(artifact, Artifact):
        raise BoardError(f"backend '{backend.name}' returned {type(artifact).__name__}, not an Artifact")
    if transformed is not reference:
        # verify compares the board against the float model the user trained, not the transformed one
        if artifact.program is None:
            artifact.program = transformed
        artifact.reference = reference
    artifact.meta.setdefault("dt", dt)
    if load_warnings:
        artifact.meta["warnings"] = load_warnings + list(artifact.meta.get("warnings") or [])
    if reports:
        artifact.meta["passes"] = reports
    artifact.input_hash = digest
    if b.raw:  # the full board spec travels with the artifact (toolchain/manifest.py)
        artifact.board_spec = dict(b.raw)
    artifact.options = options
    return artifact
