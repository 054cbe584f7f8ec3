"""Conditioning floor for the argmax-agreement check: how far does the float model disagree with itself
under a weight perturbation the size of the board's own quantisation error?

Why: on inputs far from any class (random event frames into a trained CNN, the only N-MNIST-like data
this machine can make) the outputs are near ties, and changing the weights by 0.7 % flips the argmax of
10-25 % of the samples in the float model itself (cnn_sinabs on 32 random frames: 73-91 % self-agreement
over 3 seeds, measured). A fixed 90 % agreement gate then fails every real chip and says nothing about
the board. The floor measures that spread on the user's own inputs: the board's agreement is judged
against the worst of `SEEDS` same-size random perturbations of the float model. It only ever lowers the
fixed threshold, the perturbation size comes from the lowering's own recorded weight error, and the
spike-level output checks are untouched -- so verify still fails a board that is worse than its
arithmetic explains (a leak lost, a reset swapped: those move far more than a 1 % weight change does).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import nir
import numpy as np

from . import graph as G
from .metrics import argmax_outcomes
from .semantics import WEIGHT_REL_RMS, warnings_of

#: weight-bearing node types a perturbation touches
WEIGHTED = (nir.Affine, nir.Linear, nir.Conv1d, nir.Conv2d)
#: perturbed float runs; the board must agree at least as well as the worst of them
SEEDS = 5
#: a recorded weight error above this is not a rounding error any more; no floor is derived from it
MAX_RELATIVE = 0.25


@dataclass(frozen=True)
class Floor:
    """Agreement of the float model with itself under `magnitude` relative weight noise, one value per seed."""

    magnitude: float
    agreements: tuple[float, ...]
    decided: tuple[float, ...]

    @property
    def worst(self) -> float:
        return min(self.agreements)

    def text(self) -> str:
        a = np.asarray(self.agreements)
        return (f"the float model itself agrees {a.min():.1%}-{a.max():.1%} (median {np.median(a):.1%}) with its own "
                f"predictions under {len(a)} random weight perturbations of {self.magnitude:.2%} relative RMS, the "
                "size of this board's recorded weight quantisation")


def weight_error(meta: dict) -> float | None:
    """The board's typical relative weight error: the median of the relative-RMS weight errors its lowering
    recorded (semantics.WEIGHT_REL_RMS); None when it recorded none (an exact board has no floor)."""
    mags = [w.magnitude for w in warnings_of(meta)
            if w.measure == WEIGHT_REL_RMS and 0.0 < w.magnitude <= MAX_RELATIVE]
    return float(np.median(mags)) if mags else None


def perturbed(graph: nir.NIRGraph, magnitude: float, rng: np.random.Generator) -> nir.NIRGraph:
    """A copy of `graph` whose weights carry additive noise of `magnitude` x each matrix's RMS (rounding
    error is additive and the same size for every entry of a matrix, so this matches it in size)."""
    nodes: dict[str, nir.NIRNode] = {}
    for name, node in graph.nodes.items():
        if isinstance(node, WEIGHTED):
            w = np.asarray(node.weight, dtype=np.float64)
            rms = float(np.sqrt(np.mean(w * w))) if w.size else 0.0
            noisy = w + magnitude * rms * rng.standard_normal(w.shape)
            node = replace(node, weight=noisy.astype(np.asarray(node.weight).dtype))
        nodes[name] = node
    return nir.NIRGraph(nodes=nodes, edges=list(graph.edges), metadata=dict(graph.metadata or {}), type_check=False)


def agreement_floor(graph: nir.NIRGraph, dt: float | None, inputs: dict[str, np.ndarray], s_ref: np.ndarray,
                    magnitude: float, seeds: int = SEEDS) -> Floor:
    """Run the float model `seeds` times with perturbed weights and measure its argmax agreement with
    `s_ref` (its unperturbed scores) exactly as verify measures the board's (ties counted apart)."""
    from spikeforge.emulators.reference import simulate_trace

    from .verify import scores

    agreements, decided = [], []
    for seed in range(seeds):
        tr = simulate_trace(perturbed(graph, magnitude, np.random.default_rng(seed)), G.get_dt(graph, dt), inputs)
        oc = argmax_outcomes(s_ref, scores({k: tr.outputs[k] for k in sorted(tr.outputs)}))
        d = oc["agree"] + oc["disagree"]
        agreements.append(oc["agree"] / d if d > 0 else 1.0)
        decided.append(d)
    return Floor(magnitude, tuple(agreements), tuple(decided))
