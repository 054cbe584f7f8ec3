"""Input data for emulate/verify/profile: `.npz` files of arrays shaped (time, batch, *input_shape).

Keys: the Input node's name, or `input` when the graph has one input node; optional `labels` (batch,)
integer class labels for accuracy. Spikes may be bool/uint8/int; analog currents float. Anything else
is an error naming the file, the key and the expected shape.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import nir
import numpy as np

from . import graph as G
from .errors import InputError
from .npzio import load_npz

RESERVED = ("labels", "analog")


def load_inputs(path: str | os.PathLike, graph: nir.NIRGraph, *, batch_first: bool = False,
                notes: list[str] | None = None) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Read and check an input file against the graph's Input nodes.

    `batch_first` reads (batch, time, ...) arrays (`--batch-first`); `notes` collects warnings, e.g. that an
    array looks batch-first (its second axis equals the graph's recorded time steps, or `labels` fits
    its first axis).
    """
    return check_inputs(read_npz(path), graph, file=str(path), batch_first=batch_first, notes=notes)


def read_npz(path: str | os.PathLike, what: str = "input file") -> dict[str, np.ndarray]:
    """Read an .npz of plain arrays (never pickles); any failure is one error naming the file."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found", file=str(p))
    if p.is_dir():
        raise InputError(f"{what} is a directory, expected an .npz file", file=str(p))
    try:
        return load_npz(p)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError, zlib.error, NotImplementedError,
            RuntimeError) as exc:  # zip encryption flags, damaged members, bad headers
        raise InputError(f"not a readable .npz file of plain arrays ({type(exc).__name__})", file=str(p)) from None


def _looks_batch_first(x: np.ndarray, graph: nir.NIRGraph, labels: np.ndarray | None) -> bool:
    """Axis 0 longer than axis 1, and the transpose is what the graph/labels say (steps or batch size)."""
    if x.ndim < 2 or x.shape[0] <= x.shape[1]:
        return False
    steps = (graph.metadata or {}).get("spikeforge.timesteps")
    if labels is not None and np.ndim(labels) == 1 and len(labels) == x.shape[0]:
        return True
    return steps is not None and int(np.asarray(steps).ravel()[0]) == x.shape[1]


def check_inputs(arrays: dict[str, np.ndarray], graph: nir.NIRGraph, *, file: str | None = None,
                 batch_first: bool = False, notes: list[str] | None = None
                 ) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    names = G.input_nodes(graph)
    data = {k: v for k, v in arrays.items() if k not in RESERVED}
    if batch_first:
        data = {k: (np.swapaxes(v, 0, 1) if v.ndim >= 2 else v) for k, v in data.items()}
    elif notes is not None:
        for k, v in data.items():
            if _looks_batch_first(v, graph, arrays.get("labels")):
                notes.append(f"{file or 'inputs'}: array '{k}' {v.shape} is read as {v.shape[0]} time steps of "
                             f"{v.shape[1]} samples, but looks batch-first ({v.shape[0]} samples of {v.shape[1]} "
                             f"steps); pass --batch-first if so")
    inputs: dict[str, np.ndarray] = {}
    for name in names:
        if name in data:
            key = name
        elif len(names) == 1 and "input" in data:
            key = "input"
        elif len(names) == 1 and len(data) == 1:
            key = next(iter(data))
        else:
            raise InputError(f"no array for input node '{name}' (keys present: {sorted(arrays)})", file=file)
        x = data[key]
        if x.dtype.kind not in "biuf":
            raise InputError(f"array '{key}' has dtype {x.dtype}; expected bool, integer or float", file=file)
        shp = G.node_shape(graph.nodes[name], "output")
        expect = " x ".join(map(str, shp)) if shp else "..."
        if x.ndim < 2:
            raise InputError(f"array '{key}' has shape {x.shape}; expected (time, batch, {expect})", file=file)
        if shp is not None and int(np.prod(x.shape[2:])) != int(np.prod(shp)):
            raise InputError(
                f"array '{key}' has shape {x.shape}; expected (time, batch, {expect})", file=file,
                hint="inputs are time-major: axis 0 is time, axis 1 is the batch",
            )
        if x.shape[0] == 0:
            raise InputError(f"array '{key}' has no time steps (shape {x.shape})", file=file)
        if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
            raise InputError(f"array '{key}' contains NaN or inf", file=file)
        inputs[name] = x.astype(np.float32) if x.dtype.kind in "biu" else x
    tb = {v.shape[:2] for v in inputs.values()}
    if len(tb) > 1:
        raise InputError(f"inputs disagree on (time, batch): {sorted(tb)}", file=file)
    labels = arrays.get("labels")
    if labels is not None:
        batch = next(iter(inputs.values())).shape[1]
        if labels.ndim != 1 or labels.shape[0] != batch or labels.dtype.kind not in "iu":
            raise InputError(f"'labels' must be integers shaped ({batch},), got {labels.dtype} {labels.shape}", file=file)
    return inputs, labels


def synthetic_inputs(graph: nir.NIRGraph, timesteps: int = 25, batch: int = 1, rate: float = 0.1,
                     seed: int = 0) -> dict[str, np.ndarray]:
    """Bernoulli spike trains at `rate` for every Input node (used by `profile` without --input)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in G.input_nodes(graph):
        shp = G.node_shape(graph.nodes[name], "output") or (1,)
        out[name] = (rng.random((timesteps, batch, *shp)) < rate).astype(np.float32)
    return out
