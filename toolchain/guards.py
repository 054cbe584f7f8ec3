"""Guard rails on what the user chose: a time step that the neurons' time constants cannot take.

Why: forward Euler, `v += dt/tau (v_leak - v + r I)`, multiplies v by (1 - dt/tau) each step. At
dt >= tau the neuron forgets its whole state every step (factor <= 0: the dynamics the model was trained
with are gone), and at dt > 2 tau the update is unstable (|factor| > 1: v oscillates and grows). An
snnTorch export (tau 1e-3) compiled at `--dt 1e-3` loses most of its accuracy on every board, silently,
unless someone says so. With exact integration a step longer than tau is stable but cannot resolve it.
"""

from __future__ import annotations

import nir
import numpy as np

from .refsim import config_for_graph

#: neuron types and their time-constant fields
TAU_FIELDS: dict[type, tuple[str, ...]] = {
    nir.LIF: ("tau",), nir.LI: ("tau",), nir.CubaLIF: ("tau_mem", "tau_syn"), nir.CubaLI: ("tau_mem", "tau_syn"),
}


def dt_warnings(graph: nir.NIRGraph, dt: float) -> list[str]:
    """One line per (node, field) whose time constant the step `dt` does not resolve; [] when all are fine."""
    base = config_for_graph(graph, dt)
    out: list[str] = []
    for name, node in graph.nodes.items():
        for fld in TAU_FIELDS.get(type(node), ()):
            tau = np.asarray(getattr(node, fld), np.float64)
            if tau.size == 0:
                continue
            tmin = float(tau.min())
            ratio = dt / tmin
            integration = base.for_node(node).integration
            if integration == "euler" and ratio > 2.0:
                out.append(f"node '{name}': dt={dt:g} s is {ratio:.3g} x {fld}={tmin:g} s: forward Euler is unstable "
                           f"(decay factor 1 - dt/tau = {1 - ratio:.3g}, |.| > 1); use a smaller --dt")
            elif integration == "euler" and ratio >= 1.0:
                out.append(f"node '{name}': dt={dt:g} s >= {fld}={tmin:g} s: forward Euler forgets the state every "
                           f"step (decay factor 1 - dt/tau = {1 - ratio:.3g}); the model's dynamics are lost, "
                           f"use a smaller --dt")
            elif ratio > 1.0:
                out.append(f"node '{name}': dt={dt:g} s > {fld}={tmin:g} s: the step does not resolve the time "
                           f"constant; use a smaller --dt")
    return out
