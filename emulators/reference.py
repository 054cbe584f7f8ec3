"""Emulator of the `cpu-reference` board: the reference simulator, reporting event counts."""

from __future__ import annotations

import numpy as np

from spikeforge.artifact import Artifact
from spikeforge.interfaces import Emulator, Trace
from spikeforge.refsim import ReferenceSimulator, config_for_graph


def simulate_trace(graph, dt: float | None, inputs: dict[str, np.ndarray], *, probes: bool = False) -> Trace:
    """Run the reference simulator on `graph` and report it as a Trace (outputs, event counts, probes)."""
    res = ReferenceSimulator(graph, config_for_graph(graph, dt)).run(inputs, probes=probes)
    return Trace(
        outputs=res.outputs,
        counts={"synops": res.synops, "spikes": res.spikes, "neuron_updates": res.neuron_updates},
        states=res.states,
        layer_counts={n: {"synops": res.layer_synops[n], "spikes": res.layer_spikes[n]} for n in res.layer_synops},
        meta={"batch": int(next(iter(res.outputs.values())).shape[1])},
    )


class ReferenceEmulator(Emulator):
    samples_independent = True

    def run(self, artifact: Artifact, inputs: dict[str, np.ndarray], *, probes: bool = False) -> Trace:
        # the program (quantised / pruned graph) when passes ran, else the float graph itself
        g = artifact.program if artifact.program is not None else artifact.reference
        return simulate_trace(g, artifact.meta.get("dt"), inputs, probes=probes)
