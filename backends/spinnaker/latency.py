"""Projection delays that turn SpiNNaker's per-hop latency into one pure shift of each population's output.

Why: sPyNNaker delivers a spike sent in step t no earlier than step t + 1, where the reference applies
feed-forward edges in the same step. Giving every projection one step would delay a population by a
different number of steps along paths of different depth (skip connections), which changes what the
neuron sees. Instead each population gets a latency L (steps behind the reference) and each projection the
delay that makes its input arrive exactly L(post) steps late:

    d_core = d_ref + vf + L(post) - L(pre),   L(post) = max over forward inputs of L(pre) + max(0, 1 - d_ref - vf)

with vf = 1 for a CubaLIF/CubaLI population in the `voltage_first` order (its voltage already uses the previous
step's current, which is what the core's delayed input gives). A back edge of a loop through several
populations can need d_core < 1; it is clamped to 1 and recorded (`delay_clamped`): the loop runs slower.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from spikeforge.semantics import record


def plan(order: list[str], terms: dict[str, Iterable[tuple[str, int]]], voltage_first: set[str],
         node_of: dict[str, str], sem: dict[str, Any]) -> tuple[dict[str, int], dict[tuple[str, str, int], int]]:
    """Latency per population and core delay per (post, pre, reference delay in steps).

    `order`: populations in topological order (sources first); `terms[post]`: its (pre, d_ref) inputs.
    """
    idx = {p: i for i, p in enumerate(order)}
    lat: dict[str, int] = {}
    delays: dict[tuple[str, str, int], int] = {}
    for post in order:
        ins = list(terms.get(post, ()))
        vf = 1 if post in voltage_first else 0
        fwd = [lat[pre] + max(0, 1 - d - vf) for pre, d in ins if idx.get(pre, len(order)) < idx[post]]
        lat[post] = max(fwd, default=0)
    for post in order:
        vf = 1 if post in voltage_first else 0
        for pre, d in terms.get(post, ()):
            want = d + vf + lat[post] - lat.get(pre, 0)
            if want < 1:
                record(sem, node_of.get(post, post), "delay_clamped",
                       f"the edge from '{node_of.get(pre, pre)}' needs {want} steps to keep the reference's loop "
                       f"timing, SpiNNaker delivers after at least 1: the loop runs {1 - want} step(s) slower",
                       float(1 - want))
            delays[(post, pre, int(d))] = max(1, int(want))
    return lat, delays
