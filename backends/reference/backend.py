"""Lowering for the reference board: the program is the validated float graph itself."""

from __future__ import annotations

import nir
import numpy as np

from spikeforge import graph as G
from spikeforge.artifact import Artifact
from spikeforge.boardspec import Board
from spikeforge.emulators.reference import ReferenceEmulator
from spikeforge.errors import GraphError
from spikeforge.interfaces import Backend, CompileOptions, CostModel, Emulator

from .cost import ReferenceCostModel
from .options import OPTIONS


def with_dt(graph: nir.NIRGraph, options: CompileOptions) -> tuple[nir.NIRGraph, float]:
    """Return the flat graph with the time step recorded in its metadata; every backend needs one."""
    g = G.validate(graph)
    dt = G.get_dt(g, options.dt)
    if dt is None:
        raise GraphError("the graph records no time step and none was given", hint="pass --dt SECONDS")
    if not (dt > 0):
        raise GraphError(f"time step must be > 0 (got {dt})")
    meta = dict(g.metadata or {})
    meta[G.DT_KEY] = float(dt)
    return nir.NIRGraph(nodes=g.nodes, edges=g.edges, metadata=meta, type_check=False), dt


def count_neurons(graph: nir.NIRGraph) -> int:
    total = 0
    for node in graph.nodes.values():
        if isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF, nir.LI, nir.CubaLI, nir.I)):
            shp = G.node_shape(node, "input")
            total += int(np.prod(shp)) if shp else 0
    return total


class ReferenceBackend(Backend):
    options = OPTIONS
    name = "reference"

    def lower(self, graph: nir.NIRGraph, board: Board, options: CompileOptions) -> Artifact:
        g, dt = with_dt(graph, options)
        dense_macs = 0
        for node in g.nodes.values():
            if isinstance(node, (nir.Affine, nir.Linear)):
                dense_macs += int(np.asarray(node.weight).size)
        return Artifact(
            board=board.name,
            backend=self.name,
            reference=g,
            program=None,
            options=options,
            meta={"dt": dt, "neurons": count_neurons(g), "nodes": len(g.nodes), "dense_macs_per_step": dense_macs,
                  # the conventions of interfaces.Trace: no pipeline latency, every population is its NIR node
                  "latency_steps": 0, "layer_map": {n: n for n, node in g.nodes.items()
                                                    if isinstance(node, (nir.LIF, nir.CubaLIF, nir.IF, nir.LI,
                                                                         nir.CubaLI, nir.I))}},
        )

    def emulator(self) -> Emulator:
        return ReferenceEmulator()

    def cost_model(self) -> CostModel:
        return ReferenceCostModel()
