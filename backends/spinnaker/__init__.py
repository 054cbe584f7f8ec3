"""SpiNNaker (sPyNNaker 7.x) backend: PyNN script, chip mapping and a bit-exact fixed-point emulator."""

from .backend import SpiNNakerBackend

__all__ = ["SpiNNakerBackend"]
