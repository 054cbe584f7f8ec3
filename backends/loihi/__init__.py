"""Loihi backend (boards `loihi1`, `loihi2`): NIR -> Lava fixed-point processes, core mapping, emitted Lava
script, bit-exact emulator (`spikeforge.emulators.loihi`) and a Davies-2018 cost model."""

from .backend import LoihiBackend

__all__ = ["LoihiBackend"]
