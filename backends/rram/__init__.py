"""`rram-40nm-512x512`: liquid state machines on resistive-memory in-memory-computing macros.

Zero-shot (formed random conductances) or programmed weights on 512 x 512 differential crossbar
tiles, a read-by-read emulator with switchable non-idealities (emulators/rram.py), a digital readout
trained on emulated states, and an energy / latency model from the board spec.
"""

from .lower import RRAMBackend, analyse, fit_readout
from .reservoir import ReservoirSpec, dynamics, generate

__all__ = ["RRAMBackend", "ReservoirSpec", "analyse", "dynamics", "fit_readout", "generate"]
