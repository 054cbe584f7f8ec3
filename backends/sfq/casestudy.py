"""The seed paper's case study (Krylov et al. 2024): a two-layer spiking XOR network as an NIR graph."""

from __future__ import annotations

import nir
import numpy as np

XOR_PATTERNS = [(0, 0), (0, 1), (1, 0), (1, 1)]


def xor_graph(dt: float = 1e-3) -> nir.NIRGraph:
    """hidden = (OR, AND); outputs = (XOR = OR - AND, NOT XOR = 1 - OR + AND); tau = dt: one step memory."""
    lif = dict(tau=np.full(2, dt), r=np.ones(2), v_leak=np.zeros(2))
    nodes = {
        "in": nir.Input(np.array([2])),
        "fc1": nir.Linear(np.ones((2, 2))),
        "hid": nir.LIF(v_threshold=np.array([0.5, 1.5]), **lif),
        "fc2": nir.Affine(np.array([[1.0, -1.0], [-1.0, 1.0]]), np.array([0.0, 1.0])),
        "cls": nir.LIF(v_threshold=np.array([0.5, 0.5]), **lif),
        "out": nir.Output(np.array([2])),
    }
    edges = [("in", "fc1"), ("fc1", "hid"), ("hid", "fc2"), ("fc2", "cls"), ("cls", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": dt})
