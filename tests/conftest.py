"""Shared fixtures: small NIR graphs built in code, the bundled models, a CLI runner."""

from __future__ import annotations

import nir
import numpy as np
import pytest


def lif_mlp(n_in: int = 4, n_hid: int = 6, n_out: int = 3, seed: int = 0, dt: float = 1e-3) -> nir.NIRGraph:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 1.0, (n_hid, n_in)).astype(np.float32)
    w2 = rng.normal(0, 1.0, (n_out, n_hid)).astype(np.float32)
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": nir.Affine(weight=w1, bias=np.zeros(n_hid, np.float32)),
        "lif1": nir.LIF(tau=np.full(n_hid, 0.01), r=np.full(n_hid, 10.0), v_leak=np.zeros(n_hid),
                        v_threshold=np.ones(n_hid), v_reset=np.zeros(n_hid)),
        "fc2": nir.Linear(weight=w2),
        "lif2": nir.LIF(tau=np.full(n_out, 0.01), r=np.full(n_out, 10.0), v_leak=np.zeros(n_out),
                        v_threshold=np.ones(n_out), v_reset=np.zeros(n_out)),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": dt})


@pytest.fixture
def small_graph() -> nir.NIRGraph:
    return lif_mlp()


@pytest.fixture
def spikes():
    rng = np.random.default_rng(1)
    return (rng.random((30, 5, 4)) < 0.5).astype(np.float32)


@pytest.fixture(scope="module")
def conformance():
    """benchmarks/conformance.py as a module (its model builders and one-cell runner)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "conformance.py"
    spec = importlib.util.spec_from_file_location("conformance", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["conformance"] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def model(tmp_path):
    """A small LIF MLP written as a NIR file, the model the CLI tests compile."""
    from spikeforge import graph as G

    p = tmp_path / "m.nir"
    G.write(lif_mlp(), p)
    return p
