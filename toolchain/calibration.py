"""One calibration format for every command: analog samples and/or spike trains, in one .npz.

Why: ANN conversion needs analog samples (N, *input_shape), range estimation and quantisation need the
graph's input as time x batch spike trains, and three spellings had grown across the code. The format:

* ``analog``: analog samples ``(N, *input_shape)`` -- what an ANN sees; used for ANN-to-SNN normalisation
  and, rate coded, wherever spike trains are needed;
* ``<input node name>`` (or ``input`` for a single-input graph): spike trains ``(T, B, *input_shape)``,
  the same layout as `emulate`/`verify` inputs; their time average stands in for ``analog`` when that
  key is missing;
* optional ``labels`` ``(B,)``.

Every error about it says it is about the calibration file and which shape was expected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from . import graph as G
from .errors import InputError

#: legacy key read as `analog` (older scripts wrote `x`)
ANALOG_KEYS = ("analog", "x")
#: seed of the rate coding that turns analog samples into spike trains (deterministic)
SEED = 0


@dataclass
class Calibration:
    """Calibration data in the one format; `file` names where it came from, for messages."""

    analog: np.ndarray | None = None
    spikes: dict[str, np.ndarray] = field(default_factory=dict)
    labels: np.ndarray | None = None
    file: str | None = None

    def where(self) -> str:
        return f"calibration file {self.file}" if self.file else "calibration data"


def read_calibration(src: Any, *, file: str | None = None) -> Calibration:
    """A Calibration from an .npz path, a dict of arrays, an array or a Calibration.

    A bare array is analog samples, unless it is 0/1-valued with at least 3 axes (spike trains).
    """
    if isinstance(src, Calibration):
        return src
    if isinstance(src, (str, bytes)) or isinstance(src, os.PathLike):
        from .npzio import load_npz

        file = file or os.fsdecode(src)
        try:
            src = load_npz(src)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot read the calibration file ({exc})", file=file) from None
    if isinstance(src, np.ndarray):
        arr = np.asarray(src)
        if arr.ndim >= 3 and arr.size and np.isin(np.unique(arr), (0, 1)).all():
            return Calibration(spikes={"input": arr}, file=file)
        return Calibration(analog=arr, file=file)
    if not isinstance(src, Mapping):
        raise InputError(f"calibration must be an .npz file, a dict of arrays or an array, "
                         f"got {type(src).__name__}", file=file)
    cal = Calibration(file=file)
    for key, value in src.items():
        arr = np.asarray(value)
        if key == "labels":
            cal.labels = arr
        elif key in ANALOG_KEYS:
            if cal.analog is None or key == "analog":
                cal.analog = arr
        else:
            cal.spikes[str(key)] = arr
    if cal.analog is None and not cal.spikes:
        raise InputError(f"the calibration file has no data (keys {sorted(src)}); expected 'analog' with samples "
                         f"(N, *input_shape) and/or spike trains (T, B, *input_shape) under the input's name",
                         file=file)
    for key, arr in [("analog", cal.analog)] + list(cal.spikes.items()):
        if arr is not None and (arr.dtype.kind not in "biuf" or not np.all(np.isfinite(arr))):
            raise InputError(f"calibration array '{key}' must be finite numbers (dtype {arr.dtype})",
                             file=file, field=key)
    return cal


def _one_input(cal: Calibration) -> np.ndarray | None:
    if len(cal.spikes) == 1:
        return next(iter(cal.spikes.values()))
    return cal.spikes.get("input")


def analog_samples(cal: Calibration, input_shape: tuple[int, ...] | None) -> np.ndarray:
    """(N, *input_shape) samples for ANN conversion: `analog`, else the time average of the spike trains."""
    shape = tuple(int(s) for s in input_shape) if input_shape is not None else None
    want = f"(N, {', '.join(map(str, shape))})" if shape else "(N, *input_shape)"
    if cal.analog is not None:
        x = np.asarray(cal.analog, np.float32)
        if shape is None:
            return x
        if x.ndim >= 2 and int(np.prod(x.shape[1:])) == int(np.prod(shape)):
            return x.reshape(-1, *shape)
        raise InputError(f"calibration array 'analog' has shape {x.shape}; expected {want} analog samples",
                         file=cal.file, field="analog")
    trains = _one_input(cal)
    if trains is None:
        raise InputError(f"no calibration samples: expected 'analog' {want} or spike trains (T, B, ...) under "
                         f"'input' (keys {sorted(cal.spikes)})", file=cal.file)
    x = np.asarray(trains, np.float32)
    if shape is None:
        return x.mean(axis=0) if x.ndim >= 3 else x
    if x.ndim == len(shape) + 1 and tuple(x.shape[1:]) == shape:  # analog samples stored under 'input'
        return x
    if x.ndim >= 3 and int(np.prod(x.shape[2:])) == int(np.prod(shape)):
        return x.mean(axis=0).reshape(-1, *shape)
    raise InputError(f"calibration spike trains have shape {x.shape}; expected (T, B, {', '.join(map(str, shape))}) "
                     f"(or analog samples {want} under 'analog')", file=cal.file)


def spike_trains(cal: Calibration, graph: nir.NIRGraph, timesteps: int) -> dict[str, np.ndarray]:
    """Inputs (T, B, *shape) keyed by the graph's Input nodes, for passes and backends that simulate.

    Given spike trains are used as they are; otherwise the analog samples are rate coded (Bernoulli, seeded)
    when they lie in [0, 1], else held as a constant current for `timesteps` steps.
    """
    names = G.input_nodes(graph)
    out: dict[str, np.ndarray] = {}
    for name in names:
        shape = G.node_shape(graph.nodes[name], "output") or ()
        arr = cal.spikes.get(name)
        if arr is None and len(names) == 1:
            arr = _one_input(cal)
        if arr is not None:
            a = np.asarray(arr, np.float32)
            if a.ndim < 2 or int(np.prod(a.shape[2:])) != int(np.prod(shape)):
                raise InputError(f"calibration array '{name}' has shape {a.shape}; expected spike trains "
                                 f"(T, B, {', '.join(map(str, shape))})", file=cal.file, field=name)
            out[name] = a.reshape(a.shape[0], a.shape[1], *shape)
            continue
        if cal.analog is None or len(names) != 1:
            raise InputError(f"calibration has no spike trains for input '{name}' (keys {sorted(cal.spikes)}); "
                             f"expected (T, B, {', '.join(map(str, shape))}) under '{name}'", file=cal.file)
        x = analog_samples(cal, shape)
        steps = max(int(timesteps), 1)
        if x.size and x.min() >= 0.0 and x.max() <= 1.0:
            rng = np.random.default_rng(SEED)
            out[name] = (rng.random((steps, *x.shape)) < x[None]).astype(np.float32)
        else:
            out[name] = np.repeat(x[None], steps, axis=0)
    return out


def for_passes(cal: Calibration, graph: nir.NIRGraph, timesteps: int) -> dict[str, np.ndarray]:
    """The dict passes and backends read: spike trains by input name, plus `labels` when given."""
    data = spike_trains(cal, graph, timesteps)
    if cal.labels is not None:
        data["labels"] = cal.labels
    return data
