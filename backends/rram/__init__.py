"""RRAM in-memory-computing boards (`rram-40nm-512x512`, `rram-neurram-48x256`).

Programmed-weight mode: any trained graph's weights write-verified into differential crossbar tiles
(programmed.py, xbar.py, emulators/rram_graph.py). Reservoir mode: zero-shot liquid state machines on
formed random conductances with a digital readout trained on emulated states (lower.py, reservoir.py,
emulators/rram.py). Both have switchable non-idealities and a cited energy / latency model.
"""

from .lower import RRAMBackend, analyse, fit_readout
from .reservoir import ReservoirSpec, dynamics, generate

__all__ = ["RRAMBackend", "ReservoirSpec", "analyse", "dynamics", "fit_readout", "generate"]
