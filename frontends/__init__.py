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
import numpy as np

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
                             "these are IF nodes or snnTorch-exported LIF nodes (r = tau/1e-4), "
                             "which subtract by default in Sinabs and snnTorch, and their NIR exporters drop that: "
                             "if the model reset by subtraction its spikes differ here; convert the framework model itself (a state_dict with --model-class) "
                             "to keep its reset")
    return graph


def _reset_unrecorded(graph: nir.NIRGraph) -> list[str]:
    """Spiking nodes whose reset is likely a subtraction that NIR cannot record, in a foreign NIR file.

    NIR's LIF/IF reset to v_reset. snnTorch's exporter (recognisable by r = tau / 1e-4, its hard-coded dt)
    drops its default subtract reset, and Sinabs/snnTorch IF neurons subtract by default; Norse's LIF
    (r = 1) resets to zero, as NIR says. Nodes that record `spikeforge.reset` are ours and exact.
    """
    if "spikeforge.reset" in (graph.metadata or {}):
        return []
    out = []
    for k, n in G.flatten(graph).nodes.items():
        if "spikeforge.reset" in (getattr(n, "metadata", None) or {}):
            continue
        if isinstance(n, nir.IF):
            out.append(k)
        elif isinstance(n, (nir.LIF, nir.CubaLIF)):
            tau = np.asarray(n.tau if isinstance(n, nir.LIF) else n.tau_mem, np.float64)
            if np.allclose(np.asarray(n.r, np.float64), tau / 1e-4, rtol=1e-4):
                out.append(k)
    return out


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
    safe, _ = sanitise(G.validate(graph, file=str(p)))  # every frontend's names, one rule (spikeforge.names)
    return safe
