"""Frontends: turn a user's model file into a validated NIR graph.

`load_model(path, **options)` dispatches on the file type. Each frontend records the conventions of
the framework it came from (reset mode, dt, scaling) in graph/node metadata so that the reference
simulator reproduces the original's behaviour.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nir

from spikeforge import graph as G
from spikeforge.errors import SpikeforgeError, UnsupportedError
from spikeforge.names import sanitise

#: suffix -> loader(path, **options) -> NIRGraph. Frontend modules add themselves here.
LOADERS: dict[str, Callable[..., nir.NIRGraph]] = {}


def register(*suffixes: str):
    def deco(fn: Callable[..., nir.NIRGraph]) -> Callable[..., nir.NIRGraph]:
        for s in suffixes:
            LOADERS[s] = fn
        return fn

    return deco


@register(".nir", ".h5", ".hdf5")
def load_nir(path: str | os.PathLike, *, lenient: bool | None = None, **_: Any) -> nir.NIRGraph:
    """An NIR file; `lenient` repairs declared shapes that disagree with their producer (`graph.repair_types`)."""
    graph = G.read(path, lenient=bool(lenient))
    unknown = _reset_unrecorded(graph)
    if unknown:
        G.add_warning(graph, f"{Path(path).name}: NIR records no reset mode for node(s) {', '.join(repr(u) for u in unknown[:4])}"
                             f"{' ...' if len(unknown) > 4 else ''}; spikeforge resets to zero (NIR's definition). "
                             "snnTorch's default reset_mechanism='subtract' and Sinabs's IAF subtract instead, so "
                             "a model exported by their NIR exporters spikes differently here; convert the framework "
                             "model itself (spikeforge convert model.pt --model-class ...) to keep its reset")
    return graph


def _reset_unrecorded(graph: nir.NIRGraph) -> list[str]:
    """Spiking nodes whose reset mode neither the node nor the graph metadata records (foreign NIR files)."""
    if "spikeforge.reset" in (graph.metadata or {}):
        return []
    spiking = (nir.LIF, nir.CubaLIF, nir.IF)
    return [k for k, n in G.flatten(graph).nodes.items()
            if isinstance(n, spiking) and "spikeforge.reset" not in (getattr(n, "metadata", None) or {})]


#: which frontend module registers a suffix (imported on demand: torch alone takes seconds to import)
MODULE_OF = {".onnx": "onnx", ".pt": "torch", ".pth": "torch", ".pt2": "torch", ".ts": "torch", ".jit": "torch",
             ".py": "brian2"}


def _import_optional_frontends(suffix: str | None = None) -> None:
    """Import the frontend for `suffix` (all of them when unknown), so they register their suffixes.

    A missing optional dependency is not fatal here; load_model reports the unknown suffix when asked.
    """
    import importlib

    mods = [MODULE_OF[suffix]] if suffix in MODULE_OF else sorted(set(MODULE_OF.values()))
    for mod in mods:
        try:
            importlib.import_module(f"spikeforge.frontends.{mod}")
        except ModuleNotFoundError:
            continue  # its third-party dependency is not installed


def load_model(path: str | os.PathLike, **options: Any) -> nir.NIRGraph:
    """Load any supported model file into a validated, flat NIR graph."""
    p = Path(path)
    if not p.exists():
        raise SpikeforgeError("file not found", file=str(p))
    suffix = "".join(p.suffixes[-1:]).lower()
    _import_optional_frontends(suffix)
    loader = LOADERS.get(suffix)
    if loader is None:
        raise UnsupportedError(
            f"unknown model type '{suffix or p.name}'; supported: {', '.join(sorted(LOADERS))}", file=str(p)
        )
    graph = loader(p, **options)
    safe, _ = sanitise(G.validate(graph, file=str(p)))  # every frontend's names, one rule (spikeforge.names)
    return safe
