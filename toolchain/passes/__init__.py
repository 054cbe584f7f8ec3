"""Compiler passes: normalisation, bit-budget quantisation, pruning and delay mapping (docs/passes.md)."""

from .avgpool import avgpool_to_sumpool
from .delays import board_max_delay, expand_synapse_delays, map_delays, verify_delays
from .normalise import conv_to_affine, fold_affines, fold_scales, fuse_cubalif, normalise, split_cubalif
from .prune import gradual_schedule, prune, prune_gradual
from .quantize import allocate_bits, allowed_widths, quantize, quantize_tensor
from .report import DelayReport, PruneReport, QuantReport

__all__ = [
    "quantize", "quantize_tensor", "allowed_widths", "allocate_bits",
    "prune", "prune_gradual", "gradual_schedule",
    "map_delays", "expand_synapse_delays", "verify_delays", "board_max_delay",
    "normalise", "fold_scales", "fold_affines", "conv_to_affine", "split_cubalif", "fuse_cubalif",
    "avgpool_to_sumpool", "QuantReport", "PruneReport", "DelayReport",
]
