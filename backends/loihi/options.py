"""The `--set loihi.*` keys the Loihi backend reads (see toolchain/options.py for the contract)."""

from __future__ import annotations

from typing import Any

from spikeforge.options import Opt

OPTIONS: dict[str, Opt] = {
    "loihi.split_sign": Opt(bool, True, "split mixed-sign weight matrices into an excitatory and an inhibitory "
                            "connection (keeps all 8 magnitude bits; Lava's mixed 8-bit weights are even)"),
    "loihi.allow_extra_latency": Opt(bool, False, "accept recurrent edges from later layers with the extra "
                                     "delay Loihi imposes (recorded as a semantic warning)"),
    "loihi.horizon_steps": Opt(int, 100, "steps over which v of a leak-free readout (I) is bounded when its "
                               "scale is chosen", min=1, max=1_000_000),
    "loihi.weight_bytes": Opt(int, 1, "connections per weight matrix: 2 adds a residual connection 8 bits lower "
                              "(about 16-bit weights, twice the synapses)", min=1, max=2),
    "loihi.readout_weight_bytes": Opt(int, 2, "as loihi.weight_bytes, for readouts and tonic (bias) synapses",
                                      min=1, max=2),
    "loihi.row_exponents": Opt(bool, True, "give each group of destination neurons (rows) whose largest weight "
                               "needs the same weight_exp its own connection (Conv: its own output-channel "
                               "exponent), so small-weight rows keep all 8 mantissa bits; 0: one exponent per matrix"),
    "loihi.conv_process": Opt(bool, True, "lower source -> Conv2d -> population as Lava's Conv process (shared "
                              "kernel, exponent baked into it); off: unrolled Sparse synapses"),
    "loihi.negative_headroom": Opt(float, 24.0, "room below zero, in multiples of v_threshold, that v of a "
                                   "leak-free (or slowly leaking) spiking neuron keeps before its 24-bit state "
                                   "saturates", min=1.0, max=1e6),
    "loihi.cuba_bias": Opt(str, "exact", "constant input current into CubaLIF/CubaLI: 'exact' (a tonic source "
                           "feeds it into u through synapses) or 'v_bias' (its steady state on v; recorded)",
                           choices=("exact", "v_bias")),
}


def read(extra: dict[str, Any] | None, key: str) -> Any:
    """The parsed value of `key` from CompileOptions.extra (CLI strings or Python values), or its default."""
    extra = extra or {}
    return OPTIONS[key].parse(key, extra[key]) if key in extra else OPTIONS[key].default
