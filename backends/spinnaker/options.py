"""Every `--set spinnaker.*` key the SpiNNaker backend reads, with its type, default, range and unit.

Why: a misspelt or out-of-range key must be refused before compiling, not silently ignored
(`spikeforge.options.validate_options` checks them against this table).
"""

from __future__ import annotations

import json
from typing import Any

from spikeforge.options import Opt


def _as_mapping(value: Any) -> Any:
    """A dict, or a JSON object string (the CLI passes `--set k={"a": 1}` already decoded)."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, dict):
        raise ValueError(value)
    return value


def int_or_map(value: Any) -> int | dict[str, int]:
    """An int >= 1, or {population or NIR node: int >= 1}."""
    if isinstance(value, dict) or (isinstance(value, str) and value.strip().startswith("{")):
        out = {str(k): int(v) for k, v in _as_mapping(value).items()}
    else:
        out = int(value)
    if min([out] if isinstance(out, int) else list(out.values()) or [1]) < 1:
        raise ValueError(value)
    return out


def weight_pins(value: Any) -> dict[str, list[float]]:
    """{population or NIR node: [excitatory, inhibitory]} summed-weight bounds (> 0)."""
    out: dict[str, list[float]] = {}
    for k, v in _as_mapping(value).items():
        vals = [float(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
        if not 1 <= len(vals) <= 2 or min(vals) <= 0:
            raise ValueError(value)
        out[str(k)] = vals
    return out


OPTIONS: dict[str, Opt] = {
    "spinnaker.ring_buffer": Opt(str, "auto", "ring-buffer weight bound policy",
                                 choices=("auto", "worst", "statistical", "calibration")),
    "spinnaker.rate_hz": Opt(float, 30.0, "firing rate (Hz) the statistical ring-buffer bound assumes",
                             min=1e-3, max=1e5),
    "spinnaker.calibration": Opt(str, None, "calibration inputs (.npz path) for ring-buffer bounds and tick budget"),
    "spinnaker.calibration_margin": Opt(float, 1.25, "factor on the largest summed input and busiest core step seen on calibration data", min=1.0,
                                        max=100.0),
    "spinnaker.calibration_samples": Opt(int, 16, "calibration samples used", min=1, max=100000),
    "spinnaker.max_expected_summed_weight": Opt(weight_pins, None,
                                                "JSON {population: [exc, inh]} summed-weight bounds (pins shifts)"),
    "spinnaker.neurons_per_core": Opt(int_or_map, None, "neurons per core: int or JSON {population: int}"),
    "spinnaker.tau_refrac_ms": Opt(float, 0.0, "refractory period (ms) of every population", min=0.0, max=1e4),
    "spinnaker.time_scale_factor": Opt(float, None, "pin sPyNNaker's time_scale_factor", min=1.0, max=1e4),
    "spinnaker.tsf_rate_hz": Opt(float, 100.0, "firing rate (Hz) the tick-budget plan assumes", min=1e-3,
                                 max=1e5),
    "spinnaker.if_tau_ms": Opt(float, 0.0, "pin tau_m (ms) of IF populations (0: automatic)", min=0.0,
                               max=32767.0),
    "spinnaker.if_leak_budget": Opt(float, 0.01, "largest IF leak over the run (fraction)", min=1e-9, max=1.0),
    "spinnaker.if_round_nearest": Opt(bool, True, "IF rounding-offset current (round to nearest)"),
    "spinnaker.if_current_headroom": Opt(float, 16384.0, "largest IF input current (s16.15 units)", min=1.0,
                                         max=32768.0),
    "spinnaker.round_nearest": Opt(bool, True, "LIF/LI/CubaLIF rounding-offset current (centres the core's "
                                   "flooring V update on zero)"),
    "spinnaker.voltage_scale": Opt(float, None, "pin the voltage scale of LIF/LI/CubaLIF populations "
                                   "(default: automatic power of two)", min=1e-6, max=65536.0),
    "spinnaker.v_headroom": Opt(float, 16384.0, "largest |I R + V_rest| the automatic voltage scale allows "
                                "(s16.15 units)", min=1.0, max=32768.0),
}
