"""Exact fractional LIF leak on SFQ: a binary-rate-multiplier leak unit with the remainder carried.

Why: the old leak removed round(count x dt/tau) fluxons per clock, which is 0 for counts below 13 at
dt/tau = 0.04, so a LIF never leaked (lif_norse fired 11 times instead of 4). Here each leaky neuron
holds its membrane state in a binary up/down counter with `frac_bits` bits below one weight pulse
(a synaptic pulse enters the counter at stage `frac_bits`), and a leak unit adds
``count x leak_num`` to a `leak_bits`-bit accumulator every clock; the accumulator's carry-outs are
leak fluxons that decrement the counter, the remainder stays in the accumulator. The total leak is
then exact up to the carried remainder, so the state never drifts more than one counter step from
the Euler (or exact) solution. What is left (leak_num rounded to 2^-leak_bits, state held in
2^-frac_bits weight steps) is recorded with its size via `spikeforge.semantics.record`.
A leak that rounds to zero at `leak_bits` is refused (exit 2), never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from spikeforge.errors import UnsupportedError
from spikeforge.semantics import record


@dataclass
class LeakPlan:
    """Per-layer integer neuron constants in counter units (1 weight pulse = 2^frac_bits units)."""

    frac_bits: int
    threshold: np.ndarray     # firing level, counter units
    sub: np.ndarray           # subtract-reset amount, counter units
    v_reset: np.ndarray       # zero-reset value, counter units
    num: np.ndarray           # leak per clock = count x num / 2^leak_bits (0: no leak)
    leak_rel_error: float     # max |num / 2^leak_bits - dt/tau| / (dt/tau)

    @property
    def fractional(self) -> bool:
        return self.frac_bits > 0


def leak_plan(layer: Any, wscale: float, th_weight_units: np.ndarray, frac_bits: int, leak_bits: int) -> LeakPlan:
    """Integer constants for one layer; wscale = float units per weight pulse."""
    leak = 1.0 - np.asarray(layer.keep, dtype=np.float64)
    fractional = bool(np.any((leak > 1e-12) & (leak < 1 - 1e-12)))
    f = int(frac_bits) if fractional else 0
    unit = wscale / (1 << f)
    if f:
        x = layer.threshold / unit
        th = (np.floor(x + 1e-9) + 1 if layer.cmp == ">" else np.ceil(x - 1e-9)).astype(np.int64)
    else:
        th = np.asarray(th_weight_units, dtype=np.int64)
    th = np.maximum(th, 1)
    full = 1 << int(leak_bits)
    num = np.rint(leak * full).astype(np.int64)
    lost = (leak > 0) & (num == 0)
    if np.any(lost):
        j = int(np.flatnonzero(lost)[0])
        raise UnsupportedError(
            f"LIF leak dt/tau = {leak[j]:.3g} (neuron {j}) is below the leak unit's resolution 2^-{leak_bits}; "
            "it would be dropped", node=layer.name, field="tau", hint="raise --set sfq.leak_bits")
    rel = float(np.max(np.abs(num / full - leak)[leak > 0] / leak[leak > 0])) if np.any(leak > 0) else 0.0
    sub = np.maximum(1, np.rint(layer.threshold / unit)).astype(np.int64)
    vr = np.rint(layer.v_reset / unit).astype(np.int64)
    return LeakPlan(f, th, sub, vr, num, rel)


def record_leak(meta: dict[str, Any], layer: Any, plan: LeakPlan, leak_bits: int) -> None:
    """Record what the leak unit still approximates, with its measured size."""
    if plan.leak_rel_error > 0:
        record(meta, layer.name, "leak_rounded",
               f"leak per clock dt/tau rounded to a multiple of 2^-{leak_bits} (remainder carried, so no drift "
               "beyond one counter step); relative error of the decay rate", plan.leak_rel_error)
    record(meta, layer.name, "quantisation",
           f"membrane state held in steps of 2^-{plan.frac_bits} weight pulse; error below one step, as a "
           "fraction of the smallest threshold", 1.0 / float(np.min(plan.threshold)))


def leak_cost_bits(params: dict[str, Any]) -> int:
    """Extra counter + accumulator bit slices one neuron's leak unit costs (0 for an IF/memoryless neuron)."""
    if int(params.get("frac_bits", 0)) == 0:
        return 0
    return int(params.get("frac_bits", 0)) + int(params.get("leak_bits", 0))
