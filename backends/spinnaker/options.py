"""`--set` keys the SpiNNaker backend reads today (provisional: the SpiNNaker engineer's file supersedes this one)."""

from __future__ import annotations

from typing import Any

from spikeforge.options import Opt


def mapping(value: Any) -> dict:
    """A {population: value} table given as JSON on the command line."""
    if not isinstance(value, dict):
        raise ValueError(value)
    return value


OPTIONS: dict[str, Opt] = {
    "spinnaker.tau_refrac_ms": Opt(float, 0.0, "refractory period in ms", min=0.0),
    "spinnaker.calibration": Opt(str, "", ".npz of calibration inputs for ring-buffer scaling"),
    "spinnaker.calibration_samples": Opt(int, 16, "calibration samples used", min=1, max=1_000_000),
    "spinnaker.calibration_margin": Opt(float, 1.25, "headroom factor over the calibrated peak", min=1.0),
    "spinnaker.if_tau_ms": Opt(float, 0.0, "membrane tau in ms used for IF neurons (0 = automatic)", min=0.0),
    "spinnaker.if_leak_budget": Opt(float, 0.01, "largest accepted IF leak per step (fraction)", min=0.0, max=1.0),
    "spinnaker.if_current_headroom": Opt(float, 16384.0, "largest IF input current in S16.15 units", min=0.0),
    "spinnaker.if_round_nearest": Opt(bool, True, "round IF weights to nearest (else truncate)"),
    "spinnaker.max_expected_summed_weight": Opt(mapping, {}, "JSON {population: weight} pins of the ring-buffer "
                                                "scaling"),
    "spinnaker.ring_buffer": Opt(str, "auto", "ring-buffer scaling policy",
                                 choices=("auto", "worst", "statistical", "calibration")),
    "spinnaker.rate_hz": Opt(float, 30.0, "assumed firing rate in Hz for the statistical bound", min=0.0),
    "spinnaker.time_scale_factor": Opt(float, 1.0, "sPyNNaker time scale factor", min=1.0),
    "spinnaker.tsf_rate_hz": Opt(float, 100.0, "firing rate in Hz assumed for the timing plan", min=0.0),
    "spinnaker.neurons_per_core": Opt(int, 256, "atoms per core", min=1, max=1_000_000),
}
