"""Helpers shared by the compiler passes: graph copies, layer discovery, calibration data, scoring."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from .. import graph as G
from .. import refsim
from ..errors import InputError

WEIGHTED = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d)
SPIKING = (nir.LIF, nir.CubaLIF, nir.IF)
NEURONS = (nir.LI, nir.LIF, nir.CubaLI, nir.CubaLIF, nir.IF, nir.I)


def clone(graph: nir.NIRGraph) -> nir.NIRGraph:
    """A flat, validated deep copy: passes never mutate the caller's graph."""
    return copy.deepcopy(G.validate(graph))


def rebuild(nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]], metadata: dict | None) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=dict(nodes), edges=list(edges), metadata=dict(metadata or {}), type_check=False)


def successors(graph: nir.NIRGraph, name: str) -> list[str]:
    return [d for s, d in graph.edges if s == name]


def predecessors(graph: nir.NIRGraph, name: str) -> list[str]:
    return [s for s, d in graph.edges if d == name]


def weighted_layers(graph: nir.NIRGraph) -> list[str]:
    """Weighted nodes in evaluation order (deterministic)."""
    order = G.schedule(graph).order
    return [n for n in order if isinstance(graph.nodes[n], WEIGHTED)]


def neuron_after(graph: nir.NIRGraph, name: str) -> str | None:
    """The neuron node fed only by `name`, if `name` feeds exactly one node and it is a neuron."""
    succ = successors(graph, name)
    if len(succ) == 1 and isinstance(graph.nodes[succ[0]], NEURONS) and predecessors(graph, succ[0]) == [name]:
        return succ[0]
    return None


def set_meta(node: nir.NIRNode, key: str, value: Any) -> None:
    meta = dict(getattr(node, "metadata", None) or {})
    meta[key] = value
    node.metadata = meta


@dataclass
class Calibration:
    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    timesteps: int
    batch: int

    def truncated(self, steps: int) -> dict[str, np.ndarray]:
        return {k: v[:steps] for k, v in self.inputs.items()}


def calibration_data(graph: nir.NIRGraph, calibration: Any) -> Calibration | None:
    """Accept an array (T, B, ...), a dict keyed by Input node, or an .npz-like dict with 'input'/'labels'."""
    if calibration is None:
        return None
    ins = G.input_nodes(graph)
    labels = None
    if isinstance(calibration, np.ndarray):
        if len(ins) != 1:
            raise InputError(f"graph has {len(ins)} inputs; pass calibration as a dict keyed by input node")
        data = {ins[0]: calibration}
    elif isinstance(calibration, dict):
        calib = dict(calibration)
        if "labels" in calib and "labels" not in ins:
            labels = np.asarray(calib.pop("labels"))
        if len(ins) == 1 and ins[0] not in calib and "input" in calib:
            calib = {ins[0]: calib["input"]}
        missing = [n for n in ins if n not in calib]
        if missing:
            raise InputError(f"calibration has no data for input node(s) {missing}; got keys {sorted(calib)}")
        data = {n: np.asarray(calib[n]) for n in ins}
    else:
        raise InputError(f"calibration must be an array or a dict of arrays, got {type(calibration).__name__}")
    first = next(iter(data.values()))
    if first.ndim < 2:
        raise InputError(f"calibration arrays must be (time, batch, ...), got shape {first.shape}")
    data = {k: v.astype(np.float32) for k, v in data.items()}
    return Calibration(data, labels, int(first.shape[0]), int(first.shape[1]))


def output_scores(result: refsim.SimResult) -> np.ndarray:
    """Per-sample output vector: outputs summed over time, concatenated over Output nodes (B, n)."""
    parts = [v.reshape(v.shape[0], v.shape[1], -1).sum(axis=0) for _, v in sorted(result.outputs.items())]
    return np.concatenate(parts, axis=1).astype(np.float64)


def simulate(graph: nir.NIRGraph, inputs: dict[str, np.ndarray], *, probes: bool = False) -> refsim.SimResult:
    return refsim.simulate(graph, inputs, probes=probes)


def divergence(ref: np.ndarray, test: np.ndarray, t_ref: int, t_test: int) -> dict[str, float]:
    """Disagreement between two (B, n) output-count arrays, as rates per step (so different T compare)."""
    ra, rb = ref / max(t_ref, 1), test / max(t_test, 1)
    mismatch = float(np.mean(ra.argmax(1) != rb.argmax(1))) if ra.shape[1] > 1 else 0.0
    norm = float(np.sqrt(np.mean(ra**2))) or 1.0
    nrmse = float(np.sqrt(np.mean((ra - rb) ** 2)) / norm)
    return {"mismatch": mismatch, "rate_nrmse": nrmse, "objective": mismatch + 0.5 * nrmse}


def accuracy(scores: np.ndarray, labels: np.ndarray | None) -> float | None:
    if labels is None:
        return None
    return float(np.mean(scores.argmax(1) == np.asarray(labels).reshape(-1)))


def synapse_count(node: nir.NIRNode) -> int:
    """Synapses (non-zero weights) one input event or sample touches in total, for bit-op estimates."""
    w = np.asarray(node.weight)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        out = G.node_shape(node, "output")
        if out is not None:
            per_out = int(np.count_nonzero(w)) // max(1, w.shape[0])
            return int(np.prod(out)) * per_out
    return int(np.count_nonzero(w))
