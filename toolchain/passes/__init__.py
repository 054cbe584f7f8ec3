"""Compiler passes: normalisation, bit-budget quantisation, pruning and delay mapping (docs/passes.md)."""

from .quantize import quantize, quantize_tensor
from .report import DelayReport, PruneReport, QuantReport

__all__ = ["quantize", "quantize_tensor", "QuantReport", "PruneReport", "DelayReport"]
