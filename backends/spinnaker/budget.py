"""Compile-time choice of the time scale factor from the per-core cycle model.

At compile time no spikes are known, so every source neuron is assumed to fire independently at a planning
rate (`spinnaker.tsf_rate_hz`, default 100 Hz: an assumption, above the 30 Hz of the ring-buffer bound,
because an overrun silently drops packets). Per
core and step, cycles = overhead + neurons x c_n + synaptic events x c_s + packets x c_p + spikes x c_o (the
emulator's model, same board constants); the events are sums of independent Bernoulli spikes, so the peak is
taken as mean + 5 sigma. The factor is that peak over the step's budget (clock x dt), rounded up to 0.1.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from spikeforge.boardspec import Board

from .program import Program


def _slices(mapping: dict[str, Any], pop: str, size: int) -> list[tuple[int, int]]:
    cores = [c for c in mapping.get("cores", []) if c["pop"] == pop and c["kind"] != "DelayExtension"]
    return [(c["lo"], c["hi"]) for c in cores] or [(0, size)]


def estimate_tsf(prog: Program, mapping: dict[str, Any], board: Board, rate_hz: float,
                 sigmas: float = 5.0) -> dict[str, Any]:
    """Peak cycles per step of every core at `rate_hz`, and the time scale factor the worst one needs."""
    c = {k: float(board.value(f"timing.{k}")) for k in (
        "cycles_per_synaptic_event", "cycles_per_neuron_update", "cycles_per_packet_received",
        "cycles_per_spike_sent", "cycles_tick_overhead")}
    budget = float(board.value("timing.clock_hz")) * prog.dt_ms / 1000.0
    p = min(1.0, rate_hz * prog.dt_ms / 1000.0)
    worst: dict[str, Any] = {"cycles": 0.0}
    for post in prog.populations:
        if post.is_source:
            continue
        slices = _slices(mapping, post.name, post.size)
        # per core: per-source cycle weight (synapses into the slice x c_s, + one packet per routed source slice)
        weight: dict[str, np.ndarray] = {}
        for pr in prog.projections:
            if pr.post != post.name:
                continue
            n_pre = prog.pop(pr.pre).size
            w = weight.setdefault(pr.pre, np.zeros((len(slices), n_pre)))
            for ci, (lo, hi) in enumerate(slices):
                sel = (pr.post_idx >= lo) & (pr.post_idx < hi)
                w[ci] += np.bincount(pr.pre_idx[sel], minlength=n_pre) * c["cycles_per_synaptic_event"]
        for ci, (lo, hi) in enumerate(slices):
            mean = c["cycles_tick_overhead"] + (hi - lo) * (c["cycles_per_neuron_update"]
                                                            + p * c["cycles_per_spike_sent"])
            var = 0.0
            for pre, w in weight.items():
                a = w[ci].copy()
                for plo, phi in _slices(mapping, pre, a.size):
                    if a[plo:phi].any():
                        a[plo:phi] += c["cycles_per_packet_received"]
                mean += p * float(a.sum())
                var += p * (1 - p) * float(np.square(a).sum())
            peak = mean + sigmas * math.sqrt(var)
            if peak > worst["cycles"]:
                worst = {"cycles": peak, "population": post.name, "slice": ci}
    tsf = max(1.0, math.ceil(worst["cycles"] / budget * 10 - 1e-9) / 10)
    return {"time_scale_factor": tsf, "peak_cycles": worst["cycles"], "worst_core": worst,
            "budget_cycles": budget, "rate_hz": rate_hz, "sigmas": sigmas,
            "why": f"peak (mean + {sigmas:g} sigma) cycles per step at {rate_hz:g} Hz per source neuron"}
