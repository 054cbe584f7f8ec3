"""`sfq`: superconducting single-flux-quantum fabric (ColdFlux RSFQlib v3p0 cells).

Lowering to a structural netlist (clocked-integer or stochastic rate-coded synapses), static timing
analysis, JSON/JoSIM/report emission, pulse-level emulation (emulators/sfq.py) and an energy model.
"""

from .backend import SFQBackend

__all__ = ["SFQBackend"]
