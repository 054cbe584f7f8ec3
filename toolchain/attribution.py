"""Where does a board lose accuracy? By stage (passes vs board) and by layer (first divergent NIR node).

Why: a failing verify that only says "agreement 71%" leaves the user guessing between quantisation,
pruning, the chip's arithmetic and a mapping bug. Stage attribution compares three sides (float graph,
transformed graph on the reference simulator, board); layer attribution walks the NIR nodes in
topological order and names the first whose hidden spikes differ between board and float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import nir
import numpy as np

from . import graph as G
from .gates import Gates
from .metrics import align, best_shift, compare

SPIKING = (nir.LIF, nir.CubaLIF, nir.IF, nir.Threshold)

#: automatic layer attribution on failure only when the probed re-run stays small (steps x samples x neurons)
AUTO_LAYERS_MAX = 5_000_000


def stage_loss(per_output: dict[str, dict[str, float]]) -> float:
    """One number for the distance between two sides: mean over outputs of (1 - spike match) or RMS error."""
    vals = [1.0 - m["spike_match"] if "spike_match" in m else m["rms_error_norm"] for m in per_output.values()]
    return float(np.mean(vals)) if vals else 0.0


def attribute_stages(loss_passes: float, loss_board: float) -> tuple[str, float]:
    """(main source, its share of the summed loss): 'passes', 'board' or 'none' when both are ~0."""
    total = loss_passes + loss_board
    if total <= 1e-12:
        return "none", 0.0
    return ("passes", loss_passes / total) if loss_passes >= loss_board else ("board", loss_board / total)


def neuron_count(graph: nir.NIRGraph) -> int:
    n = 0
    for node in graph.nodes.values():
        if isinstance(node, SPIKING) or isinstance(node, (nir.LI, nir.CubaLI, nir.I)):
            shp = G.node_shape(node, "output")
            n += int(np.prod(shp)) if shp is not None else 1
    return n


@dataclass
class LayerReport:
    available: bool
    layers: list[dict[str, Any]]
    first_divergent: dict[str, Any] | None
    note: str = ""


def _feeders(graph: nir.NIRGraph, node: str) -> list[str]:
    return [s for s, d in graph.edges if d == node]


def attribute_layers(graph: nir.NIRGraph, ref_states: dict[str, np.ndarray], board_states: dict[str, np.ndarray],
                     gates: Gates, tau_steps: float) -> LayerReport:
    """Compare `<node>.s` probes of every spiking node in topological order; name the first beyond the gates.

    Hidden layers on pipelined chips lag by their depth, so each layer is compared at its best shift in
    [0, 3] (reported): this is a diagnosis, not a gate.
    """
    order = G.schedule(graph).order
    spiking = [n for n in order if isinstance(graph.nodes[n], SPIKING)]
    have = [n for n in spiking if f"{n}.s" in board_states and f"{n}.s" in ref_states]
    if not have:
        exposed = sorted(board_states)[:6]
        return LayerReport(False, [], None,
                           "the board's emulator exposes no hidden-layer spikes under NIR node names "
                           f"(probes it gives: {exposed or 'none'}); layer attribution is unavailable for it")
    rows: list[dict[str, Any]] = []
    first = None
    for n in have:
        ref = np.asarray(ref_states[f"{n}.s"], dtype=np.float64)
        got = np.asarray(board_states[f"{n}.s"], dtype=np.float64)
        if got.size != ref.size and got.shape[0] != ref.shape[0]:
            got = got[: ref.shape[0]]
        got = got.reshape(ref.shape)
        shift = best_shift(ref, got, True)
        r, g = align(ref, got, shift)
        m = compare(r, g, spiking=True, k=gates.timing_tolerance, tau_steps=tau_steps).metrics
        bad = m["count_error_rel"] > gates.max_count_error or m["spike_match"] < gates.min_spike_match
        row = {"node": n, "fed_by": _feeders(graph, n), "shift": shift, "divergent": bool(bad),
               **{k: m[k] for k in ("spikes_reference", "spikes_board", "count_error_rel", "spike_match",
                                    "step_identity")}}
        rows.append(row)
        if bad and first is None:
            first = row
    missing = [n for n in spiking if n not in have]
    note = f"no board probe for {missing}" if missing else ""
    return LayerReport(True, rows, first, note)


def describe_layer(row: dict[str, Any]) -> str:
    fed = f" (fed by {', '.join(row['fed_by'])})" if row["fed_by"] else ""
    return (f"first divergent NIR node '{row['node']}'{fed}: {row['spikes_board']:.0f} board vs "
            f"{row['spikes_reference']:.0f} float spikes (count error {row['count_error_rel']:.1%}), "
            f"{row['spike_match']:.1%} matched, compared at shift {row['shift']}")
