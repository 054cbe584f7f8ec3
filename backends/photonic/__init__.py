"""`lighton-opu`: compile an MLP into a Direct Feedback Alignment training program for an optical
random-projection co-processor (LightOn OPU), with a physical emulator (spikeforge.emulators.opu)."""

from .backend import PhotonicBackend

__all__ = ["PhotonicBackend"]
