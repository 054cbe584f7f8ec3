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

#: suffix -> loader(path, **options) -> NIRGraph. Frontend modules add themselves here.
LOADERS: dict[str, Callable[..., nir.NIRGraph]] = {}


def register(*suffixes: str):
    def deco(fn: Callable[..., nir.NIRGraph]) -> Callable[..., nir.NIRGraph]:
        for s in suffixes:
            LOADERS[s] = fn
        return fn

    return deco


@register(".nir", ".h5", ".hdf5")
def load_nir(path: str | os.PathLike, **_: Any) -> nir.NIRGraph:
    return G.read(path)


#: suffix -> the frontend module that registers it. Only the module for the file at hand is imported,
#: so loading a .nir file never pays for torch, onnx or brian2 (start-up time, issue 16).
MODULES: dict[str, str] = {
    ".onnx": "onnx",
    ".pt": "torch", ".pth": "torch", ".pt2": "torch", ".ts": "torch", ".jit": "torch",
    ".py": "brian2",
}


def _import_frontend_for(suffix: str) -> None:
    """Import the frontend module that registers `suffix` (all of them for an unknown suffix)."""
    import importlib

    if suffix in LOADERS:
        return
    wanted = [MODULES[suffix]] if suffix in MODULES else sorted(set(MODULES.values()))
    for mod in wanted:
        try:
            importlib.import_module(f"spikeforge.frontends.{mod}")
        except ModuleNotFoundError as exc:
            if suffix in MODULES and exc.name and not exc.name.startswith("spikeforge"):
                raise UnsupportedError(
                    f"loading '{suffix}' files needs the Python package '{exc.name}', which is not installed",
                    hint="pip install 'spikeforge[frontends]'",
                ) from None
            continue  # an unknown suffix: list only what is installed


def load_model(path: str | os.PathLike, **options: Any) -> nir.NIRGraph:
    """Load any supported model file into a validated, flat NIR graph."""
    p = Path(path)
    if not p.exists():
        raise SpikeforgeError("file not found", file=str(p))
    suffix = "".join(p.suffixes[-1:]).lower()
    _import_frontend_for(suffix)
    loader = LOADERS.get(suffix)
    if loader is None:
        raise UnsupportedError(
            f"unknown model type '{suffix or p.name}'; supported: {', '.join(sorted(set(LOADERS) | set(MODULES)))}",
            file=str(p)
        )
    graph = loader(p, **options)
    return G.validate(graph, file=str(p))
