"""Measure what a convention change does to a model's outputs, so semantic warnings carry a real number.

Why: Lava's LIF resets v to 0 at once and compares with '>'; a model trained with subtract or delayed
resets, or '>=', is approximated. The size of that change depends on the model, so it is measured: the
float reference runs twice on the same random input (Bernoulli 20 % spikes, T = 50, batch 8, fixed seed),
once with the model's conventions and once with Loihi's for the named nodes, and the relative change in
output spike counts (sum |diff| / sum of reference counts) is returned.
"""

from __future__ import annotations

import copy

import nir
import numpy as np

from spikeforge import graph as G
from spikeforge.refsim import ReferenceSimulator, config_for_graph
from spikeforge.threads import torch_single_thread

LOIHI_CONVENTIONS = {"spikeforge.reset": "zero", "spikeforge.reset_timing": "immediate",
                     "spikeforge.threshold_cmp": ">"}


def analog_input(g: nir.NIRGraph, name: str) -> bool:
    """An Input that carries an analog value as a constant current (converted ANNs), not spikes."""
    enc = str((getattr(g.nodes[name], "metadata", None) or {}).get("spikeforge.encoding", "")) or \
        str((g.metadata or {}).get("spikeforge.input_encoding", ""))
    return enc.startswith("analog")


def input_kind(g: nir.NIRGraph) -> str:
    """How the random input of these measurements is drawn, for the warning's text."""
    analog = any(analog_input(g, n) for n, v in g.nodes.items() if isinstance(v, nir.Input))
    return "random constant analog inputs in [0, 1]" if analog else "random 20 % input spikes"


def _inputs(g: nir.NIRGraph, steps: int, batch: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for name, node in g.nodes.items():
        if isinstance(node, nir.Input):
            shape = G.node_shape(node, "output") or G.node_shape(node, "input") or (1,)
            if analog_input(g, name):
                level = rng.random((1, batch, *shape)).astype(np.float32)
                out[name] = np.repeat(level, steps, axis=0)
            else:
                out[name] = (rng.random((steps, batch, *shape)) < 0.2).astype(np.float32)
    return out


def floor_crossings(g: nir.NIRGraph, dt: float, floors: dict[str, np.ndarray], *, steps: int = 50,
                    batch: int = 8, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Per node: (fraction of its neurons whose float v falls below `floors[node]` (per neuron, < 0) at
    least once on the random input, lowest v over the run / |floor|)."""
    x = _inputs(g, steps, batch, seed)
    with torch_single_thread():
        res = ReferenceSimulator(g, config_for_graph(g, dt)).run(x, probes=True)
    out: dict[str, tuple[float, float]] = {}
    for name, floor in floors.items():
        v = np.asarray(res.states[f"{name}.v"], dtype=np.float64)
        vmin = v.reshape(v.shape[0] * v.shape[1], -1).min(axis=0)
        fl = np.broadcast_to(np.asarray(floor, np.float64).reshape(-1), vmin.shape)
        out[name] = (float(np.mean(vmin < fl)), float(np.min(vmin / np.abs(fl))))
    return out


def convention_effect(g: nir.NIRGraph, dt: float, nodes: list[str], *, steps: int = 50, batch: int = 8,
                      seed: int = 0) -> float:
    """Relative output spike-count change when `nodes` follow Loihi's reset/threshold conventions."""
    x = _inputs(g, steps, batch, seed)
    with torch_single_thread():
        base = ReferenceSimulator(g, config_for_graph(g, dt)).run(x)
    h = copy.deepcopy(g)
    gm = dict(h.metadata or {})
    for key in LOIHI_CONVENTIONS:
        gm.pop(key, None)                      # graph-wide conventions apply to every node; set per node
    h.metadata = gm
    for name, node in h.nodes.items():
        meta = dict(getattr(node, "metadata", None) or {})
        base_meta = {k: (g.metadata or {}).get(k) for k in LOIHI_CONVENTIONS if (g.metadata or {}).get(k)}
        meta = {**base_meta, **meta}
        if name in nodes:
            meta.update(LOIHI_CONVENTIONS)
        node.metadata = meta
    with torch_single_thread():
        moved = ReferenceSimulator(h, config_for_graph(h, dt)).run(x)
    diff = sum(float(np.abs(np.asarray(moved.outputs[k]).sum(0) - np.asarray(v).sum(0)).sum())
               for k, v in base.outputs.items())
    total = sum(float(np.abs(np.asarray(v)).sum()) for v in base.outputs.values())
    return diff / max(total, 1.0)
