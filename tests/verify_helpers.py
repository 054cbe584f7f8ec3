"""Test helpers for verify: graphs, the NIR paper's lif_norse drive, and a board with an injected quirk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nir
import numpy as np

from spikeforge.backends.reference.backend import ReferenceBackend
from spikeforge.emulators.reference import ReferenceEmulator
from spikeforge.interfaces import Emulator, Trace

SHARED = Path(__file__).resolve().parents[2] / "shared"
LIF_NORSE = SHARED / "models" / "lif_norse.nir"
#: NIR paper, paper/01_lif: exact solution, Norse, snnTorch, Nengo and SpiNNaker 2 spike at these steps
LIF_NORSE_SPIKES = (460, 510, 710, 760)


def lif_norse_drive() -> np.ndarray:
    """The paper's input (shared/README.md): gaps build a 0/1 train of 100 entries, each followed by 9 zeros."""
    gaps = [6, 15, 4, 3, 0, 2, 1, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 14]
    train: list[int] = []
    for gap in gaps:
        train += [0] * gap + [1]
    x = np.zeros(1000, np.float32)
    x[::10] = train[:100]
    return x.reshape(1000, 1, 1)


def lif(n: int, *, tau: float = 0.01, r: float = 10.0, th: float = 1.0) -> nir.LIF:
    return nir.LIF(tau=np.full(n, tau), r=np.full(n, r), v_leak=np.zeros(n), v_threshold=np.full(n, th),
                   v_reset=np.zeros(n))


def chain(sizes: list[int], *, seed: int = 0, readout: str = "spikes", dt: float = 1e-3) -> nir.NIRGraph:
    """Input -> (fcK -> lifK)* -> Output; readout="membrane" ends in an LI node (a regression-style output)."""
    rng = np.random.default_rng(seed)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array([sizes[0]])})}
    edges = []
    prev = "input"
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        nodes[f"fc{k}"] = nir.Linear(weight=rng.normal(0.4, 0.6, (b, a)).astype(np.float32))
        last = k == len(sizes) - 1
        if last and readout == "membrane":
            nodes[f"li{k}"] = nir.LI(tau=np.full(b, 0.02), r=np.full(b, 1.0), v_leak=np.zeros(b))
            name = f"li{k}"
        else:
            nodes[f"lif{k}"] = lif(b)
            name = f"lif{k}"
        edges += [(prev, f"fc{k}"), (f"fc{k}", name)]
        prev = name
    nodes["output"] = nir.Output(output_type={"output": np.array([sizes[-1]])})
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={"spikeforge.dt": dt})


class QuirkBackend(ReferenceBackend):
    """The cpu-reference board with a fault injected into its emulated outputs (a board quirk)."""

    def __init__(self, quirk: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]):
        self.quirk = quirk

    def emulator(self) -> Emulator:
        quirk = self.quirk

        class _Quirky(Emulator):
            def run(self, artifact, inputs, *, probes=False) -> Trace:
                t = ReferenceEmulator().run(artifact, inputs, probes=probes)
                t.outputs = quirk({k: np.array(v) for k, v in t.outputs.items()})
                return t

        return _Quirky()


def fast_backend(name: str):
    """The registered backend, except Loihi's Lava re-run in verify_extra (tested in test_loihi_*; slow)."""
    from spikeforge.backends.loihi.backend import LoihiBackend
    from spikeforge.registry import get_backend

    if name != "loihi":
        return get_backend(name)

    class _NoLava(LoihiBackend):
        def verify_extra(self, artifact, inputs):
            return []

    return _NoLava()
